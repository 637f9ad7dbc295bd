//! The process's own figures under the names every Prometheus client
//! gives them (`process_cpu_seconds_total`, `process_resident_memory_bytes`,
//! …), read from `/proc/self` at each scrape. Written here rather than
//! taken from the `prometheus` crate's `ProcessCollector`, which counts CPU
//! in whole seconds: a rate over a few seconds read from it is off by up to
//! a second's worth, where `/proc`'s ticks are hundredths.

use prometheus::core::{Collector, Desc};
use prometheus::proto::MetricFamily;
use prometheus::{Counter, Gauge, IntGauge, Opts};

/// A `Collector` of the process's CPU, memory, descriptors and threads.
pub struct ProcessMetrics {
    cpu: Counter,
    resident: IntGauge,
    virtual_bytes: IntGauge,
    open_fds: IntGauge,
    max_fds: IntGauge,
    threads: IntGauge,
    start_time: Gauge,
    descs: Vec<Desc>,
}

impl std::fmt::Debug for ProcessMetrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessMetrics").finish_non_exhaustive()
    }
}

impl Default for ProcessMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl ProcessMetrics {
    pub fn new() -> Self {
        let int = |name: &str, help: &str| IntGauge::with_opts(Opts::new(name, help)).expect("valid gauge");
        let cpu = Counter::with_opts(Opts::new("process_cpu_seconds_total", "Total user and system CPU time spent in seconds."))
            .expect("valid counter");
        let start_time =
            Gauge::with_opts(Opts::new("process_start_time_seconds", "Start time of the process since unix epoch in seconds."))
                .expect("valid gauge");
        let mut out = Self {
            cpu,
            resident: int("process_resident_memory_bytes", "Resident memory size in bytes."),
            virtual_bytes: int("process_virtual_memory_bytes", "Virtual memory size in bytes."),
            open_fds: int("process_open_fds", "Number of open file descriptors."),
            max_fds: int("process_max_fds", "Maximum number of open file descriptors."),
            threads: int("process_threads", "Number of OS threads in the process."),
            start_time,
            descs: Vec::new(),
        };
        let descs: Vec<Desc> = out.collectors().iter().flat_map(|c| c.desc().into_iter().cloned()).collect();
        out.descs = descs;
        out
    }

    fn collectors(&self) -> [&dyn Collector; 7] {
        [&self.cpu, &self.resident, &self.virtual_bytes, &self.open_fds, &self.max_fds, &self.threads, &self.start_time]
    }

    /// Reads `/proc/self` into the metrics; a figure that cannot be read
    /// keeps its last value.
    fn update(&self) {
        let ticks = USER_HZ;
        if let Some(stat) = SelfStat::read() {
            // Only forward: a counter never goes back.
            let cpu = (stat.utime + stat.stime) as f64 / ticks;
            let shown = self.cpu.get();
            if cpu > shown {
                self.cpu.inc_by(cpu - shown);
            }
            self.threads.set(stat.threads);
            self.virtual_bytes.set(stat.vsize);
            if let Some(kib) = resident_kib() {
                self.resident.set(kib.saturating_mul(1024));
            }
            if let Some(boot) = boot_time() {
                self.start_time.set(boot + stat.start_ticks as f64 / ticks);
            }
        }
        if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
            self.open_fds.set(fds.count() as i64);
        }
        if let Ok((soft, _)) = rlimit::getrlimit(rlimit::Resource::NOFILE) {
            self.max_fds.set(i64::try_from(soft).unwrap_or(i64::MAX));
        }
    }
}

impl Collector for ProcessMetrics {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.update();
        self.collectors().iter().flat_map(|c| c.collect()).collect()
    }
}

/// The fields of `/proc/self/stat` read here.
struct SelfStat {
    utime: u64,
    stime: u64,
    threads: i64,
    start_ticks: u64,
    vsize: i64,
}

impl SelfStat {
    fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/self/stat").ok()?;
        Self::parse(&text)
    }

    /// After the command's name in parentheses (which may hold spaces and
    /// parentheses itself), fields from the third (`state`) on.
    fn parse(text: &str) -> Option<Self> {
        let rest = text.get(text.rfind(')')? + 2..)?;
        let f: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| f.get(n - 3).and_then(|v| v.parse::<i64>().ok());
        Some(Self {
            utime: u64::try_from(field(14)?).ok()?,
            stime: u64::try_from(field(15)?).ok()?,
            threads: field(20)?,
            start_ticks: u64::try_from(field(22)?).ok()?,
            vsize: field(23)?,
        })
    }
}

/// Linux's `USER_HZ`, the unit of `/proc`'s CPU times: fixed for user
/// space whatever the kernel's own tick.
const USER_HZ: f64 = 100.0;

/// The resident set in KiB, from `/proc/self/status` (no page size needed).
fn resident_kib() -> Option<i64> {
    let text = std::fs::read_to_string("/proc/self/status").ok()?;
    text.lines().find_map(|l| l.strip_prefix("VmRSS:")?.trim().strip_suffix("kB")?.trim().parse().ok())
}

/// When the machine booted, in Unix seconds (`/proc/stat`'s `btime`).
fn boot_time() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/stat").ok()?;
    text.lines().find_map(|l| l.strip_prefix("btime ")?.trim().parse().ok())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_read_past_a_name_with_spaces_and_parentheses() {
        let line = "4242 (a (b) c) S 1 4242 4242 0 -1 4194560 100 0 0 0 1234 567 0 0 20 0 9 0 777 123456789 2048 18446744073709551615";
        let stat = SelfStat::parse(line).unwrap();
        assert_eq!((stat.utime, stat.stime, stat.threads, stat.start_ticks, stat.vsize), (1234, 567, 9, 777, 123456789));
        assert!(SelfStat::parse("4242 (cut").is_none());
    }

    /// The CPU is counted in hundredths, not whole seconds: spinning until
    /// the counter first moves by a tenth, it reads well under a second
    /// (a counter in whole seconds would first move by one). No time limit
    /// is asserted: the spin waits for the CPU however busy the machine is.
    #[test]
    fn cpu_moves_by_less_than_a_second() {
        let metrics = ProcessMetrics::new();
        metrics.update();
        let before = metrics.cpu.get();
        let mut x = 0u64;
        let grew = loop {
            for _ in 0..100_000 {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            metrics.update();
            let grew = metrics.cpu.get() - before;
            if grew >= 0.1 {
                break grew;
            }
        };
        assert!(grew < 0.5, "{grew}");
        assert!(metrics.resident.get() > 0 && metrics.threads.get() >= 1 && metrics.open_fds.get() > 0);
        let names: Vec<String> = metrics.collect().iter().map(|f| f.name().to_owned()).collect();
        assert!(names.contains(&"process_cpu_seconds_total".to_owned()), "{names:?}");
    }
}
