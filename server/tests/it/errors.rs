//! The error matrix: each bad request gets real Dify's status, reason phrase
//! and exact body (`../shared/reference/dify-1.13.2-errors.md`), or the right
//! 4xx where Dify answers 500 or hangs.

use crate::support::TestStackOptions;
use crate::support::{TestClient, WholeReply, spawn_stack, spawn_stack_with};
use mock::{Fault, Script};
use serde_json::json;
use server::http::error::{MSG_BAD_REQUEST, MSG_BAD_SCHEME, MSG_BAD_TOKEN, MSG_NO_AUTH, MSG_NO_USER};

const KEY: &str = "app-flowbench-empty";
const JSON: (&str, &str) = ("content-type", "application/json");

struct ErrorCase {
    name: &'static str,
    method: &'static str,
    path: &'static str,
    auth: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: u16,
    /// `None`: a 2xx whose body is checked elsewhere.
    error: Option<(&'static str, String)>,
}

fn case(name: &'static str, status: u16, body: impl Into<Vec<u8>>) -> ErrorCase {
    ErrorCase {
        name,
        method: "POST",
        path: "/v1/workflows/run",
        auth: Some("Bearer app-flowbench-empty"),
        content_type: Some("application/json"),
        body: body.into(),
        status,
        error: None,
    }
}

impl ErrorCase {
    fn err(mut self, code: &'static str, message: impl Into<String>) -> Self {
        self.error = Some((code, message.into()));
        self
    }
    fn auth(mut self, auth: Option<&'static str>) -> Self {
        self.auth = auth;
        self
    }
    fn content_type(mut self, ct: Option<&'static str>) -> Self {
        self.content_type = ct;
        self
    }
    fn at(mut self, method: &'static str, path: &'static str) -> Self {
        self.method = method;
        self.path = path;
        self
    }
}

#[track_caller]
fn check(case: &ErrorCase, reply: &WholeReply) {
    let name = case.name;
    assert_eq!(reply.status.as_u16(), case.status, "{name}: status; body {}", reply.text());
    let Some((code, message)) = &case.error else { return };
    let expected =
        serde_json::to_string(&json!({"code": code, "message": message, "status": case.status})).unwrap().replace('/', "\\/") + "\n";
    assert_eq!(reply.text(), expected, "{name}: body");
    assert_eq!(reply.header("content-type"), Some("application/json"), "{name}: content type");
    assert_eq!(reply.header("content-length"), Some(expected.len().to_string().as_str()), "{name}: length");
    // werkzeug's phrases: upper case, and 413 keeps its old name.
    let reason = if case.status == 413 {
        "REQUEST ENTITY TOO LARGE".to_owned()
    } else {
        reply.status.canonical_reason().unwrap().to_ascii_uppercase()
    };
    assert_eq!(reply.reason.as_deref(), Some(reason.as_str()), "{name}: reason phrase");
    let www = reply.header("www-authenticate");
    assert_eq!(www, (case.status == 401).then_some("Bearer realm=\"api\""), "{name}: WWW-Authenticate");
    assert_eq!(reply.header("access-control-allow-origin").is_some(), case.status != 405, "{name}: CORS headers");
}

fn pydantic(field: &str, msg: &str, kind: &str, value: &str, ty: &str) -> String {
    format!(
        "1 validation error for WorkflowRunPayload\n{field}\n  {msg} [type={kind}, input_value={value}, input_type={ty}]\n    For further information visit https://errors.pydantic.dev/2.12/v/{kind}"
    )
}

#[tokio::test]
async fn error_matrix() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let ok = r#"{"inputs":{"question":"hi"},"response_mode":"blocking","user":"u"}"#;
    let cases = [
        case("no auth header", 401, ok).auth(None).err("unauthorized", MSG_NO_AUTH),
        case("bearer without token", 401, ok).auth(Some("Bearer")).err("unauthorized", MSG_NO_AUTH),
        case("basic scheme", 401, ok).auth(Some("Basic xyz")).err("unauthorized", MSG_BAD_SCHEME),
        case("unknown key", 401, ok).auth(Some("Bearer app-wrong")).err("unauthorized", MSG_BAD_TOKEN),
        case("lower-case scheme works", 200, ok).auth(Some("bearer app-flowbench-empty")),
        case("invalid JSON", 400, "{not json").err("bad_request", MSG_BAD_REQUEST),
        case("empty body", 400, "").err("bad_request", MSG_BAD_REQUEST),
        case("JSON array (Dify: 500)", 400, "[]").err("bad_request", MSG_BAD_REQUEST),
        case("JSON string", 400, "\"x\"").err("bad_request", MSG_BAD_REQUEST),
        case("invalid UTF-8", 400, &b"{\"inputs\":{\"question\":\"\xff\"},\"user\":\"u\"}"[..]).err("bad_request", MSG_BAD_REQUEST),
        case("text/plain", 415, ok).content_type(Some("text/plain")).err(
            "unsupported_media_type",
            "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.",
        ),
        case("no content type", 415, ok).content_type(None).err(
            "unsupported_media_type",
            "Did not attempt to load JSON data because the request Content-Type was not 'application/json'.",
        ),
        case("missing user", 400, r#"{"inputs":{},"response_mode":"blocking"}"#).err("invalid_param", MSG_NO_USER),
        case("empty user", 400, r#"{"inputs":{"question":"x"},"user":""}"#).err("invalid_param", MSG_NO_USER),
        case("missing inputs", 400, r#"{"response_mode":"blocking","user":"bench"}"#).err(
            "invalid_param",
            pydantic("inputs", "Field required", "missing", "{'response_mode': 'blocking', 'user': 'bench'}", "dict"),
        ),
        case("inputs not an object", 400, r#"{"inputs":[1],"user":"bench"}"#)
            .err("invalid_param", pydantic("inputs", "Input should be a valid dictionary", "dict_type", "[1]", "list")),
        case("bogus response_mode", 400, r#"{"inputs":{},"response_mode":"bogus","user":"bench"}"#).err(
            "invalid_param",
            pydantic("response_mode", "Input should be 'blocking' or 'streaming'", "literal_error", "'bogus'", "str"),
        ),
        case("required input missing", 400, r#"{"inputs":{},"user":"u"}"#).err("invalid_param", "question is required in input form"),
        case("required input missing, streaming (Dify: hangs 300 s)", 400, r#"{"inputs":{},"response_mode":"streaming","user":"u"}"#)
            .err("invalid_param", "question is required in input form"),
        case("required input null", 400, r#"{"inputs":{"question":null},"user":"u"}"#)
            .err("invalid_param", "question is required in input form"),
        case("required input empty is present", 200, r#"{"inputs":{"question":""},"user":"u"}"#),
        case("input of the wrong type", 400, r#"{"inputs":{"question":123},"user":"u"}"#)
            .err("invalid_param", "(type 'text-input') question in input form must be a string"),
        case("input over max_length", 400, format!(r#"{{"inputs":{{"question":"{}"}},"user":"u"}}"#, "x".repeat(2 << 20)))
            .err("invalid_param", "question in input form must be less than 256 characters"),
        case("2 MiB of padding is fine", 200, format!(r#"{{"inputs":{{"question":"hi"}},"user":"u","pad":"{}"}}"#, "x".repeat(2 << 20))),
        case(
            "body over the 10 MiB limit (Dify: no limit)",
            413,
            format!(r#"{{"inputs":{{"question":"hi"}},"user":"u","pad":"{}"}}"#, "x".repeat(11 << 20)),
        )
        .err("request_entity_too_large", "The data value transmitted exceeds the capacity limit."),
        case("GET on the run endpoint", 405, "")
            .at("GET", "/v1/workflows/run")
            .err("method_not_allowed", "The method is not allowed for the requested URL."),
        case("POST on parameters", 405, "")
            .at("POST", "/v1/parameters")
            .err("method_not_allowed", "The method is not allowed for the requested URL."),
        case("unknown run id", 404, "")
            .at("GET", "/v1/workflows/run/00000000-0000-4000-8000-000000000000")
            .err("not_found", "Workflow run not found."),
        case("non-UUID run id (Dify: 500)", 404, "").at("GET", "/v1/workflows/run/not-a-uuid").err("not_found", "Workflow run not found."),
        case("unknown path", 404, "").at("GET", "/v1/nope").err(
            "not_found",
            "The requested URL was not found on the server. If you entered the URL manually please check your spelling and try again.",
        ),
        case("stop without user", 400, "{}").at("POST", "/v1/workflows/tasks/x/stop").err("invalid_param", MSG_NO_USER),
        case("stop of an unknown task succeeds", 200, r#"{"user":"u"}"#).at("POST", "/v1/workflows/tasks/x/stop"),
        case("parameters without auth", 401, "").at("GET", "/v1/parameters").auth(None).err("unauthorized", MSG_NO_AUTH),
    ];
    for c in &cases {
        let mut headers = Vec::new();
        if let Some(auth) = c.auth {
            headers.push(("authorization", auth));
        }
        if let Some(ct) = c.content_type {
            headers.push(("content-type", ct));
        }
        let reply = client.send(c.method, c.path, &headers, c.body.clone()).await;
        check(c, &reply);
    }
    let stop = client
        .send("POST", "/v1/workflows/tasks/x/stop", &[("authorization", "Bearer app-flowbench-empty"), JSON], r#"{"user":"u"}"#)
        .await;
    assert_eq!(stop.text(), "{\"result\":\"success\"}\n");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn body_limit_is_configurable() {
    let mut options = TestStackOptions::default();
    options.limits.max_body_bytes = 64;
    let stack = spawn_stack_with(options).await;
    let client = TestClient::for_stack(&stack);
    let small = json!({"inputs": {"question": "hi"}, "user": "u"});
    assert_eq!(client.run(KEY, &small).await.status, 200);
    let big = json!({"inputs": {"question": "hi"}, "user": "u", "pad": "x".repeat(100)});
    let reply = client.run(KEY, &big).await;
    check(
        &case("over a 64-byte limit", 413, "").err("request_entity_too_large", "The data value transmitted exceeds the capacity limit."),
        &reply,
    );
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn concurrency_cap_answers_429() {
    let script = Script { fault: Some(Fault::StallAfter { chunks: 1 }), ..Script::default() };
    let stack = spawn_stack_with(TestStackOptions { script, max_concurrent_runs: Some(1), ..TestStackOptions::default() }).await;
    let client = TestClient::for_stack(&stack);
    let body = json!({"inputs": {"question": "hold"}, "response_mode": "streaming", "user": "u"});
    let held = client.open_stream(stack.api_key("llm"), &body).await;
    assert_eq!(held.status(), 200);
    let reply = client.run(stack.api_key("llm"), &body).await;
    check(&case("over the cap", 429, "").err("too_many_requests", "Too many requests. Please try again later."), &reply);
    // Another app has its own cap.
    let other = json!({"inputs": {"question": "hi"}, "user": "u"});
    assert_eq!(client.run(KEY, &other).await.status, 200);
    drop(held);
    assert_eq!(stack.server.state.stats().runs_rejected_busy, 1);
    stack.shutdown().await.unwrap();
}

/// Sends a chunked run request whose body arrives in `parts`, one write
/// (and one chunk) each, a little apart; returns the raw response.
async fn chunked_run(addr: &str, parts: &[&str]) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/workflows/run HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {KEY}\r\n\
         content-type: application/json\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    for part in parts {
        tcp.write_all(format!("{:x}\r\n{part}\r\n", part.len()).as_bytes()).await.unwrap();
        tcp.flush().await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    // The server may answer 413 and close before the last chunk.
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut reply = Vec::new();
    let _ = tcp.read_to_end(&mut reply).await;
    String::from_utf8_lossy(&reply).into_owned()
}

#[tokio::test]
async fn a_chunked_body_is_joined_and_held_to_the_limit() {
    let mut options = TestStackOptions::default();
    options.limits.max_body_bytes = 64;
    let stack = spawn_stack_with(options).await;
    let addr = stack.server.url.trim_start_matches("http://").to_owned();
    // Under the limit, in three chunks that split a string and a key.
    let reply = chunked_run(&addr, &[r#"{"inputs":{"question":"pa"#, r#"rt one, part two"},"us"#, r#"er":"u"}"#]).await;
    assert!(reply.starts_with("HTTP/1.1 200 OK\r\n"), "{reply}");
    assert!(reply.contains(r#""outputs": {"answer": "part one, part two"}"#), "{reply}");
    // Over it, with no Content-Length to refuse it by: counted as it comes.
    let pad = "x".repeat(40);
    let reply = chunked_run(&addr, &[r#"{"inputs":{"question":"hi"},"#, &format!(r#""pad":"{pad}"#), r#""}"#]).await;
    assert!(reply.starts_with("HTTP/1.1 413 REQUEST ENTITY TOO LARGE\r\n"), "{reply}");
    assert!(reply.contains(r#""code":"request_entity_too_large""#), "{reply}");
    stack.shutdown().await.unwrap();
}
