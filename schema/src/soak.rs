//! `flowbench soak`'s report: the samples of each second, the growth
//! figure and the verdict.

use crate::report::ScenarioReport;
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "flowbench.soak";
/// 2: the scenario reports inside hold latencies of successes only, and
/// the open model's first bytes from the intended send (report schema 3).
/// 3: its scenario report is of schema 4 (integrity, timeline).
pub const SCHEMA_VERSION: u32 = 3;

/// One second of the soak.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakSample {
    /// Seconds since the load started.
    pub t_s: f64,
    pub rss_kib: u64,
    /// `None` when the stats endpoint did not answer.
    pub live_runs: Option<u64>,
    pub sent: u64,
    pub done: u64,
    pub errors: u64,
    pub events: u64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SoakReport {
    pub schema: String,
    pub schema_version: u32,
    pub streams: u32,
    pub warmup_s: f64,
    pub duration_s: f64,
    pub interrupted: bool,
    pub samples: Vec<SoakSample>,
    pub rss_start_kib: u64,
    pub rss_end_kib: u64,
    pub rss_growth_pct: f64,
    pub max_growth_pct: f64,
    /// Live runs a few seconds after the load stopped.
    pub live_runs_after: Option<u64>,
    pub pass: bool,
    pub reasons: Vec<String>,
    pub scenario: ScenarioReport,
}

/// Medians of the first and the last fifth of `rss` (at least one sample each).
pub fn growth_ends(rss: &[u64]) -> (u64, u64) {
    if rss.is_empty() {
        return (0, 0);
    }
    let fifth = (rss.len() / 5).max(1);
    let median = |part: &[u64]| {
        let mut part = part.to_vec();
        part.sort_unstable();
        part[part.len() / 2]
    };
    (median(&rss[..fifth]), median(&rss[rss.len() - fifth..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn growth_compares_the_first_and_last_fifths() {
        let flat_then_up: Vec<u64> = (0..10).map(|i| if i < 8 { 100 } else { 110 }).collect();
        assert_eq!(growth_ends(&flat_then_up), (100, 110));
        assert_eq!(growth_ends(&[5]), (5, 5));
        assert_eq!(growth_ends(&[]), (0, 0));
    }
}
