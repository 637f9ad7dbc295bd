//! The mock LLM speaks OpenAI's wire format and keeps to its script.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mock::{Fault, MockLlm, Reply, Script};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn post(mock: &MockLlm, body: Value) -> (u16, Vec<String>, Vec<Duration>) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let request = http::Request::post(format!("{}/chat/completions", mock.base_url()))
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap();
    let sent = Instant::now();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let mut body = response.into_body();
    // The mock writes only `data:` lines, one per frame: a frame ends at a
    // blank line, whatever the split of the reads.
    let (mut pending, mut datas, mut times) = (Vec::new(), Vec::new(), Vec::new());
    while let Some(frame) = body.frame().await {
        let Ok(data) = frame.unwrap().into_data() else { continue };
        pending.extend_from_slice(&data);
        while let Some(end) = pending.windows(2).position(|w| w == b"\n\n") {
            let frame = String::from_utf8(pending.drain(..end + 2).collect()).unwrap();
            datas.push(frame.trim_end().strip_prefix("data: ").expect("a data line").to_owned());
            times.push(sent.elapsed());
        }
    }
    (status, datas, times)
}

fn contents(datas: &[String]) -> Vec<String> {
    datas
        .iter()
        .filter(|d| *d != "[DONE]")
        .filter_map(|d| serde_json::from_str::<Value>(d).unwrap()["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn default_script_is_difys_mock() {
    let mock = MockLlm::start(Script::default(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let body = json!({"model": "gpt-4o", "stream": true, "messages": [{"role": "user", "content": "What is AI?"}]});
    let (status, datas, times) = post(&mock, body).await;
    assert_eq!(status, 200);
    // A role chunk, a chunk per word, a stop chunk, [DONE].
    assert_eq!(contents(&datas), ["", "Mock ", "response ", "to: ", "What ", "is ", "AI?... "]);
    let stop: Value = serde_json::from_str(&datas[datas.len() - 2]).unwrap();
    assert_eq!(stop["choices"][0]["finish_reason"], "stop");
    assert_eq!(stop["model"], "gpt-4o");
    assert_eq!(datas.last().unwrap(), "[DONE]");
    // 50 ms after each of the 6 words: a lower bound only (noisy machines).
    assert!(times.last().unwrap() >= &Duration::from_millis(300), "{times:?}");
    let stats = mock.stats();
    assert_eq!(stats.chunks_sent.load(std::sync::atomic::Ordering::SeqCst), 6);
    mock.shutdown().await;
}

#[tokio::test]
async fn time_to_first_token_is_never_early() {
    let script = Script {
        reply: Reply::Tokens(3),
        time_to_first_token: Duration::from_millis(120),
        inter_token_delay: Duration::ZERO,
        ..Script::default()
    };
    let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (_, datas, times) = post(&mock, json!({"stream": true, "messages": []})).await;
    assert_eq!(contents(&datas), ["", "tok0 ", "tok1 ", "tok2 "]);
    assert!(times[1] >= Duration::from_millis(120), "first token at {:?}", times[1]);
    mock.shutdown().await;
}

#[tokio::test]
async fn usage_and_non_streaming_answers() {
    let script = Script { reply: Reply::Text("a b".into()), inter_token_delay: Duration::ZERO, usage: true, ..Script::default() };
    let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (_, datas, _) =
        post(&mock, json!({"stream": true, "stream_options": {"include_usage": true}, "messages": [{"role": "user", "content": "x y z"}]}))
            .await;
    let usage: Value = serde_json::from_str(&datas[datas.len() - 2]).unwrap();
    assert_eq!(usage["usage"], json!({"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5}));
    let (status, datas, _) = post(&mock, json!({"messages": []})).await;
    assert_eq!(status, 200);
    assert!(datas.is_empty(), "a non-streaming answer is plain JSON");
    mock.shutdown().await;
}

#[tokio::test]
async fn fault_status_answers_an_openai_error() {
    let script = Script { fault: Some(Fault::Status { status: 503 }), ..Script::default() };
    let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let (status, _, _) = post(&mock, json!({"stream": true, "messages": []})).await;
    assert_eq!(status, 503);
    mock.shutdown().await;
}

#[test]
fn every_mock_script_fixture_loads() {
    let dir = mock::workspace_root().join("fixtures/mock");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        Script::from_file(&entry.unwrap().path()).unwrap();
        n += 1;
    }
    assert!(n >= 6);
}
