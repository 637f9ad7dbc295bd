//! `cargo xtask gate`: did this change make things slower?
//!
//! Builds the base and head revisions in release (git worktrees under
//! `target/gate/`, one shared target dir), then runs the end-to-end
//! scenarios as interleaved replicates in ABBA blocks, each replicate a fresh
//! stack process driven by the head's driver. The replicate is the
//! statistical unit: per metric, each A/B pair of a block gives one log ratio
//! ln(head/base), and the change is their mean with a 95% t interval.
//!
//! Besides wall-clock figures it compares the target's CPU time per request
//! and per event (from `/proc`), which drift far less than throughput on a
//! shared machine: time the CPU was stolen or busy elsewhere is not charged.
//!
//! A metric Regressed only when its interval lies wholly on the worse side of
//! zero and the estimate is past its floor (default 2%); it is Unresolved, not
//! passed, when the interval still reaches the floor. p99 metrics are
//! advisory while their minimum detectable effect is above 20%. A block with
//! a disturbed replicate (errors, an invalid driver, other processes' CPU) is
//! rerun once; more than a quarter of blocks disturbed: exit 2.
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

/// (name, scenario, JSON pointer into the scenario report, higher is better, is a p99).
const METRICS: [(&str, &str, &str, bool, bool); 8] = [
    ("empty QPS", "empty", "/qps/avg", true, false),
    ("empty CPU µs/request", "empty", "/target_cpu_us_per_request", false, false),
    ("empty p50 duration", "empty", "/duration_ms/p50", false, false),
    ("empty p99 duration", "empty", "/duration_ms/p99", false, true),
    ("llm TTFE p50", "llm", "/ttfe_ms/p50", false, false),
    ("llm TTFE p99", "llm", "/ttfe_ms/p99", false, true),
    ("llm events/s", "llm", "/event_throughput/avg", true, false),
    ("llm CPU µs/event", "llm", "/target_cpu_us_per_event", false, false),
];
/// A p99 metric gates only once it can resolve this change.
const ADVISORY_MDE_PCT: f64 = 20.0;
/// Pairs per gate drawn by the self-test when estimating rates.
const SELF_TEST_DRAWS: usize = 2000;

#[derive(Debug, Clone, clap::Args)]
pub struct GateArgs {
    /// The revision to compare against (e.g. HEAD~1, main).
    #[arg(long, required_unless_present = "self_test")]
    pub base: Option<String>,
    /// The revision under test [default: the working tree as it is].
    #[arg(long)]
    pub head: Option<String>,
    /// A/B pairs (two per ABBA block).
    #[arg(long, default_value_t = 8)]
    pub pairs: usize,
    /// Measured time per scenario per replicate.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "4s")]
    pub replicate: Duration,
    /// Warm-up per scenario per replicate.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "1s")]
    pub warmup: Duration,
    /// Closed-model users per scenario.
    #[arg(long, default_value_t = 32)]
    pub users: u32,
    /// The smallest change (in %) that counts as a regression.
    #[arg(long, default_value_t = 2.0)]
    pub floor: f64,
    /// A per-metric floor, e.g. "llm TTFE p99=10"; repeatable.
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
    /// Self-test: measured pairs per condition (gates are resampled from them).
    #[arg(long, default_value_t = 16)]
    pub self_test_pairs: usize,
}

