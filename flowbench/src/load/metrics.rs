//! Exact per-request metrics: HDR histograms (µs, 3 significant digits),
//! per-second counters and the connection gauge, as defined in
//! docs/metrics.md. Every latency a run records is one `Metric`: the
//! recorder keeps one histogram per metric in an array indexed by it, and
//! the report and its renderings iterate the same list, so a new metric is
//! one variant here.
//!
//! Each worker owns a `Recorder` (no locks on the hot path); recorders merge
//! losslessly at the end. Every request sent ends as exactly one `Sample` with
//! one outcome, and is counted, warm-up or not.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// The largest value a histogram holds: 1 hour in µs (larger ones saturate).
const MAX_TRACKED_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No connection could be made.
    Connect,
    /// The request or its stream took longer than the request timeout.
    Timeout,
    Http4xx,
    Http5xx,
    /// Another non-200 status.
    HttpOther,
    /// A body or event that is not the JSON expected.
    InvalidJson,
    /// The stream ended without `workflow_finished`.
    EarlyTermination,
    /// The workflow finished `failed`/`stopped`, or an `error` event came.
    WorkflowFailed,
    /// The connection broke mid-request.
    Io,
    /// The run was stopped (Ctrl-C) while the request was in flight.
    Interrupted,
    /// `--stamped`, but a text chunk carried no emit stamp (the mock's
    /// script lacks `stamp = true`).
    Unstamped,
    /// The driver left the stream on purpose (`--abort-after-chunks`): a
    /// client that goes away mid-answer, for the server's cancellation path.
    Aborted,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::HttpOther => "http_other",
            ErrorClass::InvalidJson => "invalid_json",
            ErrorClass::EarlyTermination => "early_termination",
            ErrorClass::WorkflowFailed => "workflow_failed",
            ErrorClass::Io => "io",
            ErrorClass::Interrupted => "interrupted",
            ErrorClass::Unstamped => "unstamped",
            ErrorClass::Aborted => "aborted",
        }
    }
}

/// A latency the driver records, one HDR histogram each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Response headers, from the actual send time.
    Ttfb,
    /// The first complete data event, from the actual send time.
    Ttfe,
    /// The first `text_chunk`, from the actual send time.
    FirstTextChunk,
    /// The whole request from its intended send time (coordinated omission corrected).
    Duration,
    /// The whole request from its actual send time (raw service time).
    ServiceTime,
    /// Every gap between consecutive events of a stream.
    EventGap,
    /// Each stream's longest gap.
    LongestGapPerStream,
    /// Emit → receipt of stamped chunks (`--stamped`).
    EmitToReceipt,
    /// A stream's terminal event → the end of its body, where the driver
    /// reads every body to its end (`--after-terminal drain`).
    StreamTail,
    /// In the open model, TTFB, TTFE and the first `text_chunk` from the
    /// intended send time too (coordinated omission corrected, as
    /// `Duration`); the three above stay the service view.
    TtfbFromIntended,
    TtfeFromIntended,
    FirstTextChunkFromIntended,
}

/// One latency metric: its names and whether every run records it. A new
/// metric is a variant above, a row here and its value in `Sample::value`
/// (or where the recorder takes it); the histograms, the report's
/// summaries, the text rows, merges, thresholds (`<key>_<stat>`) and the
/// figure table follow from this list.
#[derive(Debug)]
pub struct MetricRow {
    pub metric: Metric,
    /// Its name in the JSON report: the histogram's key, and with `_ms` the summary's.
    pub key: &'static str,
    /// Its row in the text report.
    pub label: &'static str,
    /// Its name in a figure's label (`TTFE P95 (ms)`).
    pub short_label: &'static str,
    /// Recorded only on request (`--stamped`, `--after-terminal drain`,
    /// the open model): its summary is left out of the report when it
    /// holds no value, rather than shown as zeros.
    pub optional: bool,
}

