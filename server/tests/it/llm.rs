//! The LLM node: the request it sends upstream, its relay of the upstream
//! stream (one `text_chunk` per delta), and every upstream failure ending the
//! run `failed` in Dify's shapes, never hanging.

use crate::support::TestStackOptions;
use crate::support::{TestClient, WholeReply, eventually, fast_script, llm_config, spawn_server, spawn_stack_with};
use mock::{Fault, Script};
use serde_json::{Value, json};
use std::time::Duration;
use wiremock::matchers::{body_partial_json, header, method, path};
use wiremock::{Mock, MockServer, ResponseTemplate};

fn streaming(question: &str) -> Value {
    json!({"inputs": {"question": question}, "response_mode": "streaming", "user": "user_1"})
}

fn events(reply: &WholeReply) -> Vec<Value> {
    reply.events().iter().map(|e| serde_json::from_str(&e.data).unwrap()).collect()
}

#[tokio::test]
async fn sends_the_rendered_prompt_and_relays_each_delta() {
    let upstream = MockServer::start().await;
    let canned = concat!(
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"role\":\"assistant\",\"content\":\"\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hel\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"lo \\\"w\\\"\"},\"finish_reason\":null}]}\r\n\r\n",
        ": comment\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"orld\"},\"finish_reason\":null}]}\n\n",
        "data: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}\n\n",
        "data: {\"choices\":[],\"usage\":{\"prompt_tokens\":5,\"completion_tokens\":3,\"total_tokens\":8}}\n\n",
        "data: [DONE]\n\n",
    );
    Mock::given(method("POST"))
        .and(path("/v1/chat/completions"))
        .and(header("authorization", "Bearer sk-test"))
        .and(body_partial_json(json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "What is ML?"}],
            "stream": true,
            "temperature": 0.7,
            "user": "user_1",
        })))
        .respond_with(
            ResponseTemplate::new(200).insert_header("content-type", "text/event-stream").set_body_raw(canned, "text/event-stream"),
        )
        .expect(1)
        .mount(&upstream)
        .await;
    let server = spawn_server(llm_config(&format!("{}/v1", upstream.uri())));
    let url = server.url.clone();
    let reply = TestClient::new(&url).run("app-llm", &streaming("What is ML?")).await;
    let events = events(&reply);
    let chunks: Vec<&str> = events.iter().filter(|e| e["event"] == "text_chunk").map(|e| e["data"]["text"].as_str().unwrap()).collect();
    assert_eq!(chunks, ["Hel", "lo \"w\"", "orld"]);
    let llm_done = events.iter().find(|e| e["event"] == "node_finished" && e["data"]["node_type"] == "llm").unwrap();
    assert_eq!(llm_done["data"]["outputs"]["text"], "Hello \"w\"orld");
    assert_eq!(llm_done["data"]["outputs"]["usage"]["total_tokens"], 8);
    assert_eq!(llm_done["data"]["outputs"]["finish_reason"], "stop");
    let finished = events.last().unwrap();
    assert_eq!(finished["event"], "workflow_finished");
    assert_eq!(finished["data"]["status"], "succeeded");
    assert_eq!(finished["data"]["total_tokens"], 8);
    assert_eq!(finished["data"]["outputs"]["answer"], "Hello \"w\"orld");
    server.shutdown().await.unwrap();
    upstream.verify().await;
}

