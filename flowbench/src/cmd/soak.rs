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
//! Exit codes: 0 pass, 1 fail (or the stack did not start), 2 a bad flag or
//! a stack whose server does not answer, 130 interrupted.

use super::{Progress, cancel_on_ctrl_c, write_file};
use crate::load::client::{Conn, PreflightError, Protocol, Target, bearer, preflight};
use crate::load::driver::{self, App, Live, Mode, RunSpec};
use crate::load::health::{HealthMonitor, rss_kib};
use crate::load::schedule::LoadModel;
use crate::plan::SoakPlan;
use crate::report::soak::{SCHEMA, SCHEMA_VERSION, SoakReport, SoakSample, growth_ends};
use crate::report::{LoadParams, build_scenario};
use crate::stack::ChildStack;
use anyhow::Context;
use http_body_util::BodyExt;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

pub async fn execute(plan: &SoakPlan) -> anyhow::Result<SoakReport> {
    let args = &plan.flags;
    let stack = ChildStack::start(Some(&plan.mock_script), &["--max-stored-runs".to_owned(), args.max_stored_runs.to_string()])?;
    // The server's memory and CPU: its own process, apart from the mock's.
    let pid = *stack.info.server_pids.first().context("the stack named no server process")?;
    let target = Target::resolve(&stack.info.server_url).await.map_err(|e| PreflightError(format!("{e:#}")))?;
    let key = bearer(stack.info.api_key("llm")?)?;
    preflight(&target, Protocol::Dify, "llm", &key).await?;
    let (cancel, signal) = cancel_on_ctrl_c("flowbench soak: interrupted; writing what was measured");
    let live = Arc::new(Live::default());
    let samples = Arc::new(Mutex::new(Vec::new()));
    let stop_sampling = CancellationToken::new();
    let sampler = tokio::spawn(sample_each_second(pid, target.clone(), live.clone(), samples.clone(), stop_sampling.clone()));
    let load = LoadModel::Closed { users: args.streams, spawn_rate: f64::from(args.streams) / (args.warmup.as_secs_f64() / 2.0).max(0.1) };
    let spec = RunSpec {
        apps: vec![App::single(Mode::Streaming, key, None)],
        load: load.clone(),
        warmup: args.warmup,
        duration: args.duration,
        timeout: Duration::from_secs(60),
        seed: 1,
        protocol: Protocol::Dify,
        stamped: false,
        abort_after_chunks: None,
        after_terminal: args.driver.after_terminal.into(),
        integrity: !args.driver.no_integrity,
        request_slo: None,
        trace_sample: (!args.driver.no_traceparent).then_some(args.driver.trace_sample),
        arrival_phase: 0.0,
    };
    let health = HealthMonitor::start(crate::load::health::TargetCpu::Processes(vec![pid]), args.driver.driver_threads);
    // A soak is long: off a terminal, a line each minute.
    let progress = Progress::start_every("soak", args.warmup + args.duration, live.clone(), Some(Duration::from_secs(60)));
    let result = driver::run(spec, target.clone(), live, cancel.clone()).await;
    progress.finish();
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
    let scenario = build_scenario("llm", Mode::Streaming, params, &result, health, &[]);
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
        schema: SCHEMA.to_owned(),
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
        write_file(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(path) = &args.html {
        write_file(path, crate::report::html::render_soak(&report)?)?;
    }
    Ok(report)
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
        // The counters at the instant stamped; the stats endpoint's answer may come later.
        let mut sample = SoakSample {
            t_s: start.elapsed().as_secs_f64(),
            rss_kib: rss_kib(pid).unwrap_or(0),
            live_runs: None,
            sent: live.sent.load(Ordering::Relaxed),
            done: live.done.load(Ordering::Relaxed),
            errors: live.errors.load(Ordering::Relaxed),
            events: live.events.load(Ordering::Relaxed),
        };
        sample.live_runs = live_runs(&target).await;
        samples.lock().unwrap_or_else(|e| e.into_inner()).push(sample);
    }
}

/// The server's live runs, from its stats endpoint.
async fn live_runs(target: &Target) -> Option<u64> {
    let mut conn = Conn::new();
    let request = target.get("/_flowbench/stats", &http::HeaderValue::from_static(""));
    let response = tokio::time::timeout(Duration::from_secs(2), conn.send(target, request)).await.ok()?.ok()?;
    let body = tokio::time::timeout(Duration::from_secs(2), response.into_body().collect()).await.ok()?.ok()?.to_bytes();
    serde_json::from_slice::<serde_json::Value>(&body).ok()?["live_runs"].as_u64()
}
