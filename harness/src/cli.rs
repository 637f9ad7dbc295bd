//! Every flag of `flowbench`, as clap types, and every check of them: a
//! bad flag is clap's error naming it (exit 2) before anything runs. A
//! command's flags become a validated plan here; `cmd/` only carries it out.

use crate::load::driver::Mode;
use crate::load::driver::Protocol;
use crate::load::schedule::LoadModel;
use crate::report::ab::AbScenario;
use clap::{Args, Parser, Subcommand, ValueEnum};
use mock::Script;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// What each exit code of `flowbench` means (README.md, "Exit codes").
pub mod exit {
    /// Done; the figures are valid (a `Disturbed` run says so in its report).
    pub const OK: i32 = 0;
    /// The command failed, or its verdict did (soak: memory grew or runs leaked).
    pub const FAILED: i32 = 1;
    /// Nothing was measured: a bad flag, or a target that is down, refused
    /// or rejected the key.
    pub const USAGE: i32 = 2;
    /// The run finished but its verdict is INVALID (the driver, not the
    /// target, was the bottleneck): the figures must not be trusted.
    pub const INVALID: i32 = 3;
    /// The run is valid and a `--threshold` was crossed (or had nothing to
    /// measure): the target is slower than asked.
    pub const THRESHOLD: i32 = 4;
    /// Ctrl-C; the report of what ran is printed and written.
    pub const INTERRUPTED: i32 = 130;
}

/// Flags that are each valid but wrong together; exit 2 with clap's format.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

macro_rules! usage {
    ($($arg:tt)*) => { UsageError(format!($($arg)*)) };
}

#[derive(Debug, Parser)]
#[command(name = "flowbench", version, about = "Benchmark suite for Dify-compatible streaming workflow APIs")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Drive load and print the seed's report (embedded stack, or --target).
    Run(Box<RunArgs>),
    /// Compare two targets loaded at the same time, slice by slice, for the pre-merge gate.
    Ab(Box<AbArgs>),
    /// Many streams for a long time: RSS and live runs each second, growth verdict.
    Soak(Box<SoakArgs>),
    /// Start the mocked stack and print its URLs and API keys as one JSON line.
    Up(Box<UpArgs>),
    /// Serve a bare axum handler for blocking runs: the yardstick for Start→End QPS.
    Bare(BareArgs),
    /// Run the OpenAI-compatible mock LLM alone.
    Mock(MockArgs),
}

/// `flowbench up`.
#[derive(Debug, Args)]
pub struct UpArgs {
    /// Address for the workflow server.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub server_addr: SocketAddr,
    /// Address for the mock LLM.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub mock_addr: SocketAddr,
    #[command(flatten)]
    pub script: ScriptArgs,
    /// Run records the server keeps for GET /v1/workflows/run/{id}; the oldest go first.
    #[arg(long, value_parser = at_least_one_usize)]
    pub max_stored_runs: Option<usize>,
    /// Gate self-test only: CPU the server spins per run request, e.g. 3us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_REQUEST", value_parser = humantime::parse_duration)]
    pub inject_busy_per_request: Option<Duration>,
    /// Gate self-test only: CPU the server spins per streamed event, e.g. 1us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_EVENT", value_parser = humantime::parse_duration)]
    pub inject_busy_per_event: Option<Duration>,
}

/// `flowbench bare`.
#[derive(Debug, Args)]
pub struct BareArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5002")]
    pub listen: SocketAddr,
}

/// `flowbench mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:5004")]
    pub listen: SocketAddr,
    #[command(flatten)]
    pub script: ScriptArgs,
}

/// The mock's script: a TOML file, then these flags on top.
#[derive(Debug, Args)]
pub struct ScriptArgs {
    /// Mock script file (TOML), e.g. fixtures/mock/dify.toml.
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// Time to first token, e.g. 200ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub ttft: Option<Duration>,
    /// Delay after each token, e.g. 50ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub inter_token_delay: Option<Duration>,
    /// Uniform extra delay in [0, jitter) per wait, e.g. 5ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub jitter: Option<Duration>,
    /// Seed for the jitter.
    #[arg(long)]
    pub seed: Option<u64>,
}

