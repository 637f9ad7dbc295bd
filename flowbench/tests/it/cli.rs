//! `flowbench run` and `flowbench ab` as a user runs them: the embedded stack,
//! the report, the JSON document, exit codes for a bad target, and Ctrl-C.

use std::process::{Command, Stdio};

fn flowbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowbench"))
}

/// The server's `runs_started`, from its stats endpoint (HTTP/1.0, so the
/// answer ends with the connection); `None` while it does not answer.
fn runs_started(server_url: &str) -> Option<u64> {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(server_url.trim_start_matches("http://")).ok()?;
    tcp.write_all(b"GET /_flowbench/stats HTTP/1.0\r\n\r\n").ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).ok()?;
    let body = answer.split_once("\r\n\r\n")?.1;
    serde_json::from_str::<serde_json::Value>(body).ok()?["runs_started"].as_u64()
}

/// Waits until `server_url` has started `n` runs: load is flowing (a
/// liveness bound, not a timing assert).
fn wait_for_runs(server_url: &str, n: u64) {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while runs_started(server_url).unwrap_or(0) < n {
        assert!(std::time::Instant::now() < deadline, "{server_url} did not start {n} runs in 30 s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Exit code 2 and clap's message naming `flag`, before anything runs.
fn assert_usage_error(args: &[&str], flag: &str) {
    let output = flowbench().args(args).output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(flag), "{args:?} does not name {flag}: {stderr}");
}

#[test]
fn a_quick_run_prints_the_seed_tables_and_writes_json() {
    let dir = std::env::temp_dir().join(format!("flowbench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let md = dir.join("report.md");
    let bmf = dir.join("bmf.json");
    let output = flowbench()
        // The seed's two scenarios, from their files (the dify profile's).
        .args(["run", "--quick", "--duration", "2s", "--warmup", "1s", "--window", "1s", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
        .arg("--bmf")
        .arg(&bmf)
        .arg("--html")
        .arg(dir.join("report.html"))
        .args(["--scenario-file", "../fixtures/scenarios/seed-empty.toml", "--scenario-file", "../fixtures/scenarios/seed-llm.toml"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    for heading in ["Event Throughput (events/s)", "TTFE - Time To First Event (ms)", "Connections", "Empty Workflow QPS"] {
        assert!(text.contains(heading), "{heading} missing from\n{text}");
    }
    assert!(text.contains("| Max | Avg | Min |\n|---|---|---|\n| "), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "flowbench.report");
    assert_eq!(report["schema_version"], flowbench::report::SCHEMA_VERSION);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    for s in scenarios {
        let c = &s["counts"];
        assert_eq!(c["sent"].as_u64().unwrap(), c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap());
        assert_eq!(c["errors"], 0, "{s}");
        // The embedded stack is a local process: its CPU per request is known.
        assert!(s["target_cpu_us_per_request"].as_f64().is_some_and(|us| us > 0.0), "{s}");
        // The target is the server's process alone; the mock LLM is measured apart.
        assert!(s["health"]["target_cpu_of"].as_str().unwrap().ends_with("and descendants: 1 process"), "{s}");
        assert!(s["health"]["mock_cpu_cores"].as_f64().is_some(), "{s}");
        if s["name"] == "llm" {
            assert!(s["health"]["mock_cpu_cores"].as_f64().unwrap() > 0.0, "the mock streamed every token: {s}");
        }
        let ttfe = flowbench::load::metrics::decode_histogram(s["histograms"]["duration"].as_str().unwrap()).unwrap();
        assert_eq!(ttfe.len(), c["ok"].as_u64().unwrap());
        // The warm-up's second and the health's, kept for the plots.
        assert_eq!(s["per_second"]["warmup"]["ok"].as_array().unwrap().len(), 1, "{s}");
        assert!(!s["health"]["per_second"].as_array().unwrap().is_empty(), "{s}");
    }
    // Not a terminal: a line when each scenario starts and ends.
    let said = String::from_utf8_lossy(&output.stderr);
    for name in ["empty", "llm"] {
        assert!(
            said.contains(&format!("flowbench: {name}: started")) && said.contains(&format!("flowbench: {name}: ended after")),
            "{said}"
        );
    }
    assert!(std::fs::read_to_string(&md).unwrap().contains("| Max QPS | Avg QPS | Avg Duration (ms) |"));
    // Read again: one report as run printed it; two side by side.
    let again = flowbench().arg("report").arg(&json).output().unwrap();
    assert_eq!(again.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&again.stdout).contains("Empty Workflow QPS"));
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    assert!(page.starts_with("<!doctype html>") && page.matches("<svg ").count() >= 8, "a page of plots");
    let pair = flowbench().arg("report").arg(&json).arg(&json).arg("--html").arg(dir.join("pair.html")).output().unwrap();
    let text = String::from_utf8_lossy(&pair.stdout);
    assert_eq!(pair.status.code(), Some(0), "{}", String::from_utf8_lossy(&pair.stderr));
    assert!(text.contains("| Avg QPS (requests/s) |") && text.contains("One pair of runs cannot tell"), "{text}");
    let pair_page = std::fs::read_to_string(dir.join("pair.html")).unwrap();
    assert!(pair_page.contains("against") && pair_page.contains("One pair of runs cannot tell"));
    let missing = flowbench().args(["report", "no-such-report.json"]).output().unwrap();
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no-such-report.json"));
    // The BMF file carries the same figures as the JSON report.
    let bmf: serde_json::Value = serde_json::from_slice(&std::fs::read(&bmf).unwrap()).unwrap();
    for s in scenarios {
        let b = &bmf[s["name"].as_str().unwrap()];
        assert_eq!(b["requests_per_s"]["value"], s["qps"]["avg"], "{b}");
        // A metric with no value (TTFE of a blocking run) is left out.
        if s["ttfe_ms"]["n"].as_u64().unwrap() > 0 {
            assert_eq!(b["ttfe_p50_ms"]["value"], s["ttfe_ms"]["p50"], "{b}");
        } else {
            assert!(b.get("ttfe_p50_ms").is_none(), "{b}");
        }
        assert_eq!(b["duration_p99_ms"]["value"], s["duration_ms"]["p99"], "{b}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn interrupted_run_still_writes_valid_json() {
    let json = std::env::temp_dir().join(format!("flowbench-int-{}.json", std::process::id()));
    let mut child = flowbench()
        .args(["run", "--scenario", "llm", "--duration", "60s", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Wait until load is flowing: the report only exists once it has started.
    // The stack's line and the run's first progress line come from two
    // processes, in either order.
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    while !line.contains("stack up at") {
        line.clear();
        assert!(std::io::BufRead::read_line(&mut stderr, &mut line).unwrap() > 0, "stderr ended before the stack's line");
    }
    let url = line.split_whitespace().find(|w| w.starts_with("http://")).unwrap_or_else(|| panic!("no URL in {line:?}"));
    let url = url.trim_end_matches(';').to_owned();
    wait_for_runs(&url, 5);
    Command::new("kill").args(["-INT", &child.id().to_string()]).status().unwrap();
    let output = child.wait_with_output().unwrap();
    assert_eq!(output.status.code(), Some(130));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["interrupted"], true);
    let c = &report["scenarios"][0]["counts"];
    assert_eq!(c["sent"].as_u64().unwrap(), c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap());
    assert!(String::from_utf8_lossy(&output.stdout).contains("INTERRUPTED"));
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn a_target_that_is_down_exits_2_before_any_load() {
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let output = flowbench()
        .args(["run", "--scenario", "empty", "--target", &format!("http://127.0.0.1:{port}"), "--api-key", "app-x"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("is down or refused the connection"), "{stderr}");
}

/// Values that only the plan can judge (a key that cannot be a header, a
/// start already past, a CA file that is not one, TLS flags on http://)
/// exit 2 naming the flag before a process starts or a byte is sent: the
/// target below never sees a connection.
#[test]
fn a_bad_value_of_any_kind_exits_2_before_anything_starts() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let target = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let not_pem = std::env::temp_dir().join(format!("flowbench-not-pem-{}", std::process::id()));
    std::fs::write(&not_pem, "not a certificate").unwrap();
    let not_pem = not_pem.to_str().unwrap();
    for (args, named) in [
        (&["run", "--scenario", "empty", "--target", &target, "--api-key", "bad\u{1}key"][..], "--api-key"),
        (&["run", "--scenario", "empty", "--api-key", "bad\u{1}key"], "--api-key"),
        (&["run", "--scenario", "empty", "--target", &target, "--api-key", "k", "--start-at", "1"], "--start-at"),
        (&["run", "--scenario", "empty", "--target", &target, "--api-key", "k", "--insecure"], "https://"),
        (&["run", "--scenario", "empty", "--target", "https://127.0.0.1:9", "--api-key", "k", "--ca-cert", not_pem], "--ca-cert"),
        (&["ab", "--a", &target, "--b", &target, "--scenario", "empty", "--api-key", "bad\u{1}key"], "--api-key"),
        (&["soak", "--mock-script", "/no/such/script.toml"], "--mock-script"),
        (&["merge", "/no/such/a.json", "/no/such/b.json"], "reading /no/such/a.json"),
        (&["report", "/no/such/a.json"], "reading /no/such/a.json"),
    ] {
        let output = flowbench().args(args).output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(named), "{args:?} does not name {named}: {stderr}");
        assert!(output.stdout.is_empty(), "{args:?} printed a report: {}", String::from_utf8_lossy(&output.stdout));
        assert!(listener.accept().is_err_and(|e| e.kind() == std::io::ErrorKind::WouldBlock), "{args:?} connected to the target");
    }
}

/// `flowbench up` as a child, and its line (URLs, keys); SIGTERM it when done.
fn flowbench_up() -> (std::process::Child, serde_json::Value) {
    flowbench_up_with(&[])
}

fn flowbench_up_with(extra: &[&str]) -> (std::process::Child, serde_json::Value) {
    let mut up = flowbench().arg("up").args(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(up.stdout.take().unwrap()), &mut line).unwrap();
    (up, serde_json::from_str(&line).unwrap())
}

#[test]
fn a_wrong_key_exits_2_and_bad_flags_are_named() {
    let (mut up, info) = flowbench_up();
    let url = info["server_url"].as_str().unwrap();
    let output = flowbench().args(["run", "--scenario", "empty", "--target", url, "--api-key", "app-wrong"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rejected the API key (401)"));
    assert_usage_error(&["run", "--target", url, "--api-key", "app-flowbench-empty"], "give NAME=KEY for each of: empty, llm");
    // A CPU source that does not exist is an error, not a figure of zero or "not measured".
    let run = ["run", "--scenario", "empty", "--target", url, "--api-key", "app-flowbench-empty"];
    assert_usage_error(&[&run[..], &["--target-pid", "4194304"]].concat(), "--target-pid 4194304: no such process");
    assert_usage_error(
        &[&run[..], &["--target-cgroup", "no/such/unit.scope"]].concat(),
        "--target-cgroup no/such/unit.scope: no cgroup v2",
    );
    Command::new("kill").args(["-TERM", &up.id().to_string()]).status().unwrap();
    up.wait().unwrap();
}

/// Every bad flag exits 2 with clap's message naming it, before anything runs.
#[test]
fn every_bad_flag_exits_2_naming_the_flag() {
    for (args, flag) in [
        (&["run", "--users", "zero"][..], "--users"),
        (&["run", "--users", "0"], "--users"),
        (&["run", "--rate", "0"], "--rate"),
        (&["run", "--rate=-3"], "--rate"),
        (&["run", "--spawn-rate", "0"], "--spawn-rate"),
        (&["run", "--window", "1500ms"], "--window"),
        (&["run", "--window", "0s"], "--window"),
        (&["run", "--driver-threads", "0"], "--driver-threads"),
        (&["run", "--connections", "0", "--rate", "5"], "--connections"),
        (&["run", "--mode", "sideways"], "--mode"),
        (&["run", "--after-terminal", "linger"], "--after-terminal"),
        (&["run", "--threshold", "ttfe_p95"], "--threshold"),
        (
            &["ab", "--a", "https://x", "--b", "https://y", "--scenario", "empty", "--api-key", "k", "--insecure", "--ca-cert", "c.pem"],
            "--ca-cert",
        ),
        (&["run", "--threshold", "ttfx_p95<1ms"], "--threshold"),
        (&["run", "--header", "no-colon"], "--header"),
        (&["run", "--header", "bad name:v"], "--header"),
        (&["run", "--insecure"], "--target"),
        (&["run", "--target", "https://x", "--insecure", "--ca-cert", "c.pem"], "--ca-cert"),
        (&["ab", "--a", "http://x", "--b", "http://y", "--scenario", "empty", "--api-key", "k", "--slices", "0"], "--slices"),
        (&["ab", "--a", "http://x", "--b", "http://y", "--scenario", "empty", "--api-key", "k", "--users", "0"], "--users"),
        (&["ab", "--a", "http://x", "--b", "http://y", "--scenario", "empty", "--api-key", "k", "--slice", "0s"], "--slice"),
        (&["ab", "--a", "http://x", "--b", "http://y", "--scenario", "both", "--api-key", "k"], "--scenario"),
        (&["soak", "--streams", "0"], "--streams"),
        (&["soak", "--max-stored-runs", "0"], "--max-stored-runs"),
        (&["up", "--max-stored-runs", "0"], "--max-stored-runs"),
        (&["run", "--scrape", "http://127.0.0.1:9/metrics"], "--series"),
        (&["run", "--scrape", "http://127.0.0.1:9/metrics", "--series", "up{job=server}"], "must be quoted"),
        (&["run", "--scrape", "ftp://x/metrics", "--series", "up"], "\"ftp://x/metrics\" is not an http"),
        (&["run", "--target-cpu", "sum(up)"], "--prometheus"),
        (&["run", "--prometheus", "http://127.0.0.1:9090"], "--prometheus: give the query to run with --target-cpu"),
        (&["run", "--prometheus", "localhost:9090", "--target-cpu", "sum(up)"], "\"localhost:9090\" is not an http"),
    ] {
        assert_usage_error(args, flag);
    }
}

/// `flowbench up` with `extra` flags; the child and its server URL.
fn up(extra: &[&str]) -> (std::process::Child, String) {
    let mut child = flowbench().arg("up").args(extra).stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    (child, info["server_url"].as_str().unwrap().to_owned())
}

#[test]
fn ab_drives_both_sides_at_once_and_sees_a_known_cost() {
    let (mut a, a_url) = up(&[]);
    // B spins 300 µs of CPU on every run request: the comparison must see it.
    let (mut b, b_url) = up(&["--inject-busy-per-request", "300us"]);
    let json = std::env::temp_dir().join(format!("flowbench-ab-{}.json", std::process::id()));
    let output = flowbench()
        .args(["ab", "--a", &a_url, "--b", &b_url, "--scenario", "empty", "--api-key", "app-flowbench-empty"])
        .args(["--users", "4", "--slices", "2", "--slice", "500ms", "--settle", "100ms", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(json.with_extension("html"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Target CPU per request (µs)"), "{text}");
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("flowbench ab: 1/2 slice done") && said.contains("flowbench ab: 2/2 slice done"), "a line per slice: {said}");
    let page = std::fs::read_to_string(json.with_extension("html")).unwrap();
    assert!(page.contains("Avg QPS (requests/s) by slice") && page.contains("Health by slice"), "the ab page");
    std::fs::remove_file(json.with_extension("html")).unwrap();
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "flowbench.ab");
    let slices = report["slices"].as_array().unwrap();
    assert_eq!(slices.len(), 2);
    let mut cpu = [0.0, 0.0];
    for slice in slices {
        for (i, side) in ["a", "b"].into_iter().enumerate() {
            let c = &slice[side]["counts"];
            assert_eq!(c["errors"], 0, "{slice}");
            assert!(c["ok"].as_u64().unwrap() > 0, "{slice}");
            assert_eq!(
                c["sent"].as_u64().unwrap(),
                c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap()
            );
            cpu[i] += slice[side]["target_cpu_us_per_request"].as_f64().unwrap() / 2.0;
        }
    }
    assert!(cpu[1] > cpu[0] + 200.0, "A {:.1} µs/request, B {:.1} µs/request", cpu[0], cpu[1]);
    let output = flowbench().args(["ab", "--a", &a_url, "--b", &b_url, "--scenario", "empty", "--api-key", "app-wrong"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("side a:"), "{}", String::from_utf8_lossy(&output.stderr));
    for child in [&mut a, &mut b] {
        Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
        child.wait().unwrap();
    }
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn a_short_soak_samples_rss_and_live_runs_each_second() {
    let json = std::env::temp_dir().join(format!("flowbench-soak-{}.json", std::process::id()));
    // Fast tokens, so the short run still starts and ends many streams.
    let output = flowbench()
        .args(["soak", "--duration", "4s", "--warmup", "2s", "--streams", "50", "--max-growth", "50", "--json"])
        .arg(&json)
        .arg("--html")
        .arg(json.with_extension("html"))
        .args(["--mock-script", concat!(env!("CARGO_MANIFEST_DIR"), "/../fixtures/mock/fast.toml")])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("PASS"), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert_eq!(report["schema"], "flowbench.soak");
    let samples = report["samples"].as_array().unwrap();
    assert!(samples.len() >= 5, "{} samples", samples.len());
    assert!(samples.iter().all(|s| s["rss_kib"].as_u64().unwrap() > 0));
    assert!(samples.iter().any(|s| s["live_runs"].as_u64().unwrap_or(0) > 0), "no sample saw a live run");
    assert_eq!(report["live_runs_after"], 0);
    let c = &report["scenario"]["counts"];
    assert_eq!(c["errors"], 0);
    assert!(c["ok"].as_u64().unwrap() > 50);
    assert_eq!(c["sent"].as_u64().unwrap(), c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap());
    let said = String::from_utf8_lossy(&output.stderr);
    assert!(said.contains("flowbench: soak: started") && said.contains("flowbench: soak: ended after"), "{said}");
    let page = std::fs::read_to_string(json.with_extension("html")).unwrap();
    assert!(page.contains("Stack RSS") && page.contains("Live runs on the server") && page.contains("<b>PASS</b>"), "the soak page");
    std::fs::remove_file(json.with_extension("html")).unwrap();
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn a_target_that_dies_mid_run_still_gets_a_report() {
    let (mut stack, url) = up(&[]);
    let json = std::env::temp_dir().join(format!("flowbench-dies-{}.json", std::process::id()));
    let run = flowbench()
        .args(["run", "--scenario", "llm", "--target", &url, "--api-key", "app-flowbench-llm", "--users", "8", "--spawn-rate", "1000"])
        // Long enough that the stack is killed well inside the run, however
        // slowly the run starts and its first 20 runs finish.
        .args(["--duration", "15s", "--warmup", "0s", "--window", "1s", "--timeout", "5s", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_for_runs(&url, 20);
    stack.kill().unwrap();
    stack.wait().unwrap();
    let output = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    // Its failures are far over the 1% a run may have.
    assert_eq!(output.status.code(), Some(5), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let c = &report["scenarios"][0]["counts"];
    assert!(c["ok"].as_u64().unwrap() > 0, "{c}");
    assert!(c["errors"].as_u64().unwrap() > 0, "{c}");
    assert_eq!(c["sent"].as_u64().unwrap(), c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap());
    // Streams cut when the stack died, then connections refused.
    let classes = c["errors_by_class"].as_object().unwrap();
    assert!(classes.contains_key("connect"), "{classes:?}");
    assert_eq!(classes.values().map(|v| v.as_u64().unwrap()).sum::<u64>(), c["errors"].as_u64().unwrap());
    std::fs::remove_file(&json).unwrap();
}

/// A run in which every request failed is not a pass: the embedded
/// stack's Start→End app answers 400 to inputs without its `question`, and
/// the run exits 1 naming the scenario, its report still written.
#[test]
fn a_run_without_one_success_exits_1() {
    let json = std::env::temp_dir().join(format!("flowbench-allfail-{}.json", std::process::id()));
    let output = flowbench()
        .args(["run", "--scenario", "empty", "--inputs", r#"{"not_the_question":"x"}"#, "--users", "2"])
        .args(["--duration", "1s", "--warmup", "0s", "--window", "1s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("scenario empty: no request succeeded in the measured phase"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let c = &report["scenarios"][0]["counts"];
    assert_eq!(c["ok"], 0, "{c}");
    assert!(c["errors_by_class"]["http_4xx"].as_u64().unwrap() > 0, "{c}");
    // No latency: every summary of a success is empty, and the seed's tables say so.
    let s = &report["scenarios"][0];
    for metric in ["duration_ms", "ttfb_ms", "service_time_ms"] {
        assert_eq!(s[metric]["n"], 0, "{metric}: {}", s[metric]);
    }
    assert!(s["failed_duration_ms"]["n"].as_u64().unwrap() > 0);
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Latency: none; no request succeeded"), "{stdout}");
    assert!(stdout.contains("| — |"), "the seed's Avg Duration is not a number: {stdout}");
    std::fs::remove_file(&json).unwrap();
}

/// Reads one request, head and body (by its `content-length`), from
/// `tcp`; whether it was a GET (the preflight's `/v1/parameters`).
fn read_request(tcp: &std::net::TcpStream) -> bool {
    use std::io::{BufRead, BufReader, Read};
    let mut reader = BufReader::new(tcp);
    let (mut get, mut length, mut first) = (false, 0usize, true);
    let mut line = String::new();
    while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
        get |= first && line.starts_with("GET");
        first = false;
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = v.trim().parse().unwrap_or(0);
        }
        line.clear();
    }
    let _ = reader.read_exact(&mut vec![0; length]);
    get
}

/// A Dify-shaped target on loopback that answers `GET /v1/parameters`, and
/// of its workflow runs drops every second one without an answer (the
/// connection closed as it came) and answers the rest, blocking, after
/// `delay`. Each answer closes its connection.
fn half_broken_target(delay: std::time::Duration) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut runs = 0u64;
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            let answer = if read_request(&tcp) {
                r#"{"user_input_form":[]}"#
            } else {
                runs += 1;
                if runs.is_multiple_of(2) {
                    continue; // dropped: the connection closes unanswered
                }
                std::thread::sleep(delay);
                r#"{"task_id":"t","workflow_run_id":"r","data":{"id":"r","status":"succeeded","outputs":{}}}"#
            };
            let _ = write!(
                tcp,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{answer}",
                answer.len()
            );
        }
    });
    url
}

/// An outage is not a faster target: with every second run dropped in
/// about no time, the latencies are the answered runs' (none under the
/// target's delay), the drops are counted and timed on their own row, and
/// the run exits 5 for failures over --max-error-rate.
#[test]
fn failures_stay_out_of_the_latencies_and_over_the_error_budget_exit_5() {
    let delay = std::time::Duration::from_millis(20);
    let url = half_broken_target(delay);
    let json = std::env::temp_dir().join(format!("flowbench-outage-{}.json", std::process::id()));
    let output = flowbench()
        .args(["run", "--target", &url, "--api-key", "app-x", "--scenario", "empty", "--users", "2", "--spawn-rate", "100"])
        .args(["--duration", "2s", "--warmup", "0s", "--window", "1s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(5), "{stdout}\n{stderr}");
    assert!(stderr.contains("scenario empty:") && stderr.contains("over --max-error-rate 1.00%"), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &report["scenarios"][0];
    let (ok, errors) = (s["counts"]["ok"].as_u64().unwrap(), s["counts"]["errors"].as_u64().unwrap());
    assert!(ok > 10 && errors > 10 && ok.abs_diff(errors) <= 3, "about one run in two fails: {}", s["counts"]);
    let floor = delay.as_secs_f64() * 1000.0;
    for metric in ["duration_ms", "service_time_ms", "ttfb_ms"] {
        let summary = &s[metric];
        assert_eq!(summary["n"].as_u64(), Some(ok), "{metric} holds the successes only: {summary}");
        assert!(summary["min"].as_f64().unwrap() >= floor, "{metric}: no answered run took under {floor} ms: {summary}");
    }
    assert!(s["avg_duration_ms"].as_f64().unwrap() >= floor, "the seed's Avg Duration too");
    assert_eq!(s["failed_duration_ms"]["n"].as_u64(), Some(errors), "the failures are timed apart");
    assert!(stdout.contains(&format!("of the {ok} answered requests; the {errors} failures are timed on their own row")), "{stdout}");
    // Failures within the budget pass.
    let lenient = flowbench()
        .args(["run", "--target", &url, "--api-key", "app-x", "--scenario", "empty", "--users", "1"])
        .args(["--duration", "1s", "--warmup", "0s", "--window", "1s", "--max-error-rate", "60%"])
        .output()
        .unwrap();
    assert_eq!(lenient.status.code(), Some(0), "{}", String::from_utf8_lossy(&lenient.stderr));
    std::fs::remove_file(&json).unwrap();
}

/// A streaming Dify-shaped target on loopback that serves one connection
/// at a time and stalls `stall` before answering its `at`-th run: runs
/// sent meanwhile wait in the backlog, later arrivals for a free connection.
fn stalling_target(at: u64, stall: std::time::Duration) -> String {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut runs = 0u64;
        for tcp in listener.incoming() {
            let Ok(mut tcp) = tcp else { continue };
            if read_request(&tcp) {
                let body = r#"{"user_input_form":[]}"#;
                let _ = write!(tcp, "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}", body.len());
                continue;
            }
            runs += 1;
            if runs == at {
                std::thread::sleep(stall);
            }
            let _ = tcp.write_all(
                b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\nconnection: close\r\n\r\n\
                  data: {\"event\":\"workflow_started\",\"data\":{}}\n\n\
                  data: {\"event\":\"workflow_finished\",\"data\":{\"status\":\"succeeded\"}}\n\n",
            );
        }
    });
    url
}

/// Coordinated omission corrected in the headline: under --rate, a 1 s
/// stall of the target holds back the arrivals that find every connection
/// busy; the seed's TTFE (from the intended send) shows their wait, the
/// service row (from the send) does not.
#[test]
fn a_stall_under_an_open_load_shows_in_the_seed_tables_ttfe() {
    let url = stalling_target(20, std::time::Duration::from_secs(1));
    let json = std::env::temp_dir().join(format!("flowbench-stall-{}.json", std::process::id()));
    let output = flowbench()
        .args(["run", "--target", &url, "--api-key", "app-x", "--scenario", "llm", "--rate", "50", "--connections", "4"])
        .args(["--duration", "3s", "--warmup", "0s", "--window", "1s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{stdout}\n{}", String::from_utf8_lossy(&output.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &report["scenarios"][0];
    assert_eq!(s["counts"]["ok"], 150, "{}", s["counts"]);
    let (headline, service) = (&s["ttfe_ms"], &s["ttfe_from_sent_ms"]);
    // About 50 arrivals fall in the stall; all but the 4 sent wait for a connection.
    assert!(headline["p90"].as_f64().unwrap() > 300.0, "headline {headline}, service {service}");
    assert!(headline["max"].as_f64().unwrap() > 900.0, "{headline}");
    assert!(service["p90"].as_f64().unwrap() < headline["p90"].as_f64().unwrap() / 2.0, "headline {headline}, service {service}");
    // The seed's table prints the headline: its P90 column is the stall's.
    let seed_row = stdout.lines().skip_while(|l| !l.starts_with("TTFE - Time To First Event")).nth(3).unwrap();
    let p90: f64 = seed_row.split('|').nth(5).unwrap().trim().parse().unwrap();
    assert!((p90 - headline["p90"].as_f64().unwrap()).abs() < 0.01, "{seed_row} vs {headline}");
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn a_crossed_threshold_exits_4_and_the_report_says_which() {
    let output = flowbench()
        .args(["run", "--quick", "--scenario", "empty", "--duration", "1s", "--warmup", "0s", "--window", "1s"])
        .args(["--threshold", "empty:qps > 1e12", "--threshold", "duration_p99<1h", "--threshold", "llm:ttfe_p95<1s"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(4), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("FAIL empty: empty:qps > 1e12 (measured "), "{text}");
    assert!(text.contains("PASS empty: duration_p99<1h (measured "), "{text}");
    // Scoped to a scenario that did not run: nothing met it.
    assert!(text.contains("FAIL llm: llm:ttfe_p95<1s (not measured)"), "{text}");
    let passing = flowbench()
        .args(["run", "--quick", "--scenario", "empty", "--duration", "1s", "--warmup", "0s", "--window", "1s"])
        .args(["--threshold", "duration_p99<1h", "--threshold", "error_rate<=1%"])
        .output()
        .unwrap();
    assert!(passing.status.success(), "{}", String::from_utf8_lossy(&passing.stdout));
}

/// A k6-style file on the embedded stack: two apps by weight, stages, a
/// think time, inputs from a file, and thresholds judged into the report.
#[test]
fn a_scenario_file_runs_its_apps_stages_and_thresholds() {
    let dir = std::env::temp_dir().join(format!("flowbench-file-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let output = flowbench()
        .args(["run", "--quick", "--window", "1s", "--scenario-file", "../fixtures/scenarios/mixed.toml"])
        // A threshold no run can meet: exit 4, and the file's own judged too.
        .args(["--threshold", "mixed:qps > 1000000000", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let (text, stderr) = (String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    assert_eq!(output.status.code(), Some(4), "{text}\n{stderr}");
    assert!(text.contains("== mixed (mixed) =="), "{text}");
    assert!(text.contains("closed, users by stages 0 → 20 over 1.33 s, 20 for 4 s, 20 → 0 over 0.67 s; think time 0.05–0.15 s"), "{text}");
    assert!(text.contains("| app | mode | weight |"), "{text}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let s = &report["scenarios"][0];
    assert_eq!(s["load"]["model"], "ramping_users");
    assert_eq!(s["counts"]["errors"], 0, "{s}");
    let apps = s["apps"].as_array().unwrap();
    let names: Vec<_> = apps.iter().map(|a| a["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["chat-like", "lookup"]);
    let ok: u64 = apps.iter().map(|a| a["ok"].as_u64().unwrap()).sum();
    assert_eq!(ok, s["counts"]["ok"].as_u64().unwrap(), "the apps' requests are the scenario's");
    assert!(apps.iter().all(|a| a["ok"].as_u64().unwrap() > 0), "{apps:?}");
    assert_eq!(apps[0]["mode"], "streaming");
    let thresholds: Vec<_> = report["thresholds"].as_array().unwrap().iter().map(|t| t["threshold"].as_str().unwrap().to_owned()).collect();
    for t in ["error_rate < 1%", "ttfe_p95 < 500ms", "duration_p99 < 2s", "mixed:qps > 1000000000"] {
        assert!(thresholds.iter().any(|x| x == t), "{t} not judged: {thresholds:?}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn a_bad_scenario_file_is_named_by_line_and_key() {
    let dir = std::env::temp_dir().join(format!("flowbench-badfile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("load.toml");
    std::fs::write(&bad, "[[scenario]]\nname = \"a\"\nuserz = 3\n").unwrap();
    let bad = bad.to_str().unwrap();
    assert_usage_error(&["run", "--scenario-file", bad], "load.toml line 3: unknown field `userz`");
    let staged = dir.join("staged.toml");
    std::fs::write(
        &staged,
        "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nfixture = \"empty\"\n[[scenario.stages]]\nduration = \"2s\"\nusers = 2\n",
    )
    .unwrap();
    let staged = staged.to_str().unwrap();
    assert_usage_error(&["run", "--scenario-file", staged, "--users", "4"], "--users: scenario \"a\" (");
    assert_usage_error(&["run", "--scenario-file", staged, "--scenario", "b"], "no such scenario; there are: all, a");
    assert_usage_error(&["run", "--scenario-file", staged, "--profile", "capacity"], "--profile");
    std::fs::remove_dir_all(&dir).unwrap();
}

/// `GET path` on a new connection (HTTP/1.0): its status and body.
fn get(server_url: &str, path: &str, key: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut tcp = std::net::TcpStream::connect(server_url.trim_start_matches("http://")).unwrap();
    write!(tcp, "GET {path} HTTP/1.0\r\nAuthorization: Bearer {key}\r\n\r\n").unwrap();
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).unwrap();
    let status = answer.split(' ').nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, answer.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default())
}

/// The seed's setup on one machine: three server processes on one address
/// and one SQLite store (`flowbench up --replicas 3`), three shards of one
/// load started together against them, then merged: every request of every
/// shard is in the merged report, each shard's health is kept, a merge of
/// two of the three is refused, and a run is read through new connections,
/// whichever replica each reaches.
#[test]
fn three_shards_run_together_against_three_replicas_and_merge_into_one_report() {
    assert_usage_error(&["up", "--replicas", "3"], "--replicas 3 with --store memory");
    let dir = std::env::temp_dir().join(format!("flowbench-shards-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let store = format!("sqlite:{}", dir.join("runs.db").display());
    let (mut up, info) = flowbench_up_with(&["--replicas", "3", "--store", &store]);
    let url = info["server_url"].as_str().unwrap().to_owned();
    let key = info["apps"]["empty"]["api_key"].as_str().unwrap().to_owned();
    let pids: Vec<u64> = info["server_pids"].as_array().unwrap().iter().map(|p| p.as_u64().unwrap()).collect();
    assert_eq!(pids.len(), 3, "{info}");
    assert!(pids.iter().all(|p| std::path::Path::new(&format!("/proc/{p}")).exists()), "every replica runs");
    // Far enough ahead for three debug builds to start and pass their
    // preflight on a loaded machine: a shard late for it exits 2.
    let start_at =
        (std::time::SystemTime::now() + std::time::Duration::from_secs(10)).duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
    let shards: Vec<_> = (1..=3)
        .map(|i| {
            let json = dir.join(format!("shard{i}.json"));
            let child = flowbench()
                .args(["run", "--scenario", "empty", "--target", &url, "--api-key", &key, "--users", "6", "--spawn-rate", "100"])
                .args([
                    "--warmup",
                    "0s",
                    "--duration",
                    "2s",
                    "--window",
                    "1s",
                    "--shard",
                    &format!("{i}/3"),
                    "--start-at",
                    &start_at.to_string(),
                ])
                .arg("--json")
                .arg(&json)
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .unwrap();
            (json, child)
        })
        .collect();
    let mut files = Vec::new();
    let mut sent = 0;
    for (json, child) in shards {
        let output = child.wait_with_output().unwrap();
        assert!(matches!(output.status.code(), Some(0)), "{}", String::from_utf8_lossy(&output.stderr));
        let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
        assert_eq!(report["scenarios"][0]["load"]["users"], 2, "6 users over 3 shards");
        sent += report["scenarios"][0]["counts"]["sent"].as_u64().unwrap();
        files.push(json);
    }
    let merged_json = dir.join("merged.json");
    let output = flowbench().arg("merge").args(&files).arg("--json").arg(&merged_json).output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(0), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("Empty Workflow QPS") && text.contains("Merged from 3 reports:"), "{text}");
    let merged: serde_json::Value = serde_json::from_slice(&std::fs::read(&merged_json).unwrap()).unwrap();
    let s = &merged["scenarios"][0];
    assert_eq!(s["counts"]["sent"].as_u64().unwrap(), sent, "every shard's requests");
    assert_eq!(s["load"]["users"], 6);
    assert_eq!(merged["shards"].as_array().unwrap().len(), 3);
    let duration = flowbench::load::metrics::decode_histogram(s["histograms"]["duration"].as_str().unwrap()).unwrap();
    assert_eq!(duration.len(), s["counts"]["ok"].as_u64().unwrap() + s["counts"]["errors"].as_u64().unwrap());
    let partial = flowbench().arg("merge").args(&files[..2]).output().unwrap();
    assert_eq!(partial.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&partial.stderr).contains("shards 3/3 are missing"));
    // One run, read on twelve new connections: the kernel deals them over
    // the replicas, and each answers from the shared store.
    let run = Command::new("curl")
        .args(["-s", "-X", "POST", &format!("{url}/v1/workflows/run"), "-H", &format!("Authorization: Bearer {key}")])
        .args(["-H", "Content-Type: application/json", "-d", r#"{"inputs":{"question":"q"},"response_mode":"blocking","user":"u"}"#])
        .output()
        .unwrap();
    let run: serde_json::Value = serde_json::from_slice(&run.stdout).unwrap();
    let id = run["workflow_run_id"].as_str().unwrap();
    for _ in 0..12 {
        let (status, body) = get(&url, &format!("/v1/workflows/run/{id}"), &key);
        assert_eq!(status, 200, "{body}");
    }
    Command::new("kill").args(["-TERM", &up.id().to_string()]).status().unwrap();
    up.wait().unwrap();
    for p in &pids {
        assert!(!std::path::Path::new(&format!("/proc/{p}")).exists(), "replica {p} stopped with the stack");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}
