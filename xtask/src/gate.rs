//! `cargo xtask gate`: did this change make things slower?
//!
//! Builds the base and head revisions in release (git worktrees under
//! `target/gate/`, one shared target dir), then measures in rounds. A round
//! starts a fresh base stack and a fresh head stack, both pinned to the same
//! core, and drives them at the same time with the head's `flowbench ab`
//! (half the users on each, another core): a few slices of the empty
//! scenario, then of the llm scenario, both saturating the core, then a
//! light open-model phase for the time to first event. Both sides share the core's drift,
//! so the per-slice log ratio ln(head/base) is steady even where the
//! absolute figures swing by 10% a second. The order the two stacks start
//! alternates between rounds (ABBA over rounds, and over slices inside
//! `flowbench ab`).
//!
//! The round is the statistical unit: fresh processes carry their own luck
//! (memory layout, hash seeds), so slices of one round are not independent.
//! Per metric, each round gives the mean of its slices' log ratios, and the
//! change is the mean over rounds with a 95% t interval.
//!
//! A metric Regressed only when its interval lies wholly on the worse side of
//! zero and the estimate is past its floor (default 2%); it is Unresolved, not
//! passed, when the interval still reaches the floor. p99 metrics are
//! advisory while their minimum detectable effect is above 20%. A round with
//! a disturbed slice (errors, an invalid driver, other processes' CPU) is
//! rerun once; more than a quarter of rounds disturbed: exit 2.
//!
//! Exit codes: 0 no regression, 1 regression, 2 could not measure.

use crate::stats::{PairedChange, SplitMix64, pct};
use anyhow::{Context, bail};
use serde::Serialize;
use std::fmt::Write;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// (name, phase, JSON pointer into the phase's scenario report, higher is better, is a p99).
const METRICS: [(&str, Phase, &str, bool, bool); 8] = [
    ("empty QPS", Phase::Empty, "/qps/avg", true, false),
    ("empty CPU µs/request", Phase::Empty, "/target_cpu_us_per_request", false, false),
    ("empty p50 duration", Phase::Empty, "/duration_ms/p50", false, false),
    ("empty p99 duration", Phase::Empty, "/duration_ms/p99", false, true),
    ("TTFE p50", Phase::Ttfe, "/ttfe_ms/p50", false, false),
    ("TTFE p99", Phase::Ttfe, "/ttfe_ms/p99", false, true),
    ("llm events/s", Phase::Llm, "/event_throughput/avg", true, false),
    ("llm CPU µs/event", Phase::Llm, "/target_cpu_us_per_event", false, false),
];
/// A p99 metric gates only once it can resolve this change.
const ADVISORY_MDE_PCT: f64 = 20.0;

/// What a round drives, in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Blocking Start→End runs, closed model, saturating the core.
    Empty,
    /// Start→LLM→End streams, closed model, saturating the core.
    Llm,
    /// Streaming Start→End runs at a light Poisson rate (`--ttfe-rate`):
    /// the time to the first event without queueing. Under saturation it is
    /// mostly how the kernel interleaves the two stacks (A/A false alarms of
    /// 10–20% when it was measured there). The first event of an llm run
    /// takes the same path; what follows it is the llm phase's.
    Ttfe,
}

impl Phase {
    const ALL: [Phase; 3] = [Phase::Empty, Phase::Llm, Phase::Ttfe];

    fn name(self) -> &'static str {
        match self {
            Phase::Empty => "empty",
            Phase::Llm => "llm",
            Phase::Ttfe => "ttfe",
        }
    }

    /// `flowbench ab` arguments for this phase.
    fn ab_args(self, args: &GateArgs) -> Vec<String> {
        let mut out: Vec<String> = match self {
            Phase::Empty => ["--scenario", "empty", "--api-key", "app-flowbench-empty"].map(String::from).to_vec(),
            Phase::Llm => ["--scenario", "llm", "--api-key", "app-flowbench-llm"].map(String::from).to_vec(),
            Phase::Ttfe => {
                ["--scenario", "empty", "--mode", "streaming", "--api-key", "app-flowbench-empty", "--poisson"].map(String::from).to_vec()
            }
        };
        match self {
            Phase::Empty | Phase::Llm => out.extend(["--users".into(), args.users.to_string()]),
            Phase::Ttfe => out.extend(["--users".into(), "8".into(), "--rate".into(), args.ttfe_rate.to_string()]),
        }
        out
    }
}
/// Gates drawn by the self-test when estimating rates.
const SELF_TEST_DRAWS: usize = 2000;

