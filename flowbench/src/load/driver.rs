//! The load driver: one worker loop, parameterised by a `Schedule`, that
//! sends Dify workflow-run requests and reads their answers with a correct
//! SSE client, recording exactly one `Sample` per request sent.
//!
//! Figures it emits per request: TTFB (headers), TTFE (first complete data
//! event), time to the first `text_chunk`, full duration from the intended
//! and from the actual send time, events, bytes, every inter-event gap and
//! the longest, and the outcome (ok or an `ErrorClass`). Per run: the
//! connection gauge's peak and time-weighted mean, per-second events,
//! completions and errors.

use super::client::{Conn, Protocol, SendError, Target};
use super::gauge::Gauge;
use super::inputs::{InputOrder, InputSet, QUESTIONS, Row};
use super::integrity::{self, Grammar, Kind, Labels, Seen, Trace};
use super::metrics::RequestSlo;
use super::metrics::{ErrorClass, Sample};
use super::recorder::{MAX_EXAMPLES, Recorder};
use super::schedule::{LoadModel, Schedule};
use super::timeline::TimelineTally;
use bytes::Bytes;
use http::HeaderValue;
use http_body_util::BodyExt;
use rand::{Rng, SeedableRng};
pub use schema::load::Mode;
use serde_json::{Value, json};
use server::sse::SseParser;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// What the driver does once a stream's terminal event (`workflow_finished`,
/// `error`, `message_end`) has come and its body has not ended with it.
/// The request's duration ends at the terminal event either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AfterTerminal {
    /// Close the connection at once, as a client that has its answer does;
    /// the tail costs the user nothing and is not measured.
    #[default]
    Close,
    /// Read the body to its end, and record the tail (`stream_tail`); the
    /// user waits for it, and the connection is kept.
    Drain,
}

/// An app a run sends to: the flags' one, or each of a scenario file's
/// `[[scenario.apps]]`, picked per request by weight.
#[derive(Debug, Clone)]
pub struct App {
    /// Its name in the report.
    pub name: String,
    pub mode: Mode,
    pub api_key: HeaderValue,
    /// Under the Dify API root; `None`: `/v1/workflows/run`.
    pub path: Option<http::uri::PathAndQuery>,
    pub weight: u32,
    pub inputs: InputSet,
}

impl App {
    /// The one app of a run from flags: `inputs`, or `{"question": one of QUESTIONS}`.
    pub fn single(mode: Mode, api_key: HeaderValue, inputs: Option<Value>) -> Self {
        let inputs = match inputs {
            Some(inputs) => InputSet::new(&[Row::inputs(inputs)], InputOrder::RoundRobin),
            None => InputSet::questions(),
        };
        Self { name: "app".to_owned(), mode, api_key, path: None, weight: 1, inputs }
    }
}

/// One scenario run, fully specified.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// At least one; each request goes to one, by weight.
    pub apps: Vec<App>,
    pub load: LoadModel,
    /// Sent but left out of the figures.
    pub warmup: Duration,
    /// The measured phase.
    pub duration: Duration,
    pub timeout: Duration,
    pub seed: u64,
    pub protocol: Protocol,
    /// Text chunks carry their emit time (a mock script with `stamp = true`):
    /// record emit → receipt for each.
    pub stamped: bool,
    /// Leave each stream after this many text chunks (outcome `aborted`).
    pub abort_after_chunks: Option<u32>,
    pub after_terminal: AfterTerminal,
    /// Evenly spaced arrivals shifted by this part of a period (a shard's, `--shard`).
    pub arrival_phase: f64,
    /// Check each Dify stream's event grammar and keep its timeline
    /// (`--no-integrity` turns both off, for the driver's own ceiling).
    pub integrity: bool,
    /// Count the measured requests that meet it (goodput).
    pub request_slo: Option<RequestSlo>,
    /// Each request carries a `traceparent`, flagged sampled for this
    /// share of them; `None`: no `traceparent` (`--no-traceparent`).
    pub trace_sample: Option<f64>,
}

/// Live totals, for the progress line.
#[derive(Debug, Default)]
pub struct Live {
    pub sent: AtomicU64,
    pub done: AtomicU64,
    pub errors: AtomicU64,
    pub events: AtomicU64,
}

