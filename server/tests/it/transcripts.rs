//! The wire matches real Dify 1.13.2: the Start→End app Dify's transcripts
//! came from is loaded unchanged and answers the same requests; once ids,
//! timestamps and durations are normalised, bodies and SSE streams are equal
//! byte for byte (event order, envelope, key order, every field). Our own
//! fixture apps are snapshot-tested the same way.

use crate::support::{TestClient, spawn_stack};
use mock::workspace_root;
use regex::Regex;
use serde_json::{Value, json};
use server::{AppConfig, Config};

const REFERENCE_KEY: &str = "app-reference-start-end";

/// One captured exchange of the transcript file.
struct TranscriptExchange {
    body: String,
    headers: Vec<(String, String)>,
    response: String,
}

fn transcript_exchanges() -> Vec<TranscriptExchange> {
    // curl printed the header lines with `\r\n`; the bodies use `\n`.
    let text = std::fs::read_to_string(workspace_root().join("fixtures/transcripts/dify-1.13.2.txt")).unwrap().replace("\r\n", "\n");
    let mut out = Vec::new();
    for section in text.split("################ POST /v1/workflows/run  body: ").skip(1) {
        let (body, rest) = section.split_once('\n').unwrap();
        let rest = rest.split("################").next().unwrap();
        let (head, response) = rest.split_once("\n\n").unwrap();
        let headers =
            head.lines().skip(1).filter_map(|l| l.split_once(": ")).map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_owned())).collect();
        out.push(TranscriptExchange { body: body.trim().to_owned(), headers, response: response.trim_end().to_owned() });
    }
    out
}

/// Replaces ids (numbered by first appearance), timestamps and durations.
fn normalise(text: &str) -> String {
    let uuid = Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}").unwrap();
    let mut seen: Vec<String> = Vec::new();
    let text = uuid.replace_all(text, |c: &regex::Captures<'_>| {
        let id = c[0].to_owned();
        let n = seen.iter().position(|s| *s == id).unwrap_or_else(|| {
            seen.push(id);
            seen.len() - 1
        });
        format!("<id{n}>")
    });
    let times = Regex::new(r#""(created_at|finished_at|sys\.timestamp)": ?\d+"#).unwrap();
    let text = times.replace_all(&text, "\"$1\":<t>");
    let elapsed = Regex::new(r#""(elapsed_time|latency)": ?[0-9.e-]+"#).unwrap();
    elapsed.replace_all(&text, "\"$1\":<s>").into_owned()
}

fn reference_server() -> server::Running {
    let mut config = Config::default();
    config.apps.push(AppConfig {
        api_key: REFERENCE_KEY.into(),
        workflow: workspace_root().join("fixtures/workflows/dify/start_end_text_user.yml"),
        max_concurrent_runs: None,
    });
    crate::support::spawn_server(config)
}

#[tokio::test]
async fn start_end_matches_real_dify_byte_for_byte() {
    let server = reference_server();
    let url = server.url.clone();
    let client = TestClient::new(&url);
    let exchanges: Vec<TranscriptExchange> =
        transcript_exchanges().into_iter().filter(|e| e.headers.iter().any(|(k, v)| k == "x-version" && v == "1.13.2")).collect();
    let mut n_compared = 0;
    for exchange in exchanges.iter().filter(|e| !e.body.contains("\"text\":\"hi\"")) {
        let body: Value = serde_json::from_str(&exchange.body).unwrap();
        let reply = client.run(REFERENCE_KEY, &body).await;
        let ours = normalise(reply.text().trim_end());
        let theirs = normalise(&exchange.response);
        assert_eq!(ours, theirs, "request {}", exchange.body);
        for name in ["content-type", "access-control-allow-origin", "access-control-expose-headers", "x-version", "x-env", "vary"] {
            let expected = exchange.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
            assert_eq!(reply.header(name), expected, "header {name} for {}", exchange.body);
        }
        let chunked = exchange.headers.iter().any(|(k, v)| k == "transfer-encoding" && v == "chunked");
        assert_eq!(reply.header("transfer-encoding") == Some("chunked"), chunked, "framing for {}", exchange.body);
        n_compared += 1;
    }
    // Two blocking and two streaming runs of the Start→End app, and two 400s.
    assert_eq!(n_compared, 6);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn fixture_apps_snapshot() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    for (app, mode) in [("empty", "blocking"), ("empty", "streaming"), ("llm", "blocking"), ("llm", "streaming")] {
        let body = json!({"inputs": {"question": "What is machine learning?"}, "response_mode": mode, "user": "bench"});
        let reply = client.run(stack.api_key(app), &body).await;
        assert_eq!(reply.status, 200);
        insta::assert_snapshot!(format!("{app}_{mode}"), normalise(reply.text()));
    }
    stack.shutdown().await.unwrap();
}
