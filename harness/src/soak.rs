//! `flowbench soak`: many streams for a long time against the embedded
//! stack, to find what only time shows: memory that grows, runs that never
//! end. Each second it samples the stack's RSS (`/proc/PID/status`), its live
//! runs (`GET /_flowbench/stats`) and the driver's totals into the JSON.
//!
//! The server keeps the last `--max-stored-runs` run records (10,000 here,
//! 100,000 by default): that store is capped by design, and it must fill
//! during the warm-up, or its filling reads as growth.
//!
//! Verdict: RSS growth after the warm-up (median of the last fifth of the
//! samples against the median of the first fifth) under `--max-growth`, no
//! errors, and live runs back to zero once the load stops.
//! Exit codes: 0 pass, 1 fail, 2 the stack did not come up, 130 interrupted.

use crate::client::{Conn, Target, bearer};
use crate::driver::{self, Live, Mode, Protocol, RunSpec};
use crate::health::HealthMonitor;
use crate::report::{LoadParams, ScenarioReport};
use crate::run::{EmbeddedStack, PreflightError, preflight};
use crate::schedule::LoadModel;
use anyhow::Context;
use clap::Args;
use http_body_util::BodyExt;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub const SCHEMA: &str = "flowbench.soak";
pub const SCHEMA_VERSION: u32 = 1;

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Measured time after the warm-up, e.g. 30m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    pub duration: Duration,
    /// Concurrent streams (closed-model users on the llm scenario).
    #[arg(long, default_value_t = 1000)]
    pub streams: u32,
    /// Ramp-up and warm-up, left out of the growth figure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub warmup: Duration,
    /// The mock's script [default: fixtures/mock/soak.toml].
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// Run records the server keeps (its store is capped by design; a small
    /// cap fills during the warm-up, so what grows after it is a leak).
    #[arg(long, default_value_t = 10_000)]
    pub max_stored_runs: usize,
    /// RSS growth after warm-up above this (in %) fails the soak.
    #[arg(long, default_value_t = 5.0)]
    pub max_growth: f64,
    /// Write the samples and the verdict here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1)]
    pub driver_threads: usize,
}

/// One second of the soak.
#[derive(Debug, Clone, Serialize)]
pub struct SoakSample {
    /// Seconds since the load started.
    pub t_s: f64,
    pub rss_kib: u64,
    /// `None` when the stats endpoint did not answer.
    pub live_runs: Option<u64>,
    pub sent: u64,
    pub done: u64,
    pub errors: u64,
    pub events: u64,
}

#[derive(Debug, Serialize)]
pub struct SoakReport {
    pub schema: &'static str,
    pub schema_version: u32,
    pub streams: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub interrupted: bool,
    pub samples: Vec<SoakSample>,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_pct: f64,
    pub max_growth_pct: f64,
    /// Live runs a few seconds after the load stopped.
    pub live_runs_after: Option<u64>,
    pub pass: bool,
    pub reasons: Vec<String>,
    pub scenario: ScenarioReport,
}

