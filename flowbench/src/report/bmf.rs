//! Bencher Metric Format (BMF) JSON, written by `flowbench run --bmf` and
//! `merge --bmf`, and by xtask's `bench-compare` and `gate`:
//! `{"<benchmark>": {"<measure>": {"value", "lower_value", "upper_value"}}}`
//! (the bounds optional), benchmarks in the order they were added.

use serde::Serialize;
use std::path::Path;

/// One measure of one benchmark.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measure {
    pub value: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lower_value: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upper_value: Option<f64>,
}

impl Measure {
    /// `new`, bounded by the change's interval (in %) applied to `base`.
    pub fn of_change(new: f64, base: f64, low_pct: f64, high_pct: f64) -> Self {
        Self { value: new, lower_value: Some(base * (1.0 + low_pct / 100.0)), upper_value: Some(base * (1.0 + high_pct / 100.0)) }
    }

    /// A value without bounds.
    pub fn of(value: f64) -> Self {
        Self { value, lower_value: None, upper_value: None }
    }

    /// A value between `lower` and `upper`.
    pub fn within(value: f64, lower: f64, upper: f64) -> Self {
        Self { value, lower_value: Some(lower), upper_value: Some(upper) }
    }
}

/// A BMF document being built; serializes as the document.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Bmf(serde_json::Map<String, serde_json::Value>);

impl Bmf {
    /// Sets `measure` of `benchmark` to `value`, beside its other measures.
    pub fn insert(&mut self, benchmark: String, measure: &str, value: Measure) {
        let measures = self.0.entry(benchmark).or_insert_with(|| serde_json::Value::Object(serde_json::Map::new()));
        if let serde_json::Value::Object(measures) = measures {
            measures.insert(measure.to_owned(), serde_json::json!(value));
        }
    }

    /// Writes the document, pretty-printed, to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

impl super::Report {
    /// The report as BMF: one benchmark per scenario (its name), with the
    /// figures of `figures::BMF` by their BMF key: requests/s and events/s
    /// (the measured phase's mean, between its slowest and fastest window),
    /// TTFE, TTFB and duration at p50, p95 and p99 in ms (a figure not
    /// measured is left out), the Connections figures and the error count.
    pub fn to_bmf(&self) -> Bmf {
        use super::figures::{BMF, Figure};
        let mut bmf = Bmf::default();
        for s in &self.scenarios {
            for figure in BMF {
                let Some(value) = figure.read(s) else { continue };
                let bounds = match figure {
                    Figure::Scalar(scalar) => scalar.row().bounds,
                    Figure::Latency(..) => None,
                };
                let measure = match bounds {
                    Some((low, high)) => {
                        Measure::within(value, Figure::Scalar(low).read(s).unwrap_or(value), Figure::Scalar(high).read(s).unwrap_or(value))
                    }
                    None => Measure::of(value),
                };
                bmf.insert(s.name.clone(), &figure.bmf_key(), measure);
            }
        }
        bmf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A run's BMF holds each scenario's seed figures, read off its report.
    #[test]
    fn a_run_report_becomes_bmf() {
        let report = crate::report::sample::sample_report();
        let bmf = serde_json::to_value(report.to_bmf()).unwrap();
        for s in &report.scenarios {
            let b = &bmf[&s.name];
            assert_eq!(b["requests_per_s"]["value"], s.qps.avg, "{b}");
            assert_eq!(b["requests_per_s"]["lower_value"], s.qps.min);
            assert_eq!(b["events_per_s"]["upper_value"], s.event_throughput.max);
            let ttfe = s.latency.get(crate::load::metrics::Metric::Ttfe);
            if ttfe.n > 0 {
                assert_eq!(b["ttfe_p99_ms"]["value"], ttfe.p99);
                assert!(b["ttfe_p99_ms"].get("lower_value").is_none());
            }
            assert_eq!(b["errors"]["value"], s.counts.errors as f64);
            assert_eq!(b["max_concurrent"]["value"], s.connections.max_concurrent as f64);
        }
    }

    #[test]
    fn writes_bencher_metric_format() {
        let mut bmf = Bmf::default();
        bmf.insert("b/second".into(), "latency", Measure::of_change(110.0, 100.0, 0.0, 25.0));
        bmf.insert("a/first".into(), "value", Measure::of_change(1.0, 2.0, -50.0, 50.0));
        let json = serde_json::to_value(&bmf).unwrap();
        assert_eq!(json["b/second"]["latency"], serde_json::json!({"value": 110.0, "lower_value": 100.0, "upper_value": 125.0}));
        assert_eq!(json["a/first"]["value"]["lower_value"], 1.0);
        // A benchmark holds several measures; a value may have no bounds.
        bmf.insert("a/first".into(), "p99", Measure::of(7.0));
        let json = serde_json::to_value(&bmf).unwrap();
        assert_eq!(json["a/first"]["p99"], serde_json::json!({"value": 7.0}));
        assert_eq!(json["a/first"]["value"]["value"], 1.0);
        // Insertion order, not sorted; fields in BMF's order.
        let text = serde_json::to_string(&json).unwrap();
        assert!(text.find("b/second").unwrap() < text.find("a/first").unwrap(), "{text}");
        assert!(text.find("\"value\":110").unwrap() < text.find("lower_value").unwrap(), "{text}");
    }
}
