//! `flowbench ab`: two targets measured at the same time. Each slice loads
//! both at once, half the users on each, so both see the same machine: on a
//! shared VM a core's speed drifts by ~10% from one second to the next, and
//! two targets pinned to one core and measured in the same second share that
//! drift. `cargo xtask gate --self-test` measures what is left (README.md).
//!
//! Each slice is, per side, a closed-model run of fresh connections: a
//! settle time (sent, left out) then `--slice` measured. Its figures are the
//! scenario report's, without histograms; `cargo xtask gate` reads them and
//! takes each slice's log ratio ln(B/A) as one paired observation.

use crate::client::{Target, bearer};
use crate::driver::{self, Live, Mode, Protocol, RunSpec};
use crate::health::HealthMonitor;
use crate::report::{LoadParams, ScenarioReport};
use crate::run::{PreflightError, preflight};
use crate::schedule::LoadModel;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use serde::Serialize;
use std::fmt::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub const SCHEMA: &str = "flowbench.ab";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AbScenario {
    /// Blocking runs of the Start→End app.
    Empty,
    /// Streaming runs of the Start→LLM→End app.
    Llm,
}

#[derive(Debug, Clone, Args)]
pub struct AbArgs {
    /// Side A (the base), a Dify-compatible server.
    #[arg(long)]
    pub a: String,
    /// Side B (the head).
    #[arg(long)]
    pub b: String,
    #[arg(long, value_enum)]
    pub scenario: AbScenario,
    /// Response mode of the `empty` scenario (`llm` always streams).
    #[arg(long, value_enum, default_value = "blocking")]
    pub mode: Mode,
    /// The app's API key, the same on both sides.
    #[arg(long = "api-key")]
    pub api_key: String,
    /// Closed model: concurrent users on each side during a slice. With
    /// `--rate`: the connections serving each side's arrivals.
    #[arg(long, default_value_t = 16)]
    pub users: u32,
    /// Open model instead of closed: this many requests per second on each
    /// side, evenly spaced, the two sides half a period apart so their
    /// requests take turns. A light rate measures latency without queueing
    /// (the gate's TTFE).
    #[arg(long)]
    pub rate: Option<f64>,
    /// With `--rate`: Poisson arrivals, each side its own seed (requests meet
    /// at random) instead of evenly spaced turns.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Measured time per slice.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub slice: Duration,
    /// Sent at the start of each slice and left out (fresh connections warm up).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub settle: Duration,
    /// Slices (each one paired observation).
    #[arg(long, default_value_t = 8)]
    pub slices: u32,
    /// A request (or stream) not done after this is a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1)]
    pub driver_threads: usize,
    /// Write every slice's figures here.
    #[arg(long)]
    pub json: Option<PathBuf>,
}

/// One slice: both sides' scenario reports, measured over the same time.
#[derive(Debug, Serialize)]
pub struct Slice {
    pub a: serde_json::Value,
    pub b: serde_json::Value,
}

#[derive(Debug, Serialize)]
pub struct AbReport {
    pub schema: &'static str,
    pub schema_version: u32,
    pub scenario: AbScenario,
    pub mode: Mode,
    pub a: String,
    pub b: String,
    pub users: u32,
    /// Requests per second on each side (open model), or none (closed).
    pub rate: Option<f64>,
    pub slice_s: f64,
    pub settle_s: f64,
    /// Ctrl-C cut the run short; the slices measured are all here.
    pub interrupted: bool,
    pub slices: Vec<Slice>,
}

