//! Every flag of `flowbench`, as clap types, and every check of them: a
//! bad flag is clap's error naming it (exit 2) before anything runs. A
//! command's flags become a validated plan here; `cmd/` only carries it out.

use crate::load::driver::{InputOrder, InputSet, Mode, Protocol};
use crate::load::schedule::{LoadModel, Stage};
use crate::report::ab::AbScenario;
use crate::scenario::{FileLoad, FileScenario, ScenarioFile};
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
    /// Saved reports read again: one printed, or each later one against the first, figure by figure.
    Report(ReportArgs),
    /// One server replica of `flowbench up --replicas N` (started by it).
    #[command(hide = true)]
    Replica(Box<ReplicaArgs>),
    /// Merge the JSON reports of a load's shards (`run --shard I/N`) into the report one driver would print.
    Merge(MergeArgs),
}

/// `flowbench merge`.
#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shards' `flowbench run --json` reports (all N of them).
    #[arg(required = true, num_args = 2.., value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write the merged JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the merged Markdown tables here.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write the merged figures as Bencher Metric Format JSON here.
    #[arg(long)]
    pub bmf: Option<PathBuf>,
    /// Write the merged report as one self-contained HTML page here.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// `flowbench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// `flowbench run --json` (or `merge --json`) reports; the first is the baseline.
    #[arg(required = true, num_args = 1.., value_name = "REPORT.json")]
    pub reports: Vec<PathBuf>,
    /// Write what is printed (Markdown) here too.
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write one HTML page with every report's tables and plots, overlaid.
    #[arg(long)]
    pub html: Option<PathBuf>,
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
    /// Where the server keeps its runs: memory (per process), sqlite:PATH
    /// (a durable file) or postgres://… (shared by replicas).
    #[arg(long, default_value = "memory")]
    pub store: String,
    /// Server processes sharing the server address (SO_REUSEPORT), as the
    /// seed's three replicas; more than one needs a shared store.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub replicas: u16,
    #[command(flatten)]
    pub inject: InjectArgs,
}

impl UpArgs {
    /// Flags that are each valid but wrong together.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.replicas > 1 && self.store == "memory" {
            return Err(usage!(
                "--replicas {} with --store memory: each replica would hold only its own runs, and GET and stop would miss on the others; give --store sqlite:PATH or postgres://…",
                self.replicas
            ));
        }
        Ok(())
    }
}

/// Gate self-test only: CPU the server spins, to prove the gate sees it.
#[derive(Debug, Args, Clone, Copy)]
pub struct InjectArgs {
    /// Gate self-test only: CPU the server spins per run request, e.g. 3us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_REQUEST", value_parser = humantime::parse_duration)]
    pub inject_busy_per_request: Option<Duration>,
    /// Gate self-test only: CPU the server spins per streamed event, e.g. 1us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_EVENT", value_parser = humantime::parse_duration)]
    pub inject_busy_per_event: Option<Duration>,
}

/// `flowbench replica`: one server process of `up --replicas N`.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// The address the replicas share.
    #[arg(long)]
    pub listen: SocketAddr,
    /// The mock LLM's base URL.
    #[arg(long)]
    pub provider_base_url: String,
    #[arg(long)]
    pub store: String,
    #[arg(long, value_parser = at_least_one_usize)]
    pub max_stored_runs: Option<usize>,
    #[command(flatten)]
    pub inject: InjectArgs,
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

/// A profile is a set of scenario files (`fixtures/scenarios/`), built in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Profile {
    /// The seed's conditions: 10 users spawned at 2/s, 60 s per scenario, Dify's mock timing
    /// (seed-empty.toml and seed-llm.toml).
    Dify,
    /// Enough load to find the ceiling: 64 users on `empty`, 1,000 streams on `llm` with a fast mock
    /// (capacity.toml).
    Capacity,
}

impl Profile {
    /// The profile's files: (name, text); their relative paths are under
    /// the workspace's `fixtures/scenarios/`.
    fn files(self) -> &'static [(&'static str, &'static str)] {
        match self {
            Profile::Dify => &[
                ("fixtures/scenarios/seed-empty.toml", include_str!("../../fixtures/scenarios/seed-empty.toml")),
                ("fixtures/scenarios/seed-llm.toml", include_str!("../../fixtures/scenarios/seed-llm.toml")),
            ],
            Profile::Capacity => &[("fixtures/scenarios/capacity.toml", include_str!("../../fixtures/scenarios/capacity.toml"))],
        }
    }
}

