//! `flowbench up` (what `cargo xtask up` runs): one JSON line on stdout, a
//! working stack behind it, a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

#[test]
fn up_prints_one_json_line_and_serves_until_sigterm() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowbench")).arg("up").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(info["apps"]["empty"]["workflow"], "fixtures/workflows/start_end.yml");
    assert_eq!(info["apps"]["llm"]["workflow"], "fixtures/workflows/start_llm_end.yml");
    let server = info["server_url"].as_str().unwrap().to_owned();
    assert!(info["mock_llm_url"].as_str().unwrap().starts_with("http://127.0.0.1:"));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    for app in ["empty", "llm"] {
        let key = info["apps"][app]["api_key"].as_str().unwrap().to_owned();
        let url = server.clone();
        let status = runtime.block_on(async move {
            use http_body_util::BodyExt;
            let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http();
            let request = http::Request::post(format!("{url}/v1/workflows/run"))
                .header("authorization", format!("Bearer {key}"))
                .header("content-type", "application/json")
                .body(http_body_util::Full::new(bytes::Bytes::from(
                    r#"{"inputs":{"question":"hi"},"response_mode":"blocking","user":"u"}"#,
                )))
                .unwrap();
            let response = client.request(request).await.unwrap();
            let status = response.status();
            let body: serde_json::Value = serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
            assert_eq!(body["data"]["status"], "succeeded");
            status
        });
        assert_eq!(status, 200, "{app}");
    }
    // The server is its own process, a child of `up`, which runs the mock:
    // the target's CPU is the server's alone.
    let servers: Vec<u32> = info["server_pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap() as u32).collect();
    assert_eq!(servers.len(), 1, "{info}");
    assert_ne!(servers[0], child.id());
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", servers[0])).unwrap();
    let parent: u32 = stat[stat.rfind(')').unwrap() + 2..].split_whitespace().nth(1).unwrap().parse().unwrap();
    assert_eq!(parent, child.id());
    let mut rest = String::new();
    Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "exit after SIGTERM: {status}");
    stdout.read_line(&mut rest).unwrap();
    assert_eq!(rest, "", "exactly one line on stdout");
}

/// A stack killed outright (SIGKILL: no handler runs) leaves no server
/// behind: each server process ends with the pipe `up` held.
#[test]
fn a_killed_stack_leaves_no_server_running() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_flowbench")).arg("up").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let server = info["server_pids"][0].as_u64().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
    // A liveness bound, not a timing assert: the server drains and exits.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let running = || std::fs::read_to_string(format!("/proc/{server}/stat")).is_ok_and(|s| !s.contains(") Z "));
    while running() {
        assert!(std::time::Instant::now() < deadline, "server {server} still runs 30 s after its stack was killed");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
