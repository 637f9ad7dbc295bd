//! The one table of figures. Every number a scenario report holds as a
//! figure is a `Figure`: a latency metric at a statistic (`Metric` ×
//! `Stat`, the metrics' own table is `load::metrics::METRICS`) or a row of
//! `SCALARS`, which says once how it is named (in thresholds and BMF), what
//! it is called, which way is better and how it is read from a
//! `ScenarioReport`. Thresholds, BMF, `flowbench report`'s comparisons,
//! `ab`, the gate and the seed's tables (text, Markdown, HTML) all read
//! figures through this module, by type.
//!
//! A new scalar figure is one row here and the place it is computed; a new
//! latency metric is one row of `METRICS` and the place it is measured.

use crate::metrics::{Metric, Summary};
use crate::report::ScenarioReport;

/// A statistic of a latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stat {
    Avg,
    Min,
    Max,
    P50,
    P90,
    P95,
    P99,
    P999,
}

impl Stat {
    pub const ALL: [Stat; 8] = [Stat::Avg, Stat::Min, Stat::Max, Stat::P50, Stat::P90, Stat::P95, Stat::P99, Stat::P999];

    /// Its name in a figure's key (`ttfe_p95`).
    pub const fn key(self) -> &'static str {
        match self {
            Stat::Avg => "avg",
            Stat::Min => "min",
            Stat::Max => "max",
            Stat::P50 => "p50",
            Stat::P90 => "p90",
            Stat::P95 => "p95",
            Stat::P99 => "p99",
            Stat::P999 => "p999",
        }
    }

    /// Its column heading in the tables.
    pub const fn label(self) -> &'static str {
        match self {
            Stat::Avg => "Avg",
            Stat::Min => "Min",
            Stat::Max => "Max",
            Stat::P50 => "P50",
            Stat::P90 => "P90",
            Stat::P95 => "P95",
            Stat::P99 => "P99",
            Stat::P999 => "P99.9",
        }
    }

    /// This statistic of `summary`, in ms.
    pub fn of(self, summary: &Summary) -> f64 {
        match self {
            Stat::Avg => summary.avg,
            Stat::Min => summary.min,
            Stat::Max => summary.max,
            Stat::P50 => summary.p50,
            Stat::P90 => summary.p90,
            Stat::P95 => summary.p95,
            Stat::P99 => summary.p99,
            Stat::P999 => summary.p999,
        }
    }
}

/// What a figure counts in, and so how a threshold's value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// Milliseconds: `200ms`, `1.5s`, `750us`, bare ms.
    Ms,
    /// Microseconds of CPU.
    Us,
    /// Per second.
    PerSecond,
    /// A count.
    Count,
    /// A share of requests: a fraction or a `%`.
    Fraction,
}

/// A figure that is one number per scenario (not a distribution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scalar {
    RequestsPerS,
    RequestsPerSMax,
    RequestsPerSMin,
    EventsPerS,
    EventsPerSMax,
    EventsPerSMin,
    AvgDuration,
    MaxConcurrent,
    AvgActive,
    Errors,
    ErrorRate,
    IntegrityErrors,
    EventsPerRequest,
    TargetCpuPerRequest,
    TargetCpuPerEvent,
}

/// One scalar figure: its names, its unit, its better direction and how it
/// is read from a scenario report (`None`: not measured there).
#[derive(Debug)]
pub struct ScalarRow {
    pub scalar: Scalar,
    /// Its name in thresholds and BMF.
    pub key: &'static str,
    /// Other names a threshold may give it.
    pub aliases: &'static [&'static str],
    /// What the tables call it.
    pub label: &'static str,
    pub unit: Unit,
    pub higher_is_better: bool,
    pub read: fn(&ScenarioReport) -> Option<f64>,
    /// BMF's bounds for it: the slowest and fastest window.
    pub bounds: Option<(Scalar, Scalar)>,
}

