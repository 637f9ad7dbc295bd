//! `GET /metrics` on the server and the mock: what a run adds to it, and
//! that Prometheus' own linter (`promtool check metrics`) takes the
//! exposition. The registry is the process's, shared by the tests that run
//! beside this one, so the checks read growth, never exact totals.

use crate::support::{TestClient, spawn_stack};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

/// A sample's value: `name{labels}` exactly as the exposition writes it
/// (labels in the registry's order), 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok()).unwrap_or(0.0)
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("promtool cannot start (cargo xtask test installs it): {e}"))?;
    child.stdin.take().expect("stdin").write_all(text.as_bytes()).expect("promtool reads");
    let out = child.wait_with_output().expect("promtool ends");
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
    }
}

#[tokio::test]
async fn a_run_shows_in_the_servers_metrics_and_promtool_takes_them() {
    let stack = spawn_stack().await;
    let client = TestClient::for_stack(&stack);
    let before = client.send("GET", "/metrics", &[], "").await;
    assert_eq!(before.status, 200);
    assert_eq!(before.header("content-type"), Some("text/plain; version=0.0.4; charset=utf-8"));
    let before = before.text().to_owned();
    let blocking = r#"flowbench_server_run_requests_total{app="flowbench-start-end",mode="blocking",status="200"}"#;
    let streaming = r#"flowbench_server_run_requests_total{app="flowbench-start-llm-end",mode="streaming",status="200"}"#;
    let refused = r#"flowbench_server_run_requests_total{app="unknown",mode="unknown",status="401"}"#;
    let events = r#"flowbench_server_events_sent_total{app="flowbench-start-llm-end"}"#;
    let ttfe = r#"flowbench_server_ttfe_seconds_count{app="flowbench-start-llm-end"}"#;
    let duration = r#"flowbench_server_run_duration_seconds_count{app="flowbench-start-end",mode="blocking"}"#;

    for _ in 0..3 {
        let reply =
            client.run(stack.api_key("empty"), &json!({"inputs": {"question": "hi"}, "user": "u", "response_mode": "blocking"})).await;
        assert_eq!(reply.status, 200);
    }
    let reply = client.run(stack.api_key("llm"), &json!({"inputs": {"question": "hi"}, "user": "u", "response_mode": "streaming"})).await;
    assert_eq!(reply.status, 200);
    let n_events = reply.events().len() as f64;
    let reply = client.run("app-no-such-key", &json!({"inputs": {}, "user": "u", "response_mode": "blocking"})).await;
    assert_eq!(reply.status, 401);

    let after = client.send("GET", "/metrics", &[], "").await.text().to_owned();
    let grew = |series: &str| sample(&after, series) - sample(&before, series);
    assert!(grew(blocking) >= 3.0, "{blocking}: {after}");
    assert!(grew(duration) >= 3.0, "{duration}: {after}");
    assert!(grew(streaming) >= 1.0, "{streaming}: {after}");
    assert!(grew(refused) >= 1.0, "{refused}: {after}");
    assert!(grew(ttfe) >= 1.0, "{ttfe}: {after}");
    // Every event the client read was counted (the pings are not events).
    assert!(grew(events) >= n_events - 1.0 && n_events > 3.0, "{events}: {n_events} events read; {after}");
    assert!(sample(&after, "flowbench_server_upstream_ttft_seconds_count") >= 1.0, "{after}");
    for family in [
        "flowbench_server_live_runs ",
        "flowbench_server_open_streams ",
        "flowbench_server_connections_open ",
        "flowbench_server_connections_waiting ",
        "flowbench_server_connections_swept_head_timeout_total ",
        "flowbench_server_store_commit_seconds_count ",
        "process_cpu_seconds_total ",
        "process_resident_memory_bytes ",
    ] {
        assert!(after.lines().any(|l| l.starts_with(family)), "{family}missing: {after}");
    }
    assert!(sample(&after, "flowbench_server_connections_open") >= 1.0, "this test's own connection is open");
    assert!(sample(&after, "process_resident_memory_bytes") > 1e6, "{after}");
    promtool(&after).unwrap_or_else(|e| panic!("promtool check metrics: {e}\n{after}"));

    let mock = TestClient::new(&stack.mock.base_url().replace("/v1", ""));
    let mock_metrics = mock.send("GET", "/metrics", &[], "").await;
    assert_eq!(mock_metrics.status, 200);
    let mock_metrics = mock_metrics.text().to_owned();
    assert!(sample(&mock_metrics, "flowbench_mock_streams_completed_total") >= 1.0, "{mock_metrics}");
    assert!(sample(&mock_metrics, "flowbench_mock_chunks_sent_total") >= 1.0, "{mock_metrics}");
    promtool(&mock_metrics).unwrap_or_else(|e| panic!("promtool check metrics (mock): {e}\n{mock_metrics}"));
    stack.shutdown().await.expect("stack stops");
}

/// promtool is a real check: it fails an exposition that breaks the
/// naming rules (a counter without `_total`).
#[test]
fn promtool_fails_a_bad_exposition() {
    let bad = "# HELP requests Requests.\n# TYPE requests counter\nrequests 1\n";
    assert!(promtool(bad).is_err());
}

/// With `metrics = false` no run's figures are recorded (the cost record
/// measures the server with and without them); the counters the server
/// keeps anyway still show. The app's own name keeps its series apart from
/// the other tests' in the process's registry.
#[tokio::test]
async fn with_metrics_off_no_run_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let dsl = std::fs::read_to_string(mock::workspace_root().join("fixtures/workflows/start_end.yml")).unwrap();
    let workflow = dir.path().join("unrecorded.yml");
    std::fs::write(&workflow, dsl.replacen("name: flowbench-start-end", "name: flowbench-unrecorded", 1)).unwrap();
    let mut config = server::Config {
        apps: vec![server::AppConfig { api_key: "app-unrecorded".into(), workflow, max_concurrent_runs: None }],
        ..server::Config::default()
    };
    config.limits.metrics = false;
    let server = crate::support::spawn_server(config);
    let client = TestClient::new(&server.url);
    for _ in 0..2 {
        let reply = client.run("app-unrecorded", &json!({"inputs": {"question": "hi"}, "user": "u", "response_mode": "blocking"})).await;
        assert_eq!(reply.status, 200);
    }
    let text = client.send("GET", "/metrics", &[], "").await.text().to_owned();
    assert!(!text.contains("flowbench-unrecorded"), "{text}");
    assert!(sample(&text, "flowbench_server_runs_started_total") >= 2.0, "{text}");
    server.shutdown().await.unwrap();
}
