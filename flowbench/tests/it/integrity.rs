//! Every stream checked against Dify's event grammar, under load: a server
//! of the tests' own that breaks one rule in a known share of its streams
//! at 8 concurrent users is reported with that rule's count and the error
//! exit code; flowbench's own server breaks none, and its streams leave a
//! timeline.

use flowbench::load::client::Target;
use flowbench::load::driver::{self, Live, Mode, RunSpec};
use flowbench::load::schedule::LoadModel;
use flowbench::report::integrity::{Step, Violation};
use flowbench::{InProcessStack, StackOptions};
use mock::{Reply, Script};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How the test server breaks every other stream.
#[derive(Clone, Copy, PartialEq)]
enum Break {
    /// Leaves `workflow_started` out.
    DropStart,
    /// Sends, among its own, an event of another run in flight.
    MixInAnotherRun,
}

/// What the server did: streams begun, and streams broken that it sent whole.
#[derive(Default)]
struct Sent {
    streams: AtomicU64,
    broken_whole: AtomicU64,
    /// The last `text_chunk` any stream sent, for another stream to take.
    last_chunk: Mutex<Option<(String, String)>>,
}

/// One Start → LLM → End run as Dify 1.13 streams it: its frames, each
/// `data: …\n\n`, with `run` and `task` as its ids.
fn dify_run(run: &str, task: &str, chunks: &[&str]) -> Vec<String> {
    let event = |name: &str, data: serde_json::Value| {
        let e = serde_json::json!({"event": name, "workflow_run_id": run, "task_id": task, "data": data});
        format!("data: {e}\n\n")
    };
    let node = |id: &str, node_type: &str, title: &str| serde_json::json!({"id": id, "node_id": node_type, "node_type": node_type, "title": title});
    let mut frames = vec![event("workflow_started", serde_json::json!({"id": run, "workflow_id": "wf"}))];
    let (start, llm, end) = (format!("{run}-start"), format!("{run}-llm"), format!("{run}-end"));
    frames.push(event("node_started", node(&start, "start", "Start")));
    frames.push(event("node_finished", node(&start, "start", "Start")));
    frames.push(event("node_started", node(&llm, "llm", "LLM")));
    for chunk in chunks {
        frames.push(event("text_chunk", serde_json::json!({"text": chunk, "from_variable_selector": ["llm", "text"]})));
    }
    frames.push(event("node_finished", node(&llm, "llm", "LLM")));
    frames.push(event("node_started", node(&end, "end", "End")));
    frames.push(event("node_finished", node(&end, "end", "End")));
    let answer: String = chunks.concat();
    frames.push(event(
        "workflow_finished",
        serde_json::json!({"id": run, "status": "succeeded", "outputs": {"answer": answer}, "total_steps": 3}),
    ));
    frames
}

/// A Dify-shaped server whose every other stream breaks the grammar as
/// `how` says; each frame a few ms after the last, so streams overlap.
async fn breaking_server(how: Break) -> (String, Arc<Sent>) {
    use axum::routing::{get, post};
    let sent = Arc::new(Sent::default());
    let run = {
        let sent = sent.clone();
        move || {
            let sent = sent.clone();
            async move {
                let n = sent.streams.fetch_add(1, Ordering::SeqCst);
                let broken = n % 2 == 1;
                let (run, task) = (format!("00000000-0000-4000-8000-{n:012}"), format!("10000000-0000-4000-8000-{n:012}"));
                let mut frames = dify_run(&run, &task, &["Mock ", "response ", "to: ", "hi"]);
                if broken && how == Break::DropStart {
                    frames.remove(0);
                }
                let stream = async_stream(frames, (broken, how), run, task, sent);
                axum::response::Response::builder()
                    .header("content-type", "text/event-stream; charset=utf-8")
                    .body(axum::body::Body::from_stream(stream))
                    .unwrap()
            }
        }
    };
    let app = axum::Router::new().route("/v1/parameters", get(|| async { "{}" })).route("/v1/workflows/run", post(run));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, sent)
}

