//! Reports from a fixed set of samples: the same figures on every machine,
//! for the renderings' snapshots, the gate's test of what it reads, and the
//! README's check of the report's shape.

use super::{LoadParams, Report, RunResult, SCHEMA, SCHEMA_VERSION, ScenarioReport, TargetInfo};
use crate::load::driver::Mode;
use crate::load::health::{HealthReport, Machine, Verdict};
use crate::load::metrics::{ErrorClass, Recorder, Sample, Summary};
use crate::load::schedule::LoadModel;
use std::time::Duration;

/// A scenario report from a fixed set of samples: the same figures on
/// every machine, for the renderings' snapshots.
pub fn sample_scenario(name: &str) -> ScenarioReport {
    let t0 = tokio::time::Instant::now();
    let measure_start = t0 + Duration::from_secs(1);
    let mut recorder = Recorder::new(measure_start);
    let ms = Duration::from_millis;
    for i in 0..40u64 {
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
        recorder.events_at(sample.done, sample.n_events);
        recorder.record(&sample);
    }
    let result = RunResult {
        recorder,
        measure_start,
        measured: Duration::from_secs(3),
        peak_connections: 4,
        avg_connections: 2.5,
        interrupted: false,
    };
    let health = HealthReport {
        verdict: Verdict::Valid,
        reasons: Vec::new(),
        scheduler_lag_ms: Summary { n: 400, avg: 0.05, min: 0.01, max: 0.9, p50: 0.04, p90: 0.08, p95: 0.1, p99: 0.3, p999: 0.9 },
        driver_cpu_cores: 0.12,
        driver_threads: 1,
        target_cpu_cores: Some(0.5),
        target_cpu_of: Some("pid 4242 and descendants: 1 process".to_owned()),
        other_cpu_cores: 0.01,
        steal_cores: 0.0,
        machine_cores: 2,
        span_s: 4.0,
    };
    let load = LoadParams {
        model: LoadModel::Closed { users: 4, spawn_rate: 2.0 },
        warmup_s: 1.0,
        duration_s: 3.0,
        measured_s: 0.0,
        window_s: 1,
        timeout_s: 60.0,
        seed: 1,
    };
    let mode = if name == "llm" { Mode::Streaming } else { Mode::Blocking };
    ScenarioReport::build(name, mode, load, &result, health)
}

/// A whole report of both scenarios, on a machine described the same everywhere.
pub fn sample_report() -> Report {
    Report {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        flowbench_version: "0.1.0".to_owned(),
        started_at_unix: 1_764_000_000,
        interrupted: false,
        target: TargetInfo { url: "http://127.0.0.1:5001".to_owned(), embedded: true, mock_script: None },
        machine: Machine { cpu_model: "Test CPU".to_owned(), cores: 2, kernel: "6.0.0".to_owned(), memory_gib: 4.0 },
        scenarios: vec![sample_scenario("empty"), sample_scenario("llm")],
        thresholds: Vec::new(),
    }
}
