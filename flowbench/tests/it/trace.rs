//! Every request carries a W3C `traceparent`, and the report names the
//! slowest requests by its trace id: against a server of the test's own
//! that keeps each request's header and makes every tenth one slow, the
//! ids the report calls slowest are the slow ones the server saw.

use std::collections::HashMap;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The headers seen, each with how long its request was held.
type Held = Arc<Mutex<Vec<(String, Duration)>>>;

async fn server() -> (String, Held) {
    use axum::routing::{get, post};
    let seen: Held = Arc::default();
    let record = seen.clone();
    let run = move |headers: http::HeaderMap| {
        let record = record.clone();
        async move {
            let trace = headers.get("traceparent").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
            let n = {
                let mut seen = record.lock().unwrap();
                seen.push((trace, Duration::ZERO));
                seen.len()
            };
            let hold = if n % 10 == 0 { Duration::from_millis(300) } else { Duration::from_millis(1) };
            record.lock().unwrap()[n - 1].1 = hold;
            tokio::time::sleep(hold).await;
            axum::Json(
                serde_json::json!({"task_id": "t", "workflow_run_id": "r", "data": {"id": "r", "status": "succeeded", "outputs": {}}}),
            )
        }
    };
    let app = axum::Router::new().route("/v1/parameters", get(|| async { "{}" })).route("/v1/workflows/run", post(run));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, seen)
}

fn run(url: &str, extra: &[&str]) -> serde_json::Value {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("run.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["run", "--scenario", "empty", "--target", url, "--api-key", "k", "--users", "4"])
        .args(["--warmup", "0s", "--duration", "2s", "--json"])
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8_lossy(&out.stdout);
    let traced = !extra.contains(&"--no-traceparent");
    assert_eq!(stdout.contains("Slowest requests by traceparent trace id: "), traced, "{stdout}");
    serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_request_has_its_own_traceparent_and_the_slowest_are_named() {
    for (sample, flag) in [("100%", "01"), ("0", "00")] {
        let (url, seen) = server().await;
        let report = tokio::task::spawn_blocking(move || run(&url, &["--trace-sample", sample])).await.unwrap();
        let seen = seen.lock().unwrap().clone();
        assert!(seen.len() > 40, "{} requests", seen.len());
        let mut held: HashMap<String, Duration> = HashMap::new();
        for (header, hold) in &seen {
            let parts: Vec<&str> = header.split('-').collect();
            assert!(
                parts.len() == 4
                    && parts[0] == "00"
                    && parts[1].len() == 32
                    && parts[2].len() == 16
                    && parts[1..3].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)))
                    && parts[1].bytes().any(|b| b != b'0'),
                "a W3C traceparent: {header:?}"
            );
            assert_eq!(parts[3], flag, "--trace-sample {sample}");
            assert!(held.insert(parts[1].to_owned(), *hold).is_none(), "a trace id twice: {header}");
        }
        let slowest = report["scenarios"][0]["slowest"].as_array().unwrap();
        assert_eq!(slowest.len(), 10);
        let durations: Vec<f64> = slowest.iter().map(|s| s["duration_ms"].as_f64().unwrap()).collect();
        assert!(durations.windows(2).all(|w| w[0] >= w[1]), "slowest first: {durations:?}");
        for slow in slowest {
            let id = slow["trace_id"].as_str().unwrap();
            assert_eq!(held.get(id), Some(&Duration::from_millis(300)), "the report's slowest {id} was held 300 ms by the server");
            assert!(slow["duration_ms"].as_f64().unwrap() >= 300.0);
            assert_eq!(slow["outcome"], "ok");
        }
    }
}

/// `--no-traceparent`: no header is sent and no trace id kept.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_traceparent_sends_none_and_keeps_none() {
    let (url, seen) = server().await;
    let report = tokio::task::spawn_blocking(move || run(&url, &["--no-traceparent"])).await.unwrap();
    let seen = seen.lock().unwrap().clone();
    assert!(seen.len() > 40 && seen.iter().all(|(header, _)| header.is_empty()), "{:?}", &seen[..3]);
    assert!(report["scenarios"][0].get("slowest").is_none(), "{}", report["scenarios"][0]["slowest"]);
}
