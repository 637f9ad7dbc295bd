//! Reports from a fixed set of samples: the same figures on every machine,
//! for the renderings' snapshots, the gate's test of what it reads, and the
//! README's check of the report's shape.

use super::{LoadParams, Report, RunResult, SCHEMA, SCHEMA_VERSION, ScenarioReport, Shard, TargetInfo};
use crate::load::driver::Mode;
use crate::load::health::{HealthReport, HealthSecond, HealthVerdict, Machine};
use crate::load::integrity::{EventKind, Labels, Trace, TracedEvent};
use crate::load::metrics::{ErrorClass, Sample, Summary};
use crate::load::recorder::Recorder;
use crate::load::schedule::LoadModel;
use schema::integrity::Violation;
use std::time::Duration;

/// A scenario report from a fixed set of samples: the same figures on
/// every machine, for the renderings' snapshots.
pub fn sample_scenario(name: &str) -> ScenarioReport {
    let connections = Conns { peak: 4, avg: 2.5, per_s: vec![2.0, 3.0, 2.5], peak_per_s: vec![3, 4, 4] };
    scenario_of(name, |_| true, connections, LoadModel::Closed { users: 4, spawn_rate: 2.0 }, false)
}

/// What the connection gauge saw, given rather than measured.
struct Conns {
    peak: i64,
    avg: f64,
    per_s: Vec<f64>,
    peak_per_s: Vec<i64>,
}

/// The scenario report of the samples `keep` takes (by their number);
/// with `every_metric`, its streams record the optional metrics too (sent
/// on an open schedule, stamped chunks, tails drained).
fn scenario_of(name: &str, keep: impl Fn(u64) -> bool, conns: Conns, model: LoadModel, every_metric: bool) -> ScenarioReport {
    let t0 = tokio::time::Instant::now();
    let measure_start = t0 + Duration::from_secs(1);
    let mut recorder = Recorder::new(measure_start).warming_from(t0);
    let ms = Duration::from_millis;
    for i in (0..40u64).filter(|i| keep(*i)) {
        let intended = t0 + ms(100 * i);
        let sent = intended + ms(i % 3);
        let mut sample = Sample::new(intended, sent, if i % 13 == 12 { Err(ErrorClass::Http5xx) } else { Ok(()) });
        sample.done = sent + ms(20 + 3 * i);
        sample.ttfb = Some(ms(2 + i % 5));
        // A blocking answer has no events.
        sample.ttfe = (name == "llm").then(|| ms(3 + i % 7));
        sample.first_text = (name == "llm").then(|| ms(5 + i % 11));
        sample.n_events = if name == "llm" { 10 } else { 0 };
        sample.n_bytes = 500;
        sample.max_gap = (name == "llm").then(|| ms(2 + i % 4));
        for _ in 0..sample.n_events {
            recorder.gap(ms(1 + i % 3), intended);
        }
        if every_metric && name == "llm" {
            sample.open_model = true;
            sample.stream_tail = Some(ms(1 + i % 2));
            recorder.emit_lag(50_000 + 1_000 * i, intended);
        }
        if name == "llm" && sample.outcome.is_ok() {
            sample.checked = true;
            // Two streams broke the grammar, one of them two ways.
            sample.violations = match i {
                20 => Violation::MissingStart.bit(),
                30 => Violation::MissingStart.bit() | Violation::TextMismatch.bit(),
                _ => 0,
            };
            if sample.violations != 0 {
                sample.outcome = Err(ErrorClass::Integrity);
            } else if recorder.measures(&sample) {
                let (trace, labels) = sample_trace(i);
                sample.terminal = Some(sample.done);
                recorder.timeline.record(&trace, &labels, sample.done - intended, &[], &[]);
            }
        }
        recorder.events_at(sample.done, sample.n_events);
        recorder.record(&sample);
    }
    let result = RunResult {
        recorder,
        measure_start,
        measured: Duration::from_secs(3),
        peak_connections: conns.peak,
        avg_connections: conns.avg,
        connections_per_s: conns.per_s,
        peak_connections_per_s: conns.peak_per_s,
        interrupted: false,
    };
    let health = HealthReport {
        verdict: HealthVerdict::Valid,
        reasons: Vec::new(),
        scheduler_lag_ms: Summary { n: 400, avg: 0.05, min: 0.01, max: 0.9, p50: 0.04, p90: 0.08, p95: 0.1, p99: 0.3, p999: 0.9 },
        driver_cpu_cores: 0.12,
        driver_threads: 1,
        target_cpu_cores: Some(0.5),
        target_cpu_of: Some("pid 4242 and descendants: 1 process".to_owned()),
        mock_cpu_cores: Some(0.2),
        other_cpu_cores: 0.01,
        steal_cores: 0.0,
        machine_cores: 2,
        span_s: 4.0,
        per_second: (1..=4)
            .map(|t| HealthSecond {
                t_s: f64::from(t),
                driver: 0.1 + 0.01 * f64::from(t),
                target: Some(0.5),
                others: 0.01,
                steal: if t == 2 { 0.05 } else { 0.0 },
            })
            .collect(),
        lag_max_ms_per_second: vec![0.4, 0.6, 12.0, 0.5],
    };
    let load = LoadParams { model, warmup_s: 1.0, duration_s: 3.0, measured_s: 0.0, window_s: 1, timeout_s: 60.0, seed: 1 };
    let mode = if name == "llm" { Mode::Streaming } else { Mode::Blocking };
    let mut report = super::build_scenario(name, mode, load, &result, health, &[]);
    report.measure_start_unix_ms = Some(1_764_000_001_000);
    report
}

