//! The driver watches itself and the machine, so a run can say when the load
//! generator (not the target) was the bottleneck, or when another process
//! took a share of the machine.
//!
//! Figures: scheduler lag (how late a 10 ms timer fires on the driver's
//! runtime), the driver's own CPU, the target's CPU when it is a local
//! process, and the CPU used by everything else, all from `/proc`.

use super::metrics::{new_histogram, summary_of};
pub use schema::health::{HealthReport, HealthSecond, HealthVerdict, Machine};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How often the lag probe wakes.
const PROBE_INTERVAL: Duration = Duration::from_millis(10);
/// Above this p99 scheduler lag the driver was too busy to keep time.
const MAX_LAG_P99_MS: f64 = 20.0;
/// Above this share of its threads' capacity the driver was saturated.
const MAX_DRIVER_CPU_SHARE: f64 = 0.90;
/// Above this much of one core, other processes disturbed the run.
const MAX_OTHER_CPU_CORES: f64 = 0.10;
/// Linux's `USER_HZ`: `/proc` reports CPU time in these ticks.
const TICKS_PER_S: f64 = 100.0;

/// The CPU used between two snapshots, in cores.
struct CpuShare {
    seconds: f64,
    driver: f64,
    target: Option<f64>,
    /// The embedded stack's mock LLM, apart from the target.
    mock: Option<f64>,
    others: f64,
    steal: f64,
}

impl CpuShare {
    fn between(a: &CpuSnapshot, b: &CpuSnapshot) -> Self {
        let seconds = (b.at - a.at).as_secs_f64().max(1e-9);
        let cores = |ticks: u64| ticks as f64 / TICKS_PER_S / seconds;
        let ns = |x: Option<u64>, y: Option<u64>| Some(y?.saturating_sub(x?) as f64 / 1e9 / seconds);
        let driver = cores(b.self_ticks.saturating_sub(a.self_ticks));
        let target = ns(a.target_ns, b.target_ns);
        let sibling = ns(a.sibling_ns, b.sibling_ns).unwrap_or(0.0);
        let mock = ns(a.mock_ns, b.mock_ns);
        let machine = cores(b.machine_busy_ticks.saturating_sub(a.machine_busy_ticks));
        let steal = cores(b.steal_ticks.saturating_sub(a.steal_ticks));
        let others = (machine - driver - target.unwrap_or(0.0) - sibling - mock.unwrap_or(0.0)).max(0.0);
        Self { seconds, driver, target, mock, others, steal }
    }
}

/// Where the target's CPU is read: a set of processes with all their
/// descendants (the listening socket's owners, and any `--target-pid`), a
/// cgroup (`--target-cgroup`: a container's or a systemd unit's, exact for
/// everything inside), or nowhere (a remote target: not measured). The
/// embedded stack's mock is read as one process without its descendants
/// (`Process`: its children are the servers, the target).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetCpu {
    Processes(Vec<u32>),
    Process(u32),
    Cgroup(std::path::PathBuf),
    Remote,
}

impl TargetCpu {
    /// The target's CPU so far in ns, `None` where it cannot be read.
    fn read_ns(&self) -> Option<u64> {
        match self {
            TargetCpu::Processes(roots) if !roots.is_empty() => Some(tree_cpu_ns(roots)),
            TargetCpu::Processes(_) | TargetCpu::Remote => None,
            TargetCpu::Process(pid) => process_cpu_ns(*pid),
            TargetCpu::Cgroup(path) => cgroup_cpu_ns(path),
        }
    }

    /// What the figure covers, for the report.
    pub fn describe(&self) -> String {
        match self {
            TargetCpu::Processes(roots) => {
                let members = process_tree(roots).len();
                let roots: Vec<String> = roots.iter().map(u32::to_string).collect();
                let plural = if members == 1 { "" } else { "es" };
                format!("pid {} and descendants: {members} process{plural}", roots.join(", "))
            }
            TargetCpu::Process(pid) => format!("pid {pid} alone"),
            TargetCpu::Cgroup(path) => format!("cgroup {}", path.display()),
            TargetCpu::Remote => "not measured (remote)".to_owned(),
        }
    }
}

