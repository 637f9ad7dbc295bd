//! The gate's rounds: fresh base and head stacks (`flowbench up`) pinned to
//! CPU 1, driven at the same time by the head's `flowbench ab` on CPU 0 (half
//! the users on each), phase after phase: a few slices of the empty
//! scenario, then of the llm scenario, both saturating the core, then a
//! light open-model phase for the time to first event. The order the two
//! stacks start alternates between rounds (ABBA over rounds, and over slices
//! inside `flowbench ab`).
//!
//! Each phase's file is read as `schema::ab::AbReport`, the stacks'
//! API keys from the line each `flowbench up` prints (`schema::stack::StackInfo`).
//! A round with a disturbed slice (an invalid driver, other processes' CPU
//! or the host's steal) is rerun once; more than a quarter of rounds
//! disturbed: the gate could not measure. Errors never disturb a round:
//! they are the head's own doing, counted per side and gated
//! (`verdict::error_rate`), so a head that fails now and then cannot have
//! its bad rounds dropped.

use super::GateArgs;
use super::metrics::{METRICS, paired};
use super::phase::Phase;
use anyhow::{Context, bail};
use schema::ab::{AbReport, Slice};
use schema::figures::{Figure, Scalar};
use schema::health;
use schema::report::ScenarioReport;
use schema::stack::StackInfo;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A side of the comparison: a binary and an optional injected cost.
#[derive(Debug, Clone)]
pub(super) struct Side {
    pub(super) label: &'static str,
    pub(super) binary: PathBuf,
    pub(super) busy_per_request: Duration,
    pub(super) busy_per_event: Duration,
}

impl Side {
    /// `binary` as it is, nothing injected.
    pub(super) fn plain(label: &'static str, binary: PathBuf) -> Self {
        Side { label, binary, busy_per_request: Duration::ZERO, busy_per_event: Duration::ZERO }
    }
}

/// One round's figures, per metric (in `METRICS` order; NaN for a metric
/// whose phase the round did not drive).
#[derive(Debug, Clone)]
pub(super) struct Round {
    /// Mean over the round's slices of ln(head/base).
    pub(super) log_ratios: Vec<f64>,
    pub(super) base: Vec<f64>,
    pub(super) head: Vec<f64>,
    /// Failed and measured requests over the round's slices, per side.
    pub(super) base_errors: Tally,
    pub(super) head_errors: Tally,
    pub(super) disturbed: Option<String>,
}

/// Requests that failed, of those measured.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(super) struct Tally {
    pub(super) failed: u64,
    pub(super) measured: u64,
}

impl Tally {
    fn add(&mut self, side: &ScenarioReport) {
        self.failed += side.counts.errors;
        self.measured += side.counts.ok + side.counts.errors;
    }
}

impl Round {
    /// The base side's mean of `metric` (the self-test calibrates on it).
    pub(super) fn base_of(&self, metric: &str) -> f64 {
        self.base[METRICS.iter().position(|m| m.name == metric).expect("a metric")]
    }

    /// Round `index` (from 0) from its phases' reports, side a labelled `a`
    /// and side b `b`: per metric, the mean of the slices' log ratios and the
    /// geometric means of each side; then whether any slice was disturbed.
    #[cfg(test)]
    fn of(index: usize, phases: &[Phase], reports: &[(Phase, AbReport)], a: &str, b: &str) -> anyhow::Result<Round> {
        Self::of_stacks(index, phases, reports, a, b, true)
    }

