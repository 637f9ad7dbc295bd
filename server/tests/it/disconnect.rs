//! A client that leaves mid-stream cancels its run and the upstream request;
//! a client that stops reading is closed after the stall limit; shutdown
//! drains in-flight streams.

use crate::support::TestStackOptions;
use crate::support::{TestClient, eventually, read_until, spawn_stack_with};
use mock::Script;
use serde_json::json;
use server::sse::SseParser;
use std::sync::atomic::Ordering;
use std::time::Duration;

#[tokio::test]
async fn client_disconnect_cancels_the_upstream_request() {
    // A long answer, so the run is mid-stream when the client leaves.
    let script = Script { reply: mock::Reply::Tokens(10_000), inter_token_delay: Duration::from_millis(5), ..Script::default() };
    let stack = spawn_stack_with(TestStackOptions { script, ..TestStackOptions::default() }).await;
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
    let state = stack.server.state.clone();
    eventually("live runs return to zero", Duration::from_secs(10), || state.stats().live_runs == 0).await;
    assert_eq!(state.stats().runs_client_gone, 3);
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_lets_in_flight_streams_finish() {
    let script = Script { inter_token_delay: Duration::from_millis(20), ..Script::default() };
    let stack = spawn_stack_with(TestStackOptions { script, ..TestStackOptions::default() }).await;
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

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_stall_limit() {
    // An endless-looking answer, as fast as it goes: the stream's buffers fill
    // while the client reads nothing.
    let script = Script { reply: mock::Reply::Tokens(2_000_000), inter_token_delay: Duration::ZERO, ..Script::default() };
    let mut options = TestStackOptions { script, ..TestStackOptions::default() };
    options.limits.stalled_client_timeout = Duration::from_millis(500);
    let stack = spawn_stack_with(options).await;
    let stalled = crate::support::open_unread_stream(&stack).await;
    // The client never reads. The server closes the connection, ends the run as
    // a client that left, and cancels the upstream request.
    let state = stack.server.state.clone();
    eventually("the stalled connection is closed and counted", Duration::from_secs(60), || state.stats().connections_stalled_closed == 1)
        .await;
    eventually("live runs return to zero", Duration::from_secs(10), || state.stats().live_runs == 0).await;
    assert_eq!(state.stats().runs_client_gone, 1);
    let mock = stack.mock.stats();
    eventually("the upstream request is cancelled", Duration::from_secs(10), || mock.streams_cancelled.load(Ordering::SeqCst) == 1).await;
    // A reader that keeps up is never cut, however long its answer.
    let client = TestClient::for_stack(&stack);
    let mut script_stream = client
        .open_stream(stack.api_key("llm"), &json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": "v"}))
        .await
        .into_body();
    let mut parser = SseParser::new();
    let events = read_until(&mut script_stream, &mut parser, |e| e["event"] == "text_chunk").await;
    assert!(!events.is_empty());
    drop(script_stream);
    assert_eq!(state.stats().connections_stalled_closed, 1);
    drop(stalled);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_clients_that_leave_mid_stream_cancel_every_upstream_request() {
    const CLIENTS: usize = 1000;
    // Four sockets a stream in this one process: client, server, upstream, mock.
    server::http::conn::raise_open_file_limit();
    let script = Script { reply: mock::Reply::Tokens(100_000), inter_token_delay: Duration::from_millis(20), ..Script::default() };
    let stack = spawn_stack_with(TestStackOptions { script, ..TestStackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("llm").to_owned();
    // Open in waves (1,000 connects at once overflow the listen queues), and
    // keep every stream open until all 1,000 are mid-answer.
    let mut open = Vec::new();
    for wave in 0..CLIENTS / 100 {
        let mut readers = tokio::task::JoinSet::new();
        for i in 0..100 {
            let (client, key) = (client.clone(), key.clone());
            readers.spawn(async move {
                let body = json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": format!("u{wave}-{i}")});
                let mut stream = client.open_stream(&key, &body).await.into_body();
                let mut parser = SseParser::new();
                read_until(&mut stream, &mut parser, |e| e["event"] == "text_chunk").await;
                stream
            });
        }
        while let Some(joined) = readers.join_next().await {
            open.push(joined.unwrap());
        }
    }
    assert_eq!(stack.server.state.stats().live_runs, CLIENTS as u64);
    // All leave mid-answer: each stream has ~100,000 tokens to go.
    drop(open);
    let mock = stack.mock.stats();
    eventually("every upstream request is cancelled", Duration::from_secs(60), || {
        mock.streams_cancelled.load(Ordering::SeqCst) == CLIENTS as u64
    })
    .await;
    assert_eq!(mock.streams_completed.load(Ordering::SeqCst), 0);
    let state = stack.server.state.clone();
    eventually("live runs return to zero", Duration::from_secs(30), || state.stats().live_runs == 0).await;
    assert_eq!(state.stats().runs_client_gone, CLIENTS as u64);
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_ends_every_stream_with_a_final_event() {
    const STREAMS: usize = 200;
    server::http::conn::raise_open_file_limit();
    // Long answers (100 s) and a short grace: the runs are stopped, not
    // finished. The flush window (the grace's last part, after the stop)
    // is most of it: two hundred terminal frames on two cores shared with
    // the rest of the suite need more than a default window of 75 ms.
    let script = Script { reply: mock::Reply::Tokens(10_000), inter_token_delay: Duration::from_millis(10), ..Script::default() };
    let mut options = TestStackOptions { script, ..TestStackOptions::default() };
    options.limits.shutdown_grace = Duration::from_secs(3);
    options.limits.shutdown_flush = Some(Duration::from_millis(2500));
    let stack = spawn_stack_with(options).await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("llm").to_owned();
    let started = std::sync::Arc::new(tokio::sync::Semaphore::new(0));
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let (client, key, started) = (client.clone(), key.clone(), started.clone());
        readers.spawn(async move {
            let body = json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": format!("u{i}")});
            let mut stream = client.open_stream(&key, &body).await.into_body();
            let mut parser = SseParser::new();
            read_until(&mut stream, &mut parser, |e| e["event"] == "text_chunk").await;
            started.add_permits(1);
            let rest = read_until(&mut stream, &mut parser, |e| e["event"] == "workflow_finished").await;
            // The stream then ends cleanly: no more frames, no error.
            let tail = http_body_util::BodyExt::collect(stream).await.expect("a clean end").to_bytes();
            (rest.last().cloned(), tail.len())
        });
    }
    let _all_streaming = started.acquire_many(STREAMS as u32).await.unwrap();
    stack.shutdown().await.unwrap();
    let mut stopped = 0;
    while let Some(joined) = readers.join_next().await {
        let (last, tail) = joined.expect("a reader panicked");
        let last = last.expect("every stream ends with workflow_finished");
        assert_eq!(last["event"], "workflow_finished");
        assert_eq!(tail, 0, "nothing after workflow_finished");
        if last["data"]["status"] == "stopped" {
            stopped += 1;
        }
    }
    assert!(stopped > 0, "the grace period should have stopped some runs");
}
