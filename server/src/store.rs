//! Run records.
//!
//! `RunStore` is what a store implements: `MemoryStore` here, bounded
//! (oldest runs evicted first) and sharded so no request takes a global
//! lock; `sqlite_store::SqliteStore`, durable in one file; and
//! `pg_store::PgStore`, shared by replicas. Running tasks are `tasks.rs`'s.

use crate::workflow::events::RunTotals;
use serde_json::{Map, Value};
use std::hash::{BuildHasher, RandomState};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use uuid::Uuid;

/// What `GET /v1/workflows/run/{id}` answers for one run, packed: the
/// numbers inline, and the run's own text (its user inputs and outputs as
/// compact JSON, the user id, the error) in one small allocation. The body
/// is rendered from it on `GET` (`http::render_record`), which is rare, not
/// on every run: rendering at each put (two JSON passes and a body several
/// times the record's size) was the largest part of a Start→End run's CPU,
/// and a full store of kept bodies a large share of the server's memory
/// (docs/performance.md).
/// Run, app and workflow ids are not kept: the key and the app give them.
#[derive(Debug, Clone)]
pub struct RunRecord {
    pub totals: RunTotals,
    /// `inputs JSON | user id | outputs JSON | node executions JSON | error`,
    /// split at `ends`. Not shrunk to fit: that was a `realloc` per run.
    text: String,
    ends: [usize; 4],
    has_error: bool,
}

/// A run's parts as `RunRecord::pack` takes them.
pub struct RecordParts<'a> {
    pub totals: RunTotals,
    pub inputs: &'a Map<String, Value>,
    pub user_id: &'a str,
    pub outputs: &'a Map<String, Value>,
    pub error: Option<&'a str>,
    /// The node executions as a JSON array, or empty when the store does
    /// not keep them.
    pub nodes_json: &'a str,
}

impl RunRecord {
    pub fn pack(parts: &RecordParts<'_>) -> Self {
        let error = parts.error.unwrap_or("");
        let mut text = Vec::with_capacity(128 + parts.user_id.len() + error.len() + parts.nodes_json.len());
        // Maps of JSON values always serialize.
        serde_json::to_writer(&mut text, parts.inputs).expect("serialize to Vec");
        let inputs_end = text.len();
        text.extend_from_slice(parts.user_id.as_bytes());
        let user_end = text.len();
        serde_json::to_writer(&mut text, parts.outputs).expect("serialize to Vec");
        let outputs_end = text.len();
        text.extend_from_slice(parts.nodes_json.as_bytes());
        let nodes_end = text.len();
        text.extend_from_slice(error.as_bytes());
        let text = String::from_utf8(text).expect("JSON and &str are UTF-8");
        Self { totals: parts.totals, text, ends: [inputs_end, user_end, outputs_end, nodes_end], has_error: parts.error.is_some() }
    }

    pub(crate) fn inputs_json(&self) -> &str {
        &self.text[..self.ends[0]]
    }

    pub fn user_id(&self) -> &str {
        &self.text[self.ends[0]..self.ends[1]]
    }

    pub(crate) fn outputs_json(&self) -> &str {
        &self.text[self.ends[1]..self.ends[2]]
    }

    /// The node executions (a JSON array), or empty when not kept.
    pub fn nodes_json(&self) -> &str {
        &self.text[self.ends[2]..self.ends[3]]
    }

    pub fn error(&self) -> Option<&str> {
        self.has_error.then(|| &self.text[self.ends[3]..])
    }

    /// What the record holds beyond its slot: its text's allocation.
    pub fn heap_bytes(&self) -> usize {
        self.text.capacity()
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

/// When a `put` is durable: at once (memory: it is as durable as it will
/// be), or when its batch commits (a database).
pub enum Committed {
    Now,
    /// `true` once committed; `false` (or dropped) if the record could not be.
    Later(tokio::sync::oneshot::Receiver<bool>),
}

impl Committed {
    /// Whether the record is stored: resolves once it is committed, or
    /// with `false` if it cannot be (the store failed it, or stopped).
    pub async fn wait(self) -> bool {
        match self {
            Committed::Now => true,
            Committed::Later(done) => done.await.unwrap_or(false),
        }
    }
}

/// A store that could not answer (a database gone): not "no such run".
#[derive(Debug, thiserror::Error)]
#[error("the run store: {0}")]
pub struct StoreError(pub String);

/// An error with its causes (`tokio_postgres`, for one, shows only "db
/// error" for what PostgreSQL said).
pub struct Why<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for Why<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0)?;
        let mut cause = self.0.source();
        while let Some(c) = cause {
            write!(f, ": {c}")?;
            cause = c.source();
        }
        Ok(())
    }
}

