//! `flowbench capacity`: for each scenario, the most load at which an SLO
//! (thresholds, as `--threshold` writes them) holds. A geometric ramp
//! (×2 a step) until a step fails, then bisection between the highest pass
//! and the lowest failure until they are within `--resolution`. Each step
//! has its own warm-up and runs long enough for the SLO's percentiles to
//! have a tail (20 requests beyond the highest quantile), and a verdict
//! too near a limit to tell at 95% is measured again, longer.
//!
//! A step whose driver was the bottleneck (its health INVALID, or the open
//! model's connections all busy) says nothing about the target: the search
//! stops there and the answer is "at least" the last pass.
//!
//! Exit codes: 0 a capacity found (or the SLO held up to `--max`), 2 a bad
//! flag or SLO, 3 the driver's limit reached first (at least), 4 the SLO
//! failed at the first step, 130 interrupted.

use super::cancel_on_ctrl_c;
use super::run::Prepared;
use crate::cli::CapacityArgs;
use crate::exit;
use crate::load::health::HealthVerdict;
use crate::load::metrics::Metric;
use crate::load::schedule::LoadModel;
use crate::plan::Plan;
use crate::report::ScenarioReport;
use crate::report::thresholds::{Standing, Threshold};
use schema::capacity::{
    Capacity, CapacityReport, CapacityStep, NOT_REACHED, Percentiles, SCHEMA, SCHEMA_VERSION, ScenarioCapacity, SearchBy, SloCheck,
    StepVerdict,
};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Requests beyond the SLO's highest quantile a step needs: a p99 from a
/// hundred requests is its largest one, not a percentile.
const TAIL_SAMPLES: f64 = 20.0;
/// The longest a step's measured phase grows to for its samples.
const MAX_STEP: Duration = Duration::from_secs(120);
/// The open model's connections count as all busy from this share on.
const BUSY_CONNECTIONS: f64 = 0.9;
/// The target's mean service time this many times its first step's: it slowed.
const SLOWER: f64 = 2.0;
/// The target's CPU counts as run out from this share of the cores left to it.
const BUSY_CPU: f64 = 0.85;

/// What the search is bounded by and how it steps.
pub struct Search {
    pub by: SearchBy,
    pub start: f64,
    pub max: f64,
    pub resolution: f64,
    pub repeats: u32,
    pub min_duration: Duration,
    pub warmup: Duration,
    pub poisson: bool,
    /// `--connections`, fixed; `None`: sized to each step's load.
    pub connections: Option<u32>,
    /// The CPU the target may use (`--target-cores`, or its cgroup's limit).
    pub target_cores: Option<f64>,
}

/// A cgroup v2's CPU limit in cores (`cpu.max`: quota and period); `None`
/// when it has none (`max`) or cannot be read. Relative paths are under
/// /sys/fs/cgroup, as `--target-cgroup` takes them.
fn cgroup_cores(path: &std::path::Path) -> Option<f64> {
    let dir = if path.is_absolute() { path.to_owned() } else { std::path::Path::new("/sys/fs/cgroup").join(path) };
    let text = std::fs::read_to_string(dir.join("cpu.max")).ok()?;
    let mut parts = text.split_whitespace();
    let quota: f64 = parts.next()?.parse().ok()?;
    let period: f64 = parts.next()?.parse().ok()?;
    (period > 0.0).then(|| quota / period)
}

/// The fewest connections an open step gets when the search sizes them.
const MIN_CONNECTIONS: u32 = 256;
/// Connections for twice the requests a step's load keeps in flight.
const CONNECTION_HEADROOM: f64 = 2.0;

/// The most connections this process can open: its open-files limit less
/// what the runtime, the stack and the reports keep open.
fn connection_cap() -> u32 {
    let soft = std::fs::read_to_string("/proc/self/limits").ok().and_then(|limits| {
        let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
        line.split_whitespace().nth(3)?.parse::<u64>().ok()
    });
    soft.map_or(16_384, |n| n.saturating_sub(512).clamp(64, 1_000_000) as u32)
}