impl ScriptArgs {
    pub fn build(&self) -> anyhow::Result<Script> {
        let mut script = match &self.mock_script {
            Some(path) => Script::from_file(path)?,
            None => Script::default(),
        };
        if let Some(d) = self.ttft {
            script.time_to_first_token = d;
        }
        if let Some(d) = self.inter_token_delay {
            script.inter_token_delay = d;
        }
        if let Some(d) = self.jitter {
            script.jitter = d;
        }
        if let Some(seed) = self.seed {
            script.seed = seed;
        }
        Ok(script)
    }
}

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
    #[arg(long, value_name = "blocking|streaming", value_parser = parse_mode, default_value = "blocking")]
    pub mode: Mode,
    /// Closed model: virtual users.
    #[arg(long, conflicts_with = "rate", value_parser = clap::value_parser!(u32).range(1..))]
    pub users: Option<u32>,
    /// Closed model: users started per second.
    #[arg(long, conflicts_with = "rate", value_parser = positive)]
    pub spawn_rate: Option<f64>,
    /// Open model: arrivals per second (latency counts from each intended send time).
    #[arg(long, value_parser = positive)]
    pub rate: Option<f64>,
    /// Open model: Poisson arrivals instead of evenly spaced ones.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Open model: connections serving the arrivals.
    #[arg(long, requires = "rate", default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: u32,
    /// Measured time per scenario, e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before the measured phase, sent but left out of the figures.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Window for the Max/Min rates, in whole seconds.
    #[arg(long, value_parser = whole_seconds, default_value = "5s")]
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
    /// A Dify-compatible server, `http://` or `https://`, with or without a
    /// trailing `/v1`; without it, flowbench starts its embedded stack.
    #[arg(long)]
    pub target: Option<String>,
    /// The app's API key with --target: `KEY` for one scenario, `empty=KEY` / `llm=KEY` for each.
    #[arg(long = "api-key", value_name = "[SCENARIO=]KEY")]
    pub api_keys: Vec<String>,
    /// A pass/fail criterion, as k6's: `[SCENARIO:]FIGURE OP VALUE`, e.g.
    /// `ttfe_p95<200ms`, `error_rate<0.1%`, `llm:qps>=20`; FIGURE is a
    /// latency `<metric>_<avg|min|max|p50|p90|p95|p99|p999>`, `error_rate`,
    /// `qps` or `events_per_s`. Crossed: exit code 4. Repeatable.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = |s: &str| s.parse::<crate::report::thresholds::Threshold>())]
    pub thresholds: Vec<crate::report::thresholds::Threshold>,
    /// A header sent with every request, e.g. a gateway's; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// With an https:// target: accept any certificate (self-signed test clusters).
    #[arg(long, requires = "target", conflicts_with = "ca_cert")]
    pub insecure: bool,
    /// With --target: a process of the target beyond the one listening (and
    /// its descendants), e.g. a worker queue or a database; repeatable.
    #[arg(long = "target-pid", value_name = "PID", requires = "target")]
    pub target_pids: Vec<u32>,
    /// With --target: the target's CPU is this cgroup's (a container's or a
    /// systemd unit's; relative paths are under /sys/fs/cgroup).
    #[arg(long, value_name = "PATH", requires = "target", conflicts_with = "target_pids")]
    pub target_cgroup: Option<PathBuf>,
    /// With an https:// target: trust the certificates in this PEM file
    /// instead of the Mozilla roots.
    #[arg(long, value_name = "FILE", requires = "target")]
    pub ca_cert: Option<PathBuf>,
    /// Request inputs as JSON (default: {"question": one of Dify's five questions}).
    #[arg(long, value_parser = parse_inputs)]
    pub inputs: Option<serde_json::Value>,
    /// The embedded mock's script (default by profile: Dify's timing, or fixtures/mock/fast.toml).
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1, value_parser = at_least_one_usize)]
    pub driver_threads: usize,
    /// The mock stamps each chunk with its emit time (`stamp = true`, e.g.
    /// fixtures/mock/stamped.toml): record emit → receipt per text chunk.
    #[arg(long)]
    pub stamped: bool,
    /// Leave every stream after this many text chunks, as a client that
    /// goes away mid-answer; such requests end `aborted` (an error class).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub abort_after_chunks: Option<u32>,
    /// After a stream's terminal event (`workflow_finished`, `error`), a
    /// body still open (real Dify holds it about 1 s): `close` the
    /// connection, as a client that has its answer does, or `drain` it and
    /// report the tail (`stream_tail_ms`). The duration ends at the
    /// terminal event either way.
    #[arg(long, value_enum, default_value_t = AfterTerminalArg::Close)]
    pub after_terminal: AfterTerminalArg,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum AfterTerminalArg {
    Close,
    Drain,
}

