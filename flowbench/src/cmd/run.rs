//! `flowbench run`: a validated `Plan` → scenarios driven against the
//! embedded stack (a child process, so its CPU is measured apart from the
//! driver's) or any Dify-compatible `--target` → the report, printed and
//! written. Exit codes: `crate::exit`.

use super::{Progress, cancel_on_ctrl_c, write_file};
use crate::cli::ReportFiles;
use crate::exit;
use crate::load::client::{PreflightError, Protocol, Target, bearer, preflight};
use crate::load::driver::{self, App, Live, RunSpec};
use crate::load::health::{HealthMonitor, HealthVerdict, Machine, TargetCpu};
use crate::load::schedule::LoadModel;
use crate::load::scrape::Scraper;
use crate::plan::{Plan, PlannedApp};
use crate::report::thresholds::ThresholdResult;
use crate::report::{LoadParams, Report, SCHEMA, SCHEMA_VERSION, ScenarioReport, TargetInfo, build_scenario};
use crate::stack::ChildStack;
use http::HeaderValue;
use schema::observe::{PromFigures, PromQuery};
use std::sync::Arc;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A plan's target made ready: the embedded stack started (or the
/// `--target` resolved), each scenario's apps with their keys, preflighted,
/// and whose CPU is the target's; `run` and `capacity` drive scenarios
/// through it.
pub(crate) struct Prepared {
    embedded: Option<ChildStack>,
    pub url: String,
    target: Target,
    /// Each planned scenario's apps, in the plan's order.
    apps: Vec<Vec<App>>,
    target_cpu: TargetCpu,
    mock_cpu: TargetCpu,
}

impl Prepared {
    pub async fn new(plan: &Plan) -> anyhow::Result<Self> {
        let mut embedded = None;
        // The direct path (chosen alone) drives the mock LLM itself.
        let direct = plan.scenarios.iter().any(|s| s.protocol == Protocol::OpenAi);
        // Each scenario's apps, their keys resolved (the embedded stack's for
        // the fixture apps named).
        let (url, apps, embedded_pids) = match &plan.target {
            Some(url) => {
                (url.clone(), apps(plan, |app| app.key.clone().ok_or_else(|| anyhow::anyhow!("app {:?} has no key", app.name)))?, None)
            }
            None => {
                let stack = ChildStack::start(plan.mock_script.as_deref(), &[])?;
                let apps = apps(plan, |app| match &app.key {
                    Some(key) => Ok(key.clone()),
                    None => bearer(stack.info.api_key(&app.fixture)?),
                })?;
                let url = if direct { stack.info.mock_llm_url.clone() } else { stack.info.server_url.clone() };
                // The servers are the target; `up`'s own process is the mock.
                let out = (url, apps, Some((stack.info.server_pids.clone(), stack.child.id())));
                embedded = Some(stack);
                out
            }
        };
        let target = Target::resolve_with(&url, &plan.target_options).await.map_err(|e| PreflightError(format!("{e:#}")))?;
        // The embedded mock's own figure, unless it is the target (or there is none).
        let mock_cpu = match &embedded_pids {
            Some((_, mock)) if !direct => TargetCpu::Process(*mock),
            _ => TargetCpu::Remote,
        };
        let target_cpu = match (&plan.target_cgroup, embedded_pids) {
            (Some(cgroup), _) => TargetCpu::Cgroup(cgroup.clone()),
            // The direct path's target is the mock itself.
            (None, Some((_, mock))) if direct => TargetCpu::Process(mock),
            (None, Some((servers, _))) => TargetCpu::Processes(servers),
            (None, None) => {
                let mut roots = crate::load::health::local_pids_listening_on(target.addr);
                roots.extend(&plan.target_pids);
                roots.sort_unstable();
                roots.dedup();
                if roots.is_empty() { TargetCpu::Remote } else { TargetCpu::Processes(roots) }
            }
        };
        let mut checked = std::collections::HashSet::new();
        for (scenario, apps) in plan.scenarios.iter().zip(&apps) {
            for (app, key) in scenario.apps.iter().zip(apps) {
                if checked.insert(key.api_key.clone()) {
                    preflight(&target, scenario.protocol, &app.name, &key.api_key).await?;
                }
            }
        }
        Ok(Self { embedded, url, target, apps, target_cpu, mock_cpu })
    }

