//! Run records and running tasks.
//!
//! `RunStore` is the small trait a durable store can implement later;
//! `MemoryStore` is bounded (oldest records evicted first) and sharded so no
//! request takes a global lock. `TaskRegistry` maps a streaming run's task id
//! to its stop token, so `POST /v1/workflows/tasks/{id}/stop` reaches it.

use serde_json::{Map, Value};
use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher, RandomState};
use std::sync::Mutex;
use tokio_util::sync::CancellationToken;

const N_SHARDS: usize = 16;

/// A stored run: its app and its record.
#[derive(Debug, Clone)]
struct StoredRun {
    app_id: u128,
    record: RunRecord,
}

/// What `GET /v1/workflows/run/{id}` answers for one run, packed: the
/// numbers inline, and the run's own text (its user inputs and outputs as
/// compact JSON, the user id, the error) in one allocation of about a
/// hundred bytes. The body is rendered from it on `GET` (`render`), which
/// is rare, not on every run: rendering at each put (two JSON passes and
/// a 600-byte body per run) took 24% of the server's CPU on Start→End at
/// saturation (perf), and 100,000 kept bodies were 60 MB of cold memory.
/// Run, app and workflow ids are not kept: the key and the app give them.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub status: &'static str,
    pub total_steps: u32,
    pub total_tokens: u64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub elapsed_time: f64,
    /// `inputs JSON | user id | outputs JSON | error`, split at `ends`.
    text: Box<str>,
    ends: [u32; 3],
    has_error: bool,
}

/// A run's parts as `RunRecord::pack` takes them.
pub struct RecordParts<'a> {
    pub status: &'static str,
    pub inputs: &'a Map<String, Value>,
    pub user_id: &'a str,
    pub outputs: &'a Map<String, Value>,
    pub error: Option<&'a str>,
    pub total_steps: u32,
    pub total_tokens: u64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub elapsed_time: f64,
}

impl RunRecord {
    pub fn pack(parts: &RecordParts<'_>) -> Self {
        let error = parts.error.unwrap_or("");
        let mut text = Vec::with_capacity(64 + parts.user_id.len() + error.len());
        // Maps of JSON values always serialize.
        serde_json::to_writer(&mut text, parts.inputs).expect("serialize to Vec");
        let inputs_end = text.len();
        text.extend_from_slice(parts.user_id.as_bytes());
        let user_end = text.len();
        serde_json::to_writer(&mut text, parts.outputs).expect("serialize to Vec");
        let outputs_end = text.len();
        text.extend_from_slice(error.as_bytes());
        let text = String::from_utf8(text).expect("JSON and &str are UTF-8").into_boxed_str();
        let end = |n: usize| u32::try_from(n).expect("a run's text is under the body limit");
        Self {
            status: parts.status,
            total_steps: parts.total_steps,
            total_tokens: parts.total_tokens,
            created_at: parts.created_at,
            finished_at: parts.finished_at,
            elapsed_time: parts.elapsed_time,
            text,
            ends: [end(inputs_end), end(user_end), end(outputs_end)],
            has_error: parts.error.is_some(),
        }
    }

    fn inputs_json(&self) -> &str {
        &self.text[..self.ends[0] as usize]
    }

    pub fn user_id(&self) -> &str {
        &self.text[self.ends[0] as usize..self.ends[1] as usize]
    }

    fn outputs_json(&self) -> &str {
        &self.text[self.ends[1] as usize..self.ends[2] as usize]
    }

    pub fn error(&self) -> Option<&str> {
        self.has_error.then(|| &self.text[self.ends[2] as usize..])
    }

    /// The run's user inputs, in declaration order. (They were packed from
    /// a map serde_json parsed, so they parse back; never a panic if not.)
    pub fn inputs(&self) -> Map<String, Value> {
        serde_json::from_str(self.inputs_json()).unwrap_or_default()
    }

    /// The run's outputs.
    pub fn outputs(&self) -> Map<String, Value> {
        serde_json::from_str(self.outputs_json()).unwrap_or_default()
    }
}