/// What a run measured.
pub struct RunResult {
    pub recorder: Recorder,
    pub measure_start: Instant,
    /// The measured phase as it happened (shorter when interrupted).
    pub measured: Duration,
    pub peak_connections: i64,
    pub avg_connections: f64,
    /// Each measured second's time-weighted mean and peak of in-flight requests.
    pub connections_per_s: Vec<f64>,
    pub peak_connections_per_s: Vec<i64>,
    pub interrupted: bool,
}

/// Recorders shared by the workers: each holds a set of HDR histograms,
/// so one per worker would cost gigabytes at thousands of users.
const RECORDER_SHARDS: usize = 64;

struct Ctx {
    spec: RunSpec,
    /// Requests get flowbench's `traceparent` (no `--header` gives one).
    own_traces: bool,
    /// Each app's request URI, and its next round-robin row.
    uris: Vec<http::Uri>,
    next_row: Vec<AtomicU64>,
    /// Running sums of the apps' weights, to pick one per request.
    weights: Vec<u64>,
    /// Each app's grammar, by its path.
    kinds: Vec<Kind>,
    /// Offending streams still to keep whole; while any are, each stream's
    /// reads are copied until it ends.
    examples_left: AtomicUsize,
    target: Target,
    schedule: Schedule,
    gauge: Gauge,
    live: Arc<Live>,
    cancel: CancellationToken,
    shards: Vec<std::sync::Mutex<Recorder>>,
    /// The timeline's tallies, fewer than the recorders and picked by the
    /// thread a stream ended on, not by its worker: a stream records a
    /// dozen rows into one, and a tally a thread keeps to itself stays in
    /// its core's cache, where one per recorder made each record a miss and
    /// one per worker moved between cores (docs/performance.md, section 5).
    timelines: Vec<std::sync::Mutex<TimelineTally>>,
    measure_start: Instant,
}

/// The timeline's tallies a run shares among its workers.
const TIMELINE_SHARDS: usize = 4;

/// A number of the thread this runs on, each thread its own in the order
/// they first asked.
fn thread_slot() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local!(static SLOT: usize = NEXT.fetch_add(1, Ordering::Relaxed));
    SLOT.with(|slot| *slot)
}

/// What one request saw event by event, buffered by its worker and handed
/// to a shared recorder once, with the request's sample: the per-event path
/// takes no lock.
#[derive(Default)]
struct Pending {
    gaps: Vec<(Duration, Instant)>,
    events: Vec<(Instant, u64)>,
    /// Emit → receipt of stamped chunks, in ns.
    lags: Vec<u64>,
    /// The stamped chunks' emit times (ns since the Unix epoch).
    stamps: Vec<u64>,
    grammar: Grammar,
    trace: Trace,
    /// The node labels this worker has met (the trace's points name them).
    labels: Labels,
    /// The stream's reads while offending streams are kept: each read's
    /// time from the send and where it ends in `raw`, which holds their
    /// bytes. Copied, not held: a held read would keep the connection's
    /// read buffer from being reused.
    frames: Vec<(Duration, usize)>,
    raw: Vec<u8>,
    /// Reads past `MAX_RAW` bytes were not copied.
    raw_cut: bool,
}

impl Pending {
    /// Ready for a new stream of `kind`: what the last one left is cleared,
    /// its buffers kept. (Gaps, reads and lags are drained into the
    /// recorder after each request.)
    fn start(&mut self, kind: Kind) {
        self.grammar.reset(kind);
        self.trace.clear();
        self.stamps.clear();
        self.frames.clear();
        self.raw.clear();
        self.raw_cut = false;
    }
}

/// The W3C Trace Context header.
const TRACEPARENT: http::HeaderName = http::HeaderName::from_static("traceparent");

