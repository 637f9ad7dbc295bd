//! The report: its types are the `schema` crate's (re-exported here, so a
//! report reads the same in flowbench, xtask and any tool that links
//! `schema`); here it is built from the driver's result in one place
//! (`build_scenario`, `app_reports`), merged across shards (`merge`),
//! compared (`compare`), judged (`thresholds`) and drawn (`html`).

pub mod compare;
pub mod html;
pub mod merge;
#[cfg(test)]
mod rendering_tests;
pub mod sample;
pub mod thresholds;

pub use schema::integrity::{Integrity, Timeline, Violation};
pub use schema::report::*;
pub use schema::{ab, bmf, figures, integrity, soak, text};

use crate::load::driver::{App, Mode, RunResult};
use crate::load::health::HealthReport;
use crate::load::metrics::{Metric, encode_histogram, summary_of};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// A scenario's report from the driver's result, the one place a report
/// is built (`run`, `ab`, `soak`; `merge` adds shards' histograms and
/// derives the same figures): every figure, the summaries and histograms
/// of every metric, the per-second series, each app's share when `apps`
/// are several, and when the measured phase began.
pub fn build_scenario(name: &str, mode: Mode, load: LoadParams, result: &RunResult, health: HealthReport, apps: &[App]) -> ScenarioReport {
    let r = &result.recorder;
    let measured_s = result.measured.as_secs_f64();
    // Seconds past the measured phase (streams finishing late) are cut.
    let n_seconds = measured_s.ceil() as usize;
    let cut = |v: &Vec<u64>| -> Vec<u64> {
        let mut v = v.clone();
        v.resize(n_seconds, 0);
        v
    };
    let n_warmup = load.warmup_s.ceil() as usize;
    let warmup = |v: &Vec<u64>| -> Vec<u64> {
        let mut v = v.clone();
        v.resize(n_warmup, 0);
        v
    };
    let per_second = PerSecond {
        events: cut(&r.events_per_s),
        ok: cut(&r.ok_per_s),
        errors: cut(&r.errors_per_s),
        connections: result.connections_per_s.clone(),
        peak_connections: result.peak_connections_per_s.clone(),
        warmup: WarmupSeconds {
            events: warmup(&r.warmup_events_per_s),
            ok: warmup(&r.warmup_ok_per_s),
            errors: warmup(&r.warmup_errors_per_s),
        },
    };
    let derived = derive(|m| r.histogram(m), &per_second, &load, measured_s, r.n_events, r.n_ok + r.n_errors());
    ScenarioReport {
        name: name.to_owned(),
        mode,
        load: LoadParams { measured_s, ..load },
        interrupted: result.interrupted,
        counts: Counts {
            sent: r.n_sent,
            warmup: r.n_warmup,
            ok: r.n_ok,
            errors: r.n_errors(),
            errors_by_class: r.errors.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            backoff_s: r.backoff.as_secs_f64(),
            good: r.n_good,
        },
        event_throughput: derived.event_throughput,
        qps: derived.qps,
        avg_duration_ms: derived.avg_duration_ms,
        connections: Connections { max_concurrent: result.peak_connections, avg_active: result.avg_connections },
        latency: derived.latency,
        events_per_request: derived.events_per_request,
        target_cpu_us_per_request: health.target_cpu_cores.filter(|_| r.n_sent > 0).map(|c| c * health.span_s / r.n_sent as f64 * 1e6),
        target_cpu_us_per_event: health
            .target_cpu_cores
            .filter(|_| r.n_events_all > 0)
            .map(|c| c * health.span_s / r.n_events_all as f64 * 1e6),
        bytes_received: r.n_bytes,
        per_second,
        health,
        histograms: derived.histograms,
        apps: app_reports(apps, r),
        integrity: integrity_of(r),
        timeline: r.timeline.finish(r.histogram(Metric::Duration).value_at_quantile(0.5) as f64 / 1000.0),
        slowest: r
            .slowest
            .iter()
            .map(|slow| schema::report::SlowRequest {
                trace_id: format!("{:016x}{:016x}", slow.trace_id[0], slow.trace_id[1]),
                duration_ms: slow.took.as_secs_f64() * 1e3,
                ttfe_ms: slow.ttfe.map(|t| t.as_secs_f64() * 1e3),
                outcome: slow.outcome.err().map_or("ok", |class| class.as_str()).to_owned(),
                app: (apps.len() > 1).then(|| apps.get(usize::from(slow.app)).map(|a| a.name.clone())).flatten(),
            })
            .collect(),
        measure_start_unix_ms: Some(unix_ms_of(result.measure_start)),
        scraped: Vec::new(),
        scrape_problems: Vec::new(),
        prometheus: None,
    }
}

