//! The report's types: what a run measured, as one versioned JSON document
//! holding every figure and the serialized histograms (`Report`), built from
//! the driver's result in one place (`ScenarioReport::build`). `text`
//! renders it (the seed's four tables, then what the seed lacks); `ab` and
//! `soak` are the reports of those commands. `cargo xtask gate` reads `ab`'s
//! through these same types.

pub mod ab;
pub mod bmf;
pub mod compare;
pub mod figures;
pub mod html;
pub mod merge;
pub mod sample;
pub mod soak;
pub mod text;
pub mod thresholds;

use crate::load::driver::{Mode, RunResult};
use crate::load::health::{HealthReport, Machine};
use crate::load::metrics::{Metric, Summary, encode_histogram};
use crate::load::schedule::LoadModel;
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The JSON document's schema name; bump `SCHEMA_VERSION` on any breaking change.
pub const SCHEMA: &str = "flowbench.report";
/// 2: the first text chunk's histogram is keyed `first_text_chunk`, as its summary.
pub const SCHEMA_VERSION: u32 = 2;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub flowbench_version: String,
    pub started_at_unix: u64,
    pub interrupted: bool,
    pub target: TargetInfo,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioReport>,
    /// Each `--threshold` on each scenario it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<thresholds::ThresholdResult>,
    /// The part of a load this run was (`--shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// A merged report's parts (`flowbench merge`), each with its health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardSummary>,
}

/// Shard `index` (from 1) of `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

impl std::str::FromStr for Shard {
    type Err = String;

