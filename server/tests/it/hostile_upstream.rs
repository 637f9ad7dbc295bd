//! Upstreams that misbehave: cut bodies, interim answers, whole answers to a
//! streaming request, endless lines and frames, answers too long in bytes
//! or in time, bad bytes. Each run ends as Dify's shapes say, with an error
//! that names the fault, and the server keeps serving.

use crate::support::{TestClient, llm_config, spawn_server};
use bytes::BytesMut;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What a scripted upstream does after reading a request.
#[derive(Clone)]
enum UpstreamStep {
    Write(Vec<u8>),
    Sleep(Duration),
    /// Writes these bytes again and again, `every` apart, until the client leaves.
    Repeat {
        bytes: Vec<u8>,
        every: Duration,
    },
    /// Keeps the connection open until the client leaves.
    Hold,
}

const SSE_HEAD: &[u8] = b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n";

fn chunk(bytes: &[u8]) -> Vec<u8> {
    [format!("{:x}\r\n", bytes.len()).as_bytes(), bytes, b"\r\n"].concat()
}

fn delta(text: &str) -> Vec<u8> {
    format!("data: {}\n\n", json!({"choices": [{"delta": {"content": text}}]})).into_bytes()
}

const FINISH: &[u8] = b"data: {\"choices\":[{\"delta\":{},\"finish_reason\":\"stop\"}]}\n\ndata: [DONE]\n\n";

/// An upstream on 127.0.0.1:0 that plays `steps` to every request, then
/// closes (unless a step holds); returns its base URL.
async fn upstream(steps: Vec<UpstreamStep>) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}/v1", listener.local_addr().unwrap());
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            tokio::spawn(play(tcp, steps.clone()));
        }
    });
    base
}

async fn play(mut tcp: TcpStream, steps: Vec<UpstreamStep>) {
    let _ = tcp.set_nodelay(true);
    let mut buf = BytesMut::new();
    let (end, length) = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length = head.lines().find_map(|l| l.strip_prefix("content-length: ")).and_then(|v| v.parse().ok()).unwrap_or(0);
            break (end + 4, length);
        }
        if !matches!(tcp.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    };
    while buf.len() < end + length {
        if !matches!(tcp.read_buf(&mut buf).await, Ok(n) if n > 0) {
            return;
        }
    }
    for step in steps {
        match step {
            UpstreamStep::Write(bytes) => {
                if tcp.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            UpstreamStep::Sleep(d) => tokio::time::sleep(d).await,
            UpstreamStep::Repeat { bytes, every } => loop {
                if tcp.write_all(&bytes).await.is_err() {
                    return;
                }
                tokio::time::sleep(every).await;
            },
            UpstreamStep::Hold => {
                let mut sink = [0u8; 1024];
                while matches!(tcp.read(&mut sink).await, Ok(n) if n > 0) {}
                return;
            }
        }
    }
}

