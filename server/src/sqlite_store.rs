//! A run store in one SQLite file (`store = "sqlite:PATH"`): embedded and
//! durable, for one machine.
//!
//! - One writer thread commits whatever is waiting as one transaction
//!   (group commit: a run costs a share of one `fsync`, not one). The file
//!   is in WAL mode with `synchronous = FULL`, so a committed run survives
//!   the process being killed and the machine losing power
//!   (`sqlite:PATH?synchronous=normal`: the process being killed only).
//!   `put` resolves once its transaction commits; the server answers only
//!   after that.
//! - Until its batch commits a record is also kept in memory, so `GET` sees
//!   it at once.
//! - Several processes may share the file (`--reuse-port` replicas): a stop
//!   for a task this process does not run is written to `flowbench_stops`,
//!   which every process reads every `STOP_POLL`.
//! - The schema is created at open.

use crate::batch::{Batch, Message, Outbox, Write, no_nul, status};
use crate::store::{Committed, RecordParts, RunRecord, RunStore, StoreError};
use crate::tasks::TaskRegistry;
use crate::workflow::events::RunTotals;
use futures_util::future::BoxFuture;
use rusqlite::{Connection, OptionalExtension, params};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::mpsc;
use uuid::Uuid;

/// Records one transaction may hold.
const MAX_BATCH: usize = 4096;
/// How often a process reads the stops others passed on: the bound on a
/// stop through another process, beyond the stop itself.
const STOP_POLL: Duration = Duration::from_millis(20);
/// How long a stop is kept for processes to read.
const STOP_KEPT_MS: i64 = 60_000;
/// How long a statement waits for another process's write to finish.
const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS flowbench_runs (
    id text PRIMARY KEY,
    app_id text NOT NULL,
    status text NOT NULL,
    total_tokens integer NOT NULL,
    total_steps integer NOT NULL,
    elapsed_time real NOT NULL,
    created_at integer NOT NULL,
    finished_at integer,
    inputs text NOT NULL,
    user_id text NOT NULL,
    outputs text NOT NULL,
    error text,
    updated_at integer NOT NULL DEFAULT (unixepoch()),
    node_executions text NOT NULL DEFAULT '[]'
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS flowbench_stops (
    seq integer PRIMARY KEY AUTOINCREMENT,
    task_id text NOT NULL,
    app_id text NOT NULL,
    user_id text NOT NULL,
    at_ms integer NOT NULL
);";

const UPSERT: &str = "INSERT INTO flowbench_runs (id, app_id, status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error, node_executions) \
     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
     ON CONFLICT (id) DO UPDATE SET status = excluded.status, total_tokens = excluded.total_tokens, \
     total_steps = excluded.total_steps, elapsed_time = excluded.elapsed_time, finished_at = excluded.finished_at, \
     outputs = excluded.outputs, error = excluded.error, node_executions = excluded.node_executions, updated_at = unixepoch()";

#[derive(Debug, thiserror::Error)]
pub enum SqliteStoreError {
    #[error("opening the run store {path}")]
    Open { path: PathBuf, source: rusqlite::Error },
    #[error("starting the run store's threads: {0}")]
    Thread(#[source] std::io::Error),
}

pub struct SqliteStore {
    outbox: Arc<Outbox>,
    reads: Arc<Mutex<Connection>>,
    /// Stops passed on to other processes (the writer of `flowbench_stops`).
    stops: Arc<Mutex<Connection>>,
}

/// A connection to `path` as every one of ours is set up: WAL, full sync,
/// waiting for other writers rather than failing.
fn open(path: &Path, sync: Sync) -> Result<Connection, rusqlite::Error> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    // `journal_mode` answers with the mode it set.
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |row| row.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        tracing::warn!("run store {}: SQLite kept journal mode {mode} (WAL not possible here)", path.display());
    }
    conn.pragma_update(None, "synchronous", sync.pragma())?;
    Ok(conn)
}

/// When a commit is durable: `Full` (the default) syncs the WAL at each
/// commit, so a run the server acknowledged survives a power loss;
/// `Normal` syncs only at checkpoints, so it survives the process being
/// killed but a power loss may take the last commits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sync {
    Full,
    Normal,
}

impl Sync {
    fn pragma(self) -> &'static str {
        match self {
            Sync::Full => "FULL",
            Sync::Normal => "NORMAL",
        }
    }
}

/// `PATH` or `PATH?synchronous=full|normal` (after `sqlite:`).
pub fn parse(spec: &str) -> Result<(PathBuf, Sync), String> {
    let (path, query) = spec.split_once('?').unwrap_or((spec, ""));
    let path = path.strip_prefix("//").unwrap_or(path);
    if path.is_empty() {
        return Err("store \"sqlite:\": name the file, as sqlite:PATH".into());
    }
    let mut sync = Sync::Full;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        sync = match pair.to_ascii_lowercase().as_str() {
            "synchronous=full" => Sync::Full,
            "synchronous=normal" => Sync::Normal,
            other => return Err(format!("store sqlite:{spec}: {other:?} is not an option; give synchronous=full or synchronous=normal")),
        };
    }
    Ok((PathBuf::from(path), sync))
}