/// Storage of run records.
pub trait RunStore: Send + Sync + 'static {
    /// A new run's id, a random-looking v4 UUID. A store may choose it so
    /// that it can find the run's record without an index (`MemoryStore`).
    fn new_run_id(&self, _app_id: Uuid) -> Uuid {
        Uuid::new_v4()
    }
    /// Inserts or replaces the run `run_id` of `app_id` with `record`;
    /// `get` sees it at once, and it is durable when the result resolves.
    fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed;
    /// The record of `run_id` (as a client spelled it: only the canonical
    /// lowercase, hyphenated form names a run) if it belongs to `app_id`.
    fn get<'a>(&'a self, app_id: Uuid, run_id: &'a str) -> futures_util::future::BoxFuture<'a, Result<Option<RunRecord>, StoreError>>;
    /// Whether records should carry their node executions (a database
    /// store, which writes them as Dify writes `workflow_node_executions`).
    fn keeps_nodes(&self) -> bool {
        false
    }
    /// A stop for a task this process does not run: a store shared by
    /// replicas passes it to the one that does.
    fn forward_stop(&self, _task_id: &str, _app_id: &str, _user: &str) {}
    /// Resolves once every record put so far is committed (at shutdown).
    fn flush(&self) -> futures_util::future::BoxFuture<'_, ()> {
        Box::pin(std::future::ready(()))
    }
    fn len(&self) -> usize;
    /// Records put and not yet committed (a database store's queue).
    fn uncommitted(&self) -> usize {
        0
    }
    /// Bytes the records hold beyond their slots.
    fn bytes(&self) -> usize;
    fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A bounded in-memory store, by count and by bytes; the oldest runs go
/// first.
///
/// No index: each shard is a ring of slots in the order runs began, and a
/// run's id says where its slot is. `new_run_id` takes the next slot of a
/// shard (evicting the oldest) and writes the shard and the slot's sequence
/// number into the UUID's low bits, masked by a keyed hash of its random
/// high bits, so ids still look random and a client cannot aim at another
/// run's slot: a slot answers only for the exact id it was made for. `put`
/// and `get` go straight to the slot. Each shard also holds at most its
/// share of `max_stored_bytes` in record text: past it, `put` drops the
/// records of its oldest runs, so a client sending the largest bodies
/// cannot make the store hold more than the bound (a record larger than a
/// shard's share is not kept at all). A hash map keyed by run id missed
/// the cache on every insert and every eviction, so a request cost more the
/// more runs were stored (docs/performance.md). A run still going when its
/// slot is taken (`max_stored_runs` newer runs began meanwhile) keeps no
/// record.
pub struct MemoryStore {
    shards: Vec<Mutex<StoreShard>>,
    per_shard: usize,
    bytes_per_shard: usize,
    next_shard: AtomicUsize,
    key: u64,
}

/// One ring of at most `per_shard` slots: the run of sequence number `seq`
/// sits at `slots[seq % per_shard]`, so a new run takes the place of the
/// one it evicts: one cold cache line per run, not two (reading the
/// evicted slot was the store's main cost).
#[derive(Default)]
struct StoreShard {
    slots: Vec<RunSlot>,
    /// The sequence number of the next run.
    next: u64,
    /// Record text held, in bytes.
    bytes: usize,
    /// Runs before this sequence number keep no record: their slots were
    /// taken, or their records dropped for bytes.
    oldest: u64,
}

struct RunSlot {
    id: u128,
    app_id: u128,
    record: Option<RunRecord>,
}

const SHARD_BITS: u32 = 4;
const N_SHARDS: usize = 1 << SHARD_BITS;
/// The UUID bits that are neither its version nor its variant, in the low
/// half: 62 bits, for the shard and the sequence number.
const PAYLOAD_MASK: u64 = (1 << 62) - 1;