/// `roots` and every process descended from them, from `/proc/*/stat`.
fn process_tree(roots: &[u32]) -> Vec<u32> {
    let me = std::process::id();
    let mut parent = std::collections::HashMap::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        let Some(ppid) = stat.rfind(')').and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse::<u32>().ok()) else { continue };
        parent.insert(pid, ppid);
    }
    let mut members: Vec<u32> = parent
        .keys()
        .copied()
        // The driver's CPU is its own figure, even run from a target's shell.
        .filter(|&pid| pid != me)
        .filter(|&pid| {
            let mut at = pid;
            // A chain of parents ends at pid 0 (or a loop no kernel makes).
            for _ in 0..64 {
                if roots.contains(&at) {
                    return true;
                }
                match parent.get(&at) {
                    Some(&up) if up != 0 && up != at => at = up,
                    _ => return false,
                }
            }
            false
        })
        .collect();
    members.sort_unstable();
    members
}

/// The CPU of a process tree: each member's own (exact, from schedstat)
/// and the reaped children it has waited for (`cutime`, `cstime`), so a
/// worker that exits mid-run still counts.
fn tree_cpu_ns(roots: &[u32]) -> u64 {
    process_tree(roots).into_iter().map(|pid| process_cpu_ns(pid).unwrap_or(0) + reaped_children_ns(pid).unwrap_or(0)).sum()
}

fn reaped_children_ns(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = fields.get(13)?.parse::<u64>().ok()? + fields.get(14)?.parse::<u64>().ok()?;
    Some(ticks * (1e9 / TICKS_PER_S) as u64)
}

/// A cgroup v2's `usage_usec`, in ns; a relative path is under /sys/fs/cgroup.
pub fn cgroup_cpu_ns(path: &std::path::Path) -> Option<u64> {
    let path = if path.is_absolute() { path.to_owned() } else { std::path::Path::new("/sys/fs/cgroup").join(path) };
    let stat = std::fs::read_to_string(path.join("cpu.stat")).ok()?;
    stat.lines().find_map(|l| l.strip_prefix("usage_usec "))?.trim().parse::<u64>().ok().map(|us| us * 1000)
}

/// CPU counters at one instant.
#[derive(Debug, Clone, Copy)]
struct CpuSnapshot {
    at: std::time::Instant,
    machine_busy_ticks: u64,
    steal_ticks: u64,
    self_ticks: u64,
    target_ns: Option<u64>,
    sibling_ns: Option<u64>,
    mock_ns: Option<u64>,
}

/// Started before a run, finished after it.
pub struct HealthMonitor {
    start: CpuSnapshot,
    target: TargetCpu,
    sibling: TargetCpu,
    mock: TargetCpu,
    driver_threads: usize,
    lag: Arc<Mutex<Lag>>,
    seconds: Arc<Mutex<Vec<HealthSecond>>>,
    stop: CancellationToken,
    probe: tokio::task::JoinHandle<()>,
    sampler: tokio::task::JoinHandle<()>,
}

impl HealthMonitor {
    pub fn start(target: TargetCpu, driver_threads: usize) -> Self {
        Self::start_all(target, TargetCpu::Remote, TargetCpu::Remote, driver_threads, true)
    }

    /// On the embedded stack: the target is the servers, and `mock` (the
    /// mock LLM's process) has its own figure, in neither the target's nor
    /// the others'; `TargetCpu::Remote` for none (as `start`).
    pub fn start_with_mock(target: TargetCpu, mock: TargetCpu, driver_threads: usize) -> Self {
        Self::start_all(target, TargetCpu::Remote, mock, driver_threads, true)
    }

    /// For `flowbench ab`: `sibling_pid` is the other target, driven at the
    /// same time by this driver. Its CPU is the run's, not a neighbour's; and
    /// the driver's CPU serves both sides, so its share is reported but not
    /// judged (a busy driver slows both sides alike).
    /// `per_second`: also keep each second's figures (walking `/proc` each
    /// second; `flowbench ab` keeps no seconds, so it does not ask).
    pub fn start_beside(target: TargetCpu, sibling: TargetCpu, driver_threads: usize, per_second: bool) -> Self {
        Self::start_all(target, sibling, TargetCpu::Remote, driver_threads, per_second)
    }