/// Every scalar figure, in `Scalar`'s order.
pub const SCALARS: [ScalarRow; 15] = [
    ScalarRow {
        scalar: Scalar::RequestsPerS,
        key: "requests_per_s",
        aliases: &["qps"],
        label: "Avg QPS (requests/s)",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.qps.avg),
        bounds: Some((Scalar::RequestsPerSMin, Scalar::RequestsPerSMax)),
    },
    ScalarRow {
        scalar: Scalar::RequestsPerSMax,
        key: "requests_per_s_max",
        aliases: &["qps_max"],
        label: "Max QPS (requests/s, fastest window)",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.qps.max),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::RequestsPerSMin,
        key: "requests_per_s_min",
        aliases: &["qps_min"],
        label: "Min QPS (requests/s, slowest window)",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.qps.min),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::EventsPerS,
        key: "events_per_s",
        aliases: &[],
        label: "Avg events/s",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.event_throughput.avg),
        bounds: Some((Scalar::EventsPerSMin, Scalar::EventsPerSMax)),
    },
    ScalarRow {
        scalar: Scalar::EventsPerSMax,
        key: "events_per_s_max",
        aliases: &[],
        label: "Max events/s (fastest window)",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.event_throughput.max),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::EventsPerSMin,
        key: "events_per_s_min",
        aliases: &[],
        label: "Min events/s (slowest window)",
        unit: Unit::PerSecond,
        higher_is_better: true,
        read: |s| Some(s.event_throughput.min),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::AvgDuration,
        key: "avg_duration_ms",
        aliases: &[],
        label: "Avg duration (ms)",
        unit: Unit::Ms,
        higher_is_better: false,
        // The successes' mean: none when nothing succeeded.
        read: |s| (s.counts.ok > 0).then_some(s.avg_duration_ms),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::MaxConcurrent,
        key: "max_concurrent",
        aliases: &[],
        label: "Max concurrent",
        unit: Unit::Count,
        higher_is_better: false,
        read: |s| Some(s.connections.max_concurrent as f64),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::AvgActive,
        key: "avg_active",
        aliases: &[],
        label: "Avg active",
        unit: Unit::Count,
        higher_is_better: false,
        read: |s| Some(s.connections.avg_active),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::Errors,
        key: "errors",
        aliases: &[],
        label: "Errors",
        unit: Unit::Count,
        higher_is_better: false,
        read: |s| Some(s.counts.errors as f64),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::ErrorRate,
        key: "error_rate",
        aliases: &[],
        label: "Error rate",
        unit: Unit::Fraction,
        higher_is_better: false,
        // Streams left on purpose (`aborted`) are not the target's failures.
        read: |s| {
            let measured = s.counts.ok + s.counts.errors;
            (measured > 0).then(|| s.counts.errors.saturating_sub(s.counts.aborted()) as f64 / measured as f64)
        },
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::IntegrityErrors,
        key: "integrity_errors",
        aliases: &[],
        label: "Integrity errors",
        unit: Unit::Count,
        higher_is_better: false,
        // Not measured where no stream was checked: never a silent zero.
        read: |s| s.integrity.as_ref().map(|i| i.violating as f64),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::EventsPerRequest,
        key: "events_per_request",
        aliases: &[],
        label: "Events per request",
        unit: Unit::Count,
        higher_is_better: false,
        read: |s| Some(s.events_per_request),
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::TargetCpuPerRequest,
        key: "target_cpu_us_per_request",
        aliases: &[],
        label: "Target CPU per request (µs)",
        unit: Unit::Us,
        higher_is_better: false,
        read: |s| s.target_cpu_us_per_request,
        bounds: None,
    },
    ScalarRow {
        scalar: Scalar::TargetCpuPerEvent,
        key: "target_cpu_us_per_event",
        aliases: &[],
        label: "Target CPU per event (µs)",
        unit: Unit::Us,
        higher_is_better: false,
        read: |s| s.target_cpu_us_per_event,
        bounds: None,
    },
];

impl Scalar {
    /// Its row of `SCALARS`.
    pub fn row(self) -> &'static ScalarRow {
        &SCALARS[self as usize]
    }
}

/// A figure of a scenario report: a latency metric at a statistic, or a scalar.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Figure {
    Latency(Metric, Stat),
    Scalar(Scalar),
}

impl Figure {
    /// Its value in `report`; `None` where the scenario did not measure it
    /// (a latency no request recorded, the CPU of a remote target).
    pub fn read(self, report: &ScenarioReport) -> Option<f64> {
        match self {
            Figure::Latency(metric, stat) => {
                let summary = report.latency(metric);
                (summary.n > 0).then(|| stat.of(&summary))
            }
            Figure::Scalar(scalar) => (scalar.row().read)(report),
        }
    }

