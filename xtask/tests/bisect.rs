//! `cargo xtask bisect` over histories made here: a repository whose
//! commits each set the server's busy cost per request (the file `cost`,
//! read with `--inject-from`), so where the metric steps is known. One
//! step of a tenth is named at its commit; ten steps of a hundredth each
//! are drift. Its own test binary: the rounds pin stacks to one core and
//! judge other processes' CPU a disturbance, so nothing else of the suite
//! runs beside them.

mod common;

use common::flowbench;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

fn git(repo: &Path, args: &[&str]) -> String {
    let out = Command::new("git").args(args).current_dir(repo).output().unwrap();
    assert!(out.status.success(), "git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A repository with one commit per cost, in order; the commits' ids.
fn history(dir: &Path, costs: &[Duration]) -> Vec<String> {
    git(dir, &["init", "-q", "-b", "main"]);
    git(dir, &["config", "user.email", "bisect@flowbench.test"]);
    git(dir, &["config", "user.name", "bisect test"]);
    let mut commits = Vec::new();
    for (i, cost) in costs.iter().enumerate() {
        std::fs::write(dir.join("cost"), format!("{}ns\n", cost.as_nanos())).unwrap();
        std::fs::write(dir.join("counter"), format!("{i}\n")).unwrap();
        git(dir, &["add", "cost", "counter"]);
        git(dir, &["commit", "-q", "-m", &format!("commit {i}: {}ns", cost.as_nanos())]);
        commits.push(git(dir, &["rev-parse", "HEAD"]));
    }
    commits
}

/// The server's CPU per request on this machine, this build: what a tenth is.
fn cpu_per_request(flowbench: &Path, dir: &Path) -> Duration {
    let json = dir.join("calibrate.json");
    let out = Command::new(flowbench)
        .args(["run", "--scenario", "empty", "--users", "8", "--spawn-rate", "1000", "--warmup", "1s", "--duration", "3s", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    assert!(out.status.code().is_some_and(|c| c == 0 || c == 3), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    let us = report["scenarios"][0]["target_cpu_us_per_request"].as_f64().expect("the server's CPU");
    Duration::from_nanos((us * 1000.0) as u64)
}

fn bisect(repo: &Path, flowbench: &Path, good: &str, bad: &str) -> serde_json::Value {
    let json = repo.join("bisect.json");
    let out = Command::new(env!("CARGO_BIN_EXE_xtask"))
        .args(["bisect", "--good", good, "--bad", bad, "--metric", "empty_cpu_per_request", "--inject-from", "cost", "--binary"])
        .arg(flowbench)
        .arg("--repo")
        .arg(repo)
        .args(["--rounds", "3", "--max-rounds", "6", "--slices", "2", "--slice", "1s", "--settle", "200ms", "--users", "8", "--json"])
        .arg(&json)
        .output()
        .unwrap();
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.code().is_some_and(|c| c == 0 || c == 3), "exit {:?}\n{stdout}\n{stderr}", out.status.code());
    let report: serde_json::Value = serde_json::from_slice(&std::fs::read(&json).unwrap()).unwrap();
    assert!(stdout.contains(report["answer"].as_str().unwrap()), "{stdout}");
    report
}

#[test]
fn one_step_of_a_tenth_is_named_and_ten_steps_of_a_hundredth_are_drift() {
    let flowbench = flowbench();
    let scratch = tempfile::tempdir().unwrap();
    let tenth = cpu_per_request(&flowbench, scratch.path()) / 10;

    let step = tempfile::tempdir().unwrap();
    let costs: Vec<Duration> = (0..9).map(|i| if i >= 5 { tenth } else { Duration::ZERO }).collect();
    let commits = history(step.path(), &costs);
    let report = bisect(step.path(), &flowbench, &commits[0], &commits[8]);
    assert_eq!(report["answer"], "step", "{report:#}");
    assert_eq!(report["commit"], commits[5].as_str(), "{report:#}");
    let size = report["step_pct"].as_f64().unwrap();
    assert!((5.0..20.0).contains(&size), "about a tenth: {report:#}");

    let drift = tempfile::tempdir().unwrap();
    let costs: Vec<Duration> = (0u32..11).map(|i| tenth * i / 10).collect();
    let commits = history(drift.path(), &costs);
    let report = bisect(drift.path(), &flowbench, &commits[0], &commits[10]);
    assert_eq!(report["answer"], "drift", "{report:#}");
    let total = report["total_pct"].as_f64().unwrap();
    assert!((5.0..20.0).contains(&total), "the cumulative change, about a tenth: {report:#}");
}
