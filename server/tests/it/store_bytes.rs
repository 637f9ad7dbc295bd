//! The run store is bounded by bytes: runs with the largest bodies allowed
//! cannot make the server hold more than `max_stored_bytes` of records.

use crate::support::TestClient;
use serde_json::json;
use std::time::Duration;

use crate::support::rss_kib;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runs_with_the_largest_bodies_keep_the_store_within_its_bytes() {
    const BOUND: u64 = 128 * 1024 * 1024;
    const USER: usize = 5 * 1024 * 1024;
    const RUNS: usize = 80;
    let dir = std::env::temp_dir().join(format!("flowbench-store-bytes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let workflow = mock::workspace_root().join("fixtures/workflows/start_end.yml");
    let config = dir.join("server.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\n[limits]\nmax_stored_bytes = {BOUND}\n[[apps]]\napi_key = \"app-empty\"\nworkflow = {:?}\n",
            workflow.display().to_string()
        ),
    )
    .unwrap();
    // The real binary, with its own allocator, so its RSS is its own.
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_flowbench-server"))
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "error")
        .kill_on_drop(true)
        .spawn()
        .expect("flowbench-server starts");
    let pid = child.id().unwrap();
    let url = format!("http://127.0.0.1:{port}");
    let client = TestClient::new(&url);
    let ready = async {
        while client.try_send("GET", "/_flowbench/stats", &[], "").await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(30), ready).await.expect("the server answers");
    let user = "u".repeat(USER);
    let mut last = String::new();
    for i in 0..RUNS {
        let reply = client.run("app-empty", &json!({"inputs": {"question": "q"}, "response_mode": "blocking", "user": user})).await;
        assert_eq!(reply.status, 200, "run {i}");
        last = reply.json()["workflow_run_id"].as_str().unwrap().to_owned();
    }
    let stats = client.send("GET", "/_flowbench/stats", &[], "").await.json();
    let stored = stats["stored_bytes"].as_u64().unwrap();
    assert!(stored <= BOUND, "the store holds {stored} bytes, above {BOUND}");
    assert!(stored >= USER as u64, "the newest runs are kept: {stored} bytes");
    // The newest run can still be read back, whole.
    let record = client.send("GET", &format!("/v1/workflows/run/{last}"), &[("authorization", "Bearer app-empty")], "").await;
    assert_eq!(record.status, 200);
    assert!(record.text().contains(&user[..1000]));
    // Without the bound the process would hold all 80 users (400 MiB); the
    // allocator returns freed pages within its decay time.
    let limit_kib = (BOUND + 96 * 1024 * 1024) / 1024;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while rss_kib(pid) > limit_kib {
        assert!(tokio::time::Instant::now() < deadline, "RSS {} KiB stays above {limit_kib} KiB", rss_kib(pid));
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    child.start_kill().unwrap();
    let _ = child.wait().await;
    std::fs::remove_dir_all(&dir).unwrap();
}