/// Runs `spec` against `target` until its time is up or `cancel` fires.
pub async fn run(spec: RunSpec, target: Target, live: Arc<Live>, cancel: CancellationToken) -> RunResult {
    // Plans are checked for both; a spec built by hand must hold them too.
    assert!(spec.apps.iter().any(|a| a.weight > 0), "a run needs an app of weight 1 or more");
    let start = Instant::now();
    let measure_start = start + spec.warmup;
    let schedule = Schedule::new(&spec.load, start, spec.warmup + spec.duration).with_phase(spec.arrival_phase);
    let n_shards = (spec.load.n_workers() as usize).clamp(1, RECORDER_SHARDS);
    let n_apps = spec.apps.len();
    let shards = (0..n_shards)
        .map(|_| {
            std::sync::Mutex::new(Recorder::with_apps(measure_start, n_apps).warming_from(start).counting_good(spec.request_slo.is_some()))
        })
        .collect();
    let uris = spec.apps.iter().map(|app| app.path.as_ref().map_or_else(|| target.run_uri().clone(), |p| target.dify_uri(p))).collect();
    let next_row = spec.apps.iter().map(|_| AtomicU64::new(0)).collect();
    let kinds = spec.apps.iter().map(|app| Kind::of_path(app.path.as_ref().map(http::uri::PathAndQuery::path))).collect();
    let weights = spec
        .apps
        .iter()
        .scan(0u64, |sum, app| {
            *sum += u64::from(app.weight);
            Some(*sum)
        })
        .collect();
    let ctx = Arc::new(Ctx {
        own_traces: spec.trace_sample.is_some() && !target.has_header(&TRACEPARENT),
        gauge: Gauge::new(measure_start, schedule.end()),
        spec,
        uris,
        next_row,
        weights,
        kinds,
        examples_left: AtomicUsize::new(MAX_EXAMPLES),
        target,
        schedule,
        live,
        cancel,
        shards,
        timelines: (0..TIMELINE_SHARDS.min(n_shards)).map(|_| std::sync::Mutex::new(TimelineTally::default())).collect(),
        measure_start,
    });
    let closer = {
        let ctx = ctx.clone();
        tokio::spawn(async move {
            ctx.cancel.cancelled().await;
            ctx.gauge.close_at(Instant::now());
        })
    };
    let mut workers = tokio::task::JoinSet::new();
    for id in 0..ctx.spec.load.n_workers() {
        workers.spawn(worker(id, ctx.clone()));
    }
    while let Some(joined) = workers.join_next().await {
        if let Err(e) = joined {
            tracing::error!("a driver worker failed: {e}");
        }
    }
    let mut recorder = Recorder::with_apps(measure_start, n_apps).warming_from(start).counting_good(ctx.spec.request_slo.is_some());
    for shard in &ctx.shards {
        recorder.merge(&shard.lock().unwrap_or_else(|e| e.into_inner()));
    }
    for timeline in &ctx.timelines {
        recorder.timeline.merge(&timeline.lock().unwrap_or_else(|e| e.into_inner()));
    }
    let interrupted = ctx.cancel.is_cancelled();
    closer.abort();
    let (gauge, end) = ctx.gauge.finish();
    RunResult {
        recorder,
        measure_start,
        measured: end.saturating_duration_since(measure_start),
        peak_connections: gauge.peak,
        avg_connections: gauge.mean,
        connections_per_s: gauge.mean_per_second,
        peak_connections_per_s: gauge.peak_per_second,
        interrupted,
    }
}

