//! The bad-request corpus (`fixtures/bad_requests/*.toml`, format in its
//! README): every case is sent over loopback HTTP to one server holding the
//! `empty`, `llm` and `inputs` apps, and must get its status and Dify error
//! code (and message, where given); no case may get a 5xx or go unanswered.
//! Every mismatch is collected, so one run lists them all.

use crate::support::{TestClient, fast_script, spawn_server};
use mock::MockLlm;
use mock::workspace_root;
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The apps a case can name, with their API keys and workflows.
const APPS: [(&str, &str, &str); 3] = [
    ("empty", "app-flowbench-empty", "fixtures/workflows/start_end.yml"),
    ("llm", "app-flowbench-llm", "fixtures/workflows/start_llm_end.yml"),
    ("inputs", "app-flowbench-inputs", "fixtures/workflows/all_inputs.yml"),
];

/// A liveness bound per request: no answer by then counts as a hang.
const ANSWER_WITHIN: Duration = Duration::from_secs(120);

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseFile {
    case: Vec<BadRequest>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BadRequest {
    name: String,
    #[serde(default = "default_method")]
    method: String,
    #[serde(default = "default_path")]
    path: String,
    #[serde(default = "default_app")]
    app: String,
    #[serde(default = "default_marker")]
    auth: String,
    #[serde(default = "default_content_type")]
    content_type: String,
    body: Option<String>,
    body_hex: Option<String>,
    body_repeat: Option<Repeat>,
    status: u16,
    code: Option<String>,
    message: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Repeat {
    #[serde(default)]
    prefix: String,
    unit: String,
    count: usize,
    #[serde(default)]
    suffix: String,
}

fn default_method() -> String {
    "POST".into()
}
fn default_path() -> String {
    "/v1/workflows/run".into()
}
fn default_app() -> String {
    "empty".into()
}
fn default_marker() -> String {
    "default".into()
}
fn default_content_type() -> String {
    "application/json".into()
}

impl BadRequest {
    /// Checks what serde cannot; `Err` names the problem.
    fn validate(&self) -> Result<(), String> {
        let bodies = [self.body.is_some(), self.body_hex.is_some(), self.body_repeat.is_some()];
        if bodies.iter().filter(|b| **b).count() > 1 {
            return Err("at most one of body, body_hex, body_repeat".into());
        }
        if !APPS.iter().any(|(name, ..)| *name == self.app) {
            return Err(format!("unknown app {:?}", self.app));
        }
        if !(100..600).contains(&self.status) {
            return Err(format!("status {} is not an HTTP status", self.status));
        }
        let success = (200..300).contains(&self.status);
        if success && (self.code.is_some() || self.message.is_some()) {
            return Err("a 2xx case has no code or message".into());
        }
        if !success && self.code.is_none() {
            return Err("an error case names its code".into());
        }
        if self.status >= 500 {
            return Err("no case may expect a 5xx".into());
        }
        if !self.path.starts_with('/') {
            return Err("path starts with /".into());
        }
        self.body_bytes().map(drop)
    }

    fn body_bytes(&self) -> Result<Vec<u8>, String> {
        if let Some(text) = &self.body {
            return Ok(text.clone().into_bytes());
        }
        if let Some(hex) = &self.body_hex {
            return decode_hex(hex);
        }
        if let Some(r) = &self.body_repeat {
            let mut out = Vec::with_capacity(r.prefix.len() + r.unit.len() * r.count + r.suffix.len());
            out.extend_from_slice(r.prefix.as_bytes());
            for _ in 0..r.count {
                out.extend_from_slice(r.unit.as_bytes());
            }
            out.extend_from_slice(r.suffix.as_bytes());
            return Ok(out);
        }
        Ok(Vec::new())
    }

    fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        match self.auth.as_str() {
            "none" => {}
            "default" => headers.push(("authorization", format!("Bearer {}", api_key(&self.app)))),
            literal => headers.push(("authorization", literal.to_owned())),
        }
        if self.content_type != "none" {
            headers.push(("content-type", self.content_type.clone()));
        }
        headers
    }
}

/// Hex digits, whitespace between them ignored.
fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    let digits: Vec<u8> = hex.bytes().filter(|b| !b.is_ascii_whitespace()).collect();
    if !digits.len().is_multiple_of(2) {
        return Err("body_hex has an odd number of digits".into());
    }
    digits
        .chunks(2)
        .map(|pair| {
            let text = std::str::from_utf8(pair).map_err(|_| "body_hex is not ASCII".to_owned())?;
            u8::from_str_radix(text, 16).map_err(|_| format!("body_hex: {text:?} is not a hex byte"))
        })
        .collect()
}

fn api_key(app: &str) -> &'static str {
    APPS.iter().find(|(name, ..)| *name == app).map(|(_, key, _)| *key).expect("validated app")
}

