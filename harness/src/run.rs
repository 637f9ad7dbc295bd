//! `flowbench run`: flags → one validated `Plan` → scenarios driven against
//! the embedded stack (started as a child process, so its CPU is measured
//! apart from the driver's) or any Dify-compatible `--target` → the report.
//!
//! Exit codes: 0 done, 1 failed, 2 the target is down, refused or rejected
//! the key (nothing was sent), 130 interrupted by Ctrl-C (report written).

use crate::client::{Conn, Target, bearer};
use crate::driver::{self, Live, Mode, Protocol, RunSpec};
use crate::health::{HealthMonitor, Machine};
use crate::report::{LoadParams, Report, SCHEMA, SCHEMA_VERSION, ScenarioReport, TargetInfo};
use crate::schedule::LoadModel;
use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// Start → End.
    Empty,
    /// Start → LLM → End, streaming.
    Llm,
    /// Both, one after the other.
    All,
    /// The mock LLM straight, OpenAI protocol, no server: the direct path,
    /// the yardstick for what the relay adds (run beside `llm`). With
    /// --target, the OpenAI base URL, e.g. http://127.0.0.1:5004/v1.
    Direct,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The seed's conditions: 10 users spawned at 2/s, 60 s per scenario, Dify's mock timing.
    Dify,
    /// Enough load to find the ceiling: 64 users on `empty`, 1,000 streams on `llm` with a fast mock.
    Capacity,
}

/// `flowbench run` flags; a profile sets the defaults, flags override them.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    #[arg(long, value_enum, default_value = "all")]
    pub scenario: ScenarioArg,
    #[arg(long, value_enum, default_value = "dify")]
    pub profile: Profile,
    /// A few seconds per scenario, for a smoke run.
    #[arg(long)]
    pub quick: bool,
    /// Response mode of the `empty` scenario (`llm` always streams).
    #[arg(long, value_enum, default_value = "blocking")]
    pub mode: Mode,
    /// Closed model: virtual users.
    #[arg(long, conflicts_with = "rate")]
    pub users: Option<u32>,
    /// Closed model: users started per second.
    #[arg(long, conflicts_with = "rate")]
    pub spawn_rate: Option<f64>,
    /// Open model: arrivals per second (latency counts from each intended send time).
    #[arg(long)]
    pub rate: Option<f64>,
    /// Open model: Poisson arrivals instead of evenly spaced ones.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Open model: connections serving the arrivals.
    #[arg(long, requires = "rate", default_value_t = 256)]
    pub connections: u32,
    /// Measured time per scenario, e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before the measured phase, sent but left out of the figures.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Window for the Max/Min rates, in whole seconds.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "5s")]
    pub window: Duration,
    /// A request (or stream) not done after this is a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "60s")]
    pub timeout: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Write the versioned JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown tables here (for a pull-request comment).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A Dify-compatible server; without it, flowbench starts its embedded stack.
    #[arg(long)]
    pub target: Option<String>,
    /// The app's API key with --target: `KEY` for one scenario, `empty=KEY` / `llm=KEY` for each.
    #[arg(long = "api-key", value_name = "[SCENARIO=]KEY")]
    pub api_keys: Vec<String>,
    /// Request inputs as JSON (default: {"question": one of Dify's five questions}).
    #[arg(long, value_parser = parse_inputs)]
    pub inputs: Option<serde_json::Value>,
    /// The embedded mock's script (default by profile: Dify's timing, or fixtures/mock/fast.toml).
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1)]
    pub driver_threads: usize,
    /// The mock stamps each chunk with its emit time (`stamp = true`, e.g.
    /// fixtures/mock/stamped.toml): record emit → receipt per text chunk.
    #[arg(long)]
    pub stamped: bool,
    /// Leave every stream after this many text chunks, as a client that
    /// goes away mid-answer; such requests end `aborted` (an error class).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub abort_after_chunks: Option<u32>,
}

fn parse_inputs(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(text) {
        Ok(v @ serde_json::Value::Object(_)) => Ok(v),
        Ok(_) => Err("--inputs must be a JSON object".into()),
        Err(e) => Err(format!("--inputs is not JSON: {e}")),
    }
}