/// `flowbench run` flags; a profile or scenario files set the load, flags override them.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// `all`, or one scenario by name: a profile's `empty`, `llm` or
    /// `direct` (the mock LLM straight, OpenAI protocol, no server: the
    /// yardstick for what the relay adds; with --target, the OpenAI base
    /// URL), or a scenario file's.
    #[arg(long, value_name = "NAME", default_value = "all")]
    pub scenario: String,
    #[arg(long, value_enum, default_value = "dify")]
    pub profile: Profile,
    /// A scenario file (TOML: apps, inputs, stages, think time,
    /// thresholds; see fixtures/scenarios/), instead of a profile; repeatable.
    #[arg(long = "scenario-file", value_name = "FILE", conflicts_with = "profile")]
    pub scenario_files: Vec<PathBuf>,
    /// A few seconds per scenario, for a smoke run (stages are scaled to 6 s).
    #[arg(long)]
    pub quick: bool,
    /// Response mode of every app [default: the file's; a profile's `empty`
    /// is blocking, and `llm` always streams].
    #[arg(long, value_name = "blocking|streaming", value_parser = parse_mode)]
    pub mode: Option<Mode>,
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
    #[arg(long)]
    pub poisson: bool,
    /// Open model: connections serving the arrivals [default: 256].
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub connections: Option<u32>,
    /// Measured time per scenario, e.g. 60s.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,
    /// Warm-up before the measured phase, sent but left out of the figures.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub warmup: Option<Duration>,
    /// Window for the Max/Min rates, in whole seconds.
    #[arg(long, value_parser = whole_seconds, default_value = "5s")]
    pub window: Duration,
    /// A request (or stream) not done after this is a timeout [default: 60s].
    #[arg(long, value_parser = humantime::parse_duration)]
    pub timeout: Option<Duration>,
    /// Seeds the inputs drawn, Poisson arrivals and think times [default: 1].
    #[arg(long)]
    pub seed: Option<u64>,
    /// Write the versioned JSON report here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write the Markdown tables here (for a pull-request comment).
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// Write each scenario's figures as Bencher Metric Format JSON here
    /// (for Bencher or a dashboard of one's own).
    #[arg(long)]
    pub bmf: Option<PathBuf>,
    /// Write the report as one self-contained HTML page here: the tables,
    /// latency distributions and per-second plots (no script, no network).
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// A Dify-compatible server, `http://` or `https://`, with or without a
    /// trailing `/v1`; without it, flowbench starts its embedded stack.
    #[arg(long)]
    pub target: Option<String>,
    /// An app's API key: `KEY` when one app runs, else `NAME=KEY` for an app
    /// or a one-app scenario by name (`empty=KEY`, `llm=KEY`); needed with
    /// --target unless the scenario file gives `key` or `key_env`.
    #[arg(long = "api-key", value_name = "[NAME=]KEY")]
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
    /// Every app's request inputs, as JSON [default: the file's; else
    /// {"question": one of Dify's five questions}].
    #[arg(long, value_parser = parse_inputs)]
    pub inputs: Option<serde_json::Value>,
    /// The embedded mock's script [default: the file's `mock_script`; else Dify's timing].
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
    /// Run the I-th of N equal parts of the load (users, rate and
    /// connections divided; seeds distinct), one per machine or pod; join
    /// their --json reports with `flowbench merge`.
    #[arg(long, value_name = "I/N", value_parser = |s: &str| s.parse::<crate::report::Shard>())]
    pub shard: Option<crate::report::Shard>,
    /// Start the load at this instant, so every shard starts together:
    /// RFC 3339 (`2026-12-03T18:00:00Z`) or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
}

fn parse_start_at(text: &str) -> Result<std::time::SystemTime, String> {
    if let Ok(secs) = text.parse::<u64>() {
        return Ok(std::time::UNIX_EPOCH + Duration::from_secs(secs));
    }
    humantime::parse_rfc3339_weak(text).map_err(|e| format!("{text:?} is neither RFC 3339 nor Unix seconds: {e}"))
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
    pub name: String,
    /// At least one.
    pub apps: Vec<PlannedApp>,
    pub load: LoadModel,
    pub warmup: Duration,
    pub duration: Duration,
    pub protocol: Protocol,
}