    pub fn embedded(&self) -> bool {
        self.embedded.is_some()
    }

    /// Drives the plan's `index`-th scenario under `load` for `warmup` then
    /// `duration`; its report, the driver's health and the target's CPU in it.
    pub async fn drive(
        &self,
        plan: &Plan,
        index: usize,
        load: LoadModel,
        (warmup, duration): (Duration, Duration),
        cancel: &CancellationToken,
    ) -> (ScenarioReport, bool) {
        let scenario = &plan.scenarios[index];
        let spec = RunSpec {
            apps: self.apps[index].clone(),
            load: load.clone(),
            warmup,
            duration,
            timeout: plan.timeout,
            seed: plan.seed,
            protocol: scenario.protocol,
            stamped: plan.stamped,
            abort_after_chunks: plan.abort_after_chunks,
            after_terminal: plan.after_terminal,
            integrity: plan.integrity,
            request_slo: plan.request_slo.clone(),
            trace_sample: plan.trace_sample,
            arrival_phase: plan.shard.map_or(0.0, |s| f64::from(s.index - 1) / f64::from(s.count)),
        };
        let live = Arc::new(Live::default());
        let progress = Progress::start(&scenario.name, warmup + duration, live.clone());
        let health = HealthMonitor::start_with_mock(self.target_cpu.clone(), self.mock_cpu.clone(), plan.driver_threads);
        let observe = &plan.observe;
        let scraper = (!observe.scrape.is_empty())
            .then(|| Scraper::start(observe.scrape.clone(), observe.series.clone(), tokio::time::Instant::now()));
        let run_apps = spec.apps.clone();
        let result = driver::run(spec, self.target.clone(), live, cancel.clone()).await;
        let health = health.finish().await;
        progress.finish();
        let scraped = match scraper {
            Some(scraper) => scraper.finish().await,
            None => Default::default(),
        };
        let params = LoadParams {
            model: load,
            warmup_s: warmup.as_secs_f64(),
            duration_s: duration.as_secs_f64(),
            measured_s: 0.0,
            window_s: plan.window_s,
            timeout_s: plan.timeout.as_secs_f64(),
            seed: plan.seed,
        };
        let mut report = build_scenario(&scenario.name, run_apps[0].mode, params, &result, health, &run_apps);
        (report.scraped, report.scrape_problems) = scraped;
        for problem in &report.scrape_problems {
            eprintln!(
                "flowbench: --scrape {}: {} of {} reads failed; first: {}",
                problem.url, problem.failed, problem.of, problem.first_error
            );
        }
        if let Some(url) = &observe.prometheus {
            report.prometheus = Some(query_prometheus(url, observe, &report, cancel).await);
            if report.target_cpu_us_per_request.is_none() {
                attribute_prometheus_cpu(&mut report);
            }
        }
        (report, result.interrupted)
    }

    pub fn stop(self) {
        if let Some(stack) = self.embedded {
            stack.stop();
        }
    }
}

