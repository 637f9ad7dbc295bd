//! The report: first the seed's four tables in the seed's own shape (Event
//! Throughput, TTFE, Connections, Empty Workflow QPS), then what the seed
//! lacks (P99/P99.9, TTFB, first-token time, gaps, errors by class, driver
//! health, load parameters, machine). As text, Markdown, or a versioned JSON
//! document holding every figure and the serialized histograms.

use crate::driver::{Mode, RunResult};
use crate::health::{HealthReport, Machine, Verdict};
use crate::metrics::{Summary, encode_histogram};
use crate::schedule::LoadModel;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The JSON document's schema name; bump `SCHEMA_VERSION` on any breaking change.
pub const SCHEMA: &str = "flowbench.report";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub flowbench_version: String,
    pub started_at_unix: u64,
    pub interrupted: bool,
    pub target: TargetInfo,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioReport>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    pub url: String,
    /// True when flowbench started the mocked stack itself.
    pub embedded: bool,
    pub mock_script: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub mode: Mode,
    pub load: LoadParams,
    pub interrupted: bool,
    pub counts: Counts,
    pub event_throughput: Rates,
    pub qps: Rates,
    pub avg_duration_ms: f64,
    pub connections: Connections,
    pub ttfe_ms: Summary,
    pub ttfb_ms: Summary,
    pub first_text_chunk_ms: Summary,
    /// From the intended send time (coordinated omission corrected).
    pub duration_ms: Summary,
    /// From the actual send time.
    pub service_time_ms: Summary,
    pub event_gap_ms: Summary,
    pub longest_gap_per_stream_ms: Summary,
    /// With `--stamped`: each text chunk's mock emit → driver receipt. The
    /// same figure from the direct scenario is the yardstick; the
    /// difference is what the relay adds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emit_to_receipt_ms: Option<Summary>,
    pub events_per_request: f64,
    /// The target's CPU per request and per event, in µs, over the whole
    /// scenario (warm-up included); when the target is a local process.
    pub target_cpu_us_per_request: Option<f64>,
    pub target_cpu_us_per_event: Option<f64>,
    pub bytes_received: u64,
    pub per_second: PerSecond,
    pub health: HealthReport,
    /// HdrHistogram V2+DEFLATE, base64, values in µs.
    pub histograms: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadParams {
    #[serde(flatten)]
    pub model: LoadModel,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub measured_s: f64,
    pub window_s: u64,
    pub timeout_s: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// Every request sent; = warmup + ok + errors.
    pub sent: u64,
    pub warmup: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
}

/// Max and Min over the measured phase's windows; Avg over the whole phase.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rates {
    pub max: f64,
    pub avg: f64,
    pub min: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Connections {
    pub max_concurrent: i64,
    pub avg_active: f64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PerSecond {
    pub events: Vec<u64>,
    pub ok: Vec<u64>,
    pub errors: Vec<u64>,
}

impl ScenarioReport {
    pub fn build(name: &str, mode: Mode, load: LoadParams, result: &RunResult, health: HealthReport) -> Self {
        let r = &result.recorder;
        let measured_s = result.measured.as_secs_f64();
        // Seconds past the measured phase (streams finishing late) are cut.
        let n_seconds = measured_s.ceil() as usize;
        let cut = |v: &Vec<u64>| -> Vec<u64> {
            let mut v = v.clone();
            v.resize(n_seconds, 0);
            v
        };
        let per_second = PerSecond { events: cut(&r.events_per_s), ok: cut(&r.ok_per_s), errors: cut(&r.errors_per_s) };
        let histograms = [
            ("ttfe", &r.ttfe),
            ("ttfb", &r.ttfb),
            ("first_text_chunk", &r.first_text),
            ("duration", &r.duration),
            ("service_time", &r.service),
            ("event_gap", &r.gap),
            ("longest_gap_per_stream", &r.max_gap),
            ("emit_to_receipt", &r.emit_lag),
        ]
        .into_iter()
        .map(|(k, h)| (k.to_owned(), encode_histogram(h)))
        .collect();
        let measured_requests = r.n_ok + r.n_errors();
        Self {
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
            },
            event_throughput: rates(&per_second.events, load.window_s, measured_s),
            qps: rates(&per_second.ok, load.window_s, measured_s),
            avg_duration_ms: Summary::of(&r.service).avg,
            connections: Connections { max_concurrent: result.peak_connections, avg_active: result.avg_connections },
            ttfe_ms: Summary::of(&r.ttfe),
            ttfb_ms: Summary::of(&r.ttfb),
            first_text_chunk_ms: Summary::of(&r.first_text),
            duration_ms: Summary::of(&r.duration),
            service_time_ms: Summary::of(&r.service),
            event_gap_ms: Summary::of(&r.gap),
            longest_gap_per_stream_ms: Summary::of(&r.max_gap),
            emit_to_receipt_ms: (!r.emit_lag.is_empty()).then(|| Summary::of(&r.emit_lag)),
            events_per_request: if measured_requests > 0 { r.n_events as f64 / measured_requests as f64 } else { 0.0 },
            target_cpu_us_per_request: health.target_cpu_cores.filter(|_| r.n_sent > 0).map(|c| c * health.span_s / r.n_sent as f64 * 1e6),
            target_cpu_us_per_event: health
                .target_cpu_cores
                .filter(|_| r.n_events_all > 0)
                .map(|c| c * health.span_s / r.n_events_all as f64 * 1e6),
            bytes_received: r.n_bytes,
            per_second,
            health,
            histograms,
        }
    }
}