/// What the gate concluded for one metric.
#[derive(Debug, Clone, Serialize)]
pub struct MetricVerdict {
    pub metric: &'static str,
    pub base_mean: f64,
    pub head_mean: f64,
    pub change_pct: f64,
    pub ci_low_pct: f64,
    pub ci_high_pct: f64,
    pub mde_pct: f64,
    pub pair_sd_pct: f64,
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

/// One replicate's figures.
#[derive(Debug, Clone)]
struct Replicate {
    values: Vec<f64>,
    disturbed: Option<String>,
    /// Target CPU seconds per empty request and per llm event (for calibration).
    cpu_per_request_s: f64,
    cpu_per_event_s: f64,
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
    if args.pairs < 2 {
        bail!("--pairs must be at least 2");
    }
    let started = Instant::now();
    let head_bin = build(root, args.head.as_deref())?;
    if args.self_test {
        return self_test(root, args, &head_bin, started);
    }
    let base_bin = build(root, args.base.as_deref())?;
    let base = Side { label: "base", binary: base_bin, busy_per_request: Duration::ZERO, busy_per_event: Duration::ZERO };
    let head = Side { label: "head", binary: head_bin.clone(), ..base.clone() };
    let pairs = match measure_pairs(root, args, &base, &head, &head_bin, args.pairs)? {
        Ok(pairs) => pairs,
        Err(why) => {
            eprintln!("gate: could not measure: {why}");
            return Ok(2);
        }
    };
    let verdicts = analyse(args, &pairs)?;
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
    let markdown = render(&label, &verdicts, pairs.len(), &summary, started.elapsed());
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

/// Runs ABBA blocks until `n_pairs` pairs are measured; `Err(why)` when too
/// many blocks were disturbed.
fn measure_pairs(
    root: &Path,
    args: &GateArgs,
    a: &Side,
    b: &Side,
    driver: &Path,
    n_pairs: usize,
) -> anyhow::Result<Result<Vec<(Replicate, Replicate)>, String>> {
    let n_blocks = n_pairs.div_ceil(2);
    let mut pairs = Vec::new();
    let mut disturbed = Vec::new();
    for block in 0..n_blocks {
        let mut measured = None;
        for attempt in 0..2 {
            let a1 = replicate(root, args, a, driver)?;
            let b1 = replicate(root, args, b, driver)?;
            let b2 = replicate(root, args, b, driver)?;
            let a2 = replicate(root, args, a, driver)?;
            let why: Vec<String> = [&a1, &b1, &b2, &a2].iter().filter_map(|r| r.disturbed.clone()).collect();
            if why.is_empty() {
                measured = Some([(a1, b1), (a2, b2)]);
                break;
            }
            eprintln!("gate: block {} attempt {} disturbed: {}", block + 1, attempt + 1, why.join("; "));
            if attempt == 1 {
                disturbed.push(format!("block {}: {}", block + 1, why.join("; ")));
            }
        }
        if let Some(block_pairs) = measured {
            pairs.extend(block_pairs);
        }
        eprintln!("gate: block {}/{n_blocks} done", block + 1);
    }
    if disturbed.len() * 4 > n_blocks {
        return Ok(Err(format!("{} of {n_blocks} blocks were disturbed: {}", disturbed.len(), disturbed.join(" | "))));
    }
    pairs.truncate(n_pairs);
    Ok(Ok(pairs))
}

/// `program` pinned to `cpu` with taskset when there is one and more than one
/// core, so the driver and the stack stop trading places between replicates.
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

/// One replicate: a fresh stack from `side` (on CPU 1), driven by `driver`
/// (on CPU 0), then stopped.
fn replicate(root: &Path, args: &GateArgs, side: &Side, driver: &Path) -> anyhow::Result<Replicate> {
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
    let info: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("the {} stack printed {line:?}", side.label))?;
    let url = info["server_url"].as_str().context("no server_url")?.to_owned();
    let json = root.join(format!("target/gate/replicate-{}.json", std::process::id()));
    let status = pinned(driver, 0)
        .args(["run", "--target", &url, "--api-key", "empty=app-flowbench-empty", "--api-key", "llm=app-flowbench-llm"])
        .args(["--users", &args.users.to_string(), "--spawn-rate", "100000", "--window", "1s"])
        .arg("--duration")
        .arg(humantime::format_duration(args.replicate).to_string())
        .arg("--warmup")
        .arg(humantime::format_duration(args.warmup).to_string())
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .status()?;
    let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
    let _ = child.wait();
    if !status.success() {
        bail!("the driver failed against the {} stack ({status})", side.label);
    }
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let scenario =
        |name: &str| report["scenarios"].as_array().and_then(|s| s.iter().find(|s| s["name"] == name)).cloned().unwrap_or_default();
    let mut values = Vec::new();
    for (metric, name, pointer, _, _) in METRICS {
        let v = scenario(name).pointer(pointer).and_then(serde_json::Value::as_f64).with_context(|| format!("{metric} missing"))?;
        values.push(v);
    }
    let mut disturbed = Vec::new();
    for name in ["empty", "llm"] {
        let s = scenario(name);
        if s["counts"]["errors"].as_u64() != Some(0) {
            disturbed.push(format!("{} {name}: {} errors", side.label, s["counts"]["errors"]));
        }
        if s["health"]["verdict"] != "valid" {
            disturbed.push(format!("{} {name}: {}", side.label, s["health"]["reasons"]));
        }
    }
    let per = |name: &str, field: &str| scenario(name)[field].as_f64().unwrap_or(0.0) / 1e6;
    Ok(Replicate {
        values,
        disturbed: (!disturbed.is_empty()).then(|| disturbed.join(", ")),
        cpu_per_request_s: per("empty", "target_cpu_us_per_request"),
        cpu_per_event_s: per("llm", "target_cpu_us_per_event"),
    })
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

fn analyse(args: &GateArgs, pairs: &[(Replicate, Replicate)]) -> anyhow::Result<Vec<MetricVerdict>> {
    let mut out = Vec::new();
    for (i, (metric, _, _, higher_is_better, is_p99)) in METRICS.into_iter().enumerate() {
        let ratios: Vec<f64> = pairs.iter().map(|(a, b)| (b.values[i] / a.values[i]).ln()).collect();
        let change = PairedChange::of(&ratios);
        let floor_pct = floor_for(args, metric)?;
        let base: Vec<f64> = pairs.iter().map(|(a, _)| a.values[i]).collect();
        let head: Vec<f64> = pairs.iter().map(|(_, b)| b.values[i]).collect();
        out.push(MetricVerdict {
            metric,
            base_mean: crate::stats::mean(&base),
            head_mean: crate::stats::mean(&head),
            change_pct: pct(change.log_mean),
            ci_low_pct: pct(change.log_low),
            ci_high_pct: pct(change.log_high),
            mde_pct: pct(change.log_mde),
            pair_sd_pct: change.log_sd * 100.0,
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

fn render(label: &str, verdicts: &[MetricVerdict], n_pairs: usize, summary: &str, wall: Duration) -> String {
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
    let _ =
        writeln!(out, "\n{n_pairs} A/B pairs in ABBA blocks, each replicate a fresh stack process; {:.0} s in all.", wall.as_secs_f64());
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

/// A/A, +5% and +10% injected cost: measured pairs, then gates of
/// `args.pairs` pairs resampled from them to estimate false alarms and power.
fn self_test(root: &Path, args: &GateArgs, bin: &Path, started: Instant) -> anyhow::Result<i32> {
    let plain = Side { label: "A", binary: bin.to_owned(), busy_per_request: Duration::ZERO, busy_per_event: Duration::ZERO };
    eprintln!("gate self-test: calibrating the injected cost");
    let calibration: Vec<Replicate> = (0..3).map(|_| replicate(root, args, &plain, bin)).collect::<anyhow::Result<_>>()?;
    let per_request = crate::stats::mean(&calibration.iter().map(|r| r.cpu_per_request_s).collect::<Vec<_>>());
    let per_event = crate::stats::mean(&calibration.iter().map(|r| r.cpu_per_event_s).collect::<Vec<_>>());
    eprintln!("gate self-test: target CPU {:.2} µs per empty request, {:.3} µs per llm event", per_request * 1e6, per_event * 1e6);
    let mut table = Vec::new();
    let mut n_measured = Vec::new();
    for (name, slowdown) in [("A/A", 0.0), ("+5%", 0.05), ("+10%", 0.10)] {
        let slowed = Side {
            label: "B",
            busy_per_request: Duration::from_secs_f64(per_request * slowdown),
            busy_per_event: Duration::from_secs_f64(per_event * slowdown),
            ..plain.clone()
        };
        eprintln!("gate self-test: {name}: {} pairs", args.self_test_pairs);
        let pairs = match measure_pairs(root, args, &plain, &slowed, bin, args.self_test_pairs)? {
            Ok(p) => p,
            Err(why) => {
                eprintln!("gate self-test: could not measure {name}: {why}");
                return Ok(2);
            }
        };
        n_measured.push(pairs.len());
        table.push((name, rates(args, &pairs)?));
    }
    let wall = started.elapsed();
    let mut out = format!(
        "### Gate self-test\n\nGates of {} pairs resampled {SELF_TEST_DRAWS} times from {:?} measured pairs per condition (A/A, +5%, +10% injected target CPU: {:.2} µs/request, {:.3} µs/event at +5%).\n\n",
        args.pairs,
        n_measured,
        per_request * 0.05 * 1e6,
        per_event * 0.05 * 1e6
    );
    out.push_str(
        "| metric | false alarms (A/A) | power at +5% | power at +10% | pair SD | MDE at this size |\n|---|---|---|---|---|---|\n",
    );
    for (i, (metric, ..)) in METRICS.iter().enumerate() {
        let (aa, five, ten) = (&table[0].1[i], &table[1].1[i], &table[2].1[i]);
        let _ = writeln!(
            out,
            "| {metric} | {:.1}% | {:.1}% | {:.1}% | {:.2}% | {:.1}% |",
            aa.regressed * 100.0,
            five.regressed * 100.0,
            ten.regressed * 100.0,
            aa.pair_sd_pct,
            aa.mde_pct
        );
    }
    let _ = writeln!(
        out,
        "\nSelf-test wall time {:.1} min; one gate of {} pairs ≈ {:.1} min of replicates.",
        wall.as_secs_f64() / 60.0,
        args.pairs,
        {
            let replicates = (n_measured.iter().sum::<usize>() * 2 + 3) as f64;
            wall.as_secs_f64() / replicates * (args.pairs * 2) as f64 / 60.0
        }
    );
    print!("{out}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &out)?;
    }
    Ok(0)
}

struct Rate {
    regressed: f64,
    pair_sd_pct: f64,
    mde_pct: f64,
}

/// For each metric: the share of resampled gates that called a regression.
fn rates(args: &GateArgs, pairs: &[(Replicate, Replicate)]) -> anyhow::Result<Vec<Rate>> {
    let mut rng = SplitMix64::new(42);
    let size = args.pairs.min(pairs.len());
    let mut out = Vec::new();
    for (i, (metric, _, _, higher_is_better, _)) in METRICS.into_iter().enumerate() {
        let ratios: Vec<f64> = pairs.iter().map(|(a, b)| (b.values[i] / a.values[i]).ln()).collect();
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
        let all = PairedChange::of(&ratios);
        let sd = all.log_sd;
        let mde = (crate::stats::t_975(size - 1) + crate::stats::t_90(size - 1)) * sd / (size as f64).sqrt();
        out.push(Rate { regressed: n_regressed as f64 / SELF_TEST_DRAWS as f64, pair_sd_pct: sd * 100.0, mde_pct: pct(mde) });
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
