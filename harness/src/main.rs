//! `flowbench`: the harness's command line.
//!
//! - `flowbench up`: starts the mocked stack (mock LLM + server) and prints one
//!   JSON line describing it, then serves until SIGINT or SIGTERM.
//! - `flowbench mock`: runs the mock LLM alone on a chosen address, e.g. for a
//!   real Dify's OpenAI-compatible provider to point at.

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use harness::{Script, Stack, StackOptions};
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(name = "flowbench", version, about = "Benchmark suite for Dify-compatible streaming workflow APIs")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
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
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    if let Err(e) = runtime.block_on(run(cli)) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Up { server_addr, mock_addr, script } => {
            let options = StackOptions { script: script.build()?, server_addr, mock_addr, ..StackOptions::default() };
            let stack = Stack::start(options).await?;
            let line = serde_json::to_string(&stack.info)?;
            let mut stdout = std::io::stdout().lock();
            writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("writing to stdout")?;
            drop(stdout);
            eprintln!("flowbench: stack up at {}; Ctrl-C to stop", stack.info.server_url);
            shutdown_signal().await;
            stack.shutdown().await
        }
        Command::Mock { listen, script } => {
            let mock = harness::MockLlm::start(script.build()?, listen).await?;
            eprintln!("flowbench: mock LLM at {}; Ctrl-C to stop", mock.base_url());
            shutdown_signal().await;
            mock.shutdown().await;
            Ok(())
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
