//! The driver on real sockets: exact counts, error classes by fault, the
//! connection gauge, and first-token times never below a known delay.

use flowbench::load::client::Protocol;
use flowbench::load::client::{Target, bearer};
use flowbench::load::driver::{self, App, Live, Mode, RunResult, RunSpec};
use flowbench::load::inputs::{InputOrder, InputSet, Row};
use flowbench::load::metrics::{ErrorClass, Metric, summary_of};
use flowbench::load::schedule::LoadModel;
use flowbench::report::integrity::Step;
use flowbench::{InProcessStack, StackOptions};
use mock::{Fault, Reply, Script};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

async fn stack(script: Script) -> InProcessStack {
    InProcessStack::start(StackOptions { script, ..StackOptions::default() }).await.unwrap()
}

pub fn spec(api_key: &str, mode: Mode, load: LoadModel, duration: Duration) -> RunSpec {
    RunSpec {
        apps: vec![App::single(mode, bearer(api_key).unwrap(), None)],
        load,
        warmup: Duration::ZERO,
        duration,
        timeout: Duration::from_secs(30),
        seed: 1,
        protocol: Protocol::Dify,
        stamped: false,
        abort_after_chunks: None,
        after_terminal: Default::default(),
        arrival_phase: 0.0,
        integrity: true,
        request_slo: None,
        trace_sample: Some(0.0),
    }
}

async fn drive(url: &str, spec: RunSpec) -> RunResult {
    let target = Target::resolve(url).await.unwrap();
    driver::run(spec, target, Arc::new(Live::default()), CancellationToken::new()).await
}