    fn start_all(target: TargetCpu, sibling: TargetCpu, mock: TargetCpu, driver_threads: usize, per_second: bool) -> Self {
        let lag = Arc::new(Mutex::new(Lag { all: new_histogram(), worst_per_second: Vec::new() }));
        let stop = CancellationToken::new();
        let probe = tokio::spawn(probe_lag(lag.clone(), stop.clone()));
        let start = snapshot(&target, &sibling, &mock);
        let seconds = Arc::new(Mutex::new(Vec::new()));
        let sampler = if per_second {
            let watched = [target.clone(), sibling.clone(), mock.clone()];
            tokio::spawn(sample_each_second(start, watched, seconds.clone(), stop.clone()))
        } else {
            tokio::spawn(async {})
        };
        Self { start, target, sibling, mock, driver_threads, lag, seconds, stop, probe, sampler }
    }

    pub async fn finish(self) -> HealthReport {
        self.stop.cancel();
        let _ = self.probe.await;
        let _ = self.sampler.await;
        let end = snapshot(&self.target, &self.sibling, &self.mock);
        let CpuShare { seconds, driver, target, mock, others, steal } = CpuShare::between(&self.start, &end);
        let per_second = std::mem::take(&mut *self.seconds.lock().unwrap_or_else(|e| e.into_inner()));
        let (lag, lag_max_ms_per_second) = {
            let lag = self.lag.lock().unwrap_or_else(|e| e.into_inner());
            (summary_of(&lag.all), lag.worst_per_second.iter().map(|&us| us as f64 / 1e3).collect())
        };
        let machine_cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let mut report = HealthReport {
            verdict: HealthVerdict::Valid,
            reasons: Vec::new(),
            scheduler_lag_ms: lag,
            driver_cpu_cores: driver,
            driver_threads: self.driver_threads,
            target_cpu_cores: target,
            target_cpu_of: Some(self.target.describe()),
            mock_cpu_cores: mock,
            other_cpu_cores: others,
            steal_cores: steal,
            machine_cores,
            span_s: seconds,
            per_second,
            lag_max_ms_per_second,
        };
        judge(&mut report, self.sibling == TargetCpu::Remote);
        report
    }
}

/// The verdict on a run's health, with its reasons, from its figures.
fn judge(report: &mut HealthReport, judge_driver_share: bool) {
    if report.scheduler_lag_ms.p99 > MAX_LAG_P99_MS {
        report.verdict = HealthVerdict::Invalid;
        report.reasons.push(format!(
            "driver overloaded: scheduler lag p99 {:.1} ms > {MAX_LAG_P99_MS} ms, so send and receive times are late",
            report.scheduler_lag_ms.p99
        ));
    }
    if judge_driver_share && report.driver_cpu_cores > MAX_DRIVER_CPU_SHARE * report.driver_threads as f64 {
        report.verdict = HealthVerdict::Invalid;
        report.reasons.push(format!(
            "driver saturated: it used {:.2} of its {} core(s); the load generator, not the target, was the bottleneck",
            report.driver_cpu_cores, report.driver_threads
        ));
    }
    if report.other_cpu_cores > MAX_OTHER_CPU_CORES {
        if report.verdict == HealthVerdict::Valid {
            report.verdict = HealthVerdict::Disturbed;
        }
        report.reasons.push(format!("other processes used {:.2} cores during the run", report.other_cpu_cores));
    }
    if report.steal_cores > MAX_OTHER_CPU_CORES {
        if report.verdict == HealthVerdict::Valid {
            report.verdict = HealthVerdict::Disturbed;
        }
        report.reasons.push(format!("the host held back this machine's CPUs for {:.2} cores during the run (steal)", report.steal_cores));
    }
}

/// The lag probe's figures: every wake's lateness, and each second's worst.
struct Lag {
    all: hdrhistogram::Histogram<u64>,
    /// µs, by the second since the start that the late wake came in.
    worst_per_second: Vec<u64>,
}