fn now_ms() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

impl SqliteStore {
    /// Opens (or creates) the file and its tables, starts the writer
    /// thread, and starts reading stops for `tasks`.
    pub fn open(path: &Path, sync: Sync, tasks: Arc<TaskRegistry>) -> Result<Self, SqliteStoreError> {
        let failed = |source| SqliteStoreError::Open { path: path.to_owned(), source };
        let writer = open(path, sync).map_err(failed)?;
        writer.execute_batch(SCHEMA).map_err(failed)?;
        // A file made before runs kept their node executions gains the column.
        let has_nodes: bool = writer
            .query_row("SELECT count(*) FROM pragma_table_info('flowbench_runs') WHERE name = 'node_executions'", [], |r| {
                r.get::<_, i64>(0)
            })
            .map_err(failed)?
            > 0;
        if !has_nodes {
            // Another process opening the file at once may add it first.
            match writer.execute_batch("ALTER TABLE flowbench_runs ADD COLUMN node_executions text NOT NULL DEFAULT '[]'") {
                Err(e) if e.to_string().contains("duplicate column") => {}
                other => other.map_err(failed)?,
            }
        }
        let reads = open(path, sync).map_err(failed)?;
        let stops = open(path, sync).map_err(failed)?;
        let poller = open(path, sync).map_err(failed)?;
        // Only stops passed on from now on concern this process.
        let last: i64 = poller.query_row("SELECT coalesce(max(seq), 0) FROM flowbench_stops", [], |r| r.get(0)).map_err(failed)?;
        let (outbox, queue) = Outbox::new();
        let outbox = Arc::new(outbox);
        let writer_outbox = outbox.clone();
        let shown = path.display().to_string();
        std::thread::Builder::new()
            .name("run-store-writer".into())
            .spawn(move || write_batches(&shown, writer, queue, &writer_outbox))
            .map_err(SqliteStoreError::Thread)?;
        std::thread::Builder::new()
            .name("run-store-stops".into())
            .spawn(move || read_stops(poller, last, &tasks))
            .map_err(SqliteStoreError::Thread)?;
        Ok(Self { outbox, reads: Arc::new(Mutex::new(reads)), stops: Arc::new(Mutex::new(stops)) })
    }
}

/// The writer: each round takes every write waiting (up to `MAX_BATCH`),
/// commits them as one transaction, then tells each one. A transaction
/// SQLite refuses (a full disk) is tried again row by row, and a row it
/// still refuses is failed alone (its run answered as not stored).
fn write_batches(path: &str, mut conn: Connection, mut queue: mpsc::UnboundedReceiver<Message>, outbox: &Outbox) {
    let mut messages: Vec<Message> = Vec::with_capacity(MAX_BATCH);
    while let Some(first) = queue.blocking_recv() {
        messages.push(first);
        while messages.len() < MAX_BATCH
            && let Ok(m) = queue.try_recv()
        {
            messages.push(m);
        }
        let batch = Batch::of(messages.drain(..));
        let rows = batch.rows();
        let mut failed = Vec::new();
        if let Err(e) = commit(&mut conn, &rows) {
            tracing::error!("run store {path}: a batch of {} records was refused ({e}); trying each alone", rows.len());
            for row in &rows {
                if let Err(e) = commit(&mut conn, std::slice::from_ref(row)) {
                    tracing::error!("run store {path}: run {} not stored: {e}", row.run_id);
                    failed.push(row.run_id);
                }
            }
        }
        drop(rows);
        outbox.settle(batch, &failed);
    }
}

fn commit(conn: &mut Connection, rows: &[&Write]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut upsert = tx.prepare_cached(UPSERT)?;
        for w in rows {
            let (r, t) = (&w.record, &w.record.totals);
            upsert.execute(params![
                w.run_id.hyphenated().to_string(),
                w.app_id.hyphenated().to_string(),
                t.status.as_str(),
                t.total_tokens as i64,
                t.total_steps,
                t.elapsed_time,
                t.created_at,
                t.finished_at,
                no_nul(r.inputs_json()),
                no_nul(r.user_id()),
                no_nul(r.outputs_json()),
                r.error().map(no_nul),
                if r.nodes_json().is_empty() { "[]" } else { r.nodes_json() },
            ])?;
        }
    }
    tx.commit()
}

