//! The driver against a real Prometheus (Debian's, started here on
//! loopback) scraping a real `flowbench-server`: target CPU from a PromQL
//! query over the measured interval agrees with the server's own `/proc`
//! figure over the same seconds; `--scrape` keeps a series each second and
//! the HTML report draws it; and a query or a scrape that fails is named
//! in the report while the run goes on, its figure "not measured".

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child process killed when the test ends, however it ends.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn get(url: &str) -> Result<String, String> {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    rt.block_on(flowbench::load::scrape::fetch_text(url, Duration::from_secs(5))).map(|(_, body)| body)
}

/// Waits until `ok` holds, or fails naming `what`.
fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what} within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Prometheus scraping `target` (host:port) as job `server` every 250 ms.
fn start_prometheus(dir: &Path, target: &str) -> (Killed, String) {
    let port = free_port();
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global: {{scrape_interval: 250ms, scrape_timeout: 200ms, evaluation_interval: 1s}}\n\
             scrape_configs:\n  - job_name: server\n    static_configs: [{{targets: ['{target}']}}]\n"
        ),
    )
    .unwrap();
    let child = Command::new("prometheus")
        .arg(format!("--config.file={}", config.display()))
        .arg(format!("--storage.tsdb.path={}", dir.join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .arg("--log.level=error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Debian's prometheus is installed (cargo xtask test installs it)");
    let url = format!("http://127.0.0.1:{port}");
    let child = Killed(child);
    let up = format!("{url}/api/v1/query?query=up%7Bjob%3D%22server%22%7D");
    wait_for("Prometheus scrapes the server", Duration::from_secs(60), || {
        get(&up).is_ok_and(|b| b.contains(r#""value":["#) && b.contains(r#","1"]"#))
    });
    (child, url)
}

/// `flowbench run` of the empty scenario against `target` without a
/// warm-up, `extra` added: its exit code, stdout and stderr.
fn run_empty(target: &str, users: &str, duration: &str, extra: &[&str]) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_flowbench"))
        .args(["run", "--target", target, "--api-key", "empty=app-empty", "--scenario", "empty"])
        .args(["--users", users, "--spawn-rate", "1000", "--duration", duration, "--warmup", "0s"])
        .args(extra)
        .output()
        .unwrap();
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn target_cpu_from_prometheus_agrees_with_proc_and_failures_are_named() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let listen = format!("127.0.0.1:{port}");
    let workflow = mock::workspace_root().join("fixtures/workflows/start_end.yml");
    let server = Killed(
        Command::new(crate::target_cpu::server_binary())
            .args(["--listen", &listen, "--worker-threads", "1", "--app", &format!("app-empty={}", workflow.display())])
            .env("RUST_LOG", "error")
            .spawn()
            .unwrap(),
    );
    let target = format!("http://{listen}");
    wait_for("the server answers", Duration::from_secs(30), || get(&format!("{target}/health")).is_ok());
    let (_prometheus, prom) = start_prometheus(dir.path(), &listen);

    let json = dir.path().join("run.json");
    let html = dir.path().join("run.html");
    let cpu_query = r#"sum(rate(process_cpu_seconds_total{job="server"}[$__range]))"#;
    let scrape = format!("{target}/metrics");
    let (code, text, stderr) = run_empty(
        &target,
        "4",
        "8s",
        &[
            "--prometheus",
            &prom,
            "--target-cpu",
            cpu_query,
            "--target-memory",
            r#"process_resident_memory_bytes{job="server"}"#,
            "--prometheus-lag",
            "1500ms",
            "--scrape",
            &scrape,
            "--series",
            "flowbench_server_run_requests_total",
            "--series",
            "process_resident_memory_bytes",
            "--json",
            json.to_str().unwrap(),
            "--html",
            html.to_str().unwrap(),
        ],
    );
    assert!(code == 0 || code == 3, "exit {code}\n{text}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &report["scenarios"][0];
    let prom_cpu = &s["prometheus"]["cpu"];
    let cores = prom_cpu["value"].as_f64().unwrap_or_else(|| panic!("measured: {prom_cpu}\n{text}"));
    assert!(prom_cpu["query"].as_str().unwrap().contains("[8"), "$__range became the interval: {prom_cpu}");
    // The server's own figure from /proc over the same seconds: the
    // measured phase is the run's first `measured_s` (no warm-up).
    let measured_s = s["load"]["measured_s"].as_f64().unwrap();
    let seconds: Vec<f64> = s["health"]["per_second"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h["t_s"].as_f64().unwrap() <= measured_s + 0.5)
        .map(|h| h["target"].as_f64().expect("the local server's CPU"))
        .collect();
    let proc_cores = seconds.iter().sum::<f64>() / seconds.len() as f64;
    assert!(proc_cores > 0.05, "the server worked: {proc_cores}");
    assert!((cores / proc_cores - 1.0).abs() < 0.10, "Prometheus {cores:.3} cores vs /proc {proc_cores:.3} over {} s", seconds.len());
    let memory = s["prometheus"]["memory"]["value"].as_f64().expect("memory measured");
    assert!(memory > 1e6, "{memory}");
    assert!(text.contains("Prometheus (") && text.contains("target CPU: ") && text.contains("µs per request"), "{text}");
    assert!(text.contains(cpu_query.replace("$__range", "").split('[').next().unwrap()), "the query is in the report: {text}");

    // The scraped series, each second: requests as a rate, memory as read.
    let scraped = s["scraped"].as_array().expect("scraped series");
    let requests = scraped.iter().find(|x| x["series"].as_str().unwrap().contains(r#"status="200""#)).expect("200s scraped");
    assert_eq!(requests["kind"], "rate");
    let rates: Vec<f64> = requests["values"].as_array().unwrap().iter().filter_map(serde_json::Value::as_f64).collect();
    assert!(rates.len() >= 5 && rates.iter().any(|&r| r > 10.0), "{requests}");
    let rss = scraped.iter().find(|x| x["series"] == "process_resident_memory_bytes").expect("RSS scraped");
    assert_eq!(rss["kind"], "gauge");
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Scraped from the target") && page.contains("process_resident_memory_bytes"), "the page draws them");

    // A bad query and a scrape that answers 404: named, and the run goes on.
    let missing = format!("{target}/no-metrics-here");
    let (code, text, stderr) = run_empty(
        &target,
        "2",
        "1s",
        &[
            "--prometheus",
            &prom,
            "--target-cpu",
            "sum(rate(process_cpu_seconds_total[$__range])",
            "--prometheus-lag",
            "0s",
            "--scrape",
            &missing,
            "--series",
            "up",
        ],
    );
    assert!(code == 0 || code == 3, "the run goes on: exit {code}\n{text}\n{stderr}");
    assert!(text.contains("target CPU: not measured: GET ") && text.contains("HTTP 400 bad_data"), "{text}");
    assert!(text.contains("/no-metrics-here") && text.contains("HTTP 404"), "{text}");
    assert!(text.contains("Target CPU: ") && !text.contains("Prometheus at"), "the /proc figure stays: {text}");

    // A Prometheus that is not there.
    let nobody = format!("http://127.0.0.1:{}", free_port());
    let (code, text, _) = run_empty(
        &target,
        "2",
        "1s",
        &["--prometheus", &nobody, "--target-memory", "process_resident_memory_bytes", "--prometheus-lag", "0s"],
    );
    assert!(code == 0 || code == 3, "exit {code}: {text}");
    assert!(text.contains("target memory: not measured: GET ") && text.contains(&nobody), "{text}");
    drop(server);
}