async fn worker(id: u32, ctx: Arc<Ctx>) {
    let shard = &ctx.shards[id as usize % ctx.shards.len()];
    let mut pending = Pending::default();
    let mut bodies = Bodies::new(&ctx.spec, id);
    let mut rng = rand::rngs::SmallRng::seed_from_u64(ctx.spec.seed.wrapping_add(u64::from(id)));
    // Trace ids from the OS's entropy, not the run's seed: two runs with
    // one seed must not send the same ids to one tracing system.
    let think = ctx.spec.load.think_time();
    let mut conn = Conn::new();
    let mut first = true;
    let mut retry = Retry { closed: !ctx.spec.load.is_open(), ..Retry::default() };
    loop {
        if let Some(pause) = retry.next {
            let began = Instant::now();
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => break,
                // Never past the load's end: a pause does not stretch the run.
                () = tokio::time::sleep_until((began + pause).min(ctx.schedule.end().max(began))) => {}
            }
            retry.waited += began.elapsed();
        }
        if !first && !think.is_zero() {
            let pause = super::schedule::draw_think(&think, &mut rng);
            tokio::select! {
                biased;
                () = ctx.cancel.cancelled() => break,
                () = tokio::time::sleep(pause) => {}
            }
        }
        let intended = tokio::select! {
            biased;
            () = ctx.cancel.cancelled() => break,
            next = ctx.schedule.next(id, first) => match next { Some(t) => t, None => break },
        };
        first = false;
        let app = ctx.pick_app(&mut rng);
        let body = bodies.next(&ctx, app, &mut rng);
        ctx.live.sent.fetch_add(1, Ordering::Relaxed);
        let attempt = Instant::now();
        let mut sample = tokio::select! {
            biased;
            sample = one_request(&ctx, &mut conn, &mut pending, intended, app, body) => sample,
            () = ctx.cancel.cancelled() => {
                conn.reset();
                interrupted(intended, attempt)
            }
        };
        sample.app = app as u16;
        ctx.live.done.fetch_add(1, Ordering::Relaxed);
        if sample.outcome.is_err() {
            ctx.live.errors.fetch_add(1, Ordering::Relaxed);
        }
        let example =
            (sample.violations != 0 && !pending.frames.is_empty() && ctx.take_example()).then(|| offending(&ctx, &sample, &pending));
        // The timeline is of the measured successes, as every latency.
        if let Some(terminal) =
            sample.terminal.filter(|_| sample.outcome.is_ok() && ctx.spec.integrity && sample.intended >= ctx.measure_start)
        {
            let mut timeline = ctx.timelines[thread_slot() % ctx.timelines.len()].lock().unwrap_or_else(|e| e.into_inner());
            timeline.record(&pending.trace, &pending.labels, terminal - sample.intended, &pending.stamps, &pending.lags);
        }
        let mut recorder = shard.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(example) = example {
            recorder.examples.push(example);
        }
        // A failed stream's gaps and lags are no success's figures; its
        // events still arrived, and count by receipt. A stream left on
        // purpose keeps them.
        let ok = sample.answered();
        for (gap, intended) in pending.gaps.drain(..).filter(|_| ok) {
            recorder.gap(gap, intended);
        }
        for (at, n) in pending.events.drain(..) {
            recorder.events_at(at, n);
        }
        for lag in pending.lags.drain(..).filter(|_| ok) {
            recorder.emit_lag(lag, sample.intended);
        }
        recorder.record(&sample);
        if ctx.spec.request_slo.as_ref().is_some_and(|slo| slo.met(&sample)) {
            recorder.good(&sample);
        }
        drop(recorder);
        retry.after(&sample.outcome);
    }
    shard.lock().unwrap_or_else(|e| e.into_inner()).backoff += retry.waited;
}

/// A closed-model user's back-off after a connection could not be made,
/// as a user's client does: it doubles from `FIRST_BACKOFF` to
/// `MAX_BACKOFF` while connects fail and ends with the first request that
/// connects. Without it, a refused target is retried at loopback speed and
/// the run measures how fast the driver can fail. The open model keeps its
/// schedule: its arrivals do not wait on the last answer.
#[derive(Default)]
struct Retry {
    closed: bool,
    /// The wait before the next request, if the last could not connect.
    next: Option<Duration>,
    waited: Duration,
}

const FIRST_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(1);

impl Retry {
    fn after(&mut self, outcome: &Result<(), ErrorClass>) {
        self.next =
            (self.closed && *outcome == Err(ErrorClass::Connect)).then(|| self.next.map_or(FIRST_BACKOFF, |d| (d * 2).min(MAX_BACKOFF)));
    }
}

/// A stream that broke the grammar, whole: its reads parsed again into
/// events, each at the time its read came.
fn offending(ctx: &Ctx, sample: &Sample, pending: &Pending) -> schema::integrity::OffendingStream {
    /// Events a kept stream holds at most.
    const MAX_EVENTS: usize = 2000;
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    let mut truncated = false;
    let mut from = 0;
    for &(at, end) in &pending.frames {
        let bytes = &pending.raw[from..end];
        from = end;
        parser.push_ref(bytes, |e| {
            if events.len() < MAX_EVENTS {
                events.push(schema::integrity::StreamEvent {
                    at_ms: at.as_secs_f64() * 1e3,
                    event: e.event.map(str::to_owned),
                    data: e.data.to_owned(),
                });
            } else {
                truncated = true;
            }
        });
    }
    schema::integrity::OffendingStream {
        app: ctx.spec.apps[usize::from(sample.app)].name.clone(),
        violations: schema::integrity::Violation::of_set(sample.violations).map(|v| v.as_str().to_owned()).collect(),
        events,
        truncated: truncated || pending.raw_cut,
    }
}

impl Ctx {
    /// Whether a request of `mode` has its stream's grammar checked.
    fn checks(&self, mode: Mode) -> bool {
        self.spec.integrity && mode == Mode::Streaming && self.spec.protocol == Protocol::Dify
    }