/// Every metric, in the order the report shows them (`Metric`'s order).
pub const METRICS: [MetricRow; 12] = [
    MetricRow { metric: Metric::Ttfb, key: "ttfb", label: "TTFB (headers)", short_label: "TTFB", optional: false },
    MetricRow { metric: Metric::Ttfe, key: "ttfe", label: "TTFE (first event)", short_label: "TTFE", optional: false },
    MetricRow {
        metric: Metric::FirstTextChunk,
        key: "first_text_chunk",
        label: "first text_chunk",
        short_label: "first text_chunk",
        optional: false,
    },
    MetricRow { metric: Metric::Duration, key: "duration", label: "duration (from intended)", short_label: "duration", optional: false },
    MetricRow {
        metric: Metric::ServiceTime,
        key: "service_time",
        label: "service time (from sent)",
        short_label: "service time",
        optional: false,
    },
    MetricRow { metric: Metric::EventGap, key: "event_gap", label: "gap between events", short_label: "event gap", optional: false },
    MetricRow {
        metric: Metric::LongestGapPerStream,
        key: "longest_gap_per_stream",
        label: "longest gap per stream",
        short_label: "longest gap",
        optional: false,
    },
    MetricRow {
        metric: Metric::EmitToReceipt,
        key: "emit_to_receipt",
        label: "emit → receipt (stamped)",
        short_label: "emit → receipt",
        optional: true,
    },
    MetricRow {
        metric: Metric::StreamTail,
        key: "stream_tail",
        label: "stream tail (terminal → end)",
        short_label: "stream tail",
        optional: true,
    },
    MetricRow {
        metric: Metric::TtfbFromIntended,
        key: "ttfb_from_intended",
        label: "TTFB from intended",
        short_label: "TTFB from intended",
        optional: true,
    },
    MetricRow {
        metric: Metric::TtfeFromIntended,
        key: "ttfe_from_intended",
        label: "TTFE from intended",
        short_label: "TTFE from intended",
        optional: true,
    },
    MetricRow {
        metric: Metric::FirstTextChunkFromIntended,
        key: "first_text_chunk_from_intended",
        label: "first text_chunk from intended",
        short_label: "first text_chunk from intended",
        optional: true,
    },
];

impl Metric {
    pub const COUNT: usize = METRICS.len();
    /// Every metric, in the order the report shows them.
    pub const ALL: [Metric; Metric::COUNT] = {
        let mut all = [Metric::Ttfb; Metric::COUNT];
        let mut i = 0;
        while i < Metric::COUNT {
            all[i] = METRICS[i].metric;
            i += 1;
        }
        all
    };

    /// Its row of `METRICS`.
    pub const fn row(self) -> &'static MetricRow {
        &METRICS[self as usize]
    }

    /// Its name in the JSON report: the histogram's key, and with `_ms` the summary's.
    pub const fn key(self) -> &'static str {
        self.row().key
    }

    /// The row's label in the text report.
    pub const fn label(self) -> &'static str {
        self.row().label
    }

    /// Its name in a figure's label.
    pub const fn short_label(self) -> &'static str {
        self.row().short_label
    }

    /// Recorded only on request: left out of the report when it holds no value.
    pub const fn optional(self) -> bool {
        self.row().optional
    }

    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }
}

/// One request, as the driver saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the schedule meant to send it (= `sent` in the closed model).
    pub intended: Instant,
    /// Just before the request was written.
    pub sent: Instant,
    pub done: Instant,
    /// Response headers, from `sent`.
    pub ttfb: Option<Duration>,
    /// The first complete data event, from `sent`.
    pub ttfe: Option<Duration>,
    /// The first `text_chunk`, from `sent`.
    pub first_text: Option<Duration>,
    pub n_events: u64,
    pub n_bytes: u64,
    /// The longest silence between two events of this stream.
    pub max_gap: Option<Duration>,
    /// When the stream's terminal event came: the request ends there.
    pub terminal: Option<Instant>,
    /// Terminal event → end of body, with `--after-terminal drain`.
    pub stream_tail: Option<Duration>,
    /// Sent on an open schedule: the first-byte figures count from
    /// `intended` too.
    pub open_model: bool,
    /// The app it went to (its index in the run's apps).
    pub app: u16,
    pub outcome: Result<(), ErrorClass>,
}

impl Sample {
    /// A request just sent: nothing received yet.
    pub fn new(intended: Instant, sent: Instant, outcome: Result<(), ErrorClass>) -> Self {
        Sample {
            intended,
            sent,
            done: sent,
            ttfb: None,
            ttfe: None,
            first_text: None,
            n_events: 0,
            n_bytes: 0,
            max_gap: None,
            terminal: None,
            stream_tail: None,
            open_model: false,
            app: 0,
            outcome,
        }
    }