/// One app of a planned scenario.
#[derive(Debug, Clone)]
pub struct PlannedApp {
    pub name: String,
    /// `None`: the embedded stack's key for `fixture`.
    pub key: Option<String>,
    pub fixture: String,
    pub path: Option<http::uri::PathAndQuery>,
    pub mode: Mode,
    pub weight: u32,
    pub inputs: InputSet,
}

/// Everything a run needs, validated in one place.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<PlannedScenario>,
    pub window_s: u64,
    pub timeout: Duration,
    pub seed: u64,
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
    pub shard: Option<crate::report::Shard>,
    pub start_at: Option<std::time::SystemTime>,
}

/// The flags' defaults where neither a flag nor a file sets a value.
const DEFAULT_USERS: u32 = 10;
const DEFAULT_SPAWN_RATE: f64 = 2.0;
const DEFAULT_DURATION: Duration = Duration::from_secs(60);
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
const DEFAULT_CONNECTIONS: u32 = 256;
/// `--quick`: the measured phase and the warm-up of each scenario.
const QUICK: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(1));

impl RunArgs {
    /// The scenario files (or the profile's) with the flags on top, checked.
    pub fn plan(&self) -> Result<Plan, UsageError> {
        let files = self.files()?;
        let mut mock_script = None;
        let mut timeout = None;
        let mut seed = None;
        let mut thresholds = Vec::new();
        let mut all: Vec<(String, FileScenario)> = Vec::new();
        for (origin, file) in files {
            merge_once(&mut timeout, file.timeout, "timeout", &origin)?;
            merge_once(&mut seed, file.seed, "seed", &origin)?;
            merge_once(&mut mock_script, file.mock_script, "mock_script", &origin)?;
            thresholds.extend(file.thresholds);
            for s in file.scenarios {
                if let Some((first, _)) = all.iter().find(|(_, o)| o.name == s.name) {
                    return Err(usage!("scenario {:?} is in {first} and in {origin}", s.name));
                }
                all.push((origin.clone(), s));
            }
        }
        for (flag, d) in [("--duration", self.duration), ("--warmup", self.warmup), ("--timeout", self.timeout)] {
            if d.is_some_and(|d| d > crate::scenario::MAX_DURATION) {
                return Err(usage!("{flag}: over a year"));
            }
        }
        let mut known: Vec<String> = Vec::new();
        for (_, s) in &all {
            known.extend(s.apps.iter().map(|a| a.name.clone()));
            if s.apps.len() == 1 {
                known.push(s.name.clone());
            }
        }
        let chosen: Vec<(String, FileScenario, Protocol)> = match self.scenario.as_str() {
            "all" => all.into_iter().map(|(o, s)| (o, s, Protocol::Dify)).collect(),
            // The mock LLM straight, at the `llm` scenario's load.
            "direct" if !all.iter().any(|(_, s)| s.name == "direct") => {
                let (origin, mut llm) = all
                    .into_iter()
                    .find(|(_, s)| s.name == "llm")
                    .ok_or_else(|| usage!("--scenario direct runs at the load of a scenario named llm; there is none"))?;
                llm.name = "direct".to_owned();
                let app = &mut llm.apps[0];
                app.name = "direct".to_owned();
                // The direct path's OpenAI-compatible mock takes any key.
                app.key = Some("sk-flowbench".to_owned());
                app.mode = Mode::Streaming;
                llm.apps.truncate(1);
                vec![(origin, llm, Protocol::OpenAi)]
            }
            name => {
                let names: Vec<String> = all.iter().map(|(_, s)| s.name.clone()).collect();
                let found = all.into_iter().find(|(_, s)| s.name == name);
                let (o, s) = found.ok_or_else(|| usage!("--scenario {name:?}: no such scenario; there are: all, {}", names.join(", ")))?;
                vec![(o, s, Protocol::Dify)]
            }
        };
        let keys = self.keys(&chosen, known)?;
        // A file's thresholds on a scenario that does not run are not
        // judged (`--threshold`s are: the user named them for this run).
        thresholds.retain(|t: &crate::report::thresholds::Threshold| {
            t.scenario.as_ref().is_none_or(|scope| chosen.iter().any(|(_, s, _)| &s.name == scope))
        });
        let seed = self.seed.or(seed.map(|(s, _)| s)).unwrap_or(1);
        // A shard's users draw their own inputs and think times.
        let seed = match self.shard {
            Some(shard) => seed ^ (u64::from(shard.index) << 32),
            None => seed,
        };
        let mut scenarios = Vec::new();
        for (origin, s, protocol) in chosen {
            let (mut load, warmup, duration) = self.load(&origin, &s, seed)?;
            if let Some(shard) = self.shard {
                load = load
                    .share(shard.index, shard.count)
                    .map_err(|e| usage!("--shard {}/{}: scenario {:?}: {e}", shard.index, shard.count, s.name))?;
            }
            let single = s.apps.len() == 1;
            let mut apps = Vec::new();
            for app in s.apps {
                let flag = keys.get(app.name.as_str()).or_else(|| keys.get(s.name.as_str()).filter(|_| single)).or(keys.get(""));
                let key = match (flag, app.key, &app.key_env) {
                    (Some(key), _, _) => Some(key.clone()),
                    (None, Some(key), _) => Some(key),
                    (None, None, Some(var)) => Some(std::env::var(var).map_err(|_| {
                        usage!("{origin} line {}: app {:?}: `key_env` names {var:?}, which is not set", app.line, app.name)
                    })?),
                    (None, None, None) => None,
                };
                if self.target.is_none() && key.is_none() && !mock::fixtures::APPS.iter().any(|f| f.name == app.fixture) {
                    let fixtures: Vec<&str> = mock::fixtures::APPS.iter().map(|f| f.name).collect();
                    return Err(usage!(
                        "{origin} line {}: app {:?} has no key, and the embedded stack has no fixture app {:?} (set `fixture` to one of: {})",
                        app.line,
                        app.name,
                        app.fixture,
                        fixtures.join(", ")
                    ));
                }
                if self.target.is_some() && key.is_none() {
                    return Err(usage!(
                        "--target needs an API key for app {:?} of scenario {:?} (--api-key {}=app-...)",
                        app.name,
                        s.name,
                        app.name
                    ));
                }
                // A profile's llm scenario always streams (the direct path too).
                let profile_llm = self.scenario_files.is_empty() && matches!(s.name.as_str(), "llm" | "direct");
                let mode = match self.mode {
                    Some(mode) if !profile_llm => mode,
                    _ => app.mode,
                };
                let inputs = match &self.inputs {
                    Some(inputs) => {
                        let chat = app.path.as_ref().is_some_and(crate::scenario::is_chat);
                        let row = crate::scenario::row(inputs.clone(), chat)
                            .map_err(|m| usage!("--inputs for app {:?} of scenario {:?}: {m}", app.name, s.name))?;
                        InputSet::new(&[row], InputOrder::RoundRobin)
                    }
                    None => app.inputs.unwrap_or_else(InputSet::questions),
                };
                apps.push(PlannedApp { name: app.name, key, fixture: app.fixture, path: app.path, mode, weight: app.weight, inputs });
            }
            scenarios.push(PlannedScenario { name: s.name, apps, load, warmup, duration, protocol });
        }
        thresholds.extend(self.thresholds.iter().cloned());
        Ok(Plan {
            scenarios,
            window_s: self.window.as_secs(),
            timeout: self.timeout.or(timeout.map(|(t, _)| t)).unwrap_or(Duration::from_secs(60)),
            seed,
            target: self.target.clone(),
            mock_script: self.mock_script.clone().or(mock_script.map(|(m, _)| m)),
            driver_threads: self.driver_threads,
            stamped: self.stamped,
            abort_after_chunks: self.abort_after_chunks,
            after_terminal: self.after_terminal.into(),
            target_pids: self.target_pids.clone(),
            thresholds,
            shard: self.shard,
            start_at: self.start_at,
            target_cgroup: self.target_cgroup.clone(),
            target_options: crate::load::client::TargetOptions {
                headers: self.headers.clone(),
                insecure: self.insecure,
                ca_cert: self.ca_cert.clone(),
            },
        })
    }

