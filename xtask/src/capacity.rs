//! `cargo xtask capacity`: `flowbench capacity --profile capacity` on the
//! embedded stack; with `--replicas 1,2,3`, once per replica count against
//! `flowbench up --replicas N --worker-threads 1` (the seed's N pods of one
//! CPU each), and the capacities drawn against N. A count the machine has no
//! cores for (each replica one, the driver one) is not run, and the table
//! says so rather than print a figure squeezed onto too few cores.

use anyhow::{Context, bail};
use schema::capacity::CapacityReport;
use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// The flags `flowbench capacity` gets unless the user gave them.
const DEFAULTS: [(&str, &str); 2] = [("--profile", "capacity"), ("--start", "100")];

/// `flowbench capacity` with the task's defaults, the user's `args` on top.
pub fn command(flowbench: Command, args: &[String]) -> Command {
    let mut command = flowbench;
    command.arg("capacity");
    let given = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    for (flag, value) in DEFAULTS {
        // A scenario file replaces the profile.
        let replaced = flag == "--profile" && given("--scenario-file");
        if !given(flag) && !replaced {
            command.args([flag, value]);
        }
    }
    command.args(args);
    command
}

/// Where a step's files go: `target/flowbench/`.
fn out_dir(root: &Path) -> anyhow::Result<PathBuf> {
    let dir = root.join("target/flowbench");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// The HTML page's path unless `args` name one.
pub fn default_html(root: &Path, args: &[String]) -> anyhow::Result<Option<PathBuf>> {
    if args.iter().any(|a| a == "--html" || a.starts_with("--html=")) {
        return Ok(None);
    }
    Ok(Some(out_dir(root)?.join("capacity.html")))
}

/// One replica count's outcome.
struct Measured {
    replicas: u16,
    /// `Err`: not run, or no report, and why.
    report: Result<CapacityReport, String>,
    code: i32,
}

/// The search once per count in `replicas`, each against its own stack.
pub fn replicas(root: &Path, flowbench: &Path, counts: &[u16], args: &[String]) -> anyhow::Result<i32> {
    let given = |flag: &str| args.iter().any(|a| a == flag || a.starts_with(&format!("{flag}=")));
    if given("--target") {
        bail!("--replicas starts its own stacks: give --target to `flowbench capacity` instead");
    }
    if given("--json") {
        bail!("--replicas writes each count's report as target/flowbench/capacity-N.json; leave out --json");
    }
    // `--html FILE` names the page of capacity against replicas; each count's own is beside its JSON.
    let mut args = args.to_vec();
    let mut html = None;
    if let Some(i) = args.iter().position(|a| a == "--html" || a.starts_with("--html=")) {
        let flag = args.remove(i);
        html = match flag.strip_prefix("--html=") {
            Some(path) => Some(PathBuf::from(path)),
            None if i < args.len() => Some(PathBuf::from(args.remove(i))),
            None => bail!("--html needs a file"),
        };
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let dir = out_dir(root)?;
    let mut measured = Vec::new();
    for &n in counts {
        if usize::from(n) + 1 > cores {
            let why = format!("{n} replicas of one core each and the driver's core need {} cores; this machine has {cores}", n + 1);
            eprintln!("cargo xtask capacity: {n} replicas not run: {why}");
            measured.push(Measured { replicas: n, report: Err(why), code: 0 });
            continue;
        }
        eprintln!("cargo xtask capacity: {n} replicas x 1 worker thread");
        let store = dir.join(format!("capacity-runs-{n}.db"));
        let _ = std::fs::remove_file(&store);
        let stack = Stack::start(flowbench, n, &store, &root.join("fixtures/mock/fast.toml"))?;
        let json = dir.join(format!("capacity-{n}.json"));
        let mut command = command(Command::new(flowbench), &args);
        command.current_dir(root).args(["--target", &stack.info.server_url]);
        if !given("--target-cores") {
            command.args(["--target-cores", &n.to_string()]);
        }
        for app in ["empty", "llm"] {
            command.args(["--api-key", &format!("{app}={}", stack.info.api_key(app)?)]);
        }
        command.arg("--json").arg(&json).arg("--html").arg(dir.join(format!("capacity-{n}.html")));
        let status = command.status().context("running flowbench capacity")?;
        drop(stack);
        let code = status.code().unwrap_or(1);
        let report = std::fs::read(&json)
            .map_err(|e| format!("no report ({e}; exit {code})"))
            .and_then(|bytes| serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", json.display())));
        measured.push(Measured { replicas: n, report, code });
        if code == 130 {
            break;
        }
    }
    print!("{}", table(&measured));
    let html = html.unwrap_or_else(|| dir.join("capacity-replicas.html"));
    std::fs::write(&html, page(&measured)?).with_context(|| format!("writing {}", html.display()))?;
    eprintln!("cargo xtask capacity: {}", html.display());
    // The worst outcome: interrupted, a failure, the driver's limit, the
    // SLO failed at the first step, found.
    let rank = |code: i32| match code {
        0 => 0,
        4 => 1,
        3 => 2,
        130 => 4,
        _ => 3,
    };
    Ok(measured.iter().map(|m| m.code).max_by_key(|&c| rank(c)).unwrap_or(0))
}

/// `flowbench up --replicas N --worker-threads 1` as a child; stopped on drop.
struct Stack {
    child: Child,
    info: schema::stack::StackInfo,
}

impl Stack {
    fn start(flowbench: &Path, replicas: u16, store: &Path, script: &Path) -> anyhow::Result<Self> {
        let mut child = Command::new(flowbench)
            .args(["up", "--replicas", &replicas.to_string(), "--worker-threads", "1"])
            .arg("--store")
            .arg(format!("sqlite:{}", store.display()))
            .arg("--mock-script")
            .arg(script)
            .stdout(Stdio::piped())
            .spawn()
            .context("starting flowbench up")?;
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("piped")).read_line(&mut line)?;
        match schema::stack::StackInfo::parse(&line) {
            Ok(info) => Ok(Self { child, info }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("flowbench up --replicas {replicas}: {e}")
            }
        }
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // SIGTERM: `up` stops its replicas and its store is committed.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

/// Each scenario's answer at each replica count.
fn answer(report: &CapacityReport, scenario: &str) -> String {
    let Some(s) = report.scenarios.iter().find(|s| s.name == scenario) else { return "not measured".to_owned() };
    let c = &s.capacity;
    match (c.rate, c.high) {
        (Some(rate), _) if c.at_least => format!("at least {rate:.0} {} ({})", c.unit, c.limited_by),
        (Some(rate), Some(high)) => format!("{rate:.0} {} (< {high:.0}; {})", c.unit, c.limited_by),
        (Some(rate), None) => format!("{rate:.0} {}", c.unit),
        (None, _) => format!("below the first step ({})", c.limited_by),
    }
}

fn scenarios(measured: &[Measured]) -> Vec<String> {
    let mut names: Vec<String> = Vec::new();
    for m in measured {
        for s in m.report.iter().flat_map(|r| &r.scenarios) {
            if !names.contains(&s.name) {
                names.push(s.name.clone());
            }
        }
    }
    names
}

fn table(measured: &[Measured]) -> String {
    use std::fmt::Write;
    let names = scenarios(measured);
    let mut out = format!("\nCapacity against replicas (each one worker thread)\n{:>8}", "replicas");
    for name in &names {
        let _ = write!(out, "  {name:<36}");
    }
    out.push('\n');
    for m in measured {
        let _ = write!(out, "{:>8}", m.replicas);
        match &m.report {
            Ok(report) => {
                for name in &names {
                    let _ = write!(out, "  {:<36}", answer(report, name));
                }
            }
            Err(why) => {
                let _ = write!(out, "  not run: {why}");
            }
        }
        out.push('\n');
    }
    out
}

fn page(measured: &[Measured]) -> anyhow::Result<String> {
    use pages::html::{esc, interval_plot, page, table};
    let names = scenarios(measured);
    let mut body = String::from(
        "<p>The most load each scenario took within its SLO, against the number of server replicas (each a process with one \
         worker thread); the bars are the interval between the highest load that passed and the lowest that failed.</p>\n",
    );
    for name in &names {
        let rows: Vec<(String, f64, f64, f64)> = measured
            .iter()
            .filter_map(|m| {
                let c = &m.report.as_ref().ok()?.scenarios.iter().find(|s| &s.name == name)?.capacity;
                let rate = c.rate?;
                Some((format!("{} replicas", m.replicas), rate, c.low.unwrap_or(rate), c.high.unwrap_or(rate)))
            })
            .collect();
        if !rows.is_empty() {
            body.push_str(&interval_plot(&format!("{name}: capacity against replicas"), "req/s within the SLO", &rows, &[])?);
        }
    }
    let rows: Vec<Vec<String>> = measured
        .iter()
        .map(|m| {
            let mut row = vec![m.replicas.to_string()];
            match &m.report {
                Ok(report) => row.extend(names.iter().map(|n| esc(&answer(report, n)))),
                Err(why) => row.push(esc(&format!("not run: {why}"))),
            }
            row
        })
        .collect();
    let mut head = vec!["replicas"];
    head.extend(names.iter().map(String::as_str));
    body.push_str(&table("Capacity against replicas", &head, &rows));
    Ok(page("flowbench capacity against replicas", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_tasks_defaults_give_way_to_the_users_flags() {
        let args = |c: &Command| c.get_args().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>();
        let plain = command(Command::new("flowbench"), &["--slo".into(), "qps>1".into()]);
        assert_eq!(args(&plain), ["capacity", "--profile", "capacity", "--start", "100", "--slo", "qps>1"]);
        let own = command(Command::new("flowbench"), &["--start=5".into(), "--scenario-file".into(), "f.toml".into()]);
        assert_eq!(args(&own), ["capacity", "--start=5", "--scenario-file", "f.toml"]);
    }

    /// A count the machine has no cores for is said, never drawn as a figure.
    #[test]
    fn a_count_not_run_is_said_and_not_drawn() {
        let measured = [Measured { replicas: 3, report: Err("3 replicas … need 4 cores; this machine has 2".into()), code: 0 }];
        let text = table(&measured);
        assert!(text.contains("not run: 3 replicas"), "{text}");
        let html = page(&measured).unwrap();
        assert!(html.contains("not run: 3 replicas") && !html.contains("<svg"), "no plot without a figure");
    }
}
