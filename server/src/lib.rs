//! flowbench's system under test: a Dify-compatible workflow API.
//!
//! `app(state)` is the whole HTTP surface (`POST /v1/workflows/run` blocking
//! and streaming, run records, task stop, parameters, info); `AppState::new`
//! loads Dify DSL files into validated workflows once, so no request parses a
//! workflow. The LLM node relays an OpenAI-compatible stream as Dify
//! `text_chunk` events, one per upstream delta, as soon as it arrives.

mod batch;
mod busy_poll;
pub mod config;
pub mod http;
mod json_scan;
mod metrics;
pub mod pg_store;
pub mod pyjson;
pub mod sqlite_store;
pub mod sse;
pub mod state;
pub mod store;
pub mod tasks;
pub mod upstream;
pub mod workflow;

pub use config::{AppConfig, Config, Limits, ProviderConfig};
pub use http::app;
pub use state::{AppState, StatsSnapshot};

/// Serves `state` on `listener` until `shutdown` resolves, then shuts down
/// within the configured grace period (`http::serve`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // With busy polling, one poller per worker thread, for as long as this
    // serves (the guard stops them however `serve` returns).
    let _pollers = state.shared.busy_poll.as_ref().map(|_| {
        let pollers = tokio_util::sync::CancellationToken::new();
        for _ in 0..tokio::runtime::Handle::current().metrics().num_workers() {
            let (state, pollers) = (state.clone(), pollers.clone());
            tokio::spawn(async move {
                let shared = &state.shared;
                let Some(poll) = &shared.busy_poll else { return };
                poll.poll(|| shared.stats.live_runs(), pollers).await;
            });
        }
        pollers.drop_guard()
    });
    let router = app(state.clone());
    http::serve::serve(listener, state, router, shutdown).await
}

/// A server serving in this process on a task of the current runtime: the
/// embedded stack, the tests and the benches start it this way.
pub struct Running {
    /// `http://ADDR`, the address it bound.
    pub url: String,
    pub state: AppState,
    stop: tokio_util::sync::CancellationToken,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

/// How long a shutdown waits for the run store to commit what it holds.
pub const STORE_FLUSH: std::time::Duration = std::time::Duration::from_secs(5);

/// Why a server could not start: its config, or its address.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    Config(#[from] config::ConfigError),
    #[error("listening on {addr}")]
    Listen {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

impl Running {
    /// Loads `config`'s apps and serves them on `config.listen`.
    pub fn start(config: &Config) -> Result<Self, StartError> {
        let state = AppState::new(config)?;
        let listen = |source| StartError::Listen { addr: config.listen, source };
        let listener = http::conn::listen(config.listen).map_err(listen)?;
        let url = format!("http://{}", listener.local_addr().map_err(listen)?);
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(serve(listener, state.clone(), stop.clone().cancelled_owned()));
        Ok(Self { url, state, stop, task })
    }

    /// As `start`, with the run store `config.store` names (opened first),
    /// on an address other processes may share when `reuse_port`.
    pub async fn open(config: &Config, reuse_port: bool) -> Result<Self, StartError> {
        let state = AppState::open(config).await?;
        let listen = |source| StartError::Listen { addr: config.listen, source };
        let listener = http::conn::listen_with(config.listen, reuse_port).map_err(listen)?;
        let url = format!("http://{}", listener.local_addr().map_err(listen)?);
        let stop = tokio_util::sync::CancellationToken::new();
        let task = tokio::spawn(serve(listener, state.clone(), stop.clone().cancelled_owned()));
        Ok(Self { url, state, stop, task })
    }

    /// Shuts down gracefully (in-flight runs get `shutdown_grace`), waits,
    /// and commits what the store still holds (up to `STORE_FLUSH`).
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.stop.cancel();
        let served = self.task.await.map_err(std::io::Error::other)?;
        if tokio::time::timeout(STORE_FLUSH, self.state.flush_store()).await.is_err() {
            tracing::error!("the run store did not commit within {STORE_FLUSH:?} of shutdown");
        }
        served
    }
}

#[cfg(all(feature = "mimalloc", feature = "jemalloc"))]
compile_error!("features `mimalloc` and `jemalloc` each set the global allocator: choose one");

/// Sets up the global allocator, once, at the start of a binary that may
/// serve: with the `jemalloc` feature, its background threads, which purge
/// freed pages (after jemalloc's decay time, 10 s) even when no thread
/// allocates, so RSS falls back after a burst; otherwise nothing.
pub fn alloc_setup() {
    #[cfg(feature = "jemalloc")]
    if let Err(e) = tikv_jemalloc_ctl::background_thread::write(true) {
        tracing::warn!("jemalloc background threads not started: {e}");
    }
}
