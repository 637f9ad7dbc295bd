//! Run records and running tasks.
//!
//! `RunStore` is the small trait a durable store can implement later;
//! `MemoryStore` is bounded (oldest records evicted first) and sharded so no
//! request takes a global lock. `TaskRegistry` maps a streaming run's task id
//! to its stop token, so `POST /v1/workflows/tasks/{id}/stop` reaches it.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

const N_SHARDS: usize = 16;

/// A stored run: its app and the body `GET /v1/workflows/run/{id}` answers,
/// rendered when the run was stored. One allocation per run, so evicting
/// the oldest is one free: with the run kept as fields (a dozen strings and
/// JSON maps, freed cold at eviction) the store took 12% of the server's
/// CPU on Start→End at saturation (perf).
#[derive(Debug, Clone)]
pub struct StoredRun {
    app_id: u128,
    pub body: Bytes,
}

/// Storage of run records.
pub trait RunStore: Send + Sync + 'static {
    /// Inserts or replaces the run `run_id` of `app_id` (canonical UUIDs, as
    /// the server makes them) with its rendered `body`.
    fn put(&self, app_id: &str, run_id: &str, body: Bytes);
    /// The body of `run_id` if it belongs to `app_id`.
    fn get(&self, app_id: &str, run_id: &str) -> Option<Bytes>;
    fn len(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded in-memory store; the oldest records go first.
///
/// Keyed by the run id's 128 bits, not its string (no key allocation, no
/// SipHash of 36 bytes per put and per eviction).
pub struct MemoryStore {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
}

#[derive(Default)]
struct Shard {
    records: HashMap<u128, StoredRun, BuildHasherDefault<IdHasher>>,
    order: VecDeque<u128>,
}

/// Run ids are random v4 UUIDs the server made: their low 64 bits already
/// are a uniform hash, and no client chooses a key that is inserted.
#[derive(Default)]
struct IdHasher(u64);

impl Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }

    fn write_u128(&mut self, id: u128) {
        self.0 = id as u64 ^ (id >> 64) as u64;
    }
}

/// The 128 bits of a run id in its canonical form (lowercase, hyphenated),
/// as the server writes them; any other spelling names no run.
fn id_bits(run_id: &str) -> Option<u128> {
    let id = uuid::Uuid::try_parse(run_id).ok()?;
    let mut buf = [0u8; uuid::fmt::Hyphenated::LENGTH];
    (id.hyphenated().encode_lower(&mut buf) == run_id).then_some(id.as_u128())
}

impl MemoryStore {
    pub fn new(capacity: usize) -> Self {
        Self { shards: (0..N_SHARDS).map(|_| Mutex::default()).collect(), per_shard: capacity.div_ceil(N_SHARDS).max(1) }
    }

    fn shard(&self, id: u128) -> &Mutex<Shard> {
        &self.shards[(id >> 64) as usize % N_SHARDS]
    }
}

impl RunStore for MemoryStore {
    fn put(&self, app_id: &str, run_id: &str, body: Bytes) {
        let (Some(id), Some(app_id)) = (id_bits(run_id), id_bits(app_id)) else {
            debug_assert!(false, "run and app ids are canonical UUIDs: {run_id}, {app_id}");
            return;
        };
        let evicted = {
            let mut shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
            let mut evicted = None;
            if shard.records.insert(id, StoredRun { app_id, body }).is_none() {
                shard.order.push_back(id);
                if shard.order.len() > self.per_shard
                    && let Some(old) = shard.order.pop_front()
                {
                    evicted = shard.records.remove(&old);
                }
            }
            evicted
        };
        // The oldest record is freed outside the lock.
        drop(evicted);
    }

    fn get(&self, app_id: &str, run_id: &str) -> Option<Bytes> {
        let (id, app_id) = (id_bits(run_id)?, id_bits(app_id)?);
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.records.get(&id).filter(|r| r.app_id == app_id).map(|r| r.body.clone())
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

#[cfg(test)]
mod tests {
    use super::*;

    const APP: &str = "6f1d3c1e-1f0b-5a55-9a4e-3f7b2d1c0a99";
    const OTHER_APP: &str = "0b8e4c7a-2d3f-5b6c-8d9e-0f1a2b3c4d5e";

    #[test]
    fn a_run_is_found_by_its_exact_id_and_app_only() {
        let store = MemoryStore::new(100);
        let id = uuid::Uuid::new_v4().to_string();
        store.put(APP, &id, Bytes::from_static(b"running"));
        assert_eq!(store.get(APP, &id), Some(Bytes::from_static(b"running")));
        assert!(store.get(OTHER_APP, &id).is_none());
        assert!(store.get("not-an-app", &id).is_none());
        // Another spelling of the same UUID is another id, as a string compare would say.
        assert!(store.get(APP, &id.to_uppercase()).is_none());
        assert!(store.get(APP, &id.replace('-', "")).is_none());
        assert!(store.get(APP, "not-a-uuid").is_none());
        // Put again (a run that finished): replaced, not added.
        store.put(APP, &id, Bytes::from_static(b"succeeded"));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(APP, &id), Some(Bytes::from_static(b"succeeded")));
    }

    #[test]
    fn the_oldest_runs_go_first() {
        let store = MemoryStore::new(N_SHARDS * 4);
        let ids: Vec<String> = (0..N_SHARDS * 40).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        for id in &ids {
            store.put(APP, id, Bytes::from(id.clone()));
        }
        assert!(store.len() <= N_SHARDS * 4, "{}", store.len());
        // The newest run is still there; the first run is long gone.
        assert_eq!(store.get(APP, ids.last().unwrap()), Some(Bytes::from(ids.last().unwrap().clone())));
        assert!(store.get(APP, &ids[0]).is_none());
    }
}