async fn probe_lag(lag: Arc<Mutex<Lag>>, stop: CancellationToken) {
    let start = tokio::time::Instant::now();
    loop {
        let before = tokio::time::Instant::now();
        tokio::select! {
            () = tokio::time::sleep(PROBE_INTERVAL) => {}
            () = stop.cancelled() => return,
        }
        let late = (before.elapsed().saturating_sub(PROBE_INTERVAL).as_micros() as u64).max(1);
        let second = start.elapsed().as_secs() as usize;
        let mut lag = lag.lock().unwrap_or_else(|e| e.into_inner());
        lag.all.saturating_record(late);
        if lag.worst_per_second.len() <= second {
            lag.worst_per_second.resize(second + 1, 0);
        }
        lag.worst_per_second[second] = lag.worst_per_second[second].max(late);
    }
}

/// Each second, the CPU used since the last: read off the runtime's
/// threads (walking `/proc` blocks), so the lag probe does not see it.
async fn sample_each_second(
    start: CpuSnapshot,
    [target, sibling, mock]: [TargetCpu; 3],
    seconds: Arc<Mutex<Vec<HealthSecond>>>,
    stop: CancellationToken,
) {
    let mut last = start;
    let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + Duration::from_secs(1), Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            () = stop.cancelled() => return,
        }
        let (t, s, m) = (target.clone(), sibling.clone(), mock.clone());
        let Ok(now) = tokio::task::spawn_blocking(move || snapshot(&t, &s, &m)).await else { return };
        let used = CpuShare::between(&last, &now);
        let second = HealthSecond {
            t_s: (now.at - start.at).as_secs_f64(),
            driver: used.driver,
            target: used.target,
            others: used.others,
            steal: used.steal,
        };
        seconds.lock().unwrap_or_else(|e| e.into_inner()).push(second);
        last = now;
    }
}

fn snapshot(target: &TargetCpu, sibling: &TargetCpu, mock: &TargetCpu) -> CpuSnapshot {
    CpuSnapshot {
        at: std::time::Instant::now(),
        machine_busy_ticks: machine_busy_ticks().unwrap_or(0),
        steal_ticks: steal_ticks().unwrap_or(0),
        self_ticks: process_ticks("self").unwrap_or(0),
        target_ns: target.read_ns(),
        sibling_ns: sibling.read_ns(),
        mock_ns: mock.read_ns(),
    }
}

/// The all-CPU line of `/proc/stat`, in ticks.
fn cpu_ticks() -> Option<Vec<u64>> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    Some(line.split_whitespace().filter_map(|f| f.parse().ok()).collect())
}

/// Ticks all CPUs spent running processes (user, nice, system). Interrupt
/// time is left out: loopback traffic's softirq work belongs to the run, not
/// to a neighbour; steal is counted apart.
fn machine_busy_ticks() -> Option<u64> {
    let fields = cpu_ticks()?;
    Some(fields.first()? + fields.get(1)? + fields.get(2)?)
}

/// Ticks the hypervisor held back runnable vCPUs.
fn steal_ticks() -> Option<u64> {
    cpu_ticks()?.get(7).copied()
}

/// utime + stime of a process (`self` or a pid), in ticks.
fn process_ticks(pid: &str) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces; fields resume after its `)`.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?)
}

/// CPU time of a process in nanoseconds: the sum of its threads' run time
/// from `/proc/PID/task/*/schedstat` (exact, where `stat`'s ticks are 10 ms
/// steps), or its ticks where schedstat is missing. Threads that already
/// exited are not in the sum; the server's threads live as long as it does.
pub fn process_cpu_ns(pid: u32) -> Option<u64> {
    let exact = std::fs::read_dir(format!("/proc/{pid}/task")).ok().and_then(|tasks| {
        let mut sum = 0u64;
        for task in tasks.flatten() {
            let text = std::fs::read_to_string(task.path().join("schedstat")).ok()?;
            sum += text.split_whitespace().next()?.parse::<u64>().ok()?;
        }
        Some(sum)
    });
    exact.or_else(|| process_ticks(&pid.to_string()).map(|t| t * (1e9 / TICKS_PER_S) as u64))
}

