//! `flowbench capacity`'s report: per scenario, the most load at which the
//! SLO held (with the interval the search bracketed it in and what ran
//! out), and every step the search measured.

use crate::bmf::{Bmf, Measure};
use serde::{Deserialize, Serialize};

pub const SCHEMA: &str = "flowbench.capacity";
pub const SCHEMA_VERSION: u32 = 1;

/// What the search varies: the open model's arrival rate (req/s) or the
/// closed model's users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SearchBy {
    Rate,
    Users,
}

impl SearchBy {
    pub fn unit(self) -> &'static str {
        match self {
            SearchBy::Rate => "req/s",
            SearchBy::Users => "users",
        }
    }
}

/// A step's verdict on the SLO.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepVerdict {
    /// Every criterion met with 95% confidence.
    Pass,
    /// A criterion missed with 95% confidence.
    Fail,
    /// Still too near a limit to tell after the repeats: judged by the
    /// figures as measured, and marked.
    PassWithinNoise,
    FailWithinNoise,
    /// The driver, not the target, was the bottleneck (its health INVALID,
    /// or every connection of the open model busy): nothing about the
    /// target can be said at this load.
    DriverLimited,
}

impl StepVerdict {
    pub fn passed(self) -> bool {
        matches!(self, StepVerdict::Pass | StepVerdict::PassWithinNoise)
    }
}

/// One criterion of the SLO at one step.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SloCheck {
    pub threshold: String,
    /// As measured, and its 95% interval; `None`: not measured.
    pub value: Option<f64>,
    pub low: Option<f64>,
    pub high: Option<f64>,
    /// `met`, `missed` or `within_noise`.
    pub standing: String,
    /// The criterion's limit and its unit (`ms`, `fraction`, …), to draw it.
    pub limit: Option<f64>,
    pub unit: String,
}

/// One load the search measured.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityStep {
    /// The load offered: req/s, or users.
    pub offered: f64,
    /// Requests completed per second in the measured phase.
    pub achieved_rps: f64,
    /// Requests per second that met every per-request SLO (`None`: no
    /// per-request SLO was given).
    pub goodput_rps: Option<f64>,
    pub ttfe_ms: Option<Percentiles>,
    pub duration_ms: Percentiles,
    pub error_rate: f64,
    pub errors_by_class: std::collections::BTreeMap<String, u64>,
    /// The target's CPU in cores; `None`: not measured (remote).
    pub target_cpu_cores: Option<f64>,
    pub driver_cpu_cores: f64,
    /// The machine's cores, for the target's share of what the driver left.
    pub machine_cores: usize,
    /// The CPU the target may use, in cores, where known: `--target-cores`
    /// or its cgroup's `cpu.max`; `None`: the machine's less the driver's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub target_cores: Option<f64>,
    /// Little's law: requests in flight on average (achieved rate × mean duration).
    pub concurrency: f64,
    /// The mean time from the actual send to the end (the target's own,
    /// without waits for a driver connection), ms.
    pub service_ms: f64,
    pub measured_s: f64,
    /// Runs of this load (a verdict within noise is measured again, longer).
    pub runs: u32,
    pub verdict: StepVerdict,
    pub checks: Vec<SloCheck>,
    /// Why the driver could not tell, when it could not.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub driver_reasons: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize)]
pub struct Percentiles {
    pub p50: f64,
    pub p95: f64,
    pub p99: f64,
}

/// The search's answer for one scenario.
impl Capacity {
    /// The answer in words: the load, "at least", or below the first step.
    pub fn answer(&self) -> String {
        let unit = &self.unit;
        match (self.rate, self.low, self.high) {
            (Some(rate), _, _) if self.at_least => format!("at least {rate:.1} {unit}"),
            (Some(rate), Some(low), Some(high)) => format!("{rate:.1} {unit} (the SLO held at {low:.1}, failed at {high:.1})"),
            (Some(rate), _, _) => format!("{rate:.1} {unit}"),
            (None, _, Some(high)) => format!("below {high:.1} {unit}: the SLO failed at the first step"),
            (None, _, None) => "not found".to_owned(),
        }
    }
}

