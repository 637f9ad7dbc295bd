//! What the driver measures, as the report names it: why a request failed
//! (`ErrorClass`), the latency `Metric`s and their one table (`METRICS`),
//! and a distribution's `Summary` in ms.

use serde::{Deserialize, Serialize};

/// Why a request failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorClass {
    /// No connection could be made.
    Connect,
    /// The request or its stream took longer than the request timeout.
    Timeout,
    Http4xx,
    Http5xx,
    /// Another non-200 status.
    HttpOther,
    /// A body or event that is not the JSON expected.
    InvalidJson,
    /// The stream ended without `workflow_finished`.
    EarlyTermination,
    /// The workflow finished `failed`/`stopped`, or an `error` event came.
    WorkflowFailed,
    /// The connection broke mid-request.
    Io,
    /// The run was stopped (Ctrl-C) while the request was in flight.
    Interrupted,
    /// `--stamped`, but a text chunk carried no emit stamp (the mock's
    /// script lacks `stamp = true`).
    Unstamped,
    /// The driver left the stream on purpose (`--abort-after-chunks`): a
    /// client that goes away mid-answer, for the server's cancellation path.
    Aborted,
    /// The stream reached its terminal event but broke Dify's event
    /// grammar (`integrity::Violation`): counted by rule in `integrity`.
    Integrity,
}

impl ErrorClass {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorClass::Connect => "connect",
            ErrorClass::Timeout => "timeout",
            ErrorClass::Http4xx => "http_4xx",
            ErrorClass::Http5xx => "http_5xx",
            ErrorClass::HttpOther => "http_other",
            ErrorClass::InvalidJson => "invalid_json",
            ErrorClass::EarlyTermination => "early_termination",
            ErrorClass::WorkflowFailed => "workflow_failed",
            ErrorClass::Io => "io",
            ErrorClass::Interrupted => "interrupted",
            ErrorClass::Unstamped => "unstamped",
            ErrorClass::Aborted => "aborted",
            ErrorClass::Integrity => "integrity",
        }
    }
}

/// A latency the driver records, one HDR histogram each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Response headers: from the send in the closed model, from the
    /// intended send in the open model (coordinated omission corrected,
    /// as `Duration`), so every headline reads what a user waited.
    Ttfb,
    /// The first complete data event, counted as `Ttfb`.
    Ttfe,
    /// The first `text_chunk`, counted as `Ttfb`.
    FirstTextChunk,
    /// The whole request from its intended send time (coordinated omission corrected).
    Duration,
    /// The whole request from its actual send time (raw service time).
    ServiceTime,
    /// Every gap between consecutive events of a stream.
    EventGap,
    /// Each stream's longest gap.
    LongestGapPerStream,
    /// Emit → receipt of stamped chunks (`--stamped`).
    EmitToReceipt,
    /// A stream's terminal event → the end of its body, where the driver
    /// reads every body to its end (`--after-terminal drain`).
    StreamTail,
    /// In the open model, TTFB, TTFE and the first `text_chunk` from the
    /// actual send too: the service view, beside the three above.
    TtfbFromSent,
    TtfeFromSent,
    FirstTextChunkFromSent,
    /// A failed request's whole time, from its intended send: what a user
    /// waited for a failure. Failures are in no other latency.
    FailedDuration,
}

/// One latency metric: its names and whether every run records it. A new
/// metric is a variant above, a row here and its value in `Sample::value`
/// (or where the recorder takes it); the histograms, the report's
/// summaries, the text rows, merges, thresholds (`<key>_<stat>`) and the
/// figure table follow from this list.
#[derive(Debug)]
pub struct MetricRow {
    pub metric: Metric,
    /// Its name in the JSON report: the histogram's key, and with `_ms` the summary's.
    pub key: &'static str,
    /// Its row in the text report.
    pub label: &'static str,
    /// Its name in a figure's label (`TTFE P95 (ms)`).
    pub short_label: &'static str,
    /// Recorded only on request (`--stamped`, `--after-terminal drain`,
    /// the open model): its summary is left out of the report when it
    /// holds no value, rather than shown as zeros.
    pub optional: bool,
}

