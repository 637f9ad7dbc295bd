//! `cargo xtask yardstick` end to end: a `flowbench up` stack and `flowbench
//! bare` started, both orders driven by `flowbench ab`, and the ratios read
//! back from the JSON. Its own test binary: the targets are pinned to one
//! core and the driver to the other, so nothing else of the suite runs
//! beside them.

mod common;

use common::flowbench;
use std::process::Command;

#[test]
fn both_yardsticks_are_measured_in_both_orders() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("yardstick.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["yardstick", "--binary"])
        .arg(flowbench())
        .args(["--slices", "1", "--slice", "500ms", "--settle", "100ms", "--users", "4", "--rounds", "2"])
        // Targets no build misses: each checked on an interval over two rounds.
        .args(["--empty-at-least", "0.01", "--llm-at-most", "1000", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let yardsticks = report.as_array().unwrap();
    assert_eq!(yardsticks.iter().map(|y| y["scenario"].as_str().unwrap()).collect::<Vec<_>>(), ["empty", "llm"]);
    for y in yardsticks {
        let orders = y["orders"].as_array().unwrap();
        assert_eq!(orders.iter().map(|o| o["server_side"].as_str().unwrap()).collect::<Vec<_>>(), ["A", "B", "A", "B"], "{y:#}");
        assert_eq!(orders.iter().map(|o| o["round"].as_u64().unwrap()).collect::<Vec<_>>(), [1, 1, 2, 2], "{y:#}");
        let [low, high] = [0, 1].map(|i| y["ratio_interval"][i].as_f64().unwrap());
        assert!(low <= y["ratio"].as_f64().unwrap() && y["ratio"].as_f64().unwrap() <= high, "{y:#}");
        let targets = y["targets"].as_array().unwrap();
        assert_eq!(targets.len(), if y["scenario"] == "empty" { 2 } else { 1 }, "{y:#}");
        assert!(targets.iter().all(|t| t["verdict"] == "met"), "{y:#}");
        for o in orders {
            for figure in ["server_req_per_s", "bare_req_per_s", "server_cpu_us", "bare_cpu_us", "ratio"] {
                let v = o[figure].as_f64().unwrap_or(f64::NAN);
                assert!(v.is_finite() && v > 0.0, "{figure}: {o:#}");
            }
        }
        // The mean lies among the orders' ratios.
        let ratios: Vec<f64> = orders.iter().map(|o| o["ratio"].as_f64().unwrap()).collect();
        let mean = y["ratio"].as_f64().unwrap();
        assert!(mean >= ratios.iter().copied().fold(f64::MAX, f64::min) - 1e-9, "{y:#}");
        assert!(mean <= ratios.iter().copied().fold(0.0, f64::max) + 1e-9, "{y:#}");
        assert_eq!(y["cpu_ratio"].is_null(), y["scenario"] == "llm", "{y:#}");
    }
    assert!(stdout.contains("yardstick empty:") && stdout.contains("both orders: the relay's CPU per event"), "{stdout}");
}

/// One round has no interval: a target cannot be judged, and that is not a
/// pass. A target for a yardstick left out is a bad flag, refused at once.
#[test]
fn a_target_without_an_interval_cannot_tell() {
    let run = |extra: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_xtask"))
            .args(["yardstick", "--binary"])
            .arg(flowbench())
            .args(["--scenario", "empty", "--slices", "1", "--slice", "300ms", "--settle", "100ms", "--users", "4"])
            .args(extra)
            .output()
            .unwrap()
    };
    let out = run(&["--empty-at-least", "0.01"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(3), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains("target: req/s ratio at least 0.01×: cannot tell (one round has no interval"), "{stdout}");
    let refused = run(&["--llm-at-most", "1.5"]);
    let stderr = String::from_utf8_lossy(&refused.stderr);
    assert_eq!(refused.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--llm-at-most is a target for a yardstick --scenario leaves out"), "{stderr}");
}