/// `limited_by` when the SLO held at every step up to the search's bound.
pub const NOT_REACHED: &str = "not_reached";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Capacity {
    /// The most load at which the SLO held (the highest passing step), in
    /// `unit`; `None` when even the first step failed.
    pub rate: Option<f64>,
    /// The interval the answer lies in: the highest load that passed and
    /// the lowest that failed above it (`None`: no failure was reached).
    pub low: Option<f64>,
    pub high: Option<f64>,
    pub unit: String,
    /// The search stopped at the driver's limit or its bound before the SLO
    /// failed: the target takes at least `rate`, and how much more is not known.
    pub at_least: bool,
    /// What ran out at the knee: `target_cpu`, `driver`, `connections`,
    /// `errors:<class>`, `latency`, or `not_reached`.
    pub limited_by: String,
    /// A sentence saying the same for people.
    pub why: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScenarioCapacity {
    pub name: String,
    pub capacity: Capacity,
    pub steps: Vec<CapacityStep>,
}

impl ScenarioCapacity {
    /// The criteria this scenario was held to (the report's `slo` less
    /// those scoped to other scenarios), as its steps judged them.
    pub fn slo<'a>(&'a self, all: &'a [String]) -> Vec<&'a str> {
        match self.steps.first() {
            Some(step) => step.checks.iter().map(|c| c.threshold.as_str()).collect(),
            None => all.iter().map(String::as_str).collect(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CapacityReport {
    pub schema: String,
    pub schema_version: u32,
    pub flowbench_version: String,
    pub started_at_unix: u64,
    pub target: String,
    pub by: SearchBy,
    /// The SLO, as written.
    pub slo: Vec<String>,
    /// The per-request SLO for goodput, as written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_slo: Option<String>,
    /// The bisection stops when high ÷ low − 1 is at most this.
    pub resolution: f64,
    pub interrupted: bool,
    pub scenarios: Vec<ScenarioCapacity>,
}

impl CapacityReport {
    /// Each scenario's capacity as a figure the gate and `history` can
    /// track (`capacity_rps` or `capacity_users`), its interval as bounds.
    pub fn to_bmf(&self) -> Bmf {
        let mut bmf = Bmf::default();
        let key = match self.by {
            SearchBy::Rate => "capacity_rps",
            SearchBy::Users => "capacity_users",
        };
        for s in &self.scenarios {
            if let Some(rate) = s.capacity.rate {
                let measure = Measure::within(rate, s.capacity.low.unwrap_or(rate), s.capacity.high.unwrap_or(rate));
                bmf.insert(s.name.clone(), key, measure);
            }
        }
        bmf
    }

    /// The steps and the answers as text.
    pub fn to_text(&self) -> String {
        use std::fmt::Write;
        let mut out = String::new();
        for s in &self.scenarios {
            let _ = writeln!(out, "\nCapacity of {} (SLO: {})", s.name, s.slo(&self.slo).join(", "));
            // Streams have a first event: its p95 beside the duration's.
            let streams = s.steps.iter().any(|step| step.ttfe_ms.is_some());
            let _ = writeln!(
                out,
                "{:>10} {:>10} {:>9} {}{:>9} {:>9} {:>9} {:>8} {:>7} {:>5}  verdict",
                format!("offered {}", if self.by == SearchBy::Rate { "/s" } else { "u" }),
                "done/s",
                "good/s",
                if streams { format!("{:>9} ", "TTFE p95") } else { String::new() },
                "dur p50",
                "dur p95",
                "dur p99",
                "errors",
                "cpu",
                "runs"
            );
            for step in &s.steps {
                let _ = writeln!(
                    out,
                    "{:>10.1} {:>10.1} {:>9} {}{:>9.2} {:>9.2} {:>9.2} {:>7.2}% {:>7} {:>5}  {}",
                    step.offered,
                    step.achieved_rps,
                    step.goodput_rps.map_or_else(|| "-".to_owned(), |g| format!("{g:.1}")),
                    if streams {
                        format!("{:>9} ", step.ttfe_ms.map_or_else(|| "-".to_owned(), |t| format!("{:.2}", t.p95)))
                    } else {
                        String::new()
                    },
                    step.duration_ms.p50,
                    step.duration_ms.p95,
                    step.duration_ms.p99,
                    step.error_rate * 100.0,
                    step.target_cpu_cores.map_or_else(|| "n/m".to_owned(), |c| format!("{c:.2}")),
                    step.runs,
                    verdict_text(step)
                );
            }
            let c = &s.capacity;
            let answer = c.answer();
            if c.limited_by == NOT_REACHED {
                let _ = writeln!(out, "Capacity: {answer}: {}", c.why);
            } else {
                let _ = writeln!(out, "Capacity: {answer}; limited by {}: {}", c.limited_by, c.why);
            }
        }
        out
    }
}

fn verdict_text(step: &CapacityStep) -> String {
    let missed: Vec<&str> = step.checks.iter().filter(|c| c.standing != "met").map(|c| c.threshold.as_str()).collect();
    match step.verdict {
        StepVerdict::Pass => "pass".to_owned(),
        StepVerdict::PassWithinNoise => format!("pass (within noise: {})", missed.join(", ")),
        StepVerdict::Fail => format!("FAIL ({})", missed.join(", ")),
        StepVerdict::FailWithinNoise => format!("FAIL (within noise: {})", missed.join(", ")),
        StepVerdict::DriverLimited => format!("driver-limited ({})", step.driver_reasons.join("; ")),
    }
}
