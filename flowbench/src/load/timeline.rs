//! A scenario's timeline as the recorder keeps it (`TimelineTally`): from
//! the intended send to each step of a run (workflow_started, each node's
//! start and finish by its title and type, the node's own time, the first
//! text, the terminal event), an HDR histogram per step and node; and two
//! streams kept whole for the waterfall: the slowest, and a reservoir from
//! which the one nearest the median is picked at the end.

use super::integrity::{EventKind, Labels, Trace};
use super::metrics::{encode_histogram, summary_of};
use hdrhistogram::Histogram;
use schema::integrity::{NodeLabel, Step, StreamTrace, Timeline, TimelineStep, TracePoint};
use std::time::Duration;

/// The timeline's histograms hold two significant digits (1% apart): a
/// run records a dozen rows per stream into them, each recorder its own,
/// and at three digits their size made each record a cache miss that cost
/// the driver a measurable share of its time per event
/// (docs/performance.md, "Stream integrity's cost").
fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 3_600_000_000, 2).expect("valid histogram bounds")
}

/// Streams each recorder keeps for the median's pick.
const RESERVOIR: usize = 32;
/// Node labels a scenario's timeline gives rows; past them, counted.
const MAX_NODE_ROWS: usize = 64;

/// One row's histogram, keyed by its step and node.
struct StepRow {
    step: Step,
    node: Option<NodeLabel>,
    histogram: Histogram<u64>,
}