    /// Whether an offending stream may still be kept whole (and one fewer may).
    fn take_example(&self) -> bool {
        self.examples_left.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1)).is_ok()
    }

    /// The app of the next request, by weight.
    fn pick_app(&self, rng: &mut impl Rng) -> usize {
        match self.weights.as_slice() {
            [_] => 0,
            weights => {
                let total = weights.last().copied().unwrap_or(1).max(1);
                let x = rng.random_range(0..total);
                weights.partition_point(|&w| w <= x)
            }
        }
    }
}

/// A worker's request bodies: each app's rows are serialized once; a body
/// is a row's fields between this worker's fixed prefix and suffix, built
/// ahead for small input sets (a request then clones a `Bytes`) and per
/// request for large ones (a copy of the row, not a serialization).
struct Bodies {
    /// Per app: `,"response_mode":"…","user":"user_N"}`.
    suffixes: Vec<Vec<u8>>,
    /// Per app, every body whole, when the apps' rows are few.
    built: Option<Vec<Vec<Bytes>>>,
    /// The direct path's OpenAI requests, whole.
    openai: Vec<Bytes>,
}

/// Bytes of a stream copied while offending streams are kept: a kept
/// stream is for reading, and a huge one would hold a worker's memory.
const MAX_RAW: usize = 1 << 20;

/// Rows (over all apps) up to which each worker builds its bodies ahead.
const PREBUILT_ROWS: usize = 256;

