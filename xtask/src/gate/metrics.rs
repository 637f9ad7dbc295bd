//! The metrics the gate judges: each one figure of the figure table
//! (`schema::figures::AB`, which `flowbench ab` measures) on one
//! phase's slices, and a slice's pair of them.

use super::phase::Phase;
use schema::ab::Slice;
use schema::figures::{Figure, Scalar, Stat};
use schema::metrics::Metric;
use schema::report::ScenarioReport;

/// A metric the gate judges: one figure of one phase's slices (which way
/// is better, and whether it is a p99, follow from the figure).
#[derive(Debug, Clone, Copy)]
pub(super) struct GateMetric {
    pub(super) name: &'static str,
    pub(super) phase: Phase,
    /// One of `schema::figures::AB`, which `ab` measures.
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric names a figure the report's types know, each figure is
    /// judged once, and every phase has a metric.
    #[test]
    fn every_metric_is_a_figure_of_the_ab_report() {
        for metric in &METRICS {
            assert!(schema::figures::AB.contains(&metric.figure), "{}: {:?}", metric.name, metric.figure);
        }
        let figures: std::collections::HashSet<Figure> = METRICS.iter().map(|m| m.figure).collect();
        assert_eq!(figures.len(), METRICS.len());
        assert!(Phase::ALL.iter().all(|p| METRICS.iter().any(|m| m.phase == *p)));
    }
}