/// Every process on this machine that serves `addr`: those holding a
/// socket listening on its port at its address (or at the wildcard), from
/// `/proc/net/tcp*` and the processes' open sockets: a forking server's
/// master and workers (gunicorn), or processes sharing the port
/// (`SO_REUSEPORT`), so a `--target` that runs here has its CPU measured.
/// An address that is not this machine's is served elsewhere: none, so a
/// remote target is never given a local process's CPU. A container's port
/// published by `docker-proxy` is followed into the container's network
/// namespace to the server listening there; none when it cannot be.
pub fn local_pids_listening_on(addr: std::net::SocketAddr) -> Vec<u32> {
    if !is_this_machines(addr.ip()) {
        // A container's own address (a bridge network's), seen from here.
        return listeners_in_any_namespace(addr);
    }
    let mut owners = Vec::new();
    for pid in listeners_in_namespace("self", addr) {
        match docker_proxy_target(pid) {
            Some(inner) => owners.extend(listeners_in_any_namespace(inner)),
            None if command_name(pid).as_deref() == Some("docker-proxy") => {}
            None => owners.push(pid),
        }
    }
    owners.sort_unstable();
    owners.dedup();
    owners
}

/// Whether `ip` is one of this machine's addresses: loopback, or one a
/// socket can bind (the kernel refuses an address no interface has).
fn is_this_machines(ip: std::net::IpAddr) -> bool {
    ip.is_loopback() || ip.is_unspecified() || std::net::UdpSocket::bind((ip, 0)).is_ok()
}

/// A `/proc/net/tcp*` address (`0100007F:1F90`, or 32 hex digits for
/// IPv6): the kernel prints each 32-bit word of the address as a native
/// integer, so its native bytes are the address's bytes in order.
fn proc_net_addr(text: &str) -> Option<std::net::SocketAddr> {
    let (ip, port) = text.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let word = |i: usize| Some(u32::from_str_radix(ip.get(i * 8..i * 8 + 8)?, 16).ok()?.to_ne_bytes());
    let ip: std::net::IpAddr = match ip.len() {
        8 => std::net::Ipv4Addr::from(word(0)?).into(),
        32 => {
            let mut bytes = [0u8; 16];
            for i in 0..4 {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&word(i)?);
            }
            std::net::Ipv6Addr::from(bytes).into()
        }
        _ => return None,
    };
    Some((ip, port).into())
}

/// Whether a listener on `local` takes connections to `target`: the same
/// port, and the same address, the wildcard, or an IPv4-mapped IPv6 form of it.
fn serves(local: std::net::SocketAddr, target: std::net::SocketAddr) -> bool {
    use std::net::IpAddr;
    if local.port() != target.port() {
        return false;
    }
    let canonical = |ip: IpAddr| match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    let (l, t) = (canonical(local.ip()), canonical(target.ip()));
    // A dual-stack wildcard (`[::]`) takes IPv4 connections too.
    l.is_unspecified() || l == t
}

/// The socket inodes listening for `target` in the network namespace of
/// `pid` (`self`: this process's).
fn listening_inodes(pid: &str, target: std::net::SocketAddr) -> Vec<String> {
    let mut inodes = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, st (0A = LISTEN), inode.
            if fields.len() > 9 && fields[3] == "0A" && proc_net_addr(fields[1]).is_some_and(|local| serves(local, target)) {
                inodes.push(format!("socket:[{}]", fields[9]));
            }
        }
    }
    inodes
}

/// Every process but this one.
fn other_pids() -> Vec<u32> {
    let me = std::process::id();
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|&pid| pid != me)
        .collect()
}

/// The processes among `pids` holding one of `inodes`.
fn holders(pids: &[u32], inodes: &[String]) -> Vec<u32> {
    pids.iter()
        .copied()
        .filter(|pid| {
            let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return false };
            fds.flatten().any(|fd| std::fs::read_link(fd.path()).is_ok_and(|link| inodes.iter().any(|i| link.as_os_str() == i.as_str())))
        })
        .collect()
}

/// The processes listening for `target` in this process's network namespace.
fn listeners_in_namespace(pid: &str, target: std::net::SocketAddr) -> Vec<u32> {
    let inodes = listening_inodes(pid, target);
    if inodes.is_empty() {
        return Vec::new();
    }
    holders(&other_pids(), &inodes)
}

