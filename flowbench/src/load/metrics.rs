//! What a request measures, as defined in docs/metrics.md: its `Sample`
//! (one per request sent, with one outcome), the latency `Metric`s and
//! their table (`METRICS`), why a request failed (`ErrorClass`), and a
//! distribution's `Summary` and HDR histogram (µs, 3 significant digits)
//! with its interchange encoding. The recorder (`recorder.rs`) keeps one
//! histogram per metric; the connection gauge is `gauge.rs`.

use hdrhistogram::Histogram;
pub use schema::metrics::{ErrorClass, METRICS, Metric, MetricRow, Summary};
use std::time::Duration;
use tokio::time::Instant;

/// The largest value a histogram holds: 1 hour in µs (larger ones saturate).
const MAX_TRACKED_US: u64 = 3_600_000_000;
const SIGNIFICANT_DIGITS: u8 = 3;

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
    /// `intended`, and from `sent` in their service rows.
    pub open_model: bool,
    /// The app it went to (its index in the run's apps).
    pub app: u16,
    /// Its stream reached its terminal event and its grammar was checked.
    pub checked: bool,
    /// The rules of the grammar it broke (`integrity::Violation` bits).
    pub violations: u16,
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
            checked: false,
            violations: 0,
            outcome,
        }
    }

    /// `since_sent` as the headline counts it: from the intended send in
    /// the open model (what the user waited, coordinated omission
    /// corrected), from the send otherwise.
    fn headline(&self, since_sent: Option<Duration>) -> Option<Duration> {
        if self.open_model { since_sent.map(|d| d + (self.sent - self.intended)) } else { since_sent }
    }

    /// `since_sent` as the open model's service view (none in the closed
    /// model, where the headline is it).
    fn service(&self, since_sent: Option<Duration>) -> Option<Duration> {
        self.open_model.then_some(since_sent)?
    }

    /// Whether this request answered: it succeeded, or it is a stream the
    /// driver left on purpose after its first chunks (`--abort-after-chunks`),
    /// which answered as far as it was read.
    pub fn answered(&self) -> bool {
        matches!(self.outcome, Ok(()) | Err(ErrorClass::Aborted))
    }

    /// This request's value of `metric`; `None` for the metrics recorded
    /// per event (`EventGap`, `EmitToReceipt`), for what it never saw, and
    /// for the metrics of the other outcome: a failure has only
    /// `FailedDuration`, a success everything else, a stream left on
    /// purpose its first bytes and gaps (it has no whole answer to time).
    pub fn value(&self, metric: Metric) -> Option<Duration> {
        if !self.answered() {
            return (metric == Metric::FailedDuration).then(|| self.done - self.intended);
        }
        if self.outcome.is_err() && matches!(metric, Metric::Duration | Metric::ServiceTime | Metric::StreamTail) {
            return None;
        }
        match metric {
            Metric::Ttfb => self.headline(self.ttfb),
            Metric::Ttfe => self.headline(self.ttfe),
            Metric::FirstTextChunk => self.headline(self.first_text),
            Metric::Duration => Some(self.done - self.intended),
            Metric::ServiceTime => Some(self.done - self.sent),
            Metric::LongestGapPerStream => self.max_gap,
            Metric::StreamTail => self.stream_tail,
            Metric::TtfbFromSent => self.service(self.ttfb),
            Metric::TtfeFromSent => self.service(self.ttfe),
            Metric::FirstTextChunkFromSent => self.service(self.first_text),
            Metric::EventGap | Metric::EmitToReceipt | Metric::FailedDuration => None,
        }
    }
}

pub fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_TRACKED_US, SIGNIFICANT_DIGITS).expect("valid histogram bounds")
}

/// A histogram's summary in ms (its values are µs).
pub fn summary_of(h: &Histogram<u64>) -> Summary {
    if h.is_empty() {
        return Summary::default();
    }
    let ms = |v: u64| v as f64 / 1000.0;
    Summary {
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