/// Reads the stops other processes passed on and stops the tasks this one
/// runs; now and then forgets old ones. Ends with the process.
fn read_stops(conn: Connection, mut last: i64, tasks: &TaskRegistry) {
    let mut rounds: u64 = 0;
    loop {
        std::thread::sleep(STOP_POLL);
        let read = (|| -> Result<Vec<(i64, String, String, String)>, rusqlite::Error> {
            let mut query = conn.prepare_cached("SELECT seq, task_id, app_id, user_id FROM flowbench_stops WHERE seq > ?1 ORDER BY seq")?;
            let rows = query.query_map([last], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)))?;
            rows.collect()
        })();
        match read {
            Ok(stops) => {
                for (seq, task, app, user) in stops {
                    last = seq;
                    tasks.stop(&task, &app, &user);
                }
            }
            Err(e) => tracing::error!("run store: reading stops: {e}"),
        }
        rounds += 1;
        if rounds.is_multiple_of(500)
            && let Err(e) = conn.execute("DELETE FROM flowbench_stops WHERE at_ms < ?1", [now_ms() - STOP_KEPT_MS])
        {
            tracing::error!("run store: forgetting old stops: {e}");
        }
    }
}

impl RunStore for SqliteStore {
    fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed {
        self.outbox.put(app_id, run_id, record)
    }

    fn get<'a>(&'a self, app_id: Uuid, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>, StoreError>> {
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(run_id) else { return Ok(None) };
            if let Some(record) = self.outbox.get(app_id, id) {
                return Ok(Some(record));
            }
            let reads = self.reads.clone();
            let read = tokio::task::spawn_blocking(move || {
                let conn = reads.lock().unwrap_or_else(|e| e.into_inner());
                let mut query = conn.prepare_cached(
                    "SELECT status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error, node_executions \
                     FROM flowbench_runs WHERE id = ?1 AND app_id = ?2",
                )?;
                query
                    .query_row(params![id.hyphenated().to_string(), app_id.hyphenated().to_string()], |row| {
                        let totals = RunTotals {
                            status: status(&row.get::<_, String>(0)?),
                            total_tokens: row.get::<_, i64>(1)? as u64,
                            total_steps: row.get(2)?,
                            elapsed_time: row.get(3)?,
                            created_at: row.get(4)?,
                            finished_at: row.get(5)?,
                        };
                        let map = |text: String| serde_json::from_str::<Map<String, Value>>(&text).unwrap_or_default();
                        let (inputs, outputs) = (map(row.get(6)?), map(row.get(8)?));
                        let (user, error, nodes): (String, Option<String>, String) = (row.get(7)?, row.get(9)?, row.get(10)?);
                        Ok(RunRecord::pack(&RecordParts {
                            totals,
                            inputs: &inputs,
                            user_id: &user,
                            outputs: &outputs,
                            error: error.as_deref(),
                            nodes_json: &nodes,
                        }))
                    })
                    .optional()
            })
            .await;
            match read {
                Ok(Ok(record)) => Ok(record),
                Ok(Err(e)) => Err(StoreError(format!("reading run {run_id}: {e}"))),
                Err(e) => Err(StoreError(format!("reading run {run_id}: {e}"))),
            }
        })
    }

    fn keeps_nodes(&self) -> bool {
        true
    }

    fn forward_stop(&self, task_id: &str, app_id: &str, user: &str) {
        let (stops, task, app, user) = (self.stops.clone(), task_id.to_owned(), app_id.to_owned(), user.to_owned());
        tokio::task::spawn_blocking(move || {
            let conn = stops.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = conn.execute(
                "INSERT INTO flowbench_stops (task_id, app_id, user_id, at_ms) VALUES (?1, ?2, ?3, ?4)",
                params![task, app, user, now_ms()],
            ) {
                tracing::error!("run store: passing a stop on: {e}");
            }
        });
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        self.outbox.flush()
    }

    /// Records not yet committed (the file holds the rest).
    fn len(&self) -> usize {
        self.outbox.len()
    }

    fn uncommitted(&self) -> usize {
        self.outbox.len()
    }

    /// What this process holds: the records not yet committed.
    fn bytes(&self) -> usize {
        self.outbox.bytes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_spec_names_its_file_and_durability() {
        assert_eq!(parse("/var/runs.db").unwrap(), (PathBuf::from("/var/runs.db"), Sync::Full));
        assert_eq!(parse("///var/runs.db").unwrap(), (PathBuf::from("/var/runs.db"), Sync::Full));
        assert_eq!(parse("runs.db?synchronous=NORMAL").unwrap(), (PathBuf::from("runs.db"), Sync::Normal));
        assert!(parse("").unwrap_err().contains("name the file"));
        assert!(parse("runs.db?synchronous=off").unwrap_err().contains("\"synchronous=off\" is not an option"));
    }
}
