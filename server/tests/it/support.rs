//! Test support: a stack on ephemeral loopback ports and a small HTTP client
//! that reads whole bodies or SSE streams, with headers and reason phrases.

use bytes::Bytes;
use http::{HeaderMap, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use mock::fixtures::APPS;
use mock::{MockLlm, Script};
use serde_json::Value;
use server::sse::{SseEvent, SseParser};

pub async fn spawn_stack() -> TestStack {
    spawn_stack_with(TestStackOptions { script: fast_script(), ..TestStackOptions::default() }).await
}

/// How a test's stack differs from the default.
#[derive(Debug, Clone, Default)]
pub struct TestStackOptions {
    pub script: Script,
    pub limits: server::Limits,
    /// Per-app cap on concurrent runs (429 above).
    pub max_concurrent_runs: Option<usize>,
    pub busy_poll: bool,
}

/// The mock LLM and the server with the fixture apps, on ephemeral ports.
pub struct TestStack {
    pub mock: MockLlm,
    pub server: server::Running,
}

impl TestStack {
    /// The API key of fixture app `name` (`empty` or `llm`).
    pub fn api_key(&self, name: &str) -> &'static str {
        APPS.iter().find(|app| app.name == name).map(|app| app.api_key).expect("a fixture app")
    }

    pub async fn shutdown(self) -> std::io::Result<()> {
        self.server.shutdown().await?;
        self.mock.shutdown().await;
        Ok(())
    }
}

pub async fn spawn_stack_with(options: TestStackOptions) -> TestStack {
    let mock = MockLlm::start(options.script, "127.0.0.1:0".parse().unwrap()).await.expect("mock starts");
    let mut config = server::Config { limits: options.limits, busy_poll: options.busy_poll, ..server::Config::default() };
    config.listen = "127.0.0.1:0".parse().unwrap();
    config.provider.base_url = mock.base_url();
    config.apps = APPS
        .iter()
        .map(|app| server::AppConfig {
            api_key: app.api_key.into(),
            workflow: mock::workspace_root().join(app.workflow),
            max_concurrent_runs: options.max_concurrent_runs,
        })
        .collect();
    let server = server::Running::start(&config).expect("server starts");
    TestStack { mock, server }
}

/// Dify's mock reply with 1 ms between tokens, so tests do not wait 50 ms a word.
pub fn fast_script() -> Script {
    Script { inter_token_delay: std::time::Duration::from_millis(1), ..Script::default() }
}

/// A whole response.
#[derive(Debug)]
pub struct WholeReply {
    pub status: StatusCode,
    /// The reason phrase when it is not the canonical one (e.g. `BAD REQUEST`).
    pub reason: Option<String>,
    pub headers: HeaderMap,
    pub body: Bytes,
}

impl WholeReply {
    pub fn text(&self) -> &str {
        std::str::from_utf8(&self.body).expect("UTF-8 body")
    }

    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("body is not JSON ({e}): {}", self.text()))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().expect("ASCII header"))
    }

    /// The SSE events of a streamed body.
    pub fn events(&self) -> Vec<SseEvent> {
        let mut parser = SseParser::new();
        let mut events = Vec::new();
        parser.push(&self.body, |e| events.push(e));
        assert!(!parser.has_partial_frame(), "stream ends mid-frame: {}", self.text());
        events
    }

    /// The `event` field of each data event's JSON.
    pub fn event_names(&self) -> Vec<String> {
        self.events().iter().map(|e| serde_json::from_str::<Value>(&e.data).unwrap()["event"].as_str().unwrap().to_owned()).collect()
    }
}

#[derive(Clone)]
pub struct TestClient {
    client: Client<HttpConnector, Full<Bytes>>,
    base: String,
}

impl TestClient {
    pub fn new(base: &str) -> Self {
        Self { client: Client::builder(TokioExecutor::new()).build_http(), base: base.to_owned() }
    }

    pub fn for_stack(stack: &TestStack) -> Self {
        Self::new(&stack.server.url)
    }

    /// Sends a request; `headers` are `(name, value)` pairs.
    pub async fn send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> WholeReply {
        self.try_send(method, path, headers, body).await.unwrap_or_else(|e| panic!("{e}"))
    }