/// A scenario to run, fully resolved.
#[derive(Debug, Clone)]
pub struct PlannedScenario {
    pub name: &'static str,
    pub spec_mode: Mode,
    pub load: LoadModel,
    pub warmup: Duration,
    pub duration: Duration,
    pub api_key: Option<String>,
}

impl PlannedScenario {
    pub fn protocol(&self) -> Protocol {
        if self.name == "direct" { Protocol::OpenAi } else { Protocol::Dify }
    }
}

/// Everything a run needs, validated in one place.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<PlannedScenario>,
    pub window_s: u64,
    pub timeout: Duration,
    pub seed: u64,
    pub inputs: Option<serde_json::Value>,
    pub target: Option<String>,
    pub mock_script: Option<PathBuf>,
    pub driver_threads: usize,
    pub stamped: bool,
    pub abort_after_chunks: Option<u32>,
}

impl RunArgs {
    pub fn plan(&self) -> anyhow::Result<Plan> {
        let names: &[&'static str] = match self.scenario {
            ScenarioArg::Empty => &["empty"],
            ScenarioArg::Llm => &["llm"],
            ScenarioArg::All => &["empty", "llm"],
            ScenarioArg::Direct => &["direct"],
        };
        if self.window.subsec_nanos() != 0 || self.window.is_zero() {
            bail!("--window must be a whole number of seconds, got {}", humantime::format_duration(self.window));
        }
        if self.driver_threads == 0 {
            bail!("--driver-threads must be at least 1");
        }
        let mut keys = std::collections::HashMap::new();
        for given in &self.api_keys {
            match given.split_once('=') {
                Some((scenario @ ("empty" | "llm" | "direct"), key)) => keys.insert(scenario, key.to_owned()),
                Some((other, _)) if !other.starts_with("app-") => bail!("--api-key {given:?}: scenario must be empty, llm or direct"),
                _ if names.len() == 1 => keys.insert(names[0], given.clone()),
                _ => bail!("--api-key {given:?}: with --scenario all, give empty=KEY and llm=KEY"),
            };
        }
        let mut scenarios = Vec::new();
        for &name in names {
            let (users, spawn_rate, duration, warmup) = match (self.profile, name) {
                (Profile::Dify, _) => (10, 2.0, Duration::from_secs(60), Duration::from_secs(5)),
                (Profile::Capacity, "empty") => (64, 64.0, Duration::from_secs(30), Duration::from_secs(5)),
                (Profile::Capacity, _) => (1000, 500.0, Duration::from_secs(30), Duration::from_secs(5)),
            };
            let (duration, warmup) = if self.quick { (Duration::from_secs(5), Duration::from_secs(1)) } else { (duration, warmup) };
            let load = match self.rate {
                Some(rate) => {
                    if !(rate > 0.0 && rate.is_finite()) {
                        bail!("--rate must be above 0, got {rate}");
                    }
                    LoadModel::Open { rate, poisson: self.poisson, connections: self.connections.max(1), seed: self.seed }
                }
                None => {
                    let users = self.users.unwrap_or(users);
                    let spawn_rate = self.spawn_rate.unwrap_or(spawn_rate);
                    if users == 0 {
                        bail!("--users must be at least 1");
                    }
                    if !(spawn_rate > 0.0 && spawn_rate.is_finite()) {
                        bail!("--spawn-rate must be above 0, got {spawn_rate}");
                    }
                    LoadModel::Closed { users, spawn_rate }
                }
            };
            // The direct path's OpenAI-compatible mock takes any key.
            let api_key = keys.get(name).cloned().or_else(|| (name == "direct").then(|| "sk-flowbench".to_owned()));
            if self.target.is_some() && api_key.is_none() {
                bail!("--target needs an API key for the {name} scenario (--api-key {name}=app-...)");
            }
            scenarios.push(PlannedScenario {
                name,
                spec_mode: if name == "empty" { self.mode } else { Mode::Streaming },
                load,
                warmup: self.warmup.unwrap_or(warmup),
                duration: self.duration.unwrap_or(duration),
                api_key,
            });
        }
        let mock_script = self
            .mock_script
            .clone()
            .or_else(|| (self.profile == Profile::Capacity).then(|| crate::stack::workspace_root().join("fixtures/mock/fast.toml")));
        Ok(Plan {
            scenarios,
            window_s: self.window.as_secs(),
            timeout: self.timeout,
            seed: self.seed,
            inputs: self.inputs.clone(),
            target: self.target.clone(),
            mock_script,
            driver_threads: self.driver_threads,
            stamped: self.stamped,
            abort_after_chunks: self.abort_after_chunks,
        })
    }
}