fn open(rate: f64, connections: u32) -> LoadModel {
    LoadModel::Open { rate, poisson: false, connections, seed: 1 }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact() {
    let script = Script { reply: Reply::Tokens(5), inter_token_delay: Duration::from_millis(1), ..Script::default() };
    let stack = stack(script).await;
    // An open schedule sends exactly rate × duration requests.
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, open(100.0, 16), Duration::from_secs(1))).await;
    let r = &result.recorder;
    assert_eq!(r.n_sent, 100);
    assert_eq!(r.n_ok + r.n_errors() + r.n_warmup, r.n_sent, "every request has one outcome");
    assert_eq!(r.n_ok, 100, "errors: {:?}", r.errors);
    // workflow_started, node_started/finished × 3, workflow_finished, and the 5 tokens.
    assert_eq!(r.n_events, 100 * (8 + 5));
    assert_eq!(stack.mock.stats().requests.load(Ordering::SeqCst), 100);
    assert_eq!(stack.mock.stats().chunks_sent.load(Ordering::SeqCst), 500);
    assert_eq!(r.histogram(Metric::Ttfe).len(), 100);
    assert_eq!(r.histogram(Metric::FirstTextChunk).len(), 100);
    let blocking =
        drive(&stack.info.server_url, spec(stack.api_key("empty"), Mode::Blocking, open(200.0, 4), Duration::from_secs(1))).await;
    assert_eq!((blocking.recorder.n_sent, blocking.recorder.n_ok), (200, 200));
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gauge_peak_equals_the_users() {
    let script = Script { reply: Reply::Tokens(20), inter_token_delay: Duration::from_millis(5), ..Script::default() };
    let stack = stack(script).await;
    let load = LoadModel::Closed { users: 8, spawn_rate: 100.0 };
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, load, Duration::from_secs(1))).await;
    assert_eq!(result.peak_connections, 8);
    assert!(result.avg_connections > 0.0 && result.avg_connections <= 8.0, "{}", result.avg_connections);
    assert_eq!(result.recorder.n_errors(), 0, "{:?}", result.recorder.errors);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_token_is_never_measured_below_the_mock_delay() {
    let delay = Duration::from_millis(80);
    let script = Script { reply: Reply::Tokens(2), time_to_first_token: delay, inter_token_delay: Duration::ZERO, ..Script::default() };
    let stack = stack(script).await;
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, open(50.0, 32), Duration::from_secs(1))).await;
    let first = summary_of(result.recorder.histogram(Metric::FirstTextChunk));
    assert_eq!(first.n, 50);
    // A lower bound only: the error above it depends on the machine.
    assert!(first.min >= delay.as_secs_f64() * 1000.0, "min {} ms", first.min);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_classes_by_fault() {
    // The LLM upstream fails: the workflow finishes `failed`.
    let stack = stack(Script { fault: Some(Fault::Status { status: 500 }), ..Script::default() }).await;
    let url = stack.info.server_url.clone();
    let failed = drive(&url, spec(stack.api_key("llm"), Mode::Streaming, open(20.0, 4), Duration::from_secs(1))).await;
    assert_eq!(failed.recorder.errors.get(&ErrorClass::WorkflowFailed), Some(&20));
    // Inputs the app rejects: 400.
    let mut bad = spec(stack.api_key("empty"), Mode::Blocking, open(20.0, 4), Duration::from_secs(1));
    bad.apps[0].inputs = InputSet::new(&[Row::inputs(json!({}))], InputOrder::RoundRobin);
    let rejected = drive(&url, bad).await;
    assert_eq!(rejected.recorder.errors.get(&ErrorClass::Http4xx), Some(&20));
    // A wrong key: 401.
    let unauthorized = drive(&url, spec("app-wrong", Mode::Blocking, open(10.0, 2), Duration::from_secs(1))).await;
    assert_eq!(unauthorized.recorder.errors.get(&ErrorClass::Http4xx), Some(&10));
    stack.shutdown().await.unwrap();
    // Nothing listens any more: connect errors, each request still counted.
    let down = drive(&url, spec("app-x", Mode::Blocking, open(10.0, 2), Duration::from_secs(1))).await;
    assert_eq!(down.recorder.n_sent, 10);
    assert_eq!(down.recorder.errors.get(&ErrorClass::Connect), Some(&10));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_cut_before_workflow_finished_is_an_early_termination() {
    // A server that answers 200 with one event, then closes.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let server = tokio::spawn(async move {
        loop {
            let (mut socket, _) = listener.accept().await.unwrap();
            tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let mut buf = vec![0u8; 4096];
                let _ = socket.read(&mut buf).await;
                let event = "data: {\"event\":\"workflow_started\",\"workflow_run_id\":\"r\",\"task_id\":\"t\",\"data\":{}}\n\n";
                let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n";
                let _ = socket.write_all(format!("{head}event: ping\n\n{event}").as_bytes()).await;
            });
        }
    });
    let result = drive(&url, spec("app-x", Mode::Streaming, open(10.0, 2), Duration::from_secs(1))).await;
    assert_eq!(result.recorder.errors.get(&ErrorClass::EarlyTermination), Some(&10));
    assert_eq!(result.recorder.n_events, 10, "the ping is not an event");
    server.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_ends_the_run_and_counts_in_flight_requests() {
    let stack = stack(Script { fault: Some(Fault::StallAfter { chunks: 1 }), ..Script::default() }).await;
    let target = Target::resolve(&stack.info.server_url).await.unwrap();
    let cancel = CancellationToken::new();
    let live = Arc::new(Live::default());
    let spec = spec(stack.api_key("llm"), Mode::Streaming, LoadModel::Closed { users: 4, spawn_rate: 100.0 }, Duration::from_secs(60));
    let run = tokio::spawn(driver::run(spec, target, live.clone(), cancel.clone()));
    while live.sent.load(Ordering::SeqCst) < 4 {
        tokio::task::yield_now().await;
    }
    cancel.cancel();
    let result = run.await.unwrap();
    assert!(result.interrupted);
    assert_eq!(result.recorder.n_sent, 4);
    assert_eq!(result.recorder.errors.get(&ErrorClass::Interrupted), Some(&4));
    stack.shutdown().await.unwrap();
}