/// The frames as a body, 2 ms apart; a broken stream that mixes in
/// another run's event sends that run's latest chunk after its own second.
fn async_stream(
    frames: Vec<String>,
    (broken, how): (bool, Break),
    run: String,
    task: String,
    sent: Arc<Sent>,
) -> impl futures_util::Stream<Item = Result<String, std::io::Error>> {
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let mix = broken && how == Break::MixInAnotherRun;
    tokio::spawn(async move {
        let mut mixed = !mix;
        let mut chunks = 0;
        for frame in frames {
            tokio::time::sleep(Duration::from_millis(2)).await;
            if frame.contains("\"event\":\"text_chunk\"") {
                chunks += 1;
                *sent.last_chunk.lock().unwrap() = Some((run.clone(), frame.clone()));
                if chunks == 2 && !mixed {
                    let theirs = sent.last_chunk.lock().unwrap().clone();
                    // Another run's, or one made up as another run's would be.
                    let foreign = match theirs {
                        Some((other, f)) if other != run => f,
                        _ => frame
                            .replace(&run, "ffffffff-0000-4000-8000-000000000000")
                            .replace(&task, "eeeeeeee-0000-4000-8000-000000000000"),
                    };
                    if tx.send(Ok(foreign)).await.is_err() {
                        return;
                    }
                    mixed = true;
                }
            }
            if tx.send(Ok(frame)).await.is_err() {
                return;
            }
        }
        if broken {
            sent.broken_whole.fetch_add(1, Ordering::SeqCst);
        }
    });
    futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|item| (item, rx)) })
}