#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// The revision to compare against (e.g. HEAD~1, main).
    #[arg(long, required_unless_present = "self_test")]
    pub base: Option<String>,
    /// The revision under test [default: the working tree as it is].
    #[arg(long)]
    pub head: Option<String>,
    /// Rounds, each with fresh base and head stacks (the statistical unit).
    #[arg(long, default_value_t = 8)]
    pub rounds: usize,
    /// Slices per scenario per round, both sides measured at once.
    #[arg(long, default_value_t = 4)]
    pub slices: u32,
    /// Measured time per slice.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "2s")]
    pub slice: Duration,
    /// Sent at the start of each slice and left out.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "300ms")]
    pub settle: Duration,
    /// Closed-model users on each side (empty and llm phases).
    #[arg(long, default_value_t = 16)]
    pub users: u32,
    /// TTFE phase: streaming runs per second on each side (Poisson), light
    /// enough that runs seldom queue behind each other.
    #[arg(long, default_value_t = 400.0)]
    pub ttfe_rate: f64,
    /// The smallest change (in %) that counts as a regression.
    #[arg(long, default_value_t = 2.0)]
    pub floor: f64,
    /// A per-metric floor, e.g. "TTFE p99=10"; repeatable.
    #[arg(long = "floor-metric", value_name = "METRIC=PCT")]
    pub floor_metric: Vec<String>,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Bencher Metric Format JSON of the head's figures.
    #[arg(long)]
    pub bmf: Option<PathBuf>,
    /// Measure the gate itself: A/A false alarms and power at +5% and +10% injected cost.
    #[arg(long)]
    pub self_test: bool,
    /// Self-test: measured rounds per condition (gates are resampled from them).
    #[arg(long, default_value_t = 16)]
    pub self_test_rounds: usize,
}

/// What the gate concluded for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct MetricVerdict {
    pub metric: &'static str,
    /// Geometric means over rounds (of each round's geometric mean over its
    /// slices): `head_mean / base_mean − 1` is `change_pct`, never a sign
    /// apart from it as arithmetic means could be.
    pub base_mean: f64,
    pub head_mean: f64,
    pub change_pct: f64,
    pub ci_low_pct: f64,
    pub ci_high_pct: f64,
    pub mde_pct: f64,
    pub round_sd_pct: f64,
    pub floor_pct: f64,
    pub advisory: bool,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum Verdict {
    Regressed,
    Improved,
    /// Any change is smaller than the floor.
    Pass,
    /// Too noisy to tell a floor-sized regression from none.
    Unresolved,
}

/// One round's figures, per metric (in `METRICS` order; NaN for a metric
/// whose phase the round did not drive).
#[derive(Debug, Clone)]
struct Round {
    /// Mean over the round's slices of ln(head/base).
    log_ratios: Vec<f64>,
    base: Vec<f64>,
    head: Vec<f64>,
    disturbed: Option<String>,
}

impl Round {
    /// The base side's mean of `metric` (the self-test calibrates on it).
    fn base_of(&self, metric: &str) -> f64 {
        self.base[METRICS.iter().position(|m| m.0 == metric).expect("a metric")]
    }
}

/// A side of the comparison: a binary and an optional injected cost.
#[derive(Debug, Clone)]
struct Side {
    label: &'static str,
    binary: PathBuf,
    busy_per_request: Duration,
    busy_per_event: Duration,
}