/// What the grammar check found; `None` where no stream was checked.
fn integrity_of(r: &crate::load::recorder::Recorder) -> Option<Integrity> {
    (r.n_checked > 0).then(|| Integrity {
        checked: r.n_checked,
        violating: r.n_violating,
        by_class: by_class(&r.violations),
        examples: r.examples.clone(),
    })
}

/// Counts per rule broken, by name, the rules never broken left out.
fn by_class(counts: &[u64]) -> BTreeMap<String, u64> {
    Violation::ALL.iter().zip(counts).filter(|(_, n)| **n > 0).map(|(v, n)| (v.as_str().to_owned(), *n)).collect()
}

/// The figures a scenario's tallies give, derived in this one place for
/// one driver's recorder (`build_scenario`) and for shards' added
/// histograms and series (`merge`).
pub(crate) struct Derived {
    pub(crate) latency: Latency,
    pub(crate) histograms: BTreeMap<String, String>,
    pub(crate) qps: Rates,
    pub(crate) event_throughput: Rates,
    pub(crate) avg_duration_ms: f64,
    pub(crate) events_per_request: f64,
}

/// Every metric's summary (an optional one only when it holds values) and
/// encoded histogram, from `histogram(metric)` over the measured phase;
/// requests and events per second over `measured_s` with their slowest
/// and fastest windows of `load.window_s`; the seed's average duration
/// (the successes' mean service time, or in the open model their mean
/// time from the intended send); events per measured request.
pub(crate) fn derive<'h>(
    histogram: impl Fn(Metric) -> &'h Histogram<u64>,
    per_second: &PerSecond,
    load: &LoadParams,
    measured_s: f64,
    n_events: u64,
    measured_requests: u64,
) -> Derived {
    Derived {
        latency: Latency(
            Metric::ALL
                .into_iter()
                .filter(|m| !(m.optional() && histogram(*m).is_empty()))
                .map(|m| (m, summary_of(histogram(m))))
                .collect(),
        ),
        histograms: Metric::ALL.into_iter().map(|m| (m.key().to_owned(), encode_histogram(histogram(m)))).collect(),
        qps: rates(&per_second.ok, load.window_s, measured_s),
        event_throughput: rates(&per_second.events, load.window_s, measured_s),
        avg_duration_ms: summary_of(histogram(if load.model.is_open() { Metric::Duration } else { Metric::ServiceTime })).avg,
        events_per_request: if measured_requests > 0 { n_events as f64 / measured_requests as f64 } else { 0.0 },
    }
}

/// Each app's tally (none when the run had one app).
fn app_reports(apps: &[App], recorder: &crate::load::recorder::Recorder) -> Vec<AppReport> {
    apps.iter()
        .zip(&recorder.apps)
        .map(|(app, tally)| AppReport {
            name: app.name.clone(),
            mode: app.mode,
            weight: app.weight,
            ok: tally.n_ok,
            errors: tally.n_errors,
            integrity: by_class(&tally.violations),
            duration_ms: summary_of(&tally.duration),
            ttfe_ms: summary_of(&tally.ttfe),
            duration_histogram: Some(encode_histogram(&tally.duration)),
            ttfe_histogram: Some(encode_histogram(&tally.ttfe)),
        })
        .collect()
}

