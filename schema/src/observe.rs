//! What flowbench observed of the target besides its answers: series
//! scraped from Prometheus exposition endpoints during a scenario
//! (`--scrape`, `--series`), what went wrong scraping them, and figures a
//! Prometheus server gave over the measured interval (`--prometheus`).

use serde::{Deserialize, Serialize};

/// One series read from a Prometheus exposition endpoint (`--scrape URL`,
/// `--series SELECTOR`) once a second during a scenario.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapedSeries {
    /// The endpoint scraped.
    pub url: String,
    /// The `--series` as the user wrote it: one selector may match many series.
    pub selector: String,
    /// The matched series in full, `name{label="v",...}`, labels sorted so
    /// the same series reads the same in every report.
    pub series: String,
    pub kind: SeriesKind,
    /// Each sample's time in seconds since the scenario's load started
    /// (warm-up first): the clock of the health's `per_second` `t_s`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub t_s: Vec<f64>,
    /// Per sample: the gauge's value, or the counter's rate since the
    /// previous sample. None for a counter's first sample, a failed scrape,
    /// or a counter reset: a gap, not a zero.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<Option<f64>>,
}

/// How a scraped series is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SeriesKind {
    /// A counter, or a histogram's or summary's `_count`, `_sum` or
    /// `_bucket`: only its increase means anything, shown per second.
    Rate,
    /// A value as read.
    Gauge,
}

/// What `--scrape` saw go wrong at one endpoint: failed scrapes with the
/// first error (the URL, an HTTP status or a parse error), a selector that
/// matched nothing, or series dropped past the cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScrapeProblem {
    pub url: String,
    /// Scrapes (or series) that went wrong, out of `of`.
    pub failed: u64,
    pub of: u64,
    pub first_error: String,
}

/// Figures a Prometheus server gave over exactly the measured interval
/// (`--prometheus URL --target-cpu PROMQL [--target-memory PROMQL]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromFigures {
    pub url: String,
    /// The measured interval, in Unix seconds.
    pub start_unix_s: f64,
    pub end_unix_s: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<PromQuery>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory: Option<PromQuery>,
}

/// One PromQL query over the measured interval and what it gave.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PromQuery {
    /// As sent, after substitution: what a reader pastes into Prometheus.
    pub query: String,
    /// How the figure was taken: an instant query at the interval's end
    /// over `[$__range]`, or a range query's mean and max of its samples.
    pub method: String,
    /// CPU: mean cores over the interval; memory: mean bytes. None when not measured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<f64>,
    /// The largest sample (range query only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<f64>,
    #[serde(default)]
    pub samples: u64,
    /// Why not measured: the URL, the HTTP status, Prometheus' own error
    /// text, or what was wrong with the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observed_series_round_trip_and_leave_empty_fields_out() {
        let series = ScrapedSeries {
            url: "http://127.0.0.1:9100/metrics".into(),
            selector: "node_cpu_seconds_total{mode!=\"idle\"}".into(),
            series: "node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}".into(),
            kind: SeriesKind::Rate,
            t_s: vec![0.0, 1.0],
            values: vec![None, Some(0.5)],
        };
        let json = serde_json::to_string(&series).unwrap();
        assert!(json.contains("\"kind\":\"rate\""), "{json}");
        assert_eq!(serde_json::from_str::<ScrapedSeries>(&json).unwrap(), series);
        let query = PromQuery {
            query: "sum(rate(x[1000ms]))".into(),
            method: "instant".into(),
            value: None,
            max: None,
            samples: 0,
            error: Some("the query returned no series".into()),
        };
        let figures = PromFigures { url: "http://p".into(), start_unix_s: 1.0, end_unix_s: 2.0, cpu: Some(query), memory: None };
        let json = serde_json::to_string(&figures).unwrap();
        assert!(!json.contains("memory") && !json.contains("\"max\""), "{json}");
        assert_eq!(serde_json::from_str::<PromFigures>(&json).unwrap(), figures);
    }
}