/// How `flowbench run` ended.
#[derive(Debug)]
pub enum RunEnd {
    Done,
    Interrupted,
}

/// An error before any load was sent: exit code 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PreflightError(pub String);

/// Runs the plan and writes the report; prints the text report on stdout.
pub async fn execute(plan: Plan, json: Option<PathBuf>, markdown: Option<PathBuf>) -> anyhow::Result<RunEnd> {
    let mut embedded = None;
    let (url, keys, target_pid) = match &plan.target {
        Some(url) => (url.clone(), plan.scenarios.iter().map(|s| (s.name, s.api_key.clone().unwrap_or_default())).collect(), None),
        None => {
            let stack = EmbeddedStack::start(plan.mock_script.as_ref())?;
            let direct = plan.scenarios.iter().any(|s| s.protocol() == Protocol::OpenAi);
            let keys =
                plan.scenarios.iter().map(|s| (s.name, s.api_key.clone().unwrap_or_else(|| stack.api_key(s.name)))).collect::<Vec<_>>();
            let url = if direct { stack.mock_llm_url() } else { stack.server_url.clone() };
            let out = (url, keys, Some(stack.child.id()));
            embedded = Some(stack);
            out
        }
    };
    let target = Target::resolve(&url).await.map_err(|e| PreflightError(format!("{e:#}")))?;
    let target_pid = target_pid.or_else(|| crate::health::local_pid_listening_on(target.addr));
    for (name, key) in &keys {
        preflight(&target, name, key).await?;
    }
    let (cancel, signal) = cancel_on_ctrl_c("flowbench: interrupted; finishing the report");
    let mut report = Report {
        schema: SCHEMA.to_owned(),
        schema_version: SCHEMA_VERSION,
        flowbench_version: env!("CARGO_PKG_VERSION").to_owned(),
        started_at_unix: std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        interrupted: false,
        target: TargetInfo {
            url: url.clone(),
            embedded: embedded.is_some(),
            mock_script: plan.mock_script.as_ref().map(|p| p.display().to_string()),
        },
        machine: Machine::here(),
        scenarios: Vec::new(),
    };
    for (scenario, (_, key)) in plan.scenarios.iter().zip(&keys) {
        if cancel.is_cancelled() {
            break;
        }
        let spec = RunSpec {
            mode: scenario.spec_mode,
            api_key: bearer(key)?,
            load: scenario.load,
            warmup: scenario.warmup,
            duration: scenario.duration,
            timeout: plan.timeout,
            inputs: plan.inputs.clone(),
            seed: plan.seed,
            protocol: scenario.protocol(),
            stamped: plan.stamped,
            abort_after_chunks: plan.abort_after_chunks,
        };
        let live = Arc::new(Live::default());
        let progress = Progress::start(scenario.name, scenario.warmup + scenario.duration, live.clone());
        let health = HealthMonitor::start(target_pid, plan.driver_threads);
        let result = driver::run(spec, target.clone(), live, cancel.clone()).await;
        let health = health.finish().await;
        progress.finish();
        let load = LoadParams {
            model: scenario.load,
            warmup_s: scenario.warmup.as_secs_f64(),
            duration_s: scenario.duration.as_secs_f64(),
            measured_s: 0.0,
            window_s: plan.window_s,
            timeout_s: plan.timeout.as_secs_f64(),
            seed: plan.seed,
        };
        report.scenarios.push(ScenarioReport::build(scenario.name, scenario.spec_mode, load, &result, health));
        report.interrupted |= result.interrupted;
    }
    signal.abort();
    if let Some(stack) = embedded {
        stack.stop();
    }
    print!("{}", report.to_text());
    if let Some(path) = json {
        std::fs::write(&path, serde_json::to_vec_pretty(&report)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = markdown {
        std::fs::write(&path, report.to_markdown()).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(if report.interrupted { RunEnd::Interrupted } else { RunEnd::Done })
}

/// A token cancelled on the first Ctrl-C (saying `message` on stderr), and
/// the task that waits for it (abort it when the run is over).
pub(crate) fn cancel_on_ctrl_c(message: &'static str) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\n{message}");
            ctrl_c.cancel();
        }
    });
    (cancel, signal)
}

