//! What a request measures, as defined in docs/metrics.md: its `Sample`
//! (one per request sent, with one outcome), the latency `Metric`s and
//! their table (`METRICS`), why a request failed (`ErrorClass`), and a
//! distribution's `Summary` and HDR histogram (µs, 3 significant digits)
//! with its interchange encoding. The recorder (`recorder.rs`) keeps one
//! histogram per metric; the connection gauge is `gauge.rs`.

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use std::time::Duration;
use tokio::time::Instant;

/// The largest value a histogram holds: 1 hour in µs (larger ones saturate).
const MAX_TRACKED_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

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
        }
    }
}

/// A latency the driver records, one HDR histogram each.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Metric {
    /// Response headers, from the actual send time.
    Ttfb,
    /// The first complete data event, from the actual send time.
    Ttfe,
    /// The first `text_chunk`, from the actual send time.
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
    /// intended send time too (coordinated omission corrected, as
    /// `Duration`); the three above stay the service view.
    TtfbFromIntended,
    TtfeFromIntended,
    FirstTextChunkFromIntended,
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
pub const METRICS: [MetricRow; 12] = [
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
        metric: Metric::TtfbFromIntended,
        key: "ttfb_from_intended",
        label: "TTFB from intended",
        short_label: "TTFB from intended",
        optional: true,
    },
    MetricRow {
        metric: Metric::TtfeFromIntended,
        key: "ttfe_from_intended",
        label: "TTFE from intended",
        short_label: "TTFE from intended",
        optional: true,
    },
    MetricRow {
        metric: Metric::FirstTextChunkFromIntended,
        key: "first_text_chunk_from_intended",
        label: "first text_chunk from intended",
        short_label: "first text_chunk from intended",
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

/// One request, as the driver saw it.
#[derive(Debug, Clone)]
pub struct Sample {
    /// When the schedule meant to send it (= `sent` in the closed model).
    pub intended: Instant,
    /// Just before the request was written.
    pub sent: Instant,
    pub done: Instant,
    /// Response headers, from `sent`.
    pub ttfb: Option<Duration>,
    /// The first complete data event, from `sent`.
    pub ttfe: Option<Duration>,
    /// The first `text_chunk`, from `sent`.
    pub first_text: Option<Duration>,
    pub n_events: u64,
    pub n_bytes: u64,
    /// The longest silence between two events of this stream.
    pub max_gap: Option<Duration>,
    /// When the stream's terminal event came: the request ends there.
    pub terminal: Option<Instant>,
    /// Terminal event → end of body, with `--after-terminal drain`.
    pub stream_tail: Option<Duration>,
    /// Sent on an open schedule: the first-byte figures count from
    /// `intended` too.
    pub open_model: bool,
    /// The app it went to (its index in the run's apps).
    pub app: u16,
    pub outcome: Result<(), ErrorClass>,
}

impl Sample {
    /// A request just sent: nothing received yet.
    pub fn new(intended: Instant, sent: Instant, outcome: Result<(), ErrorClass>) -> Self {
        Sample {
            intended,
            sent,
            done: sent,
            ttfb: None,
            ttfe: None,
            first_text: None,
            n_events: 0,
            n_bytes: 0,
            max_gap: None,
            terminal: None,
            stream_tail: None,
            open_model: false,
            app: 0,
            outcome,
        }
    }

    /// `since_sent`, counted from the intended send time instead, in the open model.
    fn counted_from_intended(&self, since_sent: Option<Duration>) -> Option<Duration> {
        self.open_model.then(|| since_sent.map(|d| d + (self.sent - self.intended)))?
    }

    /// This request's value of `metric`; `None` for the metrics recorded
    /// per event (`EventGap`, `EmitToReceipt`) and for what it never saw.
    pub fn value(&self, metric: Metric) -> Option<Duration> {
        match metric {
            Metric::Ttfb => self.ttfb,
            Metric::Ttfe => self.ttfe,
            Metric::FirstTextChunk => self.first_text,
            Metric::Duration => Some(self.done - self.intended),
            Metric::ServiceTime => Some(self.done - self.sent),
            Metric::LongestGapPerStream => self.max_gap,
            Metric::StreamTail => self.stream_tail,
            Metric::TtfbFromIntended => self.counted_from_intended(self.ttfb),
            Metric::TtfeFromIntended => self.counted_from_intended(self.ttfe),
            Metric::FirstTextChunkFromIntended => self.counted_from_intended(self.first_text),
            Metric::EventGap | Metric::EmitToReceipt => None,
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
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

impl Summary {
    pub fn of(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |v: u64| v as f64 / 1000.0;
        Self {
            n: h.len(),
            avg: h.mean() / 1000.0,
            min: ms(h.min()),
            max: ms(h.max()),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p95: ms(h.value_at_quantile(0.95)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
        }
    }
}

/// A histogram as base64 of its V2+DEFLATE encoding (HdrHistogram's interchange format).
pub fn encode_histogram(h: &Histogram<u64>) -> String {
    use base64::Engine;
    use hdrhistogram::serialization::Serializer;
    let mut bytes = Vec::new();
    hdrhistogram::serialization::V2DeflateSerializer::new().serialize(h, &mut bytes).expect("serialize to Vec");
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

pub fn decode_histogram(text: &str) -> anyhow::Result<Histogram<u64>> {
    use base64::Engine;
    let bytes = base64::engine::general_purpose::STANDARD.decode(text)?;
    Ok(hdrhistogram::serialization::Deserializer::new().deserialize(&mut bytes.as_slice())?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `METRICS` is in `Metric`'s order: a metric's row is `METRICS[metric as usize]`.
    #[test]
    fn the_metric_table_is_in_the_enums_order() {
        for (i, row) in METRICS.iter().enumerate() {
            assert_eq!(row.metric as usize, i, "{:?}", row.metric);
            assert_eq!(Metric::from_key(row.key), Some(row.metric));
        }
    }

    #[test]
    fn histograms_round_trip() {
        let mut h = new_histogram();
        for v in [1, 10, 100, 1000, 123_456] {
            h.record(v).unwrap();
        }
        let back = decode_histogram(&encode_histogram(&h)).unwrap();
        assert_eq!(back.len(), 5);
        assert_eq!(back.value_at_quantile(0.5), h.value_at_quantile(0.5));
    }
}
