//! `flowbench-server`: serves Dify DSL apps over Dify's workflow API.
//!
//! Configuration comes from an optional TOML file (`--config`), then flags and
//! `FLOWBENCH_*` environment variables, which win. SIGINT or SIGTERM stops
//! accepting, lets in-flight runs finish (up to `shutdown_grace`), then exits.

use anyhow::Context;
use clap::Parser;
use server::{AppConfig, AppState, Config};
use std::net::SocketAddr;
use std::path::PathBuf;

/// The global allocator: jemalloc by default, mimalloc or the system's by
/// choice of features (docs/allocator.md).
#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// jemalloc, which `server::alloc_setup` gives background threads that
/// return freed pages to the system.
#[cfg(feature = "jemalloc")]
#[global_allocator]
static GLOBAL: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[derive(Debug, Parser)]
#[command(name = "flowbench-server", version, about = "A Dify-compatible workflow API server (Start, LLM and End nodes)")]
struct Cli {
    /// TOML config file; flags override it.
    #[arg(long, env = "FLOWBENCH_CONFIG")]
    config: Option<PathBuf>,
    /// Address to listen on [default: 127.0.0.1:5001].
    #[arg(long, env = "FLOWBENCH_LISTEN")]
    listen: Option<SocketAddr>,
    /// An app as API_KEY=DSL_FILE; repeatable.
    #[arg(long = "app", value_name = "API_KEY=DSL_FILE", value_parser = parse_app)]
    apps: Vec<AppConfig>,
    /// The OpenAI-compatible provider's base URL, e.g. http://127.0.0.1:5004/v1.
    #[arg(long, env = "FLOWBENCH_PROVIDER_BASE_URL")]
    provider_base_url: Option<String>,
    /// The provider's API key.
    #[arg(long, env = "FLOWBENCH_PROVIDER_API_KEY", hide_env_values = true)]
    provider_api_key: Option<String>,
    /// Request bodies above this many bytes get 413.
    #[arg(long, env = "FLOWBENCH_MAX_BODY_BYTES")]
    max_body_bytes: Option<usize>,
    /// Close a connection whose client has read nothing for this long while
    /// the server had bytes for it, e.g. 60s.
    #[arg(long, env = "FLOWBENCH_STALLED_CLIENT_TIMEOUT", value_parser = humantime::parse_duration)]
    stalled_client_timeout: Option<std::time::Duration>,
    /// Gate self-test only: CPU to spin per run request, e.g. 3us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_REQUEST", value_parser = humantime::parse_duration)]
    inject_busy_per_request: Option<std::time::Duration>,
    /// Gate self-test only: CPU to spin per streamed event, e.g. 1us.
    #[arg(long, env = "FLOWBENCH_INJECT_BUSY_PER_EVENT", value_parser = humantime::parse_duration)]
    inject_busy_per_event: Option<std::time::Duration>,
    /// Record no run's figures for `GET /metrics` (request counts, latency
    /// histograms, events): to measure what recording them costs.
    #[arg(long, env = "FLOWBENCH_NO_METRICS")]
    no_metrics: bool,
    /// Where run records live: `memory` (per process), `sqlite:PATH` (a
    /// durable file, shared by processes on one machine) or a `postgres://`
    /// URL (shared by replicas: GET and stop work on any of them).
    #[arg(long, env = "FLOWBENCH_STORE", hide_env_values = true)]
    store: Option<String>,
    /// Share the listen address with other flowbench-server processes
    /// (SO_REUSEPORT): the kernel spreads connections over them. Each
    /// process keeps its own run records, so `GET /v1/workflows/run/{id}`
    /// finds a run only in the process that ran it.
    #[arg(long, env = "FLOWBENCH_REUSE_PORT")]
    reuse_port: bool,
    /// Threads of the server's runtime [default: one per core].
    #[arg(long, env = "FLOWBENCH_WORKER_THREADS", value_parser = clap::value_parser!(u16).range(1..))]
    worker_threads: Option<u16>,
    /// While runs are live and their upstreams sending (see
    /// --busy-poll-window), the worker threads poll their sockets instead
    /// of sleeping: less latency per relayed event, for a worker's CPU each
    /// meanwhile. Best with the server on cores of its own and
    /// --worker-threads set to their number.
    #[arg(long, env = "FLOWBENCH_BUSY_POLL")]
    busy_poll: bool,
    /// With --busy-poll: how long the workers keep polling after the last
    /// run start or upstream read, before they sleep [default: 100ms].
    #[arg(long, env = "FLOWBENCH_BUSY_POLL_WINDOW", value_parser = humantime::parse_duration)]
    busy_poll_window: Option<std::time::Duration>,
    /// Imitates Dify's stream end: hold each streaming body open this long
    /// after its terminal event (Dify 1.13.2 holds about 1 s while it tears
    /// down its Redis subscription), e.g. 1s [default: 0s].
    #[arg(long, env = "FLOWBENCH_STREAM_TAIL", value_parser = humantime::parse_duration)]
    stream_tail: Option<std::time::Duration>,
    /// Runs allowed at once per app given with --app (429 above); off by default.
    #[arg(long, env = "FLOWBENCH_MAX_CONCURRENT_RUNS")]
    max_concurrent_runs: Option<usize>,
}

