//! `cargo xtask`: flowbench's task runner, one subcommand per task.
//!
//! - `bench`: builds the harness in release and runs `flowbench run` in its
//!   place: both scenarios on the embedded stack, the seed's report.
//! - `up`: builds the harness in release and runs `flowbench up` in its place
//!   (one JSON line on stdout, serves until SIGINT/SIGTERM).
//! - `test`: the test suite, as README.md and `.ci/run` run it.
//! - `ci`: exactly what `.ci/run` checks: fmt, clippy, tests.

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
    /// Bring up the mocked stack (mock LLM + server) and print one JSON line.
    Up {
        /// Flags passed on to `flowbench up` (e.g. --server-addr 127.0.0.1:5001 --ttft 200ms).
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Run the test suite (what the README and CI run).
    Test,
    /// Run everything CI runs: cargo fmt --check, clippy -D warnings, tests.
    Ci,
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let root = workspace_root();
    match cli.command {
        Task::Bench { profile, quick, args } => {
            let mut command = flowbench(&root)?;
            command.args(["run", "--profile", &profile]).args(quick.then_some("--quick")).args(&args);
            exec(command).context("running flowbench run")
        }
        Task::Up { args } => {
            let mut command = flowbench(&root)?;
            command.arg("up").args(&args);
            exec(command).context("running flowbench up")
        }
        Task::Test => test(&root),
        Task::Ci => {
            cargo(&root, &["fmt", "--all", "--check"])?;
            cargo(&root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
            test(&root)
        }
    }
}

/// The release `flowbench` binary, built first.
fn flowbench(root: &Path) -> anyhow::Result<Command> {
    cargo(root, &["build", "--release", "--quiet", "--package", "harness", "--bin", "flowbench"])?;
    let mut command = Command::new(root.join("target/release/flowbench"));
    command.current_dir(root);
    Ok(command)
}

fn test(root: &Path) -> anyhow::Result<()> {
    cargo(root, &["test", "--workspace", "--all-targets"])
}

fn cargo(root: &Path, args: &[&str]) -> anyhow::Result<()> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let status = Command::new(&cargo).args(args).current_dir(root).status().with_context(|| format!("running cargo {}", args.join(" ")))?;
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
