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
    pub fn write(&self, path: &Path) -> std::io::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)
    }
}

impl crate::report::Report {
    /// The report as BMF: one benchmark per scenario (its name), with the
    /// figures of `figures::BMF` by their BMF key: requests/s and events/s
    /// (the measured phase's mean, between its slowest and fastest window),
    /// TTFE, TTFB and duration at p50, p95 and p99 in ms (a figure not
    /// measured is left out), the Connections figures and the error count.
    pub fn to_bmf(&self) -> Bmf {
        use crate::figures::{BMF, Figure};
        let mut bmf = Bmf::default();
        for s in &self.scenarios {
            for &figure in BMF {
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