/// A run id in any spelling Dify's PostgreSQL reads as a `uuid` (its
/// `string_to_uuid`): 32 hex digits of either case, at most one hyphen
/// after any fourth digit but the last, the whole optionally in braces.
pub fn parse_run_id(id: &str) -> Option<Uuid> {
    let mut src = id.as_bytes();
    let braces = src.first() == Some(&b'{');
    if braces {
        src = &src[1..];
    }
    let mut bits = 0u128;
    for i in 0..16 {
        let (&[high, low], rest) = src.split_first_chunk::<2>()?;
        bits = (bits << 8) | u128::from(hex(high)? << 4 | hex(low)?);
        src = rest;
        if i % 2 == 1 && i < 15 && src.first() == Some(&b'-') {
            src = &src[1..];
        }
    }
    if braces {
        src = src.strip_prefix(b"}")?;
    }
    src.is_empty().then(|| Uuid::from_u128(bits))
}

fn hex(digit: u8) -> Option<u8> {
    (digit as char).to_digit(16).map(|d| d as u8)
}

fn id_bits(id: &str) -> Option<u128> {
    parse_run_id(id).map(|id| id.as_u128())
}

impl MemoryStore {
    pub fn new(capacity: usize, max_bytes: usize) -> Self {
        Self {
            shards: (0..N_SHARDS).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(N_SHARDS).max(1),
            bytes_per_shard: max_bytes / N_SHARDS,
            next_shard: AtomicUsize::new(0),
            key: RandomState::new().hash_one(0u8),
        }
    }

    /// The mask over a run id's payload: a keyed mix (splitmix64's
    /// finalizer) of its random high half.
    fn mask(&self, high: u64) -> u64 {
        let mut x = high ^ self.key;
        x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        (x ^ (x >> 31)) & PAYLOAD_MASK
    }

    /// The shard and sequence number a run id of this store points at.
    fn locate(&self, id: u128) -> (usize, u64) {
        let payload = (id as u64 & PAYLOAD_MASK) ^ self.mask((id >> 64) as u64);
        ((payload & (N_SHARDS as u64 - 1)) as usize, payload >> SHARD_BITS)
    }