/// Every case of every `*.toml` in `dir`, in file-name order, with its file.
fn load_corpus(dir: &Path) -> Vec<(PathBuf, BadRequest)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    let mut cases = Vec::new();
    let mut problems = Vec::new();
    for path in files {
        let text = std::fs::read_to_string(&path).unwrap();
        let file: CaseFile = toml::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        for case in file.case {
            if let Err(problem) = case.validate() {
                problems.push(format!("{}: {:?}: {problem}", path.display(), case.name));
            }
            cases.push((path.clone(), case));
        }
    }
    assert!(problems.is_empty(), "malformed cases:\n{}", problems.join("\n"));
    cases
}

/// What is wrong with `reply` for `case`, if anything.
fn mismatches(case: &BadRequest, reply: &crate::support::WholeReply) -> Vec<String> {
    let mut wrong = Vec::new();
    let status = reply.status.as_u16();
    if status >= 500 {
        wrong.push(format!("got a {status} (no request may get a 5xx)"));
    }
    if status != case.status {
        // The rest would only restate this.
        wrong.push(format!("status {status}, expected {}", case.status));
        return wrong;
    }
    let Some(code) = &case.code else { return wrong };
    let body: Value = match serde_json::from_slice(&reply.body) {
        Ok(body) => body,
        Err(_) => {
            wrong.push("body is not JSON".into());
            return wrong;
        }
    };
    if body["code"].as_str() != Some(code.as_str()) {
        wrong.push(format!("code {}, expected {code:?}", body["code"]));
    }
    if body["status"] != json!(status) {
        wrong.push(format!("body status {} differs from the HTTP status {status}", body["status"]));
    }
    if let Some(message) = &case.message
        && body["message"].as_str() != Some(message.as_str())
    {
        wrong.push(format!("message {}, expected {message:?}", body["message"]));
    }
    wrong
}

fn shorten(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = text.trim_end();
    if text.chars().count() <= 300 { text.to_owned() } else { format!("{}…", text.chars().take(300).collect::<String>()) }
}

// One thread for client and server, as in the other tests: when the server
// answers an oversized body early (413, 401, 415, 404) and closes, hyper's
// client reports the broken pipe of its unfinished upload instead of the
// answer unless it reads before it writes again, which sharing the thread
// brings about. (curl and raw sockets get the answer either way.)
#[tokio::test]
async fn every_bad_request_gets_its_status_and_code() {
    let root = workspace_root();
    let cases = load_corpus(&root.join("fixtures/bad_requests"));
    let mut names = HashSet::new();
    let duplicates: Vec<&str> = cases.iter().map(|(_, c)| c.name.as_str()).filter(|n| !names.insert(*n)).collect();
    assert!(duplicates.is_empty(), "case names used twice: {duplicates:?}");
    assert!(cases.len() >= 200, "only {} bad-request cases", cases.len());

    let mock = MockLlm::start(fast_script(), "127.0.0.1:0".parse().unwrap()).await.unwrap();
    let mut config = server::Config::default();
    config.provider.base_url = mock.base_url();
    config.provider.api_key = "sk-test".to_owned();
    for (_, key, workflow) in APPS {
        config.apps.push(server::AppConfig { api_key: key.into(), workflow: root.join(workflow), max_concurrent_runs: None });
    }
    let server = spawn_server(config);
    let url = server.url.clone();
    let client = TestClient::new(&url);

    let mut failures = Vec::new();
    for (file, case) in &cases {
        let headers = case.headers();
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        let body = case.body_bytes().expect("validated body");
        let sent = tokio::time::timeout(ANSWER_WITHIN, client.try_send(&case.method, &case.path, &headers, body)).await;
        let wrong = match sent {
            Err(_) => vec![format!("no answer within {ANSWER_WITHIN:?}")],
            Ok(Err(e)) => vec![e],
            Ok(Ok(reply)) => {
                let wrong = mismatches(case, &reply);
                if wrong.is_empty() { wrong } else { vec![format!("{}; body: {}", wrong.join("; "), shorten(&reply.body))] }
            }
        };
        if !wrong.is_empty() {
            let file = file.file_name().unwrap().to_string_lossy();
            failures.push(format!("{file}: {:?} ({} {}): {}", case.name, case.method, case.path, wrong.join("; ")));
        }
    }

    // Nothing above took the server down: good requests still work.
    let good = [
        ("empty", json!({"inputs": {"question": "still here"}, "response_mode": "blocking", "user": "u"}), "answer", json!("still here")),
        ("inputs", json!({"inputs": {"text": "hi", "choice": "red", "count": 3, "agree": true}, "user": "u"}), "count", json!(3)),
    ];
    for (app, body, output, expected) in good {
        let auth = format!("Bearer {}", api_key(app));
        let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
        match client.try_send("POST", "/v1/workflows/run", &headers, body.to_string()).await {
            Ok(reply) if reply.status == 200 && reply.json()["data"]["outputs"][output] == expected => {}
            Ok(reply) => failures.push(format!("after the corpus, a good {app} run got {}: {}", reply.status, shorten(&reply.body))),
            Err(e) => failures.push(format!("after the corpus, a good {app} run failed: {e}")),
        }
    }

    server.shutdown().await.unwrap();
    mock.shutdown().await;
    assert!(failures.is_empty(), "{} of {} bad-request cases failed:\n{}", failures.len(), cases.len(), failures.join("\n"));
}
