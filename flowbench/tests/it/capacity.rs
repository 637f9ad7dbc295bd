//! `flowbench capacity` against servers of the tests' own with a known
//! limit: a queue with a fixed service time (its capacity is one request
//! each service time, latency unbounded above it), found within the
//! search's resolution; and a driver held to a known ceiling by its
//! connections, where the answer is "at least". Bad SLOs exit 2.

use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// How the server spends a request.
#[derive(Clone, Copy)]
enum Service {
    /// One at a time, each taking this long: a queue whose capacity is
    /// one request per service time. The server keeps the queue's clock
    /// itself, so a late timer does not change the rate it serves.
    Queue(Duration),
    /// Each request this long, all at once: no limit of its own.
    Fixed(Duration),
}

/// A Dify-shaped server answering blocking runs as `service` says.
async fn server(service: Service) -> String {
    use axum::routing::{get, post};
    let free_at = Arc::new(Mutex::new(Instant::now()));
    let run = move || {
        let free_at = free_at.clone();
        async move {
            let done = match service {
                Service::Queue(each) => {
                    let mut free = free_at.lock().unwrap();
                    *free = (*free).max(Instant::now()) + each;
                    *free
                }
                Service::Fixed(each) => Instant::now() + each,
            };
            tokio::time::sleep_until(done).await;
            axum::Json(serde_json::json!({
                "task_id": "t", "workflow_run_id": "r",
                "data": {"id": "r", "workflow_id": "w", "status": "succeeded", "outputs": {}, "error": null,
                         "elapsed_time": 0.0, "total_tokens": 0, "total_steps": 2, "created_at": 0, "finished_at": 0}
            }))
        }
    };
    let app = axum::Router::new().route("/v1/parameters", get(|| async { "{}" })).route("/v1/workflows/run", post(run));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

/// `flowbench capacity` against `url`; its exit code, JSON report and stderr.
fn capacity(url: &str, extra: &[&str]) -> (i32, serde_json::Value, String) {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("capacity.json");
    let out = Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["capacity", "--scenario", "empty", "--target", url, "--api-key", "app-test", "--warmup", "1s", "--duration", "2s"])
        .arg("--json")
        .arg(&json)
        .args(extra)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let report = std::fs::read_to_string(&json).map(|t| serde_json::from_str(&t).unwrap()).unwrap_or(serde_json::Value::Null);
    (out.status.code().unwrap_or(-1), report, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_knee_of_a_queue_is_found_within_the_resolution() {
    // 5 ms a request: 200 requests/s, and a queue that grows without end above it.
    let url = server(Service::Queue(Duration::from_millis(5))).await;
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        capacity(
            &url,
            &[
                "--slo",
                "duration_p95<50ms",
                "--request-slo",
                "duration<50ms",
                "--start",
                "25",
                "--resolution",
                "10%",
                "--repeats",
                "1",
                "--connections",
                "64",
            ],
        )
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["schema"], "flowbench.capacity");
    let s = &report["scenarios"][0];
    let c = &s["capacity"];
    let (rate, low, high) = (c["rate"].as_f64().unwrap(), c["low"].as_f64().unwrap(), c["high"].as_f64().unwrap());
    assert_eq!(rate, low);
    assert!(high / low - 1.0 <= 0.1 + 1e-9, "bisected to the resolution: {low}..{high}");
    // The knee is 200/s: the highest pass within the resolution below it,
    // the lowest failure above it less a timer's slack.
    assert!((180.0..=210.0).contains(&rate), "capacity {rate}, known 200: {}", s["steps"]);
    assert!(high >= 190.0, "failed at {high}, known 200");
    assert_eq!(c["at_least"], false);
    assert_eq!(c["limited_by"], "latency", "{c}");
    // Every step is in the curve, each with its verdict and the SLO's check.
    let steps = s["steps"].as_array().unwrap();
    assert!(steps.len() >= 5, "a ramp then bisection: {steps:?}");
    assert_eq!(steps[0]["offered"], 25.0);
    assert_eq!(steps[0]["verdict"], "pass");
    let failed = steps.iter().find(|st| st["offered"].as_f64() == Some(high)).unwrap();
    assert!(failed["verdict"].as_str().unwrap().starts_with("fail"), "{failed}");
    assert_eq!(failed["checks"][0]["threshold"], "duration_p95<50ms");
    // Goodput beside throughput: all of it well below the knee, less of it
    // where the queue held requests past the request SLO.
    assert_eq!(report["request_slo"], "duration<50ms");
    let (good, done) = (steps[0]["goodput_rps"].as_f64().unwrap(), steps[0]["achieved_rps"].as_f64().unwrap());
    assert!(good > 0.9 * done && good <= done * 1.05, "{good} of {done}");
    let (good, done) = (failed["goodput_rps"].as_f64().unwrap(), failed["achieved_rps"].as_f64().unwrap());
    assert!(good < 0.95 * done, "past the knee requests wait past 50 ms: {good} of {done}");
    assert!(failed["checks"][0]["value"].as_f64().unwrap() > 50.0 || failed["verdict"] == "fail_within_noise");
}

/// `--by users`: N closed-model users on a queue of 5 ms a request wait
/// about N x 5 ms each, so a p95 under 50 ms holds up to 9 users.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_users_the_knee_of_a_queue_is_found_in_users() {
    let url = server(Service::Queue(Duration::from_millis(5))).await;
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        capacity(&url, &["--by", "users", "--slo", "duration_p95<50ms", "--start", "2", "--resolution", "10%", "--repeats", "1"])
    })
    .await
    .unwrap();
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(report["by"], "users");
    let c = &report["scenarios"][0]["capacity"];
    assert_eq!(c["unit"], "users");
    let (rate, high) = (c["rate"].as_f64().unwrap(), c["high"].as_f64().unwrap());
    assert!((7.0..=10.0).contains(&rate), "capacity {rate} users, known 9: {}", report["scenarios"][0]["steps"]);
    assert!(high <= rate + 1.0, "users bisect to one: {rate}..{high}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_driver_held_below_the_target_answers_at_least() {
    // 20 ms a request with no limit of the server's own, through 2
    // connections: the driver cannot send more than 100 requests/s.
    let url = server(Service::Fixed(Duration::from_millis(20))).await;
    let (code, report, stderr) = tokio::task::spawn_blocking(move || {
        capacity(&url, &["--slo", "duration_p95<500ms", "--start", "25", "--connections", "2", "--resolution", "10%"])
    })
    .await
    .unwrap();
    assert_eq!(code, 3, "the driver's limit, not the target's: {stderr}");
    let c = &report["scenarios"][0]["capacity"];
    assert_eq!(c["at_least"], true, "{c}");
    assert_eq!(c["limited_by"], "connections", "{c}");
    assert_eq!(c["rate"].as_f64(), Some(50.0), "the last load that passed: {c}");
    assert!(c["high"].is_null(), "no failure of the target's was reached");
    let last = report["scenarios"][0]["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["verdict"], "driver_limited");
    assert!(last["driver_reasons"][0].as_str().unwrap().contains("--connections"), "{last}");
}

#[test]
fn a_bad_slo_or_none_is_refused_with_exit_2() {
    for (args, says) in [
        (&["--slo", "speed<3"][..], "speed"),
        (&["--slo", "duration_p95<fast"][..], "fast"),
        (&[][..], "needs an SLO"),
        (&["--slo", "duration_p95<1s", "--rate", "10"][..], "--rate"),
        (&["--slo", "duration_p95<1s", "--resolution", "0%"][..], "resolution"),
        (&["--slo", "duration_p95<1s", "--request-slo", "ttfe>1s"][..], "upper limit"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_flowbench"))
            .args(["capacity", "--scenario", "empty", "--target", "http://127.0.0.1:9", "--api-key", "k"])
            .args(args)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(says), "{args:?} names what was wrong: {stderr}");
    }
}

/// `run --request-slo` against a server whose every request takes 20 ms:
/// none meets 1 ms, all meet 1 s, and the count is of measured requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn goodput_counts_the_requests_within_their_own_limits() {
    let url = server(Service::Fixed(Duration::from_millis(20))).await;
    for (slo, all) in [("duration<1ms", false), ("duration < 1s, ttfb<1s", true)] {
        let url = url.clone();
        let (code, report, stdout) = tokio::task::spawn_blocking(move || {
            let dir = tempfile::tempdir().unwrap();
            let json = dir.path().join("run.json");
            let out = Command::new(env!("CARGO_BIN_EXE_flowbench"))
                .args(["run", "--scenario", "empty", "--target", &url, "--api-key", "app-test", "--users", "2"])
                .args(["--warmup", "500ms", "--duration", "1s", "--request-slo", slo, "--json"])
                .arg(&json)
                .output()
                .unwrap();
            let report: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
            (out.status.code(), report, String::from_utf8_lossy(&out.stdout).into_owned())
        })
        .await
        .unwrap();
        assert_eq!(code, Some(0), "{stdout}");
        assert_eq!(report["request_slo"], slo.trim());
        let counts = &report["scenarios"][0]["counts"];
        let ok = counts["ok"].as_u64().unwrap();
        assert!(ok > 10, "{counts}");
        assert_eq!(counts["good"].as_u64(), Some(if all { ok } else { 0 }), "{counts}");
        assert!(stdout.contains("Goodput: "), "the text report says it: {stdout}");
    }
}