pub fn run(root: &Path, args: &GateArgs) -> anyhow::Result<i32> {
    if args.rounds < 2 {
        bail!("--rounds must be at least 2");
    }
    if args.slices == 0 {
        bail!("--slices must be at least 1");
    }
    if !(args.ttfe_rate > 0.0 && args.ttfe_rate.is_finite()) {
        bail!("--ttfe-rate must be above 0, got {}", args.ttfe_rate);
    }
    let started = Instant::now();
    let head_bin = build(root, args.head.as_deref())?;
    if args.self_test {
        return self_test(root, args, &head_bin, started);
    }
    let base_bin = build(root, args.base.as_deref())?;
    let base = Side { label: "base", binary: base_bin, busy_per_request: Duration::ZERO, busy_per_event: Duration::ZERO };
    let head = Side { label: "head", binary: head_bin.clone(), ..base.clone() };
    let rounds = match measure_rounds(root, args, &base, &head, &head_bin, args.rounds, &Phase::ALL)? {
        Ok(rounds) => rounds,
        Err(why) => {
            eprintln!("gate: could not measure: {why}");
            return Ok(2);
        }
    };
    let verdicts = analyse(args, &rounds)?;
    let regressed: Vec<&str> = verdicts.iter().filter(|v| v.verdict == Verdict::Regressed && !v.advisory).map(|v| v.metric).collect();
    let unresolved: Vec<&str> = verdicts.iter().filter(|v| v.verdict == Verdict::Unresolved && !v.advisory).map(|v| v.metric).collect();
    let summary = if !regressed.is_empty() {
        format!("REGRESSED: {}", regressed.join(", "))
    } else if unresolved.is_empty() {
        "PASS: no metric regressed past its floor".to_owned()
    } else {
        format!("NO REGRESSION DETECTED; inconclusive (too noisy for the floor): {}", unresolved.join(", "))
    };
    let label = format!("{} → {}", args.base.as_deref().unwrap_or("?"), args.head.as_deref().unwrap_or("working tree"));
    let markdown = render(&label, &verdicts, rounds.len(), args, &summary, started.elapsed());
    print!("{markdown}");
    write_outputs(args, &verdicts, &markdown, &summary)?;
    Ok(if regressed.is_empty() { 0 } else { 1 })
}

/// Builds `rev` (a worktree under target/gate/) or the working tree; returns its `flowbench`.
fn build(root: &Path, rev: Option<&str>) -> anyhow::Result<PathBuf> {
    let gate_dir = root.join("target/gate");
    let target_dir = gate_dir.join("target");
    std::fs::create_dir_all(gate_dir.join("bin"))?;
    let (source, name) = match rev {
        None => (root.to_owned(), "flowbench-worktree".to_owned()),
        Some(rev) => {
            let sha = git(root, &["rev-parse", "--verify", &format!("{rev}^{{commit}}")])
                .with_context(|| format!("{rev:?} is not a revision"))?;
            let bin = gate_dir.join("bin").join(format!("flowbench-{sha}"));
            if bin.exists() {
                return Ok(bin);
            }
            let tree = gate_dir.join(format!("src-{sha}"));
            if !tree.exists() {
                git(root, &["worktree", "add", "--detach", "--force", &tree.display().to_string(), &sha])?;
            }
            (tree, format!("flowbench-{sha}"))
        }
    };
    eprintln!("gate: building {} in release", rev.unwrap_or("the working tree"));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(["build", "--release", "--quiet", "--package", "harness", "--bin", "flowbench"])
        .current_dir(&source)
        .env("CARGO_TARGET_DIR", &target_dir)
        .status()?;
    if !status.success() {
        bail!("building {} failed", rev.unwrap_or("the working tree"));
    }
    let bin = gate_dir.join("bin").join(name);
    std::fs::copy(target_dir.join("release/flowbench"), &bin)?;
    Ok(bin)
}