impl CapacityArgs {
    /// The run's plan (targets, scenarios, apps) and the search, checked.
    pub fn plan(&self) -> Result<(Plan, Search, Vec<Threshold>), crate::plan::UsageError> {
        let usage = |m: String| crate::plan::UsageError(m);
        if self.run.rate.is_some() || self.run.users.is_some() || self.run.spawn_rate.is_some() {
            return Err(usage("capacity chooses each step's load: give --start and --max, not --rate, --users or --spawn-rate".into()));
        }
        if self.run.shard.is_some() || self.run.start_at.is_some() {
            return Err(usage("capacity runs as one driver: --shard and --start-at are run's".into()));
        }
        // The open model's --poisson and --connections apply to each step's
        // rate, which the search sets: the run's own check of them against a
        // scenario's load does not apply.
        let mut run = self.run.clone();
        run.poisson = false;
        run.connections = None;
        let plan = run.plan()?;
        let mut slo: Vec<Threshold> = self.slo.clone();
        slo.extend(plan.slo.iter().cloned());
        slo.extend(plan.thresholds.iter().cloned());
        if slo.is_empty() {
            return Err(usage("capacity needs an SLO: --slo 'duration_p95<100ms' (repeatable), or a scenario file's thresholds".into()));
        }
        if !(self.resolution > 0.0 && self.resolution < 1.0) {
            return Err(usage(format!("--resolution {}: give a share between 0 and 100%", self.resolution)));
        }
        let (start, max) = match SearchBy::from(self.by) {
            SearchBy::Rate => (self.start.unwrap_or(10.0), self.max.unwrap_or(100_000.0)),
            SearchBy::Users => (self.start.unwrap_or(1.0).round(), self.max.unwrap_or(10_000.0).round()),
        };
        if !(start > 0.0 && start <= max) {
            return Err(usage(format!("--start {start} and --max {max}: the start must be above 0 and at most the max")));
        }
        let search = Search {
            by: self.by.into(),
            start,
            max,
            resolution: self.resolution,
            repeats: self.repeats,
            min_duration: self.run.duration.unwrap_or(Duration::from_secs(5)),
            warmup: self.run.warmup.unwrap_or(Duration::from_secs(2)),
            poisson: self.run.poisson,
            connections: self.run.connections,
            target_cores: self.target_cores.or_else(|| plan.target_cgroup.as_deref().and_then(cgroup_cores)),
        };
        Ok((plan, search, slo))
    }
}

pub async fn execute(plan: Plan, search: Search, slo: Vec<Threshold>) -> anyhow::Result<i32> {
    let prepared = Prepared::new(&plan).await?;
    let (cancel, signal) = cancel_on_ctrl_c("flowbench capacity: interrupted; writing the steps measured");
    let mut report = CapacityReport {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        flowbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        target: prepared.url.clone(),
        by: search.by,
        slo: slo.iter().map(|t| t.text.clone()).collect(),
        request_slo: plan.request_slo.as_ref().map(|r| r.text.clone()),
        resolution: search.resolution,
        interrupted: false,
        scenarios: Vec::new(),
    };
    for index in 0..plan.scenarios.len() {
        if cancel.is_cancelled() {
            break;
        }
        let name = plan.scenarios[index].name.clone();
        let applies: Vec<&Threshold> = slo.iter().filter(|t| t.applies_to(&name)).collect();
        let mut searcher = Searcher { plan: &plan, prepared: &prepared, search: &search, slo: &applies, index, cancel: &cancel };
        report.scenarios.push(searcher.find(&name).await);
    }
    report.interrupted = cancel.is_cancelled();
    signal.abort();
    prepared.stop();
    print!("{}", report.to_text());
    if let Some(path) = &plan.files.json {
        super::write_file(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(path) = &plan.files.bmf {
        super::write_file(path, serde_json::to_vec_pretty(&report.to_bmf())?)?;
    }
    if let Some(path) = &plan.files.html {
        super::write_file(path, crate::report::html::render_capacity(&report)?)?;
    }
    Ok(exit_code(&report))
}

/// Interrupted; else a scenario whose driver ran out first (INVALID: its
/// answer is "at least"); else one that failed its first step (THRESHOLD);
/// else OK.
pub fn exit_code(report: &CapacityReport) -> i32 {
    if report.interrupted {
        exit::INTERRUPTED
    } else if report.scenarios.iter().any(|s| s.capacity.at_least && s.capacity.limited_by != NOT_REACHED) {
        exit::INVALID
    } else if report.scenarios.iter().any(|s| s.capacity.rate.is_none()) {
        exit::THRESHOLD
    } else {
        exit::OK
    }
}

struct Searcher<'a> {
    plan: &'a Plan,
    prepared: &'a Prepared,
    search: &'a Search,
    slo: &'a [&'a Threshold],
    index: usize,
    cancel: &'a CancellationToken,
}

