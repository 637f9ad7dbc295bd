//! The driver's own health as a report holds it: the verdict (`Valid`,
//! `Disturbed`, `Invalid`) with its reasons, the CPU of the driver, the
//! target and others, and the machine the run was on.

use crate::metrics::Summary;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HealthVerdict {
    Valid,
    /// Another process took a share of the machine: figures may be biased.
    Disturbed,
    /// The driver was the bottleneck: figures describe the driver, not the target.
    Invalid,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HealthReport {
    pub verdict: HealthVerdict,
    pub reasons: Vec<String>,
    pub scheduler_lag_ms: Summary,
    /// CPU used, in cores (1.0 = one core busy the whole run).
    pub driver_cpu_cores: f64,
    pub driver_threads: usize,
    pub target_cpu_cores: Option<f64>,
    /// What the target's CPU covers (processes, a cgroup), or why it is not
    /// measured. Absent from reports before it was written.
    #[serde(default)]
    pub target_cpu_of: Option<String>,
    /// The embedded stack's mock LLM, measured apart from the target (the
    /// servers): in neither the target's figure nor the others'.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mock_cpu_cores: Option<f64>,
    /// Processes other than the driver, the target(s) and the mock.
    pub other_cpu_cores: f64,
    /// Time the hypervisor held back this VM's runnable CPUs, in cores: a
    /// neighbour on the host. It swings from one second to the next under
    /// the same load and moves latency while it lasts (docs/gate.md), so it
    /// is judged like other processes' CPU.
    #[serde(default)]
    pub steal_cores: f64,
    pub machine_cores: usize,
    /// Wall time the CPU figures cover (warm-up and drain included).
    pub span_s: f64,
    /// The same CPU figures second by second over that span, for the HTML
    /// report's plot; left out of `flowbench ab`'s slices.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub per_second: Vec<HealthSecond>,
    /// The scheduler lag's worst in each second since the monitor started
    /// (ms; by the second the late timer fired in): where a stall fell.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lag_max_ms_per_second: Vec<f64>,
}

/// One second of the run's CPU, in cores.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct HealthSecond {
    /// The end of this second, in seconds since the monitor started (the
    /// load's start: its warm-up comes first).
    pub t_s: f64,
    pub driver: f64,
    pub target: Option<f64>,
    pub others: f64,
    pub steal: f64,
}

/// This machine, for the report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Machine {
    pub cpu_model: String,
    pub cores: usize,
    pub kernel: String,
    pub memory_gib: f64,
}

impl Machine {
    pub fn here() -> Self {
        let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
        let cpu_model = cpuinfo
            .lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map_or("unknown".into(), |v| v.trim_start_matches([' ', '\t', ':']).to_owned());
        let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
        let mem_kib: f64 = meminfo
            .lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
            .unwrap_or(0.0);
        Self {
            cpu_model,
            cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
            kernel: std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default().trim().to_owned(),
            memory_gib: (mem_kib / 1024.0 / 1024.0 * 10.0).round() / 10.0,
        }
    }
}