    /// `send`, but a request the server does not answer (connection closed,
    /// body cut) is an `Err` naming what failed instead of a panic.
    pub async fn try_send(&self, method: &str, path: &str, headers: &[(&str, &str)], body: impl Into<Bytes>) -> Result<WholeReply, String> {
        let mut request = Request::builder().method(method).uri(format!("{}{path}", self.base));
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let request = request.body(Full::new(body.into())).map_err(|e| format!("request cannot be built: {e}"))?;
        let response = self.client.request(request).await.map_err(|e| format!("request is not answered: {e:?}"))?;
        let reason = response.extensions().get::<hyper::ext::ReasonPhrase>().map(|r| String::from_utf8_lossy(r.as_bytes()).into_owned());
        let (parts, body) = response.into_parts();
        let body = body.collect().await.map_err(|e| format!("body does not read to the end: {e:?}"))?.to_bytes();
        Ok(WholeReply { status: parts.status, reason, headers: parts.headers, body })
    }

    /// `POST /v1/workflows/run` with a JSON body and an API key.
    pub async fn run(&self, api_key: &str, body: &Value) -> WholeReply {
        let auth = format!("Bearer {api_key}");
        self.send("POST", "/v1/workflows/run", &[("authorization", &auth), ("content-type", "application/json")], body.to_string()).await
    }

    /// Starts a streaming run and returns the response with its body unread.
    pub async fn open_stream(&self, api_key: &str, body: &Value) -> hyper::Response<hyper::body::Incoming> {
        let request = Request::post(format!("{}/v1/workflows/run", self.base))
            .header("authorization", format!("Bearer {api_key}"))
            .header("content-type", "application/json")
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap();
        self.client.request(request).await.expect("request is answered")
    }
}

/// Reads a streaming body until `pred` holds for a received event.
pub async fn read_until(body: &mut hyper::body::Incoming, parser: &mut SseParser, mut pred: impl FnMut(&Value) -> bool) -> Vec<Value> {
    let mut seen = Vec::new();
    loop {
        let frame = body.frame().await.expect("stream still open").expect("frame reads");
        let mut hit = false;
        if let Ok(data) = frame.into_data() {
            parser.push(&data, |e| {
                let v: Value = serde_json::from_str(&e.data).unwrap();
                hit |= pred(&v);
                seen.push(v);
            });
        }
        if hit {
            return seen;
        }
    }
}

/// Polls `cond` until it holds; panics after `limit` (a liveness bound, not a timing assert).
pub async fn eventually(what: &str, limit: std::time::Duration, mut cond: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !cond() {
        assert!(tokio::time::Instant::now() < deadline, "{what} did not happen within {limit:?}");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
}

/// A server alone (no mock) with this config, on an ephemeral port.
pub fn spawn_server(mut config: server::Config) -> server::Running {
    config.listen = "127.0.0.1:0".parse().unwrap();
    server::Running::start(&config).expect("server starts")
}

/// The fixture LLM app under `app-llm`, calling `base_url`.
pub fn llm_config(base_url: &str) -> server::Config {
    let mut config = server::Config::default();
    config.provider.base_url = base_url.to_owned();
    config.provider.api_key = "sk-test".to_owned();
    config.apps.push(server::AppConfig {
        api_key: "app-llm".into(),
        workflow: mock::workspace_root().join("fixtures/workflows/start_llm_end.yml"),
        max_concurrent_runs: None,
    });
    config
}

/// A client that sends a streaming run of the `llm` app and never reads the
/// answer: its connection, the request written whole.
pub async fn open_unread_stream(stack: &TestStack) -> tokio::net::TcpStream {
    let body = serde_json::json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "u"}).to_string();
    let request = format!(
        "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
        stack.api_key("llm"),
        body.len()
    );
    let mut stalled = tokio::net::TcpStream::connect(stack.server.url.trim_start_matches("http://")).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut stalled, request.as_bytes()).await.unwrap();
    stalled
}

/// Descriptors `pid` holds open, from /proc.
pub fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map(|d| d.count()).unwrap_or(0)
}

/// Resident memory of `pid` in KiB, from /proc (0 when it is gone).
pub fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status.lines().find_map(|l| l.strip_prefix("VmRSS:")).and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok()).unwrap_or(0)
}
