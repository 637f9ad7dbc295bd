//! `flowbench ab`: two targets measured at the same time. Each slice loads
//! both at once, half the users on each, so both see the same machine: on a
//! shared VM a core's speed drifts from one second to the next, and two
//! targets pinned to one core and measured in the same second share that
//! drift. `cargo xtask gate --self-test` measures what is left (docs/gate.md).
//!
//! Each slice is, per side, a closed-model run of fresh connections: a
//! settle time (sent, left out) then `--slice` measured. Its figures are the
//! scenario report's, without histograms; `cargo xtask gate` reads them and
//! takes each slice's log ratio ln(B/A) as one paired observation.

use super::{Steps, cancel_on_ctrl_c, write_file};
use crate::load::client::{PreflightError, Protocol, Target, preflight};
use crate::load::driver::{self, App, Live, RunSpec};
use crate::load::health::{HealthMonitor, TargetCpu};
use crate::load::schedule::LoadModel;
use crate::plan::AbPlan;
use crate::report::ab::{AbReport, AbScenario, SCHEMA, SCHEMA_VERSION, Slice};
use crate::report::{LoadParams, build_scenario};
use std::sync::Arc;
use std::time::Duration;

/// Runs the slices; prints a summary and writes the JSON. Ctrl-C ends the
/// run after the slice in progress, with every whole slice kept.
pub async fn execute(plan: &AbPlan) -> anyhow::Result<AbReport> {
    let args = &plan.flags;
    let (driver_threads, mode, api_key) = (args.driver.driver_threads, plan.mode, &plan.api_key);
    let name = match args.scenario {
        AbScenario::Empty => "empty",
        AbScenario::Llm => "llm",
    };
    let mut sides = Vec::new();
    for (label, url) in [('a', &args.a), ('b', &args.b)] {
        let target = Target::resolve_with(url, &plan.target_options).await.map_err(|e| PreflightError(format!("side {label}: {e:#}")))?;
        preflight(&target, Protocol::Dify, name, api_key).await.map_err(|e| PreflightError(format!("side {label}: {e:#}")))?;
        let owners = crate::load::health::local_pids_listening_on(target.addr);
        let cpu = if owners.is_empty() { TargetCpu::Remote } else { TargetCpu::Processes(owners) };
        sides.push((target, cpu));
    }
    let (cancel, signal) = cancel_on_ctrl_c("flowbench ab: interrupted; writing the slices measured so far");
    let mut report = AbReport {
        schema: SCHEMA.to_owned(),
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
    let steps = Steps::new("flowbench ab", u64::from(args.slices));
    for index in 0..args.slices {
        if cancel.is_cancelled() {
            break;
        }
        steps.doing("measuring both sides");
        let side = |(target, pid): &(Target, TargetCpu), sibling: TargetCpu, offset: u64| {
            let seed = args.seed.wrapping_add(u64::from(index) * 2 + offset);
            let spec = RunSpec {
                apps: vec![App::single(mode, api_key.clone(), None)],
                load: load_for(seed),
                warmup: args.settle,
                duration: args.slice,
                timeout: args.timeout,
                seed,
                protocol: Protocol::Dify,
                stamped: false,
                abort_after_chunks: None,
                after_terminal: args.driver.after_terminal.into(),
                integrity: !args.driver.no_integrity,
                request_slo: None,
                trace_sample: (!args.driver.no_traceparent).then_some(args.driver.trace_sample),
                arrival_phase: 0.0,
            };
            let (target, pid, cancel, params) = (target.clone(), pid.clone(), cancel.clone(), params.clone());
            // Evenly spaced arrivals: the side joined second starts half a
            // period later, so the sides' requests alternate.
            let delay = match (args.rate, args.poisson, offset_second(index, offset)) {
                (Some(rate), false, true) => Duration::from_secs_f64(0.5 / rate),
                _ => Duration::ZERO,
            };
            async move {
                tokio::time::sleep(delay).await;
                let health = HealthMonitor::start_beside(pid, sibling, driver_threads, false);
                let result = driver::run(spec, target, Arc::new(Live::default()), cancel).await;
                let health = health.finish().await;
                let interrupted = result.interrupted;
                (build_scenario(name, mode, params, &result, health, &[]), interrupted)
            }
        };
        // The side started first gets its connections first: alternate it
        // (A B, B A, B A, A B, …) so neither gains from the order.
        let a_first = a_first(index);
        let ((a, a_cut), (b, b_cut)) = if a_first {
            tokio::join!(side(&sides[0], sides[1].1.clone(), 0), side(&sides[1], sides[0].1.clone(), 1))
        } else {
            let (b, a) = tokio::join!(side(&sides[1], sides[0].1.clone(), 1), side(&sides[0], sides[1].1.clone(), 0));
            (a, b)
        };
        if a_cut || b_cut {
            report.interrupted = true;
            break;
        }
        steps.step(&format!("slice done: req/s A {:.1} B {:.1}", a.qps.avg, b.qps.avg));
        report.slices.push(Slice { a: a.slim(), b: b.slim() });
    }
    steps.finish();
    signal.abort();
    print!("{}", report.to_text());
    if let Some(path) = &args.json {
        write_file(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(path) = &args.html {
        write_file(path, crate::report::html::render_ab(&report)?)?;
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