fn git(root: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git").args(args).current_dir(root).output()?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

/// Measures `n` rounds, each rerun once when disturbed; `Err(why)` when
/// more than a quarter of them stayed disturbed.
fn measure_rounds(
    root: &Path,
    args: &GateArgs,
    a: &Side,
    b: &Side,
    driver: &Path,
    n: usize,
    phases: &[Phase],
) -> anyhow::Result<Result<Vec<Round>, String>> {
    let mut rounds = Vec::new();
    let mut disturbed = Vec::new();
    for index in 0..n {
        for attempt in 0..2 {
            let measured = round(root, args, a, b, driver, index, phases)?;
            match &measured.disturbed {
                None => {
                    rounds.push(measured);
                    break;
                }
                Some(why) => {
                    eprintln!("gate: round {} attempt {} disturbed: {why}", index + 1, attempt + 1);
                    if attempt == 1 {
                        disturbed.push(format!("round {}: {why}", index + 1));
                    }
                }
            }
        }
        eprintln!("gate: round {}/{n} done", index + 1);
    }
    if disturbed.len() * 4 > n {
        return Ok(Err(format!("{} of {n} rounds were disturbed: {}", disturbed.len(), disturbed.join(" | "))));
    }
    Ok(Ok(rounds))
}

/// `program` pinned to `cpu` with taskset when there is one and more than one
/// core, so the driver and the stacks stop trading places between rounds.
fn pinned(program: &Path, cpu: usize) -> Command {
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

/// A stack from `side`, pinned to CPU 1; its server URL.
fn start_stack(root: &Path, side: &Side) -> anyhow::Result<(std::process::Child, String)> {
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
    BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
    let parsed = serde_json::from_str::<serde_json::Value>(&line)
        .ok()
        .and_then(|info| Some(info["server_url"].as_str()?.to_owned()))
        .with_context(|| format!("the {} stack printed {line:?}", side.label));
    match parsed {
        Ok(url) => Ok((child, url)),
        Err(e) => {
            stop(child);
            Err(e)
        }
    }
}

fn stop(mut child: std::process::Child) {
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
}

/// One round: fresh `a` and `b` stacks (started in alternating order),
/// `phases` driven at once on both by `driver`'s `flowbench ab` (on CPU 0),
/// then stopped.
fn round(root: &Path, args: &GateArgs, a: &Side, b: &Side, driver: &Path, index: usize, phases: &[Phase]) -> anyhow::Result<Round> {
    let (a_stack, b_stack) = if matches!(index % 4, 0 | 3) {
        let a_stack = start_stack(root, a)?;
        (a_stack, start_stack(root, b)?)
    } else {
        let b_stack = start_stack(root, b)?;
        (start_stack(root, a)?, b_stack)
    };
    let mut reports = Vec::new();
    let mut failure = None;
    for &phase in phases {
        let json = root.join(format!("target/gate/ab-{}-{}.json", std::process::id(), phase.name()));
        let status = pinned(driver, 0)
            .args(["ab", "--a", &a_stack.1, "--b", &b_stack.1])
            .args(phase.ab_args(args))
            .args(["--slices", &args.slices.to_string()])
            .arg("--slice")
            .arg(humantime::format_duration(args.slice).to_string())
            .arg("--settle")
            .arg(humantime::format_duration(args.settle).to_string())
            .arg("--json")
            .arg(&json)
            .stdout(Stdio::null())
            .status()?;
        if !status.success() {
            failure = Some(format!("the driver failed on the {} phase ({status})", phase.name()));
            break;
        }
        reports.push((phase, serde_json::from_slice::<serde_json::Value>(&std::fs::read(&json)?)?));
    }
    stop(a_stack.0);
    stop(b_stack.0);
    if let Some(why) = failure {
        bail!(why);
    }
    let slices = |phase: Phase| -> Vec<serde_json::Value> {
        reports.iter().find(|(p, _)| *p == phase).and_then(|(_, r)| r["slices"].as_array().cloned()).unwrap_or_default()
    };
    let mut out = Round { log_ratios: Vec::new(), base: Vec::new(), head: Vec::new(), disturbed: None };
    for (metric, phase, pointer, _, _) in METRICS {
        if !phases.contains(&phase) {
            out.log_ratios.push(f64::NAN);
            out.base.push(f64::NAN);
            out.head.push(f64::NAN);
            continue;
        }
        let of = slices(phase);
        let mut logs = Vec::new();
        let (mut base, mut head) = (Vec::new(), Vec::new());
        for slice in &of {
            let value = |side: &str| slice[side].pointer(pointer).and_then(serde_json::Value::as_f64).filter(|v| *v > 0.0);
            let (Some(x), Some(y)) = (value("a"), value("b")) else { bail!("{metric} missing from a slice of round {}", index + 1) };
            logs.push((y / x).ln());
            base.push(x);
            head.push(y);
        }
        if logs.is_empty() {
            bail!("round {} measured no {} slices", index + 1, phase.name());
        }
        out.log_ratios.push(crate::stats::mean(&logs));
        out.base.push(crate::stats::geomean(&base));
        out.head.push(crate::stats::geomean(&head));
    }
    let mut disturbed = Vec::new();
    for &phase in phases {
        let name = phase.name();
        for (i, slice) in slices(phase).iter().enumerate() {
            for (side, label) in [("a", a.label), ("b", b.label)] {
                let s = &slice[side];
                if s["counts"]["errors"].as_u64() != Some(0) {
                    disturbed.push(format!("{label} {name} slice {}: {} errors", i + 1, s["counts"]["errors"]));
                }
                if s["health"]["verdict"] != "valid" {
                    disturbed.push(format!("{label} {name} slice {}: {}", i + 1, s["health"]["reasons"]));
                }
            }
        }
    }
    out.disturbed = (!disturbed.is_empty()).then(|| disturbed.join(", "));
    Ok(out)
}

fn floor_for(args: &GateArgs, metric: &str) -> anyhow::Result<f64> {
    for given in &args.floor_metric {
        let (name, value) = given.split_once('=').with_context(|| format!("--floor-metric {given:?} is not METRIC=PCT"))?;
        if !METRICS.iter().any(|m| m.0 == name) {
            bail!("--floor-metric {given:?}: unknown metric; one of {:?}", METRICS.map(|m| m.0));
        }
        if name == metric {
            return value.trim_end_matches('%').parse().with_context(|| format!("--floor-metric {given:?}: not a number"));
        }
    }
    Ok(args.floor)
}

fn analyse(args: &GateArgs, rounds: &[Round]) -> anyhow::Result<Vec<MetricVerdict>> {
    let mut out = Vec::new();
    for (i, (metric, _, _, higher_is_better, is_p99)) in METRICS.into_iter().enumerate() {
        let ratios: Vec<f64> = rounds.iter().map(|r| r.log_ratios[i]).collect();
        let change = PairedChange::of(&ratios);
        let floor_pct = floor_for(args, metric)?;
        out.push(MetricVerdict {
            metric,
            base_mean: crate::stats::geomean(&rounds.iter().map(|r| r.base[i]).collect::<Vec<_>>()),
            head_mean: crate::stats::geomean(&rounds.iter().map(|r| r.head[i]).collect::<Vec<_>>()),
            change_pct: pct(change.log_mean),
            ci_low_pct: pct(change.log_low),
            ci_high_pct: pct(change.log_high),
            mde_pct: pct(change.log_mde),
            round_sd_pct: change.log_sd * 100.0,
            floor_pct,
            advisory: is_p99 && pct(change.log_mde) > ADVISORY_MDE_PCT,
            verdict: decide(&change, higher_is_better, floor_pct),
        });
    }
    Ok(out)
}

/// The rule: Regressed only when the whole interval is on the worse side and
/// the estimate is past the floor; Pass only when the interval excludes a
/// floor-sized regression.
pub fn decide(change: &PairedChange, higher_is_better: bool, floor_pct: f64) -> Verdict {
    let floor = (1.0 + floor_pct / 100.0).ln();
    // "Badness": positive when head is worse.
    let (bad, bad_low, bad_high) = if higher_is_better {
        (-change.log_mean, -change.log_high, -change.log_low)
    } else {
        (change.log_mean, change.log_low, change.log_high)
    };
    if bad_low > 0.0 && bad > floor {
        Verdict::Regressed
    } else if bad_high < 0.0 && -bad > floor {
        Verdict::Improved
    } else if bad_high < floor {
        Verdict::Pass
    } else {
        Verdict::Unresolved
    }
}

fn render(label: &str, verdicts: &[MetricVerdict], n_rounds: usize, args: &GateArgs, summary: &str, wall: Duration) -> String {
    let mut out = format!("### Performance gate: {label}\n\n**{summary}**\n\n");
    out.push_str("| metric | base | head | change | 95% CI | MDE (90% power) | floor | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for v in verdicts {
        let verdict = match (v.verdict, v.advisory) {
            (Verdict::Regressed, false) => "❌ **Regressed**".to_owned(),
            (Verdict::Improved, _) => "✅ Improved".to_owned(),
            (Verdict::Pass, _) => "✅ Pass".to_owned(),
            (Verdict::Unresolved, false) => "⚠️ Unresolved (too noisy)".to_owned(),
            (verdict, true) => format!("ℹ️ advisory: {verdict:?}"),
        };
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:+.2}% | [{:+.2}%, {:+.2}%] | {:.1}% | {}% | {verdict} |",
            v.metric, v.base_mean, v.head_mean, v.change_pct, v.ci_low_pct, v.ci_high_pct, v.mde_pct, v.floor_pct
        );
    }
    let _ = writeln!(
        out,
        "\nbase and head: geometric means over the rounds. {n_rounds} rounds, each with fresh base and head stacks driven at the same time on one core ({} slices of {} per phase: empty and llm saturating, TTFE at {}/s a side); {:.0} s in all.",
        args.slices,
        humantime::format_duration(args.slice),
        args.ttfe_rate,
        wall.as_secs_f64()
    );
    out
}

