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
    /// Geometric mean of the two orders' ratios.
    pub ratio: f64,
    pub cpu_ratio: Option<f64>,
}

pub fn run(root: &Path, args: &YardstickArgs) -> anyhow::Result<i32> {
    if args.load.slices == 0 {
        bail!("--slices must be at least 1");
    }
    let binary = match &args.binary {
        Some(binary) => binary.clone(),
        None => super::build::build(root, None)?,
    };
    let scenarios: &[&'static str] = match args.scenario {
        Which::Empty => &["empty"],
        Which::Llm => &["llm"],
        Which::Both => &["empty", "llm"],
    };
    std::fs::create_dir_all(root.join("target/gate")).context("creating target/gate")?;
    let mut out = Vec::new();
    for &scenario in scenarios {
        let mut orders = Vec::new();
        for server_side in ["A", "B"] {
            eprintln!("yardstick: {scenario}, the server as side {server_side}");
            match measure(root, &binary, &args.load, scenario, server_side) {
                Ok(order) => orders.push(order),
                Err(e) => {
                    eprintln!("yardstick: could not measure: {e:#}");
                    return Ok(2);
                }
            }
        }
        let mean = |f: fn(&Order) -> Option<f64>| -> Option<f64> {
            let logs: Option<Vec<f64>> = orders.iter().map(|o| f(o).map(f64::ln)).collect();
            logs.map(|l| (l.iter().sum::<f64>() / l.len() as f64).exp())
        };
        out.push(Yardstick {
            scenario,
            ratio_is: if scenario == "empty" {
                "server req/s over the bare handler's"
            } else {
                "server CPU per event over the bare SSE emitter's"
            },
            ratio: mean(|o| Some(o.ratio)).expect("two orders"),
            cpu_ratio: mean(|o| o.cpu_ratio),
            orders,
        });
    }
    print!("{}", render(&out, &args.load));
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&out)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(0)
}

/// One `flowbench ab` run: the server stack and the bare handler started
/// fresh, the server on side `server_side`.
fn measure(root: &Path, binary: &Path, load: &RoundLoad, scenario: &str, server_side: &'static str) -> anyhow::Result<Order> {
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
    order_of(&report, scenario, server_side)
}

/// The two sides' means over the slices, with the ratios; an error when a
/// request failed or a slice's driver could not keep up.
fn order_of(report: &AbReport, scenario: &str, server_side: &'static str) -> anyhow::Result<Order> {
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
            out.push_str("  server as   server req/s   bare req/s   ratio   server µs/req   bare µs/req   CPU ratio\n");
            for o in &y.orders {
                out.push_str(&format!(
                    "  {:<9} {:>14.0} {:>12.0} {:>6.3}× {:>15.3} {:>13.3} {:>10.3}×\n",
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
                "  both orders: the server at {:.3}× the bare handler's req/s, {:.3}× its CPU per request (geometric means)\n",
                y.ratio,
                y.cpu_ratio.unwrap_or(f64::NAN)
            ));
        } else {
            out.push_str("  server as   server µs/event   emitter µs/event   ratio\n");
            for o in &y.orders {
                out.push_str(&format!("  {:<9} {:>17.3} {:>18.3} {:>6.3}×\n", o.server_side, o.server_cpu_us, o.bare_cpu_us, o.ratio));
            }
            out.push_str(&format!("  both orders: the relay's CPU per event {:.3}× the bare SSE emitter's (geometric mean)\n", y.ratio));
        }
    }
    out
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
        let server_a = order_of(&report("empty", (800.0, 12.5), (1000.0, 10.0)), "empty", "A").unwrap();
        assert_eq!((server_a.ratio, server_a.cpu_ratio), (0.8, Some(0.8)));
        let server_b = order_of(&report("empty", (1000.0, 10.0), (900.0, 12.5)), "empty", "B").unwrap();
        assert_eq!((server_b.server_req_per_s, server_b.bare_req_per_s), (900.0, 1000.0));
        assert!((server_b.ratio - 0.9).abs() < 1e-12 && server_b.cpu_ratio == Some(0.8));
        let llm = order_of(&report("llm", (50.0, 160.0), (80.0, 80.0)), "llm", "A").unwrap();
        assert!((llm.ratio - 2.0).abs() < 1e-12 && llm.cpu_ratio.is_none(), "{llm:?}");
    }

    #[test]
    fn a_failed_request_or_a_saturated_driver_gives_no_ratio() {
        let mut failing = report("empty", (800.0, 12.5), (1000.0, 10.0));
        failing.slices[1].b.counts.errors = 3;
        let e = order_of(&failing, "empty", "A").unwrap_err().to_string();
        assert!(e.contains("the bare handler failed 3 requests in slice 2"), "{e}");
        let mut invalid = report("llm", (50.0, 160.0), (80.0, 80.0));
        invalid.slices[0].a.health.verdict = HealthVerdict::Invalid;
        invalid.slices[0].a.health.reasons = vec!["the driver's lag p99 was 31 ms".into()];
        let e = order_of(&invalid, "llm", "A").unwrap_err().to_string();
        assert!(e.contains("slice 1 is invalid on the server's side: the driver's lag p99 was 31 ms"), "{e}");
        let mut unmeasured = report("empty", (800.0, 12.5), (1000.0, 10.0));
        unmeasured.slices[0].a.target_cpu_us_per_request = None;
        assert!(order_of(&unmeasured, "empty", "A").unwrap_err().to_string().contains("CPU was not measured"));
    }
}