    /// As `of`; `same_cpu_scope` false when the two stacks' target CPU
    /// covers different processes (a base from before the server ran in a
    /// process of its own counts the mock's CPU too): the CPU metrics of a
    /// phase that calls the mock are then not compared (NaN, so their
    /// verdict is Unresolved, never a pass). A phase that never calls the
    /// mock compares them: that process's mock only idles.
    fn of_stacks(
        index: usize,
        phases: &[Phase],
        reports: &[(Phase, AbReport)],
        a: &str,
        b: &str,
        same_cpu_scope: bool,
    ) -> anyhow::Result<Round> {
        let slices = |phase: Phase| -> &[Slice] { reports.iter().find(|(p, _)| *p == phase).map_or(&[], |(_, r)| &r.slices) };
        let mut out = Round {
            log_ratios: Vec::new(),
            base: Vec::new(),
            head: Vec::new(),
            base_errors: Tally::default(),
            head_errors: Tally::default(),
            disturbed: None,
        };
        for &phase in phases {
            for slice in slices(phase) {
                out.base_errors.add(&slice.a);
                out.head_errors.add(&slice.b);
            }
        }
        for metric in &METRICS {
            let cpu = matches!(metric.figure, Figure::Scalar(Scalar::TargetCpuPerRequest | Scalar::TargetCpuPerEvent));
            if !phases.contains(&metric.phase) || (cpu && !same_cpu_scope && metric.phase.calls_the_mock()) {
                out.log_ratios.push(f64::NAN);
                out.base.push(f64::NAN);
                out.head.push(f64::NAN);
                continue;
            }
            let mut logs = Vec::new();
            let (mut base, mut head) = (Vec::new(), Vec::new());
            for slice in slices(metric.phase) {
                let Some(p) = paired(metric, slice) else { bail!("{} missing from a slice of round {}", metric.name, index + 1) };
                logs.push(p.log_ratio);
                base.push(p.base);
                head.push(p.head);
            }
            if logs.is_empty() {
                bail!("round {} measured no {} slices", index + 1, metric.phase.name());
            }
            out.log_ratios.push(crate::stats::mean(&logs));
            out.base.push(crate::stats::geomean(&base));
            out.head.push(crate::stats::geomean(&head));
        }
        let mut disturbed = Vec::new();
        for &phase in phases {
            let name = phase.name();
            for (i, slice) in slices(phase).iter().enumerate() {
                for (side, label) in [(&slice.a, a), (&slice.b, b)] {
                    for why in disturbances(side) {
                        disturbed.push(format!("{label} {name} slice {}: {why}", i + 1));
                    }
                }
            }
        }
        out.disturbed = (!disturbed.is_empty()).then(|| disturbed.join(", "));
        Ok(out)
    }
}

/// Why one side of a slice cannot be trusted: its driver's health when not
/// valid (an overloaded driver, or other processes' CPU or the host's steal
/// past the health check's limit, as its reasons say). Not its errors:
/// those are gated.
fn disturbances(side: &ScenarioReport) -> Vec<String> {
    let mut out = Vec::new();
    if side.health.verdict != health::HealthVerdict::Valid {
        out.push(serde_json::Value::from(side.health.reasons.clone()).to_string());
    }
    out
}

/// A phase's `flowbench ab --json` file.
pub(super) fn read_phase(path: &Path) -> anyhow::Result<AbReport> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let report: AbReport = serde_json::from_slice(&bytes).with_context(|| format!("{} is not a flowbench ab report", path.display()))?;
    if report.schema_version != schema::ab::SCHEMA_VERSION {
        bail!(
            "{} is an ab report of schema version {}; this gate reads {}",
            path.display(),
            report.schema_version,
            schema::ab::SCHEMA_VERSION
        );
    }
    Ok(report)
}

/// What every round of a gate (or of a self-test condition) measures the
/// same way: the two sides, the driver and the phases.
#[derive(Clone, Copy)]
pub(super) struct Rig<'a> {
    pub(super) root: &'a Path,
    pub(super) args: &'a GateArgs,
    pub(super) a: &'a Side,
    pub(super) b: &'a Side,
    pub(super) driver: &'a Path,
    pub(super) phases: &'a [Phase],
}

/// Measures `n` rounds, each rerun once when disturbed; `Err(why)` when
/// more than a quarter of them stayed disturbed.
pub(super) fn measure(rig: Rig<'_>, n: usize) -> anyhow::Result<Result<Vec<Round>, String>> {
    let mut rounds = Vec::new();
    let mut disturbed = Vec::new();
    let steps = pages::progress::Steps::new("gate", n as u64);
    for index in 0..n {
        for attempt in 0..2 {
            steps.doing(&format!("round {}, attempt {}: fresh stacks, {} phases", index + 1, attempt + 1, rig.phases.len()));
            let measured = round(rig, index)?;
            match &measured.disturbed {
                None => {
                    rounds.push(measured);
                    break;
                }
                Some(why) => {
                    steps.note(&format!("round {} attempt {} disturbed: {why}", index + 1, attempt + 1));
                    if attempt == 1 {
                        disturbed.push(format!("round {}: {why}", index + 1));
                    }
                }
            }
        }
        steps.step("round done");
    }
    steps.finish();
    if disturbed.len() * 4 > n {
        return Ok(Err(format!("{} of {n} rounds were disturbed: {}", disturbed.len(), disturbed.join(" | "))));
    }
    Ok(Ok(rounds))
}

