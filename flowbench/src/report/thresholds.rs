//! Pass/fail criteria on a run's figures, as k6's thresholds: `--threshold
//! 'ttfe_p95<200ms'`, `'error_rate<0.1%'`, `'llm:qps>=20'`. A run whose
//! threshold is crossed exits with its own code (`cli::exit::THRESHOLD`),
//! so CI can tell a slow target from a failed run.

use super::ScenarioReport;
use super::figures::{Figure, Unit};
pub use schema::report::ThresholdResult;

/// One criterion, parsed.
#[derive(Debug, Clone, PartialEq)]
pub struct Threshold {
    /// As the user wrote it.
    pub text: String,
    /// Only this scenario's figures; `None`: every scenario's.
    pub scenario: Option<String>,
    figure: Figure,
    op: Op,
    /// In the figure's unit: ms for latencies, µs for CPU, a fraction for
    /// rates of errors, per second for throughputs.
    limit: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Lt,
    Le,
    Gt,
    Ge,
    Eq,
}

impl std::str::FromStr for Threshold {
    type Err = String;

    /// `[SCENARIO:]FIGURE OP VALUE` (OP one of `<`, `<=`, `>`, `>=`, `==`),
    /// e.g. `ttfe_p95<200ms`, `integrity_errors==0`: FIGURE is any
    /// figure of the figure table by its key (`report::figures`): a latency
    /// as `<metric>_<stat>` (`ttfb`, `ttfe`, `duration`, … with `avg`,
    /// `min`, `max`, `p50`, `p90`, `p95`, `p99`, `p999`; the value in `ms`,
    /// `s` or `us`, ms when bare), `error_rate` (a fraction or a `%`),
    /// `qps` (`requests_per_s`), `events_per_s`, `max_concurrent`, …
    fn from_str(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let at = compact.find(['<', '>', '=']).ok_or_else(|| format!("{text:?} has no comparison (<, <=, >, >=, ==)"))?;
        let (left, rest) = compact.split_at(at);
        let (op, value) = match rest.as_bytes() {
            [b'=', b'=', ..] => (Op::Eq, &rest[2..]),
            [b'=', ..] => return Err(format!("{text:?}: compare with ==, not =")),
            [b'<', b'=', ..] => (Op::Le, &rest[2..]),
            [b'>', b'=', ..] => (Op::Ge, &rest[2..]),
            [b'<', ..] => (Op::Lt, &rest[1..]),
            _ => (Op::Gt, &rest[1..]),
        };
        let (scenario, name) = match left.split_once(':') {
            Some((scenario, name)) => (Some(scenario.to_owned()), name),
            None => (None, left),
        };
        let figure = Figure::from_key(name).map_err(|e| format!("{text:?}: {e}"))?;
        let limit = match figure.unit() {
            Unit::Ms => parse_ms(value),
            Unit::Fraction => parse_fraction(value),
            Unit::Us | Unit::PerSecond | Unit::Count => value.parse().ok(),
        }
        .filter(|v: &f64| v.is_finite() && *v >= 0.0)
        .ok_or_else(|| format!("{text:?}: {value:?} is not a value for {name}"))?;
        Ok(Self { text: text.to_owned(), scenario, figure, op, limit })
    }
}

/// A share: a fraction (`0.01`) or a percentage (`1%`).
pub fn parse_fraction(value: &str) -> Option<f64> {
    match value.trim().strip_suffix('%') {
        Some(percent) => percent.trim().parse::<f64>().ok().map(|p| p / 100.0),
        None => value.trim().parse().ok(),
    }
    .filter(|v: &f64| v.is_finite() && *v >= 0.0)
}

/// A duration in ms: `200ms`, `1.5s`, `750us` (or `µs`), bare ms, or any
/// humantime duration (`1h`, `2m30s`).
fn parse_ms(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("us").or_else(|| value.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e3)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale).or_else(|| humantime::parse_duration(value).ok().map(|d| d.as_secs_f64() * 1e3))
}

impl Threshold {
    /// Whether it applies to `scenario`.
    pub fn applies_to(&self, scenario: &str) -> bool {
        self.scenario.as_deref().is_none_or(|s| s == scenario)
    }

    /// Judges `report`.
    pub fn judge(&self, report: &ScenarioReport) -> ThresholdResult {
        let value = self.figure.read(report);
        // A figure the run did not produce fails: a criterion nothing
        // measured is not met.
        let passed = value.is_some_and(|v| match self.op {
            Op::Lt => v < self.limit,
            Op::Le => v <= self.limit,
            Op::Gt => v > self.limit,
            Op::Ge => v >= self.limit,
            Op::Eq => v == self.limit,
        });
        ThresholdResult { threshold: self.text.clone(), scenario: report.name.clone(), value, passed }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::Metric;

    #[test]
    fn thresholds_parse_and_judge_the_report_figures() {
        let report = crate::report::sample::sample_scenario("llm");
        let ttfe_p95 = report.latency(Metric::Ttfe).p95;
        let judge = |text: &str| text.parse::<Threshold>().unwrap().judge(&report);
        assert!(judge(&format!("ttfe_p95 < {}ms", ttfe_p95 + 0.001)).passed);
        assert!(!judge(&format!("ttfe_p95<{ttfe_p95}ms")).passed, "< is strict");
        assert!(judge(&format!("ttfe_p95<={ttfe_p95}")).passed, "bare values are ms");
        assert!(judge(&format!("ttfe_p95 < {}s", (ttfe_p95 + 1.0) / 1000.0)).passed);
        assert_eq!(judge("ttfe_p95<1s").value, Some(ttfe_p95));
        assert!(judge("error_rate<=100%").passed);
        assert!(!judge("qps>1e12").passed);
        assert!(judge("qps>=0").passed);
        let errors = report.counts.errors;
        assert!(judge(&format!("errors=={errors}")).passed && !judge(&format!("errors=={}", errors + 1)).passed);
        assert_eq!(judge("integrity_errors==0").value, Some(2.0), "two of the sample's streams broke the grammar");
        assert!(!judge("integrity_errors==0").passed && judge("integrity_errors<=2").passed);
        // A scenario that checked no stream: not checked is not zero.
        let blocking = crate::report::sample::sample_scenario("empty");
        let unchecked: Threshold = "integrity_errors==0".parse().unwrap();
        assert_eq!(unchecked.judge(&blocking).value, None);
        assert!(!unchecked.judge(&blocking).passed);
        let scoped: Threshold = "empty:duration_p99<1ms".parse().unwrap();
        assert!(scoped.applies_to("empty") && !scoped.applies_to("llm"));
        // What a run did not record fails, rather than passing unseen.
        assert_eq!(judge("stream_tail_p50<1s").value, None);
        assert!(!judge("stream_tail_p50<1s").passed);
        for (bad, says) in [
            ("ttfe_p95", "no comparison"),
            ("errors=0", "not ="),
            ("ttfe_p42<1ms", "unknown statistic"),
            ("ttfx_p95<1ms", "unknown figure"),
            ("ttfe_p95<soon", "not a value"),
            ("error_rate<-1%", "not a value"),
            ("speed>3", "unknown figure"),
        ] {
            let error = bad.parse::<Threshold>().unwrap_err();
            assert!(error.contains(says), "{bad}: {error}");
        }
    }
}