/// `--target-cpu` and `--target-memory` over the scenario's measured
/// interval, once Prometheus has had `--prometheus-lag` to scrape past its
/// end. A run interrupted before then is not measured: Prometheus would
/// not yet hold the interval's end.
async fn query_prometheus(
    url: &str,
    observe: &crate::cli::ObserveArgs,
    report: &ScenarioReport,
    cancel: &CancellationToken,
) -> PromFigures {
    let start = std::time::UNIX_EPOCH + Duration::from_millis(report.measure_start_unix_ms.unwrap_or(0));
    let end = start + Duration::from_secs_f64(report.load.measured_s);
    let unix = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).map_or(0.0, |d| d.as_secs_f64());
    let mut figures = PromFigures { url: url.to_owned(), start_unix_s: unix(start), end_unix_s: unix(end), cpu: None, memory: None };
    let ready = end + observe.prometheus_lag;
    let wait = ready.duration_since(std::time::SystemTime::now()).unwrap_or_default();
    if !wait.is_zero() {
        eprintln!(
            "flowbench: waiting {} for Prometheus to scrape past the measured interval (--prometheus-lag)",
            humantime::format_duration(Duration::from_secs(wait.as_secs_f64().ceil() as u64))
        );
    }
    let waited = tokio::select! {
        () = tokio::time::sleep(wait) => true,
        () = cancel.cancelled() => false,
    };
    // Samples every second, or fewer over a long run (Prometheus answers at most 11,000 points).
    let step = Duration::from_secs_f64((report.load.measured_s / 1000.0).max(1.0).ceil());
    for (query, slot) in [(&observe.target_cpu, &mut figures.cpu), (&observe.target_memory, &mut figures.memory)] {
        let Some(query) = query else { continue };
        *slot = Some(if waited {
            crate::load::promql::query_over(url, query, start, end, step).await
        } else {
            PromQuery {
                query: query.clone(),
                method: String::new(),
                value: None,
                max: None,
                samples: 0,
                error: Some("not measured: the run was interrupted before Prometheus had scraped past the interval".to_owned()),
            }
        });
    }
    for (what, q) in [("--target-cpu", &figures.cpu), ("--target-memory", &figures.memory)] {
        if let Some(error) = q.as_ref().and_then(|q| q.error.as_ref()) {
            eprintln!("flowbench: {what}: {error}");
        }
    }
    figures
}

/// A target whose CPU `/proc` cannot read takes Prometheus' figure for
/// its CPU per request and per event (the thresholds and `capacity` read
/// them): over the measured interval, per measured request and event.
fn attribute_prometheus_cpu(report: &mut ScenarioReport) {
    let Some(prom) = &report.prometheus else { return };
    let Some(cores) = prom.cpu.as_ref().and_then(|q| q.value) else { return };
    let cpu_us = cores * report.load.measured_s * 1e6;
    let requests = report.counts.ok + report.counts.errors;
    let events: u64 = report.per_second.events.iter().sum();
    report.target_cpu_us_per_request = (requests > 0).then(|| cpu_us / requests as f64);
    report.target_cpu_us_per_event = (events > 0).then(|| cpu_us / events as f64);
    report.health.target_cpu_of = Some(format!("Prometheus at {} over the measured interval", prom.url));
}

/// Runs the plan, prints the text report and writes the files; returns the
/// exit code: INVALID when any scenario's driver was the bottleneck.
pub async fn execute(plan: Plan) -> anyhow::Result<i32> {
    let prepared = Prepared::new(&plan).await?;
    let (cancel, signal) = cancel_on_ctrl_c("flowbench: interrupted; finishing the report");
    if let Some(at) = plan.start_at {
        // Every shard's load starts at the same instant.
        let wait =
            at.duration_since(std::time::SystemTime::now()).map_err(|_| anyhow::anyhow!("--start-at passed while the stack started"))?;
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = cancel.cancelled() => {}
        }
    }
    // Ctrl-C before the load began: nothing ran, and the report says so.
    let stopped_before_start = cancel.is_cancelled();
    let mut report = Report {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        flowbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        label: plan.label.clone(),
        interrupted: false,
        target: TargetInfo {
            url: prepared.url.clone(),
            embedded: prepared.embedded(),
            mock_script: plan.mock_script.as_ref().map(|p| p.display().to_string()),
        },
        machine: Machine::here(),
        scenarios: Vec::new(),
        thresholds: Vec::new(),
        max_error_rate: None,
        request_slo: plan.request_slo.as_ref().map(|r| r.text.clone()),
        shard: plan.shard,
        shards: Vec::new(),
    };
    report.interrupted |= stopped_before_start;
    for (index, scenario) in plan.scenarios.iter().enumerate() {
        if cancel.is_cancelled() {
            break;
        }
        let (scenario, interrupted) =
            prepared.drive(&plan, index, scenario.load.clone(), (scenario.warmup, scenario.duration), &cancel).await;
        report.scenarios.push(scenario);
        report.interrupted |= interrupted;
    }
    signal.abort();
    prepared.stop();
    for threshold in &plan.thresholds {
        let judged: Vec<_> = report.scenarios.iter().filter(|s| threshold.applies_to(&s.name)).map(|s| threshold.judge(s)).collect();
        if judged.is_empty() {
            // Scoped to a scenario that did not run: nothing met it.
            let scenario = threshold.scenario.clone().unwrap_or_default();
            report.thresholds.push(ThresholdResult { threshold: threshold.text.clone(), scenario, value: None, passed: false });
        }
        report.thresholds.extend(judged);
    }
    report.max_error_rate = Some(plan.max_error_rate);
    print!("{}", report.to_text());
    write_outputs(&report, &plan.files)?;
    let code = exit_code(&report, plan.max_error_rate);
    say_why(&report, code, plan.max_error_rate);
    Ok(code)
}