/// An instant of this process's clock, in ms since the Unix epoch.
fn unix_ms_of(at: tokio::time::Instant) -> u64 {
    let now_ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64);
    let now = tokio::time::Instant::now();
    match now.checked_duration_since(at) {
        Some(ago) => now_ms.saturating_sub(ago.as_millis() as u64),
        None => now_ms + (at - now).as_millis() as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::sample::sample_report;
    use super::*;
    use crate::load::schedule::LoadModel;

    /// What the gate and `flowbench report` read survives the JSON round trip.
    #[test]
    fn a_report_reads_back_as_written() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        // serde_json may read a float back one ulp off: compare at 12 digits.
        fn rounded(v: serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Number(n) if n.is_f64() => serde_json::json!(format!("{:.12e}", n.as_f64().unwrap())),
                serde_json::Value::Array(a) => a.into_iter().map(rounded).collect(),
                serde_json::Value::Object(o) => o.into_iter().map(|(k, v)| (k, rounded(v))).collect(),
                other => other,
            }
        }
        assert_eq!(rounded(serde_json::to_value(&back).unwrap()), rounded(serde_json::from_str(&json).unwrap()));
        let llm = &back.scenarios[1];
        assert_eq!(llm.latency(Metric::Ttfe).p99, report.scenarios[1].latency(Metric::Ttfe).p99);
        assert!(llm.latency(Metric::Ttfe).n > 0);
        assert!(json.contains("\"ttfe_ms\":"), "summaries keep their JSON names");
        assert!(!json.contains("emit_to_receipt_ms"), "an optional metric without values is left out");
        assert_eq!(back.scenarios[1].histograms.len(), Metric::COUNT);
        // An open-model run's load flattens beside its own seed: no key twice.
        let mut open = sample_report();
        open.scenarios[0].load.model = LoadModel::Open { rate: 400.0, poisson: true, connections: 16, seed: 7 };
        let back: Report = serde_json::from_slice(&serde_json::to_vec_pretty(&open).unwrap()).unwrap();
        assert_eq!(back.scenarios[0].load.model, open.scenarios[0].load.model);
    }

    /// Every row of `load::metrics::METRICS` reaches each place a latency
    /// is read with nothing else edited: a shard's JSON (`<key>_ms` and its
    /// histogram), a merge of shards (histograms added), the text report
    /// and thresholds (`<key>_<stat>`). A metric added as a row is covered
    /// here as it stands.
    #[test]
    fn every_latency_metric_reaches_json_merge_text_and_thresholds() {
        use crate::load::metrics::METRICS;
        let shards: Vec<(String, Report)> =
            sample::sample_shards_of_every_metric(2).into_iter().enumerate().map(|(i, r)| (format!("shard-{i}.json"), r)).collect();
        let merged = merge::merge(&shards).unwrap();
        let llm = |r: &Report| r.scenarios.iter().find(|s| s.name == "llm").unwrap().clone();
        let text = merged.to_text();
        for row in &METRICS {
            let metric = row.metric;
            let json = serde_json::to_value(llm(&shards[0].1)).unwrap();
            let n = json[format!("{}_ms", row.key)]["n"].as_u64();
            assert!(n.is_some_and(|n| n > 0), "{}: no summary in the JSON", row.key);
            assert!(json["histograms"][row.key].is_string(), "{}: no histogram in the JSON", row.key);
            let parts: u64 = shards.iter().map(|(_, r)| llm(r).latency(metric).n).sum();
            assert_eq!(llm(&merged).latency(metric).n, parts, "{}: the merge adds the shards' histograms", row.key);
            // The stamped chunks' lag has its own line (µs), the rest a row each.
            let shown = if metric == Metric::EmitToReceipt { "Emit → receipt" } else { row.label };
            assert!(text.contains(shown), "{}: not in the text report", row.key);
            let threshold: thresholds::Threshold = format!("llm:{}_p95 < 1h", row.key).parse().unwrap();
            let judged = threshold.judge(&llm(&merged));
            assert_eq!(judged.value, Some(llm(&merged).latency(metric).p95), "{}", row.key);
            assert!(judged.passed, "{}", row.key);
        }
    }

    #[test]
    fn windows_take_whole_seconds_and_avg_the_whole_phase() {
        let r = rates(&[10, 20, 30, 40, 50, 60, 1], 3, 7.0);
        assert_eq!((r.max, r.min), (50.0, 20.0));
        assert!((r.avg - 211.0 / 7.0).abs() < 1e-9);
        let short = rates(&[5, 5], 5, 2.0);
        assert_eq!((short.max, short.avg, short.min), (5.0, 5.0, 5.0));
    }
}
