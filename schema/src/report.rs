//! The report's types: what a run measured, as one versioned JSON document
//! holding every figure and the serialized histograms (`Report`, a
//! `ScenarioReport` per scenario), and what a run's thresholds concluded.
//! flowbench builds them from the driver's result; `flowbench report`,
//! `merge`, the gate and `history` read them back.

use crate::health::{HealthReport, Machine};
use crate::integrity::{Integrity, Timeline};
use crate::load::{LoadModel, Mode};
use crate::metrics::{Metric, Summary};
use serde::de::{MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::collections::BTreeMap;

/// The JSON document's schema name; bump `SCHEMA_VERSION` on any breaking change.
pub const SCHEMA: &str = "flowbench.report";
/// 3: latencies are over successful requests only (failures have
/// `failed_duration`); in the open model TTFB, TTFE and the first text
/// chunk count from the intended send (the service view is `*_from_sent`);
/// per-second throughput counts by completion, whichever second a request
/// was sent in; `counts.backoff_s`. 4: each stream's event grammar is
/// checked (`integrity`, errors of class `integrity`), a scenario has its
/// `timeline`, a report its `label`.
pub const SCHEMA_VERSION: u32 = 4;

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Report {
    pub schema: String,
    pub schema_version: u32,
    pub flowbench_version: String,
    pub started_at_unix: u64,
    /// What the run is called in a page that shows several (`--label`, the commit).
    #[serde(default, skip_serializing_if = "RunLabel::is_empty")]
    pub label: RunLabel,
    pub interrupted: bool,
    pub target: TargetInfo,
    pub machine: Machine,
    pub scenarios: Vec<ScenarioReport>,
    /// Each `--threshold` on each scenario it applies to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub thresholds: Vec<ThresholdResult>,
    /// `--max-error-rate` as the run (or merge) judged it: a scenario whose
    /// error rate is above it failed the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// The per-request SLO goodput was counted against (`--request-slo`),
    /// as written; each scenario's `counts.good` met it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_slo: Option<String>,
    /// The part of a load this run was (`--shard I/N`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    /// A merged report's parts (`flowbench merge`), each with its health.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shards: Vec<ShardSummary>,
}

/// A run's name and the commit it measured, where known.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RunLabel {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
}

impl RunLabel {
    pub fn is_empty(&self) -> bool {
        self.name.is_none() && self.commit.is_none()
    }
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
    /// The seed's "Avg Duration": the successes' mean service time (from
    /// the intended send in the open model); 0 when none succeeded.
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
    /// What the grammar check found; `None` where no stream was checked
    /// (`--no-integrity`, blocking requests, an OpenAI-compatible target).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub integrity: Option<Integrity>,
    /// Where the streams' time went; `None` without streams.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeline: Option<Timeline>,
    /// The slowest measured requests by their trace ids, slowest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub slowest: Vec<SlowRequest>,
    /// When the measured phase began, in ms since the Unix epoch: where
    /// `flowbench merge` aligns the shards' per-second series.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub measure_start_unix_ms: Option<u64>,
    /// `--scrape`'s series, read each second from the load's start.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scraped: Vec<crate::observe::ScrapedSeries>,
    /// What `--scrape` could not read or match.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scrape_problems: Vec<crate::observe::ScrapeProblem>,
    /// `--prometheus`'s figures over the measured interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prometheus: Option<crate::observe::PromFigures>,
}

/// One app of a scenario that mixes several: its measured requests.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AppReport {
    pub name: String,
    pub mode: Mode,
    pub weight: u32,
    pub ok: u64,
    pub errors: u64,
    /// Its streams per grammar rule broken (`integrity`'s classes).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub integrity: BTreeMap<String, u64>,
    pub duration_ms: Summary,
    pub ttfe_ms: Summary,
    /// The two distributions as histograms (as `histograms`), for merges.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_histogram: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfe_histogram: Option<String>,
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

impl Counts {
    /// Streams the driver left on purpose (`--abort-after-chunks`): errors
    /// by class, but not the target's failures.
    pub fn aborted(&self) -> u64 {
        self.errors_by_class.get("aborted").copied().unwrap_or(0)
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Counts {
    /// Every request sent; = warmup + ok + errors.
    pub sent: u64,
    pub warmup: u64,
    pub ok: u64,
    pub errors: u64,
    pub errors_by_class: BTreeMap<String, u64>,
    /// Seconds the closed model's users waited, summed over users, before
    /// retrying after a connection could not be made (a user's client backs
    /// off; an outage is not hammered at loopback speed).
    #[serde(default)]
    pub backoff_s: f64,
    /// Measured requests that met the per-request SLO (`--request-slo`),
    /// when one was given: goodput's count.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub good: Option<u64>,
}

/// One of a scenario's slowest measured requests, by the trace id its
/// `traceparent` carried: what finds it in the target's tracing system.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SlowRequest {
    /// 32 lowercase hex digits, as in the header.
    pub trace_id: String,
    /// From the intended send to its end (a failure's to its failure).
    pub duration_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ttfe_ms: Option<f64>,
    /// `ok` or the error class.
    pub outcome: String,
    /// The app it went to, when the scenario has several.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
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
    /// Requests per second that met the request SLO, when one was given.
    pub fn goodput_rps(&self) -> Option<f64> {
        let good = self.counts.good?;
        Some(if self.load.measured_s > 0.0 { good as f64 / self.load.measured_s } else { 0.0 })
    }

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

    /// Without the histograms, the timeline and the per-second series, as
    /// `flowbench ab` keeps each slice.
    pub fn slim(mut self) -> Self {
        self.histograms.clear();
        self.timeline = None;
        self.per_second = PerSecond::default();
        self.health.per_second.clear();
        self
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

/// A threshold's outcome on one scenario.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ThresholdResult {
    pub threshold: String,
    pub scenario: String,
    /// The figure measured, in the threshold's unit; `None` when the
    /// scenario has no such figure (a latency no request recorded).
    pub value: Option<f64>,
    pub passed: bool,
}