/// The report as JSON, Markdown, BMF and HTML, where `outputs` names files.
pub fn write_outputs(report: &Report, outputs: &ReportFiles) -> anyhow::Result<()> {
    if let Some(path) = &outputs.json {
        write_file(path, serde_json::to_vec_pretty(report)?)?;
    }
    if let Some(path) = &outputs.markdown {
        write_file(path, report.to_markdown())?;
    }
    if let Some(path) = &outputs.bmf {
        write_file(path, serde_json::to_vec_pretty(&report.to_bmf())?)?;
    }
    if let Some(path) = &outputs.html {
        let name = outputs.json.as_ref().map_or_else(|| "this run".to_owned(), |p| p.display().to_string());
        write_file(path, crate::report::html::render(&[(name, report.clone())])?)?;
    }
    Ok(())
}

/// Each planned scenario's apps for the driver, each with its key.
fn apps(plan: &Plan, key: impl Fn(&PlannedApp) -> anyhow::Result<HeaderValue>) -> anyhow::Result<Vec<Vec<App>>> {
    plan.scenarios
        .iter()
        .map(|s| {
            s.apps
                .iter()
                .map(|a| {
                    Ok(App {
                        name: a.name.clone(),
                        mode: a.mode,
                        api_key: key(a)?,
                        path: a.path.clone(),
                        weight: a.weight,
                        inputs: a.inputs.clone(),
                    })
                })
                .collect()
        })
        .collect()
}

/// Interrupted, else INVALID when any scenario's driver was the bottleneck
/// (so CI cannot take a lying run for a pass), else FAILED when a scenario
/// had no successful request in its measured phase (an outage, or a
/// target that refuses every run: a run that cannot tell is not a pass),
/// else ERRORS when a scenario's failures were over `max_error_rate`,
/// else THRESHOLD, else OK.
pub(crate) fn exit_code(report: &Report, max_error_rate: f64) -> i32 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.scenarios.iter().any(|s| s.health.verdict == HealthVerdict::Invalid) {
        exit::INVALID
    } else if !unsucceeded(report).is_empty() {
        exit::FAILED
    } else if !over_error_budget(report, max_error_rate).is_empty() {
        exit::ERRORS
    } else if report.thresholds.iter().any(|t| !t.passed) {
        exit::THRESHOLD
    } else {
        exit::OK
    }
}

/// Why the run exits as it does, on stderr (`run` and `merge`).
pub(crate) fn say_why(report: &Report, code: i32, max_error_rate: f64) {
    if code == exit::INVALID {
        eprintln!("flowbench: INVALID: the driver, not the target, was the bottleneck (see each scenario's driver health)");
    }
    for (name, errors) in unsucceeded(report) {
        eprintln!("flowbench: scenario {name}: no request succeeded in the measured phase ({errors} failed; see its errors by class)");
    }
    if code == exit::ERRORS {
        for (name, rate) in over_error_budget(report, max_error_rate) {
            eprintln!(
                "flowbench: scenario {name}: {:.2}% of measured requests failed, over --max-error-rate {:.2}% (see its errors by class)",
                rate * 100.0,
                max_error_rate * 100.0
            );
        }
    }
    if code == exit::THRESHOLD {
        eprintln!("flowbench: a threshold was crossed (see Thresholds)");
    }
}

