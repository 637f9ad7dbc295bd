//! `flowbench run` as a user runs it: the embedded stack, the report, the
//! JSON document, exit codes for a bad target, and Ctrl-C.

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