/// Stream `i`'s events: Start, an LLM node streaming three chunks, End.
fn sample_trace(i: u64) -> (Trace, Labels) {
    let mut labels = Labels::default();
    let mut trace = Trace::default();
    let ms = |v: u64| Duration::from_millis(v);
    let start = labels.intern("Start", "start");
    let llm = labels.intern("LLM", "llm");
    let end = labels.intern("End", "end");
    let done = 20 + 3 * i;
    let points = [
        (1, EventKind::WorkflowStarted, None),
        (1, EventKind::NodeStarted, start),
        (1, EventKind::NodeFinished, start),
        (2, EventKind::NodeStarted, llm),
        (3 + i % 7, EventKind::TextChunk, None),
        (done / 2, EventKind::TextChunk, None),
        (done - 2, EventKind::TextChunk, None),
        (done - 1, EventKind::NodeFinished, llm),
        (done - 1, EventKind::NodeStarted, end),
        (done, EventKind::NodeFinished, end),
        (done, EventKind::WorkflowFinished, None),
    ];
    for (at, kind, label) in points {
        trace.points.push(TracedEvent { at: ms(at), kind, label });
    }
    trace.node_times = vec![(start, ms(0)), (llm, ms(done - 3)), (end, ms(1))];
    (trace, labels)
}

/// The sample report's load as `n` shards' reports: shard k (from 0) ran
/// the samples whose number is k mod n, and a share of the connections
/// that adds up to the whole's.
pub fn sample_shards(n: u32) -> Vec<Report> {
    shards(n, false)
}

/// As `sample_shards`, with every latency metric recorded on `llm`.
pub fn sample_shards_of_every_metric(n: u32) -> Vec<Report> {
    shards(n, true)
}

fn shards(n: u32, every_metric: bool) -> Vec<Report> {
    (0..n)
        .map(|k| {
            let peak_per_s: Vec<i64> = [3i64, 4, 4].iter().map(|p| p / i64::from(n) + i64::from(i64::from(k) < p % i64::from(n))).collect();
            let conns = || Conns {
                peak: peak_per_s.iter().copied().max().unwrap_or(0),
                avg: 2.5 / f64::from(n),
                per_s: [2.0, 3.0, 2.5].iter().map(|v| v / f64::from(n)).collect(),
                peak_per_s: peak_per_s.clone(),
            };
            let keep = move |i: u64| i % u64::from(n) == u64::from(k);
            let model = LoadModel::Closed { users: 4, spawn_rate: 2.0 };
            let mut report = sample_report();
            report.scenarios = vec![
                scenario_of("empty", keep, conns(), model.clone(), every_metric),
                scenario_of("llm", keep, conns(), model, every_metric),
            ];
            report.shard = Some(Shard { index: k + 1, count: n });
            report
        })
        .collect()
}

/// A whole report of both scenarios, on a machine described the same everywhere.
pub fn sample_report() -> Report {
    Report {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        flowbench_version: "0.1.0".to_owned(),
        started_at_unix: 1_764_000_000,
        label: super::RunLabel { name: Some("sample".to_owned()), commit: Some("0123456789ab".to_owned()) },
        interrupted: false,
        target: TargetInfo { url: "http://127.0.0.1:5001".to_owned(), embedded: true, mock_script: None },
        machine: Machine { cpu_model: "Test CPU".to_owned(), cores: 2, kernel: "6.0.0".to_owned(), memory_gib: 4.0 },
        scenarios: vec![sample_scenario("empty"), sample_scenario("llm")],
        thresholds: Vec::new(),
        max_error_rate: None,
        request_slo: None,
        shard: None,
        shards: Vec::new(),
    }
}
