//! Clients that are slow to send: a head that never ends, more waiting
//! connections than the cap, slow heads at a low descriptor limit, and
//! clients that write a whole refused body before they read the answer.

use crate::support::{TestClient, TestStackOptions, eventually, spawn_stack_with};
use serde_json::json;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HALF_HEAD: &[u8] = b"POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n";

async fn connect(url: &str) -> TcpStream {
    TcpStream::connect(url.trim_start_matches("http://")).await.expect("connect")
}

/// Whether the server has closed `stream`, reading whatever it sent first.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let mut buf = [0u8; 4096];
    let read = async {
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    };
    tokio::time::timeout(limit, read).await.is_ok()
}

/// Whether `stream` is still open now (nothing to read, no end of stream).
fn still_open(stream: &TcpStream) -> bool {
    let mut buf = [0u8; 1];
    matches!(stream.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

#[tokio::test]
async fn a_head_not_complete_in_time_is_closed_and_counted() {
    let mut options = TestStackOptions::default();
    options.limits.header_read_timeout = Duration::from_millis(300);
    let stack = spawn_stack_with(options).await;
    let url = stack.server.url.clone();
    // Nothing sent; half a head; a head sent a byte every 50 ms, forever.
    let mut silent = connect(&url).await;
    let mut half = connect(&url).await;
    half.write_all(HALF_HEAD).await.unwrap();
    let mut dribble = connect(&url).await;
    let dribbler = tokio::spawn(async move {
        let mut i = 0usize;
        loop {
            let byte = HALF_HEAD[i % HALF_HEAD.len()];
            if dribble.write_all(&[byte]).await.is_err() {
                return true;
            }
            i += 1;
            if i > 2_000 {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    // A client that was served once and then stays idle is closed too.
    let mut idle = connect(&url).await;
    idle.write_all(b"GET /v1/nope HTTP/1.1\r\nhost: x\r\n\r\n").await.unwrap();
    let limit = Duration::from_secs(20);
    assert!(closed_within(&mut silent, limit).await, "a connection that sends nothing is closed");
    assert!(closed_within(&mut half, limit).await, "half a head is closed");
    assert!(closed_within(&mut idle, limit).await, "an idle keep-alive connection is closed");
    assert!(dribbler.await.unwrap(), "a head sent a byte at a time is closed");
    let state = stack.server.state.clone();
    eventually("four head timeouts counted", Duration::from_secs(5), || state.stats().connections_head_timeout == 4).await;
    // A client that sends its request at once is served as before.
    let reply = TestClient::for_stack(&stack)
        .run(stack.api_key("empty"), &json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"}))
        .await;
    assert_eq!(reply.status, 200);
    stack.shutdown().await.unwrap();
}

#[tokio::test]
async fn past_the_waiting_cap_the_connection_waiting_longest_is_closed() {
    let mut options = TestStackOptions::default();
    options.limits.max_waiting_connections = Some(8);
    let stack = spawn_stack_with(options).await;
    let url = stack.server.url.clone();
    let state = stack.server.state.clone();
    let mut slow = Vec::new();
    for i in 0..16u64 {
        let mut stream = connect(&url).await;
        stream.write_all(HALF_HEAD).await.unwrap();
        slow.push(stream);
        // Accepted in this order, so "longest" is well defined.
        eventually("the server registers the connection", Duration::from_secs(5), || state.stats().connections_open == i + 1).await;
    }
    eventually("8 evicted", Duration::from_secs(10), || state.stats().connections_evicted == 8).await;
    for (i, stream) in slow.iter_mut().enumerate() {
        if i < 8 {
            assert!(closed_within(stream, Duration::from_secs(5)).await, "connection {i} waited longest and is closed");
        } else {
            assert!(still_open(stream), "connection {i} is among the 8 newest and stays");
        }
    }
    // Good clients are served while the cap is full of slow heads: each new
    // connection sends its head at once and is never the longest waiting.
    let client = TestClient::for_stack(&stack);
    for _ in 0..20 {
        let reply =
            client.run(stack.api_key("empty"), &json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"})).await;
        assert_eq!(reply.status, 200);
    }
    drop(slow);
    stack.shutdown().await.unwrap();
}

/// What `GET /_flowbench/stats` says, over a fresh connection.
async fn stats_of(url: &str) -> serde_json::Value {
    TestClient::new(url).send("GET", "/_flowbench/stats", &[], "").await.json()
}

use crate::support::open_descriptors;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn good_clients_are_served_while_twice_the_descriptor_limit_in_slow_heads_is_held() {
    const LIMIT: usize = 256;
    server::http::conn::raise_open_file_limit();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}");
    let workflow = mock::workspace_root().join("fixtures/workflows/start_end.yml");
    // `ulimit -n` in the shell sets both limits, so the server cannot raise
    // its own; the default waiting cap is then a quarter of it.
    let mut child = tokio::process::Command::new("sh")
        .arg("-c")
        .arg(format!("ulimit -n {LIMIT} && exec \"$0\" \"$@\""))
        .arg(env!("CARGO_BIN_EXE_flowbench-server"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--app", &format!("app-empty={}", workflow.display())])
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("flowbench-server starts");
    let pid = child.id().expect("pid");
    let client = TestClient::new(&url);
    let body = json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": "u"});
    let ready = async {
        while client.try_send("GET", "/_flowbench/stats", &[], "").await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready).await.expect("the server answers");
    let baseline = open_descriptors(pid);
    // 2 × LIMIT slow heads, each reconnecting when the server closes it.
    let attack = tokio_util::sync::CancellationToken::new();
    let mut attackers = tokio::task::JoinSet::new();
    for _ in 0..2 * LIMIT {
        let (url, attack) = (url.clone(), attack.clone());
        attackers.spawn(async move {
            let mut reconnects = 0u64;
            while !attack.is_cancelled() {
                let Ok(mut stream) = TcpStream::connect(url.trim_start_matches("http://")).await else {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    continue;
                };
                let _ = stream.write_all(HALF_HEAD).await;
                tokio::select! {
                    _ = closed_within(&mut stream, Duration::from_secs(60)) => reconnects += 1,
                    () = attack.cancelled() => {}
                }
            }
            reconnects
        });
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Every good request, each on a new connection, is answered.
    for i in 0..50 {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            TestClient::new(&url).try_send(
                "POST",
                "/v1/workflows/run",
                &[("authorization", "Bearer app-empty"), ("content-type", "application/json")],
                body.to_string(),
            ),
        )
        .await
        .unwrap_or_else(|_| panic!("good request {i} got no answer in 10 s"))
        .unwrap_or_else(|e| panic!("good request {i}: {e}"));
        assert_eq!(reply.status, 200, "good request {i}");
    }
    attack.cancel();
    let mut reconnects = 0;
    while let Some(joined) = attackers.join_next().await {
        reconnects += joined.unwrap();
    }
    assert!(reconnects > 0, "the slow heads were closed to make room");
    let stats = stats_of(&url).await;
    assert!(stats["connections_evicted"].as_u64().unwrap() > 0, "{stats}");
    // Nothing leaked: the server's descriptors return to where they were.
    eventually("descriptors back to baseline", Duration::from_secs(20), || open_descriptors(pid) <= baseline + 2).await;
    child.start_kill().unwrap();
    let _ = child.wait().await;
}

/// A request as Python's `http.client` sends it: the whole body written
/// before a byte of the answer is read.
async fn write_all_then_read(url: &str, head: &str, body_len: usize) -> std::io::Result<String> {
    let mut stream = connect(url).await;
    let head = format!("{head}content-length: {body_len}\r\n\r\n");
    stream.write_all(head.as_bytes()).await?;
    let chunk = vec![b'x'; 64 * 1024];
    let mut left = body_len;
    while left > 0 {
        let n = left.min(chunk.len());
        stream.write_all(&chunk[..n]).await?;
        left -= n;
    }
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer).await.or_else(|e| if answer.is_empty() { Err(e) } else { Ok(0) })?;
    Ok(String::from_utf8_lossy(&answer).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_writes_a_refused_body_before_reading_gets_the_answer() {
    let mut options = TestStackOptions::default();
    options.limits.max_body_bytes = 256 * 1024;
    let stack = spawn_stack_with(options).await;
    let url = stack.server.url.clone();
    let key = stack.api_key("empty");
    let over = 256 * 1024 + 128 * 1024;
    let post =
        |auth: &str| format!("POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\n{auth}content-type: application/json\r\nconnection: close\r\n");
    for i in 0..100 {
        let answer = write_all_then_read(&url, &post(&format!("authorization: Bearer {key}\r\n")), over)
            .await
            .unwrap_or_else(|e| panic!("try {i}: {e}"));
        assert!(answer.starts_with("HTTP/1.1 413"), "try {i}: {answer}");
        assert!(answer.contains("\"code\":\"request_entity_too_large\""), "try {i}: {answer}");
    }
    // The same for the answers given before the body: a wrong key, a wrong
    // content type, an unknown route.
    let answer = write_all_then_read(&url, &post("authorization: Bearer app-wrong\r\n"), 200_000).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 401"), "{answer}");
    let answer = write_all_then_read(
        &url,
        &format!("POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: text/plain\r\n"),
        200_000,
    )
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 415"), "{answer}");
    let answer = write_all_then_read(&url, "POST /v1/nope HTTP/1.1\r\nhost: x\r\n", 200_000).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 404"), "{answer}");
    stack.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_standard_clients_get_the_413() {
    // The client of the report that found the fault: urllib over
    // http.client, a 12 MiB body against the default 10 MiB limit.
    let stack = spawn_stack_with(TestStackOptions::default()).await;
    let script = format!(
        r#"
import json, urllib.request, urllib.error
request = urllib.request.Request("{url}/v1/workflows/run", data=b"x" * (12 * 1024 * 1024),
    headers={{"Authorization": "Bearer {key}", "Content-Type": "application/json"}})
for _ in range(5):
    try:
        urllib.request.urlopen(request)
        print("no error")
    except urllib.error.HTTPError as e:
        print(e.code, json.loads(e.read())["code"])
"#,
        url = stack.server.url,
        key = stack.api_key("empty")
    );
    let output = tokio::process::Command::new("python3").arg("-c").arg(script).output().await.expect("python3 runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "python3 failed: {}\n{stdout}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(stdout.lines().collect::<Vec<_>>(), vec!["413 request_entity_too_large"; 5], "{stdout}");
    stack.shutdown().await.unwrap();
}