/// Every metric, in the order the report shows them (`Metric`'s order).
pub const METRICS: [MetricRow; 13] = [
    MetricRow { metric: Metric::Ttfb, key: "ttfb", label: "TTFB (headers)", short_label: "TTFB", optional: false },
    MetricRow { metric: Metric::Ttfe, key: "ttfe", label: "TTFE (first event)", short_label: "TTFE", optional: false },
    MetricRow {
        metric: Metric::FirstTextChunk,
        key: "first_text_chunk",
        label: "first text_chunk",
        short_label: "first text_chunk",
        optional: false,
    },
    MetricRow { metric: Metric::Duration, key: "duration", label: "duration (from intended)", short_label: "duration", optional: false },
    MetricRow {
        metric: Metric::ServiceTime,
        key: "service_time",
        label: "service time (from sent)",
        short_label: "service time",
        optional: false,
    },
    MetricRow { metric: Metric::EventGap, key: "event_gap", label: "gap between events", short_label: "event gap", optional: false },
    MetricRow {
        metric: Metric::LongestGapPerStream,
        key: "longest_gap_per_stream",
        label: "longest gap per stream",
        short_label: "longest gap",
        optional: false,
    },
    MetricRow {
        metric: Metric::EmitToReceipt,
        key: "emit_to_receipt",
        label: "emit → receipt (stamped)",
        short_label: "emit → receipt",
        optional: true,
    },
    MetricRow {
        metric: Metric::StreamTail,
        key: "stream_tail",
        label: "stream tail (terminal → end)",
        short_label: "stream tail",
        optional: true,
    },
    MetricRow {
        metric: Metric::TtfbFromSent,
        key: "ttfb_from_sent",
        label: "TTFB from sent (service)",
        short_label: "TTFB from sent",
        optional: true,
    },
    MetricRow {
        metric: Metric::TtfeFromSent,
        key: "ttfe_from_sent",
        label: "TTFE from sent (service)",
        short_label: "TTFE from sent",
        optional: true,
    },
    MetricRow {
        metric: Metric::FirstTextChunkFromSent,
        key: "first_text_chunk_from_sent",
        label: "first text_chunk from sent (service)",
        short_label: "first text_chunk from sent",
        optional: true,
    },
    MetricRow {
        metric: Metric::FailedDuration,
        key: "failed_duration",
        label: "failed requests' duration",
        short_label: "failed duration",
        optional: true,
    },
];

impl Metric {
    pub const COUNT: usize = METRICS.len();
    /// Every metric, in the order the report shows them.
    pub const ALL: [Metric; Metric::COUNT] = {
        let mut all = [Metric::Ttfb; Metric::COUNT];
        let mut i = 0;
        while i < Metric::COUNT {
            all[i] = METRICS[i].metric;
            i += 1;
        }
        all
    };

    /// Its row of `METRICS`.
    pub const fn row(self) -> &'static MetricRow {
        &METRICS[self as usize]
    }

    /// Its name in the JSON report: the histogram's key, and with `_ms` the summary's.
    pub const fn key(self) -> &'static str {
        self.row().key
    }

    /// The row's label in the text report.
    pub const fn label(self) -> &'static str {
        self.row().label
    }

    /// Its name in a figure's label.
    pub const fn short_label(self) -> &'static str {
        self.row().short_label
    }

    /// Recorded only on request: left out of the report when it holds no value.
    pub const fn optional(self) -> bool {
        self.row().optional
    }

    pub fn from_key(key: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.key() == key)
    }
}

/// A latency distribution in ms, as the report shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub n: u64,
    pub avg: f64,
    pub min: f64,
    pub max: f64,
    pub p50: f64,
    pub p90: f64,
    pub p95: f64,
    pub p99: f64,
    pub p999: f64,
}