    fn lock(&self, shard: usize) -> std::sync::MutexGuard<'_, StoreShard> {
        self.shards[shard].lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl StoreShard {
    /// The slot of run `seq`, if it has not been taken by a newer run.
    fn slot_mut(&mut self, seq: u64, per_shard: usize) -> Option<&mut RunSlot> {
        let age = self.next.checked_sub(seq)?;
        if age == 0 || age > self.slots.len() as u64 {
            return None;
        }
        self.slots.get_mut((seq % per_shard as u64) as usize)
    }

    /// Drops the oldest runs' records until the shard holds at most
    /// `budget` bytes; returns them, to be freed outside the lock.
    fn trim(&mut self, budget: usize, per_shard: usize) -> Vec<RunRecord> {
        let mut dropped = Vec::new();
        self.oldest = self.oldest.max(self.next.saturating_sub(self.slots.len() as u64));
        while self.bytes > budget && self.oldest < self.next {
            let index = (self.oldest % per_shard as u64) as usize;
            if let Some(record) = self.slots[index].record.take() {
                self.bytes -= record.heap_bytes();
                dropped.push(record);
            }
            self.oldest += 1;
        }
        dropped
    }
}

/// Asks the CPU to bring `value`'s cache lines in, without waiting for them.
#[inline]
fn prefetch<T>(value: &T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        let start = (value as *const T).cast::<i8>();
        let last = std::mem::size_of::<T>().saturating_sub(1);
        // Every 64-byte line the value touches: one address in each, and
        // its last byte, for a value that does not start on a line.
        for offset in (0..last).step_by(64).chain([last]) {
            // SAFETY: SSE is in every x86_64 CPU, and a prefetch never
            // faults, whatever the address.
            #[allow(unsafe_code)]
            unsafe {
                _mm_prefetch::<_MM_HINT_T0>(start.wrapping_add(offset))
            };
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = value;
}

impl MemoryStore {
    /// The record of `run_id`, as `RunStore::get`, without a future.
    pub fn get_now(&self, app_id: Uuid, run_id: &str) -> Option<RunRecord> {
        let (id, app_id) = (id_bits(run_id)?, app_id.as_u128());
        let (shard, seq) = self.locate(id);
        let mut ring = self.lock(shard);
        let slot = ring.slot_mut(seq, self.per_shard)?;
        if slot.id == id && slot.app_id == app_id { slot.record.clone() } else { None }
    }
}

impl RunStore for MemoryStore {
    fn new_run_id(&self, app_id: Uuid) -> Uuid {
        let random = Uuid::new_v4().as_u128();
        let app_id = app_id.as_u128();
        let shard = self.next_shard.fetch_add(1, Ordering::Relaxed) % N_SHARDS;
        let high = (random >> 64) as u64;
        let (id, evicted) = {
            let mut ring = self.lock(shard);
            let seq = ring.next;
            ring.next += 1;
            let payload = ((seq << SHARD_BITS) | shard as u64) & PAYLOAD_MASK;
            // The variant bits (0b10) stay; the version nibble is in `high`.
            let low = (random as u64 & !PAYLOAD_MASK) | (payload ^ self.mask(high));
            let id = (u128::from(high) << 64) | u128::from(low);
            let slot = RunSlot { id, app_id, record: None };
            let evicted = if ring.slots.len() < self.per_shard {
                if ring.slots.len() == ring.slots.capacity() {
                    let more = ring.slots.len().max(64).min(self.per_shard - ring.slots.len());
                    ring.slots.reserve_exact(more);
                }
                ring.slots.push(slot);
                None
            } else {
                let taken = std::mem::replace(&mut ring.slots[(seq % self.per_shard as u64) as usize], slot);
                ring.bytes -= taken.record.as_ref().map_or(0, RunRecord::heap_bytes);
                // This shard's next run takes the next slot, N_SHARDS runs
                // from now: fetch it meanwhile instead of missing on it then.
                prefetch(&ring.slots[((seq + 1) % self.per_shard as u64) as usize]);
                Some(taken)
            };
            (id, evicted)
        };
        // The oldest run is freed outside the lock.
        drop(evicted);
        Uuid::from_u128(id)
    }

    fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed {
        let (id, app_id) = (run_id.as_u128(), app_id.as_u128());
        let (shard, seq) = self.locate(id);
        let (replaced, dropped) = {
            let mut ring = self.lock(shard);
            let size = record.heap_bytes();
            let kept = seq >= ring.oldest;
            match ring.slot_mut(seq, self.per_shard) {
                Some(slot) if kept && slot.id == id && slot.app_id == app_id => {
                    let replaced = slot.record.replace(record);
                    ring.bytes = ring.bytes + size - replaced.as_ref().map_or(0, RunRecord::heap_bytes);
                    let dropped =
                        if ring.bytes > self.bytes_per_shard { ring.trim(self.bytes_per_shard, self.per_shard) } else { Vec::new() };
                    (replaced, dropped)
                }
                // Evicted while it ran, or not an id of this store.
                _ => (Some(record), Vec::new()),
            }
        };
        // What is freed is freed outside the lock.
        drop((replaced, dropped));
        Committed::Now
    }

    fn get<'a>(&'a self, app_id: Uuid, run_id: &'a str) -> futures_util::future::BoxFuture<'a, Result<Option<RunRecord>, StoreError>> {
        let record = self.get_now(app_id, run_id);
        Box::pin(std::future::ready(Ok(record)))
    }

    fn bytes(&self) -> usize {
        (0..N_SHARDS).map(|i| self.lock(i).bytes).sum()
    }

    /// Runs that have a record (a scan: for tests, not the request path).
    fn len(&self) -> usize {
        (0..N_SHARDS).map(|i| self.lock(i).slots.iter().filter(|s| s.record.is_some()).count()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::workflow::events::RunStatus;

    const APP: Uuid = Uuid::from_u128(0x6f1d3c1e_1f0b_5a55_9a4e_3f7b2d1c0a99);
    const OTHER_APP: Uuid = Uuid::from_u128(0x0b8e4c7a_2d3f_5b6c_8d9e_0f1a2b3c4d5e);

    /// A record whose user id is `user`.
    fn record(status: RunStatus, user: &str) -> RunRecord {
        let map = Map::new();
        let totals = RunTotals { status, ..RunTotals::running(0) };
        RunRecord::pack(&RecordParts { totals, inputs: &map, user_id: user, outputs: &map, error: None, nodes_json: "" })
    }

    #[test]
    fn a_record_gives_back_what_was_packed() {
        let inputs: Map<String, Value> = serde_json::from_str(r#"{"q":"h\u00e9/\"x","n":1.5,"z":null}"#).unwrap();
        let outputs: Map<String, Value> = serde_json::from_str(r#"{"answer":"a/b","list":[1,{"k":true}]}"#).unwrap();
        for error in [None, Some(""), Some("upstream said: 500 / é")] {
            let totals = RunTotals {
                status: RunStatus::Failed,
                total_steps: 3,
                total_tokens: 42,
                created_at: 1,
                finished_at: Some(2),
                elapsed_time: 0.25,
            };
            let r =
                RunRecord::pack(&RecordParts { totals, inputs: &inputs, user_id: "usér/1", outputs: &outputs, error, nodes_json: "[]" });
            assert_eq!(r.inputs(), inputs);
            // Key order is kept.
            assert_eq!(r.inputs().keys().collect::<Vec<_>>(), ["q", "n", "z"]);
            assert_eq!(r.user_id(), "usér/1");
            assert_eq!(r.outputs(), outputs);
            assert_eq!(r.error(), error);
            assert_eq!(r.nodes_json(), "[]");
            assert_eq!((r.totals.total_steps, r.totals.total_tokens, r.totals.finished_at), (3, 42, Some(2)));
        }
    }

    #[test]
    fn a_run_is_found_by_its_exact_id_and_app_only() {
        let store = MemoryStore::new(100, usize::MAX);
        let uuid = store.new_run_id(APP);
        let id = uuid.to_string();
        // Reserved, not yet stored.
        assert!(store.get_now(APP, &id).is_none());
        store.put(APP, uuid, record(RunStatus::Running, &id));
        assert_eq!(store.get_now(APP, &id).unwrap().totals.status, RunStatus::Running);
        assert!(store.get_now(OTHER_APP, &id).is_none());
        // Every spelling PostgreSQL reads as this UUID names it, as in Dify.
        let plain = id.replace('-', "");
        let spellings = [
            id.to_uppercase(),
            plain.clone(),
            format!("{{{id}}}"),
            plain.as_bytes().chunks(4).map(|c| std::str::from_utf8(c).unwrap()).collect::<Vec<_>>().join("-"),
            format!("{{{}-{}}}", &plain[..8], &plain[8..]),
        ];
        for spelling in &spellings {
            assert!(store.get_now(APP, spelling).is_some(), "{spelling}");
        }
        // And nothing PostgreSQL refuses.
        let refused = [
            "not-a-uuid".to_owned(),
            format!("-{plain}"),
            format!("{plain}-"),
            format!("{}--{}", &plain[..4], &plain[4..]),
            format!("{}-{}", &plain[..3], &plain[3..]),
            format!("{{{id}"),
            format!("{id}}}"),
            format!(" {id}"),
            format!("{id}0"),
            plain[..31].to_owned(),
        ];
        for spelling in &refused {
            assert!(parse_run_id(spelling).is_none(), "{spelling}");
        }
        // Put again (a run that finished): replaced, not added.
        store.put(APP, uuid, record(RunStatus::Succeeded, &id));
        assert_eq!(store.len(), 1);
        assert_eq!(store.get_now(APP, &id).unwrap().totals.status, RunStatus::Succeeded);
        // Another app cannot overwrite it either.
        store.put(OTHER_APP, uuid, record(RunStatus::Failed, &id));
        assert_eq!(store.get_now(APP, &id).unwrap().totals.status, RunStatus::Succeeded);
    }

    #[test]
    fn ids_are_distinct_v4_uuids_and_a_forged_one_finds_nothing() {
        let store = MemoryStore::new(1000, usize::MAX);
        let ids: Vec<Uuid> = (0..1000).map(|_| store.new_run_id(APP)).collect();
        let distinct: std::collections::HashSet<_> = ids.iter().collect();
        assert_eq!(distinct.len(), ids.len());
        for id in &ids {
            assert_eq!(id.get_version_num(), 4, "{id}");
            assert_eq!(id.get_variant(), uuid::Variant::RFC4122, "{id}");
            store.put(APP, *id, record(RunStatus::Succeeded, "u"));
        }
        // The payload is masked: consecutive runs do not differ by one.
        let lows: Vec<u64> = ids.iter().map(|id| id.as_u128() as u64 & PAYLOAD_MASK).collect();
        assert!(lows.windows(2).all(|w| w[1].abs_diff(w[0]) > 1 << 20), "{lows:x?}");
        // Any other id, a neighbour in either half or a random one, finds no record.
        for (i, id) in ids.iter().enumerate() {
            let bits = id.as_u128();
            for forged in [bits ^ 1, bits ^ (1 << 70), bits ^ (1 << 4), Uuid::new_v4().as_u128()] {
                let forged = Uuid::from_u128(forged).to_string();
                assert!(store.get_now(APP, &forged).is_none(), "{i}: {forged}");
            }
        }
        assert_eq!(store.len(), 1000);
    }

    #[test]
    fn the_oldest_runs_go_first() {
        let store = MemoryStore::new(N_SHARDS * 4, usize::MAX);
        let ids: Vec<String> = (0..N_SHARDS * 40)
            .map(|_| {
                let id = store.new_run_id(APP);
                store.put(APP, id, record(RunStatus::Succeeded, &id.to_string()));
                id.to_string()
            })
            .collect();
        assert_eq!(store.len(), N_SHARDS * 4);
        // Exactly the newest runs are still there, each in its own slot of
        // a ring that has wrapped around ten times; the older ones are gone.
        let (gone, kept) = ids.split_at(ids.len() - N_SHARDS * 4);
        for id in kept {
            assert_eq!(store.get_now(APP, id).expect("a recent run is kept").user_id(), id);
        }
        assert!(gone.iter().all(|id| store.get_now(APP, id).is_none()));
    }

    #[test]
    fn a_run_that_outlives_its_slot_keeps_no_record() {
        let store = MemoryStore::new(N_SHARDS, usize::MAX);
        let long = store.new_run_id(APP);
        store.put(APP, long, record(RunStatus::Running, "long"));
        for _ in 0..N_SHARDS * 3 {
            let id = store.new_run_id(APP);
            store.put(APP, id, record(RunStatus::Succeeded, "short"));
        }
        store.put(APP, long, record(RunStatus::Succeeded, "long"));
        assert!(store.get_now(APP, &long.to_string()).is_none());
        assert_eq!(store.len(), N_SHARDS);
    }

    #[test]
    fn the_store_holds_at_most_its_bytes_dropping_the_oldest_runs() {
        // Room for 1,000 runs by count, for 2 large records a shard by bytes.
        const BIG: usize = 10_000;
        let store = MemoryStore::new(1000, N_SHARDS * (2 * BIG + BIG / 2));
        let big = "u".repeat(BIG);
        let ids: Vec<String> = (0..N_SHARDS * 10)
            .map(|_| {
                let id = store.new_run_id(APP);
                store.put(APP, id, record(RunStatus::Succeeded, &big));
                id.to_string()
            })
            .collect();
        assert!(store.bytes() <= N_SHARDS * (2 * BIG + BIG / 2), "{} bytes held", store.bytes());
        assert_eq!(store.len(), N_SHARDS * 2);
        let (gone, kept) = ids.split_at(ids.len() - N_SHARDS * 2);
        assert!(kept.iter().all(|id| store.get_now(APP, id).is_some()), "the newest runs are kept");
        assert!(gone.iter().all(|id| store.get_now(APP, id).is_none()), "the oldest went first");
        // A running record dropped for bytes is not put back when it ends.
        let long = store.new_run_id(APP);
        store.put(APP, long, record(RunStatus::Running, "long"));
        for _ in 0..N_SHARDS * 3 {
            let id = store.new_run_id(APP);
            store.put(APP, id, record(RunStatus::Succeeded, &big));
        }
        store.put(APP, long, record(RunStatus::Succeeded, "long"));
        assert!(store.get_now(APP, &long.to_string()).is_none());
        // A record larger than a shard's share is not kept at all.
        let huge = store.new_run_id(APP);
        store.put(APP, huge, record(RunStatus::Succeeded, &"h".repeat(3 * BIG)));
        assert!(store.get_now(APP, &huge.to_string()).is_none());
        assert!(store.bytes() <= N_SHARDS * (2 * BIG + BIG / 2));
    }
}