    /// `I/N`, 1 ≤ I ≤ N.
    fn from_str(text: &str) -> Result<Self, String> {
        let (i, n) = text.split_once('/').ok_or_else(|| format!("{text:?} is not I/N (e.g. 1/3)"))?;
        let parse = |v: &str| v.trim().parse::<u32>().map_err(|_| format!("{text:?} is not I/N (e.g. 1/3)"));
        let (index, count) = (parse(i)?, parse(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(format!("{text:?}: I runs from 1 to N"));
        }
        Ok(Shard { index, count })
    }
}

/// One part of a merged report, as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ShardSummary {
    /// The report file it was read from.
    pub file: String,
    pub shard: Option<Shard>,
    pub machine: Machine,
    /// By scenario.
    pub health: BTreeMap<String, HealthReport>,
    pub target_cpu_us_per_request: BTreeMap<String, Option<f64>>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TargetInfo {
    pub url: String,
    /// True when flowbench started the mocked stack itself.
    pub embedded: bool,
    pub mock_script: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioReport {
    pub name: String,
    pub mode: Mode,
    pub load: LoadParams,
    pub interrupted: bool,
    pub counts: Counts,
    pub event_throughput: Rates,
    pub qps: Rates,
    pub avg_duration_ms: f64,
    pub connections: Connections,
    /// Each metric's summary in ms, as `<key>_ms` (`ttfe_ms`, `duration_ms`, …);
    /// an optional metric (`emit_to_receipt`) only when it holds values.
    #[serde(flatten)]
    pub latency: Latency,
    pub events_per_request: f64,
    /// The target's CPU per request and per event, in µs, over the whole
    /// scenario (warm-up included); when the target is a local process.
    pub target_cpu_us_per_request: Option<f64>,
    pub target_cpu_us_per_event: Option<f64>,
    pub bytes_received: u64,
    /// Left out of `flowbench ab`'s slices.
    #[serde(default, skip_serializing_if = "PerSecond::is_empty")]
    pub per_second: PerSecond,
    pub health: HealthReport,
    /// HdrHistogram V2+DEFLATE, base64, values in µs, by `Metric::key`;
    /// left out of `flowbench ab`'s slices.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub histograms: BTreeMap<String, String>,
    /// Each app's share, when a scenario file's scenario mixes several.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<AppReport>,
    /// When the measured phase began, in ms since the Unix epoch: where
    /// `flowbench merge` aligns the shards' per-second series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_start_unix_ms: Option<u64>,
}

/// One app of a scenario that mixes several: its measured requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppReport {
    pub name: String,
    pub mode: Mode,
    pub weight: u32,
    pub ok: u64,
    pub errors: u64,
    pub duration_ms: Summary,
    pub ttfe_ms: Summary,
    /// The two distributions as histograms (as `histograms`), for merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_histogram: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfe_histogram: Option<String>,
}

impl AppReport {
    /// Each app's tally (none when the run had one app).
    pub fn of(apps: &[crate::load::driver::App], recorder: &crate::load::recorder::Recorder) -> Vec<Self> {
        apps.iter()
            .zip(&recorder.apps)
            .map(|(app, tally)| Self {
                name: app.name.clone(),
                mode: app.mode,
                weight: app.weight,
                ok: tally.n_ok,
                errors: tally.n_errors,
                duration_ms: Summary::of(&tally.duration),
                ttfe_ms: Summary::of(&tally.ttfe),
                duration_histogram: Some(encode_histogram(&tally.duration)),
                ttfe_histogram: Some(encode_histogram(&tally.ttfe)),
            })
            .collect()
    }
}

/// A scenario's latency summaries, one per `Metric`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Latency(pub BTreeMap<Metric, Summary>);

impl Latency {
    /// The summary of `metric` (all zeros when it holds no value).
    pub fn get(&self, metric: Metric) -> Summary {
        self.0.get(&metric).copied().unwrap_or_default()
    }
}

impl Serialize for Latency {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.0.len()))?;
        for (metric, summary) in &self.0 {
            map.serialize_entry(&format!("{}_ms", metric.key()), summary)?;
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Latency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Entries;
        impl<'de> Visitor<'de> for Entries {
            type Value = Latency;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("latency summaries keyed <metric>_ms")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Latency, A::Error> {
                let mut latency = BTreeMap::new();
                while let Some(key) = map.next_key::<String>()? {
                    let metric = key.strip_suffix("_ms").and_then(Metric::from_key);
                    let Some(metric) = metric else { return Err(serde::de::Error::custom(format!("unknown field {key:?}"))) };
                    latency.insert(metric, map.next_value::<Summary>()?);
                }
                Ok(Latency(latency))
            }
        }
        deserializer.deserialize_map(Entries)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoadParams {
    #[serde(flatten)]
    pub model: LoadModel,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub measured_s: f64,
    pub window_s: u64,
    pub timeout_s: f64,
    pub seed: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// Every request sent; = warmup + ok + errors.
    pub sent: u64,
    pub warmup: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
}

/// Max and Min over the measured phase's windows; Avg over the whole phase.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Rates {
    pub max: f64,
    pub avg: f64,
    pub min: f64,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
pub struct Connections {
    pub max_concurrent: i64,
    pub avg_active: f64,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct PerSecond {
    pub events: Vec<u64>,
    pub ok: Vec<u64>,
    pub errors: Vec<u64>,
    /// In-flight requests: each second's time-weighted mean and peak.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub connections: Vec<f64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub peak_connections: Vec<i64>,
    /// The warm-up's seconds, from the load's start (the last may be part
    /// of one): what was received and finished before the measured phase.
    /// In no figure; the HTML report draws them, shaded.
    #[serde(default, skip_serializing_if = "WarmupSeconds::is_empty")]
    pub warmup: WarmupSeconds,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct WarmupSeconds {
    pub events: Vec<u64>,
    pub ok: Vec<u64>,
    pub errors: Vec<u64>,
}

impl WarmupSeconds {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ok.is_empty() && self.errors.is_empty()
    }
}

impl PerSecond {
    pub fn is_empty(&self) -> bool {
        self.events.is_empty() && self.ok.is_empty() && self.errors.is_empty() && self.connections.is_empty() && self.warmup.is_empty()
    }
}

impl ScenarioReport {
    /// The summary of `metric`.
    pub fn latency(&self, metric: Metric) -> Summary {
        self.latency.get(metric)
    }

    /// Whether it streams (its mode, or any of its apps'): what decides
    /// which of the seed's tables show it.
    pub fn streams(&self) -> bool {
        self.mode == Mode::Streaming || self.apps.iter().any(|a| a.mode == Mode::Streaming)
    }

    /// Its mode, or `mixed` when its apps differ in mode.
    pub fn mode_label(&self) -> &'static str {
        match self.apps.first() {
            Some(first) if self.apps.iter().any(|a| a.mode != first.mode) => "mixed",
            _ => self.mode.as_str(),
        }
    }

    /// Without the histograms and the per-second series, as `flowbench ab`
    /// keeps each slice.
    pub fn slim(mut self) -> Self {
        self.histograms.clear();
        self.per_second = PerSecond::default();
        self.health.per_second.clear();
        self
    }

    pub fn build(name: &str, mode: Mode, load: LoadParams, result: &RunResult, health: HealthReport) -> Self {
        let r = &result.recorder;
        let measured_s = result.measured.as_secs_f64();
        // Seconds past the measured phase (streams finishing late) are cut.
        let n_seconds = measured_s.ceil() as usize;
        let cut = |v: &Vec<u64>| -> Vec<u64> {
            let mut v = v.clone();
            v.resize(n_seconds, 0);
            v
        };
        let n_warmup = load.warmup_s.ceil() as usize;
        let warmup = |v: &Vec<u64>| -> Vec<u64> {
            let mut v = v.clone();
            v.resize(n_warmup, 0);
            v
        };
        let per_second = PerSecond {
            events: cut(&r.events_per_s),
            ok: cut(&r.ok_per_s),
            errors: cut(&r.errors_per_s),
            connections: result.connections_per_s.clone(),
            peak_connections: result.peak_connections_per_s.clone(),
            warmup: WarmupSeconds {
                events: warmup(&r.warmup_events_per_s),
                ok: warmup(&r.warmup_ok_per_s),
                errors: warmup(&r.warmup_errors_per_s),
            },
        };
        let histograms = Metric::ALL.into_iter().map(|m| (m.key().to_owned(), encode_histogram(r.histogram(m)))).collect();
        let latency = Metric::ALL
            .into_iter()
            .filter(|m| !(m.optional() && r.histogram(*m).is_empty()))
            .map(|m| (m, Summary::of(r.histogram(m))))
            .collect();
        let measured_requests = r.n_ok + r.n_errors();
        Self {
            name: name.to_owned(),
            mode,
            load: LoadParams { measured_s, ..load },
            interrupted: result.interrupted,
            counts: Counts {
                sent: r.n_sent,
                warmup: r.n_warmup,
                ok: r.n_ok,
                errors: r.n_errors(),
                errors_by_class: r.errors.iter().map(|(k, v)| (k.as_str().to_owned(), *v)).collect(),
            },
            event_throughput: rates(&per_second.events, load.window_s, measured_s),
            qps: rates(&per_second.ok, load.window_s, measured_s),
            avg_duration_ms: Summary::of(r.histogram(Metric::ServiceTime)).avg,
            connections: Connections { max_concurrent: result.peak_connections, avg_active: result.avg_connections },
            latency: Latency(latency),
            events_per_request: if measured_requests > 0 { r.n_events as f64 / measured_requests as f64 } else { 0.0 },
            target_cpu_us_per_request: health.target_cpu_cores.filter(|_| r.n_sent > 0).map(|c| c * health.span_s / r.n_sent as f64 * 1e6),
            target_cpu_us_per_event: health
                .target_cpu_cores
                .filter(|_| r.n_events_all > 0)
                .map(|c| c * health.span_s / r.n_events_all as f64 * 1e6),
            bytes_received: r.n_bytes,
            per_second,
            health,
            histograms,
            apps: Vec::new(),
            measure_start_unix_ms: None,
        }
    }
}

/// Rates per window of `window_s` whole seconds (a last partial window only
/// when no whole one fits) and the average over the measured phase.
pub fn rates(per_second: &[u64], window_s: u64, measured_s: f64) -> Rates {
    let total: u64 = per_second.iter().sum();
    let avg = if measured_s > 0.0 { total as f64 / measured_s } else { 0.0 };
    let window = window_s.max(1) as usize;
    let whole: Vec<f64> = per_second.chunks_exact(window).map(|w| w.iter().sum::<u64>() as f64 / window as f64).collect();
    let windows = if whole.is_empty() && !per_second.is_empty() { vec![avg] } else { whole };
    Rates {
        max: windows.iter().copied().fold(f64::NAN, f64::max).max(0.0),
        avg,
        min: windows.iter().copied().fold(f64::NAN, f64::min).max(0.0),
    }
}

#[cfg(test)]
mod tests {
    use super::sample::sample_report;
    use super::*;

    /// What the gate and `flowbench report` read survives the JSON round trip.
    #[test]
    fn a_report_reads_back_as_written() {
        let report = sample_report();
        let json = serde_json::to_string(&report).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        // serde_json may read a float back one ulp off: compare at 12 digits.
        fn rounded(v: serde_json::Value) -> serde_json::Value {
            match v {
                serde_json::Value::Number(n) if n.is_f64() => serde_json::json!(format!("{:.12e}", n.as_f64().unwrap())),
                serde_json::Value::Array(a) => a.into_iter().map(rounded).collect(),
                serde_json::Value::Object(o) => o.into_iter().map(|(k, v)| (k, rounded(v))).collect(),
                other => other,
            }
        }
        assert_eq!(rounded(serde_json::to_value(&back).unwrap()), rounded(serde_json::from_str(&json).unwrap()));
        let llm = &back.scenarios[1];
        assert_eq!(llm.latency(Metric::Ttfe).p99, report.scenarios[1].latency(Metric::Ttfe).p99);
        assert!(llm.latency(Metric::Ttfe).n > 0);
        assert!(json.contains("\"ttfe_ms\":"), "summaries keep their JSON names");
        assert!(!json.contains("emit_to_receipt_ms"), "an optional metric without values is left out");
        assert_eq!(back.scenarios[1].histograms.len(), Metric::COUNT);
        // An open-model run's load flattens beside its own seed: no key twice.
        let mut open = sample_report();
        open.scenarios[0].load.model = LoadModel::Open { rate: 400.0, poisson: true, connections: 16, seed: 7 };
        let back: Report = serde_json::from_slice(&serde_json::to_vec_pretty(&open).unwrap()).unwrap();
        assert_eq!(back.scenarios[0].load.model, open.scenarios[0].load.model);
    }

    /// Every row of `load::metrics::METRICS` reaches each place a latency
    /// is read with nothing else edited: a shard's JSON (`<key>_ms` and its
    /// histogram), a merge of shards (histograms added), the text report
    /// and thresholds (`<key>_<stat>`). A metric added as a row is covered
    /// here as it stands.
    #[test]
    fn every_latency_metric_reaches_json_merge_text_and_thresholds() {
        use crate::load::metrics::METRICS;
        let shards: Vec<(String, Report)> =
            sample::sample_shards_of_every_metric(2).into_iter().enumerate().map(|(i, r)| (format!("shard-{i}.json"), r)).collect();
        let merged = merge::merge(&shards).unwrap();
        let llm = |r: &Report| r.scenarios.iter().find(|s| s.name == "llm").unwrap().clone();
        let text = merged.to_text();
        for row in &METRICS {
            let metric = row.metric;
            let json = serde_json::to_value(llm(&shards[0].1)).unwrap();
            let n = json[format!("{}_ms", row.key)]["n"].as_u64();
            assert!(n.is_some_and(|n| n > 0), "{}: no summary in the JSON", row.key);
            assert!(json["histograms"][row.key].is_string(), "{}: no histogram in the JSON", row.key);
            let parts: u64 = shards.iter().map(|(_, r)| llm(r).latency(metric).n).sum();
            assert_eq!(llm(&merged).latency(metric).n, parts, "{}: the merge adds the shards' histograms", row.key);
            // The stamped chunks' lag has its own line (µs), the rest a row each.
            let shown = if metric == Metric::EmitToReceipt { "Emit → receipt" } else { row.label };
            assert!(text.contains(shown), "{}: not in the text report", row.key);
            let threshold: thresholds::Threshold = format!("llm:{}_p95 < 1h", row.key).parse().unwrap();
            let judged = threshold.judge(&llm(&merged));
            assert_eq!(judged.value, Some(llm(&merged).latency(metric).p95), "{}", row.key);
            assert!(judged.passed, "{}", row.key);
        }
    }

    #[test]
    fn windows_take_whole_seconds_and_avg_the_whole_phase() {
        let r = rates(&[10, 20, 30, 40, 50, 60, 1], 3, 7.0);
        assert_eq!((r.max, r.min), (50.0, 20.0));
        assert!((r.avg - 211.0 / 7.0).abs() < 1e-9);
        let short = rates(&[5, 5], 5, 2.0);
        assert_eq!((short.max, short.avg, short.min), (5.0, 5.0, 5.0));
    }
}