    /// The scenario files given, or the profile's, read.
    fn files(&self) -> Result<Vec<(String, ScenarioFile)>, UsageError> {
        if self.scenario_files.is_empty() {
            let dir = mock::workspace_root().join("fixtures/scenarios");
            return self
                .profile
                .files()
                .iter()
                .map(|(name, text)| ScenarioFile::parse(text, name, &dir).map(|f| ((*name).to_owned(), f)))
                .collect::<Result<_, _>>()
                .map_err(|e| usage!("{e}"));
        }
        self.scenario_files
            .iter()
            .map(|path| ScenarioFile::load(path).map(|f| (path.display().to_string(), f)).map_err(|e| usage!("{e}")))
            .collect()
    }

    /// `--api-key`s by the app or scenario they name (`""`: the one app
    /// that runs). A name may be any app or one-app scenario of the files,
    /// run or not, so one command line serves a file's scenarios one by one.
    fn keys(
        &self,
        chosen: &[(String, FileScenario, Protocol)],
        mut known: Vec<String>,
    ) -> Result<std::collections::HashMap<String, String>, UsageError> {
        let mut running: Vec<&str> = Vec::new();
        for (_, s, _) in chosen {
            running.extend(s.apps.iter().map(|a| a.name.as_str()));
            if s.apps.len() == 1 {
                running.push(&s.name);
            }
        }
        running.sort_unstable();
        running.dedup();
        known.extend(running.iter().map(|n| (*n).to_owned()));
        known.sort_unstable();
        known.dedup();
        let n_apps: usize = chosen.iter().map(|(_, s, _)| s.apps.len()).sum();
        let mut keys = std::collections::HashMap::new();
        for given in &self.api_keys {
            let (name, key) = match given.split_once('=') {
                Some((name, key)) if known.iter().any(|n| n == name) => (name.to_owned(), key.to_owned()),
                Some((other, _)) if !other.starts_with("app-") => {
                    return Err(usage!("--api-key {given:?}: {other:?} names no app or scenario; there are: {}", known.join(", ")));
                }
                _ if n_apps == 1 => (String::new(), given.clone()),
                _ => return Err(usage!("--api-key {given:?}: several apps run; give NAME=KEY for each of: {}", running.join(", "))),
            };
            if keys.contains_key(&name) {
                let shown = if name.is_empty() { "KEY" } else { name.as_str() };
                return Err(usage!("--api-key {shown}: given twice"));
            }
            keys.insert(name, key);
        }
        Ok(keys)
    }

