//! Saved runs side by side (`flowbench report A.json B.json`): the change
//! of each figure from the first report, and what one pair of runs can and
//! cannot say about it. The gate, which drives both sides in the same
//! seconds, is the tool for a verdict; this is for reading two runs.

use super::figures::{COMPARED, Figure};
use super::{Report, ScenarioReport};
use std::fmt::Write;

/// One figure of one scenario in both runs.
#[derive(Debug, Clone, PartialEq)]
pub struct ComparedFigure {
    pub figure: Figure,
    pub a: Option<f64>,
    pub b: Option<f64>,
}

impl ComparedFigure {
    /// B's change from A, in %; none when either is missing or A is 0.
    pub fn change_pct(&self) -> Option<f64> {
        match (self.a, self.b) {
            (Some(a), Some(b)) if a != 0.0 => Some((b - a) / a * 100.0),
            _ => None,
        }
    }
}

/// A per-second series of both runs: the mean's change with a 95%
/// interval from the seconds' spread within each run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Slices {
    pub a_mean: f64,
    pub b_mean: f64,
    pub a_n: usize,
    pub b_n: usize,
    pub change_pct: f64,
    /// ± this much, in % of A's mean (Welch, normal approximation).
    pub half_width_pct: f64,
}

impl Slices {
    fn of(a: &[u64], b: &[u64]) -> Option<Self> {
        let stats = |v: &[u64]| {
            let n = v.len() as f64;
            let mean = v.iter().sum::<u64>() as f64 / n;
            let var = v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / (n - 1.0);
            (mean, var)
        };
        if a.len() < 3 || b.len() < 3 {
            return None;
        }
        let ((a_mean, a_var), (b_mean, b_var)) = (stats(a), stats(b));
        if a_mean == 0.0 {
            return None;
        }
        let se = (a_var / a.len() as f64 + b_var / b.len() as f64).sqrt();
        Some(Self {
            a_mean,
            b_mean,
            a_n: a.len(),
            b_n: b.len(),
            change_pct: (b_mean - a_mean) / a_mean * 100.0,
            half_width_pct: 1.96 * se / a_mean * 100.0,
        })
    }
}

/// One scenario of both runs.
#[derive(Debug, Clone)]
pub struct ScenarioComparison {
    pub name: String,
    pub rows: Vec<ComparedFigure>,
    /// Requests per second, second by second.
    pub requests: Option<Slices>,
    /// Events per second, second by second (streaming).
    pub events: Option<Slices>,
    /// What makes this pair's figures less comparable.
    pub warnings: Vec<String>,
}

/// B against A.
#[derive(Debug, Clone)]
pub struct ReportComparison {
    pub a: String,
    pub b: String,
    pub scenarios: Vec<ScenarioComparison>,
    /// Scenarios only one of the two ran.
    pub unmatched: Vec<String>,
    pub warnings: Vec<String>,
}

fn figures(s: &ScenarioReport) -> Vec<(Figure, Option<f64>)> {
    COMPARED.into_iter().map(|figure| (figure, figure.read(s))).collect()
}

/// `b` against `a` (their names for the tables): every scenario both ran.
pub fn compare(a_name: &str, a: &Report, b_name: &str, b: &Report) -> ReportComparison {
    let mut warnings = Vec::new();
    if (&a.machine.cpu_model, a.machine.cores) != (&b.machine.cpu_model, b.machine.cores) {
        warnings.push(format!(
            "{a_name} ran on {} ({} cores), {b_name} on {} ({} cores): the figures are of different machines.",
            a.machine.cpu_model, a.machine.cores, b.machine.cpu_model, b.machine.cores
        ));
    }
    // An embedded stack's address is new each run; another target's is its name.
    if !(a.target.embedded && b.target.embedded) && a.target.url != b.target.url {
        warnings.push(format!("The targets differ: {} and {}.", a.target.url, b.target.url));
    }
    let mut scenarios = Vec::new();
    let mut unmatched = Vec::new();
    for sa in &a.scenarios {
        let Some(sb) = b.scenarios.iter().find(|s| s.name == sa.name) else {
            unmatched.push(format!("{} (only in {a_name})", sa.name));
            continue;
        };
        let rows = figures(sa).into_iter().zip(figures(sb)).map(|((figure, a), (_, b))| ComparedFigure { figure, a, b }).collect();
        let mut w = Vec::new();
        if sa.load.model != sb.load.model || sa.load.measured_s != sb.load.measured_s {
            let describe = super::text::describe_load;
            w.push(format!("The loads differ: {} against {}.", describe(&sa.load), describe(&sb.load)));
        }
        for (name, s) in [(a_name, sa), (b_name, sb)] {
            if s.health.verdict != crate::load::health::HealthVerdict::Valid {
                w.push(format!("{name} is {:?}: {}", s.health.verdict, s.health.reasons.join("; ")));
            }
            if s.interrupted {
                w.push(format!("{name} was interrupted."));
            }
        }
        scenarios.push(ScenarioComparison {
            name: sa.name.clone(),
            rows,
            requests: Slices::of(&sa.per_second.ok, &sb.per_second.ok),
            events: Slices::of(&sa.per_second.events, &sb.per_second.events).filter(|s| s.a_mean > 0.0),
            warnings: w,
        });
    }
    for sb in &b.scenarios {
        if !a.scenarios.iter().any(|s| s.name == sb.name) {
            unmatched.push(format!("{} (only in {b_name})", sb.name));
        }
    }
    ReportComparison { a: a_name.to_owned(), b: b_name.to_owned(), scenarios, unmatched, warnings }
}