/// Runs the slices; prints a summary and writes the JSON. Ctrl-C ends the
/// run after the slice in progress, with every whole slice kept.
pub async fn execute(args: &AbArgs) -> anyhow::Result<AbReport> {
    let driver_threads = args.driver_threads.max(1);
    if args.slices == 0 {
        bail!("--slices must be at least 1");
    }
    if args.users == 0 {
        bail!("--users must be at least 1");
    }
    if args.slice.is_zero() {
        bail!("--slice must be longer than 0");
    }
    if let Some(rate) = args.rate
        && !(rate > 0.0 && rate.is_finite())
    {
        bail!("--rate must be above 0, got {rate}");
    }
    let (name, mode) = match args.scenario {
        AbScenario::Empty => ("empty", args.mode),
        AbScenario::Llm => ("llm", Mode::Streaming),
    };
    let api_key = bearer(&args.api_key).map_err(|_| PreflightError("--api-key is not a valid header value".into()))?;
    let mut sides = Vec::new();
    for (label, url) in [('a', &args.a), ('b', &args.b)] {
        let target = Target::resolve(url).await.map_err(|e| PreflightError(format!("side {label}: {e:#}")))?;
        preflight(&target, name, &args.api_key).await.map_err(|e| PreflightError(format!("side {label}: {e:#}")))?;
        let pid = crate::health::local_pid_listening_on(target.addr);
        sides.push((target, pid));
    }
    let (cancel, signal) = crate::run::cancel_on_ctrl_c("flowbench ab: interrupted; writing the slices measured so far");
    let mut report = AbReport {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        scenario: args.scenario,
        mode,
        a: args.a.clone(),
        b: args.b.clone(),
        users: args.users,
        rate: args.rate,
        slice_s: args.slice.as_secs_f64(),
        settle_s: args.settle.as_secs_f64(),
        interrupted: false,
        slices: Vec::new(),
    };
    let load_for = |seed: u64| match args.rate {
        Some(rate) => LoadModel::Open { rate, poisson: args.poisson, connections: args.users, seed },
        None => LoadModel::Closed { users: args.users, spawn_rate: 1e9 },
    };
    let params = LoadParams {
        model: load_for(args.seed),
        warmup_s: args.settle.as_secs_f64(),
        duration_s: args.slice.as_secs_f64(),
        measured_s: 0.0,
        window_s: 1,
        timeout_s: args.timeout.as_secs_f64(),
        seed: args.seed,
    };
    for index in 0..args.slices {
        if cancel.is_cancelled() {
            break;
        }
        let side = |(target, pid): &(Target, Option<u32>), sibling: Option<u32>, offset: u64| {
            let seed = args.seed.wrapping_add(u64::from(index) * 2 + offset);
            let spec = RunSpec {
                mode,
                api_key: api_key.clone(),
                load: load_for(seed),
                warmup: args.settle,
                duration: args.slice,
                timeout: args.timeout,
                inputs: None,
                seed,
                protocol: Protocol::Dify,
                stamped: false,
                abort_after_chunks: None,
            };
            let (target, pid, cancel, params) = (target.clone(), *pid, cancel.clone(), params.clone());
            // Evenly spaced arrivals: the side joined second starts half a
            // period later, so the sides' requests alternate.
            let delay = match (args.rate, args.poisson, offset_second(index, offset)) {
                (Some(rate), false, true) => Duration::from_secs_f64(0.5 / rate),
                _ => Duration::ZERO,
            };
            async move {
                tokio::time::sleep(delay).await;
                let health = HealthMonitor::start_beside(pid, sibling, driver_threads);
                let result = driver::run(spec, target, Arc::new(Live::default()), cancel).await;
                let health = health.finish().await;
                let interrupted = result.interrupted;
                (ScenarioReport::build(name, mode, params, &result, health), interrupted)
            }
        };
        // The side started first gets its connections first: alternate it
        // (A B, B A, B A, A B, …) so neither gains from the order.
        let a_first = a_first(index);
        let ((a, a_cut), (b, b_cut)) = if a_first {
            tokio::join!(side(&sides[0], sides[1].1, 0), side(&sides[1], sides[0].1, 1))
        } else {
            let (b, a) = tokio::join!(side(&sides[1], sides[0].1, 1), side(&sides[0], sides[1].1, 0));
            (a, b)
        };
        if a_cut || b_cut {
            report.interrupted = true;
            break;
        }
        report.slices.push(Slice { a: slim(&a)?, b: slim(&b)? });
        eprintln!("flowbench ab: slice {}/{} done", index + 1, args.slices);
    }
    signal.abort();
    print!("{}", report.to_text());
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Slice `index` starts side A first (ABBA over slices).
fn a_first(index: u32) -> bool {
    matches!(index % 4, 0 | 3)
}

/// Whether the side with `offset` (0 for A, 1 for B) starts second in slice `index`.
fn offset_second(index: u32, offset: u64) -> bool {
    a_first(index) == (offset == 1)
}

/// A scenario report without its histograms and per-second series.
fn slim(report: &ScenarioReport) -> anyhow::Result<serde_json::Value> {
    let mut value = serde_json::to_value(report)?;
    if let Some(fields) = value.as_object_mut() {
        fields.remove("histograms");
        fields.remove("per_second");
    }
    Ok(value)
}

/// Figures the summary shows: (label, JSON pointer into a slice's report).
const SHOWN: [(&str, &str); 7] = [
    ("req/s", "/qps/avg"),
    ("duration p50 ms", "/duration_ms/p50"),
    ("TTFE p50 ms", "/ttfe_ms/p50"),
    ("TTFE p99 ms", "/ttfe_ms/p99"),
    ("events/s", "/event_throughput/avg"),
    ("target CPU µs/request", "/target_cpu_us_per_request"),
    ("target CPU µs/event", "/target_cpu_us_per_event"),
];

impl AbReport {
    /// Per figure: each side's mean over the slices, and the mean and SD of
    /// the slices' log ratios (the gate gives the verdict).
    pub fn to_text(&self) -> String {
        let load = match self.rate {
            Some(rate) => format!("{rate} requests/s over {} connections a side", self.users),
            None => format!("{} users a side", self.users),
        };
        let mut out = format!(
            "flowbench ab: {:?} ({}), {} slices of {} s, {load}, both sides at once\n  A {}\n  B {}\n",
            self.scenario,
            self.mode.as_str(),
            self.slices.len(),
            self.slice_s,
            self.a,
            self.b
        );
        let _ = writeln!(out, "{:<24} {:>12} {:>12} {:>10} {:>14}", "", "A mean", "B mean", "B/A", "slice SD");
        for (label, pointer) in SHOWN {
            let ratios = self.log_ratios(pointer);
            if ratios.is_empty() {
                continue;
            }
            let side_mean = |pick: fn(&Slice) -> &serde_json::Value| {
                let v: Vec<f64> = self.slices.iter().filter_map(|s| pick(s).pointer(pointer)?.as_f64()).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let n = ratios.len() as f64;
            let mean = ratios.iter().sum::<f64>() / n;
            let sd = if ratios.len() > 1 { (ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
            let _ = writeln!(
                out,
                "{label:<24} {:>12.3} {:>12.3} {:>+9.2}% {:>13.2}%",
                side_mean(|s| &s.a),
                side_mean(|s| &s.b),
                (mean.exp() - 1.0) * 100.0,
                sd * 100.0
            );
        }
        if self.interrupted {
            out.push_str("(interrupted: only the slices above were measured)\n");
        }
        out
    }

    /// ln(B/A) per slice; slices where either figure is missing or not
    /// positive are left out.
    pub fn log_ratios(&self, pointer: &str) -> Vec<f64> {
        let figure = |v: &serde_json::Value| v.pointer(pointer)?.as_f64().filter(|v| *v > 0.0);
        self.slices.iter().filter_map(|s| Some(figure(&s.b)?.ln() - figure(&s.a)?.ln())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn slice(a: f64, b: f64) -> Slice {
        Slice { a: serde_json::json!({"qps": {"avg": a}}), b: serde_json::json!({"qps": {"avg": b}}) }
    }

    #[test]
    fn ratios_are_per_slice_and_skip_missing_figures() {
        let report = AbReport {
            schema: SCHEMA,
            schema_version: SCHEMA_VERSION,
            scenario: AbScenario::Empty,
            mode: Mode::Blocking,
            a: "a".into(),
            b: "b".into(),
            users: 1,
            rate: None,
            slice_s: 1.0,
            settle_s: 0.0,
            interrupted: false,
            slices: vec![slice(100.0, 90.0), slice(200.0, 180.0), slice(0.0, 10.0)],
        };
        let ratios = report.log_ratios("/qps/avg");
        assert_eq!(ratios.len(), 2);
        assert!(ratios.iter().all(|r| (r - 0.9f64.ln()).abs() < 1e-12));
        assert!(report.to_text().contains("-10.00%"), "{}", report.to_text());
    }
}