    /// `since_sent`, counted from the intended send time instead, in the open model.
    fn counted_from_intended(&self, since_sent: Option<Duration>) -> Option<Duration> {
        self.open_model.then(|| since_sent.map(|d| d + (self.sent - self.intended)))?
    }

    /// This request's value of `metric`; `None` for the metrics recorded
    /// per event (`EventGap`, `EmitToReceipt`) and for what it never saw.
    pub fn value(&self, metric: Metric) -> Option<Duration> {
        match metric {
            Metric::Ttfb => self.ttfb,
            Metric::Ttfe => self.ttfe,
            Metric::FirstTextChunk => self.first_text,
            Metric::Duration => Some(self.done - self.intended),
            Metric::ServiceTime => Some(self.done - self.sent),
            Metric::LongestGapPerStream => self.max_gap,
            Metric::StreamTail => self.stream_tail,
            Metric::TtfbFromIntended => self.counted_from_intended(self.ttfb),
            Metric::TtfeFromIntended => self.counted_from_intended(self.ttfe),
            Metric::FirstTextChunkFromIntended => self.counted_from_intended(self.first_text),
            Metric::EventGap | Metric::EmitToReceipt => None,
        }
    }
}

/// A worker's metrics; merge them for the run's.
pub struct Recorder {
    measure_start: Instant,
    /// The load's start (`warming_from`): the warm-up's seconds count from it.
    run_start: Instant,
    pub n_sent: u64,
    /// Requests intended before the measured phase: counted, not in figures.
    pub n_warmup: u64,
    pub n_ok: u64,
    pub errors: BTreeMap<ErrorClass, u64>,
    /// One histogram per metric, indexed by `Metric as usize`.
    histograms: [Histogram<u64>; Metric::COUNT],
    pub n_events: u64,
    /// Events of every request, warm-up included (for CPU per event).
    pub n_events_all: u64,
    pub n_bytes: u64,
    /// Per second of the measured phase.
    pub events_per_s: Vec<u64>,
    pub ok_per_s: Vec<u64>,
    pub errors_per_s: Vec<u64>,
    /// Per second of the warm-up, from the load's start: events received
    /// and requests finished before the measured phase (none are in figures).
    pub warmup_events_per_s: Vec<u64>,
    pub warmup_ok_per_s: Vec<u64>,
    pub warmup_errors_per_s: Vec<u64>,
    /// Per app, when a run has more than one (empty otherwise).
    pub apps: Vec<AppTally>,
}

/// One app's share of a run's measured requests.
pub struct AppTally {
    pub n_ok: u64,
    pub n_errors: u64,
    pub duration: Histogram<u64>,
    pub ttfe: Histogram<u64>,
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Recorder {
    pub fn new(measure_start: Instant) -> Self {
        Self::with_apps(measure_start, 1)
    }

    /// A recorder that also tallies each of `n_apps` apps, if more than one.
    pub fn with_apps(measure_start: Instant, n_apps: usize) -> Self {
        let apps = if n_apps > 1 {
            (0..n_apps).map(|_| AppTally { n_ok: 0, n_errors: 0, duration: new_histogram(), ttfe: new_histogram() }).collect()
        } else {
            Vec::new()
        };
        Self {
            measure_start,
            run_start: measure_start,
            n_sent: 0,
            n_warmup: 0,
            n_ok: 0,
            errors: BTreeMap::new(),
            histograms: std::array::from_fn(|_| new_histogram()),
            n_events: 0,
            n_events_all: 0,
            n_bytes: 0,
            events_per_s: Vec::new(),
            ok_per_s: Vec::new(),
            errors_per_s: Vec::new(),
            warmup_events_per_s: Vec::new(),
            warmup_ok_per_s: Vec::new(),
            warmup_errors_per_s: Vec::new(),
            apps,
        }
    }

    /// The load started at `start`: the warm-up's seconds are kept from it.
    pub fn warming_from(mut self, start: Instant) -> Self {
        self.run_start = start.min(self.measure_start);
        self
    }

    /// The histogram of `metric`.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric as usize]
    }

    /// The measured-phase second `at` falls in, if it is in that phase.
    fn second(&self, at: Instant) -> Option<usize> {
        at.checked_duration_since(self.measure_start).map(|d| d.as_secs() as usize)
    }

