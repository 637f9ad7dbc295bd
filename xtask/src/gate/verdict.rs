//! The gate's statistics, per metric: each slice's log ratio ln(head/base),
//! each round's mean of them, the mean over rounds with a 95% t interval,
//! and from the interval and the metric's floor a verdict.
//!
//! The round is the statistical unit: fresh processes carry their own luck
//! (memory layout, hash seeds), so slices of one round are not independent.
//!
//! A metric Regressed only when its interval lies wholly on the worse side of
//! zero and the estimate is past its floor (default 2%); it is Unresolved, not
//! passed, when the interval still reaches the floor. p99 metrics are
//! advisory while their minimum detectable effect is above 20%.
//!
//! The error rate is gated too (`error_rate`): per round, the difference
//! of the two sides' shares of failed requests in percentage points; their
//! mean with a 95% t interval over rounds, against a floor of
//! `ERROR_FLOOR_PP`.

use super::GateArgs;
use super::metrics::{ADVISORY_MDE_PCT, METRICS};
use super::rounds::Round;
use crate::stats::{PairedChange, pct};
use crate::verdict::ChangeVerdict;
use anyhow::{Context, bail};
use serde::Serialize;

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
    pub verdict: ChangeVerdict,
}

/// The floor of `metric`: its `--floor-metric`, else `--floor`.
pub(super) fn floor_for(args: &GateArgs, metric: &str) -> anyhow::Result<f64> {
    for given in &args.floor_metric {
        let (name, value) = given.split_once('=').with_context(|| format!("--floor-metric {given:?} is not METRIC=PCT"))?;
        if !METRICS.iter().any(|m| m.name == name) {
            bail!("--floor-metric {given:?}: unknown metric; one of {:?}", METRICS.map(|m| m.name));
        }
        if name == metric {
            return value.trim_end_matches('%').parse().with_context(|| format!("--floor-metric {given:?}: not a number"));
        }
    }
    Ok(args.floor)
}

/// Every metric's verdict over `rounds`.
pub(super) fn analyse(args: &GateArgs, rounds: &[Round]) -> anyhow::Result<Vec<MetricVerdict>> {
    let mut out = Vec::new();
    for (i, metric) in METRICS.iter().enumerate() {
        let ratios: Vec<f64> = rounds.iter().map(|r| r.log_ratios[i]).collect();
        let change = PairedChange::of(&ratios);
        let floor_pct = floor_for(args, metric.name)?;
        out.push(MetricVerdict {
            metric: metric.name,
            base_mean: crate::stats::geomean(&rounds.iter().map(|r| r.base[i]).collect::<Vec<_>>()),
            head_mean: crate::stats::geomean(&rounds.iter().map(|r| r.head[i]).collect::<Vec<_>>()),
            change_pct: pct(change.log_mean),
            ci_low_pct: pct(change.log_low),
            ci_high_pct: pct(change.log_high),
            mde_pct: pct(change.log_mde),
            round_sd_pct: change.log_sd * 100.0,
            floor_pct,
            advisory: metric.is_p99() && pct(change.log_mde) > ADVISORY_MDE_PCT,
            verdict: decide(&change, metric.higher_is_better(), floor_pct),
        });
    }
    out.push(error_rate(rounds));
    Ok(out)
}

/// The name of the error rate's row.
pub(super) const ERROR_RATE: &str = "error rate (pp)";
/// The smallest rise in the share of failed requests, in percentage
/// points, that counts as a regression.
pub(super) const ERROR_FLOOR_PP: f64 = 0.1;

/// The error rate's verdict over `rounds`: per round, the head's share of
/// failed requests less the base's, in percentage points; their mean over
/// rounds with a 95% t interval (the round is the unit, as for every
/// metric: failures that come in bursts are not taken for independent
/// trials), judged by the gate's rule against `ERROR_FLOOR_PP`. No failure
/// on either side is a pass; "base" and "head" are each side's share of
/// all its requests, in %.
pub(super) fn error_rate(rounds: &[Round]) -> MetricVerdict {
    use super::rounds::Tally;
    let share = |t: Tally| if t.measured == 0 { 0.0 } else { t.failed as f64 / t.measured as f64 * 100.0 };
    let total = |pick: fn(&Round) -> Tally| {
        rounds.iter().map(pick).fold(Tally::default(), |a, t| Tally { failed: a.failed + t.failed, measured: a.measured + t.measured })
    };
    let (base, head) = (total(|r| r.base_errors), total(|r| r.head_errors));
    let diffs: Vec<f64> = rounds.iter().map(|r| share(r.head_errors) - share(r.base_errors)).collect();
    let n = diffs.len();
    let diff = crate::stats::mean(&diffs);
    let half = if n > 1 { crate::stats::t_975(n - 1) * crate::stats::sd(&diffs) / (n as f64).sqrt() } else { f64::INFINITY };
    let (low, high) = (diff - half, diff + half);
    let verdict = if base.measured == 0 || head.measured == 0 || n < 2 {
        ChangeVerdict::Unresolved
    } else if base.failed == 0 && head.failed == 0 {
        ChangeVerdict::Pass
    } else {
        rule(diff, low, high, ERROR_FLOOR_PP)
    };
    MetricVerdict {
        metric: ERROR_RATE,
        base_mean: share(base),
        head_mean: share(head),
        change_pct: diff,
        ci_low_pct: low,
        ci_high_pct: high,
        mde_pct: f64::NAN,
        round_sd_pct: f64::NAN,
        floor_pct: ERROR_FLOOR_PP,
        advisory: false,
        verdict,
    }
}

