//! Running streaming tasks that can be stopped: `TaskRegistry` maps a
//! streaming run's task id to its app, its user and its stop token, so
//! `POST /v1/workflows/tasks/{id}/stop` reaches the run wherever it is
//! polled (and, through a database store, on another replica).

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

/// Shards of the map: a stop or a start locks one.
const N_SHARDS: usize = 16;

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
