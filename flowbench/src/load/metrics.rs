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
    /// The trace id its `traceparent` carried, high half first (zero: none).
    pub trace_id: [u64; 2],
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
            trace_id: [0; 2],
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

/// A per-request SLO, as vLLM's goodput takes it: `ttfe<200ms,duration<5s`.
/// A request meets it when it succeeded and each of its named latencies
/// was measured and under its limit; goodput is the rate of those.
#[derive(Debug, Clone, PartialEq)]
pub struct RequestSlo {
    /// As the user wrote it.
    pub text: String,
    /// Each latency and its limit (strict `<`, or `<=`).
    limits: Vec<(Metric, Duration, bool)>,
}

impl std::str::FromStr for RequestSlo {
    type Err = String;

    /// `METRIC<VALUE[,METRIC<=VALUE…]`: METRIC a per-request latency by its
    /// key (`ttfb`, `ttfe`, `first_text_chunk`, `duration`, …; the report's
    /// latency rows less those of events), VALUE as a threshold's (`200ms`,
    /// `5s`, bare ms).
    fn from_str(text: &str) -> Result<Self, String> {
        let compact: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        let mut limits = Vec::new();
        for part in compact.split(',').filter(|p| !p.is_empty()) {
            let at = part.find(['<', '>', '=']).ok_or_else(|| format!("{part:?} has no limit: write METRIC<VALUE, e.g. ttfe<200ms"))?;
            let (key, rest) = part.split_at(at);
            let (inclusive, value) = match rest.as_bytes() {
                [b'<', b'=', ..] => (true, &rest[2..]),
                [b'<', ..] => (false, &rest[1..]),
                _ => return Err(format!("{part:?}: a request SLO is an upper limit, < or <=")),
            };
            let metric = Metric::from_key(key)
                .filter(|m| PER_REQUEST.contains(m))
                .ok_or_else(|| format!("{part:?}: {key:?} is not a request's latency (one of {})", per_request_keys()))?;
            let ms = parse_ms(value)
                .filter(|v| v.is_finite() && *v > 0.0)
                .ok_or_else(|| format!("{part:?}: {value:?} is not a duration (200ms, 5s)"))?;
            limits.push((metric, Duration::from_secs_f64(ms / 1e3), inclusive));
        }
        if limits.is_empty() {
            return Err(format!("{text:?} names no limit: write e.g. 'ttfe<200ms,duration<5s'"));
        }
        Ok(Self { text: text.trim().to_owned(), limits })
    }
}

/// The latencies a request has one value of (an event gap is per event).
const PER_REQUEST: [Metric; 10] = [
    Metric::Ttfb,
    Metric::Ttfe,
    Metric::FirstTextChunk,
    Metric::Duration,
    Metric::ServiceTime,
    Metric::LongestGapPerStream,
    Metric::StreamTail,
    Metric::TtfbFromSent,
    Metric::TtfeFromSent,
    Metric::FirstTextChunkFromSent,
];

fn per_request_keys() -> String {
    PER_REQUEST.iter().map(|m| m.key()).collect::<Vec<_>>().join(", ")
}

impl RequestSlo {
    /// Whether `sample` succeeded within every limit (a latency it did not
    /// have, such as a first text chunk of a run without text, is not met).
    pub fn met(&self, sample: &Sample) -> bool {
        sample.outcome.is_ok()
            && self
                .limits
                .iter()
                .all(|&(metric, limit, inclusive)| sample.value(metric).is_some_and(|v| if inclusive { v <= limit } else { v < limit }))
    }
}

/// A duration in ms: `200ms`, `1.5s`, `750us` (or `µs`), bare ms, or any
/// humantime duration (`1h`, `2m30s`).
pub fn parse_ms(value: &str) -> Option<f64> {
    let (number, scale) = if let Some(n) = value.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = value.strip_suffix("us").or_else(|| value.strip_suffix("µs")) {
        (n, 1e-3)
    } else if let Some(n) = value.strip_suffix('s') {
        (n, 1e3)
    } else {
        (value, 1.0)
    };
    number.parse::<f64>().ok().map(|n| n * scale).or_else(|| humantime::parse_duration(value).ok().map(|d| d.as_secs_f64() * 1e3))
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

    /// A request meets its SLO when it succeeded and every latency named
    /// was measured and under its limit; bad limits are refused by name.
    #[test]
    fn a_request_slo_judges_each_request() {
        let slo: RequestSlo = "ttfe < 200ms, duration<=1s".parse().unwrap();
        let t0 = Instant::now();
        let mut sample = Sample::new(t0, t0, Ok(()));
        sample.ttfb = Some(Duration::from_millis(10));
        sample.ttfe = Some(Duration::from_millis(150));
        sample.done = t0 + Duration::from_secs(1);
        assert!(slo.met(&sample), "<= takes the limit itself");
        sample.ttfe = Some(Duration::from_millis(200));
        assert!(!slo.met(&sample), "< is strict");
        sample.ttfe = Some(Duration::from_millis(150));
        sample.done = t0 + Duration::from_millis(1001);
        assert!(!slo.met(&sample));
        sample.done = t0 + Duration::from_millis(500);
        sample.outcome = Err(ErrorClass::Http5xx);
        assert!(!slo.met(&sample), "a failure is never good");
        let text: RequestSlo = "first_text_chunk<1s".parse().unwrap();
        sample.outcome = Ok(());
        assert!(!text.met(&sample), "a latency the request did not have is not met");
        for (bad, says) in [
            ("", "names no limit"),
            ("ttfe>200ms", "upper limit"),
            ("speed<3", "\"speed\" is not a request's latency"),
            ("event_gap<3ms", "not a request's latency"),
            ("ttfe<fast", "not a duration"),
            ("ttfe<0ms", "not a duration"),
            ("ttfe", "has no limit"),
        ] {
            let err = bad.parse::<RequestSlo>().unwrap_err();
            assert!(err.contains(says), "{bad:?}: {err}");
        }
    }
}