/// The scenarios without one answered request in their measured phase
/// (successes, and streams left on purpose with `--abort-after-chunks`),
/// each with its errors.
pub(crate) fn unsucceeded(report: &Report) -> Vec<(&str, u64)> {
    report.scenarios.iter().filter(|s| s.counts.ok + s.counts.aborted() == 0).map(|s| (s.name.as_str(), s.counts.errors)).collect()
}

/// The scenarios whose error rate (`figures`' `error_rate`) is over `limit`, with it.
fn over_error_budget(report: &Report, limit: f64) -> Vec<(&str, f64)> {
    use crate::report::figures::{Figure, Scalar};
    report
        .scenarios
        .iter()
        .filter_map(|s| Figure::Scalar(Scalar::ErrorRate).read(s).filter(|rate| *rate > limit).map(|rate| (s.name.as_str(), rate)))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_invalid_run_has_its_own_exit_code() {
        let mut report = crate::report::sample::sample_report();
        assert_eq!(exit_code(&report, 1.0), exit::OK);
        report.scenarios[1].health.verdict = HealthVerdict::Disturbed;
        assert_eq!(exit_code(&report, 1.0), exit::OK, "disturbed figures are marked, not failed");
        report.thresholds.push(ThresholdResult { threshold: "qps>1".into(), scenario: "llm".into(), value: Some(0.5), passed: false });
        assert_eq!(exit_code(&report, 1.0), exit::THRESHOLD);
        report.scenarios[0].health.verdict = HealthVerdict::Invalid;
        assert_eq!(exit_code(&report, 1.0), exit::INVALID, "an invalid run's thresholds mean nothing");
        report.interrupted = true;
        assert_eq!(exit_code(&report, 1.0), exit::INTERRUPTED);
    }

    /// Failures over the budget have their own code, after INVALID and a
    /// scenario with no success, before thresholds; streams left on
    /// purpose are not failures.
    #[test]
    fn failures_over_the_error_budget_fail_the_run() {
        let mut report = crate::report::sample::sample_report();
        // 10% of the empty scenario's measured requests failed; a sixth of
        // llm's (its 5xx and two streams that broke the grammar).
        assert_eq!(exit_code(&report, 0.01), exit::ERRORS);
        assert_eq!(over_error_budget(&report, 0.01)[0], ("empty", 0.1));
        assert_eq!(over_error_budget(&report, 0.10).iter().map(|(s, _)| *s).collect::<Vec<_>>(), ["llm"], "integrity errors are errors");
        assert_eq!(exit_code(&report, 1.0 / 6.0), exit::OK, "at the limit is within it");
        report.thresholds.push(ThresholdResult { threshold: "qps>1".into(), scenario: "llm".into(), value: Some(0.5), passed: false });
        assert_eq!(exit_code(&report, 0.01), exit::ERRORS);
        report.scenarios[0].counts.ok = 0;
        assert_eq!(exit_code(&report, 0.01), exit::FAILED);
        // Every failure a stream left on purpose after its first chunks: answered, not failed.
        for s in &mut report.scenarios {
            s.counts.errors_by_class = [("aborted".to_owned(), s.counts.errors)].into();
        }
        assert!(unsucceeded(&report).is_empty());
        assert_eq!(exit_code(&report, 0.0), exit::THRESHOLD);
    }

    /// A scenario whose every measured request failed, or that measured
    /// none, fails the run: it cannot say the target is fine.
    #[test]
    fn a_scenario_without_a_success_fails_the_run() {
        let mut report = crate::report::sample::sample_report();
        report.scenarios[0].counts.ok = 0;
        assert_eq!(exit_code(&report, 1.0), exit::FAILED);
        assert_eq!(unsucceeded(&report), [("empty", report.scenarios[0].counts.errors)]);
        report.scenarios[0].counts.errors = 0;
        assert_eq!(exit_code(&report, 1.0), exit::FAILED, "nothing measured is not a pass");
        report.thresholds.push(ThresholdResult { threshold: "qps>1".into(), scenario: "llm".into(), value: Some(0.5), passed: false });
        assert_eq!(exit_code(&report, 1.0), exit::FAILED, "a failed run's thresholds come after");
        report.scenarios[1].health.verdict = HealthVerdict::Invalid;
        assert_eq!(exit_code(&report, 1.0), exit::INVALID);
    }
}