/// For the self-test: rounds until `n` are undisturbed, at most `2n`
/// attempts; `Err(why)` when fewer were. Its conditions are measured on
/// one build, so leaving out a round the host disturbed (both sides alike)
/// leans neither way, and the rates are drawn from rounds a gate would keep.
pub(super) fn measure_undisturbed(rig: Rig<'_>, n: usize) -> anyhow::Result<Result<Vec<Round>, String>> {
    let mut rounds = Vec::new();
    let mut disturbed = 0;
    let steps = pages::progress::Steps::new("gate", n as u64);
    for index in 0..2 * n {
        if rounds.len() == n {
            break;
        }
        steps.doing(&format!("attempt {}: fresh stacks, {} phases ({} undisturbed so far)", index + 1, rig.phases.len(), rounds.len()));
        let measured = round(rig, index)?;
        match &measured.disturbed {
            None => {
                rounds.push(measured);
                steps.step("round done");
            }
            Some(why) => {
                disturbed += 1;
                steps.note(&format!("attempt {} disturbed, left out: {why}", index + 1));
            }
        }
    }
    steps.finish();
    if rounds.len() < n {
        return Ok(Err(format!("{} undisturbed rounds of the {n} asked for in {} attempts ({disturbed} disturbed)", rounds.len(), 2 * n)));
    }
    Ok(Ok(rounds))
}

/// `program` pinned to `cpu` with taskset when there is one and more than one
/// core, so the driver and the stacks stop trading places between rounds.
pub(super) fn pinned(program: &Path, cpu: usize) -> Command {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let has_taskset = Command::new("taskset").arg("-V").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success());
    if cores > 1 && has_taskset {
        let mut command = Command::new("taskset");
        command.arg("-c").arg(cpu.to_string()).arg(program);
        command
    } else {
        Command::new(program)
    }
}

/// A running `flowbench up` and the line it printed; stopped when dropped.
pub(super) struct RoundStack {
    child: Child,
    pub(super) info: StackInfo,
}

impl RoundStack {
    /// A stack from `side`, pinned to CPU 1.
    pub(super) fn start(root: &Path, side: &Side) -> anyhow::Result<RoundStack> {
        let mut stack = pinned(&side.binary, 1);
        stack.arg("up").arg("--mock-script").arg(root.join("fixtures/mock/gate.toml"));
        if !side.busy_per_request.is_zero() {
            stack.arg("--inject-busy-per-request").arg(format!("{}ns", side.busy_per_request.as_nanos()));
        }
        if !side.busy_per_event.is_zero() {
            stack.arg("--inject-busy-per-event").arg(format!("{}ns", side.busy_per_event.as_nanos()));
        }
        let mut child =
            stack.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().with_context(|| format!("starting the {} stack", side.label))?;
        let mut line = String::new();
        let read = BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line);
        let info = read.map_err(anyhow::Error::from).and_then(|_| StackInfo::parse(&line).map_err(anyhow::Error::from));
        match info {
            Ok(info) => Ok(RoundStack { child, info }),
            Err(e) => {
                stop(&mut child);
                Err(e.context(format!("the {} stack printed {line:?}", side.label)))
            }
        }
    }
}