/// A blocking run of the LLM app against `base` with `limits`; its `data`.
async fn run_against(base: &str, limits: impl FnOnce(&mut server::Limits)) -> Value {
    let mut config = llm_config(base);
    limits(&mut config.limits);
    let server = spawn_server(config);
    let client = TestClient::new(&server.url);
    let reply = client.run("app-llm", &json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"})).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    // The server still serves after the fault.
    let info = client.send("GET", "/v1/info", &[("authorization", "Bearer app-llm")], "").await;
    assert_eq!(info.status, 200);
    server.shutdown().await.unwrap();
    reply.json()["data"].clone()
}

#[track_caller]
fn assert_failed_with(data: &Value, expected: &str) {
    assert_eq!(data["status"], "failed", "{data}");
    let error = data["error"].as_str().unwrap_or_default();
    assert!(error.contains(expected), "the error {error:?} should name {expected:?}");
}

#[tokio::test]
async fn a_body_shorter_than_its_length_is_a_cut_answer() {
    let body = [delta("hello").as_slice(), FINISH].concat();
    let head = format!("HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncontent-length: {}\r\n\r\n", body.len() + 500);
    let base = upstream(vec![UpstreamStep::Write([head.as_bytes(), &body].concat())]).await;
    let data = run_against(&base, |_| {}).await;
    assert_failed_with(&data, "Stream read error");
}

#[tokio::test]
async fn an_interim_answer_in_the_same_write_as_the_answer_is_skipped() {
    let answer = [b"HTTP/1.1 100 Continue\r\n\r\n".as_slice(), SSE_HEAD, &chunk(&delta("hi")), &chunk(FINISH), b"0\r\n\r\n"].concat();
    let base = upstream(vec![UpstreamStep::Write(answer)]).await;
    let data = run_against(&base, |_| {}).await;
    assert_eq!(data["status"], "succeeded", "{data}");
    assert_eq!(data["outputs"]["answer"], "hi");
}

#[tokio::test]
async fn a_whole_completion_to_a_streaming_request_is_named_for_what_it_is() {
    let body = json!({"object": "chat.completion", "choices": [{"message": {"role": "assistant", "content": "hi"}}]}).to_string();
    let answer = format!("HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}", body.len());
    let base = upstream(vec![UpstreamStep::Write(answer.into_bytes())]).await;
    let data = run_against(&base, |_| {}).await;
    assert_failed_with(&data, "whole completion (Content-Type: application/json)");
    assert_failed_with(&data, "chat.completion");
}

#[tokio::test]
async fn an_endless_line_fails_the_run_at_the_line_limit() {
    let base = upstream(vec![
        UpstreamStep::Write(SSE_HEAD.to_vec()),
        UpstreamStep::Write(chunk(b"data: ")),
        UpstreamStep::Repeat { bytes: chunk(&[b'x'; 16 * 1024]), every: Duration::from_millis(1) },
    ])
    .await;
    let data = run_against(&base, |l| l.upstream_max_line_bytes = 256 * 1024).await;
    assert_failed_with(&data, "an SSE line over 262144 bytes");
}

#[tokio::test]
async fn data_lines_without_a_blank_line_fail_the_run_at_the_event_limit() {
    let base = upstream(vec![
        UpstreamStep::Write(SSE_HEAD.to_vec()),
        UpstreamStep::Repeat { bytes: chunk(format!("data: {}\n", "y".repeat(1000)).as_bytes()), every: Duration::from_millis(1) },
    ])
    .await;
    let data = run_against(&base, |l| l.upstream_max_event_bytes = 256 * 1024).await;
    assert_failed_with(&data, "an SSE event over 262144 bytes");
}

#[tokio::test]
async fn a_completion_past_its_bytes_fails_the_run() {
    let base = upstream(vec![
        UpstreamStep::Write(SSE_HEAD.to_vec()),
        UpstreamStep::Repeat { bytes: chunk(&delta("many tokens ")), every: Duration::from_micros(200) },
    ])
    .await;
    let data = run_against(&base, |l| l.upstream_max_completion_bytes = 64 * 1024).await;
    assert_failed_with(&data, "the completion over 65536 bytes");
}

#[tokio::test]
async fn a_completion_past_its_time_fails_the_run() {
    // A token every 50 ms, forever: never idle, never done.
    let base = upstream(vec![
        UpstreamStep::Write(SSE_HEAD.to_vec()),
        UpstreamStep::Repeat { bytes: chunk(&delta("t ")), every: Duration::from_millis(50) },
    ])
    .await;
    let data = run_against(&base, |l| l.upstream_max_completion_time = Duration::from_millis(600)).await;
    assert_failed_with(&data, "Request timed out: no end of the completion within 600ms");
}

#[tokio::test]
async fn utf_8_split_across_reads_is_joined_and_bad_bytes_are_replaced() {
    let split = "data: {\"choices\":[{\"delta\":{\"content\":\"é€\"}}]}\n\n".as_bytes().to_vec();
    let cut = split.iter().position(|&b| b == 0xC3).unwrap() + 1;
    let bad = b"data: {\"choices\":[{\"delta\":{\"content\":\"a\xFFb\"}}]}\n\n".to_vec();
    let base = upstream(vec![
        UpstreamStep::Write(SSE_HEAD.to_vec()),
        UpstreamStep::Write(chunk(&split[..cut])),
        UpstreamStep::Sleep(Duration::from_millis(20)),
        UpstreamStep::Write(chunk(&split[cut..])),
        UpstreamStep::Write(chunk(&bad)),
        UpstreamStep::Write(chunk(FINISH)),
        UpstreamStep::Write(b"0\r\n\r\n".to_vec()),
    ])
    .await;
    let data = run_against(&base, |_| {}).await;
    assert_eq!(data["status"], "succeeded", "{data}");
    assert_eq!(data["outputs"]["answer"], "é€a\u{FFFD}b");
}

#[tokio::test]
async fn a_data_line_that_is_not_json_fails_the_run() {
    let base =
        upstream(vec![UpstreamStep::Write(SSE_HEAD.to_vec()), UpstreamStep::Write(chunk(b"data: {not json\n\n")), UpstreamStep::Hold])
            .await;
    let data = run_against(&base, |_| {}).await;
    assert_failed_with(&data, "Malformed stream chunk");
}

#[tokio::test]
async fn a_500_with_an_html_body_fails_the_run_quoting_it() {
    let html = "<html><body><h1>500 Internal Server Error</h1></body></html>";
    let answer = format!("HTTP/1.1 500 Internal Server Error\r\ncontent-type: text/html\r\ncontent-length: {}\r\n\r\n{html}", html.len());
    let base = upstream(vec![UpstreamStep::Write(answer.into_bytes())]).await;
    let data = run_against(&base, |_| {}).await;
    assert_failed_with(&data, "Error code: 500 - <html><body><h1>500 Internal Server Error</h1>");
}

#[tokio::test]
async fn a_never_ending_silence_fails_the_run_at_the_first_token_timeout() {
    let base = upstream(vec![UpstreamStep::Write(SSE_HEAD.to_vec()), UpstreamStep::Hold]).await;
    let data = run_against(&base, |l| l.upstream_first_token_timeout = Duration::from_millis(300)).await;
    assert_failed_with(&data, "Request timed out: no first token within 300ms");
}
