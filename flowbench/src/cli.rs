//! Every flag of `flowbench`, as clap types: a value that cannot parse is
//! clap's error naming it (exit 2). Flags shared by several commands are
//! declared once, as groups (`TargetTls`, `ReportFiles`, `DriverFlags`),
//! and flattened into each. What the flags mean together is `plan`'s.

use crate::load::driver::Mode;
use crate::report::ab::AbScenario;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

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
    /// The most load each scenario takes within an SLO: a ramp, then bisection, each step judged with 95% confidence.
    Capacity(Box<CapacityArgs>),
    /// Start the mocked stack and print its URLs and API keys as one JSON line.
    Up(Box<UpArgs>),
    /// Serve the bare axum handler: blocking runs answered at once (the Start→End yardstick), streaming ones by the bare SSE emitter (the relay's).
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
    #[command(flatten)]
    pub files: ReportFiles,
    #[command(flatten)]
    pub errors: ErrorBudget,
}

/// How many failures a run may have and still pass (`run`, `merge`).
#[derive(Debug, Clone, Args)]
pub struct ErrorBudget {
    /// The largest share of a scenario's measured requests that may fail
    /// (a fraction or a `%`; `aborted` ones, left on purpose, are not
    /// failures); above it the run exits 5. `100%` turns the check off.
    #[arg(long, value_name = "RATE", default_value = "1%", value_parser = parse_error_rate)]
    pub max_error_rate: f64,
}

fn parse_error_rate(text: &str) -> Result<f64, String> {
    crate::report::thresholds::parse_fraction(text)
        .filter(|v| *v <= 1.0)
        .ok_or_else(|| format!("{text:?} is not a share of requests: a fraction from 0 to 1 or a % from 0% to 100%"))
}

/// Where a run's report goes besides the terminal (`run` and `merge`).
#[derive(Debug, Clone, Default, Args)]
pub struct ReportFiles {
    /// Write the versioned JSON report here (every figure and the HDR histograms).
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
}

/// How requests reach an https:// target, and what they carry (`run`, `ab`).
#[derive(Debug, Clone, Default, Args)]
pub struct TargetTls {
    /// A header sent with every request, e.g. a gateway's; repeatable.
    #[arg(long = "header", value_name = "NAME:VALUE", value_parser = parse_header)]
    pub headers: Vec<(http::HeaderName, http::HeaderValue)>,
    /// With an https:// target: accept any certificate (self-signed test clusters).
    #[arg(long, conflicts_with = "ca_cert")]
    pub insecure: bool,
    /// With an https:// target: trust the certificates in this PEM file
    /// instead of the Mozilla roots.
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
}

/// The driver's own settings (`run`, `ab`, `soak`).
#[derive(Debug, Clone, Args)]
pub struct DriverFlags {
    /// Threads of the driver's runtime.
    #[arg(long, default_value_t = 1, value_parser = at_least_one_usize)]
    pub driver_threads: usize,
    /// After a stream's terminal event (`workflow_finished`, `error`), a
    /// body still open (real Dify holds it about 1 s): `close` the
    /// connection, as a client that has its answer does, or `drain` it and
    /// report the tail (`stream_tail_ms`). The duration ends at the
    /// terminal event either way.
    #[arg(long, value_enum, default_value_t = AfterTerminalArg::Close)]
    pub after_terminal: AfterTerminalArg,
    /// Do not check each stream's event grammar (nor keep its timeline):
    /// the driver's own ceiling, one JSON parse per event less.
    #[arg(long)]
    pub no_integrity: bool,
    /// Every request carries a W3C `traceparent` with a new trace id (the
    /// slowest requests' ids are in the report, to find them in the
    /// target's traces); this share of them is flagged sampled, e.g. `1%`.
    #[arg(long, value_parser = parse_proportion, default_value = "0")]
    pub trace_sample: f64,
    /// Send no `traceparent` (and keep no trace ids): the driver's own
    /// ceiling, one header less a request.
    #[arg(long, conflicts_with = "trace_sample")]
    pub no_traceparent: bool,
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
    /// seed's three replicas; more than one needs a shared store. Each is
    /// its own process, apart from the mock's, so the target's CPU is the
    /// servers' alone.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    pub replicas: u16,
    /// Each replica's runtime worker threads, as a pod's CPU limit would
    /// size it (`--replicas 3 --worker-threads 1`: the seed's 3 x 1 CPU)
    /// [default: one per core].
    #[arg(long, value_parser = at_least_one_usize)]
    pub worker_threads: Option<usize>,
    #[command(flatten)]
    pub inject: InjectArgs,
}