impl Bodies {
    fn new(spec: &RunSpec, worker: u32) -> Self {
        if spec.protocol == Protocol::OpenAi {
            let body = |q: &str| json!({"model": "gpt-3.5-turbo", "stream": true, "messages": [{"role": "user", "content": q}]});
            let openai = QUESTIONS.iter().map(|q| Bytes::from(body(q).to_string())).collect();
            return Self { suffixes: Vec::new(), built: None, openai };
        }
        let suffixes: Vec<Vec<u8>> = spec
            .apps
            .iter()
            .map(|app| format!(r#","response_mode":"{}","user":"user_{worker}"}}"#, app.mode.as_str()).into_bytes())
            .collect();
        let rows: usize = spec.apps.iter().map(|a| a.inputs.len()).sum();
        let built = (rows <= PREBUILT_ROWS).then(|| {
            spec.apps.iter().zip(&suffixes).map(|(app, suffix)| app.inputs.fields.iter().map(|f| join(f, suffix)).collect()).collect()
        });
        Self { suffixes, built, openai: Vec::new() }
    }

    fn next(&mut self, ctx: &Ctx, app: usize, rng: &mut impl Rng) -> Bytes {
        if !self.openai.is_empty() {
            return self.openai[rng.random_range(0..self.openai.len())].clone();
        }
        let set = &ctx.spec.apps[app].inputs;
        let n = set.fields.len().max(1);
        let row = match set.order {
            InputOrder::RoundRobin => (ctx.next_row[app].fetch_add(1, Ordering::Relaxed) % n as u64) as usize,
            InputOrder::Random => rng.random_range(0..n),
        };
        if let Some(body) = self.built.as_ref().and_then(|b| b[app].get(row)) {
            return body.clone();
        }
        join(set.fields.get(row).map_or(&b"\"inputs\":{}"[..], |f| &f[..]), &self.suffixes[app])
    }
}

/// `{` + a row's fields + a worker's suffix.
fn join(fields: &[u8], suffix: &[u8]) -> Bytes {
    let mut body = Vec::with_capacity(1 + fields.len() + suffix.len());
    body.push(b'{');
    body.extend_from_slice(fields);
    body.extend_from_slice(suffix);
    Bytes::from(body)
}

fn interrupted(intended: Instant, sent: Instant) -> Sample {
    Sample { done: Instant::now(), ..Sample::new(intended, sent, Err(ErrorClass::Interrupted)) }
}

thread_local! {
    /// Trace ids from the OS's entropy, not the run's seed: two runs with
    /// one seed must not send the same ids to one tracing system.
    static TRACE_RNG: std::cell::RefCell<rand::rngs::SmallRng> = std::cell::RefCell::new(rand::rngs::SmallRng::from_os_rng());
}

/// Gives `request` a W3C `traceparent` with a new trace id (version 00, the
/// ids in lowercase hex, flagged sampled for `sample`'s share); its trace id,
/// as two halves (W3C forbids an all-zero one).
fn new_trace(request: &mut http::Request<http_body_util::Full<Bytes>>, sample: f64) -> [u64; 2] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let (ids, sampled) = TRACE_RNG.with_borrow_mut(|rng| {
        ([rng.random::<u64>(), rng.random::<u64>().max(1), rng.random::<u64>().max(1)], rng.random::<f64>() < sample)
    });
    let mut text = *b"00-00000000000000000000000000000000-0000000000000000-00";
    for (at, id) in [(3, ids[0]), (19, ids[1]), (36, ids[2])] {
        for i in 0..16 {
            text[at + i] = HEX[((id >> (60 - 4 * i)) & 0xf) as usize];
        }
    }
    text[54] = if sampled { b'1' } else { b'0' };
    request.headers_mut().insert(TRACEPARENT, HeaderValue::from_bytes(&text).expect("hex digits and dashes are a header value"));
    [ids[0], ids[1]]
}

/// Sends one request and reads its whole answer.
async fn one_request(ctx: &Ctx, conn: &mut Conn, recorder: &mut Pending, intended: Instant, app: usize, body: Bytes) -> Sample {
    let _in_flight = ctx.gauge.enter();
    let key = &ctx.spec.apps[app].api_key;
    let mut request = match ctx.spec.protocol {
        Protocol::Dify => ctx.target.post_to(&ctx.uris[app], key, body),
        Protocol::OpenAi => ctx.target.chat_request(key, body),
    };
    // A --header traceparent of the user's own is sent instead, and no id is kept.
    let trace_id = match ctx.spec.trace_sample.filter(|_| ctx.own_traces) {
        Some(share) => new_trace(&mut request, share),
        None => [0; 2],
    };
    let sent = Instant::now();
    let mut sample = Sample::new(intended, sent, Ok(()));
    sample.trace_id = trace_id;
    sample.open_model = ctx.spec.load.is_open();
    let deadline = sent + ctx.spec.timeout;
    let mode = ctx.spec.apps[app].mode;
    recorder.start(ctx.kinds[app]);
    let outcome = match tokio::time::timeout_at(deadline, exchange(ctx, conn, recorder, request, (mode, ctx.kinds[app]), &mut sample)).await
    {
        Ok(outcome) => outcome,
        Err(_) => Err(ErrorClass::Timeout),
    };
    // A failed exchange may leave the connection mid-response, and a stream
    // left at its terminal event has not ended.
    if !matches!(outcome, Ok(Body::Ended)) {
        conn.reset();
    }
    sample.outcome = outcome.map(|_| ());
    // A stream that reached its terminal event is judged whole; one that
    // failed before it is an error of its own class.
    if ctx.checks(mode) && sample.terminal.is_some() {
        sample.checked = true;
        sample.violations = recorder.grammar.violations();
        if sample.violations != 0 && matches!(sample.outcome, Ok(()) | Err(ErrorClass::WorkflowFailed)) {
            sample.outcome = Err(ErrorClass::Integrity);
        }
    }
    // A stream's run ends at its terminal event, whatever its body does after.
    sample.done = sample.terminal.unwrap_or_else(Instant::now);
    sample
}

/// Whether an answer's body was read to its end (the connection can serve
/// the next request) or left after the stream's terminal event.
enum Body {
    Ended,
    Left,
}

async fn exchange(
    ctx: &Ctx,
    conn: &mut Conn,
    recorder: &mut Pending,
    request: http::Request<http_body_util::Full<Bytes>>,
    (mode, kind): (Mode, Kind),
    sample: &mut Sample,
) -> Result<Body, ErrorClass> {
    let response = conn.send(&ctx.target, request).await.map_err(|e| match e {
        SendError::Connect(_) => ErrorClass::Connect,
        SendError::Http(_) => ErrorClass::Io,
    })?;
    let sent = sample.sent;
    sample.ttfb = Some(sent.elapsed());
    let status = response.status();
    let mut body = response.into_body();
    if !status.is_success() {
        // Drain the error body so the connection can be reused.
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|_| ErrorClass::Io)?;
            sample.n_bytes += frame.data_ref().map_or(0, |d| d.len() as u64);
        }
        return Err(match status.as_u16() {
            400..=499 => ErrorClass::Http4xx,
            500..=599 => ErrorClass::Http5xx,
            _ => ErrorClass::HttpOther,
        });
    }
    match mode {
        Mode::Blocking => {
            let bytes = body.collect().await.map_err(|_| ErrorClass::Io)?.to_bytes();
            sample.n_bytes = bytes.len() as u64;
            // Only `data.status` is read; the rest is validated, not kept.
            let reply: BlockingReply<'_> = serde_json::from_slice(&bytes).map_err(|_| ErrorClass::InvalidJson)?;
            match (reply.data, reply.answer) {
                (Some(data), _) if data.status == "succeeded" => Ok(Body::Ended),
                (Some(_), _) => Err(ErrorClass::WorkflowFailed),
                // A chat or completion app's blocking answer has no run status.
                (None, Some(_)) => Ok(Body::Ended),
                (None, None) => Err(ErrorClass::InvalidJson),
            }
        }
        Mode::Streaming => read_stream(ctx, &mut body, recorder, kind, sample).await,
    }
}

