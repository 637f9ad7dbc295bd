//! Shared setup for flowbench's criterion benchmarks. Everything here runs
//! outside the timed loops: runtimes, stacks, connections.
//!
//! - `runtime()`: the runtime every bench uses (2 worker threads, the
//!   server's default on a 2-core machine), so ratios between benches
//!   compare like with like.
//! - `ControlledUpstream`: an OpenAI-compatible upstream whose stream the
//!   bench feeds one chunk at a time, to time a single chunk's relay.
//! - `Client`: one keep-alive HTTP/1.1 connection (the load driver's).

use bytes::Bytes;
use flowbench::load::client::{Conn, Target, bearer};
use http::HeaderValue;
use http_body_util::BodyExt;
use hyper::body::Incoming;
use server::sse::SseParser;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

pub fn runtime() -> tokio::runtime::Runtime {
    let _ = server::http::conn::raise_open_file_limit();
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("tokio runtime")
}

/// A keep-alive connection to one server, with an API key.
pub struct Client {
    pub target: Target,
    pub conn: Conn,
    pub key: HeaderValue,
}

impl Client {
    pub async fn new(url: &str, api_key: &str) -> Self {
        Self { target: Target::resolve(url).await.expect("target"), conn: Conn::new(), key: bearer(api_key).expect("key") }
    }

    /// Posts a workflow run and returns the response, body unread.
    pub async fn run(&mut self, body: Bytes) -> hyper::Response<Incoming> {
        let request = self.target.run_request(&self.key, body);
        self.conn.send(&self.target, request).await.expect("request is answered")
    }

    /// Posts a workflow run and reads the whole body.
    pub async fn run_to_end(&mut self, body: Bytes) -> Bytes {
        let response = self.run(body).await;
        assert!(response.status().is_success(), "status {}", response.status());
        response.into_body().collect().await.expect("body").to_bytes()
    }
}

/// A request body for the fixture apps.
pub fn run_body(question: &str, mode: &str) -> Bytes {
    Bytes::from(serde_json::json!({"inputs": {"question": question}, "response_mode": mode, "user": "bench"}).to_string())
}

/// Reads `body` until `n` more SSE events whose data satisfies `pred` arrive.
pub async fn read_events(body: &mut Incoming, parser: &mut SseParser, mut n: usize, pred: impl Fn(&str) -> bool) -> usize {
    let mut total = 0;
    while n > 0 {
        let Some(frame) = body.frame().await else { break };
        let Ok(data) = frame.expect("frame").into_data() else { continue };
        parser.push_ref(&data, |e| {
            total += 1;
            if pred(e.data) {
                n = n.saturating_sub(1);
            }
        });
    }
    total
}

/// An upstream whose next stream is fed by the bench, chunk by chunk.
pub struct ControlledUpstream {
    pub base_url: String,
    pending: Arc<Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>>,
}

impl ControlledUpstream {
    pub async fn start() -> Self {
        let pending: Arc<Mutex<Option<mpsc::UnboundedReceiver<Bytes>>>> = Arc::default();
        let taken = pending.clone();
        let router = axum::Router::new().route(
            "/v1/chat/completions",
            axum::routing::post(move || {
                let taken = taken.clone();
                async move {
                    let rx = taken.lock().unwrap().take().expect("a stream was prepared");
                    let stream =
                        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|b| (Ok::<_, std::io::Error>(b), rx)) });
                    let mut response = axum::response::Response::new(axum::body::Body::from_stream(stream));
                    response.headers_mut().insert(http::header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
                    response
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let base_url = format!("http://{}/v1", listener.local_addr().expect("addr"));
        let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
            let _ = tcp.set_nodelay(true);
        });
        tokio::spawn(async move { axum::serve(listener, router).await });
        Self { base_url, pending }
    }

    /// Prepares the next stream; the returned sender feeds it.
    pub fn prepare(&self) -> mpsc::UnboundedSender<Bytes> {
        let (tx, rx) = mpsc::unbounded_channel();
        *self.pending.lock().unwrap() = Some(rx);
        tx
    }
}

/// One OpenAI `chat.completion.chunk` frame carrying `content`.
pub fn delta_frame(content: &str) -> Bytes {
    Bytes::from(format!(
        "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":{}}},\"finish_reason\":null}}]}}\n\n",
        serde_json::Value::from(content)
    ))
}

/// The fixture LLM app served by a server whose provider is `base_url`.
pub fn llm_server(base_url: &str) -> server::Running {
    let mut config = server::Config::default();
    config.provider.base_url = base_url.to_owned();
    config.apps.push(server::AppConfig {
        api_key: "app-bench-llm".into(),
        workflow: mock::workspace_root().join("fixtures/workflows/start_llm_end.yml"),
        max_concurrent_runs: None,
    });
    config.listen = "127.0.0.1:0".parse().expect("address");
    server::Running::start(&config).expect("server starts")
}