/// What the server is made to cost, for measuring: CPU it spins (the
/// gate's self-test, to prove the gate sees it), and `/metrics` recording
/// turned off.
#[derive(Debug, Args, Clone, Copy)]
pub struct InjectArgs {
    /// Gate self-test only: CPU the server spins per run request, e.g. 3us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_REQUEST", value_parser = humantime::parse_duration)]
    pub inject_busy_per_request: Option<Duration>,
    /// Gate self-test only: CPU the server spins per streamed event, e.g. 1us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_EVENT", value_parser = humantime::parse_duration)]
    pub inject_busy_per_event: Option<Duration>,
    /// The server records no run's figures for `GET /metrics` (request
    /// counts, latency histograms, events): to measure what they cost.
    #[arg(long, env = "FLOWBENCH_NO_METRICS")]
    pub no_metrics: bool,
}

/// `flowbench replica`: one server process of `up --replicas N`.
#[derive(Debug, Args)]
pub struct ReplicaArgs {
    /// Exit when stdin ends (`up` holds the other end of the pipe).
    #[arg(long)]
    pub exit_with_stdin: bool,
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
    /// The runtime's worker threads [default: one per core].
    #[arg(long, value_parser = at_least_one_usize)]
    pub worker_threads: Option<usize>,
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
    /// latency `<metric>_<avg|min|max|p50|p90|p95|p99|p999>` or a figure's
    /// key (`error_rate`, `qps`, `events_per_s`, `max_concurrent`,
    /// `target_cpu_us_per_request`, …). Crossed: exit code 4. Repeatable.
    #[arg(long = "threshold", value_name = "EXPR", value_parser = |s: &str| s.parse::<crate::report::thresholds::Threshold>())]
    pub thresholds: Vec<crate::report::thresholds::Threshold>,
    /// Each request's own limits, for goodput (the rate of requests that
    /// succeeded within all of them), e.g. `ttfe<200ms,duration<5s`; a
    /// latency by its key (`ttfb`, `ttfe`, `first_text_chunk`, `duration`,
    /// `service_time`, …) [default: a scenario file's `[slo] request`].
    #[arg(long, value_name = "LIMITS", value_parser = |s: &str| s.parse::<crate::load::metrics::RequestSlo>())]
    pub request_slo: Option<crate::load::metrics::RequestSlo>,
    /// With --target: a process of the target beyond the one listening (and
    /// its descendants), e.g. a worker queue or a database; repeatable.
    #[arg(long = "target-pid", value_name = "PID", requires = "target")]
    pub target_pids: Vec<u32>,
    /// With --target: the target's CPU is this cgroup's (a container's or a
    /// systemd unit's; relative paths are under /sys/fs/cgroup).
    #[arg(long, value_name = "PATH", requires = "target", conflicts_with = "target_pids")]
    pub target_cgroup: Option<PathBuf>,
    /// Every app's request inputs, as JSON [default: the file's; else
    /// {"question": one of Dify's five questions}].
    #[arg(long, value_parser = parse_inputs)]
    pub inputs: Option<serde_json::Value>,
    /// The embedded mock's script [default: the file's `mock_script`; else Dify's timing].
    #[arg(long)]
    pub mock_script: Option<PathBuf>,
    /// The mock stamps each chunk with its emit time (`stamp = true`, e.g.
    /// fixtures/mock/stamped.toml): record emit → receipt per text chunk.
    #[arg(long)]
    pub stamped: bool,
    /// Leave every stream after this many text chunks, as a client that
    /// goes away mid-answer; such requests end `aborted` (an error class).
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    pub abort_after_chunks: Option<u32>,
    /// Run the I-th of N equal parts of the load (users, rate and
    /// connections divided; seeds distinct), one per machine or pod; join
    /// their --json reports with `flowbench merge`.
    #[arg(long, value_name = "I/N", value_parser = |s: &str| s.parse::<crate::report::Shard>())]
    pub shard: Option<crate::report::Shard>,
    /// Start the load at this instant, so every shard starts together:
    /// RFC 3339 (`2026-12-03T18:00:00Z`) or Unix seconds.
    #[arg(long, value_name = "TIME", value_parser = parse_start_at)]
    pub start_at: Option<std::time::SystemTime>,
    /// What the run is called where reports are shown together (HTML series,
    /// `flowbench report`) [default: none].
    #[arg(long, value_name = "NAME")]
    pub label: Option<String>,
    /// The commit measured, shown beside the label [default: the current
    /// directory's git HEAD, if it is a git work tree].
    #[arg(long, value_name = "SHA")]
    pub commit: Option<String>,
    #[command(flatten)]
    pub files: ReportFiles,
    #[command(flatten)]
    pub errors: ErrorBudget,
    #[command(flatten)]
    pub tls: TargetTls,
    #[command(flatten)]
    pub driver: DriverFlags,
    #[command(flatten)]
    pub observe: ObserveArgs,
}