#[derive(serde::Deserialize)]
struct BlockingReply<'a> {
    /// A workflow run's summary.
    #[serde(borrow, default)]
    data: Option<BlockingData<'a>>,
    /// A chat or completion message's text.
    #[serde(default)]
    answer: Option<serde::de::IgnoredAny>,
}

#[derive(serde::Deserialize)]
struct BlockingData<'a> {
    #[serde(borrow)]
    status: std::borrow::Cow<'a, str>,
}

/// What a stream's events said.
#[derive(Default)]
struct StreamState {
    n_events: u64,
    last_event: Option<Instant>,
    finished: Option<Result<(), ErrorClass>>,
    invalid: bool,
    /// `--stamped`, and a text chunk carried no stamp.
    unstamped: bool,
    text_chunks: u32,
}

async fn read_stream(
    ctx: &Ctx,
    body: &mut hyper::body::Incoming,
    recorder: &mut Pending,
    kind: Kind,
    sample: &mut Sample,
) -> Result<Body, ErrorClass> {
    let mut parser = SseParser::new();
    let mut state = StreamState::default();
    let mut left = false;
    let grammar = ctx.checks(Mode::Streaming);
    let Pending { gaps, lags, stamps, grammar: checker, trace, labels, frames, raw, raw_cut, events: reads } = recorder;
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|_| ErrorClass::EarlyTermination)?;
        let Ok(data) = frame.into_data() else { continue };
        let now = Instant::now();
        let now_unix_ns = if ctx.spec.stamped { mock::llm::unix_nanos() } else { 0 };
        sample.n_bytes += data.len() as u64;
        if grammar && ctx.examples_left.load(Ordering::Relaxed) > 0 {
            if raw.len() + data.len() <= MAX_RAW {
                raw.extend_from_slice(&data);
                frames.push((now - sample.sent, raw.len()));
            } else {
                *raw_cut = true;
            }
        }
        let since_intended = now - sample.intended;
        let before = state.n_events;
        parser.push_ref(&data, |event| {
            state.n_events += 1;
            if let Some(last) = state.last_event {
                let gap = now - last;
                gaps.push((gap, sample.intended));
                sample.max_gap = Some(sample.max_gap.map_or(gap, |g| g.max(gap)));
            }
            state.last_event = Some(now);
            if sample.ttfe.is_none() {
                sample.ttfe = Some(now - sample.sent);
            }
            let seen = match ctx.spec.protocol {
                // A ping that carries data is still no part of the run.
                Protocol::Dify if grammar && event.event != Some("ping") => checker.event(event.data, since_intended, trace, labels),
                Protocol::Dify => integrity::unchecked(event.data, kind),
                Protocol::OpenAi => chunk_name(event.data),
            };
            match seen {
                Seen::Text => {
                    state.text_chunks += 1;
                    if sample.first_text.is_none() {
                        sample.first_text = Some(now - sample.sent);
                    }
                    if ctx.spec.stamped {
                        let key = if ctx.spec.protocol == Protocol::Dify { TEXT_KEY } else { CONTENT_KEY };
                        match stamp_of(event.data, key) {
                            Some(emitted) => {
                                lags.push(now_unix_ns.saturating_sub(emitted));
                                stamps.push(emitted);
                            }
                            None => state.unstamped = true,
                        }
                    }
                }
                Seen::Terminal(ok) => {
                    state.finished = Some(if ok { Ok(()) } else { Err(ErrorClass::WorkflowFailed) });
                    sample.terminal.get_or_insert(now);
                }
                Seen::Other => {}
                Seen::Invalid => state.invalid = true,
            }
        });
        let new = state.n_events - before;
        if new > 0 {
            reads.push((now, new));
            ctx.live.events.fetch_add(new, Ordering::Relaxed);
        }
        if ctx.spec.abort_after_chunks.is_some_and(|n| state.text_chunks >= n) && state.finished.is_none() {
            // The caller resets the connection: the server sees the client leave.
            sample.n_events = state.n_events;
            return Err(ErrorClass::Aborted);
        }
        // After the terminal event: a body that ends with it (nearly always
        // in the same read) keeps its connection; one held open is left at
        // once or drained, as asked.
        if state.finished.is_some() && ctx.spec.after_terminal == AfterTerminal::Close {
            // Only what is ready now: a frame more after the terminal event
            // is taken, but nothing is waited for.
            left = loop {
                if hyper::body::Body::is_end_stream(&*body) {
                    break false;
                }
                match futures_util::FutureExt::now_or_never(body.frame()) {
                    Some(None) => break false,
                    Some(Some(Ok(frame))) => sample.n_bytes += frame.data_ref().map_or(0, |d| d.len() as u64),
                    None | Some(Some(Err(_))) => break true,
                }
            };
            break;
        }
    }
    // Measured only where every stream is read to its end: with `close`,
    // the tails of the streams left would be missing from the figure.
    if let Some(terminal) = sample.terminal
        && ctx.spec.after_terminal == AfterTerminal::Drain
    {
        sample.stream_tail = Some(Instant::now() - terminal);
    }
    sample.n_events = state.n_events;
    if state.invalid {
        return Err(ErrorClass::InvalidJson);
    }
    if state.unstamped {
        return Err(ErrorClass::Unstamped);
    }
    state.finished.unwrap_or(Err(ErrorClass::EarlyTermination)).map(|()| if left { Body::Left } else { Body::Ended })
}