/// With busy polling the relay is the same: every stream whole over three
/// rounds with idle gaps between them, live runs back to zero after each,
/// and the stack shuts down with its pollers running. (That pollers park
/// and wake is `busy_poll.rs`'s unit test.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busy_polling_relays_every_stream_whole() {
    let stack = spawn_stack_with(TestStackOptions { script: fast_script(), busy_poll: true, ..TestStackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("llm");
    let (ml, ai) = (streaming("What is ML?"), streaming("What is AI?"));
    for round in 0..3 {
        let (a, b) = tokio::join!(client.run(key, &ml), client.run(key, &ai));
        for reply in [a, b] {
            let events = events(&reply);
            let text: String = events.iter().filter(|e| e["event"] == "text_chunk").map(|e| e["data"]["text"].as_str().unwrap()).collect();
            let llm_done = events.iter().find(|e| e["event"] == "node_finished" && e["data"]["node_type"] == "llm").unwrap();
            assert!(!text.is_empty(), "round {round}: no text");
            assert_eq!(llm_done["data"]["outputs"]["text"], text.as_str(), "round {round}");
            assert_eq!(events.last().unwrap()["data"]["status"], "succeeded", "round {round}");
        }
        let state = &stack.server.state;
        eventually("live runs return to zero", Duration::from_secs(10), || state.stats().live_runs == 0).await;
    }
    tokio::time::timeout(Duration::from_secs(10), stack.shutdown()).await.expect("the stack stops").unwrap();
}

/// Each fault script, with the error text the run must end with.
#[tokio::test]
async fn upstream_faults_fail_the_run_in_difys_shape() {
    let cases: [(&str, Option<Fault>, Duration, &str); 6] = [
        ("HTTP 500", Some(Fault::Status { status: 500 }), Duration::ZERO, "Error code: 500"),
        ("HTTP 429", Some(Fault::Status { status: 429 }), Duration::ZERO, "Error code: 429"),
        ("cut after 3 chunks", Some(Fault::AbortAfter { chunks: 3 }), Duration::ZERO, "Stream read error"),
        ("malformed chunk", Some(Fault::MalformedAfter { chunks: 2 }), Duration::ZERO, "Malformed stream chunk"),
        ("stall after 2 chunks", Some(Fault::StallAfter { chunks: 2 }), Duration::ZERO, "no stream data within 300ms"),
        ("no first token", None, Duration::from_secs(3600), "no first token within 300ms"),
    ];
    for (name, fault, ttft, error) in cases {
        let script = Script { fault, time_to_first_token: ttft, inter_token_delay: Duration::from_millis(1), ..Script::default() };
        let mut options = TestStackOptions { script, ..TestStackOptions::default() };
        options.limits.upstream_first_token_timeout = Duration::from_millis(300);
        options.limits.upstream_idle_timeout = Duration::from_millis(300);
        let stack = spawn_stack_with(options).await;
        let client = TestClient::for_stack(&stack);
        let reply = client.run(stack.api_key("llm"), &streaming("hi")).await;
        assert_failed(name, &reply, error);
        let blocking = client.run(stack.api_key("llm"), &json!({"inputs": {"question": "hi"}, "user": "u"})).await;
        assert_eq!(blocking.status, 200, "{name}");
        let data = &blocking.json()["data"];
        assert_eq!(data["status"], "failed", "{name}");
        assert!(data["error"].as_str().unwrap().contains(error), "{name}: {}", data["error"]);
        assert_eq!(stack.server.state.stats().live_runs, 0, "{name}: live runs");
        // No upstream stream is left hanging either.
        let mock = stack.mock.stats();
        eventually(&format!("{name}: every upstream stream closed"), Duration::from_secs(10), || mock.live_streams() == 0).await;
        stack.shutdown().await.unwrap();
    }
}

#[tokio::test]
async fn connection_refused_fails_the_run() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = closed.local_addr().unwrap().port();
    drop(closed);
    let server = spawn_server(llm_config(&format!("http://127.0.0.1:{port}/v1")));
    let url = server.url.clone();
    let reply = TestClient::new(&url).run("app-llm", &streaming("hi")).await;
    assert_failed("connection refused", &reply, "Connection error");
    server.shutdown().await.unwrap();
}

#[track_caller]
fn assert_failed(name: &str, reply: &WholeReply, error: &str) {
    assert_eq!(reply.status, 200, "{name}");
    let names = reply.event_names();
    assert_eq!(names[..3], ["workflow_started", "node_started", "node_finished"], "{name}");
    assert_eq!(names[names.len() - 2..], ["node_finished", "workflow_finished"], "{name}: {names:?}");
    let events = events(reply);
    let node = &events[events.len() - 2]["data"];
    assert_eq!(node["node_type"], "llm", "{name}");
    assert_eq!(node["status"], "failed", "{name}");
    assert!(node["error"].as_str().unwrap().contains(error), "{name}: node error {}", node["error"]);
    let workflow = &events[events.len() - 1]["data"];
    assert_eq!(workflow["status"], "failed", "{name}");
    assert_eq!(workflow["error"], node["error"], "{name}");
}