/// Rates per window of `window_s` whole seconds (a last partial window only
/// when no whole one fits) and the average over the measured phase.
pub fn rates(per_second: &[u64], window_s: u64, measured_s: f64) -> Rates {
    let total: u64 = per_second.iter().sum();
    let avg = if measured_s > 0.0 { total as f64 / measured_s } else { 0.0 };
    let window = window_s.max(1) as usize;
    let whole: Vec<f64> = per_second.chunks_exact(window).map(|w| w.iter().sum::<u64>() as f64 / window as f64).collect();
    let windows = if whole.is_empty() && !per_second.is_empty() { vec![avg] } else { whole };
    Rates {
        max: windows.iter().copied().fold(f64::NAN, f64::max).max(0.0),
        avg,
        min: windows.iter().copied().fold(f64::NAN, f64::min).max(0.0),
    }
}

fn num(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 { format!("{rounded:.1}") } else { format!("{rounded}") }
}

fn table(out: &mut String, header: &[&str], row: &[f64]) {
    let _ = writeln!(out, "| {} |", header.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
    let _ = writeln!(out, "| {} |", row.iter().map(|v| num(*v)).collect::<Vec<_>>().join(" | "));
}

impl Report {
    fn scenario(&self, name: &str) -> Option<&ScenarioReport> {
        self.scenarios.iter().find(|s| s.name == name)
    }

    /// The seed's four tables, in the seed's shape and order. A table whose
    /// scenario did not run is left out.
    pub fn seed_tables(&self) -> String {
        let mut out = String::from("Performance Metrics\n");
        if let Some(llm) = self.scenario("llm") {
            out.push_str("Event Throughput (events/s)\n");
            let e = llm.event_throughput;
            table(&mut out, &["Max", "Avg", "Min"], &[e.max, e.avg, e.min]);
            out.push_str("TTFE - Time To First Event (ms)\n");
            let t = llm.ttfe_ms;
            table(&mut out, &["Avg", "Min", "Max", "P50", "P90", "P95"], &[t.avg, t.min, t.max, t.p50, t.p90, t.p95]);
            out.push_str("Connections\n");
            table(&mut out, &["Max Concurrent", "Avg Active"], &[llm.connections.max_concurrent as f64, llm.connections.avg_active]);
        }
        if let Some(empty) = self.scenario("empty") {
            out.push_str("Empty Workflow QPS\n");
            table(&mut out, &["Max QPS", "Avg QPS", "Avg Duration (ms)"], &[empty.qps.max, empty.qps.avg, empty.avg_duration_ms]);
        }
        out
    }

    /// The whole text report.
    pub fn to_text(&self) -> String {
        let mut out = self.seed_tables();
        out.push('\n');
        if self.interrupted {
            out.push_str("INTERRUPTED: the run was stopped early; figures cover the part that ran.\n\n");
        }
        for s in &self.scenarios {
            let _ = writeln!(out, "== {} ({}) ==", s.name, s.mode.as_str());
            let _ = writeln!(out, "Load: {}", describe_load(&s.load));
            let c = &s.counts;
            let _ = writeln!(out, "Requests: {} sent = {} warm-up + {} ok + {} errors", c.sent, c.warmup, c.ok, c.errors);
            if !c.errors_by_class.is_empty() {
                let classes: Vec<String> = c.errors_by_class.iter().map(|(k, v)| format!("{k} {v}")).collect();
                let _ = writeln!(out, "Errors by class: {}", classes.join(", "));
            }
            let _ = writeln!(
                out,
                "Throughput: {} req/s ok (max {}, min {} per {} s window); {} events/s; {:.1} events/request",
                num(s.qps.avg),
                num(s.qps.max),
                num(s.qps.min),
                s.load.window_s,
                num(s.event_throughput.avg),
                s.events_per_request
            );
            let _ = writeln!(out, "| ms | Avg | Min | P50 | P90 | P95 | P99 | P99.9 | Max |");
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
            for (label, m) in [
                ("TTFB (headers)", &s.ttfb_ms),
                ("TTFE (first event)", &s.ttfe_ms),
                ("first text_chunk", &s.first_text_chunk_ms),
                ("duration (from intended)", &s.duration_ms),
                ("service time (from sent)", &s.service_time_ms),
                ("gap between events", &s.event_gap_ms),
                ("longest gap per stream", &s.longest_gap_per_stream_ms),
            ] {
                if m.n == 0 {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    num(m.avg),
                    num(m.min),
                    num(m.p50),
                    num(m.p90),
                    num(m.p95),
                    num(m.p99),
                    num(m.p999),
                    num(m.max)
                );
            }
            if let Some(lag) = &s.emit_to_receipt_ms {
                let us = |ms: f64| format!("{:.0}", ms * 1000.0);
                let _ = writeln!(
                    out,
                    "Emit → receipt (µs, {} stamped chunks): avg {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                    lag.n,
                    us(lag.avg),
                    us(lag.p50),
                    us(lag.p90),
                    us(lag.p99),
                    us(lag.p999),
                    us(lag.max)
                );
            }
            if let Some(per_request) = s.target_cpu_us_per_request {
                let per_event = s.target_cpu_us_per_event.map_or(String::new(), |e| format!(", {e:.2} µs per event"));
                let _ = writeln!(out, "Target CPU: {per_request:.2} µs per request{per_event}");
            }
            let h = &s.health;
            let _ = writeln!(
                out,
                "Driver health: {:?}; scheduler lag p50 {} / p99 {} ms; CPU (cores): driver {:.2} of {}, target {}, others {:.2}, stolen by the host {:.2}, on {} cores",
                h.verdict,
                num(h.scheduler_lag_ms.p50),
                num(h.scheduler_lag_ms.p99),
                h.driver_cpu_cores,
                h.driver_threads,
                h.target_cpu_cores.map_or("n/a (not a local process)".to_owned(), |c| format!("{c:.2}")),
                h.other_cpu_cores,
                h.steal_cores,
                h.machine_cores
            );
            for reason in &h.reasons {
                let _ = writeln!(out, "  {}: {reason}", if h.verdict == Verdict::Invalid { "INVALID" } else { "note" });
            }
            out.push('\n');
        }
        let m = &self.machine;
        let _ = writeln!(out, "Target: {}{}", self.target.url, if self.target.embedded { " (embedded mocked stack)" } else { "" });
        let _ = writeln!(out, "Machine: {} × {}, {} GiB, Linux {}", m.cores, m.cpu_model, m.memory_gib, m.kernel);
        out
    }

    /// The tables as GitHub Markdown, for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("## flowbench\n\n");
        for line in self.seed_tables().lines() {
            if line.starts_with('|') {
                out.push_str(line);
                out.push('\n');
            } else {
                let _ = write!(out, "\n**{line}**\n\n");
            }
        }
        out.push_str("\n<details><summary>Details</summary>\n\n```\n");
        out.push_str(&self.to_text());
        out.push_str("```\n</details>\n");
        out
    }
}

fn describe_load(load: &LoadParams) -> String {
    let model = match load.model {
        LoadModel::Closed { users, spawn_rate } => format!("closed, {users} users spawned at {spawn_rate}/s, no think time"),
        LoadModel::Open { rate, poisson, connections, seed } => {
            format!("open, {rate} req/s {} over {connections} connections (seed {seed})", if poisson { "Poisson" } else { "constant" })
        }
    };
    format!("{model}; warm-up {} s, measured {:.1} of {} s", load.warmup_s, load.measured_s, load.duration_s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_take_whole_seconds_and_avg_the_whole_phase() {
        let r = rates(&[10, 20, 30, 40, 50, 60, 1], 3, 7.0);
        assert_eq!((r.max, r.min), (50.0, 20.0));
        assert!((r.avg - 211.0 / 7.0).abs() < 1e-9);
        let short = rates(&[5, 5], 5, 2.0);
        assert_eq!((short.max, short.avg, short.min), (5.0, 5.0, 5.0));
    }

    #[test]
    fn numbers_print_like_the_seed() {
        assert_eq!(num(22.0), "22.0");
        assert_eq!(num(46.666), "46.67");
        assert_eq!(num(98.3), "98.3");
    }
}