    /// A scenario's load, warm-up and measured time, flags over the file.
    fn load(&self, origin: &str, s: &FileScenario, seed: u64) -> Result<(LoadModel, Duration, Duration), UsageError> {
        match &s.load {
            FileLoad::Flat { users, spawn_rate, rate, poisson, connections, duration, warmup } => {
                // A flag wins over --quick, and --quick over the file.
                let (duration, warmup) = if self.quick {
                    (self.duration.unwrap_or(QUICK.0), self.warmup.unwrap_or(QUICK.1))
                } else {
                    (self.duration.or(*duration).unwrap_or(DEFAULT_DURATION), self.warmup.or(*warmup).unwrap_or(DEFAULT_WARMUP))
                };
                if self.spawn_rate.is_some() && self.users.is_none() && rate.is_some() && self.rate.is_none() {
                    return Err(usage!(
                        "--spawn-rate: scenario {:?} ({origin} line {}) is open (`rate`); give --users too to make it closed",
                        s.name,
                        s.line
                    ));
                }
                let closed_flags = self.users.is_some() || self.spawn_rate.is_some();
                let rate = if closed_flags { None } else { self.rate.or(*rate) };
                if rate.is_some() && !s.think_time.is_zero() {
                    return Err(usage!(
                        "--rate: scenario {:?} ({origin} line {}) has a `think_time`, which an open load cannot have",
                        s.name,
                        s.line
                    ));
                }
                let load = match rate {
                    Some(rate) => LoadModel::Open {
                        rate,
                        poisson: self.poisson || poisson.unwrap_or(false),
                        connections: self.connections.or(*connections).unwrap_or(DEFAULT_CONNECTIONS),
                        seed,
                    },
                    None => {
                        if self.poisson || self.connections.is_some() {
                            return Err(usage!(
                                "--poisson and --connections are for an open load (--rate); scenario {:?} ({origin} line {}) is closed",
                                s.name,
                                s.line
                            ));
                        }
                        let users = self.users.or(*users).unwrap_or(DEFAULT_USERS);
                        let spawn_rate = self.spawn_rate.or(*spawn_rate).unwrap_or(DEFAULT_SPAWN_RATE);
                        if s.think_time.is_zero() {
                            LoadModel::Closed { users, spawn_rate }
                        } else {
                            // The same ramp as `Closed`, as stages, to carry the think time.
                            let ramp = f64::from(users) / spawn_rate;
                            let total = (warmup + duration).as_secs_f64();
                            let stages = vec![
                                Stage { duration_s: ramp, target: f64::from(users) },
                                Stage { duration_s: (total - ramp).max(0.0), target: f64::from(users) },
                            ];
                            LoadModel::RampingUsers { stages, think_time: s.think_time }
                        }
                    }
                };
                Ok((load, warmup, duration))
            }
            FileLoad::Stages { stages, open, poisson, connections, warmup } => {
                let given = [
                    ("--users", self.users.is_some()),
                    ("--spawn-rate", self.spawn_rate.is_some()),
                    ("--rate", self.rate.is_some()),
                    ("--duration", self.duration.is_some()),
                    ("--warmup", self.warmup.is_some()),
                ];
                if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                    return Err(usage!(
                        "{flag}: scenario {:?} ({origin} line {}) sets its load by stages; edit them instead",
                        s.name,
                        s.line
                    ));
                }
                if !open && (self.poisson || self.connections.is_some()) {
                    return Err(usage!(
                        "--poisson and --connections are for stages of rate; scenario {:?} ({origin} line {}) has stages of users",
                        s.name,
                        s.line
                    ));
                }
                let mut stages = stages.clone();
                let mut warmup = *warmup;
                let total: f64 = stages.iter().map(|s| s.duration_s).sum();
                if self.quick {
                    let scale = (QUICK.0 + QUICK.1).as_secs_f64() / total;
                    for stage in &mut stages {
                        stage.duration_s *= scale;
                    }
                    warmup = warmup.mul_f64(scale);
                }
                let total: f64 = stages.iter().map(|s| s.duration_s).sum();
                let duration = Duration::from_secs_f64(total).saturating_sub(warmup);
                let load = if *open {
                    LoadModel::RampingRate {
                        stages,
                        poisson: self.poisson || *poisson,
                        connections: self.connections.unwrap_or(*connections),
                        seed,
                    }
                } else {
                    LoadModel::RampingUsers { stages, think_time: s.think_time }
                };
                Ok((load, warmup, duration))
            }
        }
    }
}