fn write_outputs(args: &GateArgs, verdicts: &[MetricVerdict], markdown: &str, summary: &str) -> anyhow::Result<()> {
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&serde_json::json!({"summary": summary, "metrics": verdicts}))?)?;
    }
    if let Some(path) = &args.bmf {
        let mut map = serde_json::Map::new();
        for v in verdicts {
            let key = v.metric.replace(' ', "_").replace('/', "_per_");
            map.insert(format!("gate/{key}"), serde_json::json!({"value": {"value": v.head_mean, "lower_value": v.base_mean * (1.0 + v.ci_low_pct / 100.0), "upper_value": v.base_mean * (1.0 + v.ci_high_pct / 100.0)}}));
        }
        std::fs::write(path, serde_json::to_vec_pretty(&serde_json::Value::Object(map))?)?;
    }
    Ok(())
}

/// A self-test condition: which phases it drives and what it injects.
struct Condition {
    name: &'static str,
    slowdown: f64,
    phases: &'static [Phase],
}

/// A/A first (all phases; it calibrates the others), then injected CPU on
/// the head side for the saturated phases, then an injected delay before
/// the first event for the TTFE phase.
const CONDITIONS: [Condition; 5] = [
    Condition { name: "A/A", slowdown: 0.0, phases: &Phase::ALL },
    Condition { name: "+5%", slowdown: 0.05, phases: &[Phase::Empty, Phase::Llm] },
    Condition { name: "+10%", slowdown: 0.10, phases: &[Phase::Empty, Phase::Llm] },
    Condition { name: "TTFE +5%", slowdown: 0.05, phases: &[Phase::Ttfe] },
    Condition { name: "TTFE +10%", slowdown: 0.10, phases: &[Phase::Ttfe] },
];

