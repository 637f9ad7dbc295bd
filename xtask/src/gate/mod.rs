//! `cargo xtask gate`: did this change make things slower?
//!
//! Builds the base and head revisions in release, then measures in rounds:
//! each round starts a fresh base stack and a fresh head stack, both pinned
//! to the same core, and drives them at the same time with the head's
//! `flowbench ab`. Both sides share the core's drift, so the per-slice log
//! ratio ln(head/base) is steady even where the absolute figures swing from
//! one second to the next. Per metric, the rounds' mean log ratios give the change
//! with a 95% t interval, and the interval and a floor give the verdict.
//!
//! - `build.rs`: git worktrees and release builds of the two revisions;
//! - `rounds.rs`: the stacks and the driver, one round of `flowbench ab`
//!   phases, read through flowbench's report types;
//! - `verdict.rs`: the metrics, and per metric the rounds' log ratios → t
//!   interval → verdict;
//! - `render.rs`: the Markdown table, the JSON and BMF outputs;
//! - `self_test.rs`: `--self-test`, the gate measuring itself.
//!
//! This file holds the flags and `run`, which only puts those jobs in order.
//!
//! Exit codes: 0 pass (no gating metric regressed or unresolved), 1
//! regressed, 2 could not measure, 3 unresolved (no regression found, but
//! a gating metric could not exclude one: never a pass).

pub mod bisect;
mod build;
mod metrics;
mod phase;
mod render;
mod rounds;
mod self_test;
mod verdict;
pub mod yardstick;

use crate::verdict::ChangeVerdict;
use anyhow::bail;
use phase::Phase;
use rounds::Side;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

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
    #[command(flatten)]
    pub load: RoundLoad,
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
    /// A self-contained HTML page: the verdicts, each metric's change with
    /// its interval, and each round's change.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Measure the gate itself: A/A false alarms and power at +3%, +5% and
    /// +10% cost injected into one side's server.
    #[arg(long)]
    pub self_test: bool,
    /// Self-test: measured A/A rounds (at least 30), from which gates are
    /// drawn with replacement.
    #[arg(long, default_value_t = 30)]
    pub self_test_rounds: usize,
    /// Self-test: measured rounds of each injected condition.
    #[arg(long, default_value_t = 12)]
    pub self_test_injected_rounds: usize,
}

/// How each round loads both sides: the gate's and the bisect's.
#[derive(Debug, Clone, clap::Args)]
pub struct RoundLoad {
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
}

impl GateArgs {
    /// A gate of `rounds` rounds under `load`, `floor` its smallest
    /// regression, everything else as the command line's defaults (what
    /// the bisect runs each probe with).
    pub fn rounds_of(rounds: usize, load: RoundLoad, floor: f64) -> Self {
        GateArgs {
            base: None,
            head: None,
            rounds,
            load,
            ttfe_rate: 400.0,
            floor,
            floor_metric: Vec::new(),
            markdown: None,
            json: None,
            bmf: None,
            html: None,
            self_test: false,
            self_test_rounds: 30,
            self_test_injected_rounds: 12,
        }
    }
}

pub fn run(root: &Path, args: &GateArgs) -> anyhow::Result<i32> {
    if args.rounds < 2 {
        bail!("--rounds must be at least 2");
    }
    if args.load.slices == 0 {
        bail!("--slices must be at least 1");
    }
    if !(args.ttfe_rate > 0.0 && args.ttfe_rate.is_finite()) {
        bail!("--ttfe-rate must be above 0, got {}", args.ttfe_rate);
    }
    let started = Instant::now();
    let head_bin = build::build(root, args.head.as_deref())?;
    if args.self_test {
        return self_test::run(root, args, &head_bin, started);
    }
    let base_bin = build::build(root, args.base.as_deref())?;
    let base = Side::plain("base", base_bin);
    let head = Side::plain("head", head_bin.clone());
    let rounds = match rounds::measure(rounds::Rig { root, args, a: &base, b: &head, driver: &head_bin, phases: &Phase::ALL }, args.rounds)?
    {
        Ok(rounds) => rounds,
        Err(why) => {
            eprintln!("gate: could not measure: {why}");
            return Ok(2);
        }
    };
    let verdicts = verdict::analyse(args, &rounds)?;
    let regressed = verdict::gating(&verdicts, ChangeVerdict::Regressed);
    let unresolved = verdict::gating(&verdicts, ChangeVerdict::Unresolved);
    let summary = render::summary(&regressed, &unresolved);
    let label = format!("{} → {}", args.base.as_deref().unwrap_or("?"), args.head.as_deref().unwrap_or("working tree"));
    let markdown = render::markdown(&label, &verdicts, rounds.len(), args, &summary, started.elapsed());
    print!("{markdown}");
    render::write_outputs(args, &verdicts, &rounds, &markdown, &summary)?;
    Ok(exit_code(&regressed, &unresolved))
}

/// Exit code of a gate that measured: regressed 1, else unresolved 3, else 0.
fn exit_code(regressed: &[&str], unresolved: &[&str]) -> i32 {
    if !regressed.is_empty() {
        1
    } else if !unresolved.is_empty() {
        UNRESOLVED
    } else {
        0
    }
}

/// The gate could not tell: a gating metric's interval still reaches its floor.
pub const UNRESOLVED: i32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    /// A gate that cannot rule a regression out does not pass.
    #[test]
    fn unresolved_has_its_own_exit_code_and_regressed_wins() {
        assert_eq!(exit_code(&[], &[]), 0);
        assert_eq!(exit_code(&[], &["empty p99 duration"]), UNRESOLVED);
        assert_eq!(exit_code(&["error rate (pp)"], &["empty p99 duration"]), 1);
    }
}
