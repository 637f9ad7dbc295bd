//! `GET /metrics`: the server's side of a run in the Prometheus text format
//! (0.0.4, which every scraper and `promtool check metrics` read), from the
//! `prometheus` crate (docs/performance.md, "Metrics crates": its cost per
//! request is the lowest on one thread with `prometheus-client`'s, and
//! `prometheus-client` writes only OpenMetrics, whose counters the
//! classic format's readers take for other families).
//!
//! One registry per process, as Prometheus' clients keep it: the process's
//! CPU and memory are its anyway, and the figures fed from deep inside
//! (the upstream's first token, a store's commit) need no handle passed
//! down. The hot path holds handles found once (`AppMetrics`), so a request
//! pays a few atomic adds and no label lookup; the counters the server
//! already keeps (`Stats`) are read at scrape time.

use prometheus::{Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, Opts, Registry, TextEncoder};
use std::sync::{LazyLock, OnceLock};

/// Seconds: from a millisecond (an empty run) to a long LLM stream.
const LATENCY_BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The statuses a run request commonly ends with, each with a handle of its
/// own per app and mode; any other is looked up by its labels.
const STATUSES: [u16; 12] = [200, 400, 401, 404, 405, 408, 413, 415, 422, 429, 500, 503];
const MODES: [&str; 3] = ["blocking", "streaming", "unknown"];

pub(crate) struct ServerMetrics {
    registry: Registry,
    requests: IntCounterVec,
    duration: HistogramVec,
    ttfe: HistogramVec,
    events: IntCounterVec,
    /// From sending the upstream request to its first content delta.
    pub upstream_ttft: Histogram,
    /// From a batch taken off the writer's queue to its records settled.
    pub store_commit: Histogram,
    // Set from `Stats` and the store at each scrape (`http::metrics`).
    pub live_runs: IntGauge,
    pub open_streams: IntGauge,
    pub connections_open: IntGauge,
    pub connections_waiting: IntGauge,
    pub store_uncommitted: IntGauge,
    pub store_bytes: IntGauge,
    pub runs_started: IntCounter,
    pub runs_client_gone: IntCounter,
    pub runs_rejected_busy: IntCounter,
    pub swept_head_timeout: IntCounter,
    pub swept_evicted: IntCounter,
    pub stalled_closed: IntCounter,
    pub body_timeout: IntCounter,
}

pub(crate) static METRICS: LazyLock<ServerMetrics> = LazyLock::new(ServerMetrics::new);

fn histogram_vec(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let h = HistogramVec::new(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec()), labels).expect("valid histogram");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

fn histogram(registry: &Registry, name: &str, help: &str) -> Histogram {
    let h = Histogram::with_opts(HistogramOpts::new(name, help).buckets(LATENCY_BUCKETS.to_vec())).expect("valid histogram");
    registry.register(Box::new(h.clone())).expect("registered once");
    h
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    let g = IntGauge::new(name, help).expect("valid gauge");
    registry.register(Box::new(g.clone())).expect("registered once");
    g
}

fn counter(registry: &Registry, name: &str, help: &str) -> IntCounter {
    let c = IntCounter::new(name, help).expect("valid counter");
    registry.register(Box::new(c.clone())).expect("registered once");
    c
}

