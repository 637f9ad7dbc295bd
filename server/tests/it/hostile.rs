//! The hostile-input suite: requests no well-behaved client sends, against
//! the server binary over real sockets. Each case has its expected answer;
//! after each group the server must still serve, and its descriptors and
//! memory must return to their baseline. docs/hostile.md lists the cases.

use mock::{MockLlm, Script};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const EMPTY: &str = "app-empty";
const LLM: &str = "app-llm";
const OTHER: &str = "app-other";

/// The server binary with tight limits, so each slow case ends quickly.
struct ServerProcess {
    child: tokio::process::Child,
    pid: u32,
    addr: String,
    _mock: MockLlm,
    dir: std::path::PathBuf,
}

impl ServerProcess {
    /// Streams long enough to be stopped, one token each `inter_token_delay`
    /// (zero: at full speed, so that a reader that stops reading fills its
    /// buffers at once).
    async fn start(inter_token_delay: Duration) -> Self {
        server::http::conn::raise_open_file_limit();
        let script = Script { reply: mock::Reply::Tokens(2_000_000), inter_token_delay, ..Script::default() };
        let mock = MockLlm::start(script, "127.0.0.1:0".parse().unwrap()).await.unwrap();
        let dir = std::env::temp_dir().join(format!("flowbench-hostile-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let root = mock::workspace_root();
        let workflow = |name: &str| format!("{:?}", root.join("fixtures/workflows").join(name).display().to_string());
        let config = format!(
            "listen = \"127.0.0.1:{port}\"\n[provider]\nbase_url = \"{}\"\n[limits]\nmax_body_bytes = 4194304\n\
             header_read_timeout = \"3s\"\nbody_read_timeout = \"1s\"\nstalled_client_timeout = \"1s\"\nlinger_timeout = \"500ms\"\n\
             shutdown_grace = \"6s\"\nshutdown_flush = \"3s\"\n\
             [[apps]]\napi_key = \"{EMPTY}\"\nworkflow = {}\n[[apps]]\napi_key = \"{OTHER}\"\nworkflow = {}\n\
             [[apps]]\napi_key = \"{LLM}\"\nworkflow = {}\n",
            mock.base_url(),
            workflow("start_end.yml"),
            workflow("start_end.yml"),
            workflow("start_llm_end.yml"),
        );
        std::fs::write(dir.join("server.toml"), config).unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowbench-server"))
            .arg("--config")
            .arg(dir.join("server.toml"))
            .env("RUST_LOG", "error")
            .kill_on_drop(true)
            .spawn()
            .expect("flowbench-server starts");
        let pid = child.id().unwrap();
        let addr = format!("127.0.0.1:{port}");
        let target = Self { child, pid, addr, _mock: mock, dir };
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        while target.try_health().await.is_none() {
            assert!(tokio::time::Instant::now() < deadline, "the server never answered");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        target
    }

    async fn try_health(&self) -> Option<u16> {
        let answer = exchange(&self.addr, b"GET /health HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        answer.statuses.first().copied()
    }

    fn fds(&self) -> usize {
        crate::support::open_descriptors(self.pid)
    }

    fn rss_kib(&self) -> u64 {
        crate::support::rss_kib(self.pid)
    }

    async fn stats(&self) -> Value {
        let answer = exchange(&self.addr, b"GET /_flowbench/stats HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").await;
        serde_json::from_str(&answer.body).unwrap_or_else(|e| panic!("stats: {e}: {answer:?}"))
    }

    /// After a group: the server still serves, and what the group opened
    /// and allocated is given back.
    async fn settled(&self, group: &str, baseline: (usize, u64)) {
        assert_eq!(self.try_health().await, Some(200), "{group}: the server no longer serves");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let (fds, rss) = (self.fds(), self.rss_kib());
            if fds <= baseline.0 + 2 && rss <= baseline.1 + 64 * 1024 {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{group}: descriptors {fds} (baseline {}) or RSS {rss} KiB (baseline {}) did not come back",
                baseline.0,
                baseline.1
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.start_kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What came back on one connection: each answer's status, the last body.
#[derive(Debug, Default)]
struct ConnAnswers {
    statuses: Vec<u16>,
    body: String,
    raw: String,
}

/// Writes `request` and reads until the server closes (or 5 s pass).
async fn exchange(addr: &str, request: &[u8]) -> ConnAnswers {
    let Ok(mut tcp) = TcpStream::connect(addr).await else { return ConnAnswers::default() };
    if tcp.write_all(request).await.is_err() {
        return ConnAnswers::default();
    }
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), tcp.read_to_end(&mut raw)).await;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let statuses =
        raw.match_indices("HTTP/1.").filter_map(|(i, _)| raw.get(i + 9..i + 12)?.parse().ok()).filter(|&s: &u16| s != 100).collect();
    let body = raw.rsplit("\r\n\r\n").next().unwrap_or_default().to_owned();
    ConnAnswers { statuses, body, raw }
}

fn post(path: &str, key: &str, body: &str) -> Vec<u8> {
    format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn run(body: &str) -> Vec<u8> {
    post("/v1/workflows/run", EMPTY, body)
}

/// One case: its name, its bytes, and the statuses it must get, in order.
struct HostileCase {
    name: &'static str,
    request: Vec<u8>,
    expect: &'static [u16],
    /// Text the last body must hold, if any.
    body_has: Option<&'static str>,
}

fn case(name: &'static str, request: impl Into<Vec<u8>>, expect: &'static [u16], body_has: Option<&'static str>) -> HostileCase {
    HostileCase { name, request: request.into(), expect, body_has }
}

/// The body hyper's own 400 gets (`conn::ParseErrorBodies`).
const NOT_HTTP: &str = "{\"code\":\"bad_request\",\"message\":\"The request is not valid HTTP/1.1";

fn framing_cases() -> Vec<HostileCase> {
    let ok = r#"{"inputs":{"question":"q"},"response_mode":"blocking","user":"u"}"#;
    let info = format!("GET /v1/info HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\n");
    vec![
        case("two pipelined requests in one write", format!("{info}\r\n{info}connection: close\r\n\r\n"), &[200, 200], None),
        case("HTTP/1.0, no Host", format!("GET /v1/info HTTP/1.0\r\nauthorization: Bearer {EMPTY}\r\n\r\n"), &[200], None),
        case(
            "Content-Length and Transfer-Encoding together (read as chunked, then closed: RFC 9112 6.3)",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 content-length: 5\r\ntransfer-encoding: chunked\r\n\r\n{:x}\r\n{ok}\r\n0\r\n\r\n",
                ok.len()
            ),
            &[200],
            Some("succeeded"),
        ),
        case(
            "a Content-Length above the bytes sent (the rest never comes)",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{ok}",
                ok.len() + 100
            ),
            &[408],
            Some("request_timeout"),
        ),
        case(
            "a Content-Length below the bytes sent (the rest read as the next request)",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 content-length: {}\r\n\r\n{ok}garbage that is not a request\r\n\r\n",
                ok.len()
            ),
            &[200, 400],
            None,
        ),
        case(
            "a chunk size that is not hex",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 transfer-encoding: chunked\r\n\r\nzz\r\n{ok}\r\n0\r\n\r\n"
            ),
            &[400],
            Some("bad_request"),
        ),
        case(
            "a chunk shorter than its size, then the end",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 transfer-encoding: chunked\r\n\r\nffff\r\n{ok}\r\n0\r\n\r\n"
            ),
            &[408],
            None,
        ),
        case(
            "Transfer-Encoding gzip, chunked",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 transfer-encoding: gzip, chunked\r\n\r\n{:x}\r\n{ok}\r\n0\r\n\r\n",
                ok.len()
            ),
            &[501],
            Some("not_implemented"),
        ),
        case(
            "Expect: 100-continue",
            format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\n\
                 expect: 100-continue\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{ok}",
                ok.len()
            ),
            &[200],
            Some("succeeded"),
        ),
        case("a 64 KiB header", format!("{info}x-big: {}\r\nconnection: close\r\n\r\n", "b".repeat(64 * 1024)), &[200], None),
        case(
            "500 headers",
            format!("{info}{}connection: close\r\n\r\n", (0..500).map(|i| format!("x-h{i}: v\r\n")).collect::<String>()),
            &[431],
            Some("\"message\":\"The request's headers are too large"),
        ),
        case(
            "a 16 KiB request line",
            format!("GET /v1/{} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", "a".repeat(16 * 1024)),
            &[404],
            None,
        ),
        case(
            "an absolute-form URI",
            format!("GET http://x/v1/info HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\nconnection: close\r\n\r\n"),
            &[200],
            None,
        ),
        case(
            "HTTP/1.1 without Host",
            format!("GET /v1/info HTTP/1.1\r\nauthorization: Bearer {EMPTY}\r\nconnection: close\r\n\r\n"),
            &[200],
            None,
        ),
        case("a request line that is not HTTP", "HELLO WORLD\r\n\r\n", &[400], Some(NOT_HTTP)),
        case("a NUL in a header value", "GET /v1/info HTTP/1.1\r\nhost: x\r\nx-a: a\0b\r\n\r\n", &[400], Some(NOT_HTTP)),
        case("a header without a colon", "GET /v1/info HTTP/1.1\r\nhost x\r\n\r\n", &[400], Some(NOT_HTTP)),
        case("an unknown method", "BREW /v1/info HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n", &[405], None),
        case(
            "a bare LF between lines",
            format!("GET /v1/info HTTP/1.1\nhost: x\nauthorization: Bearer {EMPTY}\nconnection: close\n\n"),
            &[200],
            None,
        ),
    ]
}

