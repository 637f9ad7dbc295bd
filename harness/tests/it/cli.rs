//! `flowbench run` and `flowbench ab` as a user runs them: the embedded stack,
//! the report, the JSON document, exit codes for a bad target, and Ctrl-C.

use std::process::{Command, Stdio};

fn flowbench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_flowbench"))
}

#[test]
fn a_quick_run_prints_the_seed_tables_and_writes_json() {
    let dir = std::env::temp_dir().join(format!("flowbench-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let json = dir.join("report.json");
    let md = dir.join("report.md");
    let output = flowbench()
        .args(["run", "--quick", "--duration", "2s", "--warmup", "1s", "--window", "1s", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&md)
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
    assert_eq!(report["schema_version"], 1);
    let scenarios = report["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), 2);
    for s in scenarios {
        let c = &s["counts"];
        assert_eq!(c["sent"].as_u64().unwrap(), c["warmup"].as_u64().unwrap() + c["ok"].as_u64().unwrap() + c["errors"].as_u64().unwrap());
        assert_eq!(c["errors"], 0, "{s}");
        // The embedded stack is a local process: its CPU per request is known.
        assert!(s["target_cpu_us_per_request"].as_f64().is_some_and(|us| us > 0.0), "{s}");
        let ttfe = harness::metrics::decode_histogram(s["histograms"]["duration"].as_str().unwrap()).unwrap();
        assert_eq!(ttfe.len(), c["ok"].as_u64().unwrap());
    }
    assert!(std::fs::read_to_string(&md).unwrap().contains("| Max QPS | Avg QPS | Avg Duration (ms) |"));
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
    let mut stderr = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut line = String::new();
    std::io::BufRead::read_line(&mut stderr, &mut line).unwrap();
    assert!(line.contains("stack up"), "{line}");
    std::thread::sleep(std::time::Duration::from_secs(2));
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

#[test]
fn a_wrong_key_exits_2_and_bad_flags_are_named() {
    let mut up = flowbench().arg("up").stdout(Stdio::piped()).stderr(Stdio::null()).spawn().unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(&mut std::io::BufReader::new(up.stdout.take().unwrap()), &mut line).unwrap();
    let info: serde_json::Value = serde_json::from_str(&line).unwrap();
    let url = info["server_url"].as_str().unwrap();
    let output = flowbench().args(["run", "--scenario", "empty", "--target", url, "--api-key", "app-wrong"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("rejected the API key (401)"));
    let output = flowbench().args(["run", "--target", url, "--api-key", "app-flowbench-empty"]).output().unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("give empty=KEY and llm=KEY"));
    let output = flowbench().args(["run", "--users", "zero"]).output().unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--users"));
    Command::new("kill").args(["-TERM", &up.id().to_string()]).status().unwrap();
    up.wait().unwrap();
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
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("target CPU µs/request"), "{text}");
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
    let output = flowbench()
        .args(["ab", "--a", &a_url, "--b", &b_url, "--scenario", "empty", "--api-key", "app-x", "--slices", "0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&output.stderr).contains("--slices must be at least 1"));
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
    std::fs::remove_file(&json).unwrap();
}

#[test]
fn a_target_that_dies_mid_run_still_gets_a_report() {
    let (mut stack, url) = up(&[]);
    let json = std::env::temp_dir().join(format!("flowbench-dies-{}.json", std::process::id()));
    let run = flowbench()
        .args(["run", "--scenario", "llm", "--target", &url, "--api-key", "app-flowbench-llm", "--users", "8", "--spawn-rate", "1000"])
        .args(["--duration", "5s", "--warmup", "0s", "--window", "1s", "--timeout", "5s", "--json"])
        .arg(&json)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    stack.kill().unwrap();
    stack.wait().unwrap();
    let output = run.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}\n{}", String::from_utf8_lossy(&output.stderr));
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