/// What the A/A rounds' base side measured, to size the injected costs.
#[derive(Debug, Clone, Copy, Default)]
struct Calibration {
    /// Target CPU seconds per empty request and per llm event.
    per_request_s: f64,
    per_event_s: f64,
    /// TTFE p50 in seconds.
    ttfe_p50_s: f64,
}

impl Calibration {
    fn of(rounds: &[Round]) -> Self {
        let mean = |metric: &str| crate::stats::mean(&rounds.iter().map(|r| r.base_of(metric)).collect::<Vec<_>>());
        Calibration {
            per_request_s: mean("empty CPU µs/request") / 1e6,
            per_event_s: mean("llm CPU µs/event") / 1e6,
            ttfe_p50_s: mean("TTFE p50") / 1e3,
        }
    }

    /// The head side of `condition`: the saturated phases slow by
    /// `slowdown` when the target spends that much more CPU per request and
    /// per event; TTFE grows by `slowdown` when each run spends that share
    /// of the TTFE p50 before its first event (the per-request cost is
    /// spent before the run starts).
    fn slowed(&self, plain: &Side, condition: &Condition) -> Side {
        let s = condition.slowdown;
        let (per_request, per_event) =
            if condition.phases == [Phase::Ttfe] { (self.ttfe_p50_s * s, 0.0) } else { (self.per_request_s * s, self.per_event_s * s) };
        Side {
            label: "B",
            busy_per_request: Duration::from_secs_f64(per_request),
            busy_per_event: Duration::from_secs_f64(per_event),
            ..plain.clone()
        }
    }
}