/// `flowbench run` against `url` for 3 s at 8 users; its exit code and JSON report.
fn run_against(url: &str, extra: &[&str]) -> (i32, serde_json::Value) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("report.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["run", "--scenario", "llm", "--target", url, "--api-key", "app-test", "--users", "8", "--spawn-rate", "100"])
        .args(["--warmup", "0s", "--duration", "3s", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let report = std::fs::read_to_string(&json).unwrap_or_else(|_| panic!("no report: {}", String::from_utf8_lossy(&out.stderr)));
    (out.status.code().unwrap_or(-1), serde_json::from_str(&report).unwrap())
}

fn class_count(scenario: &serde_json::Value, class: &str) -> u64 {
    scenario["integrity"]["by_class"][class].as_u64().unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_drops_workflow_started_from_half_its_streams_is_caught() {
    let (url, sent) = breaking_server(Break::DropStart).await;
    let (code, report) = tokio::task::spawn_blocking({
        let url = url.clone();
        move || run_against(&url, &[])
    })
    .await
    .unwrap();
    let s = &report["scenarios"][0];
    let broken = sent.broken_whole.load(Ordering::SeqCst);
    let found = class_count(s, "missing_start");
    assert!(broken >= 20, "the server broke {broken} streams");
    // The server counts streams it sent whole; the driver the ones it read
    // whole before its time was up: a few in flight at the end differ.
    assert!(found.abs_diff(broken) <= 8, "found {found}, broken {broken}");
    assert_eq!(s["integrity"]["violating"].as_u64(), Some(found), "no other rule broken: {}", s["integrity"]);
    assert_eq!(s["counts"]["errors_by_class"]["integrity"].as_u64(), Some(found));
    let checked = s["integrity"]["checked"].as_u64().unwrap();
    assert!(found * 2 >= checked - 2 && found * 2 <= checked + 2, "half of {checked} streams, found {found}");
    assert_eq!(code, 5, "over --max-error-rate: the errors' exit code");
    // The first offending streams are kept whole, their events timed.
    let examples = s["integrity"]["examples"].as_array().unwrap();
    assert!(!examples.is_empty() && examples.len() <= 5);
    let first = &examples[0];
    assert_eq!(first["violations"][0], "missing_start");
    let events = first["events"].as_array().unwrap();
    assert!(events[0]["data"].as_str().unwrap().contains("\"node_started\""), "{first}");
    assert!(events.iter().any(|e| e["data"].as_str().unwrap().contains("workflow_finished")));
    assert!(events.iter().all(|e| e["at_ms"].as_f64().unwrap() >= 0.0));
    // The same load with the check off counts no integrity errors.
    let (code, report) = tokio::task::spawn_blocking(move || run_against(&url, &["--no-integrity"])).await.unwrap();
    assert_eq!(code, 0);
    assert!(report["scenarios"][0].get("integrity").is_none(), "not checked is not zero");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_mixes_another_runs_event_into_a_stream_is_caught() {
    let (url, sent) = breaking_server(Break::MixInAnotherRun).await;
    let (code, report) = tokio::task::spawn_blocking(move || run_against(&url, &[])).await.unwrap();
    let s = &report["scenarios"][0];
    let broken = sent.broken_whole.load(Ordering::SeqCst);
    let found = class_count(s, "foreign_event");
    assert!(broken >= 20, "the server broke {broken} streams");
    assert!(found.abs_diff(broken) <= 8, "found {found}, broken {broken}");
    // Another run's chunk is also text this run's outputs do not hold.
    assert_eq!(class_count(s, "text_mismatch"), found);
    assert_eq!(class_count(s, "missing_start"), 0);
    assert_eq!(code, 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flowbench_s_own_server_keeps_the_grammar_and_leaves_a_timeline() {
    let script = Script { reply: Reply::Tokens(6), inter_token_delay: Duration::from_millis(1), ..Script::default() };
    let stack = InProcessStack::start(StackOptions { script, ..StackOptions::default() }).await.unwrap();
    let load = LoadModel::Closed { users: 8, spawn_rate: 100.0 };
    let spec: RunSpec = crate::driver::spec(stack.api_key("llm"), Mode::Streaming, load, Duration::from_secs(1));
    assert!(spec.integrity, "checked by default");
    let target = Target::resolve(&stack.info.server_url).await.unwrap();
    let result = driver::run(spec, target, Arc::new(Live::default()), CancellationToken::new()).await;
    let r = &result.recorder;
    assert!(r.n_checked > 50, "{} streams checked", r.n_checked);
    assert_eq!(r.n_checked, r.n_ok, "every success was checked");
    assert_eq!((r.n_violating, r.violations), (0, [0; Violation::ALL.len()]), "{:?}", r.examples);
    let median_ms = r.histogram(flowbench::load::metrics::Metric::Duration).value_at_quantile(0.5) as f64 / 1000.0;
    let t = r.timeline.finish(median_ms).expect("a timeline");
    let steps: Vec<(Step, Option<String>)> = t.steps.iter().map(|s| (s.step, s.node.as_ref().map(|n| n.title.clone()))).collect();
    for (step, node) in [
        (Step::WorkflowStarted, None),
        (Step::NodeStarted, Some("LLM")),
        (Step::NodeTime, Some("LLM")),
        (Step::FirstText, None),
        (Step::Terminal, None),
    ] {
        assert!(steps.contains(&(step, node.map(str::to_owned))), "{step:?} {node:?} in {steps:?}");
    }
    assert_eq!(steps.first(), Some(&(Step::WorkflowStarted, None)), "in the order a run meets them");
    let terminal = t.steps.iter().find(|s| s.step == Step::Terminal).unwrap();
    assert_eq!(terminal.ms.n, r.n_ok, "one terminal per success");
    // The LLM node's own time holds its six tokens' delays.
    let llm = t.steps.iter().find(|s| s.step == Step::NodeTime && s.node.as_ref().is_some_and(|n| n.node_type == "llm")).unwrap();
    assert!(llm.ms.min >= 5.0, "{:?}", llm.ms);
    let (median, slowest) = (t.median.expect("a median stream"), t.slowest.expect("the slowest stream"));
    assert!(slowest.duration_ms >= median.duration_ms);
    assert_eq!(slowest.points.first().map(|p| p.event.as_str()), Some("workflow_started"));
    assert_eq!(slowest.points.last().map(|p| p.event.as_str()), Some("workflow_finished"));
    stack.shutdown().await.unwrap();
}