/// A top-level key that two files may both set, if to the same value;
/// the slot keeps the file that set it first.
fn merge_once<T: PartialEq + std::fmt::Debug>(
    slot: &mut Option<(T, String)>,
    value: Option<T>,
    key: &str,
    origin: &str,
) -> Result<(), UsageError> {
    match (slot.as_ref(), value) {
        (Some((old, first)), Some(new)) if *old != new => {
            Err(usage!("`{key}` is {old:?} in {first} and {new:?} in {origin}: give it in one file, or as a flag"))
        }
        (None, Some(new)) => {
            *slot = Some((new, origin.to_owned()));
            Ok(())
        }
        _ => Ok(()),
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
    /// Write a self-contained HTML page of the slices here: each figure on
    /// both sides slice by slice, B's change, and the health of each slice.
    #[arg(long)]
    pub html: Option<PathBuf>,
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
    /// Write a self-contained HTML page here: RSS, live runs and the load
    /// over time, then the run's distributions and health.
    #[arg(long)]
    pub html: Option<PathBuf>,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> Plan {
        let cli = Cli::try_parse_from([&["flowbench", "run"], args].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        args.plan().unwrap()
    }

    /// The profiles are their files: the same scenarios, apps and loads.
    #[test]
    fn a_profile_is_its_scenario_files() {
        let files = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .flat_map(|n| {
                    ["--scenario-file".to_owned(), mock::workspace_root().join("fixtures/scenarios").join(n).display().to_string()]
                })
                .collect()
        };
        for (profile, names) in [("dify", &["seed-empty.toml", "seed-llm.toml"][..]), ("capacity", &["capacity.toml"][..])] {
            let by_profile = plan(&["--profile", profile]);
            let by_file = files(names);
            let by_file = plan(&by_file.iter().map(String::as_str).collect::<Vec<_>>());
            let shape = |p: &Plan| -> Vec<String> {
                p.scenarios
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {:?} {:?} {:?} {:?}",
                            s.name,
                            s.load,
                            s.warmup,
                            s.duration,
                            s.apps.iter().map(|a| (&a.name, a.mode)).collect::<Vec<_>>()
                        )
                    })
                    .collect()
            };
            assert_eq!(shape(&by_profile), shape(&by_file), "{profile}");
            assert_eq!(by_profile.mock_script, by_file.mock_script, "{profile}");
        }
        let dify = plan(&[]);
        assert_eq!(dify.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["empty", "llm"]);
        assert_eq!(dify.scenarios[0].load, LoadModel::Closed { users: 10, spawn_rate: 2.0 });
        assert_eq!((dify.scenarios[0].warmup, dify.scenarios[0].duration), (DEFAULT_WARMUP, DEFAULT_DURATION));
        assert!(plan(&["--profile", "capacity"]).mock_script.is_some_and(|p| p.ends_with("fixtures/mock/fast.toml")));
    }

    #[test]
    fn flags_override_a_files_flat_load_and_quick_scales_stages() {
        let p = plan(&["--scenario", "empty", "--rate", "50", "--connections", "8", "--duration", "3s", "--mode", "streaming"]);
        let s = &p.scenarios[0];
        assert_eq!(s.load, LoadModel::Open { rate: 50.0, poisson: false, connections: 8, seed: 1 });
        assert_eq!((s.duration, s.apps[0].mode), (Duration::from_secs(3), Mode::Streaming));
        let llm = plan(&["--scenario", "llm", "--mode", "blocking"]);
        assert_eq!(llm.scenarios[0].apps[0].mode, Mode::Streaming, "the llm scenario always streams");
        let direct = plan(&["--scenario", "direct"]);
        assert_eq!((direct.scenarios[0].protocol, direct.scenarios[0].apps[0].key.as_deref()), (Protocol::OpenAi, Some("sk-flowbench")));
        let mixed = mock::workspace_root().join("fixtures/scenarios/mixed.toml");
        let quick = plan(&["--quick", "--scenario-file", mixed.to_str().unwrap()]);
        let s = &quick.scenarios[0];
        let LoadModel::RampingUsers { stages, think_time } = &s.load else { panic!("{:?}", s.load) };
        let total: f64 = stages.iter().map(|st| st.duration_s).sum();
        assert!((total - 6.0).abs() < 1e-9, "{total}");
        assert!(((s.warmup + s.duration).as_secs_f64() - 6.0).abs() < 1e-6);
        assert_eq!(think_time.max_s, 0.15);
        assert_eq!(
            s.apps.iter().map(|a| (a.name.as_str(), a.weight, a.inputs.len())).collect::<Vec<_>>(),
            [("chat-like", 3, 8), ("lookup", 1, 1)]
        );
    }

    #[test]
    fn keys_may_name_any_app_of_the_files_and_nothing_else() {
        let file = mock::workspace_root().join("fixtures/scenarios/dify-real.toml");
        let file = file.to_str().unwrap();
        let base = ["--scenario-file", file, "--target", "http://127.0.0.1:9", "--scenario", "empty"];
        let p = plan(&[&base[..], &["--api-key", "empty=app-a", "--api-key", "http=app-b"]].concat());
        assert_eq!(p.scenarios.len(), 1);
        assert_eq!(p.scenarios[0].apps[0].key.as_deref(), Some("app-a"));
        let cli = Cli::try_parse_from([&["flowbench", "run"][..], &base[..], &["--api-key", "nope=app-c"]].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        let err = args.plan().unwrap_err().to_string();
        assert!(err.contains("\"nope\" names no app or scenario; there are: empty, empty-streaming, http"), "{err}");
        let cli = Cli::try_parse_from([&["flowbench", "run"][..], &base[..]].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        assert!(args.plan().unwrap_err().to_string().contains("--target needs an API key for app \"empty\""));
    }

    fn plan_err(args: &[&str]) -> String {
        let cli = Cli::try_parse_from([&["flowbench", "run"], args].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        args.plan().unwrap_err().to_string()
    }

    #[test]
    fn a_file_is_checked_against_the_flags_where_they_meet() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let two = write(
            "two.toml",
            "[[scenario]]\nname = \"a\"\nthresholds = [\"qps > 1\"]\n[[scenario.apps]]\nfixture = \"empty\"\n\n\
             [[scenario]]\nname = \"b\"\n[[scenario.apps]]\nkey_env = \"FLOWBENCH_TEST_NO_SUCH_VAR\"\n\n\
             [[scenario]]\nname = \"c\"\n[[scenario.apps]]\nname = \"lookup\"\n",
        );
        // A file's thresholds on a scenario that does not run are left out.
        let a = plan(&["--scenario-file", &two, "--scenario", "a"]);
        assert_eq!(a.thresholds.len(), 1);
        let b = plan(&["--scenario-file", &two, "--scenario", "b", "--api-key", "b=app-x"]);
        assert!(b.thresholds.is_empty(), "{:?}", b.thresholds);
        // key_env is read only for an app that runs without --api-key.
        assert_eq!(b.scenarios[0].apps[0].key.as_deref(), Some("app-x"));
        let err = plan_err(&["--scenario-file", &two, "--scenario", "b"]);
        assert!(err.contains("two.toml line 9: app \"b\": `key_env` names \"FLOWBENCH_TEST_NO_SUCH_VAR\", which is not set"), "{err}");
        // An app with no key on the embedded stack must be a fixture app.
        let err = plan_err(&["--scenario-file", &two, "--scenario", "c"]);
        assert!(err.contains("two.toml line 14: app \"lookup\" has no key, and the embedded stack has no fixture app \"lookup\""), "{err}");
        assert!(plan_err(&["--scenario-file", &two, "--scenario", "a", "--api-key", "a=x", "--api-key", "a=y"]).contains("given twice"));
        // A flag wins over --quick.
        let quick = plan(&["--scenario-file", &two, "--scenario", "a", "--quick", "--duration", "2s"]);
        assert_eq!((quick.scenarios[0].duration, quick.scenarios[0].warmup), (Duration::from_secs(2), QUICK.1));
        assert!(plan_err(&["--scenario-file", &two, "--scenario", "a", "--duration", "400days"]).contains("--duration: over a year"));
        // A chat app's --inputs must carry its query.
        let chat = write(
            "chat.toml",
            "[[scenario]]\nname = \"c\"\n[[scenario.apps]]\nkey = \"k\"\npath = \"/v1/chat-messages\"\ninputs = [{ query = \"q\" }]\n",
        );
        let err = plan_err(&["--scenario-file", &chat, "--inputs", r#"{"lang":"en"}"#]);
        assert!(err.contains("--inputs for app \"c\" of scenario \"c\": a chat app's row needs a `query`"), "{err}");
        assert!(plan(&["--scenario-file", &chat, "--inputs", r#"{"query":"hi"}"#]).scenarios[0].apps[0].inputs.len() == 1);
        // --rate cannot keep a file's think time; --spawn-rate alone cannot close an open load.
        let think = write("think.toml", "[[scenario]]\nname = \"t\"\nthink_time = \"1s\"\n[[scenario.apps]]\nfixture = \"empty\"\n");
        assert!(plan_err(&["--scenario-file", &think, "--rate", "5"]).contains("--rate: scenario \"t\" ("));
        let open = write("open.toml", "[[scenario]]\nname = \"o\"\nrate = 5.0\n[[scenario.apps]]\nfixture = \"empty\"\n");
        assert!(plan_err(&["--scenario-file", &open, "--spawn-rate", "5"]).contains("--spawn-rate: scenario \"o\" ("));
        // --mode sets every app of a file, a scenario named llm too (only a profile's llm always streams).
        let llm = write("llm.toml", "[[scenario]]\nname = \"llm\"\n[[scenario.apps]]\nfixture = \"llm\"\nmode = \"streaming\"\n");
        assert_eq!(plan(&["--scenario-file", &llm, "--mode", "blocking"]).scenarios[0].apps[0].mode, Mode::Blocking);
        let twice = plan_err(&["--scenario-file", &two, "--scenario-file", &two]);
        assert!(twice.contains("scenario \"a\" is in ") && twice.contains("two.toml and in "), "{twice}");
    }
}
