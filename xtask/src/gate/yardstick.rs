//! `cargo xtask yardstick`: the server against its yardsticks, side by side
//! (docs/performance.md §1 and §3), in one command, both orders.
//!
//! - empty: Start→End runs on the server (a `flowbench up` stack) against
//!   the bare axum handler (`flowbench bare`): the server's req/s as a share
//!   of the bare handler's, and its CPU per request against the bare one's.
//! - llm: the llm scenario on the server (its mock under the gate's script)
//!   against the bare SSE emitter: the server's CPU per event over the
//!   emitter's.
//!
//! Both targets pinned to CPU 1, `flowbench ab` on CPU 0, as the gate runs.
//! Each yardstick is measured twice, the server as side A and then as side
//! B (the side run as A came out about 1% cheaper in A/A runs), and the two
//! orders' ratios are given with their geometric mean. A failed request on
//! either side, or a driver that could not keep up, makes the figures
//! unusable: exit 2, not a ratio.
//!
//! One run's slices agree with each other more than runs do (the host's
//! state moves both sides, and moves between runs), so the interval comes
//! from rounds, not slices: `--rounds N` measures both orders N times, each
//! with fresh processes, and gives the 95% t interval of the rounds'
//! geometric means. `--empty-at-least` and `--llm-at-most` check a target
//! against that interval: met (exit 0) only when the whole interval is on
//! the target's side, missed (exit 1) when it is all on the other, and
//! otherwise, or with one round, "cannot tell" (exit 3), never a pass.

use super::RoundLoad;
use super::rounds::{RoundStack, Side, pinned, read_phase, stop};
use anyhow::{Context, bail};
use schema::ab::AbReport;
use schema::health::HealthVerdict;
use serde::Serialize;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