impl Drop for RoundStack {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

/// SIGTERM, then waits: the server drains as it would in production.
pub(super) fn stop(child: &mut Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// Both stacks, `first` started first; the first stopped if the second fails.
fn start_both(root: &Path, first: &Side, second: &Side) -> anyhow::Result<(RoundStack, RoundStack)> {
    let first = RoundStack::start(root, first)?;
    Ok((first, RoundStack::start(root, second)?))
}

/// One round: fresh `a` and `b` stacks (started in alternating order),
/// `phases` driven at once on both by `driver`'s `flowbench ab` (on CPU 0),
/// then stopped.
fn round(rig: Rig<'_>, index: usize) -> anyhow::Result<Round> {
    let Rig { root, args, a, b, driver, phases } = rig;
    let (a_stack, b_stack) = if matches!(index % 4, 0 | 3) {
        start_both(root, a, b)?
    } else {
        let (b_stack, a_stack) = start_both(root, b, a)?;
        (a_stack, b_stack)
    };
    let mut reports = Vec::new();
    let mut failure = None;
    for &phase in phases {
        let json = root.join(format!("target/gate/ab-{}-{}.json", std::process::id(), phase.name()));
        let api_key = phase.api_key(&a_stack.info, &b_stack.info)?;
        let out = pinned(driver, 0)
            .args(["ab", "--a", &a_stack.info.server_url, "--b", &b_stack.info.server_url])
            .args(phase.ab_args(args, api_key))
            .args(["--slices", &args.load.slices.to_string()])
            .arg("--slice")
            .arg(humantime::format_duration(args.load.slice).to_string())
            .arg("--settle")
            .arg(humantime::format_duration(args.load.settle).to_string())
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            // Kept apart from the gate's progress; shown when the driver fails.
            .stderr(Stdio::piped())
            .output()?;
        if !out.status.success() {
            let said = String::from_utf8_lossy(&out.stderr);
            let tail: Vec<&str> = said.lines().rev().take(5).collect::<Vec<_>>().into_iter().rev().collect();
            failure = Some(format!("the driver failed on the {} phase ({}): {}", phase.name(), out.status, tail.join(" | ")));
            break;
        }
        reports.push((phase, read_phase(&json)?));
    }
    // A stack that names its server processes measures the server alone;
    // one that does not (before issue 27) measured the mock with it.
    let same_cpu_scope = a_stack.info.server_pids.is_empty() == b_stack.info.server_pids.is_empty();
    drop(a_stack);
    drop(b_stack);
    if let Some(why) = failure {
        bail!(why);
    }
    Round::of_stacks(index, phases, &reports, a.label, b.label, same_cpu_scope)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gate::metrics::GateMetric;
    use flowbench::report::sample::sample_scenario;
    use schema::ab::{SCHEMA, SCHEMA_VERSION};
    use schema::load::Mode;
    use schema::metrics::Metric;

    /// The phase's report as `flowbench ab` builds it, slice `i`'s side b
    /// through `b(i, report)`.
    fn ab_report(phase: Phase, slices: usize, b: impl Fn(usize, &mut ScenarioReport)) -> AbReport {
        let scenario = phase.scenario_name();
        // The TTFE phase streams: its sample is a streaming one, with events.
        let side = || {
            let mut report = sample_scenario(if phase == Phase::Ttfe { "llm" } else { &scenario }).slim();
            report.name = scenario.to_string();
            report
        };
        let slices = (0..slices)
            .map(|i| {
                let mut head = side();
                b(i, &mut head);
                Slice { a: side(), b: head }
            })
            .collect();
        AbReport {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            scenario: phase.scenario(),
            mode: if phase == Phase::Empty { Mode::Blocking } else { Mode::Streaming },
            a: "http://127.0.0.1:1".into(),
            b: "http://127.0.0.1:2".into(),
            users: 16,
            rate: (phase == Phase::Ttfe).then_some(400.0),
            slice_s: 2.0,
            settle_s: 0.3,
            interrupted: false,
            slices,
        }
    }

    /// Written as `flowbench ab --json` writes it, read back as the gate
    /// reads a phase's file.
    fn round_trip(report: &AbReport, phase: Phase) -> AbReport {
        let dir = std::env::temp_dir().join(format!("flowbench-gate-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("ab-{}-{:p}.json", phase.name(), report));
        std::fs::write(&path, serde_json::to_vec_pretty(report).unwrap()).unwrap();
        let read = read_phase(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        read
    }

    /// `got` is `want` read back from JSON: serde_json's default float
    /// parser (without `float_roundtrip`, as the workspace builds it) may
    /// land an ULP or so away from the shortest digits it wrote.
    fn same(got: f64, want: f64) -> bool {
        (got - want).abs() <= want.abs() * 4.0 * f64::EPSILON
    }

    /// Each metric's figure, read straight from the report's fields.
    fn field(metric: &GateMetric, side: &ScenarioReport) -> f64 {
        match metric.name {
            "empty QPS" => side.qps.avg,
            "empty CPU µs/request" => side.target_cpu_us_per_request.unwrap(),
            "empty p50 duration" => side.latency.0[&Metric::Duration].p50,
            "empty p99 duration" => side.latency.0[&Metric::Duration].p99,
            "TTFE p50" => side.latency.0[&Metric::Ttfe].p50,
            "TTFE p99" => side.latency.0[&Metric::Ttfe].p99,
            "llm events/s" => side.event_throughput.avg,
            "llm CPU µs/event" => side.target_cpu_us_per_event.unwrap(),
            other => panic!("no field for {other}"),
        }
    }

    #[test]
    fn reads_every_field_it_judges_from_what_flowbench_ab_writes() {
        let mut reports = Vec::new();
        for phase in Phase::ALL {
            // Side b's figures differ from slice to slice.
            let built = ab_report(phase, 3, |i, b| {
                let k = 1.0 + i as f64 / 10.0;
                b.qps.avg *= k;
                b.event_throughput.avg *= k;
                b.target_cpu_us_per_request = b.target_cpu_us_per_request.map(|v| v * k);
                b.target_cpu_us_per_event = b.target_cpu_us_per_event.map(|v| v * k);
                for summary in b.latency.0.values_mut() {
                    summary.p50 *= k;
                    summary.p99 *= k;
                }
            });
            let read = round_trip(&built, phase);
            assert_eq!(read.slices.len(), built.slices.len());
            for metric in METRICS.iter().filter(|m| m.phase == phase) {
                for (built, read) in built.slices.iter().zip(&read.slices) {
                    for (built, read) in [(&built.a, &read.a), (&built.b, &read.b)] {
                        let want = field(metric, built);
                        assert!(want > 0.0, "{}: {want}", metric.name);
                        let got = metric.of(read).unwrap_or_else(|| panic!("{} missing", metric.name));
                        assert!(same(got, want), "{}: read {got}, built {want}", metric.name);
                    }
                }
            }
            for (built, read) in built.slices.iter().zip(&read.slices) {
                for (built, read) in [(&built.a, &read.a), (&built.b, &read.b)] {
                    assert_eq!(read.counts.errors, built.counts.errors);
                    assert_eq!(read.health.verdict, built.health.verdict);
                    assert_eq!(read.health.reasons, built.health.reasons);
                    assert!(same(read.health.other_cpu_cores, built.health.other_cpu_cores));
                    assert!(same(read.health.steal_cores, built.health.steal_cores));
                    assert_eq!(disturbances(read), disturbances(built));
                }
            }
            reports.push((phase, read));
        }
        // The fixed samples count a few errors: tallied per side, never a
        // disturbance that would drop the round.
        let round = Round::of(0, &Phase::ALL, &reports, "base", "head").unwrap();
        let errors = sample_scenario("empty").counts.errors;
        assert!(errors > 0);
        assert_eq!(round.disturbed, None);
        assert!(round.head_errors.failed >= 3 * errors, "{:?}", round.head_errors);
        assert_eq!(round.base_errors, round.head_errors);
        assert!(round.log_ratios.iter().all(|r| r.is_finite()), "{:?}", round.log_ratios);
    }

    #[test]
    fn head_ten_percent_slower_in_req_per_s_is_a_log_ratio_of_ln_0_9() {
        let mut built = ab_report(Phase::Empty, 4, |_, b| {
            b.counts.errors = 0;
            b.qps.avg *= 0.9;
        });
        for slice in &mut built.slices {
            slice.a.counts.errors = 0;
        }
        let read = round_trip(&built, Phase::Empty);
        let qps = &METRICS[0];
        assert_eq!(qps.figure, schema::figures::Figure::Scalar(schema::figures::Scalar::RequestsPerS));
        for slice in &read.slices {
            let p = paired(qps, slice).unwrap();
            assert!((p.log_ratio - 0.9f64.ln()).abs() < 1e-12, "{}", p.log_ratio);
        }
        // A base whose stack measured the mock with its server: CPU per
        // request still compared, the empty phase never calling the mock.
        let scopes = Round::of_stacks(0, &[Phase::Empty], &[(Phase::Empty, read.clone())], "base", "head", false).unwrap();
        assert!(scopes.log_ratios[1].is_finite() && (scopes.log_ratios[0] - 0.9f64.ln()).abs() < 1e-12, "{:?}", scopes.log_ratios);
        // The llm phase calls the mock: there its CPU per event is not compared.
        let llm = round_trip(&ab_report(Phase::Llm, 4, |_, _| {}), Phase::Llm);
        let scopes = Round::of_stacks(0, &[Phase::Llm], &[(Phase::Llm, llm)], "base", "head", false).unwrap();
        for (metric, ratio) in METRICS.iter().zip(&scopes.log_ratios).filter(|(m, _)| m.phase == Phase::Llm) {
            let cpu = matches!(metric.figure, Figure::Scalar(Scalar::TargetCpuPerEvent));
            assert_eq!(ratio.is_nan(), cpu, "{}: {ratio}", metric.name);
        }
        let round = Round::of(0, &[Phase::Empty], &[(Phase::Empty, read.clone())], "base", "head").unwrap();
        assert!((round.log_ratios[0] - 0.9f64.ln()).abs() < 1e-12);
        assert!((round.head[0] / round.base[0] - 0.9).abs() < 1e-12);
        // The empty phase's other metrics are the same on both sides; the
        // phases not driven are NaN.
        for (metric, ratio) in METRICS.iter().zip(&round.log_ratios).skip(1) {
            if metric.phase == Phase::Empty {
                assert!(ratio.abs() < 1e-12, "{}: {ratio}", metric.name);
            } else {
                assert!(ratio.is_nan(), "{}: {ratio}", metric.name);
            }
        }
        assert_eq!(round.disturbed, None);

        // Other processes' CPU on the head's side of slice 2.
        let mut disturbed = read;
        let head = &mut disturbed.slices[1].b;
        head.health.verdict = health::HealthVerdict::Disturbed;
        head.health.other_cpu_cores = 0.3;
        head.health.reasons = vec!["other processes used 0.30 cores during the run".into()];
        let round = Round::of(0, &[Phase::Empty], &[(Phase::Empty, disturbed)], "base", "head").unwrap();
        assert_eq!(round.disturbed.as_deref(), Some(r#"head empty slice 2: ["other processes used 0.30 cores during the run"]"#));
    }

    /// The keys come from the stacks' lines: the fixture apps' keys, in
    /// the arguments the gate has always passed.
    #[test]
    fn phases_take_their_app_keys_from_the_stack_line() {
        let line = serde_json::to_string(&StackInfo {
            server_url: "http://127.0.0.1:5001".into(),
            mock_llm_url: "http://127.0.0.1:5002".into(),
            apps: flowbench::stack::apps(),
            server_pids: Vec::new(),
        })
        .unwrap();
        let info = StackInfo::parse(&format!("{line}\n")).unwrap();
        let load = crate::gate::RoundLoad { slices: 4, slice: Duration::from_secs(2), settle: Duration::from_millis(300), users: 16 };
        let args = GateArgs::rounds_of(8, load, 2.0);
        let argv = |phase: Phase| phase.ab_args(&args, phase.api_key(&info, &info).unwrap()).join(" ");
        assert_eq!(argv(Phase::Empty), "--scenario empty --api-key app-flowbench-empty --users 16");
        assert_eq!(argv(Phase::Llm), "--scenario llm --api-key app-flowbench-llm --users 16");
        assert_eq!(argv(Phase::Ttfe), "--scenario empty --mode streaming --api-key app-flowbench-empty --poisson --users 8 --rate 400");
        let mut other = info.clone();
        other.apps.get_mut("llm").unwrap().api_key = "app-other".into();
        assert!(Phase::Llm.api_key(&info, &other).is_err());
        assert!(Phase::Empty.api_key(&info, &other).is_ok());
    }
}
