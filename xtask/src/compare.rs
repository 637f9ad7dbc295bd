//! `cargo xtask bench-compare BASE`: criterion's saved samples for the
//! baseline `BASE` and for the latest run (`new`) turned into a verdict per
//! benchmark and an exit code, since criterion itself exits 0 whatever it
//! finds.
//!
//! Verdicts follow criterion's own rule: Regressed only when the bootstrap
//! 95% interval of the change in mean time lies wholly above the noise
//! threshold, Improved when wholly below its negative, else NonSignificant.

use crate::stats::{bootstrap_log_ratio_of_means, pct};
use crate::verdict::ChangeVerdict;
use anyhow::{Context, bail};
use schema::bmf::{Bmf, Measure};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

const RESAMPLES: usize = 10_000;

#[derive(Deserialize)]
struct SampleFile {
    iters: Vec<f64>,
    times: Vec<f64>,
}

#[derive(Deserialize)]
struct BenchmarkFile {
    full_id: String,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct Comparison {
    pub id: String,
    pub base_ns: f64,
    pub new_ns: f64,
    pub change_pct: f64,
    pub low_pct: f64,
    pub high_pct: f64,
    pub verdict: ChangeVerdict,
}

/// Compares every benchmark that has both `BASE` and `new` samples.
pub fn compare(criterion_dir: &Path, base: &str, threshold_pct: f64) -> anyhow::Result<Vec<Comparison>> {
    let mut out = Vec::new();
    for dir in bench_dirs(criterion_dir)? {
        let (Ok(base_sample), Ok(new_sample)) = (read_sample(&dir.join(base)), read_sample(&dir.join("new"))) else { continue };
        let id: BenchmarkFile = serde_json::from_slice(&std::fs::read(dir.join("new/benchmark.json"))?)?;
        let (point, low, high) = bootstrap_log_ratio_of_means(&base_sample, &new_sample, RESAMPLES, 1);
        let (low_pct, high_pct) = (pct(low), pct(high));
        let verdict = if low_pct > threshold_pct {
            ChangeVerdict::Regressed
        } else if high_pct < -threshold_pct {
            ChangeVerdict::Improved
        } else {
            ChangeVerdict::NonSignificant
        };
        out.push(Comparison {
            id: id.full_id,
            base_ns: crate::stats::mean(&base_sample),
            new_ns: crate::stats::mean(&new_sample),
            change_pct: pct(point),
            low_pct,
            high_pct,
            verdict,
        });
    }
    if out.is_empty() {
        bail!(
            "no benchmark under {} has both a {base:?} baseline and a new run; run `cargo bench -- --save-baseline {base}` first, then `cargo bench`",
            criterion_dir.display()
        );
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Per-iteration mean times (ns) of one saved sample.
fn read_sample(dir: &Path) -> anyhow::Result<Vec<f64>> {
    let file: SampleFile = serde_json::from_slice(&std::fs::read(dir.join("sample.json"))?)?;
    Ok(file.times.iter().zip(&file.iters).map(|(t, i)| t / i).collect())
}

/// Every folder holding a `new/benchmark.json`.
fn bench_dirs(root: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).with_context(|| format!("reading {}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() && path.file_name().is_some_and(|n| n != "report") {
                if path.join("new/benchmark.json").exists() {
                    found.push(path.clone());
                }
                stack.push(path);
            }
        }
    }
    Ok(found)
}

pub fn markdown(rows: &[Comparison], base: &str, threshold_pct: f64) -> String {
    let mut out = format!("### Benchmarks vs `{base}` (noise threshold ±{threshold_pct}%)\n\n");
    out.push_str("| benchmark | base | new | change | 95% CI | verdict |\n|---|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:+.2}% | [{:+.2}%, {:+.2}%] | {} |",
            r.id,
            time(r.base_ns),
            time(r.new_ns),
            r.change_pct,
            r.low_pct,
            r.high_pct,
            if r.verdict == ChangeVerdict::Regressed { "**Regressed**" } else { r.verdict.as_str() }
        );
    }
    let by_id: BTreeMap<&str, &Comparison> = rows.iter().map(|r| (r.id.as_str(), r)).collect();
    if let (Some(server), Some(bare)) = (by_id.get("start_end/http_round_trip"), by_id.get("calibration/axum_round_trip")) {
        let _ = writeln!(out, "\nStart→End round trip costs {:.2}× a bare axum handler's on this machine.", server.new_ns / bare.new_ns);
    }
    if let (Some(relay), Some(direct)) = (by_id.get("relay_latency/server"), by_id.get("relay_latency/direct")) {
        let _ = writeln!(out, "The server adds {} per relayed chunk over the direct path.", time(relay.new_ns - direct.new_ns));
    }
    out
}

/// Bencher Metric Format: each benchmark's `latency` in ns, bounded by the
/// change's interval.
pub fn bmf(rows: &[Comparison]) -> Bmf {
    let mut out = Bmf::default();
    for r in rows {
        out.insert(r.id.clone(), "latency", Measure::of_change(r.new_ns, r.base_ns, r.low_pct, r.high_pct));
    }
    out
}

fn time(ns: f64) -> String {
    match ns.abs() {
        n if n >= 1e9 => format!("{:.3} s", ns / 1e9),
        n if n >= 1e6 => format!("{:.3} ms", ns / 1e6),
        n if n >= 1e3 => format!("{:.3} µs", ns / 1e3),
        _ => format!("{ns:.1} ns"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write_bench(root: &Path, name: &str, baseline: &str, per_iter_ns: f64) {
        let dir = root.join(name).join(baseline);
        std::fs::create_dir_all(&dir).unwrap();
        let iters: Vec<f64> = (1..=20).map(f64::from).collect();
        let times: Vec<f64> = iters.iter().enumerate().map(|(i, n)| n * per_iter_ns * (1.0 + (i % 3) as f64 * 0.001)).collect();
        std::fs::write(dir.join("sample.json"), serde_json::json!({"sampling_mode": "Linear", "iters": iters, "times": times}).to_string())
            .unwrap();
        std::fs::write(dir.join("benchmark.json"), serde_json::json!({"full_id": name}).to_string()).unwrap();
    }

    #[test]
    fn verdicts_from_saved_samples() {
        let root = std::env::temp_dir().join(format!("flowbench-compare-{}", std::process::id()));
        for (name, base, new) in [("slow", 100.0, 110.0), ("fast", 100.0, 90.0), ("same", 100.0, 100.0)] {
            write_bench(&root, name, "main", base);
            write_bench(&root, name, "new", new);
        }
        let rows = compare(&root, "main", 2.0).unwrap();
        let verdicts: Vec<(&str, ChangeVerdict)> = rows.iter().map(|r| (r.id.as_str(), r.verdict)).collect();
        assert_eq!(
            verdicts,
            [("fast", ChangeVerdict::Improved), ("same", ChangeVerdict::NonSignificant), ("slow", ChangeVerdict::Regressed)]
        );
        assert!(serde_json::to_value(bmf(&rows)).unwrap()["slow"]["latency"]["value"].as_f64().unwrap() > 100.0);
        let table = markdown(&rows, "main", 2.0);
        assert!(table.contains("| **Regressed** |") && table.contains("| NonSignificant |") && table.contains("| Improved |"), "{table}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