#[derive(Debug, Clone, clap::Args)]
pub struct YardstickArgs {
    /// Which yardstick: empty (Start→End against the bare handler), llm
    /// (the relay against the bare SSE emitter), or both.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub scenario: Which,
    #[command(flatten)]
    pub load: RoundLoad,
    /// This `flowbench` binary instead of a release build of the working tree.
    #[arg(long, value_name = "PATH")]
    pub binary: Option<PathBuf>,
    /// The figures of each order and their means, as JSON.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Measure both orders this many times, each with fresh processes; two
    /// or more give each ratio a 95% interval over the rounds.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=30))]
    pub rounds: u32,
    /// Target: the empty yardstick's req/s ratio and CPU ratio each at
    /// least this (e.g. 0.9), judged on their intervals.
    #[arg(long, value_name = "RATIO")]
    pub empty_at_least: Option<f64>,
    /// Target: the relay's CPU per event at most this many times the bare
    /// SSE emitter's (e.g. 1.5), judged on its interval.
    #[arg(long, value_name = "RATIO")]
    pub llm_at_most: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Which {
    Empty,
    Llm,
    Both,
}

/// One order of one yardstick: both sides' means over the slices.
#[derive(Debug, Clone, Serialize)]
pub struct Order {
    /// Which round (from 1) measured it.
    pub round: u32,
    /// "A" or "B": the server's side in `flowbench ab`.
    pub server_side: &'static str,
    pub server_req_per_s: f64,
    pub bare_req_per_s: f64,
    pub server_cpu_us: f64,
    pub bare_cpu_us: f64,
    /// The server's req/s over the bare one's (empty); CPU per event, the
    /// server's over the bare one's (llm).
    pub ratio: f64,
    /// The bare one's CPU per request over the server's (empty only).
    pub cpu_ratio: Option<f64>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Yardstick {
    pub scenario: &'static str,
    /// What `ratio` is.
    pub ratio_is: &'static str,
    pub orders: Vec<Order>,
    /// Geometric mean of every order's ratio.
    pub ratio: f64,
    pub cpu_ratio: Option<f64>,
    pub rounds: u32,
    /// 95% t interval of the rounds' geometric means (two rounds or more).
    pub ratio_interval: Option<[f64; 2]>,
    pub cpu_ratio_interval: Option<[f64; 2]>,
    /// The targets checked (`--empty-at-least`, `--llm-at-most`).
    pub targets: Vec<TargetCheck>,
}

/// One ratio against its target.
#[derive(Debug, Clone, Serialize)]
pub struct TargetCheck {
    /// "req/s ratio", "CPU ratio" or "CPU per event ratio".
    pub figure: &'static str,
    /// "at least" or "at most".
    pub bound: &'static str,
    pub target: f64,
    pub verdict: Verdict,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Met,
    Missed,
    CannotTell,
}

impl Verdict {
    /// `interval` against `target`, the good side above it (`at_least`) or
    /// below it: met or missed only when the whole interval says so.
    fn of(interval: Option<[f64; 2]>, target: f64, at_least: bool) -> Self {
        match interval {
            Some([low, _]) if at_least && low >= target => Verdict::Met,
            Some([_, high]) if at_least && high < target => Verdict::Missed,
            Some([_, high]) if !at_least && high <= target => Verdict::Met,
            Some([low, _]) if !at_least && low > target => Verdict::Missed,
            _ => Verdict::CannotTell,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "missed",
            Verdict::CannotTell => "cannot tell",
        }
    }
}

/// The geometric mean of `f` over every order, and the 95% t interval of
/// the rounds' geometric means (`None` with one round, or without `f`).
fn summarize(orders: &[Order], rounds: u32, f: impl Fn(&Order) -> Option<f64>) -> (Option<f64>, Option<[f64; 2]>) {
    let logs: Option<Vec<f64>> = orders.iter().map(|o| f(o).map(f64::ln)).collect();
    let Some(logs) = logs.filter(|l| !l.is_empty()) else { return (None, None) };
    let mean = crate::stats::mean(&logs).exp();
    let per_round: Vec<f64> = (1..=rounds)
        .map(|r| {
            let round: Vec<f64> = orders.iter().zip(&logs).filter(|(o, _)| o.round == r).map(|(_, l)| *l).collect();
            crate::stats::mean(&round)
        })
        .collect();
    if per_round.len() < 2 || per_round.iter().any(|l| !l.is_finite()) {
        return (Some(mean), None);
    }
    let change = crate::stats::PairedChange::of(&per_round);
    (Some(mean), Some([change.log_low.exp(), change.log_high.exp()]))
}

pub fn run(root: &Path, args: &YardstickArgs) -> anyhow::Result<i32> {
    if args.load.slices == 0 {
        bail!("--slices must be at least 1");
    }
    let scenarios: &[&'static str] = match args.scenario {
        Which::Empty => &["empty"],
        Which::Llm => &["llm"],
        Which::Both => &["empty", "llm"],
    };
    std::fs::create_dir_all(root.join("target/gate")).context("creating target/gate")?;
    for (flag, target, measured) in [
        ("--empty-at-least", args.empty_at_least, scenarios.contains(&"empty")),
        ("--llm-at-most", args.llm_at_most, scenarios.contains(&"llm")),
    ] {
        if target.is_some_and(|t| !(t.is_finite() && t > 0.0)) {
            bail!("{flag} must be a ratio above 0");
        }
        if target.is_some() && !measured {
            bail!("{flag} is a target for a yardstick --scenario leaves out");
        }
    }
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => super::build::build(root, None)?,
    };
    let mut out = Vec::new();
    for &scenario in scenarios {
        let mut orders = Vec::new();
        for round in 1..=args.rounds {
            for server_side in ["A", "B"] {
                eprintln!("yardstick: {scenario}, round {round} of {}, the server as side {server_side}", args.rounds);
                match measure(root, &binary, &args.load, scenario, (round, server_side)) {
                    Ok(order) => orders.push(order),
                    Err(e) => {
                        eprintln!("yardstick: could not measure: {e:#}");
                        return Ok(2);
                    }
                }
            }
        }
        out.push(yardstick_of(scenario, orders, args));
    }
    print!("{}", render(&out, &args.load));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?).with_context(|| format!("writing {}", path.display()))?;
    }
    let verdicts: Vec<Verdict> = out.iter().flat_map(|y| y.targets.iter().map(|t| t.verdict)).collect();
    Ok(if verdicts.contains(&Verdict::Missed) {
        1
    } else if verdicts.contains(&Verdict::CannotTell) {
        3
    } else {
        0
    })
}