/// What a recorder keeps of its successful streams' timelines.
#[derive(Default)]
pub struct TimelineTally {
    rows: Vec<StepRow>,
    nodes_left_out: u64,
    slowest: Option<StreamTrace>,
    reservoir: Vec<StreamTrace>,
    /// Streams offered to the reservoir.
    offered: u64,
    rng: u64,
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl TimelineTally {
    fn row(&mut self, step: Step, node: Option<(&str, &str)>) -> Option<&mut Histogram<u64>> {
        let at = self.rows.iter().position(|r| {
            r.step == step
                && match (&r.node, node) {
                    (None, None) => true,
                    (Some(l), Some((title, node_type))) => l.title == title && l.node_type == node_type,
                    _ => false,
                }
        });
        let at = match at {
            Some(i) => i,
            None => {
                if node.is_some() && self.rows.iter().filter(|r| r.node.is_some()).count() >= MAX_NODE_ROWS * 3 {
                    self.nodes_left_out += 1;
                    return None;
                }
                let node = node.map(|(title, node_type)| NodeLabel { title: title.to_owned(), node_type: node_type.to_owned() });
                self.rows.push(StepRow { step, node, histogram: new_histogram() });
                self.rows.len() - 1
            }
        };
        Some(&mut self.rows[at].histogram)
    }

    fn record_at(&mut self, step: Step, node: Option<(&str, &str)>, d: Duration) {
        if let Some(h) = self.row(step, node) {
            h.saturating_record(us(d));
        }
    }

    /// One successful stream: `trace` from its intended send, `terminal` its
    /// terminal event's time from the intended send, `stamps` its chunks'
    /// emit times at the upstream and `lags` their emit → receipt (ns).
    pub fn record(&mut self, trace: &Trace, labels: &Labels, terminal: Duration, stamps: &[u64], lags: &[u64]) {
        let label = |l: Option<u32>| l.and_then(|i| labels.get(i));
        let mut started = false;
        let mut text = false;
        for p in &trace.points {
            match p.kind {
                EventKind::WorkflowStarted if !started => {
                    started = true;
                    self.record_at(Step::WorkflowStarted, None, p.at);
                }
                EventKind::NodeStarted => self.record_at(Step::NodeStarted, label(p.label), p.at),
                EventKind::NodeFinished => self.record_at(Step::NodeFinished, label(p.label), p.at),
                EventKind::TextChunk | EventKind::Message if !text => {
                    text = true;
                    self.record_at(Step::FirstText, None, p.at);
                }
                _ => {}
            }
        }
        for (l, d) in &trace.node_times {
            self.record_at(Step::NodeTime, label(*l), *d);
        }
        self.record_at(Step::Terminal, None, terminal);
        for lag in lags {
            self.record_at(Step::ServerAddedPerChunk, None, Duration::from_nanos(*lag));
        }
        for pair in stamps.windows(2) {
            self.record_at(Step::UpstreamPerChunk, None, Duration::from_nanos(pair[1].saturating_sub(pair[0])));
        }
        self.keep(trace, labels, terminal);
    }

    /// Keeps the stream whole if it is the slowest yet, or if the
    /// reservoir draws it (each stream with the same chance).
    fn keep(&mut self, trace: &Trace, labels: &Labels, terminal: Duration) {
        let whole = || StreamTrace {
            duration_ms: ms(terminal),
            points: trace
                .points
                .iter()
                .map(|p| TracePoint {
                    at_ms: ms(p.at),
                    event: p.kind.as_str().to_owned(),
                    node: p.label.and_then(|i| labels.get(i)).map(|(t, n)| NodeLabel { title: t.to_owned(), node_type: n.to_owned() }),
                })
                .collect(),
            truncated: trace.truncated,
        };
        if self.slowest.as_ref().is_none_or(|s| s.duration_ms < ms(terminal)) {
            self.slowest = Some(whole());
        }
        self.offered += 1;
        if self.reservoir.len() < RESERVOIR {
            self.reservoir.push(whole());
        } else {
            // xorshift: a draw per stream, no shared generator.
            self.rng ^= self.rng << 13 ^ 0x9E37_79B9_7F4A_7C15;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            let j = self.rng % self.offered;
            if (j as usize) < RESERVOIR {
                self.reservoir[j as usize] = whole();
            }
        }
    }

    pub fn merge(&mut self, other: &TimelineTally) {
        for r in &other.rows {
            let node = r.node.as_ref().map(|l| (l.title.as_str(), l.node_type.as_str()));
            if let Some(h) = self.row(r.step, node) {
                h.add(&r.histogram).expect("histograms share bounds");
            }
        }
        self.nodes_left_out += other.nodes_left_out;
        if let Some(theirs) = &other.slowest
            && self.slowest.as_ref().is_none_or(|s| s.duration_ms < theirs.duration_ms)
        {
            self.slowest = Some(theirs.clone());
        }
        self.reservoir.extend(other.reservoir.iter().cloned());
        self.offered += other.offered;
    }

    /// A report's timeline as a tally, to merge with others (`flowbench
    /// merge`): its rows' histograms, its slowest stream, and its median
    /// stream as the one stream of its reservoir.
    pub fn of_report(timeline: &Timeline) -> anyhow::Result<Self> {
        let mut rows = Vec::with_capacity(timeline.steps.len());
        for step in &timeline.steps {
            let histogram = super::metrics::decode_histogram(&step.histogram)
                .map_err(|e| e.context(format!("timeline step {}", step.step.as_str())))?;
            rows.push(StepRow { step: step.step, node: step.node.clone(), histogram });
        }
        Ok(Self {
            rows,
            nodes_left_out: timeline.nodes_left_out,
            slowest: timeline.slowest.clone(),
            reservoir: timeline.median.iter().cloned().collect(),
            offered: 0,
            rng: 0,
        })
    }

    /// The report's timeline, the kept stream nearest `median_ms` as the
    /// median's; `None` when no stream was recorded.
    pub fn finish(&self, median_ms: f64) -> Option<Timeline> {
        if self.rows.is_empty() {
            return None;
        }
        Some(Timeline {
            steps: ordered(self.rows.iter().map(|r| (r.step, r.node.clone(), &r.histogram)).collect()),
            median: nearest(&self.reservoir, median_ms),
            slowest: self.slowest.clone(),
            nodes_left_out: self.nodes_left_out,
        })
    }
}

/// The stream of `traces` whose duration is nearest `median_ms`.
fn nearest(traces: &[StreamTrace], median_ms: f64) -> Option<StreamTrace> {
    traces.iter().min_by(|a, b| (a.duration_ms - median_ms).abs().total_cmp(&(b.duration_ms - median_ms).abs())).cloned()
}

/// Rows in the order a run met them (the order they were first recorded,
/// which is a stream's event order): workflow_started, each node's start
/// and finish with its own time after its finish, the first text; then the
/// terminal event and the per-chunk rows.
fn ordered(rows: Vec<(Step, Option<NodeLabel>, &Histogram<u64>)>) -> Vec<TimelineStep> {
    let finished_at = |node: &Option<NodeLabel>| rows.iter().position(|(s, n, _)| *s == Step::NodeFinished && n == node);
    let key = |i: usize, step: Step, node: &Option<NodeLabel>| match step {
        Step::NodeTime => (0, finished_at(node).unwrap_or(i), 1),
        Step::Terminal => (1, 0, 0),
        Step::ServerAddedPerChunk => (2, 0, 0),
        Step::UpstreamPerChunk => (2, 1, 0),
        _ => (0, i, 0),
    };
    let mut keyed: Vec<_> = rows.iter().enumerate().map(|(i, (s, n, h))| (key(i, *s, n), (*s, n.clone(), *h))).collect();
    keyed.sort_by_key(|(k, _)| *k);
    keyed.into_iter().map(|(_, (step, node, h))| TimelineStep { step, node, ms: summary_of(h), histogram: encode_histogram(h) }).collect()
}
