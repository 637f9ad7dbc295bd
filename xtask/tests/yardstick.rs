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
        .args(["--slices", "1", "--slice", "500ms", "--settle", "100ms", "--users", "4", "--json"])
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
        assert_eq!(orders.iter().map(|o| o["server_side"].as_str().unwrap()).collect::<Vec<_>>(), ["A", "B"], "{y:#}");
        for o in orders {
            for figure in ["server_req_per_s", "bare_req_per_s", "server_cpu_us", "bare_cpu_us", "ratio"] {
                let v = o[figure].as_f64().unwrap_or(f64::NAN);
                assert!(v.is_finite() && v > 0.0, "{figure}: {o:#}");
            }
        }
        // The mean lies between the two orders' ratios.
        let (r0, r1, mean) = (orders[0]["ratio"].as_f64().unwrap(), orders[1]["ratio"].as_f64().unwrap(), y["ratio"].as_f64().unwrap());
        assert!(mean >= r0.min(r1) - 1e-9 && mean <= r0.max(r1) + 1e-9, "{y:#}");
        assert_eq!(y["cpu_ratio"].is_null(), y["scenario"] == "llm", "{y:#}");
    }
    assert!(stdout.contains("yardstick empty:") && stdout.contains("both orders: the relay's CPU per event"), "{stdout}");
}