/// The processes listening for `target` in the other network namespaces
/// this machine shows that own its address (a container's), read once per
/// namespace; none when no namespace here owns it (a remote host).
fn listeners_in_any_namespace(target: std::net::SocketAddr) -> Vec<u32> {
    let own = std::fs::read_link("/proc/self/ns/net").ok();
    let mut by_namespace: std::collections::BTreeMap<std::path::PathBuf, Vec<u32>> = Default::default();
    for pid in other_pids() {
        if let Ok(ns) = std::fs::read_link(format!("/proc/{pid}/ns/net"))
            && Some(&ns) != own.as_ref()
        {
            by_namespace.entry(ns).or_default().push(pid);
        }
    }
    let mut found = Vec::new();
    for members in by_namespace.values() {
        let pid = members[0].to_string();
        if !namespace_owns(&pid, target.ip()) {
            continue;
        }
        let inodes = listening_inodes(&pid, target);
        if !inodes.is_empty() {
            found.extend(holders(members, &inodes));
        }
    }
    found
}

/// Whether `ip` is a local address of the network namespace of `pid`: an
/// IPv4 address its `fib_trie` marks `/32 host LOCAL`, an IPv6 one in its
/// `if_inet6`.
fn namespace_owns(pid: &str, ip: std::net::IpAddr) -> bool {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let trie = std::fs::read_to_string(format!("/proc/{pid}/net/fib_trie")).unwrap_or_default();
            let lines: Vec<&str> = trie.lines().collect();
            let name = v4.to_string();
            lines.windows(2).any(|w| w[0].trim().strip_prefix("|-- ") == Some(name.as_str()) && w[1].contains("/32 host LOCAL"))
        }
        std::net::IpAddr::V6(v6) => {
            let hex: String = v6.octets().iter().map(|b| format!("{b:02x}")).collect();
            let table = std::fs::read_to_string(format!("/proc/{pid}/net/if_inet6")).unwrap_or_default();
            table.lines().any(|l| l.split_whitespace().next() == Some(hex.as_str()))
        }
    }
}

/// A process's command name (`/proc/PID/comm`).
fn command_name(pid: u32) -> Option<String> {
    Some(std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_owned())
}