fn cell(v: Option<f64>) -> String {
    match v {
        Some(v) if v.abs() >= 100.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.3}"),
        None => "—".to_owned(),
    }
}

/// What one pair of runs can and cannot say, printed under every comparison.
pub const CAVEAT: &str = "One pair of runs cannot tell a change of the code from the host's drift between the two runs \
(other load, CPU frequency, a neighbouring VM): every change above holds both. The ± intervals use each run's \
seconds as the unit and measure only the spread within each run; seconds are not independent, so they are too \
narrow if anything. For a verdict, `cargo xtask gate` drives both sides in the same seconds, in rounds.";

impl ReportComparison {
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {} against {}\n", self.b, self.a);
        for w in &self.warnings {
            let _ = writeln!(out, "> {w}");
        }
        if !self.warnings.is_empty() {
            out.push('\n');
        }
        for s in &self.scenarios {
            let _ = writeln!(out, "## {}\n", s.name);
            let _ = writeln!(out, "| figure | {} | {} | change |\n|---|---|---|---|", self.a, self.b);
            for r in &s.rows {
                let change = r.change_pct().map_or("—".to_owned(), |c| format!("{c:+.1}%"));
                let _ = writeln!(out, "| {} | {} | {} | {change} |", r.figure.label(), cell(r.a), cell(r.b));
            }
            out.push('\n');
            for (label, slices) in [("Requests/s", s.requests), ("Events/s", s.events)] {
                if let Some(t) = slices {
                    let _ = writeln!(
                        out,
                        "{label}, second by second: {:.1} ({} s) → {:.1} ({} s), {:+.1}% ± {:.1}% (95%, within-run spread only).",
                        t.a_mean, t.a_n, t.b_mean, t.b_n, t.change_pct, t.half_width_pct
                    );
                }
            }
            for w in &s.warnings {
                let _ = writeln!(out, "\n> {w}");
            }
            out.push('\n');
        }
        if !self.unmatched.is_empty() {
            let _ = writeln!(out, "Not compared: {}.\n", self.unmatched.join(", "));
        }
        let _ = writeln!(out, "{CAVEAT}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    #[test]
    fn a_report_against_itself_changes_nothing() {
        let a = sample_report();
        let c = compare("a.json", &a, "b.json", &a);
        assert_eq!(c.scenarios.len(), a.scenarios.len());
        assert!(c.unmatched.is_empty() && c.warnings.is_empty(), "{:?} {:?}", c.unmatched, c.warnings);
        for s in &c.scenarios {
            for r in &s.rows {
                assert!(r.change_pct().is_none_or(|p| p == 0.0), "{r:?}");
            }
        }
        assert!(c.to_markdown().contains(CAVEAT));
    }

    /// A run 10% faster in every second: the change is +10% and the
    /// interval, from the seconds' spread, does not reach 0.
    #[test]
    fn a_faster_run_shows_its_change_and_an_interval() {
        let mut a = sample_report();
        a.scenarios[0].per_second.ok = vec![1000, 1010, 990, 1005, 995, 1000];
        let mut b = a.clone();
        let s = &mut b.scenarios[0];
        s.qps.avg *= 1.1;
        s.per_second.ok = s.per_second.ok.iter().map(|&x| x * 11 / 10).collect();
        b.scenarios.pop();
        let c = compare("base.json", &a, "head.json", &b);
        let row = &c.scenarios[0].rows[0];
        assert!((row.change_pct().unwrap() - 10.0).abs() < 1e-9, "{row:?}");
        let t = c.scenarios[0].requests.expect("per-second series");
        assert!((t.change_pct - 10.0).abs() < 0.5 && t.half_width_pct < t.change_pct, "{t:?}");
        assert_eq!(c.unmatched, [format!("{} (only in base.json)", a.scenarios[1].name)]);
        let md = c.to_markdown();
        assert!(md.contains("| Avg QPS (requests/s) |") && md.contains("+10.0%"), "{md}");
    }

    #[test]
    fn different_machines_and_invalid_runs_are_warned_of() {
        let a = sample_report();
        let mut b = a.clone();
        b.machine.cores = 64;
        b.scenarios[0].health.verdict = crate::load::health::HealthVerdict::Invalid;
        let c = compare("a", &a, "b", &b);
        assert!(c.warnings[0].contains("different machines"), "{:?}", c.warnings);
        assert!(c.scenarios[0].warnings.iter().any(|w| w.starts_with("b is Invalid")), "{:?}", c.scenarios[0].warnings);
    }
}
