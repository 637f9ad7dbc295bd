//! Server configuration: a TOML file, overridden by flags and environment
//! variables (see `main.rs`), validated into one `Config`.
//!
//! ```toml
//! listen = "127.0.0.1:5001"
//! busy_poll = false     # optional; see busy_poll.rs
//! busy_poll_window = "100ms"   # optional: polling goes on this long after the last upstream read
//! [provider]
//! base_url = "http://127.0.0.1:5004/v1"
//! api_key = "sk-mock"
//! [limits]
//! max_body_bytes = 10485760
//! upstream_first_token_timeout = "60s"
//! [[apps]]
//! api_key = "app-empty"
//! workflow = "fixtures/workflows/start_end.yml"   # relative to this file
//! max_concurrent_runs = 100                        # optional; off by default
//! ```

use serde::Deserialize;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub const DEFAULT_LISTEN: &str = "127.0.0.1:5001";
pub const DEFAULT_PROVIDER_BASE_URL: &str = "http://127.0.0.1:5004/v1";

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("reading config file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("config file {path}: {source}")]
    Toml {
        path: PathBuf,
        #[source]
        source: toml::de::Error,
    },
    #[error("app {api_key:?}: {problem}")]
    App { api_key: String, problem: String },
    #[error(transparent)]
    Dsl(#[from] crate::workflow::dsl::DslError),
    #[error("provider: {0}")]
    Provider(String),
    #[error("limits: {0}")]
    Limits(String),
    #[error("busy_poll_window must be above zero")]
    BusyPollWindow,
    #[error("the run store: {0}")]
    Store(String),
}

/// The whole server configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    #[serde(default)]
    pub provider: ProviderConfig,
    #[serde(default)]
    pub limits: Limits,
    #[serde(default)]
    pub apps: Vec<AppConfig>,
    /// Where run records live: `memory` (the default; per process),
    /// `sqlite:PATH` (durable, one machine) or a `postgres://` URL (shared
    /// by replicas, durable).
    #[serde(default)]
    pub store: Option<String>,
    /// While runs are live and their upstreams sending, the workers poll
    /// instead of sleeping: less latency per relayed event, a worker's CPU
    /// spent meanwhile (`busy_poll.rs`). Off by default.
    #[serde(default)]
    pub busy_poll: bool,
    /// With `busy_poll`: how long the workers keep polling after the last
    /// run start or upstream read; then they sleep until the next.
    #[serde(default = "default_busy_poll_window", with = "humantime_serde")]
    pub busy_poll_window: Duration,
}

fn default_busy_poll_window() -> Duration {
    Duration::from_millis(100)
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    /// The OpenAI-compatible provider's base URL (the part before `/chat/completions`).
    pub base_url: String,
    #[serde(default)]
    pub api_key: String,
}

