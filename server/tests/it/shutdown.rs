//! Shutdown ends within its grace period whatever the clients and the
//! upstream do: a client holding half a head, a stream whose client never
//! reads, runs waiting on a silent upstream.

use crate::support::{TestClient, TestStackOptions, read_until, spawn_stack_with};
use mock::{Fault, Script};
use serde_json::json;
use server::sse::SseParser;
use std::time::Duration;
use tokio::io::AsyncWriteExt;

const GRACE: Duration = Duration::from_secs(1);
/// Far above the grace period, far below what each case took before (20 s,
/// 18.5 s, 9.5 s, or forever): a bound, not a speed.
const DEADLINE: Duration = Duration::from_secs(6);

fn options(script: Script) -> TestStackOptions {
    let mut options = TestStackOptions { script, ..TestStackOptions::default() };
    options.limits.shutdown_grace = GRACE;
    // Runs are stopped 100 ms into the grace: their terminal frames and
    // answers get the rest, not the default quarter, on a loaded machine.
    options.limits.shutdown_flush = Some(GRACE - Duration::from_millis(100));
    options
}

async fn shutdown_within_deadline(stack: crate::support::TestStack) {
    tokio::time::timeout(DEADLINE, stack.shutdown()).await.expect("shutdown ends within its grace period").unwrap();
}

#[tokio::test]
async fn a_client_holding_half_a_head_does_not_hold_shutdown() {
    let stack = spawn_stack_with(options(Script::default())).await;
    let mut half = tokio::net::TcpStream::connect(stack.server.url.trim_start_matches("http://")).await.unwrap();
    half.write_all(b"POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\n").await.unwrap();
    let state = stack.server.state.clone();
    crate::support::eventually("the connection is accepted", Duration::from_secs(5), || state.stats().connections_open == 1).await;
    shutdown_within_deadline(stack).await;
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(1), tokio::io::AsyncReadExt::read(&mut half, &mut buf)).await;
    assert!(matches!(read, Ok(Ok(0) | Err(_))), "the connection is closed: {read:?}");
}

#[tokio::test]
async fn a_stream_whose_client_never_reads_does_not_hold_shutdown() {
    // As fast as it goes, so the socket's buffers fill at once.
    let script = Script { reply: mock::Reply::Tokens(2_000_000), inter_token_delay: Duration::ZERO, ..Script::default() };
    let stack = spawn_stack_with(options(script)).await;
    let stalled = crate::support::open_unread_stream(&stack).await;
    let state = stack.server.state.clone();
    crate::support::eventually("the run is live", Duration::from_secs(10), || state.stats().live_runs == 1).await;
    shutdown_within_deadline(stack).await;
    assert_eq!(state.stats().live_runs, 0, "the run ended");
    drop(stalled);
}

#[tokio::test]
async fn runs_waiting_on_a_silent_upstream_are_stopped_within_the_grace() {
    let script = Script { fault: Some(Fault::StallAfter { chunks: 1 }), ..crate::support::fast_script() };
    let stack = spawn_stack_with(options(script)).await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("llm");
    let mut stream =
        client.open_stream(key, &json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "s"})).await.into_body();
    let mut parser = SseParser::new();
    read_until(&mut stream, &mut parser, |e| e["event"] == "text_chunk").await;
    let blocking = {
        let client = client.clone();
        let key = key.to_owned();
        tokio::spawn(async move { client.run(&key, &json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "b"})).await })
    };
    let state = stack.server.state.clone();
    crate::support::eventually("both runs are live", Duration::from_secs(10), || state.stats().live_runs == 2).await;
    let reader = tokio::spawn(async move { read_until(&mut stream, &mut parser, |e| e["event"] == "workflow_finished").await });
    shutdown_within_deadline(stack).await;
    // The stream gets its terminal event, the blocking run its answer.
    let events = reader.await.unwrap();
    assert_eq!(events.last().unwrap()["data"]["status"], "stopped");
    let reply = blocking.await.unwrap();
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["data"]["status"], "stopped", "{}", reply.text());
}