fn parse_app(text: &str) -> Result<AppConfig, String> {
    let (api_key, path) = text.split_once('=').ok_or_else(|| format!("{text:?} is not API_KEY=DSL_FILE"))?;
    Ok(AppConfig { api_key: api_key.to_owned(), workflow: PathBuf::from(path), max_concurrent_runs: None })
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    server::alloc_setup();
    // Thousands of streams need thousands of sockets.
    let _ = server::http::conn::raise_open_file_limit();
    if let Err(e) = run(Cli::parse()) {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> anyhow::Result<()> {
    let mut config = match &cli.config {
        Some(path) => Config::from_file(path)?,
        None => Config::default(),
    };
    if let Some(listen) = cli.listen {
        config.listen = listen;
    }
    for mut app in cli.apps {
        app.max_concurrent_runs = cli.max_concurrent_runs;
        config.apps.push(app);
    }
    config.busy_poll |= cli.busy_poll;
    if let Some(window) = cli.busy_poll_window {
        config.busy_poll_window = window;
    }
    if let Some(limit) = cli.stalled_client_timeout {
        config.limits.stalled_client_timeout = limit;
    }
    if let Some(url) = cli.provider_base_url {
        config.provider.base_url = url;
    }
    if let Some(key) = cli.provider_api_key {
        config.provider.api_key = key;
    }
    if let Some(n) = cli.max_body_bytes {
        config.limits.max_body_bytes = n;
    }
    if let Some(d) = cli.inject_busy_per_request {
        config.limits.inject_busy_per_request = d;
    }
    if let Some(d) = cli.inject_busy_per_event {
        config.limits.inject_busy_per_event = d;
    }
    if cli.no_metrics {
        config.limits.metrics = false;
    }
    if let Some(d) = cli.stream_tail {
        config.limits.stream_tail = d;
    }
    anyhow::ensure!(!config.apps.is_empty(), "no apps configured: give --app API_KEY=DSL_FILE or a --config file with [[apps]]");
    if let Some(store) = cli.store {
        config.store = Some(store);
    }
    // Apps and limits are checked before the runtime starts; the store is
    // opened on it.
    config.validate()?;
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.worker_threads {
        runtime.worker_threads(usize::from(n));
    }
    let runtime = runtime.enable_all().build().context("starting the tokio runtime")?;
    runtime.block_on(async {
        let state = AppState::open(&config).await?;
        let listener =
            server::http::conn::listen_with(config.listen, cli.reuse_port).with_context(|| format!("binding {}", config.listen))?;
        tracing::info!(addr = %listener.local_addr()?, apps = config.apps.len(), "flowbench-server listening");
        server::serve(listener, state.clone(), shutdown_signal()).await.context("serving")?;
        // What the runs stored on the way out is committed before exit.
        if tokio::time::timeout(server::STORE_FLUSH, state.flush_store()).await.is_err() {
            tracing::error!("the run store did not commit within {:?} of shutdown", server::STORE_FLUSH);
        }
        tracing::info!("drained; bye");
        Ok(())
    })
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return ctrl_c.await.unwrap_or(()),
        };
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    ctrl_c.await.unwrap_or(());
}