    /// Its name in thresholds: `ttfe_p95`, `requests_per_s`.
    pub fn key(self) -> String {
        match self {
            Figure::Latency(metric, stat) => format!("{}_{}", metric.key(), stat.key()),
            Figure::Scalar(scalar) => scalar.row().key.to_owned(),
        }
    }

    /// Its name in BMF: a latency carries its unit (`ttfe_p95_ms`).
    pub fn bmf_key(self) -> String {
        match self {
            Figure::Latency(..) => format!("{}_ms", self.key()),
            Figure::Scalar(_) => self.key(),
        }
    }

    /// What the tables call it: `TTFE P95 (ms)`, `Avg QPS (requests/s)`.
    pub fn label(self) -> String {
        match self {
            Figure::Latency(metric, stat) => format!("{} {} (ms)", metric.short_label(), stat.label()),
            Figure::Scalar(scalar) => scalar.row().label.to_owned(),
        }
    }

    pub fn unit(self) -> Unit {
        match self {
            Figure::Latency(..) => Unit::Ms,
            Figure::Scalar(scalar) => scalar.row().unit,
        }
    }

    /// Whether more is better (throughput) or worse (latency, CPU, errors).
    pub fn higher_is_better(self) -> bool {
        match self {
            Figure::Latency(..) => false,
            Figure::Scalar(scalar) => scalar.row().higher_is_better,
        }
    }

    /// The figure a threshold or BMF names: `ttfe_p95`, `qps`, `error_rate`.
    pub fn from_key(key: &str) -> Result<Figure, String> {
        if let Some(row) = SCALARS.iter().find(|r| r.key == key || r.aliases.contains(&key)) {
            return Ok(Figure::Scalar(row.scalar));
        }
        let (metric, stat) = key.rsplit_once('_').ok_or_else(|| format!("unknown figure {key:?}"))?;
        let Some(metric) = Metric::from_key(metric) else {
            let scalars: Vec<&str> = SCALARS.iter().map(|r| r.key).collect();
            let known: Vec<&str> = Metric::ALL.iter().map(|m| m.key()).collect();
            return Err(format!(
                "unknown figure {key:?}: one of {}, or a latency <metric>_<stat> with metric one of {}",
                scalars.join(", "),
                known.join(", ")
            ));
        };
        let stat = Stat::ALL.into_iter().find(|s| s.key() == stat).ok_or_else(|| {
            let stats: Vec<&str> = Stat::ALL.iter().map(|s| s.key()).collect();
            format!("unknown statistic {stat:?} ({})", stats.join(", "))
        })?;
        Ok(Figure::Latency(metric, stat))
    }
}

/// The figures `flowbench report` compares, saved run against saved run.
pub const COMPARED: [Figure; 17] = [
    Figure::Scalar(Scalar::RequestsPerS),
    Figure::Scalar(Scalar::EventsPerS),
    Figure::Latency(Metric::Ttfe, Stat::P50),
    Figure::Latency(Metric::Ttfe, Stat::P95),
    Figure::Latency(Metric::Ttfe, Stat::P99),
    Figure::Latency(Metric::Ttfb, Stat::P50),
    Figure::Latency(Metric::Ttfb, Stat::P95),
    Figure::Latency(Metric::Ttfb, Stat::P99),
    Figure::Latency(Metric::Duration, Stat::P50),
    Figure::Latency(Metric::Duration, Stat::P95),
    Figure::Latency(Metric::Duration, Stat::P99),
    Figure::Scalar(Scalar::MaxConcurrent),
    Figure::Scalar(Scalar::AvgActive),
    Figure::Scalar(Scalar::Errors),
    Figure::Scalar(Scalar::IntegrityErrors),
    Figure::Scalar(Scalar::TargetCpuPerRequest),
    Figure::Scalar(Scalar::TargetCpuPerEvent),
];

/// The figures of a run's BMF document: the compared ones but the last
/// two, the target's CPU (which BMF's consumers track from the gate).
pub const BMF: &[Figure] = COMPARED.split_at(COMPARED.len() - 2).0;