/// The target's side of the run, from Prometheus: endpoints sampled each
/// second, and a Prometheus server's figures over the measured interval.
#[derive(Debug, Clone, Default, Args)]
pub struct ObserveArgs {
    /// An exposition endpoint to read each second of the run (the target's
    /// `/metrics`, a node exporter, cAdvisor); repeatable; keeps the series
    /// `--series` names.
    #[arg(long = "scrape", value_name = "URL", requires = "series")]
    pub scrape: Vec<String>,
    /// A series to keep from the `--scrape` endpoints, as PromQL selects it:
    /// `NAME`, `NAME{LABEL="V",LABEL=~"RE"}`; counters as per-second rates,
    /// gauges as read; repeatable.
    #[arg(long = "series", value_name = "SELECTOR", requires = "scrape",
          value_parser = |s: &str| crate::load::scrape::SeriesSelector::parse(s))]
    pub series: Vec<crate::load::scrape::SeriesSelector>,
    /// A Prometheus server's base URL, for `--target-cpu` and `--target-memory`.
    #[arg(long, value_name = "URL")]
    pub prometheus: Option<String>,
    /// PromQL for the target's CPU in cores, queried over exactly the
    /// measured interval; `$__range` stands for its length, e.g.
    /// `sum(rate(container_cpu_usage_seconds_total{pod=~"dify-api-.*"}[$__range]))`
    /// (one instant query at the interval's end); without it, the mean of a
    /// range query. Gives target CPU per request and per event.
    #[arg(long, value_name = "PROMQL", requires = "prometheus")]
    pub target_cpu: Option<String>,
    /// PromQL for the target's memory in bytes over the measured interval
    /// (its mean and peak), e.g. `sum(container_memory_working_set_bytes{pod=~"dify-api-.*"})`.
    #[arg(long, value_name = "PROMQL", requires = "prometheus")]
    pub target_memory: Option<String>,
    /// How long after the measured interval to wait before querying, so
    /// that Prometheus has scraped past its end (twice the scrape interval).
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration, default_value = "30s")]
    pub prometheus_lag: Duration,
}

/// `flowbench capacity`: `run`'s flags for the target, scenarios and
/// reports (`--json`, `--bmf`, `--html` write the search's), and the search.
#[derive(Debug, Clone, Args)]
pub struct CapacityArgs {
    #[command(flatten)]
    pub run: RunArgs,
    /// A criterion every step must meet, as --threshold writes it
    /// (`duration_p95<100ms`, `ttfe_p99<200ms`, `error_rate<0.1%`);
    /// repeatable. A scenario file's `[slo] thresholds` and thresholds join it.
    #[arg(long = "slo", value_name = "EXPR", value_parser = |s: &str| s.parse::<crate::report::thresholds::Threshold>())]
    pub slo: Vec<crate::report::thresholds::Threshold>,
    /// What to search: the open model's arrival rate, or the closed model's users.
    #[arg(long, value_enum, default_value = "rate")]
    pub by: SearchByArg,
    /// The first step's load [default: 10 req/s, or 1 user].
    #[arg(long, value_parser = positive)]
    pub start: Option<f64>,
    /// The most load to try [default: 100000 req/s, or 10000 users].
    #[arg(long, value_parser = positive)]
    pub max: Option<f64>,
    /// Bisect until the highest pass and the lowest failure are this close.
    #[arg(long, value_parser = parse_share, default_value = "5%")]
    pub resolution: f64,
    /// Times a step too near a limit to tell is measured again, each twice as long.
    #[arg(long, default_value_t = 2)]
    pub repeats: u32,
    /// The CPU the target may use, in cores (a pod's limit times its
    /// replicas, a process's worker threads), for saying its CPU ran out
    /// [default: the cgroup's cpu.max with --target-cgroup; else the
    /// machine's cores less the driver's].
    #[arg(long, value_parser = positive)]
    pub target_cores: Option<f64>,
}

/// `--by`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SearchByArg {
    Rate,
    Users,
}

impl From<SearchByArg> for schema::capacity::SearchBy {
    fn from(by: SearchByArg) -> Self {
        match by {
            SearchByArg::Rate => schema::capacity::SearchBy::Rate,
            SearchByArg::Users => schema::capacity::SearchBy::Users,
        }
    }
}

fn parse_share(text: &str) -> Result<f64, String> {
    crate::report::thresholds::parse_fraction(text)
        .filter(|v| *v > 0.0 && *v < 1.0)
        .ok_or_else(|| format!("{text:?} is not a share between 0 and 100% (e.g. 5%)"))
}

/// A share from none to all: `0`, `1%`, `0.5`, `100%`.
fn parse_proportion(text: &str) -> Result<f64, String> {
    crate::report::thresholds::parse_fraction(text)
        .filter(|v| (0.0..=1.0).contains(v))
        .ok_or_else(|| format!("{text:?} is not a share from 0 to 100% (e.g. 1%)"))
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
    /// Write every slice's figures here.
    #[arg(long)]
    pub json: Option<PathBuf>,
    /// Write a self-contained HTML page of the slices here: each figure on
    /// both sides slice by slice, B's change, and the health of each slice.
    #[arg(long)]
    pub html: Option<PathBuf>,
    /// Both sides: headers and certificates.
    #[command(flatten)]
    pub tls: TargetTls,
    #[command(flatten)]
    pub driver: DriverFlags,
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
    #[command(flatten)]
    pub driver: DriverFlags,
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