impl ServerMetrics {
    fn new() -> Self {
        let registry = Registry::new();
        let requests = IntCounterVec::new(
            Opts::new(
                "flowbench_server_run_requests_total",
                "Run requests (POST /v1/workflows/run) answered, by app, mode and HTTP status.",
            ),
            &["app", "mode", "status"],
        )
        .expect("valid counter");
        registry.register(Box::new(requests.clone())).expect("registered once");
        let events =
            IntCounterVec::new(Opts::new("flowbench_server_events_sent_total", "SSE events written to streams, by app."), &["app"])
                .expect("valid counter");
        registry.register(Box::new(events.clone())).expect("registered once");
        #[cfg(target_os = "linux")]
        registry.register(Box::new(procmetrics::ProcessMetrics::new())).expect("registered once");
        Self {
            duration: histogram_vec(
                &registry,
                "flowbench_server_run_duration_seconds",
                "From a run request's acceptance to its run's end (a stream's last event written to its outbox), by app and mode.",
                &["app", "mode"],
            ),
            ttfe: histogram_vec(
                &registry,
                "flowbench_server_ttfe_seconds",
                "Streaming runs: from acceptance to the first event handed to the connection (the first ping excluded), by app.",
                &["app"],
            ),
            upstream_ttft: histogram(
                &registry,
                "flowbench_server_upstream_ttft_seconds",
                "LLM nodes: from sending the upstream request to its first content delta.",
            ),
            store_commit: histogram(
                &registry,
                "flowbench_server_store_commit_seconds",
                "Database stores: from a batch taken off the writer's queue to its records committed.",
            ),
            live_runs: gauge(&registry, "flowbench_server_live_runs", "Runs accepted and not yet ended."),
            open_streams: gauge(&registry, "flowbench_server_open_streams", "Streaming runs whose execution has not ended."),
            connections_open: gauge(&registry, "flowbench_server_connections_open", "Client connections open."),
            connections_waiting: gauge(
                &registry,
                "flowbench_server_connections_waiting",
                "Client connections without a request in progress, at the last sweep.",
            ),
            store_uncommitted: gauge(
                &registry,
                "flowbench_server_store_uncommitted_records",
                "Run records put and not yet committed (database stores).",
            ),
            store_bytes: gauge(&registry, "flowbench_server_store_held_bytes", "Bytes of run records this process holds."),
            runs_started: counter(&registry, "flowbench_server_runs_started_total", "Runs accepted."),
            runs_client_gone: counter(
                &registry,
                "flowbench_server_runs_client_gone_total",
                "Streams whose client left before the run ended.",
            ),
            runs_rejected_busy: counter(
                &registry,
                "flowbench_server_runs_rejected_busy_total",
                "Runs refused (429) at an app's max_concurrent_runs.",
            ),
            swept_head_timeout: counter(
                &registry,
                "flowbench_server_connections_swept_head_timeout_total",
                "Connections closed because no request head came within header_read_timeout.",
            ),
            swept_evicted: counter(
                &registry,
                "flowbench_server_connections_swept_evicted_total",
                "Waiting connections closed to keep within max_waiting_connections or to free a descriptor.",
            ),
            stalled_closed: counter(
                &registry,
                "flowbench_server_connections_stalled_closed_total",
                "Connections closed because their client stopped reading.",
            ),
            body_timeout: counter(
                &registry,
                "flowbench_server_requests_body_timeout_total",
                "Requests whose body did not arrive within body_read_timeout.",
            ),
            requests,
            events,
            registry,
        }
    }
}

/// An app's handles, found on first use.
#[derive(Debug, Default)]
pub(crate) struct AppMetrics {
    name: String,
    requests: [[OnceLock<IntCounter>; STATUSES.len()]; MODES.len()],
    duration: [OnceLock<Histogram>; 2],
    ttfe: OnceLock<Histogram>,
    events: OnceLock<IntCounter>,
}

/// A run request's mode, once its body is read.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ModeLabel {
    Blocking = 0,
    Streaming = 1,
    Unknown = 2,
}

impl AppMetrics {
    pub fn new(name: &str) -> Self {
        Self { name: name.to_owned(), ..Self::default() }
    }

    pub fn request(&self, mode: ModeLabel, status: http::StatusCode) {
        count_request(&self.name, &self.requests[mode as usize], mode, status);
    }

    pub fn duration(&self, mode: ModeLabel, seconds: f64) {
        let i = (mode as usize).min(1);
        self.duration[i].get_or_init(|| METRICS.duration.with_label_values(&[self.name.as_str(), MODES[i]])).observe(seconds);
    }

    pub fn ttfe(&self, seconds: f64) {
        self.ttfe.get_or_init(|| METRICS.ttfe.with_label_values(&[self.name.as_str()])).observe(seconds);
    }

    pub fn events(&self, n: u64) {
        self.events.get_or_init(|| METRICS.events.with_label_values(&[self.name.as_str()])).inc_by(n);
    }
}

fn count_request(app: &str, slots: &[OnceLock<IntCounter>; STATUSES.len()], mode: ModeLabel, status: http::StatusCode) {
    let mode = MODES[mode as usize];
    match STATUSES.iter().position(|&s| s == status.as_u16()) {
        Some(i) => slots[i].get_or_init(|| METRICS.requests.with_label_values(&[app, mode, status.as_str()])).inc(),
        None => METRICS.requests.with_label_values(&[app, mode, status.as_str()]).inc(),
    }
}

/// Requests refused before their app is known (a bad or missing key).
pub(crate) fn unauthenticated_request(status: http::StatusCode) {
    static SLOTS: LazyLock<[OnceLock<IntCounter>; STATUSES.len()]> = LazyLock::new(Default::default);
    count_request("unknown", &SLOTS, ModeLabel::Unknown, status);
}

/// Moves `counter` up to `now`, one of the server's own counters, which
/// only grow.
pub(crate) fn follow(counter: &IntCounter, now: u64) {
    let shown = counter.get();
    if now > shown {
        counter.inc_by(now - shown);
    }
}

/// Sets `gauge` to `value`.
pub(crate) fn set(gauge: &IntGauge, value: u64) {
    gauge.set(i64::try_from(value).unwrap_or(i64::MAX));
}

/// The exposition of every metric, as they stand.
pub(crate) fn encode() -> Vec<u8> {
    let mut out = Vec::with_capacity(16 * 1024);
    // Encoding into a Vec fails only on a family the crate itself made malformed.
    if let Err(e) = TextEncoder::new().encode(&METRICS.registry.gather(), &mut out) {
        tracing::error!("/metrics: {e}");
    }
    out
}

/// The exposition's media type.
pub(crate) const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
