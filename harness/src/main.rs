//! `flowbench`: parses the flags (`harness::cli`), runs the command
//! (`harness::cmd`) on a runtime sized for it, and exits with the command's
//! code (`harness::cli::exit`).

use clap::{CommandFactory, Parser};
use harness::cli::{Cli, Command, exit};
use harness::cmd;
use harness::load::client::PreflightError;
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
        Command::Run(args) => args.driver_threads.max(1),
        Command::Ab(args) => args.driver_threads.max(1),
        Command::Soak(args) => args.driver_threads.max(1),
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

async fn run(cli: Cli) -> anyhow::Result<i32> {
    match cli.command {
        Command::Run(args) => {
            // Flags that are wrong together: clap's error, exit 2, as for one bad flag.
            let plan = args.plan().unwrap_or_else(|e| Cli::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit());
            cmd::run::execute(
                plan,
                cmd::run::Outputs {
                    json: args.json.clone(),
                    markdown: args.markdown.clone(),
                    bmf: args.bmf.clone(),
                    html: args.html.clone(),
                },
            )
            .await
        }
        Command::Ab(args) => cmd::ab::execute(&args).await.map(|r| if r.interrupted { exit::INTERRUPTED } else { exit::OK }),
        Command::Soak(args) => cmd::soak::execute(&args).await.map(|r| match (r.interrupted, r.pass) {
            (true, _) => exit::INTERRUPTED,
            (false, true) => exit::OK,
            (false, false) => exit::FAILED,
        }),
        Command::Up(args) => {
            if let Err(e) = args.check() {
                Cli::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit()
            }
            cmd::up::execute(&args).await
        }
        Command::Replica(args) => cmd::up::replica(&args).await,
        Command::Bare(args) => cmd::bare::execute(&args).await,
        Command::Mock(args) => cmd::mock::execute(&args).await,
        Command::Merge(args) => cmd::merge::execute(&args),
        Command::Report(args) => cmd::report::execute(&args),
    }
}