    /// The warm-up second `at` falls in, if it is in the warm-up.
    fn warmup_second(&self, at: Instant) -> Option<usize> {
        (at < self.measure_start).then(|| at.checked_duration_since(self.run_start).map(|d| d.as_secs() as usize))?
    }

    /// Counts `n` events received at `at` (throughput is by receipt time).
    pub fn events_at(&mut self, at: Instant, n: u64) {
        if let Some(s) = self.second(at) {
            bump(&mut self.events_per_s, s, n);
        } else if let Some(s) = self.warmup_second(at) {
            bump(&mut self.warmup_events_per_s, s, n);
        }
    }

    /// Records one stamped chunk's emit → receipt, in ns (kept in µs).
    pub fn emit_lag(&mut self, ns: u64, intended: Instant) {
        if intended >= self.measure_start {
            self.histograms[Metric::EmitToReceipt as usize].saturating_record((ns / 1000).max(1));
        }
    }

    /// Records one gap between two events.
    pub fn gap(&mut self, gap: Duration, intended: Instant) {
        if intended >= self.measure_start {
            self.histograms[Metric::EventGap as usize].saturating_record(us(gap));
        }
    }

    pub fn record(&mut self, sample: &Sample) {
        self.n_sent += 1;
        self.n_events_all += sample.n_events;
        if sample.intended < self.measure_start {
            self.n_warmup += 1;
            if let Some(s) = self.warmup_second(sample.done) {
                bump(if sample.outcome.is_ok() { &mut self.warmup_ok_per_s } else { &mut self.warmup_errors_per_s }, s, 1);
            }
            return;
        }
        match sample.outcome {
            Ok(()) => {
                self.n_ok += 1;
                if let Some(s) = self.second(sample.done) {
                    bump(&mut self.ok_per_s, s, 1);
                }
            }
            Err(class) => {
                *self.errors.entry(class).or_default() += 1;
                if let Some(s) = self.second(sample.done) {
                    bump(&mut self.errors_per_s, s, 1);
                }
            }
        }
        // Failed requests stay in the latency sample: nothing is dropped.
        for metric in Metric::ALL {
            if let Some(v) = sample.value(metric) {
                self.histograms[metric as usize].saturating_record(us(v));
            }
        }
        if let Some(app) = self.apps.get_mut(usize::from(sample.app)) {
            if sample.outcome.is_ok() {
                app.n_ok += 1;
            } else {
                app.n_errors += 1;
            }
            if let Some(v) = sample.value(Metric::Duration) {
                app.duration.saturating_record(us(v));
            }
            if let Some(v) = sample.value(Metric::Ttfe) {
                app.ttfe.saturating_record(us(v));
            }
        }
        self.n_events += sample.n_events;
        self.n_bytes += sample.n_bytes;
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.n_sent += other.n_sent;
        self.n_warmup += other.n_warmup;
        self.n_ok += other.n_ok;
        for (class, n) in &other.errors {
            *self.errors.entry(*class).or_default() += n;
        }
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            mine.add(theirs).expect("histograms share bounds");
        }
        for (mine, theirs) in self.apps.iter_mut().zip(&other.apps) {
            mine.n_ok += theirs.n_ok;
            mine.n_errors += theirs.n_errors;
            mine.duration.add(&theirs.duration).expect("histograms share bounds");
            mine.ttfe.add(&theirs.ttfe).expect("histograms share bounds");
        }
        self.n_events += other.n_events;
        self.n_events_all += other.n_events_all;
        self.n_bytes += other.n_bytes;
        for (mine, theirs) in [
            (&mut self.events_per_s, &other.events_per_s),
            (&mut self.ok_per_s, &other.ok_per_s),
            (&mut self.errors_per_s, &other.errors_per_s),
            (&mut self.warmup_events_per_s, &other.warmup_events_per_s),
            (&mut self.warmup_ok_per_s, &other.warmup_ok_per_s),
            (&mut self.warmup_errors_per_s, &other.warmup_errors_per_s),
        ] {
            for (s, n) in theirs.iter().enumerate() {
                bump(mine, s, *n);
            }
        }
    }

    pub fn n_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn bump(v: &mut Vec<u64>, i: usize, n: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += n;
}

/// In-flight requests: +1 just before a request is written, −1 when it ends.
/// Keeps the peak and the time-weighted mean over the measured phase.
pub struct Gauge {
    state: Mutex<GaugeState>,
}