pub async fn execute(args: &SoakArgs) -> anyhow::Result<SoakReport> {
    if args.streams == 0 {
        anyhow::bail!("--streams must be at least 1");
    }
    let script = args.mock_script.clone().unwrap_or_else(|| crate::stack::workspace_root().join("fixtures/mock/soak.toml"));
    let stack = EmbeddedStack::start_with(Some(&script), &["--max-stored-runs".to_owned(), args.max_stored_runs.to_string()])?;
    let pid = stack.child.id();
    let target = Target::resolve(&stack.server_url).await.map_err(|e| PreflightError(format!("{e:#}")))?;
    let key = stack.api_key("llm");
    preflight(&target, "llm", &key).await?;
    let (cancel, signal) = crate::run::cancel_on_ctrl_c("flowbench soak: interrupted; writing what was measured");
    let live = Arc::new(Live::default());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_each_second(pid, target.clone(), live.clone(), samples.clone(), stop_sampling.clone()));
    let load = LoadModel::Closed { users: args.streams, spawn_rate: f64::from(args.streams) / (args.warmup.as_secs_f64() / 2.0).max(0.1) };
    let spec = RunSpec {
        mode: Mode::Streaming,
        api_key: bearer(&key)?,
        load,
        warmup: args.warmup,
        duration: args.duration,
        timeout: Duration::from_secs(60),
        inputs: None,
        seed: 1,
        protocol: Protocol::Dify,
        stamped: false,
        abort_after_chunks: None,
    };
    let health = HealthMonitor::start(Some(pid), args.driver_threads);
    let result = driver::run(spec, target.clone(), live, cancel.clone()).await;
    let health = health.finish().await;
    // Runs end within moments of their streams; give them a few seconds.
    let mut live_runs_after = None;
    for _ in 0..10 {
        tokio::time::sleep(Duration::from_millis(500)).await;
        live_runs_after = live_runs(&target).await;
        if live_runs_after == Some(0) {
            break;
        }
    }
    stop_sampling.cancel();
    let _ = sampler.await;
    signal.abort();
    stack.stop();
    let params = LoadParams {
        model: load,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        measured_s: 0.0,
        window_s: 1,
        timeout_s: 60.0,
        seed: 1,
    };
    let scenario = ScenarioReport::build("llm", Mode::Streaming, params, &result, health);
    let samples = std::mem::take(&mut *samples.lock().unwrap_or_else(|e| e.into_inner()));
    let measured: Vec<u64> = samples.iter().filter(|s| s.t_s >= args.warmup.as_secs_f64()).map(|s| s.rss_kib).collect();
    let (rss_start_kib, rss_end_kib) = growth_ends(&measured);
    let rss_growth_pct = if rss_start_kib > 0 { (rss_end_kib as f64 / rss_start_kib as f64 - 1.0) * 100.0 } else { 0.0 };
    let mut reasons = Vec::new();
    if measured.len() < 2 {
        reasons.push("fewer than 2 samples after the warm-up: nothing to compare".to_owned());
    }
    if rss_growth_pct >= args.max_growth {
        reasons.push(format!(
            "RSS grew {rss_growth_pct:.1}% after the warm-up ({rss_start_kib} → {rss_end_kib} KiB), limit {}%",
            args.max_growth
        ));
    }
    if scenario.counts.errors > 0 {
        reasons.push(format!("{} requests failed: {:?}", scenario.counts.errors, scenario.counts.errors_by_class));
    }
    if live_runs_after != Some(0) {
        reasons.push(format!("live runs after the load stopped: {live_runs_after:?}, not 0"));
    }
    let report = SoakReport {
        schema: SCHEMA,
        schema_version: SCHEMA_VERSION,
        streams: args.streams,
        warmup_s: args.warmup.as_secs_f64(),
        duration_s: args.duration.as_secs_f64(),
        interrupted: result.interrupted,
        samples,
        rss_start_kib,
        rss_end_kib,
        rss_growth_pct,
        max_growth_pct: args.max_growth,
        live_runs_after,
        pass: reasons.is_empty(),
        reasons,
        scenario,
    };
    println!(
        "flowbench soak: {} streams, {} s measured after {} s warm-up: {} ok, {} errors, {:.0} events/s; RSS {} → {} KiB ({:+.1}%); live runs after: {:?}; {}",
        report.streams,
        report.scenario.load.measured_s.round(),
        report.warmup_s,
        report.scenario.counts.ok,
        report.scenario.counts.errors,
        report.scenario.event_throughput.avg,
        report.rss_start_kib,
        report.rss_end_kib,
        report.rss_growth_pct,
        report.live_runs_after,
        if report.pass { "PASS".to_owned() } else { format!("FAIL: {}", report.reasons.join("; ")) }
    );
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(report)
}

/// Medians of the first and the last fifth of `rss` (at least one sample each).
fn growth_ends(rss: &[u64]) -> (u64, u64) {
    if rss.is_empty() {
        return (0, 0);
    }
    let fifth = (rss.len() / 5).max(1);
    let median = |part: &[u64]| {
        let mut part = part.to_vec();
        part.sort_unstable();
        part[part.len() / 2]
    };
    (median(&rss[..fifth]), median(&rss[rss.len() - fifth..]))
}

async fn sample_each_second(pid: u32, target: Target, live: Arc<Live>, samples: Arc<Mutex<Vec<SoakSample>>>, stop: CancellationToken) {
    let start = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let sample = SoakSample {
            t_s: start.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid).unwrap_or(0),
            live_runs: live_runs(&target).await,
            sent: live.sent.load(Ordering::Relaxed),
            done: live.done.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            events: live.events.load(Ordering::Relaxed),
        };
        samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
    }
}

/// Resident memory of `pid`, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches(" kB").trim().parse().ok()
}

/// The server's live runs, from its stats endpoint.
async fn live_runs(target: &Target) -> Option<u64> {
    let mut conn = Conn::new();
    let request = target.get("/_flowbench/stats", &http::HeaderValue::from_static(""));
    let response = tokio::time::timeout(Duration::from_secs(2), conn.send(target, request)).await.ok()?.ok()?;
    let body = tokio::time::timeout(Duration::from_secs(2), response.into_body().collect()).await.ok()?.ok()?.to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).ok()?["live_runs"].as_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_first_and_last_fifths() {
        let flat_then_up: Vec<u64> = (0..10).map(|i| if i < 8 { 100 } else { 110 }).collect();
        assert_eq!(growth_ends(&flat_then_up), (100, 110));
        assert_eq!(growth_ends(&[5]), (5, 5));
        assert_eq!(growth_ends(&[]), (0, 0));
    }

    #[test]
    fn reads_this_process_rss() {
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }
}