/// A yardstick's figures over its orders, and its targets checked.
fn yardstick_of(scenario: &'static str, orders: Vec<Order>, args: &YardstickArgs) -> Yardstick {
    let (ratio, ratio_interval) = summarize(&orders, args.rounds, |o| Some(o.ratio));
    let (cpu_ratio, cpu_ratio_interval) = summarize(&orders, args.rounds, |o| o.cpu_ratio);
    let mut targets = Vec::new();
    match (scenario, args.empty_at_least, args.llm_at_most) {
        ("empty", Some(target), _) => {
            for (figure, interval) in [("req/s ratio", ratio_interval), ("CPU ratio", cpu_ratio_interval)] {
                targets.push(TargetCheck { figure, bound: "at least", target, verdict: Verdict::of(interval, target, true) });
            }
        }
        ("llm", _, Some(target)) => targets.push(TargetCheck {
            figure: "CPU per event ratio",
            bound: "at most",
            target,
            verdict: Verdict::of(ratio_interval, target, false),
        }),
        _ => {}
    }
    Yardstick {
        scenario,
        ratio_is: if scenario == "empty" {
            "server req/s over the bare handler's"
        } else {
            "server CPU per event over the bare SSE emitter's"
        },
        ratio: ratio.unwrap_or(f64::NAN),
        cpu_ratio,
        rounds: args.rounds,
        ratio_interval,
        cpu_ratio_interval,
        targets,
        orders,
    }
}