/// Limits and timeouts, each with its unit.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Limits {
    /// Request bodies above this get 413.
    pub max_body_bytes: usize,
    /// Run records kept for `GET /v1/workflows/run/{id}`; the oldest go first.
    pub max_stored_runs: usize,
    /// Bytes of run records (inputs, user, outputs, error) kept at most; the
    /// oldest go first. A record above a sixteenth of it is not kept.
    pub max_stored_bytes: usize,
    /// Events made and not yet taken by the response body, per stream,
    /// before the run waits for its client.
    pub stream_buffer_events: usize,
    /// A connection whose client has not taken a byte for this long, while
    /// the server has bytes to send, is closed (and counted).
    #[serde(with = "humantime_serde")]
    pub stalled_client_timeout: Duration,
    /// A connection waiting for a request head (new, or idle between
    /// requests) is closed if the head is not complete this long after it
    /// began waiting (and counted).
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// A request body not whole this long after its head is answered 408
    /// (and counted); the connection closes.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
    /// Connections allowed to wait for a request head at once; past it the
    /// one that has waited longest is closed (and counted). `None`: a quarter
    /// of the open-file limit in force when the server starts.
    pub max_waiting_connections: Option<usize>,
    /// After an answer sent before its request's body was read (413, 401,
    /// 415, 404…), the rest of the body is read and dropped for at most this
    /// long (and at most twice `max_body_bytes`), so that a client still
    /// writing gets to read the answer.
    #[serde(with = "humantime_serde")]
    pub linger_timeout: Duration,
    /// A bare `event: ping` after this much silence on a stream.
    #[serde(with = "humantime_serde")]
    pub ping_interval: Duration,
    #[serde(with = "humantime_serde")]
    pub upstream_connect_timeout: Duration,
    /// From the upstream request to its first content delta.
    #[serde(with = "humantime_serde")]
    pub upstream_first_token_timeout: Duration,
    /// The longest silence between two upstream reads after the first token.
    #[serde(with = "humantime_serde")]
    pub upstream_idle_timeout: Duration,
    /// The longest a whole upstream completion may take.
    #[serde(with = "humantime_serde")]
    pub upstream_max_completion_time: Duration,
    /// The longest SSE line an upstream may send; past it the run fails
    /// and the line's memory is freed (as for the two below).
    pub upstream_max_line_bytes: usize,
    /// The most data one upstream SSE event may carry.
    pub upstream_max_event_bytes: usize,
    /// The most body bytes one upstream completion may send.
    pub upstream_max_completion_bytes: usize,
    /// On SIGINT/SIGTERM, how long in-flight runs may take to finish before
    /// they are stopped.
    #[serde(with = "humantime_serde")]
    pub shutdown_grace: Duration,
    /// How long before the grace ends the runs still going are stopped, so
    /// that their terminal events can be written [default: a quarter of
    /// the grace, at most 1 s].
    #[serde(with = "humantime_serde")]
    pub shutdown_flush: Option<Duration>,
    /// A streaming body stays open this long after its terminal event, as
    /// Dify's does (about 1 s); zero by default. For testing clients.
    #[serde(with = "humantime_serde")]
    pub stream_tail: Duration,
    /// For the gate's self-test only: CPU spun per accepted run request.
    #[serde(with = "humantime_serde")]
    pub inject_busy_per_request: Duration,
    /// For the gate's self-test only: CPU spun per streamed event.
    #[serde(with = "humantime_serde")]
    pub inject_busy_per_event: Duration,
    /// Record each run's figures for `GET /metrics` (request counts,
    /// duration, TTFE, events, the upstream's first token); off, the
    /// endpoint keeps the counters and gauges the server keeps anyway and
    /// the process's figures. For measuring what the recording costs.
    pub metrics: bool,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_body_bytes: 10 * 1024 * 1024,
            max_stored_runs: 100_000,
            max_stored_bytes: 256 * 1024 * 1024,
            stream_buffer_events: 64,
            stalled_client_timeout: Duration::from_secs(60),
            header_read_timeout: Duration::from_secs(20),
            body_read_timeout: Duration::from_secs(30),
            max_waiting_connections: None,
            linger_timeout: Duration::from_secs(2),
            ping_interval: Duration::from_secs(10),
            upstream_connect_timeout: Duration::from_secs(5),
            upstream_first_token_timeout: Duration::from_secs(60),
            upstream_idle_timeout: Duration::from_secs(60),
            upstream_max_completion_time: Duration::from_secs(15 * 60),
            upstream_max_line_bytes: 1024 * 1024,
            upstream_max_event_bytes: 4 * 1024 * 1024,
            upstream_max_completion_bytes: 64 * 1024 * 1024,
            shutdown_grace: Duration::from_secs(30),
            shutdown_flush: None,
            stream_tail: Duration::ZERO,
            inject_busy_per_request: Duration::ZERO,
            inject_busy_per_event: Duration::ZERO,
            metrics: true,
        }
    }
}

/// One app: a DSL file served under an API key.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AppConfig {
    pub api_key: String,
    pub workflow: PathBuf,
    /// Runs of this app allowed at once; more get 429. `None`: no cap.
    #[serde(default)]
    pub max_concurrent_runs: Option<usize>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            listen: default_listen(),
            provider: ProviderConfig::default(),
            limits: Limits::default(),
            apps: Vec::new(),
            store: None,
            busy_poll: false,
            busy_poll_window: default_busy_poll_window(),
        }
    }
}

impl Default for ProviderConfig {
    fn default() -> Self {
        Self { base_url: DEFAULT_PROVIDER_BASE_URL.to_owned(), api_key: String::new() }
    }
}