/// Checks the target answers and accepts the key before any load.
pub async fn preflight(target: &Target, scenario: &str, key: &str) -> anyhow::Result<()> {
    let header = bearer(key).map_err(|_| PreflightError(format!("{scenario}: the API key is not a valid header value")))?;
    let mut conn = Conn::new();
    // The direct path is an OpenAI base URL; the rest are Dify servers.
    let path = if scenario == "direct" { "/models" } else { "/v1/parameters" };
    let response = tokio::time::timeout(Duration::from_secs(10), conn.send(target, target.get(path, &header)))
        .await
        .map_err(|_| PreflightError(format!("target {} did not answer within 10 s", target.base_url)))?
        .map_err(|e| PreflightError(format!("target {} is down or refused the connection: {e}", target.base_url)))?;
    match response.status().as_u16() {
        200 => Ok(()),
        401 => Err(PreflightError(format!("{scenario}: target {} rejected the API key (401)", target.base_url)).into()),
        status => Err(PreflightError(format!("{scenario}: GET {path} on {} answered {status}", target.base_url)).into()),
    }
}

/// The mocked stack as a child process (`flowbench up`).
pub(crate) struct EmbeddedStack {
    pub(crate) child: Child,
    pub(crate) server_url: String,
    info: serde_json::Value,
}

impl EmbeddedStack {
    pub(crate) fn start(mock_script: Option<&PathBuf>) -> anyhow::Result<Self> {
        Self::start_with(mock_script, &[])
    }

    /// With more flags for `flowbench up`.
    pub(crate) fn start_with(mock_script: Option<&PathBuf>, up_args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the flowbench binary")?;
        let mut command = Command::new(exe);
        command.arg("up").args(up_args).stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", "warn");
        if let Some(script) = mock_script {
            command.arg("--mock-script").arg(script);
        }
        let mut child = command.spawn().context("starting the embedded stack")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).context("reading the stack's address")?;
        let info: serde_json::Value = serde_json::from_str(&line).with_context(|| format!("the embedded stack printed {line:?}"))?;
        let server_url = info["server_url"].as_str().context("no server_url")?.to_owned();
        Ok(Self { child, server_url, info })
    }

    /// The mock LLM's OpenAI base URL (`http://…/v1`).
    pub(crate) fn mock_llm_url(&self) -> String {
        self.info["mock_llm_url"].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn api_key(&self, scenario: &str) -> String {
        self.info["apps"][scenario]["api_key"].as_str().unwrap_or_default().to_owned()
    }

    pub(crate) fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for EmbeddedStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

/// The live progress line on stderr, when it is a terminal.
struct Progress {
    bar: Option<indicatif::ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    fn start(name: &'static str, total: Duration, live: Arc<Live>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None, task: None };
        }
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>6} [{bar:30}] {elapsed}/{duration} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name);
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                ticker.set_position(start.elapsed().as_millis() as u64);
                ticker.set_message(format!(
                    "sent {} done {} errors {} events {}",
                    live.sent.load(Ordering::Relaxed),
                    live.done.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                    live.events.load(Ordering::Relaxed)
                ));
            }
        });
        Self { bar: Some(bar), task: Some(task) }
    }

    fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