struct GaugeState {
    value: i64,
    peak: i64,
    measure_start: Instant,
    /// Time after this is outside the measured phase.
    measure_end: Instant,
    last: Instant,
    /// ∫ value dt over the measured phase, in value·seconds.
    integral: f64,
    /// The same per second of the measured phase, and each second's peak:
    /// what `flowbench merge` adds up across shards.
    per_second: Vec<f64>,
    peak_per_second: Vec<i64>,
}

/// What a gauge measured over the measured phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GaugeFigures {
    pub peak: i64,
    /// Time-weighted mean.
    pub mean: f64,
    /// The time-weighted mean of each second (the last one over its part).
    pub mean_per_second: Vec<f64>,
    pub peak_per_second: Vec<i64>,
}

/// Decrements the gauge when the request ends, however it ends.
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.change(-1);
    }
}

impl Gauge {
    /// A gauge whose mean covers `[measure_start, measure_end]`.
    pub fn new(measure_start: Instant, measure_end: Instant) -> Self {
        Self {
            state: Mutex::new(GaugeState {
                value: 0,
                peak: 0,
                measure_start,
                measure_end,
                last: measure_start,
                integral: 0.0,
                per_second: Vec::new(),
                peak_per_second: Vec::new(),
            }),
        }
    }

    /// Ends the measured phase early (the run was interrupted at `at`).
    pub fn close_at(&self, at: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.advance(at);
        s.measure_end = s.measure_end.min(at);
    }

    pub fn enter(&self) -> GaugeGuard<'_> {
        self.change(1);
        GaugeGuard(self)
    }

    fn change(&self, delta: i64) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.advance(now);
        s.value += delta;
        s.peak = s.peak.max(s.value);
        // A rise is a peak; a fall was counted at the value before it.
        if delta > 0
            && let Some(second) = s.second_of(now)
        {
            let value = s.value;
            let slot = slot(&mut s.peak_per_second, second);
            *slot = (*slot).max(value);
        }
    }

    /// The figures over the measured phase, and that phase's end.
    pub fn finish(&self) -> (GaugeFigures, Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let end = s.measure_end;
        s.advance(end);
        let span = end.saturating_duration_since(s.measure_start).as_secs_f64();
        let n = span.ceil() as usize;
        let mut mean_per_second = s.per_second.clone();
        mean_per_second.resize(n, 0.0);
        if let Some(last) = mean_per_second.last_mut() {
            // The last second may be a part of one.
            let part = span - (n - 1) as f64;
            if part > 0.0 {
                *last /= part;
            }
        }
        let mut peak_per_second = s.peak_per_second.clone();
        peak_per_second.resize(n, 0);
        let mean = if span > 0.0 { s.integral / span } else { 0.0 };
        (GaugeFigures { peak: s.peak, mean, mean_per_second, peak_per_second }, end)
    }
}

fn slot<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl GaugeState {
    /// The measured phase's second `at` falls in.
    fn second_of(&self, at: Instant) -> Option<usize> {
        (at < self.measure_end).then(|| at.checked_duration_since(self.measure_start).map(|d| d.as_secs() as usize))?
    }

    fn advance(&mut self, now: Instant) {
        let mut from = self.last.max(self.measure_start);
        let to = now.min(self.measure_end);
        if to > from {
            self.integral += self.value as f64 * (to - from).as_secs_f64();
            // The same, second by second; each second touched held `value`.
            while from < to {
                let second = (from - self.measure_start).as_secs() as usize;
                let second_end = self.measure_start + Duration::from_secs(second as u64 + 1);
                let until = to.min(second_end);
                let value = self.value;
                *slot(&mut self.per_second, second) += value as f64 * (until - from).as_secs_f64();
                let peak = slot(&mut self.peak_per_second, second);
                *peak = (*peak).max(value);
                from = until;
            }
        }
        if now > self.last {
            self.last = now;
        }
    }
}

/// A latency distribution in ms, as the report shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: u64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            n: h.len(),
            avg: h.mean() / 1000.0,
            min: ms(h.min()),
            max: ms(h.max()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
        }
    }
}