impl Searcher<'_> {
    async fn find(&mut self, name: &str) -> ScenarioCapacity {
        let mut steps: Vec<CapacityStep> = Vec::new();
        let (mut low, mut high): (Option<f64>, Option<f64>) = (None, None);
        let mut stopped: Option<usize> = None;
        let mut level = self.search.start;
        // The ramp: doubling until a step fails, the driver runs out or the bound.
        loop {
            let step = self.step(level, steps.last(), steps.first()).await;
            let verdict = step.verdict;
            steps.push(step);
            if self.cancel.is_cancelled() {
                break;
            }
            match verdict {
                StepVerdict::DriverLimited => {
                    stopped = Some(steps.len() - 1);
                    break;
                }
                v if v.passed() => {
                    low = Some(level);
                    if level >= self.search.max {
                        break;
                    }
                    level = self.round(level * 2.0).min(self.search.max);
                }
                _ => {
                    high = Some(level);
                    break;
                }
            }
        }
        // Bisection (geometric) between the highest pass and the lowest failure.
        while let (Some(l), Some(h), None) = (low, high, stopped) {
            if h / l - 1.0 <= self.search.resolution || self.cancel.is_cancelled() {
                break;
            }
            let mid = self.round((l * h).sqrt());
            if mid <= l || mid >= h {
                break;
            }
            let step = self.step(mid, steps.last(), steps.first()).await;
            let verdict = step.verdict;
            steps.push(step);
            match verdict {
                StepVerdict::DriverLimited => stopped = Some(steps.len() - 1),
                v if v.passed() => low = Some(mid),
                _ => high = Some(mid),
            }
        }
        let capacity = self.answer(low, high, stopped, &steps);
        ScenarioCapacity { name: name.to_owned(), capacity, steps }
    }

    fn round(&self, level: f64) -> f64 {
        match self.search.by {
            SearchBy::Users => level.round().max(1.0),
            // Three significant digits: steps people can read and repeat.
            SearchBy::Rate => {
                let scale = 10f64.powi(level.log10().floor() as i32 - 2);
                (level / scale).round() * scale
            }
        }
    }

    fn answer(&self, low: Option<f64>, high: Option<f64>, stopped: Option<usize>, steps: &[CapacityStep]) -> Capacity {
        let unit = self.search.by.unit().to_owned();
        if let Some(i) = stopped {
            let (limited_by, why) = driver_limit(&steps[i]);
            return Capacity { rate: low, low, high: None, unit, at_least: true, limited_by, why };
        }
        let Some(h) = high else {
            let why = format!("the SLO held at every step up to --max {}", self.search.max);
            return Capacity { rate: low, low, high: None, unit, at_least: true, limited_by: NOT_REACHED.into(), why };
        };
        // The lowest failing step says what ran out.
        let failing = steps.iter().rfind(|s| s.offered == h).expect("a failing step");
        let (limited_by, why) = knee(failing);
        Capacity { rate: low, low, high: Some(h), unit, at_least: false, limited_by, why }
    }

    /// Measures one load, again and longer while its verdict is within noise.
    /// `first`: the search's first step, whose service time is the target's
    /// unloaded own.
    async fn step(&self, level: f64, before: Option<&CapacityStep>, first: Option<&CapacityStep>) -> CapacityStep {
        let baseline = first.map(|f| f.service_ms);
        let mut duration = self.duration_for(level, before);
        let mut runs = 0;
        loop {
            runs += 1;
            let load = self.load(level, before);
            let (report, _) = self.prepared.drive(self.plan, self.index, load, (self.search.warmup, duration), self.cancel).await;
            let mut step = self.judge(level, &report, baseline);
            step.runs = runs;
            let noisy = matches!(step.verdict, StepVerdict::PassWithinNoise | StepVerdict::FailWithinNoise);
            if !noisy || runs > self.search.repeats || duration >= MAX_STEP || self.cancel.is_cancelled() {
                return step;
            }
            duration = (duration * 2).min(MAX_STEP);
        }
    }

    /// The load of a step at `level`; an open step's connections, unless
    /// fixed, for twice what Little's law keeps in flight at the last
    /// step's service time, so the pool is not what the search finds.
    fn load(&self, level: f64, before: Option<&CapacityStep>) -> LoadModel {
        match self.search.by {
            SearchBy::Rate => LoadModel::Open {
                rate: level,
                poisson: self.search.poisson,
                connections: self.search.connections.unwrap_or_else(|| {
                    let service_s = before.map_or(0.0, |b| b.service_ms / 1e3);
                    let wanted = (CONNECTION_HEADROOM * level * service_s).ceil().min(f64::from(u32::MAX)) as u32;
                    wanted.clamp(MIN_CONNECTIONS, connection_cap().max(MIN_CONNECTIONS))
                }),
                seed: self.plan.seed,
            },
            SearchBy::Users => LoadModel::Closed {
                users: level as u32,
                // Every user started within the first half of the warm-up.
                spawn_rate: level / (self.search.warmup.as_secs_f64() / 2.0).max(0.1),
            },
        }
    }

    /// Long enough for the SLO's criteria to be resolved (a tail beyond
    /// each percentile, enough requests for an error rate) at the rate expected (the offered one, or with users the
    /// last step's rate per user), and never shorter than `--duration`.
    fn duration_for(&self, level: f64, before: Option<&CapacityStep>) -> Duration {
        let needed = self.slo.iter().filter_map(|t| t.samples_to_resolve(TAIL_SAMPLES)).fold(TAIL_SAMPLES * 2.0, f64::max);
        let rate = match self.search.by {
            SearchBy::Rate => Some(level),
            SearchBy::Users => before.filter(|b| b.offered > 0.0 && b.achieved_rps > 0.0).map(|b| b.achieved_rps / b.offered * level),
        };
        let secs = rate.map_or(0.0, |r| needed / r);
        Duration::from_secs_f64(secs.min(MAX_STEP.as_secs_f64())).max(self.search.min_duration)
    }

    fn judge(&self, level: f64, report: &ScenarioReport, baseline_service_ms: Option<f64>) -> CapacityStep {
        let mut checks = Vec::new();
        let (mut missed, mut noisy_pass, mut noisy_fail) = (false, false, false);
        for t in self.slo {
            let (value, standing) = t.standing(report);
            // Judged as measured, for a verdict within noise.
            let as_measured = t.judge(report).passed;
            match standing {
                Standing::Missed => missed = true,
                Standing::WithinNoise if as_measured => noisy_pass = true,
                Standing::WithinNoise => noisy_fail = true,
                Standing::Met => {}
            }
            checks.push(SloCheck {
                threshold: t.text.clone(),
                value: value.map(|v| v.0),
                low: value.map(|v| v.1),
                high: value.map(|v| v.2),
                standing: match standing {
                    Standing::Met => "met",
                    Standing::Missed => "missed",
                    Standing::WithinNoise => "within_noise",
                }
                .into(),
                limit: Some(t.limit()),
                unit: t.unit_name().into(),
            });
        }
        let duration = report.latency(Metric::Duration);
        let achieved = report.qps.avg;
        let concurrency = achieved * duration.avg / 1e3;
        let mut driver_reasons = Vec::new();
        if report.health.verdict == HealthVerdict::Invalid {
            driver_reasons.extend(report.health.reasons.iter().cloned());
        }
        // The connections' own occupancy: requests on them by their actual
        // send (service time), not by the intended one a queue adds to.
        // A pool all busy is the driver's limit while the target answers as
        // fast as at the first step; when the target's own time grew (it
        // queues), the pool filled because of it, and the SLO judges.
        let service_ms = report.latency(Metric::ServiceTime).avg;
        let on_connections = achieved * service_ms / 1e3;
        let target_slowed = baseline_service_ms.is_some_and(|base| service_ms > SLOWER * base);
        if let LoadModel::Open { connections, .. } = report.load.model
            && on_connections >= BUSY_CONNECTIONS * f64::from(connections)
            && !target_slowed
        {
            let raise = if self.search.connections.is_some() {
                "raise --connections".to_owned()
            } else {
                format!("the open-files limit allows {}: raise ulimit -n", connection_cap())
            };
            driver_reasons.push(format!(
                "{on_connections:.0} of the driver's {connections} connections busy on average: arrivals waited for a free one ({raise})"
            ));
        }
        let verdict = if !driver_reasons.is_empty() {
            StepVerdict::DriverLimited
        } else if missed {
            StepVerdict::Fail
        } else if noisy_fail {
            StepVerdict::FailWithinNoise
        } else if noisy_pass {
            StepVerdict::PassWithinNoise
        } else {
            StepVerdict::Pass
        };
        let percentiles = |m: Metric| {
            let s = report.latency(m);
            (s.n > 0).then_some(Percentiles { p50: s.p50, p95: s.p95, p99: s.p99 })
        };
        CapacityStep {
            offered: level,
            achieved_rps: achieved,
            goodput_rps: report.goodput_rps(),
            ttfe_ms: percentiles(Metric::Ttfe).filter(|_| report.streams()),
            duration_ms: percentiles(Metric::Duration).unwrap_or_default(),
            error_rate: crate::report::figures::Figure::Scalar(crate::report::figures::Scalar::ErrorRate).read(report).unwrap_or(0.0),
            errors_by_class: report.counts.errors_by_class.clone(),
            target_cpu_cores: report.health.target_cpu_cores,
            driver_cpu_cores: report.health.driver_cpu_cores,
            concurrency,
            service_ms,
            measured_s: report.load.measured_s,
            runs: 1,
            verdict,
            checks,
            driver_reasons,
            machine_cores: report.health.machine_cores,
            target_cores: self.search.target_cores,
        }
    }
}

