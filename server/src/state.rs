//! The server's shared state, built once from a `Config`: the apps by API key
//! (each with its parsed workflow and precomputed metadata bodies), the
//! upstream client, the run store, the running tasks and the counters.
//! Nothing in it is behind a global lock.

use crate::busy_poll::BusyPoll;
use crate::config::{Config, ConfigError, Limits};
use crate::store::{MemoryStore, RunStore};
use crate::tasks::TaskRegistry;
use crate::upstream::llm::{Provider, ProviderSettings};
use crate::workflow::dsl::{self, NodeKind, Workflow};
use crate::workflow::engine::AppWorkflow;
use bytes::Bytes;
use serde_json::json;
use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// Cheap to clone; all clones share one state.
#[derive(Clone)]
pub struct AppState {
    pub(crate) shared: Arc<Shared>,
}

pub(crate) struct Shared {
    pub apps: HashMap<String, Arc<ServedApp>>,
    pub limits: Limits,
    pub provider: Provider,
    pub store: Arc<dyn RunStore>,
    pub tasks: Arc<TaskRegistry>,
    pub stats: Stats,
    /// Every streaming run (a token held by its execution, wherever it is
    /// polled); drained on shutdown.
    pub tracker: TaskTracker,
    /// Cancelled when shutdown's grace period ends: stops every run.
    pub shutdown: CancellationToken,
    /// `Some` with `--busy-poll`: the pollers that starting runs and
    /// upstream reads keep awake.
    pub busy_poll: Option<Arc<BusyPoll>>,
}

/// One served app: what the engine runs (`AppWorkflow`, which it derefs
/// to) and how it is served over HTTP.
#[derive(Debug)]
pub struct ServedApp {
    pub api_key: String,
    pub workflow_path: PathBuf,
    /// Its ids and workflow, as `engine::Run` holds them.
    pub runnable: Arc<AppWorkflow>,
    pub(crate) run_cap: Option<Arc<Semaphore>>,
    pub(crate) parameters_body: Bytes,
    pub(crate) info_body: Bytes,
    pub(crate) metrics: crate::metrics::AppMetrics,
}

/// A served app reads as the app it runs (`app.app_id`, `app.workflow`).
impl std::ops::Deref for ServedApp {
    type Target = AppWorkflow;

    fn deref(&self) -> &AppWorkflow {
        &self.runnable
    }
}

/// Counters, readable at `GET /_flowbench/stats`.
#[derive(Debug, Default)]
pub struct Stats {
    pub runs_started: AtomicU64,
    pub runs_finished: AtomicU64,
    /// Streams whose client left before the run ended.
    pub runs_client_gone: AtomicU64,
    pub runs_rejected_busy: AtomicU64,
    /// Connections closed because their client stopped reading.
    pub connections_stalled_closed: Arc<AtomicU64>,
    /// Connections open now.
    pub connections_open: Arc<AtomicU64>,
    /// Requests whose body did not arrive within `body_read_timeout`.
    pub requests_body_timeout: AtomicU64,
    /// Connections closed because no request head came within
    /// `header_read_timeout`.
    pub connections_head_timeout: Arc<AtomicU64>,
    /// Waiting connections closed to keep within `max_waiting_connections`
    /// or to free a descriptor.
    pub connections_evicted: Arc<AtomicU64>,
    /// Connections without a request in progress, as the last sweep found.
    pub connections_waiting: Arc<AtomicU64>,
}

impl Stats {
    /// Runs live now: started minus finished.
    pub fn live_runs(&self) -> u64 {
        let finished = self.runs_finished.load(Ordering::SeqCst);
        self.runs_started.load(Ordering::SeqCst).saturating_sub(finished)
    }
}

/// A snapshot of `Stats`.
#[derive(Debug, Clone, Copy, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct StatsSnapshot {
    pub live_runs: u64,
    pub runs_started: u64,
    pub runs_finished: u64,
    pub runs_client_gone: u64,
    pub runs_rejected_busy: u64,
    pub connections_stalled_closed: u64,
    /// Absent from servers before it was counted (as the three below).
    #[serde(default)]
    pub connections_open: u64,
    #[serde(default)]
    pub requests_body_timeout: u64,
    /// Bytes of run records the store holds.
    #[serde(default)]
    pub stored_bytes: u64,
    #[serde(default)]
    pub connections_head_timeout: u64,
    #[serde(default)]
    pub connections_evicted: u64,
}

