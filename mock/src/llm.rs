//! An OpenAI-compatible mock LLM with scripted timing and faults.
//!
//! `POST /v1/chat/completions` (streaming and not) and `GET /v1/models`,
//! driven by a `Script`: the reply (Dify's echo, a fixed text, or N tokens),
//! the time to first token, the delay after each token, seeded jitter, and a
//! fault (an HTTP status, a cut after k chunks, a malformed chunk, a stall).
//! The default script is Dify's own stress-test mock: a role chunk, one chunk
//! per word of "Mock response to: <last message, first 100 chars>..." with
//! 50 ms after each, a stop chunk, then `data: [DONE]`.
//!
//! Figures it keeps (`MockStats`): requests, streams started, completed and
//! cancelled by the client (the request closed before the stream ended),
//! live streams, content chunks sent (also as JSON at `GET /_mock/stats`);
//! plus the last requests it received.

use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use rand::{Rng, SeedableRng};
use serde::Deserialize;
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// Requests kept for inspection by tests.
const MAX_RECORDED_REQUESTS: usize = 64;

/// How the mock answers every chat completion.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Script {
    pub reply: Reply,
    /// Wait before the first content chunk (the role chunk goes out at once).
    #[serde(with = "humantime_serde")]
    pub time_to_first_token: Duration,
    /// Wait after each content chunk, the last one included (as Dify's mock).
    #[serde(with = "humantime_serde")]
    pub inter_token_delay: Duration,
    /// Each wait gets a uniform extra in `[0, jitter)`, from `seed`.
    #[serde(with = "humantime_serde")]
    pub jitter: Duration,
    pub seed: u64,
    /// Send a `usage` chunk before `[DONE]` when the request asks for it.
    pub usage: bool,
    /// Each content chunk's text is the time it was made, `"<ns since the
    /// Unix epoch> "`, so a client can measure emit → receipt per chunk
    /// (`flowbench run --stamped`). One machine's clock on both ends.
    pub stamp: bool,
    pub fault: Option<Fault>,
}

impl Default for Script {
    fn default() -> Self {
        Self {
            reply: Reply::Echo,
            time_to_first_token: Duration::ZERO,
            inter_token_delay: Duration::from_millis(50),
            jitter: Duration::ZERO,
            seed: 0,
            usage: false,
            stamp: false,
            fault: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Reply {
    /// Dify's mock: "Mock response to: <last message, first 100 chars>...", a chunk per word.
    Echo,
    /// This text, a chunk per word.
    Text(String),
    /// This many generated one-word tokens.
    Tokens(u32),
}

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// Answer with this HTTP status and an OpenAI error body.
    Status { status: u16 },
    /// Cut the connection after this many content chunks.
    AbortAfter { chunks: u32 },
    /// Send a chunk that is not JSON after this many content chunks.
    MalformedAfter { chunks: u32 },
    /// Go silent after this many content chunks until the client leaves.
    StallAfter { chunks: u32 },
}

impl Script {
    /// Reads a script from a TOML file.
    pub fn from_file(path: &std::path::Path) -> anyhow::Result<Self> {
        use anyhow::Context;
        let text = std::fs::read_to_string(path).with_context(|| format!("reading mock script {}", path.display()))?;
        toml::from_str(&text).with_context(|| format!("mock script {}", path.display()))
    }

    /// The content chunks this script sends for a conversation.
    pub fn words(&self, messages: &[Value]) -> Vec<String> {
        let text = match &self.reply {
            Reply::Echo => {
                let last = messages.last().and_then(|m| m.get("content")).and_then(Value::as_str);
                match last {
                    Some(last) => format!("Mock response to: {}...", last.chars().take(100).collect::<String>()),
                    None => "This is a mock response from the OpenAI server.".to_owned(),
                }
            }
            Reply::Text(text) => text.clone(),
            Reply::Tokens(n) => return (0..*n).map(|i| format!("tok{i} ")).collect(),
        };
        text.split_whitespace().map(|w| format!("{w} ")).collect()
    }
}

/// Counters of what the mock did.
#[derive(Debug, Default)]
pub struct MockStats {
    pub requests: AtomicU64,
    pub streams_started: AtomicU64,
    pub streams_completed: AtomicU64,
    /// Streams whose client closed the request before the stream ended.
    pub streams_cancelled: AtomicU64,
    pub chunks_sent: AtomicU64,
}

/// `MockStats` read at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct MockStatsSnapshot {
    pub requests: u64,
    pub streams_started: u64,
    pub streams_completed: u64,
    pub streams_cancelled: u64,
    pub live_streams: u64,
    pub chunks_sent: u64,
}

impl MockStats {
    pub fn snapshot(&self) -> MockStatsSnapshot {
        MockStatsSnapshot {
            requests: self.requests.load(Ordering::SeqCst),
            streams_started: self.streams_started.load(Ordering::SeqCst),
            streams_completed: self.streams_completed.load(Ordering::SeqCst),
            streams_cancelled: self.streams_cancelled.load(Ordering::SeqCst),
            live_streams: self.live_streams(),
            chunks_sent: self.chunks_sent.load(Ordering::SeqCst),
        }
    }