/// What the driver ran out of, and why.
fn driver_limit(step: &CapacityStep) -> (String, String) {
    let connections = step.driver_reasons.iter().any(|r| r.contains("connections"));
    let what = if connections { "connections" } else { "driver" };
    (
        what.to_owned(),
        format!(
            "at {:.1} the driver could not keep up ({}); the target takes at least the last load that passed",
            step.offered,
            step.driver_reasons.join("; ")
        ),
    )
}

/// What ran out at the lowest failing step: errors of a class, the
/// target's CPU near the cores left to it, or latency alone.
fn knee(step: &CapacityStep) -> (String, String) {
    if step.error_rate > 0.0
        && step.checks.iter().any(|c| c.threshold.contains("error_rate") && c.standing != "met")
        && let Some((class, n)) = step.errors_by_class.iter().max_by_key(|(_, n)| **n)
    {
        return (format!("errors:{class}"), format!("at {:.1}, {n} requests failed as {class}", step.offered));
    }
    if let Some(cpu) = step.target_cpu_cores {
        // The cores the target could have: its limit where known, else the
        // machine's less the driver's own.
        let (cores, whose) = match step.target_cores {
            Some(limit) => (limit, "it may use"),
            None => ((step.machine_cores as f64 - step.driver_cpu_cores).max(1.0), "the driver left to it"),
        };
        if cpu >= BUSY_CPU * cores {
            return ("target_cpu".into(), format!("at {:.1} the target used {cpu:.2} of the {cores:.2} cores {whose}", step.offered));
        }
    }
    let missed: Vec<&str> = step.checks.iter().filter(|c| c.standing != "met").map(|c| c.threshold.as_str()).collect();
    let cpu = step.target_cpu_cores.map_or_else(|| "target CPU not measured".to_owned(), |c| format!("target CPU {c:.2} cores"));
    ("latency".into(), format!("at {:.1} {} missed with {cpu}, no errors over the SLO", step.offered, missed.join(", ")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A cgroup's `cpu.max` is its CPU limit in cores; `max` is none.
    #[test]
    fn a_cgroups_cpu_limit_is_read_in_cores() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("cpu.max"), "150000 100000\n").unwrap();
        assert_eq!(cgroup_cores(dir.path()), Some(1.5));
        std::fs::write(dir.path().join("cpu.max"), "max 100000\n").unwrap();
        assert_eq!(cgroup_cores(dir.path()), None);
        assert_eq!(cgroup_cores(&dir.path().join("absent")), None);
    }
}
