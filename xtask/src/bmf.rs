//! Bencher Metric Format (BMF) JSON, written by `bench-compare` and `gate`:
//! `{"<benchmark>": {"<measure>": {"value", "lower_value", "upper_value"}}}`,
//! benchmarks in the order they were added.

use serde::Serialize;
use std::path::Path;

/// One measure of one benchmark.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Measure {
    pub value: f64,
    pub lower_value: f64,
    pub upper_value: f64,
}

impl Measure {
    /// `new`, bounded by the change's interval (in %) applied to `base`.
    pub fn of_change(new: f64, base: f64, low_pct: f64, high_pct: f64) -> Self {
        Self { value: new, lower_value: base * (1.0 + low_pct / 100.0), upper_value: base * (1.0 + high_pct / 100.0) }
    }
}

/// A BMF document being built; serializes as the document.
#[derive(Debug, Clone, Default, Serialize)]
#[serde(transparent)]
pub struct Bmf(serde_json::Map<String, serde_json::Value>);

impl Bmf {
    /// Adds `measure` of `benchmark` (a later one of the same name replaces it).
    pub fn insert(&mut self, benchmark: String, measure: &str, value: Measure) {
        let mut measures = serde_json::Map::new();
        measures.insert(measure.to_owned(), serde_json::json!(value));
        self.0.insert(benchmark, serde_json::Value::Object(measures));
    }

    /// Writes the document, pretty-printed, to `path`.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        std::fs::write(path, serde_json::to_vec_pretty(self)?)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_bencher_metric_format() {
        let mut bmf = Bmf::default();
        bmf.insert("b/second".into(), "latency", Measure::of_change(110.0, 100.0, 0.0, 25.0));
        bmf.insert("a/first".into(), "value", Measure::of_change(1.0, 2.0, -50.0, 50.0));
        let json = serde_json::to_value(&bmf).unwrap();
        assert_eq!(json["b/second"]["latency"], serde_json::json!({"value": 110.0, "lower_value": 100.0, "upper_value": 125.0}));
        assert_eq!(json["a/first"]["value"]["lower_value"], 1.0);
        // Insertion order, not sorted; fields in BMF's order.
        let text = serde_json::to_string(&json).unwrap();
        assert!(text.find("b/second").unwrap() < text.find("a/first").unwrap(), "{text}");
        assert!(text.find("\"value\":110").unwrap() < text.find("lower_value").unwrap(), "{text}");
    }
}
