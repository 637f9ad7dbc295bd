//! `flowbench`: the harness's command line.
//!
//! - `flowbench up`: starts the mocked stack (mock LLM + server) and prints one
//!   JSON line describing it, then serves until SIGINT or SIGTERM.
//! - `flowbench mock`: runs the mock LLM alone on a chosen address, e.g. for a
//!   real Dify's OpenAI-compatible provider to point at.
//! - `flowbench run`: drives the embedded stack or any Dify-compatible server
//!   and prints the report (see `harness::run`).
//! - `flowbench ab`: loads two targets at the same time, slice by slice, and
//!   writes every slice's figures (see `harness::ab`), for `cargo xtask gate`.
//! - `flowbench bare`: a bare axum handler answering blocking runs, the
//!   yardstick for the server's Start→End cost (see `harness::bare`).
//! - `flowbench soak`: a long run of many streams, sampling the stack's RSS and
//!   live runs each second (see `harness::soak`).

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use harness::{Script, Stack, StackOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// The allocator `flowbench-server` gets with the same features, so the
/// embedded stack and the bare yardstick match it (jemalloc by default).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "flowbench", version, about = "Benchmark suite for Dify-compatible streaming workflow APIs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Drive load and print the seed's report (embedded stack, or --target).
    Run(Box<harness::run::RunArgs>),
    /// Compare two targets loaded at the same time, slice by slice, for the pre-merge gate.
    Ab(Box<harness::ab::AbArgs>),
    /// Many streams for a long time: RSS and live runs each second, growth verdict.
    Soak(Box<harness::soak::SoakArgs>),
    /// Start the mocked stack and print its URLs and API keys as one JSON line.
    Up {
        /// Address for the workflow server.
        #[arg(long, default_value = "127.0.0.1:0")]
        server_addr: SocketAddr,
        /// Address for the mock LLM.
        #[arg(long, default_value = "127.0.0.1:0")]
        mock_addr: SocketAddr,
        #[command(flatten)]
        script: ScriptArgs,
        /// Run records the server keeps for GET /v1/workflows/run/{id}; the oldest go first.
        #[arg(long)]
        max_stored_runs: Option<usize>,
        /// Gate self-test only: CPU the server spins per run request, e.g. 3us.
        #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_REQUEST", value_parser = humantime::parse_duration)]
        inject_busy_per_request: Option<Duration>,
        /// Gate self-test only: CPU the server spins per streamed event, e.g. 1us.
        #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_EVENT", value_parser = humantime::parse_duration)]
        inject_busy_per_event: Option<Duration>,
    },
    /// Serve a bare axum handler for blocking runs: the yardstick for Start→End QPS.
    Bare {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5002")]
        listen: SocketAddr,
    },
    /// Run the OpenAI-compatible mock LLM alone.
    Mock {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:5004")]
        listen: SocketAddr,
        #[command(flatten)]
        script: ScriptArgs,
    },
}

/// The mock's script: a TOML file, then these flags on top.
#[derive(Debug, Args)]
struct ScriptArgs {
    /// Mock script file (TOML), e.g. fixtures/mock/dify.toml.
    #[arg(long)]
    mock_script: Option<PathBuf>,
    /// Time to first token, e.g. 200ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    ttft: Option<Duration>,
    /// Delay after each token, e.g. 50ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    inter_token_delay: Option<Duration>,
    /// Uniform extra delay in [0, jitter) per wait, e.g. 5ms.
    #[arg(long, value_parser = humantime::parse_duration)]
    jitter: Option<Duration>,
    /// Seed for the jitter.
    #[arg(long)]
    seed: Option<u64>,
}

impl ScriptArgs {
    fn build(&self) -> anyhow::Result<Script> {
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

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    server::alloc_setup();
    // Thousands of streams need thousands of sockets.
    let _ = server::conn::raise_open_file_limit();
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(args) => args.driver_threads.max(1),
        Command::Ab(args) => args.driver_threads.max(1),
        Command::Soak(args) => args.driver_threads.max(1),
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<harness::run::PreflightError>().is_some() { 2 } else { 1 }
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            let plan = args.plan()?;
            match harness::run::execute(plan, args.json.clone(), args.markdown.clone()).await? {
                harness::run::RunEnd::Done => Ok(0),
                harness::run::RunEnd::Interrupted => Ok(130),
            }
        }
        Command::Ab(args) => {
            let report = harness::ab::execute(&args).await?;
            Ok(if report.interrupted { 130 } else { 0 })
        }
        Command::Soak(args) => {
            let report = harness::soak::execute(&args).await?;
            Ok(if report.interrupted {
                130
            } else if report.pass {
                0
            } else {
                1
            })
        }
        Command::Up { server_addr, mock_addr, script, max_stored_runs, inject_busy_per_request, inject_busy_per_event } => {
            let mut options = StackOptions { script: script.build()?, server_addr, mock_addr, ..StackOptions::default() };
            if let Some(n) = max_stored_runs {
                anyhow::ensure!(n > 0, "--max-stored-runs must be at least 1");
                options.limits.max_stored_runs = n;
            }
            options.limits.inject_busy_per_request = inject_busy_per_request.unwrap_or_default();
            options.limits.inject_busy_per_event = inject_busy_per_event.unwrap_or_default();
            let stack = Stack::start(options).await?;
            let line = serde_json::to_string(&stack.info)?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("writing to stdout")?;
            drop(stdout);
            eprintln!("flowbench: stack up at {}; Ctrl-C to stop", stack.info.server_url);
            shutdown_signal().await;
            stack.shutdown().await?;
            Ok(0)
        }
        Command::Bare { listen } => {
            let (addr, task) = harness::bare::serve(listen).await?;
            eprintln!("flowbench: bare axum handler at http://{addr}; Ctrl-C to stop");
            tokio::select! {
                result = task => { result??; }
                () = shutdown_signal() => {}
            }
            Ok(0)
        }
        Command::Mock { listen, script } => {
            let mock = harness::MockLlm::start(script.build()?, listen).await?;
            eprintln!("flowbench: mock LLM at {}; Ctrl-C to stop", mock.base_url());
            shutdown_signal().await;
            mock.shutdown().await;
            Ok(0)
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}
