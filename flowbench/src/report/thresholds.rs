//! Pass/fail criteria on a run's figures, as k6's thresholds: `--threshold
//! 'ttfe_p95<200ms'`, `'error_rate<0.1%'`, `'llm:qps>=20'`. A run whose
//! threshold is crossed exits with its own code (`cli::exit::THRESHOLD`),
//! so CI can tell a slow target from a failed run.

use super::ScenarioReport;
use super::figures::{Figure, Unit};
use crate::load::metrics::parse_ms;
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

/// Where a criterion stands once the run's sampling noise is counted: met
/// or missed with 95% confidence, or too close to its limit to say.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Standing {
    Met,
    Missed,
    WithinNoise,
}

/// z for a two-sided 95% interval.
const Z95: f64 = 1.96;

impl Threshold {
    /// Its limit, in its figure's unit.
    pub fn limit(&self) -> f64 {
        self.limit
    }

    /// Its figure's unit, as a word (`ms`, `fraction`, `per_second`, …).
    pub fn unit_name(&self) -> &'static str {
        match self.figure.unit() {
            Unit::Ms => "ms",
            Unit::Us => "us",
            Unit::Fraction => "fraction",
            Unit::PerSecond => "per_second",
            Unit::Count => "count",
        }
    }

    /// The quantile its figure is (0.95 for `ttfe_p95`), if a percentile.
    pub fn quantile(&self) -> Option<f64> {
        use super::figures::Stat;
        match self.figure {
            Figure::Latency(_, stat) => match stat {
                Stat::P50 => Some(0.5),
                Stat::P90 => Some(0.9),
                Stat::P95 => Some(0.95),
                Stat::P99 => Some(0.99),
                Stat::P999 => Some(0.999),
                Stat::Avg | Stat::Min | Stat::Max => None,
            },
            Figure::Scalar(_) => None,
        }
    }

    /// Requests a measurement needs before `standing` can say met for a
    /// figure at its limit's side: for a percentile, `tail` beyond its
    /// quantile (a p99 from a hundred requests is their largest); for an
    /// error rate below a limit, enough that none failing shows it (Wilson's
    /// upper bound for 0 of n is about 3.84 / n).
    pub fn samples_to_resolve(&self, tail: f64) -> Option<f64> {
        use super::figures::Scalar;
        match self.figure {
            Figure::Scalar(Scalar::ErrorRate) if matches!(self.op, Op::Lt | Op::Le) && self.limit > 0.0 => Some(Z95 * Z95 / self.limit),
            _ => self.quantile().map(|q| tail / (1.0 - q)),
        }
    }

    /// Its figure in `report` with a 95% interval, and where it stands: a
    /// latency percentile's interval from its order statistics in the
    /// scenario's histogram (the ranks n·q ± 1.96·√(n·q·(1−q))), an error
    /// rate's from Wilson's score interval over the measured requests; any
    /// other figure is taken as measured. A figure not measured is missed.
    pub fn standing(&self, report: &ScenarioReport) -> (Option<(f64, f64, f64)>, Standing) {
        let Some(value) = self.figure.read(report) else { return (None, Standing::Missed) };
        let (low, high) = self.interval(report, value).unwrap_or((value, value));
        let meets = |v: f64| match self.op {
            Op::Lt => v < self.limit,
            Op::Le => v <= self.limit,
            Op::Gt => v > self.limit,
            Op::Ge => v >= self.limit,
            Op::Eq => v == self.limit,
        };
        let standing = match (meets(low), meets(high)) {
            (true, true) => Standing::Met,
            (false, false) => Standing::Missed,
            // `==` has no side to be near: as measured.
            _ if self.op == Op::Eq => {
                if meets(value) {
                    Standing::Met
                } else {
                    Standing::Missed
                }
            }
            _ => Standing::WithinNoise,
        };
        (Some((value, low, high)), standing)
    }

    fn interval(&self, report: &ScenarioReport, value: f64) -> Option<(f64, f64)> {
        use super::figures::Scalar;
        match self.figure {
            Figure::Latency(metric, _) => {
                let q = self.quantile()?;
                let h = crate::load::metrics::decode_histogram(report.histograms.get(metric.key())?).ok()?;
                let n = h.len() as f64;
                if n == 0.0 {
                    return None;
                }
                let half = Z95 * (n * q * (1.0 - q)).sqrt();
                let at = |rank: f64| h.value_at_quantile((rank / n).clamp(0.0, 1.0)) as f64 / 1e3;
                // The interval holds the measured value whatever the rounding.
                Some((at((n * q - half).floor()).min(value), at((n * q + half).ceil() + 1.0).max(value)))
            }
            Figure::Scalar(Scalar::ErrorRate) => {
                let n = (report.counts.ok + report.counts.errors) as f64;
                (n > 0.0).then(|| wilson(value, n))
            }
            Figure::Scalar(_) => None,
        }
    }
}

/// Wilson's 95% score interval for a proportion `p` of `n` trials.
fn wilson(p: f64, n: f64) -> (f64, f64) {
    let z2 = Z95 * Z95;
    let centre = (p + z2 / (2.0 * n)) / (1.0 + z2 / n);
    let half = Z95 / (1.0 + z2 / n) * (p * (1.0 - p) / n + z2 / (4.0 * n * n)).sqrt();
    ((centre - half).max(0.0), (centre + half).min(1.0))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::metrics::Metric;

    /// A percentile well inside its limit is met, one at its limit is
    /// within the noise of a few hundred samples, one far over is missed;
    /// error rates likewise through Wilson's interval.
    #[test]
    fn a_threshold_stands_with_its_sampling_noise() {
        let report = crate::report::sample::sample_scenario("llm");
        let p95 = report.latency(Metric::Ttfe).p95;
        let standing = |text: &str| text.parse::<Threshold>().unwrap().standing(&report);
        let (at, far) = standing(&format!("ttfe_p95<{}ms", p95 * 10.0));
        assert_eq!(far, Standing::Met);
        assert_eq!(standing(&format!("ttfe_p95<{}ms", p95 / 10.0)).1, Standing::Missed);
        let (value, low, high) = at.unwrap();
        assert!(low <= value && value <= high && low < high, "{low} {value} {high}");
        // A limit inside the interval: the p95 may be on either side of it.
        assert_eq!(standing(&format!("ttfe_p95<{}ms", (low + high) / 2.0)).1, Standing::WithinNoise, "{low} {value} {high}");
        assert_eq!(standing(&format!("ttfe_p95>{}ms", (low + high) / 2.0)).1, Standing::WithinNoise);
        assert_eq!(standing("ttfe_avg<1ms").1, if report.latency(Metric::Ttfe).avg < 1.0 { Standing::Met } else { Standing::Missed });
        let rate = report.counts.errors as f64 / (report.counts.ok + report.counts.errors) as f64;
        assert_eq!(standing(&format!("error_rate<{}", rate * 1.01)).1, Standing::WithinNoise);
        assert_eq!(standing("error_rate<0.9").1, Standing::Met);
        let (low, high) = wilson(0.0, 1000.0);
        assert!(low == 0.0 && high > 0.003 && high < 0.004, "{high}");
    }

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
