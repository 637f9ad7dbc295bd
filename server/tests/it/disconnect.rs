//! A client that leaves mid-stream cancels its run and the upstream request;
//! shutdown drains in-flight streams.

use crate::support::{TestClient, eventually, read_until, spawn_stack_with};
use harness::{Script, StackOptions};
use serde_json::json;
use server::sse::SseParser;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    // A long answer, so the run is mid-stream when the client leaves.
    let script = Script { reply: harness::Reply::Tokens(10_000), inter_token_delay: Duration::from_millis(5), ..Script::default() };
    let stack = spawn_stack_with(StackOptions { script, ..StackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let body = json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "u"});
    for _ in 0..3 {
        let response = client.open_stream(stack.api_key("llm"), &body).await;
        let mut stream = response.into_body();
        let mut parser = SseParser::new();
        read_until(&mut stream, &mut parser, |e| e["event"] == "text_chunk").await;
        drop(stream);
    }
    let stats = stack.mock.stats();
    eventually("the mock sees every upstream request closed", Duration::from_secs(10), || {
        stats.streams_cancelled.load(Ordering::SeqCst) == 3
    })
    .await;
    assert_eq!(stats.streams_completed.load(Ordering::SeqCst), 0);
    let state = stack.state.clone();
    eventually("live runs return to zero", Duration::from_secs(10), || state.stats().live_runs == 0).await;
    assert_eq!(state.stats().runs_client_gone, 3);
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let script = Script { inter_token_delay: Duration::from_millis(20), ..Script::default() };
    let stack = spawn_stack_with(StackOptions { script, ..StackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let body = json!({"inputs": {"question": "one two three"}, "response_mode": "streaming", "user": "u"});
    let response = client.open_stream(stack.api_key("llm"), &body).await;
    let mut stream = response.into_body();
    let mut parser = SseParser::new();
    read_until(&mut stream, &mut parser, |e| e["event"] == "text_chunk").await;
    let reader = tokio::spawn(async move {
        let events = read_until(&mut stream, &mut parser, |e| e["event"] == "workflow_finished").await;
        events.last().unwrap()["data"]["status"].clone()
    });
    stack.shutdown().await.unwrap();
    assert_eq!(reader.await.unwrap(), "succeeded");
}
