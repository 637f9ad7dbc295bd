//! Run records and running tasks.
//!
//! `RunStore` is the small trait a durable store can implement later;
//! `MemoryStore` is bounded (oldest records evicted first) and sharded so no
//! request takes a global lock. `TaskRegistry` maps a streaming run's task id
//! to its stop token, so `POST /v1/workflows/tasks/{id}/stop` reaches it.

use crate::engine::{RunOutcome, RunStatus};
use crate::events::SysVars;
use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

const N_SHARDS: usize = 16;

/// What `GET /v1/workflows/run/{id}` reports.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub app_id: String,
    pub workflow_id: String,
    pub status: RunStatus,
    pub inputs: Map<String, Value>,
    pub sys: SysVars,
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
    pub total_steps: u32,
    pub total_tokens: u64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub elapsed_time: f64,
}

impl RunRecord {
    pub fn run_id(&self) -> &str {
        &self.sys.workflow_run_id
    }

    /// Applies a finished run's outcome.
    pub fn finish(&mut self, outcome: RunOutcome) {
        self.status = outcome.status;
        self.outputs = outcome.outputs;
        self.error = outcome.error;
        self.total_steps = outcome.total_steps;
        self.total_tokens = outcome.total_tokens;
        self.finished_at = Some(outcome.finished_at);
        self.elapsed_time = outcome.elapsed_time;
    }
}

/// Storage of run records.
pub trait RunStore: Send + Sync + 'static {
    /// Inserts or replaces the record with this run id.
    fn put(&self, record: RunRecord);
    /// The record of `run_id` if it belongs to `app_id`.
    fn get(&self, app_id: &str, run_id: &str) -> Option<RunRecord>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded in-memory store; the oldest records go first.
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    hasher: RandomState,
}

#[derive(Default)]
struct Shard {
    records: HashMap<String, RunRecord>,
    order: VecDeque<String>,
}

impl MemoryStore {
    pub fn new(capacity: usize) -> Self {
        Self {
            shards: (0..N_SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(N_SHARDS).max(1),
            hasher: RandomState::new(),
        }
    }

    fn shard(&self, run_id: &str) -> &Mutex<Shard> {
        &self.shards[self.hasher.hash_one(run_id) as usize % N_SHARDS]
    }
}

impl RunStore for MemoryStore {
    fn put(&self, record: RunRecord) {
        let mut shard = self.shard(record.run_id()).lock().unwrap_or_else(|e| e.into_inner());
        let id = record.run_id().to_owned();
        if shard.records.insert(id.clone(), record).is_none() {
            shard.order.push_back(id);
            while shard.order.len() > self.per_shard {
                if let Some(old) = shard.order.pop_front() {
                    shard.records.remove(&old);
                }
            }
        }
    }

    fn get(&self, app_id: &str, run_id: &str) -> Option<RunRecord> {
        let shard = self.shard(run_id).lock().unwrap_or_else(|e| e.into_inner());
        shard.records.get(run_id).filter(|r| r.app_id == app_id).cloned()
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap_or_else(|e| e.into_inner()).records.len()).sum()
    }
}

/// Running streaming tasks that can be stopped.
pub struct TaskRegistry {
    shards: Vec<Mutex<HashMap<String, TaskEntry>>>,
    hasher: RandomState,
}

struct TaskEntry {
    app_id: String,
    user: String,
    stop: CancellationToken,
}

impl Default for TaskRegistry {
    fn default() -> Self {
        Self { shards: (0..N_SHARDS).map(|_| Mutex::default()).collect(), hasher: RandomState::new() }
    }
}

impl TaskRegistry {
    fn shard(&self, task_id: &str) -> &Mutex<HashMap<String, TaskEntry>> {
        &self.shards[self.hasher.hash_one(task_id) as usize % N_SHARDS]
    }

    pub fn register(&self, task_id: &str, app_id: &str, user: &str, stop: CancellationToken) {
        let entry = TaskEntry { app_id: app_id.to_owned(), user: user.to_owned(), stop };
        self.shard(task_id).lock().unwrap_or_else(|e| e.into_inner()).insert(task_id.to_owned(), entry);
    }

    pub fn remove(&self, task_id: &str) {
        self.shard(task_id).lock().unwrap_or_else(|e| e.into_inner()).remove(task_id);
    }

    /// Stops the task if it is running for this app and user; true if it was.
    pub fn stop(&self, task_id: &str, app_id: &str, user: &str) -> bool {
        let shard = self.shard(task_id).lock().unwrap_or_else(|e| e.into_inner());
        match shard.get(task_id) {
            Some(entry) if entry.app_id == app_id && entry.user == user => {
                entry.stop.cancel();
                true
            }
            _ => false,
        }
    }
}
