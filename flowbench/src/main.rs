//! `flowbench`: parses the flags (`flowbench::cli`), runs the command
//! (`flowbench::cmd`) on a runtime sized for it, and exits with the command's
//! code (`flowbench::exit`).

use clap::{CommandFactory, Parser};
use flowbench::cli::{Cli, Command};
use flowbench::cmd;
use flowbench::exit;
use flowbench::load::client::PreflightError;
use std::time::Duration;

/// The allocator `flowbench-server` gets with the same features, so the
/// embedded stack and the bare yardstick match it (jemalloc by default).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    server::alloc_setup();
    // Thousands of streams need thousands of sockets.
    let _ = server::http::conn::raise_open_file_limit();
    let cli = Cli::parse();
    let threads = match &cli.command {
        Command::Run(args) => args.driver.driver_threads.max(1),
        Command::Ab(args) => args.driver.driver_threads.max(1),
        Command::Soak(args) => args.driver.driver_threads.max(1),
        Command::Capacity(args) => args.run.driver.driver_threads.max(1),
        Command::Replica(args) => args.worker_threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get())),
        _ => std::thread::available_parallelism().map_or(2, |n| n.get()),
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: starting the tokio runtime: {e}");
            std::process::exit(exit::FAILED);
        }
    };
    let code = match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            if e.downcast_ref::<PreflightError>().is_some() { exit::USAGE } else { exit::FAILED }
        }
    };
    runtime.shutdown_timeout(Duration::from_secs(1));
    std::process::exit(code);
}

/// A plan's error: clap's, exit 2, as for one bad flag, before anything runs.
fn usage_error(e: flowbench::plan::UsageError) -> ! {
    Cli::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit()
}

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => cmd::run::execute(args.plan().unwrap_or_else(|e| usage_error(e))).await,
        Command::Ab(args) => {
            let plan = args.plan().unwrap_or_else(|e| usage_error(e));
            cmd::ab::execute(&plan).await.map(|r| if r.interrupted { exit::INTERRUPTED } else { exit::OK })
        }
        Command::Soak(args) => {
            let plan = args.plan().unwrap_or_else(|e| usage_error(e));
            cmd::soak::execute(&plan).await.map(|r| match (r.interrupted, r.pass) {
                (true, _) => exit::INTERRUPTED,
                (false, true) => exit::OK,
                (false, false) => exit::FAILED,
            })
        }
        Command::Capacity(args) => {
            let (plan, search, slo) = args.plan().unwrap_or_else(|e| usage_error(e));
            cmd::capacity::execute(plan, search, slo).await
        }
        Command::Up(args) => {
            args.check().unwrap_or_else(|e| usage_error(e));
            cmd::up::execute(&args).await
        }
        Command::Replica(args) => cmd::up::replica(&args).await,
        Command::Bare(args) => cmd::bare::execute(&args).await,
        Command::Mock(args) => cmd::mock::execute(&args).await,
        Command::Merge(args) => cmd::merge::execute(&args),
        Command::Report(args) => cmd::report::execute(&args),
    }
}