/// The figures `flowbench ab` shows for each side and `cargo xtask gate`
/// judges (each gate metric is one of these on one phase).
pub const AB: [Figure; 8] = [
    Figure::Scalar(Scalar::RequestsPerS),
    Figure::Latency(Metric::Duration, Stat::P50),
    Figure::Latency(Metric::Duration, Stat::P99),
    Figure::Latency(Metric::Ttfe, Stat::P50),
    Figure::Latency(Metric::Ttfe, Stat::P99),
    Figure::Scalar(Scalar::EventsPerS),
    Figure::Scalar(Scalar::TargetCpuPerRequest),
    Figure::Scalar(Scalar::TargetCpuPerEvent),
];

/// One of the seed's four tables: its title, its columns, and which
/// scenarios it shows: those that stream (Event Throughput, TTFE,
/// Connections, from the seed's Start→LLM→End) or those that do not (Empty
/// Workflow QPS, from its Start→End).
#[derive(Debug)]
pub struct SeedTable {
    pub title: &'static str,
    pub streams: bool,
    pub columns: &'static [(&'static str, Figure)],
}

/// The seed's tables, in the seed's order and shape.
pub const SEED_TABLES: [SeedTable; 4] = [
    SeedTable {
        title: "Event Throughput (events/s)",
        streams: true,
        columns: &[
            ("Max", Figure::Scalar(Scalar::EventsPerSMax)),
            ("Avg", Figure::Scalar(Scalar::EventsPerS)),
            ("Min", Figure::Scalar(Scalar::EventsPerSMin)),
        ],
    },
    SeedTable {
        title: "TTFE - Time To First Event (ms)",
        streams: true,
        columns: &[
            ("Avg", Figure::Latency(Metric::Ttfe, Stat::Avg)),
            ("Min", Figure::Latency(Metric::Ttfe, Stat::Min)),
            ("Max", Figure::Latency(Metric::Ttfe, Stat::Max)),
            ("P50", Figure::Latency(Metric::Ttfe, Stat::P50)),
            ("P90", Figure::Latency(Metric::Ttfe, Stat::P90)),
            ("P95", Figure::Latency(Metric::Ttfe, Stat::P95)),
        ],
    },
    SeedTable {
        title: "Connections",
        streams: true,
        columns: &[("Max Concurrent", Figure::Scalar(Scalar::MaxConcurrent)), ("Avg Active", Figure::Scalar(Scalar::AvgActive))],
    },
    SeedTable {
        title: "Empty Workflow QPS",
        streams: false,
        columns: &[
            ("Max QPS", Figure::Scalar(Scalar::RequestsPerSMax)),
            ("Avg QPS", Figure::Scalar(Scalar::RequestsPerS)),
            ("Avg Duration (ms)", Figure::Scalar(Scalar::AvgDuration)),
        ],
    },
];

impl SeedTable {
    /// The scenarios of `scenarios` this table shows, in their order.
    pub fn rows<'a, T>(&self, scenarios: &'a [T], report: impl Fn(&T) -> &ScenarioReport) -> Vec<&'a T> {
        scenarios.iter().filter(|s| report(s).streams() == self.streams).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The table is in `Scalar`'s order, and every name is one figure's.
    #[test]
    fn each_figure_has_one_row_and_one_name() {
        for (i, row) in SCALARS.iter().enumerate() {
            assert_eq!(row.scalar as usize, i, "{:?} is out of order", row.scalar);
            assert_eq!(Figure::from_key(row.key), Ok(Figure::Scalar(row.scalar)));
            for alias in row.aliases {
                assert_eq!(Figure::from_key(alias), Ok(Figure::Scalar(row.scalar)));
            }
        }
        let mut names: Vec<String> =
            SCALARS.iter().flat_map(|r| std::iter::once(r.key).chain(r.aliases.iter().copied())).map(str::to_owned).collect();
        for metric in Metric::ALL {
            for stat in Stat::ALL {
                let figure = Figure::Latency(metric, stat);
                assert_eq!(Figure::from_key(&figure.key()), Ok(figure));
                names.push(figure.key());
            }
        }
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a name names two figures");
    }
}
