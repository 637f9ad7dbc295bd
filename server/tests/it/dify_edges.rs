//! Dify's answers at the edges of its API, on the wire: `/health`, CORS
//! preflights and echoed origins, percent-encoded paths, run ids in every
//! spelling PostgreSQL reads, and transfer codings the server cannot read.

use crate::support::{TestClient, spawn_stack};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Sends `request` (a whole HTTP/1.1 request that asks to close) and returns
/// the whole answer as it came.
async fn whole_answer(url: &str, request: &str) -> String {
    let mut tcp = tokio::net::TcpStream::connect(url.trim_start_matches("http://")).await.unwrap();
    tcp.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tcp.read_to_end(&mut answer).await.unwrap();
    String::from_utf8(answer).unwrap()
}

/// Sends `request` (a whole HTTP/1.1 request that asks to close) and returns
/// the answer's head lines, without `date` and `content-length`, and its body.
async fn raw(url: &str, request: &str) -> (Vec<String>, String) {
    let answer = whole_answer(url, request).await;
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let lines = head
        .lines()
        .filter(|l| !l.starts_with("date:") && !l.starts_with("content-length:") && !l.starts_with("connection:"))
        .map(str::to_owned)
        .collect();
    (lines, body.to_owned())
}

#[tokio::test]
async fn health_answers_as_dify_does() {
    let stack = spawn_stack().await;
    let url = &stack.server.url;
    let (head, body) = raw(url, "GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head, ["HTTP/1.1 200 OK", "content-type: application/json", "x-version: 1.13.2", "x-env: PRODUCTION", "vary: Cookie"]);
    assert_eq!(body, format!("{{\"pid\": {}, \"status\": \"ok\", \"version\": \"1.13.2\"}}", std::process::id()));
    let (head, body) = raw(url, "HEAD /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert_eq!(body, "");
    let (head, body) = raw(url, "POST /health HTTP/1.1\r\nhost: x\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 405 METHOD NOT ALLOWED");
    assert!(head.contains(&"allow: GET, HEAD, OPTIONS".to_owned()), "{head:?}");
    assert!(body.starts_with("<!doctype html>") && body.contains("405 Method Not Allowed"), "{body}");
    let (head, body) = raw(url, "OPTIONS /health HTTP/1.1\r\nhost: x\r\norigin: https://x.example\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    assert!(!head.iter().any(|l| l.starts_with("access-control")), "no CORS on /health: {head:?}");
    assert_eq!(body, "");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn preflights_need_no_key_and_origins_are_echoed() {
    let stack = spawn_stack().await;
    let url = &stack.server.url;
    for (path, allow) in [
        ("/v1/workflows/run", "OPTIONS, POST"),
        ("/v1/workflows/run/0b8e4c7a-2d3f-4b6c-8d9e-0f1a2b3c4d5e", "GET, HEAD, OPTIONS"),
        ("/v1/workflows/tasks/t/stop", "OPTIONS, POST"),
        ("/v1/parameters", "GET, HEAD, OPTIONS"),
        ("/v1/info", "GET, HEAD, OPTIONS"),
    ] {
        let request = format!(
            "OPTIONS {path} HTTP/1.1\r\nhost: x\r\norigin: https://x.example\r\naccess-control-request-method: POST\r\n\
             access-control-request-headers: authorization, content-type, x-foo\r\nconnection: close\r\n\r\n"
        );
        let (head, body) = raw(url, &request).await;
        assert_eq!(
            head,
            [
                "HTTP/1.1 200 OK",
                "content-type: text/html; charset=utf-8",
                &format!("allow: {allow}"),
                "access-control-allow-origin: https://x.example",
                "access-control-expose-headers: X-Env, X-Trace-Id, X-Version",
                "access-control-allow-headers: authorization, content-type",
                "access-control-allow-methods: DELETE, GET, OPTIONS, PATCH, POST, PUT",
                "vary: Origin, Cookie",
                "x-version: 1.13.2",
                "x-env: PRODUCTION",
            ],
            "{path}"
        );
        assert_eq!(body, "");
    }
    // An unknown path has no CORS to offer.
    let (head, _) = raw(url, "OPTIONS /v1/nope HTTP/1.1\r\nhost: x\r\norigin: https://x.example\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 404 NOT FOUND");
    // A browser's run: its origin comes back, with Vary: Origin.
    let body = json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"}).to_string();
    let request = format!(
        "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\norigin: https://x.example\r\nauthorization: Bearer {}\r\n\
         content-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        stack.api_key("empty"),
        body.len()
    );
    let (head, _) = raw(url, &request).await;
    assert_eq!(head[0], "HTTP/1.1 200 OK");
    let cors: Vec<&String> = head.iter().filter(|l| l.starts_with("access-control") || l.starts_with("vary")).collect();
    assert_eq!(
        cors,
        [
            "access-control-allow-origin: https://x.example",
            "access-control-expose-headers: X-Env, X-Trace-Id, X-Version",
            "vary: Origin, Cookie"
        ]
    );
    // And on its errors too: a 401 without a key.
    let (head, _) = raw(url, "GET /v1/info HTTP/1.1\r\nhost: x\r\norigin: https://x.example\r\nconnection: close\r\n\r\n").await;
    assert_eq!(head[0], "HTTP/1.1 401 UNAUTHORIZED");
    assert!(head.contains(&"access-control-allow-origin: https://x.example".to_owned()), "{head:?}");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn paths_are_percent_decoded_before_routing_and_run_ids_read_as_postgresql_does() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let key = stack.api_key("empty");
    let auth = format!("Bearer {key}");
    let headers = [("authorization", auth.as_str()), ("content-type", "application/json")];
    let body = json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"}).to_string();
    let reply = client.send("POST", "/v1/workflows/%72un", &headers, body.clone()).await;
    assert_eq!(reply.status, 200, "{}", reply.text());
    let id = reply.json()["workflow_run_id"].as_str().unwrap().to_owned();
    let plain = id.replace('-', "");
    for spelling in [id.clone(), id.to_uppercase(), plain.clone(), format!("%7B{id}%7D"), format!("{}%2D{}", &plain[..8], &plain[8..])] {
        let reply = client.send("GET", &format!("/v1/workflows/run/{spelling}"), &headers[..1], "").await;
        assert_eq!(reply.status, 200, "{spelling}: {}", reply.text());
        assert_eq!(reply.json()["id"], id.as_str(), "the answer names the run canonically");
    }
    // A decoded `/` is a real one: no route has that many segments.
    let reply = client.send("GET", &format!("/v1/workflows/run/{}%2F{}", &id[..8], &id[9..]), &headers[..1], "").await;
    assert_eq!(reply.status, 404);
    // Not a UUID at all: not found (Dify's PostgreSQL answers 500 here).
    let reply = client.send("GET", "/v1/workflows/run/not-a-uuid", &headers[..1], "").await;
    assert_eq!((reply.status.as_u16(), reply.json()["code"].clone()), (404, json!("not_found")));
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_transfer_coding_the_server_cannot_read_is_501() {
    let stack = spawn_stack().await;
    let request = format!(
        "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\ncontent-type: application/json\r\n\
         transfer-encoding: gzip, chunked\r\n\r\n5\r\nxxxxx\r\n0\r\n\r\n",
        stack.api_key("empty")
    );
    let (head, body) = raw(&stack.server.url, &request).await;
    assert_eq!(head[0], "HTTP/1.1 501 NOT IMPLEMENTED");
    let body: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["code"], "not_implemented");
    assert!(body["message"].as_str().unwrap().contains("\"gzip\""), "{body}");
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn the_checks_of_difys_stress_test_wrapper_pass() {
    // `scripts/stress-test/run_locust_stress_test.sh` in Dify's repository
    // checks both services this way before it starts Locust.
    let stack = spawn_stack().await;
    let checks = [format!("{}/health", stack.server.url), format!("{}/models", stack.mock.base_url())];
    for url in checks {
        let status = tokio::process::Command::new("curl").args(["-s", "-f", &url]).output().await.expect("curl runs").status;
        assert!(status.success(), "curl -s -f {url}: {status}");
    }
    stack.shutdown().await.unwrap();
}

/// The run route is served without the router (`serve::ConnService`); its
/// answers are what the router's own route gives, head line by head line
/// (`content-length` in its place too), for successes and for each refusal.
#[tokio::test]
async fn the_run_route_answers_as_the_router_does() {
    use http_body_util::BodyExt;
    let stack = spawn_stack().await;
    let (url, key) = (&stack.server.url, stack.api_key("empty"));
    let ok = json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"}).to_string();
    let missing = json!({"inputs": {}, "response_mode": "blocking", "user": "u"}).to_string();
    let cases: [(&str, &str, &str, &str); 5] = [
        (key, "application/json", &ok, "200 OK"),
        (key, "application/json", &missing, "400 BAD REQUEST"),
        (key, "text/plain", &ok, "415 UNSUPPORTED MEDIA TYPE"),
        ("app-unknown", "application/json", &ok, "401 UNAUTHORIZED"),
        (key, "application/json", "{", "400 BAD REQUEST"),
    ];
    for (bearer, content_type, body, status) in cases {
        let wire = format!(
            "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {bearer}\r\ncontent-type: {content_type}\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        let answer = whole_answer(url, &wire).await;
        let (head, wire_body) = answer.split_once("\r\n\r\n").unwrap();
        // hyper writes the answer's own headers, then `connection` (asked
        // for), then `date`; and a `content-length` the headers lack after
        // `connection`, which is why the route sets it among them.
        let wire_head: Vec<&str> = head.lines().filter(|l| !l.starts_with("date:")).collect();
        assert_eq!(wire_head[0], format!("HTTP/1.1 {status}"));

        let request = http::Request::post("/v1/workflows/run")
            .header("authorization", format!("Bearer {bearer}"))
            .header("content-type", content_type)
            .header("content-length", body.len())
            .body(axum::body::Body::from(body.to_owned()))
            .unwrap();
        let routed = tower::ServiceExt::oneshot(server::app(stack.server.state.clone()), request).await.unwrap();
        let mut routed_head = vec![format!("HTTP/1.1 {}", wire_head[0].split_once(' ').unwrap().1)];
        assert_eq!(routed.status().as_u16().to_string(), status[..3]);
        routed_head.extend(routed.headers().iter().map(|(name, value)| format!("{name}: {}", value.to_str().unwrap())));
        routed_head.push("connection: close".to_owned());
        // A success's length varies with its times' digits; its place does not.
        let place = |line: &str| {
            if status.starts_with("200") && line.starts_with("content-length:") { "content-length".to_owned() } else { line.to_owned() }
        };
        let (wire_head, routed_head): (Vec<String>, Vec<String>) =
            (wire_head.iter().map(|l| place(l)).collect(), routed_head.iter().map(|l| place(l)).collect());
        assert_eq!(wire_head, routed_head, "{status}");
        let routed_body = String::from_utf8(routed.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap();
        if status.starts_with("200") {
            // Ids and times differ from run to run; the shape does not.
            let (wire, routed): (serde_json::Value, serde_json::Value) =
                (serde_json::from_str(wire_body).unwrap(), serde_json::from_str(&routed_body).unwrap());
            assert_eq!(wire["data"]["outputs"], routed["data"]["outputs"]);
            assert_eq!(wire["data"]["status"], routed["data"]["status"]);
        } else {
            assert_eq!(wire_body, routed_body);
        }
    }
    stack.shutdown().await.unwrap();
}
