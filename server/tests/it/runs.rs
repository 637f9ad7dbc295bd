//! Run records, task stop, parameters and info, and Dify's own stress-test
//! app loaded unchanged.

use crate::support::TestStackOptions;
use crate::support::{TestClient, read_until, spawn_server, spawn_stack, spawn_stack_with};
use mock::workspace_root;
use mock::{Fault, Script};
use serde_json::{Value, json};
use server::sse::SseParser;

#[tokio::test]
async fn run_record_after_a_blocking_run() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("empty");
    let reply = client.run(key, &json!({"inputs": {"question": "What is machine learning?"}, "user": "bench"})).await;
    let run_id = reply.json()["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {key}");
    let record = client.send("GET", &format!("/v1/workflows/run/{run_id}"), &[("authorization", &auth)], "").await;
    assert_eq!(record.status, 200);
    assert_eq!(record.header("content-type"), Some("application/json"));
    assert!(record.text().ends_with("}\n"));
    let keys: Vec<String> = serde_json::from_str::<serde_json::Map<String, Value>>(record.text()).unwrap().keys().cloned().collect();
    let expected = [
        "id",
        "workflow_id",
        "status",
        "inputs",
        "outputs",
        "error",
        "total_steps",
        "total_tokens",
        "created_at",
        "finished_at",
        "elapsed_time",
    ];
    assert_eq!(keys, expected);
    let record = record.json();
    assert_eq!(record["id"], run_id.as_str());
    assert_eq!(record["status"], "succeeded");
    assert_eq!(record["outputs"], json!({"answer": "What is machine learning?"}));
    let inputs = record["inputs"].as_str().expect("inputs is a JSON-encoded string");
    assert!(
        inputs.starts_with("{\"question\": \"What is machine learning?\", \"sys.files\": [], \"sys.user_id\": \"bench\", \"sys.app_id\": ")
    );
    assert!(inputs.contains("\"sys.timestamp\": "));
    // Another app's key cannot see it.
    let other = format!("Bearer {}", stack.api_key("llm"));
    let hidden = client.send("GET", &format!("/v1/workflows/run/{run_id}"), &[("authorization", &other)], "").await;
    assert_eq!(hidden.status, 404);
    stack.shutdown().await.unwrap();
}