/// A TCP proxy to `upstream` that holds every chunk from the upstream for
/// `delay` before passing it on: a known delay on the wire.
async fn delaying_proxy(upstream: std::net::SocketAddr, delay: Duration) -> (std::net::SocketAddr, tokio::task::JoinHandle<()>) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let task = tokio::spawn(async move {
        while let Ok((client, _)) = listener.accept().await {
            tokio::spawn(async move {
                let Ok(server) = tokio::net::TcpStream::connect(upstream).await else { return };
                let (mut client_read, mut client_write) = client.into_split();
                let (mut server_read, mut server_write) = server.into_split();
                tokio::spawn(async move { tokio::io::copy(&mut client_read, &mut server_write).await });
                let mut buf = vec![0u8; 64 * 1024];
                while let Ok(n @ 1..) = server_read.read(&mut buf).await {
                    tokio::time::sleep(delay).await;
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    (addr, task)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn direct_path_speaks_openai_and_stamps_measure_a_known_delay() {
    // Chunks 60 ms apart, so a 30 ms hold per read never queues behind the last one.
    let script = Script { reply: Reply::Tokens(5), inter_token_delay: Duration::from_millis(60), stamp: true, ..Script::default() };
    let mock = mock::MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let stamped =
        |load| RunSpec { protocol: Protocol::OpenAi, stamped: true, ..spec("sk-x", Mode::Streaming, load, Duration::from_secs(1)) };
    let direct = drive(&mock.base_url(), stamped(open(4.0, 4))).await;
    let r = &direct.recorder;
    assert_eq!((r.n_sent, r.n_ok), (4, 4), "errors: {:?}", r.errors);
    // The role chunk, 5 words, the finish chunk and [DONE].
    assert_eq!(r.n_events, 4 * 8);
    assert_eq!(r.histogram(Metric::EmitToReceipt).len(), 4 * 5, "one lag per stamped chunk");
    let direct_lag = summary_of(r.histogram(Metric::EmitToReceipt));
    let delay = Duration::from_millis(30);
    let (proxy, task) = delaying_proxy(mock.addr(), delay).await;
    let proxied = drive(&format!("http://{proxy}/v1"), stamped(open(4.0, 4))).await;
    let r = &proxied.recorder;
    assert_eq!(r.n_ok, 4, "errors: {:?}", r.errors);
    let proxied_lag = summary_of(r.histogram(Metric::EmitToReceipt));
    assert!(proxied_lag.min >= 30.0, "a chunk held 30 ms was measured at {} ms", proxied_lag.min);
    assert!(direct_lag.p50 < proxied_lag.min, "direct p50 {} ms, proxied min {} ms", direct_lag.p50, proxied_lag.min);
    task.abort();
    mock.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stamps_through_the_relay_and_a_missing_stamp_is_an_error() {
    let script = Script { reply: Reply::Tokens(3), inter_token_delay: Duration::from_millis(1), stamp: true, ..Script::default() };
    let stamping = stack(script).await;
    let relayed = RunSpec { stamped: true, ..spec(stamping.api_key("llm"), Mode::Streaming, open(10.0, 2), Duration::from_secs(1)) };
    let result = drive(&stamping.info.server_url, relayed).await;
    assert_eq!(result.recorder.n_ok, 10, "errors: {:?}", result.recorder.errors);
    assert_eq!(result.recorder.histogram(Metric::EmitToReceipt).len(), 30, "one lag per text_chunk");
    // The timeline puts the server's share of each chunk beside the upstream's.
    let timeline = result.recorder.timeline.finish(0.0).expect("a timeline");
    let row = |step: Step| timeline.steps.iter().find(|s| s.step == step).map(|s| s.ms).unwrap_or_else(|| panic!("{step:?}"));
    assert_eq!(row(Step::ServerAddedPerChunk).n, 30);
    let upstream = row(Step::UpstreamPerChunk);
    assert_eq!(upstream.n, 20, "between each stream's three chunks");
    assert!(upstream.min >= 1.0, "the mock waits 1 ms between chunks: {upstream:?}");
    stamping.shutdown().await.unwrap();
    // The same run against a mock that does not stamp: every stream says so.
    let plain = stack(Script { reply: Reply::Tokens(3), inter_token_delay: Duration::from_millis(1), ..Script::default() }).await;
    let unstamped = RunSpec { stamped: true, ..spec(plain.api_key("llm"), Mode::Streaming, open(10.0, 2), Duration::from_secs(1)) };
    let result = drive(&plain.info.server_url, unstamped).await;
    assert_eq!(result.recorder.errors.get(&ErrorClass::Unstamped), Some(&10));
    plain.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_yardstick_answers_blocking_runs() {
    let (addr, task) = mock::bare::serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    let target = Target::resolve(&url).await.unwrap();
    flowbench::load::client::preflight(&target, Protocol::Dify, "empty", &bearer("app-any").unwrap()).await.unwrap();
    let result = drive(&url, spec("app-any", Mode::Blocking, open(100.0, 4), Duration::from_secs(1))).await;
    assert_eq!((result.recorder.n_sent, result.recorder.n_ok), (100, 100), "errors: {:?}", result.recorder.errors);
    task.abort();
}

/// The bare SSE emitter (the relay's yardstick) sends whole, grammatical
/// streams: the driver checks each and finds nothing to count against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bare_sse_emitter_sends_whole_streams() {
    let (addr, task) = mock::bare::serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{addr}");
    let result = drive(&url, spec("app-any", Mode::Streaming, open(100.0, 4), Duration::from_secs(1))).await;
    let r = &result.recorder;
    assert_eq!((r.n_sent, r.n_ok), (100, 100), "errors: {:?}", r.errors);
    assert_eq!((r.n_checked, r.n_violating), (100, 0), "violations: {:?}", r.violations);
    assert_eq!(r.n_events_all, 100 * 40, "a ping aside, 40 events a stream");
    task.abort();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn aborted_streams_are_counted_and_the_server_cancels_each_upstream_request() {
    let script = Script { reply: Reply::Tokens(50), inter_token_delay: Duration::from_millis(5), ..Script::default() };
    let stack = stack(script).await;
    let aborting =
        RunSpec { abort_after_chunks: Some(3), ..spec(stack.api_key("llm"), Mode::Streaming, open(100.0, 20), Duration::from_secs(1)) };
    let result = drive(&stack.info.server_url, aborting).await;
    let r = &result.recorder;
    assert_eq!(r.n_sent, 100);
    assert_eq!(r.errors.get(&ErrorClass::Aborted).copied(), Some(100), "every stream left after 3 chunks: {:?}", r.errors);
    assert_eq!(r.n_ok + r.n_errors() + r.n_warmup, r.n_sent, "every request has one outcome");
    // Left on purpose, not failed: their first bytes and gaps are figures, a
    // whole answer's time is not, and nothing is timed as a failure.
    assert_eq!(r.histogram(Metric::Ttfe).len(), 100);
    assert_eq!(r.histogram(Metric::FirstTextChunk).len(), 100);
    assert!(!r.histogram(Metric::EventGap).is_empty());
    assert!(r.histogram(Metric::Duration).is_empty() && r.histogram(Metric::FailedDuration).is_empty());
    // Each left before its 50 tokens: the server saw the client go and cancelled its upstream.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while (stack.server.state.stats().live_runs > 0 || stack.mock.stats().live_streams() > 0) && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let server = stack.server.state.stats();
    assert_eq!(server.live_runs, 0);
    assert_eq!(server.runs_client_gone, 100);
    let mock = stack.mock.stats().snapshot();
    assert_eq!((mock.streams_started, mock.streams_cancelled, mock.live_streams), (100, 100, 0), "{mock:?}");
    // The counters are also served over HTTP, for runs against a separate mock process.
    let body = http_get(&format!("http://{}/_mock/stats", stack.mock.addr())).await;
    let served: mock::llm::MockStatsSnapshot = serde_json::from_str(&body).unwrap();
    assert_eq!(served.streams_cancelled, 100);
    stack.shutdown().await.unwrap();
}

/// A plain HTTP/1.1 GET over a raw socket.
async fn http_get(url: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let rest = url.strip_prefix("http://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap());
    let mut tcp = tokio::net::TcpStream::connect(authority).await.unwrap();
    tcp.write_all(format!("GET {path} HTTP/1.1\r\nhost: {authority}\r\nconnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut response = String::new();
    tcp.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 200"), "{response}");
    response.split_once("\r\n\r\n").unwrap().1.to_owned()
}

/// A stack whose server holds each stream's body 1 s after its terminal
/// event, as real Dify does (`--stream-tail`).
async fn dify_tail_stack() -> InProcessStack {
    let script = Script { reply: Reply::Tokens(3), inter_token_delay: Duration::from_millis(1), ..Script::default() };
    let mut options = StackOptions { script, ..StackOptions::default() };
    options.limits.stream_tail = Duration::from_secs(1);
    InProcessStack::start(options).await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_ends_at_its_terminal_event_not_at_the_end_of_a_held_body() {
    let stack = dify_tail_stack().await;
    let load = LoadModel::Closed { users: 4, spawn_rate: 1000.0 };
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, load, Duration::from_secs(2))).await;
    let r = &result.recorder;
    assert_eq!(r.n_errors(), 0, "errors: {:?}", r.errors);
    // Each run takes milliseconds; a duration that held the 1 s tail would
    // be above it, and 4 users would then send about 8 runs in 2 s.
    let longest = Duration::from_micros(r.histogram(Metric::Duration).max());
    assert!(longest < Duration::from_millis(900), "the longest duration {longest:?} holds the server's tail");
    assert!(r.n_ok > 16, "{} runs in 2 s: the users waited for the tail (8 at most if they did)", r.n_ok);
    // Closed at the terminal event, the tails are not measured.
    assert_eq!(r.histogram(Metric::StreamTail).len(), 0);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drained_streams_report_the_tail_apart_from_the_duration() {
    let stack = dify_tail_stack().await;
    let load = LoadModel::Closed { users: 2, spawn_rate: 1000.0 };
    let drain = RunSpec {
        after_terminal: driver::AfterTerminal::Drain,
        ..spec(stack.api_key("llm"), Mode::Streaming, load, Duration::from_secs(3))
    };
    let result = drive(&stack.info.server_url, drain).await;
    let r = &result.recorder;
    assert_eq!(r.n_errors(), 0, "errors: {:?}", r.errors);
    let tails = r.histogram(Metric::StreamTail);
    assert_eq!(tails.len(), r.n_ok, "every stream's tail is recorded");
    // The server holds its body 1 s from handing over the terminal frame;
    // the client times from reading that frame to reading the end, so a
    // terminal frame read later than the end (by the client's scheduling)
    // shortens the tail by that much. 100 ms allows for it on a busy host
    // and still tells a held tail from none.
    assert!(tails.min() >= 900_000, "each tail holds the server's 1 s: min {} µs", tails.min());
    let longest = Duration::from_micros(r.histogram(Metric::Duration).max());
    assert!(longest < Duration::from_millis(900), "the duration {longest:?} ends at the terminal event");
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_the_open_model_first_bytes_count_from_the_intended_send_time() {
    // Each run takes at least 50 ms (its first token) and one connection is
    // allowed: at 50 requests a second the schedule falls behind, and each
    // request waits for the one before it.
    let script = Script { reply: Reply::Tokens(1), time_to_first_token: Duration::from_millis(50), ..Script::default() };
    let stack = stack(script).await;
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, open(50.0, 1), Duration::from_secs(1))).await;
    let r = &result.recorder;
    assert_eq!(r.n_errors(), 0, "errors: {:?}", r.errors);
    // The headline metric counts from the intended send, its service row from the send.
    for (intended, service) in [
        (Metric::Ttfb, Metric::TtfbFromSent),
        (Metric::Ttfe, Metric::TtfeFromSent),
        (Metric::FirstTextChunk, Metric::FirstTextChunkFromSent),
    ] {
        let (service, intended) = (r.histogram(service), r.histogram(intended));
        assert_eq!(intended.len(), service.len(), "one value each");
        // The queue grows through the run: the last requests waited about
        // a second for their turn, which the headline shows.
        assert!(intended.max() > service.max() + 300_000, "{} µs vs {} µs", intended.max(), service.max());
        assert!(intended.min() >= service.min());
    }
    // The closed model sends when it means to: its headline is the service view, no second row.
    let closed = LoadModel::Closed { users: 1, spawn_rate: 100.0 };
    let result = drive(&stack.info.server_url, spec(stack.api_key("llm"), Mode::Streaming, closed, Duration::from_millis(500))).await;
    assert_eq!(result.recorder.histogram(Metric::TtfeFromSent).len(), 0);
    assert!(!result.recorder.histogram(Metric::Ttfe).is_empty());
    stack.shutdown().await.unwrap();
}

/// A server that keeps every body it is sent and answers as Dify's blocking
/// workflow run (or, at `/v1/chat-messages`, a blocking chat answer).
async fn recording_server() -> (String, Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>) {
    use axum::routing::post;
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = |seen: Arc<std::sync::Mutex<Vec<(String, serde_json::Value)>>>, path: &'static str, answer: serde_json::Value| {
        move |body: axum::body::Bytes| async move {
            seen.lock().unwrap().push((path.to_owned(), serde_json::from_slice(&body).unwrap()));
            axum::Json(answer)
        }
    };
    let app = axum::Router::new()
        .route("/v1/workflows/run", post(keep(seen.clone(), "run", json!({"data": {"status": "succeeded"}}))))
        .route("/v1/chat-messages", post(keep(seen.clone(), "chat", json!({"event": "message", "answer": "hi"}))));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apps_are_picked_by_weight_and_their_rows_sent_in_order() {
    let (url, seen) = recording_server().await;
    let rows = |texts: &[&str], chat: bool| -> Vec<Row> {
        texts
            .iter()
            .map(|t| Row { inputs: json!({ "text": t }).as_object().unwrap().clone(), query: chat.then(|| format!("q-{t}")) })
            .collect()
    };
    let workflow = App {
        name: "wf".into(),
        weight: 1,
        inputs: InputSet::new(&rows(&["a", "b", "c"], false), InputOrder::RoundRobin),
        ..App::single(Mode::Blocking, bearer("app-wf").unwrap(), None)
    };
    let chat = App {
        name: "chat".into(),
        path: Some("/v1/chat-messages".parse().unwrap()),
        weight: 3,
        inputs: InputSet::new(&rows(&["x", "y"], true), InputOrder::RoundRobin),
        ..App::single(Mode::Blocking, bearer("app-chat").unwrap(), None)
    };
    let spec = RunSpec { apps: vec![workflow, chat], ..spec("app-unused", Mode::Blocking, open(400.0, 4), Duration::from_secs(1)) };
    let result = drive(&url, spec).await;
    let r = &result.recorder;
    assert_eq!((r.n_sent, r.n_ok), (400, 400), "{:?}", r.errors);
    let (wf, chat) = (&r.apps[0], &r.apps[1]);
    assert_eq!(wf.n_ok + chat.n_ok, 400, "every request is one app's");
    // Weight 3 to 1 over 400 seeded draws: 300 expected, SD ≈ 8.7.
    assert!((260..=340).contains(&chat.n_ok), "chat {} of 400", chat.n_ok);
    let seen = seen.lock().unwrap();
    let texts = |path: &str| -> Vec<String> {
        seen.iter().filter(|(p, _)| p == path).map(|(_, b)| b["inputs"]["text"].as_str().unwrap().to_owned()).collect()
    };
    let (wf_texts, chat_texts) = (texts("run"), texts("chat"));
    assert_eq!((wf_texts.len() as u64, chat_texts.len() as u64), (wf.n_ok, chat.n_ok));
    // Round robin: each row as often as the next, within one.
    for (texts, values) in [(&wf_texts, &["a", "b", "c"][..]), (&chat_texts, &["x", "y"][..])] {
        let counts: Vec<usize> = values.iter().map(|v| texts.iter().filter(|t| t == v).count()).collect();
        assert!(counts.iter().max().unwrap() - counts.iter().min().unwrap() <= 1, "{counts:?}");
    }
    for (path, body) in seen.iter() {
        assert_eq!(body["response_mode"], "blocking");
        assert!(body["user"].as_str().unwrap().starts_with("user_"));
        match path.as_str() {
            "chat" => assert_eq!(body["query"], format!("q-{}", body["inputs"]["text"].as_str().unwrap())),
            _ => assert!(body.get("query").is_none(), "{body}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_think_time_spaces_each_users_requests() {
    use flowbench::load::schedule::{Stage, ThinkTime};
    let (url, _) = recording_server().await;
    let stages = vec![Stage { duration_s: 0.0, target: 2.0 }, Stage { duration_s: 1.0, target: 2.0 }];
    let load = LoadModel::RampingUsers { stages, think_time: ThinkTime { min_s: 0.25, max_s: 0.25 } };
    let result = drive(&url, spec("app-x", Mode::Blocking, load, Duration::from_secs(1))).await;
    // Two users, a request each at 0, 0.25, 0.5 and 0.75 s at the most.
    let r = &result.recorder;
    assert!((2..=8).contains(&r.n_sent), "{}", r.n_sent);
    assert_eq!(r.n_ok, r.n_sent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_input_set_sends_each_row_once_per_round() {
    // More rows than a worker builds ahead: each body is joined per request.
    let (url, seen) = recording_server().await;
    let rows: Vec<Row> = (0..300).map(|i| Row::inputs(json!({ "n": i }))).collect();
    let app = App { inputs: InputSet::new(&rows, InputOrder::RoundRobin), ..App::single(Mode::Blocking, bearer("app-x").unwrap(), None) };
    let spec = RunSpec { apps: vec![app], ..spec("app-x", Mode::Blocking, open(300.0, 4), Duration::from_secs(1)) };
    let result = drive(&url, spec).await;
    assert_eq!(result.recorder.n_ok, 300, "{:?}", result.recorder.errors);
    let mut seen: Vec<i64> = seen.lock().unwrap().iter().map(|(_, b)| b["inputs"]["n"].as_i64().unwrap()).collect();
    seen.sort_unstable();
    assert_eq!(seen, (0..300).collect::<Vec<_>>());
}

/// A refused connection is retried as a user's client would, after a
/// growing pause, not at loopback speed: the run counts each attempt and
/// says how long its users waited.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_closed_model_backs_off_after_a_refused_connection() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let load = LoadModel::Closed { users: 2, spawn_rate: 100.0 };
    let result = drive(&url, spec("app-x", Mode::Blocking, load, Duration::from_secs(1))).await;
    let r = &result.recorder;
    assert_eq!(r.n_ok, 0);
    assert_eq!(r.errors.get(&ErrorClass::Connect).copied(), Some(r.n_sent), "{:?}", r.errors);
    // Pauses of 50, 100, 200, 400 ms… : a handful of attempts a user in a second.
    assert!((2..=16).contains(&r.n_sent), "{} attempts", r.n_sent);
    assert!(r.backoff >= Duration::from_millis(2 * 350), "users waited {:?}", r.backoff);
    // The open model keeps its schedule: each arrival is one attempt.
    let result = drive(&url, spec("app-x", Mode::Blocking, open(50.0, 2), Duration::from_secs(1))).await;
    assert_eq!(result.recorder.n_sent, 50);
    assert_eq!(result.recorder.backoff, Duration::ZERO);
}

/// The server's `runs_finished`, from its stats endpoint (HTTP/1.0: the
/// answer ends with the connection).
async fn runs_finished(server_url: &str) -> u64 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(server_url.trim_start_matches("http://")).await.unwrap();
    tcp.write_all(b"GET /_flowbench/stats HTTP/1.0\r\n\r\n").await.unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.unwrap();
    let body = answer.split_once("\r\n\r\n").unwrap().1;
    serde_json::from_str::<serde_json::Value>(body).unwrap()["runs_finished"].as_u64().unwrap()
}

/// Throughput is by completion: streams longer than the warm-up, begun in
/// it and finished in the measured phase, count in the seconds they end
/// in. The driver's measured completions are the ones the server counted
/// over the same seconds (the streams end in bursts a second away from
/// either edge of the phase, so the two clocks need not agree to the ms).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_streams_count_in_the_seconds_they_finish_in() {
    // 2 s streams; every user starts at once, so they end at 2, 4 and 6 s.
    // Two tokens a second apart, not twenty 100 ms apart: each wait is
    // timed from the last, and fewer waits drift less on a loaded host.
    let script = Script { reply: Reply::Tokens(2), inter_token_delay: Duration::from_secs(1), ..Script::default() };
    let stack = stack(script).await;
    let url = stack.info.server_url.clone();
    let load = LoadModel::Closed { users: 4, spawn_rate: 1000.0 };
    let spec = RunSpec { warmup: Duration::from_secs(1), ..spec(stack.api_key("llm"), Mode::Streaming, load, Duration::from_secs(6)) };
    let started = tokio::time::Instant::now();
    let run = tokio::spawn(drive_owned(url.clone(), spec));
    tokio::time::sleep_until(started + Duration::from_secs(1)).await;
    let before = runs_finished(&url).await;
    tokio::time::sleep_until(started + Duration::from_secs(7)).await;
    let server = runs_finished(&url).await - before;
    let result = run.await.unwrap();
    let r = &result.recorder;
    assert_eq!(r.n_errors(), 0, "{:?}", r.errors);
    let measured: u64 = r.ok_per_s.iter().take(6).sum();
    assert_eq!(server, 12, "the server finished 4 runs at each of 2, 4 and 6 s");
    assert_eq!(measured, server, "per second: {:?}", r.ok_per_s);
    // Latencies stay the measured phase's requests': those sent at 2, 4
    // and 6 s, not those sent in the warm-up.
    assert_eq!((r.n_warmup, r.n_ok), (4, 12));
    stack.shutdown().await.unwrap();
}

async fn drive_owned(url: String, spec: RunSpec) -> RunResult {
    drive(&url, spec).await
}
