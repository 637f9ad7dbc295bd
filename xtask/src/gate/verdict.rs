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

use super::GateArgs;
use super::rounds::{Phase, Round};
use crate::stats::{PairedChange, pct};
use crate::verdict::Verdict;
use anyhow::{Context, bail};
use flowbench::load::metrics::Metric;
use flowbench::report::ScenarioReport;
use flowbench::report::ab::Slice;
use flowbench::report::figures::{Figure, Scalar, Stat};
use serde::Serialize;

/// A metric the gate judges: one figure of one phase's slices (which way
/// is better, and whether it is a p99, follow from the figure).
#[derive(Debug, Clone, Copy)]
pub(super) struct GateMetric {
    pub(super) name: &'static str,
    pub(super) phase: Phase,
    /// One of `flowbench::report::figures::AB`, which `ab` measures.
    pub(super) figure: Figure,
}

pub(super) const METRICS: [GateMetric; 8] = [
    GateMetric { name: "empty QPS", phase: Phase::Empty, figure: Figure::Scalar(Scalar::RequestsPerS) },
    GateMetric { name: "empty CPU µs/request", phase: Phase::Empty, figure: Figure::Scalar(Scalar::TargetCpuPerRequest) },
    GateMetric { name: "empty p50 duration", phase: Phase::Empty, figure: Figure::Latency(Metric::Duration, Stat::P50) },
    GateMetric { name: "empty p99 duration", phase: Phase::Empty, figure: Figure::Latency(Metric::Duration, Stat::P99) },
    GateMetric { name: "TTFE p50", phase: Phase::Ttfe, figure: Figure::Latency(Metric::Ttfe, Stat::P50) },
    GateMetric { name: "TTFE p99", phase: Phase::Ttfe, figure: Figure::Latency(Metric::Ttfe, Stat::P99) },
    GateMetric { name: "llm events/s", phase: Phase::Llm, figure: Figure::Scalar(Scalar::EventsPerS) },
    GateMetric { name: "llm CPU µs/event", phase: Phase::Llm, figure: Figure::Scalar(Scalar::TargetCpuPerEvent) },
];
/// A p99 metric gates only once it can resolve this change.
pub(super) const ADVISORY_MDE_PCT: f64 = 20.0;

impl GateMetric {
    /// This metric's figure of one side of a slice, when it measured one above zero.
    pub(super) fn of(&self, side: &ScenarioReport) -> Option<f64> {
        self.figure.read(side).filter(|v| *v > 0.0)
    }

    pub(super) fn higher_is_better(&self) -> bool {
        self.figure.higher_is_better()
    }

    /// A p99: advisory while it cannot resolve `ADVISORY_MDE_PCT`.
    pub(super) fn is_p99(&self) -> bool {
        matches!(self.figure, Figure::Latency(_, Stat::P99))
    }
}

/// One slice's figures of a metric: side a's (the base), side b's (the
/// head) and ln(head/base).
#[derive(Debug, Clone, Copy)]
pub(super) struct Paired {
    pub(super) base: f64,
    pub(super) head: f64,
    pub(super) log_ratio: f64,
}

/// `metric` on both sides of `slice`; `None` when either side lacks it.
pub(super) fn paired(metric: &GateMetric, slice: &Slice) -> Option<Paired> {
    let (x, y) = (metric.of(&slice.a)?, metric.of(&slice.b)?);
    Some(Paired { base: x, head: y, log_ratio: (y / x).ln() })
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
    Ok(out)
}

/// The metrics that count (not advisory) and got `verdict`.
pub(super) fn gating(verdicts: &[MetricVerdict], verdict: Verdict) -> Vec<&'static str> {
    verdicts.iter().filter(|v| v.verdict == verdict && !v.advisory).map(|v| v.metric).collect()
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

    /// Every metric names a figure the report's types know, each figure is
    /// judged once, and every phase has a metric.
    #[test]
    fn every_metric_is_a_figure_of_the_ab_report() {
        for metric in &METRICS {
            assert!(flowbench::report::figures::AB.contains(&metric.figure), "{}: {:?}", metric.name, metric.figure);
        }
        let figures: std::collections::HashSet<Figure> = METRICS.iter().map(|m| m.figure).collect();
        assert_eq!(figures.len(), METRICS.len());
        assert!(Phase::ALL.iter().all(|p| METRICS.iter().any(|m| m.phase == *p)));
    }
}