/// One `flowbench ab` run: the server stack and the bare handler started
/// fresh, the server on side `server_side`, in round `round`.
fn measure(
    root: &Path,
    binary: &Path,
    load: &RoundLoad,
    scenario: &str,
    (round, server_side): (u32, &'static str),
) -> anyhow::Result<Order> {
    let stack = RoundStack::start(root, &Side::plain("server", binary.to_owned()))?;
    let bare = BareHandler::start(binary)?;
    let api_key = stack.info.api_key(scenario)?.to_owned();
    let (a, b) = if server_side == "A" { (&stack.info.server_url, &bare.url) } else { (&bare.url, &stack.info.server_url) };
    let json = root.join(format!("target/gate/yardstick-{}-{scenario}.json", std::process::id()));
    let out = pinned(binary, 0)
        .args(["ab", "--a", a, "--b", b, "--scenario", scenario, "--api-key", &api_key])
        .args(["--users", &load.users.to_string(), "--slices", &load.slices.to_string()])
        .arg("--slice")
        .arg(humantime::format_duration(load.slice).to_string())
        .arg("--settle")
        .arg(humantime::format_duration(load.settle).to_string())
        .arg("--json")
        .arg(&json)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()?;
    drop(bare);
    drop(stack);
    if !out.status.success() {
        let said = String::from_utf8_lossy(&out.stderr);
        bail!("flowbench ab failed ({}): {}", out.status, said.lines().last().unwrap_or(""));
    }
    let report = read_phase(&json)?;
    let _ = std::fs::remove_file(&json);
    order_of(&report, scenario, round, server_side)
}

/// The two sides' means over the slices, with the ratios; an error when a
/// request failed or a slice's driver could not keep up.
fn order_of(report: &AbReport, scenario: &str, round: u32, server_side: &'static str) -> anyhow::Result<Order> {
    let n = report.slices.len() as f64;
    if report.slices.is_empty() {
        bail!("the {scenario} run measured no slices");
    }
    let (mut server_qps, mut bare_qps, mut server_cpu, mut bare_cpu) = (0.0, 0.0, 0.0, 0.0);
    for (i, slice) in report.slices.iter().enumerate() {
        let (server, bare) = if server_side == "A" { (&slice.a, &slice.b) } else { (&slice.b, &slice.a) };
        for (who, side) in [("the server", server), ("the bare handler", bare)] {
            if side.counts.errors > 0 {
                bail!("{who} failed {} requests in slice {}: no ratio from a side that fails", side.counts.errors, i + 1);
            }
            if side.health.verdict == HealthVerdict::Invalid {
                bail!("slice {} is invalid on {who}'s side: {}", i + 1, side.health.reasons.join("; "));
            }
        }
        let cpu = |side: &schema::report::ScenarioReport| {
            if scenario == "empty" { side.target_cpu_us_per_request } else { side.target_cpu_us_per_event }
        };
        let (Some(s), Some(b)) = (cpu(server), cpu(bare)) else {
            bail!("slice {}: the targets' CPU was not measured (are both on this machine?)", i + 1);
        };
        server_qps += server.qps.avg / n;
        bare_qps += bare.qps.avg / n;
        server_cpu += s / n;
        bare_cpu += b / n;
    }
    let (ratio, cpu_ratio) =
        if scenario == "empty" { (server_qps / bare_qps, Some(bare_cpu / server_cpu)) } else { (server_cpu / bare_cpu, None) };
    Ok(Order {
        round,
        server_side,
        server_req_per_s: server_qps,
        bare_req_per_s: bare_qps,
        server_cpu_us: server_cpu,
        bare_cpu_us: bare_cpu,
        ratio,
        cpu_ratio,
    })
}

/// `flowbench bare` on an ephemeral port, pinned to CPU 1.
struct BareHandler {
    child: Child,
    url: String,
}

impl BareHandler {
    fn start(binary: &Path) -> anyhow::Result<Self> {
        let mut child = pinned(binary, 1)
            .args(["bare", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting flowbench bare")?;
        // It names its address once it listens: "… at http://ADDR; Ctrl-C to stop".
        let mut line = String::new();
        let read = BufReader::new(child.stderr.take().expect("piped")).read_line(&mut line);
        let url = line.split_whitespace().find(|w| w.starts_with("http://")).map(|w| w.trim_end_matches(';').to_owned());
        match (read, url) {
            (Ok(_), Some(url)) => Ok(BareHandler { child, url }),
            _ => {
                stop(&mut child);
                bail!("flowbench bare printed {line:?}, not its address")
            }
        }
    }
}

impl Drop for BareHandler {
    fn drop(&mut self) {
        stop(&mut self.child);
    }
}

fn render(yardsticks: &[Yardstick], load: &RoundLoad) -> String {
    let mut out = String::new();
    for y in yardsticks {
        out.push_str(&format!(
            "yardstick {}: {} slices of {} a side, {} users a side, both on CPU 1, flowbench ab on CPU 0\n",
            y.scenario,
            load.slices,
            humantime::format_duration(load.slice),
            load.users
        ));
        if y.scenario == "empty" {
            out.push_str("  round  server as   server req/s   bare req/s   ratio   server µs/req   bare µs/req   CPU ratio\n");
            for o in &y.orders {
                out.push_str(&format!(
                    "  {:<6} {:<9} {:>14.0} {:>12.0} {:>6.3}× {:>15.3} {:>13.3} {:>10.3}×\n",
                    o.round,
                    o.server_side,
                    o.server_req_per_s,
                    o.bare_req_per_s,
                    o.ratio,
                    o.server_cpu_us,
                    o.bare_cpu_us,
                    o.cpu_ratio.unwrap_or(f64::NAN)
                ));
            }
            out.push_str(&format!(
                "  both orders: the server at {:.3}×{} the bare handler's req/s, {:.3}×{} its CPU per request (geometric means{})\n",
                y.ratio,
                interval_text(y.ratio_interval),
                y.cpu_ratio.unwrap_or(f64::NAN),
                interval_text(y.cpu_ratio_interval),
                rounds_text(y.rounds)
            ));
        } else {
            out.push_str("  round  server as   server µs/event   emitter µs/event   ratio\n");
            for o in &y.orders {
                out.push_str(&format!(
                    "  {:<6} {:<9} {:>17.3} {:>18.3} {:>6.3}×\n",
                    o.round, o.server_side, o.server_cpu_us, o.bare_cpu_us, o.ratio
                ));
            }
            out.push_str(&format!(
                "  both orders: the relay's CPU per event {:.3}×{} the bare SSE emitter's (geometric mean{})\n",
                y.ratio,
                interval_text(y.ratio_interval),
                rounds_text(y.rounds)
            ));
        }
        for t in &y.targets {
            let why = match (t.verdict, y.rounds) {
                (Verdict::CannotTell, 1) => " (one round has no interval: --rounds 3 or more)",
                (Verdict::CannotTell, _) => " (the interval holds the target)",
                _ => "",
            };
            out.push_str(&format!("  target: {} {} {}×: {}{why}\n", t.figure, t.bound, t.target, t.verdict.text()));
        }
    }
    out
}

fn interval_text(interval: Option<[f64; 2]>) -> String {
    interval.map_or(String::new(), |[low, high]| format!(" [{low:.3}, {high:.3}]"))
}

fn rounds_text(rounds: u32) -> String {
    if rounds > 1 { format!("; 95% interval over {rounds} rounds") } else { String::new() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flowbench::report::sample::sample_scenario;
    use schema::ab::{SCHEMA, SCHEMA_VERSION, Slice};
    use schema::load::Mode;

    /// Two slices of `scenario`, side a's figures from `a`, side b's from `b`.
    fn report(scenario: &str, a: (f64, f64), b: (f64, f64)) -> AbReport {
        let side = |(qps, cpu): (f64, f64)| {
            let mut s = sample_scenario(scenario).slim();
            s.counts.errors = 0;
            s.health.verdict = HealthVerdict::Valid;
            s.qps.avg = qps;
            s.target_cpu_us_per_request = Some(cpu);
            s.target_cpu_us_per_event = Some(cpu / 40.0);
            s
        };
        AbReport {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            scenario: if scenario == "empty" { schema::ab::AbScenario::Empty } else { schema::ab::AbScenario::Llm },
            mode: if scenario == "empty" { Mode::Blocking } else { Mode::Streaming },
            a: "http://127.0.0.1:1".into(),
            b: "http://127.0.0.1:2".into(),
            users: 16,
            rate: None,
            slice_s: 2.0,
            settle_s: 0.3,
            interrupted: false,
            slices: vec![Slice { a: side(a), b: side(b) }, Slice { a: side(a), b: side(b) }],
        }
    }

    #[test]
    fn each_order_reads_the_server_from_its_own_side() {
        let server_a = order_of(&report("empty", (800.0, 12.5), (1000.0, 10.0)), "empty", 1, "A").unwrap();
        assert_eq!((server_a.ratio, server_a.cpu_ratio), (0.8, Some(0.8)));
        let server_b = order_of(&report("empty", (1000.0, 10.0), (900.0, 12.5)), "empty", 1, "B").unwrap();
        assert_eq!((server_b.server_req_per_s, server_b.bare_req_per_s), (900.0, 1000.0));
        assert!((server_b.ratio - 0.9).abs() < 1e-12 && server_b.cpu_ratio == Some(0.8));
        let llm = order_of(&report("llm", (50.0, 160.0), (80.0, 80.0)), "llm", 1, "A").unwrap();
        assert!((llm.ratio - 2.0).abs() < 1e-12 && llm.cpu_ratio.is_none(), "{llm:?}");
    }

    #[test]
    fn a_failed_request_or_a_saturated_driver_gives_no_ratio() {
        let mut failing = report("empty", (800.0, 12.5), (1000.0, 10.0));
        failing.slices[1].b.counts.errors = 3;
        let e = order_of(&failing, "empty", 1, "A").unwrap_err().to_string();
        assert!(e.contains("the bare handler failed 3 requests in slice 2"), "{e}");
        let mut invalid = report("llm", (50.0, 160.0), (80.0, 80.0));
        invalid.slices[0].a.health.verdict = HealthVerdict::Invalid;
        invalid.slices[0].a.health.reasons = vec!["the driver's lag p99 was 31 ms".into()];
        let e = order_of(&invalid, "llm", 1, "A").unwrap_err().to_string();
        assert!(e.contains("slice 1 is invalid on the server's side: the driver's lag p99 was 31 ms"), "{e}");
        let mut unmeasured = report("empty", (800.0, 12.5), (1000.0, 10.0));
        unmeasured.slices[0].a.target_cpu_us_per_request = None;
        assert!(order_of(&unmeasured, "empty", 1, "A").unwrap_err().to_string().contains("CPU was not measured"));
    }

    /// An order of round `round` whose ratios are `ratio` and `cpu`.
    fn order(round: u32, server_side: &'static str, ratio: f64, cpu: Option<f64>) -> Order {
        Order {
            round,
            server_side,
            server_req_per_s: 1.0,
            bare_req_per_s: 1.0,
            server_cpu_us: 1.0,
            bare_cpu_us: 1.0,
            ratio,
            cpu_ratio: cpu,
        }
    }

    fn args(rounds: u32, empty_at_least: Option<f64>, llm_at_most: Option<f64>) -> YardstickArgs {
        YardstickArgs {
            scenario: Which::Both,
            load: RoundLoad {
                slices: 8,
                slice: std::time::Duration::from_secs(2),
                settle: std::time::Duration::from_millis(300),
                users: 16,
            },
            binary: None,
            json: None,
            rounds,
            empty_at_least,
            llm_at_most,
        }
    }

    #[test]
    fn the_interval_comes_from_the_rounds_not_the_orders() {
        // One round: a mean, no interval, however far apart its orders are.
        let one = [order(1, "A", 0.8, Some(0.7)), order(1, "B", 1.0, Some(0.9))];
        let (mean, interval) = summarize(&one, 1, |o| Some(o.ratio));
        assert!((mean.unwrap() - (0.8f64 * 1.0).sqrt()).abs() < 1e-12 && interval.is_none());
        // Three rounds whose means are 0.88, 0.90 and 0.92 (in logs): the
        // interval is the t interval of those three, around their mean.
        let rounds: Vec<Order> = [0.88f64, 0.90, 0.92]
            .iter()
            .enumerate()
            .flat_map(|(i, m)| [order(i as u32 + 1, "A", m * 0.95, None), order(i as u32 + 1, "B", m / 0.95, None)])
            .collect();
        let (mean, interval) = summarize(&rounds, 3, |o| Some(o.ratio));
        let logs = [0.88f64.ln(), 0.90f64.ln(), 0.92f64.ln()];
        let half = crate::stats::t_975(2) * crate::stats::sd(&logs) / 3f64.sqrt();
        let centre = crate::stats::mean(&logs);
        let [low, high] = interval.unwrap();
        assert!((mean.unwrap() - centre.exp()).abs() < 1e-12);
        assert!((low - (centre - half).exp()).abs() < 1e-12 && (high - (centre + half).exp()).abs() < 1e-12, "{low} {high}");
        // No CPU ratio (the llm yardstick): no mean, no interval.
        assert_eq!(summarize(&rounds, 3, |o| o.cpu_ratio), (None, None));
    }

    #[test]
    fn a_target_is_met_or_missed_only_by_the_whole_interval() {
        assert_eq!(Verdict::of(Some([0.91, 0.95]), 0.9, true), Verdict::Met);
        assert_eq!(Verdict::of(Some([0.85, 0.89]), 0.9, true), Verdict::Missed);
        assert_eq!(Verdict::of(Some([0.88, 0.93]), 0.9, true), Verdict::CannotTell);
        assert_eq!(Verdict::of(None, 0.9, true), Verdict::CannotTell);
        assert_eq!(Verdict::of(Some([1.40, 1.49]), 1.5, false), Verdict::Met);
        assert_eq!(Verdict::of(Some([1.70, 1.80]), 1.5, false), Verdict::Missed);
        assert_eq!(Verdict::of(Some([1.45, 1.55]), 1.5, false), Verdict::CannotTell);
    }

    #[test]
    fn each_yardstick_checks_its_own_targets_and_says_why_it_cannot_tell() {
        let empty: Vec<Order> = (1..=3).flat_map(|r| [order(r, "A", 0.92, Some(0.86)), order(r, "B", 0.94, Some(0.88))]).collect();
        let y = yardstick_of("empty", empty, &args(3, Some(0.9), Some(1.5)));
        let verdicts: Vec<_> = y.targets.iter().map(|t| (t.figure, t.verdict)).collect();
        // Identical rounds: a zero-width interval on each side of 0.9.
        assert_eq!(verdicts, [("req/s ratio", Verdict::Met), ("CPU ratio", Verdict::Missed)]);
        let llm = yardstick_of("llm", vec![order(1, "A", 1.7, None), order(1, "B", 1.8, None)], &args(1, Some(0.9), Some(1.5)));
        assert_eq!(llm.targets.len(), 1);
        assert_eq!(llm.targets[0].verdict, Verdict::CannotTell);
        let text = render(&[y, llm], &args(1, None, None).load);
        assert!(text.contains("target: req/s ratio at least 0.9×: met"), "{text}");
        assert!(text.contains("target: CPU ratio at least 0.9×: missed"), "{text}");
        assert!(text.contains("target: CPU per event ratio at most 1.5×: cannot tell (one round has no interval"), "{text}");
        assert!(text.contains("95% interval over 3 rounds"), "{text}");
    }
}