/// Each condition's measured rounds, then gates of `args.rounds` rounds
/// resampled from them to estimate false alarms and power.
fn self_test(root: &Path, args: &GateArgs, bin: &Path, started: Instant) -> anyhow::Result<i32> {
    let plain = Side { label: "A", binary: bin.to_owned(), busy_per_request: Duration::ZERO, busy_per_event: Duration::ZERO };
    let mut table = Vec::new();
    let mut calibration = Calibration::default();
    for condition in &CONDITIONS {
        let slowed = calibration.slowed(&plain, condition);
        eprintln!("gate self-test: {}: {} rounds", condition.name, args.self_test_rounds);
        let rounds = match measure_rounds(root, args, &plain, &slowed, bin, args.self_test_rounds, condition.phases)? {
            Ok(r) => r,
            Err(why) => {
                eprintln!("gate self-test: could not measure {}: {why}", condition.name);
                // What was measured still counts: print it before giving up.
                if !table.is_empty() {
                    print!("{}", self_test_table(args, &table, &calibration, started.elapsed()));
                }
                return Ok(2);
            }
        };
        if condition.slowdown == 0.0 {
            calibration = Calibration::of(&rounds);
            eprintln!(
                "gate self-test: target CPU {:.2} µs per empty request, {:.3} µs per llm event; TTFE p50 {:.1} µs",
                calibration.per_request_s * 1e6,
                calibration.per_event_s * 1e6,
                calibration.ttfe_p50_s * 1e6
            );
        }
        table.push((condition, rounds.len(), rates(args, &rounds)?));
    }
    let out = self_test_table(args, &table, &calibration, started.elapsed());
    print!("{out}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &out)?;
    }
    Ok(0)
}

/// The self-test's table, for the conditions measured so far (A/A first).
fn self_test_table(args: &GateArgs, table: &[(&Condition, usize, Vec<Rate>)], calibration: &Calibration, wall: Duration) -> String {
    let n_measured: Vec<String> = table.iter().map(|(c, n, _)| format!("{} {n}", c.name)).collect();
    let mut out = format!(
        "### Gate self-test\n\nGates of {} rounds resampled {SELF_TEST_DRAWS} times from the measured rounds ({}). At +5%, the head side spends {:.2} µs more CPU per request and {:.3} µs per event (empty and llm phases), or {:.1} µs more before each run's first event (TTFE phase); {} slices of {} per phase per round, {} users a side, TTFE at {}/s a side.\n\n",
        args.rounds,
        n_measured.join(", "),
        calibration.per_request_s * 0.05 * 1e6,
        calibration.per_event_s * 0.05 * 1e6,
        calibration.ttfe_p50_s * 0.05 * 1e6,
        args.slices,
        humantime::format_duration(args.slice),
        args.users,
        args.ttfe_rate
    );
    out.push_str(
        "| metric | false alarms (A/A) | power at +5% | power at +10% | round SD | MDE at this size |\n|---|---|---|---|---|---|\n",
    );
    for (i, (metric, phase, _, _, is_p99)) in METRICS.iter().enumerate() {
        let aa = &table[0].2[i];
        let advisory = *is_p99 && aa.mde_pct > ADVISORY_MDE_PCT;
        let metric = if advisory { format!("{metric} (advisory)") } else { (*metric).to_owned() };
        let rate = |slowdown: f64| {
            table
                .iter()
                .find(|(c, _, _)| c.slowdown == slowdown && c.phases.contains(phase))
                .map_or("not measured".to_owned(), |t| format!("{:.1}%", t.2[i].regressed * 100.0))
        };
        let _ =
            writeln!(out, "| {metric} | {} | {} | {} | {:.2}% | {:.1}% |", rate(0.0), rate(0.05), rate(0.10), aa.round_sd_pct, aa.mde_pct);
    }
    // Wall time per full round: A/A rounds drive every phase.
    let measured: usize = table.iter().map(|(c, n, _)| n * c.phases.len()).sum();
    let _ = writeln!(
        out,
        "\nSelf-test wall time {:.1} min; one gate of {} rounds ≈ {:.1} min of rounds, plus the two builds.",
        wall.as_secs_f64() / 60.0,
        args.rounds,
        wall.as_secs_f64() / measured as f64 * (Phase::ALL.len() * args.rounds) as f64 / 60.0
    );
    out
}

