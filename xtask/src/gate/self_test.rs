//! `cargo xtask gate --self-test`: the gate measuring itself on the head
//! build against itself. A/A rounds first (they calibrate the injected
//! costs), then rounds with cost injected into one side's server (its own
//! process: the mock is not slowed), each condition measured until it has
//! its rounds undisturbed (at most twice as many attempts); from each
//! condition's measured rounds, gates of `--rounds` rounds are drawn with replacement (a
//! bootstrap: a gate is a sample of rounds, not a subset of these) to
//! estimate false alarms and power.

use super::GateArgs;
use super::metrics::{ADVISORY_MDE_PCT, METRICS};
use super::phase::Phase;
use super::rounds::{self, Round, Side};
use super::verdict::{decide, floor_for};
use crate::stats::{PairedChange, SplitMix64, pct};
use crate::verdict::ChangeVerdict;
use std::fmt::Write;
use std::path::Path;
use std::time::{Duration, Instant};

/// Gates drawn by the self-test when estimating rates.
const SELF_TEST_DRAWS: usize = 2000;

/// A self-test condition: which phases it drives and what it injects.
struct Condition {
    name: &'static str,
    slowdown: f64,
    phases: &'static [Phase],
}

/// A/A first (all phases; it calibrates the others), then injected CPU on
/// the head side for the saturated phases, then an injected delay before
/// the first event for the TTFE phase.
const CONDITIONS: [Condition; 7] = [
    Condition { name: "A/A", slowdown: 0.0, phases: &Phase::ALL },
    Condition { name: "+3%", slowdown: 0.03, phases: &[Phase::Empty, Phase::Llm] },
    Condition { name: "+5%", slowdown: 0.05, phases: &[Phase::Empty, Phase::Llm] },
    Condition { name: "+10%", slowdown: 0.10, phases: &[Phase::Empty, Phase::Llm] },
    Condition { name: "TTFE +3%", slowdown: 0.03, phases: &[Phase::Ttfe] },
    Condition { name: "TTFE +5%", slowdown: 0.05, phases: &[Phase::Ttfe] },
    Condition { name: "TTFE +10%", slowdown: 0.10, phases: &[Phase::Ttfe] },
];

/// The fewest A/A rounds the false-alarm rate is drawn from.
pub(super) const MIN_AA_ROUNDS: usize = 30;

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
pub(super) fn run(root: &Path, args: &GateArgs, bin: &Path, started: Instant) -> anyhow::Result<i32> {
    let plain = Side::plain("A", bin.to_owned());
    let mut table = Vec::new();
    let mut calibration = Calibration::default();
    for condition in &CONDITIONS {
        let slowed = calibration.slowed(&plain, condition);
        let n = if condition.slowdown == 0.0 { args.self_test_rounds.max(MIN_AA_ROUNDS) } else { args.self_test_injected_rounds };
        eprintln!("gate self-test: {}: {n} rounds", condition.name);
        let rounds =
            match rounds::measure_undisturbed(rounds::Rig { root, args, a: &plain, b: &slowed, driver: bin, phases: condition.phases }, n)?
            {
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
        "### Gate self-test\n\nGates of {} rounds drawn with replacement {SELF_TEST_DRAWS} times from the measured rounds ({}). At +5%, the head side spends {:.2} µs more CPU per request and {:.3} µs per event (empty and llm phases), or {:.1} µs more before each run's first event (TTFE phase); {} slices of {} per phase per round, {} users a side, TTFE at {}/s a side.\n\n",
        args.rounds,
        n_measured.join(", "),
        calibration.per_request_s * 0.05 * 1e6,
        calibration.per_event_s * 0.05 * 1e6,
        calibration.ttfe_p50_s * 0.05 * 1e6,
        args.load.slices,
        humantime::format_duration(args.load.slice),
        args.load.users,
        args.ttfe_rate
    );
    out.push_str(
        "| metric | false alarms (A/A) | power at +3% | power at +5% | power at +10% | round SD | MDE at this size |\n|---|---|---|---|---|---|---|\n",
    );
    for (i, metric) in METRICS.iter().enumerate() {
        let aa = &table[0].2[i];
        let advisory = metric.is_p99() && aa.mde_pct > ADVISORY_MDE_PCT;
        let name = if advisory { format!("{} (advisory)", metric.name) } else { metric.name.to_owned() };
        let rate = |slowdown: f64| {
            table
                .iter()
                .find(|(c, _, _)| c.slowdown == slowdown && c.phases.contains(&metric.phase))
                .map_or("not measured".to_owned(), |t| format!("{:.1}%", t.2[i].regressed * 100.0))
        };
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {} | {} | {:.2}% | {:.1}% |",
            rate(0.0),
            rate(0.03),
            rate(0.05),
            rate(0.10),
            aa.round_sd_pct,
            aa.mde_pct
        );
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
    let size = args.rounds;
    let mut out = Vec::new();
    for (i, metric) in METRICS.iter().enumerate() {
        let ratios: Vec<f64> = rounds.iter().map(|r| r.log_ratios[i]).collect();
        if ratios.is_empty() || ratios.iter().any(|r| r.is_nan()) {
            // Not driven in this condition.
            out.push(Rate { regressed: f64::NAN, round_sd_pct: f64::NAN, mde_pct: f64::NAN });
            continue;
        }
        let floor = floor_for(args, metric.name)?;
        let mut n_regressed = 0;
        for _ in 0..SELF_TEST_DRAWS {
            let draw: Vec<f64> = (0..size).map(|_| ratios[rng.below(ratios.len())]).collect();
            if decide(&PairedChange::of(&draw), metric.higher_is_better(), floor) == ChangeVerdict::Regressed {
                n_regressed += 1;
            }
        }
        let sd = PairedChange::of(&ratios).log_sd;
        let mde = (crate::stats::t_975(size - 1) + crate::stats::t_90(size - 1)) * sd / (size as f64).sqrt();
        out.push(Rate { regressed: n_regressed as f64 / SELF_TEST_DRAWS as f64, round_sd_pct: sd * 100.0, mde_pct: pct(mde) });
    }
    Ok(out)
}