impl From<AfterTerminalArg> for crate::load::driver::AfterTerminal {
    fn from(arg: AfterTerminalArg) -> Self {
        match arg {
            AfterTerminalArg::Close => Self::Close,
            AfterTerminalArg::Drain => Self::Drain,
        }
    }
}

fn parse_header(text: &str) -> Result<(http::HeaderName, http::HeaderValue), String> {
    let (name, value) = text.split_once(':').ok_or_else(|| format!("{text:?} is not NAME:VALUE"))?;
    let name = http::HeaderName::try_from(name.trim()).map_err(|_| format!("{:?} is not a header name", name.trim()))?;
    let value = http::HeaderValue::try_from(value.trim()).map_err(|_| format!("the value of {name} holds characters a header cannot"))?;
    Ok((name, value))
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
    pub after_terminal: crate::load::driver::AfterTerminal,
    pub target_options: crate::load::client::TargetOptions,
    pub target_pids: Vec<u32>,
    pub target_cgroup: Option<PathBuf>,
    pub thresholds: Vec<crate::report::thresholds::Threshold>,
}

impl RunArgs {
    /// The flags that no parser of one flag can check (keys per scenario).
    pub fn plan(&self) -> Result<Plan, UsageError> {
        let names: &[&'static str] = match self.scenario {
            ScenarioArg::Empty => &["empty"],
            ScenarioArg::Llm => &["llm"],
            ScenarioArg::All => &["empty", "llm"],
            ScenarioArg::Direct => &["direct"],
        };
        let mut keys = std::collections::HashMap::new();
        for given in &self.api_keys {
            match given.split_once('=') {
                Some((scenario @ ("empty" | "llm" | "direct"), key)) => keys.insert(scenario, key.to_owned()),
                Some((other, _)) if !other.starts_with("app-") => {
                    return Err(usage!("--api-key {given:?}: scenario must be empty, llm or direct"));
                }
                _ if names.len() == 1 => keys.insert(names[0], given.clone()),
                _ => return Err(usage!("--api-key {given:?}: with --scenario all, give empty=KEY and llm=KEY")),
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
                Some(rate) => LoadModel::Open { rate, poisson: self.poisson, connections: self.connections, seed: self.seed },
                None => LoadModel::Closed { users: self.users.unwrap_or(users), spawn_rate: self.spawn_rate.unwrap_or(spawn_rate) },
            };
            // The direct path's OpenAI-compatible mock takes any key.
            let api_key = keys.get(name).cloned().or_else(|| (name == "direct").then(|| "sk-flowbench".to_owned()));
            if self.target.is_some() && api_key.is_none() {
                return Err(usage!("--target needs an API key for the {name} scenario (--api-key {name}=app-...)"));
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
            .or_else(|| (self.profile == Profile::Capacity).then(|| mock::workspace_root().join("fixtures/mock/fast.toml")));
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
            after_terminal: self.after_terminal.into(),
            target_pids: self.target_pids.clone(),
            thresholds: self.thresholds.clone(),
            target_cgroup: self.target_cgroup.clone(),
            target_options: crate::load::client::TargetOptions {
                headers: self.headers.clone(),
                insecure: self.insecure,
                ca_cert: self.ca_cert.clone(),
            },
        })
    }
}