/// A histogram as base64 of its V2+DEFLATE encoding (HdrHistogram's interchange format).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new().serialize(h, &mut bytes).expect("serialize to Vec");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    Ok(hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `METRICS` is in `Metric`'s order: a metric's row is `METRICS[metric as usize]`.
    #[test]
    fn the_metric_table_is_in_the_enums_order() {
        for (i, row) in METRICS.iter().enumerate() {
            assert_eq!(row.metric as usize, i, "{:?}", row.metric);
            assert_eq!(Metric::from_key(row.key), Some(row.metric));
        }
    }

    fn sample(at: Instant, ms: u64, outcome: Result<(), ErrorClass>) -> Sample {
        Sample {
            intended: at,
            sent: at,
            done: at + Duration::from_millis(ms),
            ttfb: Some(Duration::from_millis(1)),
            ttfe: Some(Duration::from_millis(2)),
            first_text: None,
            n_events: 3,
            n_bytes: 100,
            max_gap: None,
            terminal: None,
            stream_tail: None,
            open_model: false,
            app: 0,
            outcome,
        }
    }

    #[tokio::test(start_paused = true)]
    async fn every_sample_is_counted_once_and_warmup_is_excluded() {
        let t0 = Instant::now();
        let measure = t0 + Duration::from_secs(1);
        let mut a = Recorder::new(measure);
        let mut b = Recorder::new(measure);
        a.record(&sample(t0, 5, Ok(())));
        a.record(&sample(measure, 5, Ok(())));
        b.record(&sample(measure + Duration::from_millis(1500), 7, Err(ErrorClass::Http5xx)));
        a.merge(&b);
        assert_eq!((a.n_sent, a.n_warmup, a.n_ok, a.n_errors()), (3, 1, 1, 1));
        assert_eq!(a.histogram(Metric::Duration).len(), 2);
        assert_eq!(a.ok_per_s, [1]);
        assert_eq!(a.errors_per_s, [0, 1]);
        assert!(a.warmup_ok_per_s.is_empty(), "no warm-up seconds kept unless asked");
    }

    #[tokio::test(start_paused = true)]
    async fn the_warmup_is_kept_second_by_second_apart_from_the_figures() {
        let t0 = Instant::now();
        let measure = t0 + Duration::from_millis(2500);
        let ms = Duration::from_millis;
        let mut a = Recorder::new(measure).warming_from(t0);
        let mut b = Recorder::new(measure).warming_from(t0);
        a.record(&sample(t0, 5, Ok(())));
        a.events_at(t0 + ms(5), 3);
        b.record(&sample(t0 + ms(1200), 5, Err(ErrorClass::Timeout)));
        b.record(&sample(t0 + ms(2000), 5, Ok(())));
        b.events_at(t0 + ms(2005), 2);
        // Sent in the warm-up, finished in the measured phase: in neither series.
        a.record(&sample(t0 + ms(2400), 200, Ok(())));
        a.events_at(measure + ms(100), 4);
        a.merge(&b);
        assert_eq!((a.n_warmup, a.n_ok), (4, 0));
        assert_eq!(a.warmup_ok_per_s, [1, 0, 1]);
        assert_eq!(a.warmup_errors_per_s, [0, 1]);
        assert_eq!(a.warmup_events_per_s, [3, 0, 2]);
        assert_eq!(a.events_per_s, [4]);
    }

    #[tokio::test(start_paused = true)]
    async fn gauge_peak_and_time_weighted_mean() {
        let start = Instant::now();
        let gauge = Gauge::new(start, start + Duration::from_secs(4));
        let one = gauge.enter();
        tokio::time::advance(Duration::from_secs(1)).await;
        let two = gauge.enter();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(one);
        drop(two);
        tokio::time::advance(Duration::from_secs(2)).await;
        // A request still open after the phase does not count.
        let _late = gauge.enter();
        tokio::time::advance(Duration::from_secs(2)).await;
        let (g, _) = gauge.finish();
        assert_eq!(g.peak, 2);
        // (1·1 s + 2·1 s + 0·2 s) / 4 s
        assert!((g.mean - 0.75).abs() < 1e-9, "{}", g.mean);
        assert_eq!(g.peak_per_second, [1, 2, 0, 0]);
        let means: Vec<f64> = g.mean_per_second.iter().map(|m| (m * 1e9).round() / 1e9).collect();
        assert_eq!(means, [1.0, 2.0, 0.0, 0.0]);
    }

    #[test]
    fn histograms_round_trip() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }
}