/// The record is rendered on GET from what the run packed: its bytes must
/// still be Dify's (Python's `json.dumps` in `inputs`, Flask's `\/`).
#[tokio::test]
async fn run_record_bytes_keep_difys_escaping() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("empty");
    let question = "h\u{e9}llo / \"q\"";
    let reply = client.run(key, &json!({"inputs": {"question": question}, "user": "b\u{e9}/1"})).await;
    let run_id = reply.json()["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {key}");
    let record = client.send("GET", &format!("/v1/workflows/run/{run_id}"), &[("authorization", &auth)], "").await;
    let text = record.text();
    let json = record.json();
    let got = json["inputs"].as_str().expect("inputs is a string");
    let app_id = got.split("\"sys.app_id\": \"").nth(1).map(|rest| &rest[..36]).expect("sys.app_id");
    let inputs = format!(
        "{{\"question\": \"h\\u00e9llo / \\\"q\\\"\", \"sys.files\": [], \"sys.user_id\": \"b\\u00e9/1\", \"sys.app_id\": \"{}\", \
         \"sys.workflow_id\": \"{}\", \"sys.workflow_run_id\": \"{run_id}\", \"sys.timestamp\": {}}}",
        app_id,
        json["workflow_id"].as_str().unwrap(),
        json["created_at"],
    );
    assert_eq!(got, inputs);
    // Flask escapes `/` everywhere, inside `inputs` too; UTF-8 stays as is.
    assert!(text.contains(r#""outputs":{"answer":"héllo \/ \"q\""}"#), "{text}");
    assert!(text.contains(r#""inputs":"{\"question\": \"h\\u00e9llo \/ \\\"q\\\"\", "#), "{text}");
    assert!(text.contains(r#","error":null,"total_steps":2,"total_tokens":0,"created_at":"#), "{text}");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn stop_ends_a_streaming_run_of_the_same_user() {
    let script = Script { fault: Some(Fault::StallAfter { chunks: 1 }), ..Script::default() };
    let stack = spawn_stack_with(TestStackOptions { script, ..TestStackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("llm");
    let response = client.open_stream(key, &json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "alice"})).await;
    let mut body = response.into_body();
    let mut parser = SseParser::new();
    let seen = read_until(&mut body, &mut parser, |e| e["event"] == "text_chunk").await;
    let task_id = seen[0]["task_id"].as_str().unwrap().to_owned();
    let run_id = seen[0]["workflow_run_id"].as_str().unwrap().to_owned();
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let path = format!("/v1/workflows/tasks/{task_id}/stop");
    // Another user's stop answers success but stops nothing.
    let other = client.send("POST", &path, &headers, r#"{"user":"mallory"}"#).await;
    assert_eq!(other.text(), "{\"result\":\"success\"}\n");
    let stopped = client.send("POST", &path, &headers, r#"{"user":"alice"}"#).await;
    assert_eq!(stopped.text(), "{\"result\":\"success\"}\n");
    let rest = read_until(&mut body, &mut parser, |e| e["event"] == "workflow_finished").await;
    let finished = rest.last().unwrap();
    assert_eq!(finished["data"]["status"], "stopped");
    assert_eq!(finished["data"]["error"], server::workflow::engine::STOPPED_BY_USER);
    use http_body_util::BodyExt;
    assert!(body.frame().await.is_none(), "the stream closes right after workflow_finished");
    let record = client.send("GET", &format!("/v1/workflows/run/{run_id}"), &[("authorization", &auth)], "").await.json();
    assert_eq!(record["status"], "stopped");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn parameters_and_info_describe_the_app() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let auth = format!("Bearer {}", stack.api_key("empty"));
    let params = client.send("GET", "/v1/parameters", &[("authorization", &auth)], "").await;
    assert_eq!(params.status, 200);
    assert_eq!(
        params.json()["user_input_form"],
        json!([{"text-input": {"variable": "question", "label": "question", "type": "text-input", "required": true, "max_length": 256, "options": []}}])
    );
    let info = client.send("GET", "/v1/info", &[("authorization", &auth)], "").await.json();
    assert_eq!(info["name"], "flowbench-start-end");
    assert_eq!(info["mode"], "workflow");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn difys_stress_test_app_runs_unchanged() {
    let stack = spawn_stack().await;
    let mut config = crate::support::llm_config(&stack.mock.base_url());
    config.apps[0].workflow = workspace_root().join("fixtures/workflows/dify/stress_test_llm.yml");
    let server = spawn_server(config);
    let url = server.url.clone();
    let reply = TestClient::new(&url)
        .run("app-llm", &json!({"inputs": {"question": "What is AI?"}, "response_mode": "streaming", "user": "user_1"}))
        .await;
    let text: String = reply
        .events()
        .iter()
        .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
        .filter(|e| e["event"] == "text_chunk")
        .map(|e| e["data"]["text"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(text, "Mock response to: What is AI?... ");
    let request = &stack.mock.requests()[0].body;
    // The empty system prompt is not sent; the user prompt is the question.
    assert_eq!(request["messages"], json!([{"role": "user", "content": "What is AI?"}]));
    assert_eq!(stack.mock.requests()[0].authorization.as_deref(), Some("Bearer sk-test"));
    server.shutdown().await.unwrap();
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn pings_first_and_after_each_silence() {
    let script = Script { fault: Some(Fault::StallAfter { chunks: 1 }), ..Script::default() };
    let mut options = TestStackOptions { script, ..TestStackOptions::default() };
    options.limits.ping_interval = std::time::Duration::from_millis(50);
    let stack = spawn_stack_with(options).await;
    let client = TestClient::for_stack(&stack);
    let response =
        client.open_stream(stack.api_key("llm"), &json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "u"})).await;
    let mut body = response.into_body();
    use http_body_util::BodyExt;
    let mut raw = Vec::new();
    let mut parser = SseParser::new();
    // The stream stalls after one chunk; pings keep coming while it waits.
    while parser.n_frames() < 12 {
        let data = body.frame().await.unwrap().unwrap().into_data().unwrap();
        raw.extend_from_slice(&data);
        parser.push(&data, |_| {});
    }
    let text = String::from_utf8(raw).unwrap();
    assert!(text.starts_with("event: ping\n\ndata: {\"event\":\"workflow_started\""), "{text}");
    let after_chunk = &text[text.find("\"text_chunk\"").unwrap()..];
    assert!(after_chunk.matches("event: ping\n\n").count() >= 2, "{after_chunk}");
    drop(body);
    stack.shutdown().await.unwrap();
}

/// A writer the test's subscriber logs into.
#[derive(Clone, Default)]
struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A client's W3C `traceparent` is logged (at debug) with the run's id, so
/// a slow request a load test names by trace id is found in the server's log.
#[tokio::test]
async fn a_runs_traceparent_is_logged_with_its_run_id() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt().with_max_level(tracing::Level::DEBUG).with_writer(move || writer.clone()).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("empty");
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let auth = format!("Bearer {key}");
    let body = json!({"inputs": {"question": "q"}, "user": "u", "response_mode": "blocking"}).to_string();
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
    ];
    let reply = client.send("POST", "/v1/workflows/run", &headers, body.clone()).await;
    assert_eq!(reply.status, 200);
    let run_id = reply.json()["workflow_run_id"].as_str().unwrap().to_owned();
    // A malformed header is not logged as a trace id.
    let bad = [headers[0], headers[1], ("traceparent", "00-nothex-00f067aa0ba902b7-01")];
    assert_eq!(client.send("POST", "/v1/workflows/run", &bad, body).await.status, 200);
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    let line = text.lines().find(|l| l.contains(trace)).unwrap_or_else(|| panic!("no line with the trace id in:\n{text}"));
    assert!(line.contains(&run_id), "{line}");
    assert!(!text.contains("nothex"), "{text}");
}