/// The metrics that count (not advisory) and got `verdict`.
pub(super) fn gating(verdicts: &[MetricVerdict], verdict: ChangeVerdict) -> Vec<&'static str> {
    verdicts.iter().filter(|v| v.verdict == verdict && !v.advisory).map(|v| v.metric).collect()
}

/// The rule: Regressed only when the whole interval is on the worse side and
/// the estimate is past the floor; Pass only when the interval excludes a
/// floor-sized regression.
pub fn decide(change: &PairedChange, higher_is_better: bool, floor_pct: f64) -> ChangeVerdict {
    let floor = (1.0 + floor_pct / 100.0).ln();
    // "Badness": positive when head is worse.
    let (bad, bad_low, bad_high) = if higher_is_better {
        (-change.log_mean, -change.log_high, -change.log_low)
    } else {
        (change.log_mean, change.log_low, change.log_high)
    };
    rule(bad, bad_low, bad_high, floor)
}

/// The gate's rule on a change in the worse direction (`bad`, with its
/// interval `low`..`high`) against `floor`, in the same units.
fn rule(bad: f64, low: f64, high: f64, floor: f64) -> ChangeVerdict {
    if low > 0.0 && bad > floor {
        ChangeVerdict::Regressed
    } else if high < 0.0 && -bad > floor {
        ChangeVerdict::Improved
    } else if high < floor {
        ChangeVerdict::Pass
    } else {
        ChangeVerdict::Unresolved
    }
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
        assert_eq!(decide(&change(ln(5.0), ln(1.0)), false, 2.0), ChangeVerdict::Regressed);
        // Throughput down 5% ± 1%: regressed.
        assert_eq!(decide(&change(ln(-5.0), ln(1.0)), true, 2.0), ChangeVerdict::Regressed);
        // Up 1.5% ± 1%: significant but under the floor, and the interval excludes 2%.
        assert_eq!(decide(&change(ln(1.5), ln(0.4)), false, 2.0), ChangeVerdict::Pass);
        // 0% ± 4%: cannot exclude a 2% regression.
        assert_eq!(decide(&change(0.0, ln(4.0)), false, 2.0), ChangeVerdict::Unresolved);
        // Latency down 6% ± 1%: improved.
        assert_eq!(decide(&change(ln(-6.0), ln(1.0)), false, 2.0), ChangeVerdict::Improved);
    }

    fn round(base: (u64, u64), head: (u64, u64)) -> Round {
        use super::super::rounds::Tally;
        Round {
            log_ratios: Vec::new(),
            base: Vec::new(),
            head: Vec::new(),
            base_errors: Tally { failed: base.0, measured: base.1 },
            head_errors: Tally { failed: head.0, measured: head.1 },
            disturbed: None,
        }
    }

    /// A head that fails now and then is caught; none failing passes; a
    /// handful too few to tell either way is not a pass.
    #[test]
    fn an_erroring_head_regresses_the_error_rate() {
        let clean = vec![round((0, 20_000), (0, 20_000)); 8];
        assert_eq!(error_rate(&clean).verdict, ChangeVerdict::Pass);
        // 1% of the head's requests fail, in every round.
        let failing = vec![round((0, 20_000), (200, 20_000)); 8];
        let v = error_rate(&failing);
        assert_eq!(v.verdict, ChangeVerdict::Regressed, "{v:?}");
        assert!((v.change_pct - 1.0).abs() < 1e-9 && (v.head_mean - 1.0).abs() < 1e-9);
        // Fails in two rounds of eight only: the rounds with errors are kept,
        // and the gate cannot call it a pass.
        let mut sometimes = clean.clone();
        sometimes[2] = round((0, 20_000), (400, 20_000));
        sometimes[5] = round((0, 20_000), (400, 20_000));
        assert_eq!(error_rate(&sometimes).verdict, ChangeVerdict::Unresolved);
        // In most rounds, a little: regressed.
        let mostly: Vec<Round> = (0..8).map(|i| round((0, 20_000), (if i == 3 { 0 } else { 60 + 10 * i }, 20_000))).collect();
        assert_eq!(error_rate(&mostly).verdict, ChangeVerdict::Regressed, "{:?}", error_rate(&mostly));
        // Both sides fail alike: not the head's doing.
        let both = vec![round((100, 20_000), (100, 20_000)); 8];
        assert_eq!(error_rate(&both).verdict, ChangeVerdict::Pass);
        // Few requests and a few failures: the interval reaches the floor.
        let few = vec![round((0, 200), (1, 200)), round((0, 200), (0, 200))];
        assert_eq!(error_rate(&few).verdict, ChangeVerdict::Unresolved);
        assert_eq!(error_rate(&[]).verdict, ChangeVerdict::Unresolved, "nothing measured cannot pass");
    }
}