/// Storage of run records.
pub trait RunStore: Send + Sync + 'static {
    /// Inserts or replaces the run `run_id` of `app_id` (canonical UUIDs, as
    /// the server makes them) with `record`.
    fn put(&self, app_id: &str, run_id: &str, record: RunRecord);
    /// The record of `run_id` if it belongs to `app_id`.
    fn get(&self, app_id: &str, run_id: &str) -> Option<RunRecord>;
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
    fn put(&self, app_id: &str, run_id: &str, record: RunRecord) {
        let (Some(id), Some(app_id)) = (id_bits(run_id), id_bits(app_id)) else {
            debug_assert!(false, "run and app ids are canonical UUIDs: {run_id}, {app_id}");
            return;
        };
        let evicted = {
            let mut shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
            let mut evicted = None;
            if shard.records.insert(id, StoredRun { app_id, record }).is_none() {
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

    fn get(&self, app_id: &str, run_id: &str) -> Option<RunRecord> {
        let (id, app_id) = (id_bits(run_id)?, id_bits(app_id)?);
        let shard = self.shard(id).lock().unwrap_or_else(|e| e.into_inner());
        shard.records.get(&id).filter(|r| r.app_id == app_id).map(|r| r.record.clone())
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

    /// A record whose user id is `user`.
    fn record(status: &'static str, user: &str) -> RunRecord {
        let map = Map::new();
        RunRecord::pack(&RecordParts {
            status,
            inputs: &map,
            user_id: user,
            outputs: &map,
            error: None,
            total_steps: 0,
            total_tokens: 0,
            created_at: 0,
            finished_at: None,
            elapsed_time: 0.0,
        })
    }

    #[test]
    fn a_record_gives_back_what_was_packed() {
        let inputs: Map<String, Value> = serde_json::from_str(r#"{"q":"h\u00e9/\"x","n":1.5,"z":null}"#).unwrap();
        let outputs: Map<String, Value> = serde_json::from_str(r#"{"answer":"a/b","list":[1,{"k":true}]}"#).unwrap();
        for error in [None, Some(""), Some("upstream said: 500 / é")] {
            let r = RunRecord::pack(&RecordParts {
                status: "failed",
                inputs: &inputs,
                user_id: "usér/1",
                outputs: &outputs,
                error,
                total_steps: 3,
                total_tokens: 42,
                created_at: 1,
                finished_at: Some(2),
                elapsed_time: 0.25,
            });
            assert_eq!(r.inputs(), inputs);
            // Key order is kept.
            assert_eq!(r.inputs().keys().collect::<Vec<_>>(), ["q", "n", "z"]);
            assert_eq!(r.user_id(), "usér/1");
            assert_eq!(r.outputs(), outputs);
            assert_eq!(r.error(), error);
            assert_eq!((r.total_steps, r.total_tokens, r.finished_at), (3, 42, Some(2)));
        }
    }

    #[test]
    fn a_run_is_found_by_its_exact_id_and_app_only() {
        let store = MemoryStore::new(100);
        let id = uuid::Uuid::new_v4().to_string();
        store.put(APP, &id, record("running", &id));
        assert_eq!(store.get(APP, &id).unwrap().status, "running");
        assert!(store.get(OTHER_APP, &id).is_none());
        assert!(store.get("not-an-app", &id).is_none());
        // Another spelling of the same UUID is another id, as a string compare would say.
        assert!(store.get(APP, &id.to_uppercase()).is_none());
        assert!(store.get(APP, &id.replace('-', "")).is_none());
        assert!(store.get(APP, "not-a-uuid").is_none());
        // Put again (a run that finished): replaced, not added.
        store.put(APP, &id, record("succeeded", &id));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get(APP, &id).unwrap().status, "succeeded");
    }

    #[test]
    fn the_oldest_runs_go_first() {
        let store = MemoryStore::new(N_SHARDS * 4);
        let ids: Vec<String> = (0..N_SHARDS * 40).map(|_| uuid::Uuid::new_v4().to_string()).collect();
        for id in &ids {
            store.put(APP, id, record("succeeded", id));
        }
        assert!(store.len() <= N_SHARDS * 4, "{}", store.len());
        // The newest run is still there; the first run is long gone.
        assert_eq!(store.get(APP, ids.last().unwrap()).unwrap().user_id(), ids.last().unwrap());
        assert!(store.get(APP, &ids[0]).is_none());
    }
}