#[derive(Debug, Clone, Args)]
pub struct AbArgs {
    /// Side A (the base), a Dify-compatible server.
    #[arg(long)]
    pub a: String,
    /// Side B (the head).
    #[arg(long)]
    pub b: String,
    #[arg(long, value_name = "empty|llm", value_parser = parse_ab_scenario)]
    pub scenario: AbScenario,
    /// Response mode of the `empty` scenario (`llm` always streams).
    #[arg(long, value_name = "blocking|streaming", value_parser = parse_mode, default_value = "blocking")]
    pub mode: Mode,
    /// The app's API key, the same on both sides.
    #[arg(long = "api-key")]
    pub api_key: String,
    /// Closed model: concurrent users on each side during a slice. With
    /// `--rate`: the connections serving each side's arrivals.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub users: u32,
    /// Open model instead of closed: this many requests per second on each
    /// side, evenly spaced, the two sides half a period apart so their
    /// requests take turns. A light rate measures latency without queueing
    /// (the gate's TTFE).
    #[arg(long, value_parser = positive)]
    pub rate: Option<f64>,
    /// With `--rate`: Poisson arrivals, each side its own seed (requests meet
    /// at random) instead of evenly spaced turns.
    #[arg(long, requires = "rate")]
    pub poisson: bool,
    /// Measured time per slice.
    #[arg(long, value_parser = nonzero_duration, default_value = "1s")]
    pub slice: Duration,
    /// Sent at the start of each slice and left out (fresh connections warm up).
    #[arg(long, value_parser = humantime::parse_duration, default_value = "200ms")]
    pub settle: Duration,
    /// Slices (each one paired observation).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..))]
    pub slices: u32,
    /// A request (or stream) not done after this is a timeout.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "10s")]
    pub timeout: Duration,
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1, value_parser = at_least_one_usize)]
    pub driver_threads: usize,
    /// Write every slice's figures here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// A header sent with every request to both sides; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// https:// sides: accept any certificate.
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,
    /// https:// sides: trust the certificates in this PEM file.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// After a stream's terminal event, close a body still open or drain it
    /// (see `flowbench run --after-terminal`).
    #[arg(long, value_enum, default_value_t = AfterTerminalArg::Close)]
    pub after_terminal: AfterTerminalArg,
}

impl AbArgs {
    /// How both sides are reached.
    pub fn target_options(&self) -> crate::load::client::TargetOptions {
        crate::load::client::TargetOptions { headers: self.headers.clone(), insecure: self.insecure, ca_cert: self.ca_cert.clone() }
    }
}

#[derive(Debug, Clone, Args)]
pub struct SoakArgs {
    /// Measured time after the warm-up, e.g. 30m.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30m")]
    pub duration: Duration,
    /// Concurrent streams (closed-model users on the llm scenario).
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    pub streams: u32,
    /// Ramp-up and warm-up, left out of the growth figure.
    #[arg(long, value_parser = humantime::parse_duration, default_value = "30s")]
    pub warmup: Duration,
    /// The mock's script [default: fixtures/mock/soak.toml].
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// Run records the server keeps (its store is capped by design; a small
    /// cap fills during the warm-up, so what grows after it is a leak).
    #[arg(long, default_value_t = 10_000, value_parser = at_least_one_usize)]
    pub max_stored_runs: usize,
    /// RSS growth after warm-up above this (in %) fails the soak.
    #[arg(long, default_value_t = 5.0)]
    pub max_growth: f64,
    /// Write the samples and the verdict here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1, value_parser = at_least_one_usize)]
    pub driver_threads: usize,
}

fn parse_mode(text: &str) -> Result<Mode, String> {
    match text {
        "blocking" => Ok(Mode::Blocking),
        "streaming" => Ok(Mode::Streaming),
        _ => Err("one of blocking, streaming".into()),
    }
}

fn parse_ab_scenario(text: &str) -> Result<AbScenario, String> {
    match text {
        "empty" => Ok(AbScenario::Empty),
        "llm" => Ok(AbScenario::Llm),
        _ => Err("one of empty, llm".into()),
    }
}

/// A finite number above 0.
fn positive(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(v) if v > 0.0 && v.is_finite() => Ok(v),
        Ok(_) => Err("must be above 0".into()),
        Err(e) => Err(e.to_string()),
    }
}

fn at_least_one_usize(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".into()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}

fn nonzero_duration(text: &str) -> Result<Duration, String> {
    match humantime::parse_duration(text) {
        Ok(d) if d.is_zero() => Err("must be longer than 0".into()),
        Ok(d) => Ok(d),
        Err(e) => Err(e.to_string()),
    }
}

/// A whole number of seconds, at least one.
fn whole_seconds(text: &str) -> Result<Duration, String> {
    let d = nonzero_duration(text)?;
    if d.subsec_nanos() != 0 {
        return Err("must be a whole number of seconds".into());
    }
    Ok(d)
}