    pub fn live_streams(&self) -> u64 {
        let started = self.streams_started.load(Ordering::SeqCst);
        let ended = self.streams_completed.load(Ordering::SeqCst) + self.streams_cancelled.load(Ordering::SeqCst);
        started.saturating_sub(ended)
    }
}

/// A request as the mock received it.
#[derive(Debug, Clone)]
pub struct RecordedRequest {
    pub authorization: Option<String>,
    pub body: Value,
}

struct MockState {
    script: Script,
    stats: MockStats,
    recorded: Mutex<Vec<RecordedRequest>>,
}

/// A running mock on a loopback port; stops when `shutdown` is called or it is dropped.
pub struct MockLlm {
    addr: SocketAddr,
    state: Arc<MockState>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl MockLlm {
    /// Starts the mock on `addr` (use port 0 for an ephemeral port).
    pub async fn start(script: Script, addr: SocketAddr) -> anyhow::Result<Self> {
        use anyhow::Context;
        let listener = crate::listen(addr).with_context(|| format!("binding the mock LLM to {addr}"))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(MockState { script, stats: MockStats::default(), recorded: Mutex::default() });
        let router = router(state.clone());
        let stop = CancellationToken::new();
        let stopped = stop.clone();
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let task = tokio::spawn(async move {
            let served = axum::serve(listener, router).with_graceful_shutdown(stopped.cancelled_owned()).await;
            if let Err(e) = served {
                tracing::error!("mock LLM stopped: {e}");
            }
        });
        Ok(Self { addr, state, stop, task })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The OpenAI base URL, e.g. `http://127.0.0.1:PORT/v1`.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn stats(&self) -> &MockStats {
        &self.state.stats
    }

    /// The last requests received, oldest first.
    pub fn requests(&self) -> Vec<RecordedRequest> {
        self.state.recorded.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Stops accepting, ends open streams, and waits for the server task.
    pub async fn shutdown(self) {
        self.stop.cancel();
        self.task.abort();
        let _ = self.task.await;
    }
}

fn router(state: Arc<MockState>) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/models", get(models))
        .route("/_mock/stats", get(stats))
        .route("/metrics", get(metrics))
        .with_state(state)
}

/// `GET /metrics`: the counters and the process's CPU and memory in the
/// Prometheus text format. Made from a snapshot at each scrape, so the
/// streams pay nothing for it.
async fn metrics(State(state): State<Arc<MockState>>) -> Response {
    use prometheus::{Encoder, IntCounter, IntGauge, Registry, TextEncoder};
    let s = state.stats.snapshot();
    let registry = Registry::new();
    let counters = [
        ("flowbench_mock_requests_total", "Chat completion requests received.", s.requests),
        ("flowbench_mock_streams_started_total", "Completion streams begun.", s.streams_started),
        ("flowbench_mock_streams_completed_total", "Completion streams that ended with [DONE] or a scripted fault.", s.streams_completed),
        ("flowbench_mock_streams_cancelled_total", "Streams whose client closed the request before the stream ended.", s.streams_cancelled),
        ("flowbench_mock_chunks_sent_total", "Content chunks written.", s.chunks_sent),
    ];
    for (name, help, value) in counters {
        let counter = IntCounter::new(name, help).expect("valid counter");
        counter.inc_by(value);
        registry.register(Box::new(counter)).expect("registered once");
    }
    let live = IntGauge::new("flowbench_mock_live_streams", "Streams begun and not yet ended.").expect("valid gauge");
    live.set(i64::try_from(s.live_streams).unwrap_or(i64::MAX));
    registry.register(Box::new(live)).expect("registered once");
    #[cfg(target_os = "linux")]
    registry.register(Box::new(procmetrics::ProcessMetrics::new())).expect("registered once");
    let mut out = Vec::new();
    if let Err(e) = TextEncoder::new().encode(&registry.gather(), &mut out) {
        return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response();
    }
    ([(http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}

/// `GET /_mock/stats`: the counters, for checks from outside the process
/// (e.g. that every stream a driver abandoned was cancelled).
async fn stats(State(state): State<Arc<MockState>>) -> Response {
    axum::Json(state.stats.snapshot()).into_response()
}

async fn models() -> Response {
    let body = json!({"object": "list", "data": [
        {"id": "gpt-4o", "object": "model", "created": 1715367049, "owned_by": "system"},
        {"id": "gpt-3.5-turbo", "object": "model", "created": 1677649963, "owned_by": "openai"},
    ]});
    axum::Json(body).into_response()
}

async fn chat_completions(State(state): State<Arc<MockState>>, headers: HeaderMap, body: Bytes) -> Response {
    let n_request = state.stats.requests.fetch_add(1, Ordering::SeqCst);
    let request: Value = match serde_json::from_slice(&body) {
        Ok(v @ Value::Object(_)) => v,
        _ => return openai_error(StatusCode::BAD_REQUEST, "request body is not a JSON object"),
    };
    {
        let mut recorded = state.recorded.lock().unwrap_or_else(|e| e.into_inner());
        if recorded.len() == MAX_RECORDED_REQUESTS {
            recorded.remove(0);
        }
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).map(str::to_owned);
        recorded.push(RecordedRequest { authorization, body: request.clone() });
    }
    let script = &state.script;
    if let Some(Fault::Status { status }) = script.fault {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return openai_error(status, "scripted fault");
    }
    let model = request.get("model").and_then(Value::as_str).unwrap_or("gpt-3.5-turbo").to_owned();
    let messages = request.get("messages").and_then(Value::as_array).cloned().unwrap_or_default();
    let words = script.words(&messages);
    let stream = request.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if !stream {
        let text: String = words.concat();
        let body = json!({
            "id": "chatcmpl-mock", "object": "chat.completion", "created": unix_now(), "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": text.trim_end()}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": prompt_tokens(&messages), "completion_tokens": words.len(), "total_tokens": prompt_tokens(&messages) + words.len()},
        });
        return axum::Json(body).into_response();
    }
    let include_usage = script.usage && request.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let plan = StreamPlan::new(script, &model, words, include_usage.then(|| prompt_tokens(&messages)), n_request);
    state.stats.streams_started.fetch_add(1, Ordering::SeqCst);
    let guard = StreamGuard { state: state.clone(), completed: false };
    let stream = futures_util::stream::unfold((plan, guard), |(mut plan, mut guard)| async move {
        match plan.next().await {
            ScriptStep::Bytes(bytes, is_content) => {
                if is_content {
                    guard.state.stats.chunks_sent.fetch_add(1, Ordering::Relaxed);
                }
                Some((Ok::<Bytes, std::io::Error>(bytes), (plan, guard)))
            }
            ScriptStep::Abort => {
                guard.completed = true;
                Some((Err(std::io::Error::other("scripted abort")), (plan, guard)))
            }
            ScriptStep::End => {
                guard.finish();
                None
            }
        }
    });
    let mut response = Response::new(Body::from_stream(stream));
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    response
}

/// Counts a stream as completed or cancelled when its body is dropped.
struct StreamGuard {
    state: Arc<MockState>,
    completed: bool,
}

impl StreamGuard {
    /// Ends the stream as completed (the guard's drop counts it).
    fn finish(mut self) {
        self.completed = true;
    }
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let stats = &self.state.stats;
        if self.completed {
            stats.streams_completed.fetch_add(1, Ordering::SeqCst);
        } else {
            stats.streams_cancelled.fetch_add(1, Ordering::SeqCst);
        }
    }
}

enum ScriptStep {
    Bytes(Bytes, bool),
    Abort,
    End,
}

/// The frames of one stream, produced one at a time with their waits.
struct StreamPlan {
    /// `{"id":…,"object":…,"created":…,"model":…` shared by every chunk.
    head: String,
    words: std::vec::IntoIter<String>,
    n_sent: u32,
    stage: ReplyStage,
    ttft: Duration,
    delay: Duration,
    jitter: Duration,
    rng: rand::rngs::SmallRng,
    fault: Option<Fault>,
    usage: Option<(usize, usize)>,
    stamp: bool,
}

#[derive(PartialEq)]
enum ReplyStage {
    Role,
    Content,
    Usage,
    Done,
    Finished,
}

impl StreamPlan {
    fn new(script: &Script, model: &str, words: Vec<String>, prompt_tokens: Option<usize>, n_request: u64) -> Self {
        let head = format!(
            r#"{{"id":"chatcmpl-{n_request:08x}","object":"chat.completion.chunk","created":{},"model":{}"#,
            unix_now(),
            Value::String(model.to_owned())
        );
        let n_words = words.len();
        Self {
            head,
            words: words.into_iter(),
            n_sent: 0,
            stage: ReplyStage::Role,
            ttft: script.time_to_first_token,
            delay: script.inter_token_delay,
            jitter: script.jitter,
            rng: rand::rngs::SmallRng::seed_from_u64(script.seed ^ n_request.wrapping_mul(0x9E37_79B9_7F4A_7C15)),
            fault: script.fault.clone(),
            usage: prompt_tokens.map(|p| (p, n_words)),
            stamp: script.stamp,
        }
    }

    async fn wait(&mut self, base: Duration) {
        let extra = if self.jitter.is_zero() { Duration::ZERO } else { self.jitter.mul_f64(self.rng.random::<f64>()) };
        let total = base + extra;
        if !total.is_zero() {
            tokio::time::sleep(total).await;
        }
    }

    fn frame(&self, choice: &str) -> Bytes {
        Bytes::from(format!("data: {},\"choices\":[{choice}]}}\n\n", self.head))
    }

    /// The next frame. A body is polled for its next frame as soon as the
    /// previous one is written, so waiting here is waiting after that frame:
    /// the time to first token before the first word, the inter-token delay
    /// after each word (the last one included, as Dify's mock sleeps).
    async fn next(&mut self) -> ScriptStep {
        match self.stage {
            ReplyStage::Role => {
                self.stage = ReplyStage::Content;
                ScriptStep::Bytes(self.frame(r#"{"index":0,"delta":{"role":"assistant","content":""},"finish_reason":null}"#), false)
            }
            ReplyStage::Content => {
                match self.fault {
                    Some(Fault::AbortAfter { chunks }) if chunks == self.n_sent => {
                        return ScriptStep::Abort;
                    }
                    Some(Fault::MalformedAfter { chunks }) if chunks == self.n_sent => {
                        self.stage = ReplyStage::Finished;
                        return ScriptStep::Bytes(Bytes::from_static(b"data: {\"choices\": [{\"delta\": {\"content\": \"oops\n\n"), false);
                    }
                    Some(Fault::StallAfter { chunks }) if chunks == self.n_sent => std::future::pending::<()>().await,
                    _ => {}
                }
                let wait = if self.n_sent == 0 { self.ttft } else { self.delay };
                let word = self.words.next();
                if word.is_some() || self.n_sent > 0 {
                    self.wait(wait).await;
                }
                let Some(word) = word else {
                    self.stage = if self.usage.is_some() { ReplyStage::Usage } else { ReplyStage::Done };
                    return ScriptStep::Bytes(self.frame(r#"{"index":0,"delta":{},"finish_reason":"stop"}"#), false);
                };
                self.n_sent += 1;
                let word = if self.stamp { format!("{} ", unix_nanos()) } else { word };
                let choice = format!(r#"{{"index":0,"delta":{{"content":{}}},"finish_reason":null}}"#, Value::String(word));
                ScriptStep::Bytes(self.frame(&choice), true)
            }
            ReplyStage::Usage => {
                self.stage = ReplyStage::Done;
                let (prompt, completion) = self.usage.unwrap_or_default();
                let total = prompt + completion;
                ScriptStep::Bytes(
                    Bytes::from(format!(
                        "data: {},\"choices\":[],\"usage\":{{\"prompt_tokens\":{prompt},\"completion_tokens\":{completion},\"total_tokens\":{total}}}}}\n\n",
                        self.head
                    )),
                    false,
                )
            }
            ReplyStage::Done => {
                self.stage = ReplyStage::Finished;
                ScriptStep::Bytes(Bytes::from_static(b"data: [DONE]\n\n"), false)
            }
            ReplyStage::Finished => ScriptStep::End,
        }
    }
}

fn openai_error(status: StatusCode, message: &str) -> Response {
    let body = json!({"error": {"message": message, "type": "mock_error", "param": null, "code": status.as_u16()}});
    (status, axum::Json(body)).into_response()
}

fn prompt_tokens(messages: &[Value]) -> usize {
    messages.iter().filter_map(|m| m.get("content").and_then(Value::as_str)).map(|c| c.split_whitespace().count()).sum()
}

/// Now, in ns since the Unix epoch (a chunk's stamp).
pub fn unix_nanos() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos() as u64)
}

fn unix_now() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs())
}