impl AppState {
    /// Loads every app's workflow and builds the state with the in-memory
    /// run store; errors name the file. (A `store` URL needs `open`.)
    pub fn new(config: &Config) -> Result<Self, ConfigError> {
        if config.store.is_some() {
            return Err(ConfigError::Store("a database store is opened with AppState::open".into()));
        }
        let limits = &config.limits;
        let store = Arc::new(MemoryStore::new(limits.max_stored_runs, limits.max_stored_bytes));
        Self::build(config, store, Arc::new(TaskRegistry::default()))
    }

    /// As `new`, with the run store `config.store` names: memory (none),
    /// `sqlite:PATH` or `postgres://…`, opened and its tables created
    /// before this returns.
    pub async fn open(config: &Config) -> Result<Self, ConfigError> {
        match config.store.as_deref() {
            None | Some("memory") => {
                let limits = &config.limits;
                let store = Arc::new(MemoryStore::new(limits.max_stored_runs, limits.max_stored_bytes));
                Self::build(config, store, Arc::new(TaskRegistry::default()))
            }
            Some(url) if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
                config.validate()?;
                let tasks = Arc::new(TaskRegistry::default());
                let store = crate::pg_store::PgStore::open(url, tasks.clone())
                    .await
                    .map_err(|e| ConfigError::Store(crate::store::Why(&e).to_string()))?;
                Self::build(config, Arc::new(store), tasks)
            }
            Some(path) if path.starts_with("sqlite:") => {
                config.validate()?;
                let (path, sync) = crate::sqlite_store::parse(path.trim_start_matches("sqlite:")).map_err(ConfigError::Store)?;
                let tasks = Arc::new(TaskRegistry::default());
                let store = crate::sqlite_store::SqliteStore::open(&path, sync, tasks.clone())
                    .map_err(|e| ConfigError::Store(crate::store::Why(&e).to_string()))?;
                Self::build(config, Arc::new(store), tasks)
            }
            Some(other) => Err(ConfigError::Store(format!("store {other:?}: give memory, sqlite:PATH or a postgres:// URL"))),
        }
    }

    fn build(config: &Config, store: Arc<dyn RunStore>, tasks: Arc<TaskRegistry>) -> Result<Self, ConfigError> {
        config.validate()?;
        let limits = config.limits.clone();
        let provider = Provider::new(ProviderSettings {
            base_url: config.provider.base_url.clone(),
            api_key: config.provider.api_key.clone(),
            connect_timeout: limits.upstream_connect_timeout,
            first_token_timeout: limits.upstream_first_token_timeout,
            idle_timeout: limits.upstream_idle_timeout,
            max_completion_time: limits.upstream_max_completion_time,
            max_line_bytes: limits.upstream_max_line_bytes,
            max_event_bytes: limits.upstream_max_event_bytes,
            max_completion_bytes: limits.upstream_max_completion_bytes,
            record_metrics: limits.metrics,
        })
        .map_err(ConfigError::Provider)?;
        let busy_poll = config.busy_poll.then(|| Arc::new(BusyPoll::new(config.busy_poll_window)));
        let provider = provider.with_busy_poll(busy_poll.clone());
        let mut apps = HashMap::new();
        for app in &config.apps {
            let workflow = dsl::load_file(&app.workflow)?;
            let app_id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("flowbench-app:{}", app.api_key).as_bytes());
            let workflow_id = uuid::Uuid::new_v5(&app_id, format!("{workflow:?}").as_bytes());
            let built = ServedApp {
                api_key: app.api_key.clone(),
                workflow_path: app.workflow.clone(),
                parameters_body: parameters_body(&workflow),
                info_body: info_body(&workflow),
                metrics: crate::metrics::AppMetrics::new(&workflow.name),
                runnable: Arc::new(AppWorkflow {
                    app_id: app_id.to_string(),
                    app_uuid: app_id,
                    workflow_id: workflow_id.to_string(),
                    workflow,
                }),
                run_cap: app.max_concurrent_runs.map(|n| Arc::new(Semaphore::new(n))),
            };
            apps.insert(app.api_key.clone(), Arc::new(built));
        }
        let shared = Shared {
            apps,
            store,
            limits,
            provider,
            tasks,
            stats: Stats::default(),
            tracker: TaskTracker::new(),
            shutdown: CancellationToken::new(),
            busy_poll,
        };
        Ok(Self { shared: Arc::new(shared) })
    }

    /// Resolves once every run record put so far is committed.
    pub async fn flush_store(&self) {
        self.shared.store.flush().await;
    }

    /// The app served under `api_key`.
    pub fn app(&self, api_key: &str) -> Option<Arc<ServedApp>> {
        self.shared.apps.get(api_key).cloned()
    }

    /// The shared upstream client.
    pub fn provider(&self) -> &Provider {
        &self.shared.provider
    }

    pub fn stats(&self) -> StatsSnapshot {
        let s = &self.shared.stats;
        // Finished first: a run counted there was counted started before.
        let finished = s.runs_finished.load(Ordering::SeqCst);
        let started = s.runs_started.load(Ordering::SeqCst);
        StatsSnapshot {
            live_runs: started.saturating_sub(finished),
            runs_started: started,
            runs_finished: finished,
            runs_client_gone: s.runs_client_gone.load(Ordering::Relaxed),
            runs_rejected_busy: s.runs_rejected_busy.load(Ordering::Relaxed),
            connections_stalled_closed: s.connections_stalled_closed.load(Ordering::Relaxed),
            connections_open: s.connections_open.load(Ordering::Relaxed),
            requests_body_timeout: s.requests_body_timeout.load(Ordering::Relaxed),
            stored_bytes: self.shared.store.bytes() as u64,
            connections_head_timeout: s.connections_head_timeout.load(Ordering::Relaxed),
            connections_evicted: s.connections_evicted.load(Ordering::Relaxed),
        }
    }

    /// Waits for in-flight streaming runs; after `grace`, stops them (each
    /// then ends with `workflow_finished` status `stopped`) and waits again.
    pub async fn drain(&self, grace: std::time::Duration) {
        let tracker = &self.shared.tracker;
        tracker.close();
        if tokio::time::timeout(grace, tracker.wait()).await.is_err() {
            tracing::warn!(live = tracker.len(), "shutdown grace period over; stopping in-flight runs");
            self.shared.shutdown.cancel();
            tracker.wait().await;
        }
    }
}