struct Rate {
    regressed: f64,
    round_sd_pct: f64,
    mde_pct: f64,
}

/// For each metric: the share of resampled gates that called a regression.
fn rates(args: &GateArgs, rounds: &[Round]) -> anyhow::Result<Vec<Rate>> {
    let mut rng = SplitMix64::new(42);
    let size = args.rounds.min(rounds.len());
    let mut out = Vec::new();
    for (i, (metric, _, _, higher_is_better, _)) in METRICS.into_iter().enumerate() {
        let ratios: Vec<f64> = rounds.iter().map(|r| r.log_ratios[i]).collect();
        if ratios.iter().any(|r| r.is_nan()) {
            // Not driven in this condition.
            out.push(Rate { regressed: f64::NAN, round_sd_pct: f64::NAN, mde_pct: f64::NAN });
            continue;
        }
        let floor = floor_for(args, metric)?;
        let mut n_regressed = 0;
        for _ in 0..SELF_TEST_DRAWS {
            let mut pool = ratios.clone();
            let mut draw = Vec::with_capacity(size);
            for _ in 0..size {
                draw.push(pool.swap_remove(rng.below(pool.len())));
            }
            if decide(&PairedChange::of(&draw), higher_is_better, floor) == Verdict::Regressed {
                n_regressed += 1;
            }
        }
        let sd = PairedChange::of(&ratios).log_sd;
        let mde = (crate::stats::t_975(size - 1) + crate::stats::t_90(size - 1)) * sd / (size as f64).sqrt();
        out.push(Rate { regressed: n_regressed as f64 / SELF_TEST_DRAWS as f64, round_sd_pct: sd * 100.0, mde_pct: pct(mde) });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(mean: f64, half: f64) -> PairedChange {
        PairedChange { n_pairs: 8, log_mean: mean, log_low: mean - half, log_high: mean + half, log_sd: 0.0, log_mde: 0.0 }
    }

    #[test]
    fn decide_follows_the_rule() {
        let ln = |p: f64| (1.0f64 + p / 100.0).ln();
        // Latency (lower is better) up 5% ± 1%: regressed.
        assert_eq!(decide(&change(ln(5.0), ln(1.0)), false, 2.0), Verdict::Regressed);
        // Throughput down 5% ± 1%: regressed.
        assert_eq!(decide(&change(ln(-5.0), ln(1.0)), true, 2.0), Verdict::Regressed);
        // Up 1.5% ± 1%: significant but under the floor, and the interval excludes 2%.
        assert_eq!(decide(&change(ln(1.5), ln(0.4)), false, 2.0), Verdict::Pass);
        // 0% ± 4%: cannot exclude a 2% regression.
        assert_eq!(decide(&change(0.0, ln(4.0)), false, 2.0), Verdict::Unresolved);
        // Latency down 6% ± 1%: improved.
        assert_eq!(decide(&change(ln(-6.0), ln(1.0)), false, 2.0), Verdict::Improved);
    }
}
