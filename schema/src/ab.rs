//! `flowbench ab`'s report: every slice's two scenario reports (without
//! histograms), measured over the same seconds; the summary of per-slice log
//! ratios. `cargo xtask gate` reads it through these types.

use crate::figures::{AB, Figure};
use crate::load::Mode;
use crate::report::ScenarioReport;
use serde::{Deserialize, Serialize};
use std::fmt::Write;

pub const SCHEMA: &str = "flowbench.ab";
/// 2: the scenario reports inside hold latencies of successes only, and
/// the open model's first bytes from the intended send (report schema 3).
/// 3: each stream's grammar checked, its `integrity` in each slice (report
/// schema 4; a slice keeps no timeline).
pub const SCHEMA_VERSION: u32 = 3;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbScenario {
    /// Blocking runs of the Start→End app.
    Empty,
    /// Streaming runs of the Start→LLM→End app.
    Llm,
}

/// One slice: both sides' scenario reports, measured over the same time.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Slice {
    pub a: ScenarioReport,
    pub b: ScenarioReport,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AbReport {
    pub schema: String,
    pub schema_version: u32,
    pub scenario: AbScenario,
    pub mode: Mode,
    pub a: String,
    pub b: String,
    pub users: u32,
    /// Requests per second on each side (open model), or none (closed).
    pub rate: Option<f64>,
    pub slice_s: f64,
    pub settle_s: f64,
    /// Ctrl-C cut the run short; the slices measured are all here.
    pub interrupted: bool,
    pub slices: Vec<Slice>,
}

/// One figure of [`AbReport::summary`].
pub struct SummaryRow {
    pub figure: Figure,
    pub a_mean: f64,
    pub b_mean: f64,
    pub change_pct: f64,
    /// NaN with one slice.
    pub slice_sd_pct: f64,
}

impl AbReport {
    /// Per figure: each side's mean over the slices, and the mean and SD of
    /// the slices' log ratios (the gate gives the verdict).
    pub fn to_text(&self) -> String {
        let load = match self.rate {
            Some(rate) => format!("{rate} requests/s over {} connections a side", self.users),
            None => format!("{} users a side", self.users),
        };
        let mut out = format!(
            "flowbench ab: {:?} ({}), {} slices of {} s, {load}, both sides at once\n  A {}\n  B {}\n",
            self.scenario,
            self.mode.as_str(),
            self.slices.len(),
            self.slice_s,
            self.a,
            self.b
        );
        let _ = writeln!(out, "{:<24} {:>12} {:>12} {:>10} {:>14}", "", "A mean", "B mean", "B/A", "slice SD");
        for row in self.summary() {
            let _ = writeln!(
                out,
                "{:<24} {:>12.3} {:>12.3} {:>+9.2}% {:>13.2}%",
                row.figure.label(),
                row.a_mean,
                row.b_mean,
                row.change_pct,
                row.slice_sd_pct
            );
        }
        if self.interrupted {
            out.push_str("(interrupted: only the slices above were measured)\n");
        }
        out
    }

    /// Per figure measured on both sides: each side's mean over the slices,
    /// B's change (from the mean log ratio) and the slices' SD of it.
    pub fn summary(&self) -> Vec<SummaryRow> {
        let mut rows = Vec::new();
        for figure in AB {
            let ratios = self.log_ratios(figure);
            if ratios.is_empty() {
                continue;
            }
            let side_mean = |pick: fn(&Slice) -> &ScenarioReport| {
                let v: Vec<f64> = self.slices.iter().filter_map(|s| figure.read(pick(s))).collect();
                v.iter().sum::<f64>() / v.len().max(1) as f64
            };
            let n = ratios.len() as f64;
            let mean = ratios.iter().sum::<f64>() / n;
            let sd = if ratios.len() > 1 { (ratios.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { f64::NAN };
            rows.push(SummaryRow {
                figure,
                a_mean: side_mean(|s| &s.a),
                b_mean: side_mean(|s| &s.b),
                change_pct: (mean.exp() - 1.0) * 100.0,
                slice_sd_pct: sd * 100.0,
            });
        }
        rows
    }

    /// ln(B/A) per slice; slices where either figure is missing or not
    /// positive are left out.
    pub fn log_ratios(&self, figure: Figure) -> Vec<f64> {
        let positive = |s: &ScenarioReport| figure.read(s).filter(|v| *v > 0.0);
        self.slices.iter().filter_map(|s| Some(positive(&s.b)?.ln() - positive(&s.a)?.ln())).collect()
    }
}