fn json_cases() -> Vec<HostileCase> {
    let big = "s".repeat(1024 * 1024);
    let many: String = (0..100_000).map(|i| format!("\"k{i}\":{i}")).collect::<Vec<_>>().join(",");
    vec![
        case(
            "duplicate keys inside inputs (the last wins, as Python's json)",
            run(r#"{"inputs":{"question":"a","question":"b"},"response_mode":"blocking","user":"u"}"#),
            &[200],
            Some("\"answer\": \"b\""),
        ),
        case("duplicate user keys", run(r#"{"inputs":{"question":"a"},"user":"u","user":"v"}"#), &[400], Some("bad_request")),
        case("a UTF-8 BOM", run("\u{feff}{\"inputs\":{\"question\":\"a\"},\"user\":\"u\"}"), &[400], Some("bad_request")),
        case("NaN", run(r#"{"inputs":{"question":NaN},"user":"u"}"#), &[400], Some("bad_request")),
        case("Infinity", run(r#"{"inputs":{"question":"a"},"user":"u","x":Infinity}"#), &[400], Some("bad_request")),
        case("1e999 in an input", run(r#"{"inputs":{"question":1e999},"user":"u"}"#), &[400], None),
        case("a lone surrogate", run(r#"{"inputs":{"question":"\ud800"},"user":"u"}"#), &[400], Some("bad_request")),
        case(
            "NUL in a string",
            run(r#"{"inputs":{"question":"a\u0000b"},"response_mode":"blocking","user":"u\u0000"}"#),
            &[200],
            Some("succeeded"),
        ),
        case(
            "a 1 MB string in an ignored field",
            run(&format!(r#"{{"inputs":{{"question":"a"}},"response_mode":"blocking","user":"u","pad":"{big}"}}"#)),
            &[200],
            None,
        ),
        case(
            "a 1 MB string in a text input with a length limit",
            run(&format!(r#"{{"inputs":{{"question":"{big}"}},"response_mode":"blocking","user":"u"}}"#)),
            &[400],
            Some("less than 256 characters"),
        ),
        case(
            "100,000 keys in inputs",
            run(&format!(r#"{{"inputs":{{"question":"a",{many}}},"response_mode":"blocking","user":"u"}}"#)),
            &[200],
            None,
        ),
        case("a body that is not JSON", run("{\"inputs\":"), &[400], Some("bad_request")),
        case("an empty body", run(""), &[400], None),
    ]
}

async fn play(target: &ServerProcess, group: &str, cases: Vec<HostileCase>) -> usize {
    let n = cases.len();
    let mut wrong = Vec::new();
    for case in cases {
        let answer = exchange(&target.addr, &case.request).await;
        let shown = || answer.raw.chars().take(400).collect::<String>();
        if answer.statuses != case.expect {
            wrong.push(format!("{}: got {:?}, expected {:?}: {}", case.name, answer.statuses, case.expect, shown()));
        } else if let Some(text) = case.body_has
            && !answer.body.contains(text)
        {
            wrong.push(format!("{}: the body should hold {text:?}: {}", case.name, shown()));
        }
    }
    assert!(wrong.is_empty(), "{group}: {} of {n} cases answered otherwise:\n{}", wrong.len(), wrong.join("\n"));
    n
}

async fn stream_open(addr: &str, key: &str, user: &str) -> (TcpStream, String) {
    let mut tcp = TcpStream::connect(addr).await.unwrap();
    let body = json!({"inputs": {"question": "q"}, "response_mode": "streaming", "user": user}).to_string();
    tcp.write_all(&post("/v1/workflows/run", key, &body)).await.unwrap();
    // Up to the first task id.
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tcp.read(&mut buf).await.unwrap();
        assert!(n > 0, "the stream ended before its first event: {}", String::from_utf8_lossy(&seen));
        seen.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&seen);
        if let Some(i) = text.find("\"task_id\":\"")
            && let Some(id) = text.get(i + 11..i + 47)
        {
            return (tcp, id.to_owned());
        }
    }
}

/// The status of a stream's `workflow_finished`, read to its end (callers
/// bound the wait). Only the stream's tail is kept: a reader that keeps every
/// byte of a fast stream (megabytes a second) falls behind on a loaded
/// machine, and the server, rightly, closes a stream its client does not
/// read within its grace.
async fn stream_end(mut tcp: TcpStream) -> Option<String> {
    const TAIL: usize = 64 * 1024;
    let (mut all, mut buf) = (Vec::new(), vec![0u8; 256 * 1024]);
    while let Ok(n @ 1..) = tcp.read(&mut buf).await {
        all.extend_from_slice(&buf[..n]);
        if all.len() > 2 * TAIL {
            all.drain(..all.len() - TAIL);
        }
    }
    let text = String::from_utf8_lossy(&all);
    let finished = text.rfind("\"event\":\"workflow_finished\"")?;
    let status = text[finished..].find("\"status\":\"")? + finished + 10;
    Some(text[status..].split('"').next()?.to_owned())
}

async fn semantics(target: &ServerProcess) -> usize {
    let stop =
        |task: &str, key: &str, user: &str| post(&format!("/v1/workflows/tasks/{task}/stop"), key, &json!({"user": user}).to_string());
    // Another app's key cannot stop a run: the answer is the same (as
    // Dify's), the run goes on.
    let (tcp, task) = stream_open(&target.addr, LLM, "alice").await;
    // Read from now on: a full-speed stream left unread while the stops
    // below go out would be closed as stalled (1 s here) on a slow machine.
    let reader = tokio::spawn(stream_end(tcp));
    let answer = exchange(&target.addr, &stop(&task, OTHER, "alice")).await;
    assert_eq!(answer.statuses, [200]);
    assert!(answer.body.contains("success"));
    // Another user of the same app cannot either; the run's own user can,
    // twice, and the second is as harmless as the first.
    assert_eq!(exchange(&target.addr, &stop(&task, LLM, "mallory")).await.statuses, [200]);
    assert_eq!(exchange(&target.addr, &stop(&task, LLM, "alice")).await.statuses, [200]);
    assert_eq!(exchange(&target.addr, &stop(&task, LLM, "alice")).await.statuses, [200]);
    let ended = tokio::time::timeout(Duration::from_secs(20), reader).await;
    assert_eq!(ended.expect("the stopped stream ends").unwrap().as_deref(), Some("stopped"));
    // A stop after the run finished changes nothing.
    let answer = exchange(&target.addr, &run(r#"{"inputs":{"question":"q"},"response_mode":"blocking","user":"u"}"#)).await;
    let done: Value = serde_json::from_str(&answer.body).unwrap();
    let (task, id) = (done["task_id"].as_str().unwrap(), done["workflow_run_id"].as_str().unwrap());
    assert_eq!(exchange(&target.addr, &stop(task, EMPTY, "u")).await.statuses, [200]);
    let get =
        |key: &str| format!("GET /v1/workflows/run/{id} HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {key}\r\nconnection: close\r\n\r\n");
    let mine = exchange(&target.addr, get(EMPTY).as_bytes()).await;
    assert_eq!(mine.statuses, [200]);
    assert!(mine.body.contains("\"status\":\"succeeded\""), "{}", mine.body);
    // Another app's key does not see the run.
    let theirs = exchange(&target.addr, get(OTHER).as_bytes()).await;
    assert_eq!(theirs.statuses, [404]);
    5
}

async fn slow_clients(target: &ServerProcess) -> usize {
    const SLOW: usize = 2_000;
    let before = target.stats().await;
    let count = |stats: &Value, key: &str| stats[key].as_u64().unwrap_or(0);
    // 2,000 heads, a byte every 300 ms: each is closed at the 3 s header
    // timeout (long enough that a good client's head, sent whole, is read
    // in time even on a loaded machine running a debug build).
    let mut slow = tokio::task::JoinSet::new();
    for _ in 0..SLOW {
        let addr = target.addr.clone();
        slow.spawn(async move {
            let Ok(mut tcp) = TcpStream::connect(&addr).await else { return false };
            for byte in b"GET /v1/info HTTP/1.1\r\nhost: x\r\n".iter().cycle().take(100) {
                if tcp.write_all(&[*byte]).await.is_err() {
                    return true;
                }
                tokio::time::sleep(Duration::from_millis(300)).await;
                let mut probe = [0u8; 1];
                if let Ok(Ok(0)) = tokio::time::timeout(Duration::from_millis(1), tcp.read(&mut probe)).await {
                    return true;
                }
            }
            false
        });
    }
    // A body a byte a second: 408 at the 1 s body timeout.
    let body_dribble = {
        let addr = target.addr.clone();
        tokio::spawn(async move {
            let tcp = TcpStream::connect(&addr).await.unwrap();
            let (mut reader, mut tcp) = tcp.into_split();
            let head = format!(
                "POST /v1/workflows/run HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {EMPTY}\r\ncontent-type: application/json\r\ncontent-length: 100\r\n\r\n"
            );
            tcp.write_all(head.as_bytes()).await.unwrap();
            let mut answer = Vec::new();
            let read = async {
                for _ in 0..100 {
                    let _ = tcp.write_all(b" ").await;
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            };
            tokio::select! {
                () = read => {}
                _ = reader.read_to_end(&mut answer) => {}
            }
            String::from_utf8_lossy(&answer).into_owned()
        })
    };
    // A stream never read: closed at the 1 s stall timeout.
    let (unread, _task) = stream_open(&target.addr, LLM, "never-reads").await;
    // Meanwhile other clients are served; their latencies are reported.
    let mut latencies = Vec::new();
    let good = run(r#"{"inputs":{"question":"q"},"response_mode":"blocking","user":"good"}"#);
    let started = tokio::time::Instant::now();
    while started.elapsed() < Duration::from_secs(3) {
        let sent = std::time::Instant::now();
        let answer = exchange(&target.addr, &good).await;
        latencies.push(sent.elapsed());
        assert_eq!(answer.statuses, [200], "a good client during the attack: {}", answer.raw);
    }
    let mut closed = 0;
    while let Some(joined) = slow.join_next().await {
        closed += usize::from(joined.unwrap());
    }
    assert_eq!(closed, SLOW, "every slow head is closed");
    let answer = body_dribble.await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    let after = target.stats().await;
    assert!(count(&after, "connections_head_timeout") - count(&before, "connections_head_timeout") >= SLOW as u64);
    assert_eq!(count(&after, "requests_body_timeout") - count(&before, "requests_body_timeout"), 1);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while count(&target.stats().await, "connections_stalled_closed") == count(&before, "connections_stalled_closed") {
        assert!(tokio::time::Instant::now() < deadline, "the unread stream is closed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(unread);
    latencies.sort();
    let p = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    println!(
        "hostile: {} good requests during {SLOW} slow heads, a slow body and an unread stream: p50 {:?}, p99 {:?}",
        latencies.len(),
        p(0.5),
        p(0.99)
    );
    3
}

async fn sigterm_with_open_streams(mut target: ServerProcess) -> usize {
    const STREAMS: usize = 20;
    let mut readers = tokio::task::JoinSet::new();
    for i in 0..STREAMS {
        let (tcp, _) = stream_open(&target.addr, LLM, &format!("s{i}")).await;
        readers.spawn(stream_end(tcp));
    }
    let sent = std::process::Command::new("kill").args(["-TERM", &target.pid.to_string()]).status().unwrap();
    assert!(sent.success());
    // The grace period is 6 s, the runs stopped 3 s before its end: on two
    // cores shared with the rest of the suite the terminal frames may need
    // more than the default second to be written and read. A bound far above
    // it, not a speed.
    let exited = tokio::time::timeout(Duration::from_secs(10), target.child.wait()).await;
    assert!(matches!(exited, Ok(Ok(status)) if status.success()), "the server exits within its grace: {exited:?}");
    // Each reader reads from its stream's opening (opening twenty can take
    // seconds on a loaded machine) to the end that the server's exit makes.
    let closed = tokio::time::Instant::now() + Duration::from_secs(20);
    while let Some(joined) = tokio::time::timeout_at(closed, readers.join_next()).await.expect("the server's exit ends every stream") {
        let status = joined.unwrap();
        assert!(matches!(status.as_deref(), Some("stopped" | "succeeded")), "each stream ends with workflow_finished: {status:?}");
    }
    1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_hostile_input_suite() {
    let target = ServerProcess::start(Duration::ZERO).await;
    let baseline = (target.fds(), target.rss_kib());
    let mut cases = 0;
    cases += play(&target, "framing", framing_cases()).await;
    target.settled("framing", baseline).await;
    cases += play(&target, "json", json_cases()).await;
    target.settled("json", baseline).await;
    cases += semantics(&target).await;
    target.settled("semantics", baseline).await;
    cases += slow_clients(&target).await;
    target.settled("slow clients", baseline).await;
    drop(target);
    // Paced streams: at full speed a reader starved of the CPU for a second
    // (the rest of the suite shares the two cores) is rightly closed as
    // stalled before its terminal frame, which is not what this case asks.
    cases += sigterm_with_open_streams(ServerProcess::start(Duration::from_millis(2)).await).await;
    println!("hostile: {cases} cases answered as documented");
    assert_eq!(cases, 41, "docs/hostile.md lists every case");
}