/// Where a stamped chunk's text starts: Dify's `text_chunk` data, OpenAI's delta.
const TEXT_KEY: &str = r#""text":""#;
const CONTENT_KEY: &str = r#""content":""#;

/// The stamp (ns since the Unix epoch) at the start of the string after `key`.
fn stamp_of(data: &str, key: &str) -> Option<u64> {
    let text = &data[data.find(key)? + key.len()..];
    let digits = text.bytes().take_while(u8::is_ascii_digit).count();
    if digits == 0 || text.as_bytes().get(digits) != Some(&b' ') {
        return None;
    }
    text[..digits].parse().ok()
}

/// An OpenAI stream's event: a chunk with text (the direct path's
/// `text_chunk`), another chunk, or `[DONE]` (finished).
fn chunk_name(data: &str) -> Seen {
    if data == "[DONE]" {
        return Seen::Terminal(true);
    }
    let Ok(json) = serde_json::from_str::<Value>(data) else { return Seen::Invalid };
    let content = json.pointer("/choices/0/delta/content").and_then(Value::as_str);
    if content.is_some_and(|c| !c.is_empty()) { Seen::Text } else { Seen::Other }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_are_the_digits_before_a_space() {
        let dify = r#"{"event":"text_chunk","data":{"text":"1764300000123456789 ","from_variable_selector":["llm","text"]}}"#;
        assert_eq!(stamp_of(dify, TEXT_KEY), Some(1_764_300_000_123_456_789));
        let openai = r#"{"choices":[{"index":0,"delta":{"content":"42 "},"finish_reason":null}]}"#;
        assert_eq!(stamp_of(openai, CONTENT_KEY), Some(42));
        // Words, no space after the digits, or no key: no stamp.
        assert_eq!(stamp_of(r#"{"text":"tok1 "}"#, TEXT_KEY), None);
        assert_eq!(stamp_of(r#"{"text":"123"}"#, TEXT_KEY), None);
        assert_eq!(stamp_of(openai, TEXT_KEY), None);
    }

    #[test]
    fn openai_chunks_are_named() {
        assert_eq!(chunk_name("[DONE]"), Seen::Terminal(true));
        assert_eq!(chunk_name(r#"{"choices":[{"delta":{"content":"hi "}}]}"#), Seen::Text);
        assert_eq!(chunk_name(r#"{"choices":[{"delta":{"role":"assistant","content":""}}]}"#), Seen::Other);
        assert_eq!(chunk_name("{not json"), Seen::Invalid);
    }
}