/// Where a `docker-proxy` forwards to (`-container-ip X -container-port Y`).
fn docker_proxy_target(pid: u32) -> Option<std::net::SocketAddr> {
    if command_name(pid)? != "docker-proxy" {
        return None;
    }
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let args: Vec<String> = cmdline.split(|b| *b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
    let value = |flag: &str| args.iter().position(|a| a == flag).and_then(|i| args.get(i + 1));
    let ip = value("-container-ip")?.parse().ok()?;
    let port = value("-container-port")?.parse().ok()?;
    Some(std::net::SocketAddr::new(ip, port))
}

/// Resident memory of `pid`, from `/proc/PID/status`.
pub fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status.lines().find_map(|l| l.strip_prefix("VmRSS:"))?.trim().trim_end_matches(" kB").trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process_rss() {
        assert!(rss_kib(std::process::id()).is_some_and(|kib| kib > 0));
    }

    /// A listener on 127.0.0.1 in a child process (so it is not excluded
    /// as ourselves), and its port.
    fn listener_at_127_0_0_1() -> (std::process::Child, u16) {
        let mut child = std::process::Command::new("python3")
            .args(["-c", "import socket,sys,time; s=socket.socket(); s.bind(('127.0.0.1',0)); s.listen(); print(s.getsockname()[1], flush=True); time.sleep(30)"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        std::io::BufRead::read_line(&mut std::io::BufReader::new(child.stdout.take().unwrap()), &mut line).unwrap();
        (child, line.trim().parse().unwrap())
    }

    #[test]
    fn finds_the_local_process_listening_on_a_port() {
        let (mut child, port) = listener_at_127_0_0_1();
        let found = local_pids_listening_on(([127, 0, 0, 1], port).into());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, [child.id()]);
    }

    /// A target is matched by address and port: a local listener on the
    /// same port at another address, or a remote host's port that happens
    /// to be listened on here, is not the target.
    #[test]
    fn a_listener_is_the_targets_only_at_its_address() {
        let (mut child, port) = listener_at_127_0_0_1();
        let here = local_pids_listening_on(([127, 0, 0, 1], port).into());
        let other_loopback = local_pids_listening_on(([127, 0, 0, 2], port).into());
        // TEST-NET-3 (RFC 5737): no machine's address.
        let remote = local_pids_listening_on(([203, 0, 113, 1], port).into());
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(here, [child.id()]);
        assert!(other_loopback.is_empty(), "{other_loopback:?}");
        assert!(remote.is_empty(), "a remote port is not a local process's: {remote:?}");
    }

    /// A namespace owns its loopback address and not a remote one: what
    /// decides which container a published port leads to.
    #[test]
    fn a_namespace_owns_its_own_addresses_only() {
        assert!(namespace_owns("self", std::net::Ipv4Addr::LOCALHOST.into()));
        assert!(!namespace_owns("self", std::net::Ipv4Addr::new(203, 0, 113, 1).into()));
        if std::fs::read_to_string("/proc/self/net/if_inet6").is_ok_and(|t| !t.is_empty()) {
            assert!(namespace_owns("self", std::net::Ipv6Addr::LOCALHOST.into()));
        }
    }

    #[test]
    fn proc_net_addresses_read_as_the_kernel_writes_them() {
        assert_eq!(proc_net_addr("0100007F:1F90"), Some("127.0.0.1:8080".parse().unwrap()));
        assert_eq!(proc_net_addr("00000000:0050"), Some("0.0.0.0:80".parse().unwrap()));
        assert_eq!(proc_net_addr("00000000000000000000000001000000:1F90"), Some("[::1]:8080".parse().unwrap()));
        assert_eq!(proc_net_addr("0000000000000000FFFF00000100007F:1F90"), Some("[::ffff:127.0.0.1]:8080".parse().unwrap()));
        assert!(serves("[::]:80".parse().unwrap(), "127.0.0.1:80".parse().unwrap()), "a dual-stack wildcard");
        assert!(serves("[::ffff:127.0.0.1]:80".parse().unwrap(), "127.0.0.1:80".parse().unwrap()));
        assert!(!serves("127.0.0.1:80".parse().unwrap(), "127.0.0.1:81".parse().unwrap()));
        assert!(!serves("10.0.0.5:80".parse().unwrap(), "10.0.0.6:80".parse().unwrap()));
    }

    #[test]
    fn reads_this_process_and_the_machine() {
        assert!(process_ticks("self").is_some());
        assert!(machine_busy_ticks().is_some());
        let machine = Machine::here();
        // What the kernel says, not a constant: /proc and the scheduler agree.
        let online = std::fs::read_to_string("/proc/cpuinfo").unwrap().lines().filter(|l| l.starts_with("processor")).count();
        assert!(machine.cores <= online.max(1), "{} cores reported, {online} online", machine.cores);
        assert!(machine.memory_gib > 0.0, "MemTotal read from /proc/meminfo");
        assert_ne!(machine.kernel, "", "the kernel's release read from /proc");
    }

    #[test]
    fn cpu_ns_counts_this_process_busy_time() {
        let me = std::process::id();
        let before = process_cpu_ns(me).expect("own CPU time");
        let ticks = process_ticks("self").expect("own ticks");
        // Spin until the kernel's tick count says 5 ticks (40-60 ms) of CPU went by.
        let mut x = 0u64;
        while process_ticks("self").expect("own ticks") < ticks + 5 {
            x = std::hint::black_box(x.wrapping_add(1));
        }
        let after = process_cpu_ns(me).expect("own CPU time");
        assert!(after - before >= 30_000_000, "{before} -> {after}");
    }

    #[test]
    fn a_process_tree_counts_its_children_and_what_they_used_after_they_exit() {
        // A shell whose child spins for about 50 ms of CPU, then exits; the
        // shell lives on, having waited for it.
        let mut shell = std::process::Command::new("sh")
            .args(["-c", "sh -c 'i=0; while [ $i -lt 20000 ]; do i=$((i+1)); done'; sleep 30"])
            .spawn()
            .unwrap();
        let root = shell.id();
        let tree = TargetCpu::Processes(vec![root]);
        let before = tree.read_ns().unwrap();
        assert!(process_tree(&[root]).contains(&root));
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        // Until the child is gone and its time is in the shell's cutime.
        while reaped_children_ns(root).unwrap_or(0) == 0 {
            assert!(std::time::Instant::now() < deadline, "the child never finished");
            std::thread::sleep(Duration::from_millis(20));
        }
        let after = tree.read_ns().unwrap();
        assert!(after > before, "the reaped child's CPU stays in the tree: {before} -> {after}");
        assert!(!process_tree(&[root]).contains(&std::process::id()), "the driver is never in a target's tree");
        assert!(TargetCpu::Remote.read_ns().is_none());
        assert_eq!(TargetCpu::Remote.describe(), "not measured (remote)");
        shell.kill().unwrap();
        let _ = shell.wait();
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 1)]
    async fn cpu_is_kept_second_by_second_and_the_seconds_add_up_to_the_whole() {
        // A target that spins for the whole watch.
        let mut spinner = std::process::Command::new("sh").args(["-c", "while :; do :; done"]).spawn().unwrap();
        let monitor = HealthMonitor::start(TargetCpu::Processes(vec![spinner.id()]), 1);
        tokio::time::sleep(Duration::from_millis(3300)).await;
        let report = monitor.finish().await;
        spinner.kill().unwrap();
        let _ = spinner.wait();
        let seconds = &report.per_second;
        assert!((1..=3).contains(&seconds.len()), "a sample per whole second watched: {seconds:?}");
        assert!(seconds.windows(2).all(|w| w[1].t_s > w[0].t_s), "in order: {seconds:?}");
        assert!(seconds.last().unwrap().t_s <= report.span_s, "inside the span: {seconds:?}");
        // The spinner's CPU, second by second, is part of the whole run's.
        let mut t = 0.0;
        let mut busy = 0.0;
        for s in seconds {
            busy += s.target.expect("a local target is measured") * (s.t_s - t);
            t = s.t_s;
        }
        let whole = report.target_cpu_cores.unwrap() * report.span_s;
        assert!(busy > 0.0 && busy <= whole + 0.02, "seconds {busy:.3} core-s of the whole {whole:.3}");
    }

    /// A stall of the driver's runtime shows in the second it ended in:
    /// the lag's worst per second says where in a run the driver stopped.
    #[tokio::test(flavor = "current_thread")]
    async fn a_stall_is_found_in_its_second() {
        let monitor = HealthMonitor::start(TargetCpu::Remote, 1);
        tokio::time::sleep(Duration::from_millis(30)).await;
        // Holds the only runtime thread: the lag probe's timer fires late.
        std::thread::sleep(Duration::from_millis(150));
        tokio::time::sleep(Duration::from_millis(30)).await;
        let report = monitor.finish().await;
        let worst = &report.lag_max_ms_per_second;
        assert!(!worst.is_empty(), "{worst:?}");
        assert!(worst.iter().any(|&ms| ms >= 100.0), "the 150 ms stall: {worst:?}");
        assert!(report.scheduler_lag_ms.max >= 100.0);
    }

    #[test]
    fn verdicts() {
        let mut report = HealthReport {
            verdict: HealthVerdict::Valid,
            reasons: Vec::new(),
            scheduler_lag_ms: schema::metrics::Summary::default(),
            driver_cpu_cores: 0.95,
            driver_threads: 1,
            target_cpu_cores: Some(0.5),
            target_cpu_of: None,
            mock_cpu_cores: None,
            other_cpu_cores: 0.3,
            steal_cores: 0.0,
            machine_cores: 2,
            span_s: 1.0,
            per_second: Vec::new(),
            lag_max_ms_per_second: Vec::new(),
        };
        let mut beside = report.clone();
        judge(&mut report, true);
        assert_eq!(report.verdict, HealthVerdict::Invalid);
        assert_eq!(report.reasons.len(), 2);
        // Beside a sibling target the driver's share is not judged; the neighbour still is.
        judge(&mut beside, false);
        assert_eq!(beside.verdict, HealthVerdict::Disturbed);
        assert_eq!(beside.reasons.len(), 1);
        // The host's steal alone disturbs too, and says so.
        let mut stolen = HealthReport { other_cpu_cores: 0.0, steal_cores: 0.25, ..beside.clone() };
        stolen.verdict = HealthVerdict::Valid;
        stolen.reasons.clear();
        judge(&mut stolen, false);
        assert_eq!(stolen.verdict, HealthVerdict::Disturbed);
        assert!(stolen.reasons[0].contains("steal"), "{:?}", stolen.reasons);
    }
}