impl Config {
    /// Reads a TOML config; relative workflow paths are taken from the file's folder.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?;
        let mut config: Config = toml::from_str(&text).map_err(|source| ConfigError::Toml { path: path.to_owned(), source })?;
        let base = path.parent().unwrap_or(Path::new("."));
        for app in &mut config.apps {
            if app.workflow.is_relative() {
                app.workflow = base.join(&app.workflow);
            }
        }
        Ok(config)
    }

    /// Checks what serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let limits = &self.limits;
        if limits.max_stored_runs == 0 || limits.stream_buffer_events == 0 || limits.max_stored_bytes == 0 {
            return Err(ConfigError::Limits("max_stored_runs, max_stored_bytes and stream_buffer_events must be at least 1".into()));
        }
        if limits.ping_interval.is_zero() {
            return Err(ConfigError::Limits("ping_interval must be above zero".into()));
        }
        if limits.stalled_client_timeout.is_zero() {
            return Err(ConfigError::Limits("stalled_client_timeout must be above zero".into()));
        }
        if limits.upstream_max_completion_time.is_zero()
            || limits.upstream_max_line_bytes == 0
            || limits.upstream_max_event_bytes == 0
            || limits.upstream_max_completion_bytes == 0
        {
            return Err(ConfigError::Limits("the upstream_max_* limits must be above zero".into()));
        }
        if limits.header_read_timeout.is_zero() || limits.body_read_timeout.is_zero() {
            return Err(ConfigError::Limits("header_read_timeout and body_read_timeout must be above zero".into()));
        }
        if limits.max_waiting_connections == Some(0) {
            return Err(ConfigError::Limits("max_waiting_connections must be at least 1".into()));
        }
        if self.busy_poll_window.is_zero() {
            return Err(ConfigError::BusyPollWindow);
        }
        let mut keys = std::collections::HashSet::new();
        for app in &self.apps {
            if !app.api_key.starts_with("app-") || app.api_key.len() < 5 {
                return Err(ConfigError::App { api_key: app.api_key.clone(), problem: "API keys start with \"app-\"".into() });
            }
            if !keys.insert(app.api_key.as_str()) {
                return Err(ConfigError::App { api_key: app.api_key.clone(), problem: "the same key is given twice".into() });
            }
            if app.max_concurrent_runs == Some(0) {
                return Err(ConfigError::App { api_key: app.api_key.clone(), problem: "max_concurrent_runs must be at least 1".into() });
            }
        }
        Ok(())
    }
}

fn default_listen() -> SocketAddr {
    DEFAULT_LISTEN.parse().expect("valid default address")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_toml_file_relative_to_itself() {
        let dir = std::env::temp_dir().join(format!("flowbench-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("server.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:6000\"\n[limits]\nupstream_idle_timeout = \"250ms\"\n[[apps]]\napi_key = \"app-x\"\nworkflow = \"w.yml\"\nmax_concurrent_runs = 3\n",
        )
        .unwrap();
        let config = Config::from_file(&path).unwrap();
        assert_eq!(config.listen.port(), 6000);
        assert_eq!(config.limits.upstream_idle_timeout, Duration::from_millis(250));
        assert_eq!(config.limits.max_body_bytes, 10 * 1024 * 1024);
        assert_eq!(config.apps[0].workflow, dir.join("w.yml"));
        assert_eq!(config.apps[0].max_concurrent_runs, Some(3));
        assert_eq!(config.busy_poll_window, Duration::from_millis(100), "the default");
        config.validate().unwrap();
        std::fs::write(&path, "busy_poll = true\nbusy_poll_window = \"5ms\"\n").unwrap();
        let config = Config::from_file(&path).unwrap();
        assert!(config.busy_poll);
        assert_eq!(config.busy_poll_window, Duration::from_millis(5));
        std::fs::write(&path, "busy_poll_window = \"0s\"\n").unwrap();
        let error = Config::from_file(&path).unwrap().validate().unwrap_err().to_string();
        assert!(error.contains("busy_poll_window"), "{error}");
        std::fs::write(&path, "[limits]\nmax_body_byte = 1\n").unwrap();
        let error = Config::from_file(&path).unwrap_err().to_string();
        assert!(error.contains("server.toml"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// The README's sample config is one this server takes, key for key.
    #[test]
    fn the_readmes_sample_config_is_accepted() {
        let readme = include_str!("../../README.md");
        let section = &readme[readme.find("## Configuration").expect("README has a Configuration section")..];
        let start = section.find("```toml\n").expect("a toml block") + "```toml\n".len();
        let block = &section[start..start + section[start..].find("```").expect("the block ends")];
        let config: Config = toml::from_str(block).unwrap_or_else(|e| panic!("README's config: {e}"));
        assert_eq!(config.store.as_deref(), Some("memory"));
        assert!(!config.apps.is_empty());
        config.validate().unwrap();
    }

    #[test]
    fn rejects_bad_keys() {
        let mut config = Config::default();
        config.apps.push(AppConfig { api_key: "nope".into(), workflow: "w.yml".into(), max_concurrent_runs: None });
        assert!(config.validate().unwrap_err().to_string().contains("\"nope\""));
    }
}