fn parameters_body(workflow: &Workflow) -> Bytes {
    let variables = workflow.nodes.iter().find_map(|n| match &n.kind {
        NodeKind::Start { variables } => Some(variables),
        _ => None,
    });
    let form: Vec<serde_json::Value> = variables
        .into_iter()
        .flatten()
        .map(|v| {
            json!({ v.var_type.as_str(): {
                "variable": v.variable,
                "label": v.label.clone().unwrap_or_else(|| v.variable.clone()),
                "type": v.var_type.as_str(),
                "required": v.required,
                "max_length": v.max_length,
                "options": v.options,
            }})
        })
        .collect();
    let body = json!({
        "opening_statement": null,
        "suggested_questions": [],
        "suggested_questions_after_answer": {"enabled": false},
        "speech_to_text": {"enabled": false},
        "text_to_speech": {"enabled": false, "voice": "", "language": ""},
        "retriever_resource": {"enabled": false},
        "annotation_reply": {"enabled": false},
        "more_like_this": {"enabled": false},
        "user_input_form": form,
        "sensitive_word_avoidance": {"enabled": false},
        "file_upload": {},
        "system_parameters": {
            "image_file_size_limit": 10, "video_file_size_limit": 100, "audio_file_size_limit": 50,
            "file_size_limit": 15, "workflow_file_upload_limit": 10
        }
    });
    Bytes::from(crate::pyjson::to_flask_json(&body))
}

fn info_body(workflow: &Workflow) -> Bytes {
    let body = json!({
        "name": workflow.name,
        "description": workflow.description,
        "tags": [],
        "mode": "workflow",
        "author_name": "flowbench",
    });
    Bytes::from(crate::pyjson::to_flask_json(&body))
}
