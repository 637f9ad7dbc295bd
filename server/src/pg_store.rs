//! A run store in PostgreSQL, shared by replicas (`store = "postgres://…"`).
//!
//! - Writes go to one writer task that commits whatever is waiting as one
//!   multi-row upsert (group commit): a run costs a share of a round trip,
//!   not one. `put` returns a `Committed` that resolves once the record's
//!   batch is committed; the server answers a blocking run, and sends a
//!   streaming run's terminal event, only after that, so a client that has
//!   its answer has a durable record.
//! - Until its batch commits, a record is also kept here, so this replica's
//!   `GET` sees it at once; other replicas see it from the commit on.
//! - A stop for a task this replica does not run is passed on with
//!   `NOTIFY flowbench_stop`; every replica `LISTEN`s and stops the task if
//!   it runs it.
//! - The schema is created at start (`CREATE TABLE IF NOT EXISTS`).

use crate::batch::{Batch, Message, Outbox, Write, no_nul, status};
use crate::store::{Committed, RecordParts, RunRecord, RunStore, StoreError, Why};
use crate::tasks::TaskRegistry;
use crate::workflow::events::RunTotals;
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Records one batch may hold.
const MAX_BATCH: usize = 4096;
const COLUMNS: usize = 13;
const CHANNEL: &str = "flowbench_stop";

/// Replicas that start together take a lock first: two `CREATE TABLE IF
/// NOT EXISTS` at once can both try to create it, and one fails.
const SCHEMA: &str = "BEGIN; SELECT pg_advisory_xact_lock(7156323571); CREATE TABLE IF NOT EXISTS flowbench_runs (
    id uuid PRIMARY KEY,
    app_id uuid NOT NULL,
    status text NOT NULL,
    total_tokens bigint NOT NULL,
    total_steps integer NOT NULL,
    elapsed_time double precision NOT NULL,
    created_at bigint NOT NULL,
    finished_at bigint,
    inputs text NOT NULL,
    user_id text NOT NULL,
    outputs text NOT NULL,
    error text,
    updated_at timestamptz NOT NULL DEFAULT now()
); ALTER TABLE flowbench_runs ADD COLUMN IF NOT EXISTS node_executions text NOT NULL DEFAULT '[]'; COMMIT;";

#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    #[error("connecting to the run store {url}")]
    Connect { url: String, source: tokio_postgres::Error },
    #[error("creating the run store's table")]
    Schema(#[source] tokio_postgres::Error),
    #[error("preparing the run store's upsert")]
    Prepare(#[source] tokio_postgres::Error),
    #[error("listening for stops on the run store")]
    Listen(#[source] tokio_postgres::Error),
}

pub struct PgStore {
    url: String,
    outbox: Arc<Outbox>,
    reads: tokio::sync::RwLock<Arc<tokio_postgres::Client>>,
}

/// A batch's records may hold this many bytes of text (PostgreSQL takes a
/// message of up to 1 GB; a batch of large records is split below that).
const MAX_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// The URL without its password, for errors and logs.
fn shown(url: &str) -> String {
    match url.parse::<tokio_postgres::Config>() {
        Ok(config) => {
            format!("postgres://{}@{:?}/{}", config.get_user().unwrap_or(""), config.get_hosts(), config.get_dbname().unwrap_or(""))
        }
        Err(_) => "(a URL that does not parse)".to_owned(),
    }
}

async fn connect(url: &str) -> Result<tokio_postgres::Client, PgStoreError> {
    let (client, connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|source| PgStoreError::Connect { url: shown(url), source })?;
    tokio::spawn(async move {
        if let Err(e) = connection.await {
            tracing::error!("run store connection: {}", Why(&e));
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects (a writer, a reader and a listener), creates the table, and
    /// starts passing stops between replicas through `tasks`.
    pub async fn open(url: &str, tasks: Arc<TaskRegistry>) -> Result<Self, PgStoreError> {
        connect(url).await?.batch_execute(SCHEMA).await.map_err(PgStoreError::Schema)?;
        let writer = Writer::open(url).await?;
        let reads = Arc::new(connect(url).await?);
        let listener = connect_listener(url, &tasks).await?;
        tokio::spawn(listen(url.to_owned(), tasks, listener));
        let (outbox, queue) = Outbox::new();
        let outbox = Arc::new(outbox);
        tokio::spawn(write_batches(url.to_owned(), writer, queue, outbox.clone()));
        Ok(Self { url: url.to_owned(), outbox, reads: tokio::sync::RwLock::new(reads) })
    }
}

/// A connection that has run `LISTEN`, its notifications going to `tasks`;
/// resolves (the connection gone) in the task it returns.
async fn connect_listener(url: &str, tasks: &Arc<TaskRegistry>) -> Result<tokio::task::JoinHandle<()>, PgStoreError> {
    let (client, mut connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|source| PgStoreError::Connect { url: shown(url), source })?;
    let tasks = tasks.clone();
    let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    let (client_tx, client_rx) = oneshot::channel::<tokio_postgres::Client>();
    let task = tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = std::pin::pin!(messages);
        // The client lives as long as its connection is read.
        let mut client_rx = Some(client_rx);
        let mut _client = None;
        while let Some(message) = messages.next().await {
            if let Some(rx) = client_rx.as_mut()
                && let Ok(c) = rx.try_recv()
            {
                _client = Some(c);
                client_rx = None;
            }
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    let mut parts = n.payload().splitn(3, '\n');
                    if let (Some(task), Some(app), Some(user)) = (parts.next(), parts.next(), parts.next()) {
                        tasks.stop(task, app, user);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("run store listener: {}", Why(&e));
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(PgStoreError::Listen)?;
    let _ = client_tx.send(client);
    Ok(task)
}

/// Keeps a listener up: when its connection goes, a new one listens.
async fn listen(url: String, tasks: Arc<TaskRegistry>, mut current: tokio::task::JoinHandle<()>) {
    let mut wait = std::time::Duration::from_millis(50);
    loop {
        let _ = current.await;
        current = loop {
            tokio::time::sleep(wait).await;
            match connect_listener(&url, &tasks).await {
                Ok(task) => break task,
                Err(e) => {
                    tracing::error!("{}; retrying in {wait:?}", Why(&e));
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
            }
        };
        wait = std::time::Duration::from_millis(50);
    }
}

/// The writer: each round takes every write waiting (up to `MAX_BATCH`
/// records and `MAX_BATCH_BYTES`), commits them as one upsert, then tells
/// each one. A lost connection is made again and the batch retried; a batch
/// PostgreSQL refuses is retried row by row, and a row it still refuses is
/// failed alone (its run answered as not stored). Nothing is acknowledged
/// before it holds.
async fn write_batches(url: String, mut writer: Writer, mut queue: mpsc::UnboundedReceiver<Message>, outbox: Arc<Outbox>) {
    let mut messages: Vec<Message> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut messages, MAX_BATCH).await > 0 {
        let batch = Batch::of(messages.drain(..));
        let rows = batch.rows();
        let mut failed: Vec<Uuid> = Vec::new();
        for chunk in by_bytes(&rows) {
            if let Err(e) = commit(&url, &mut writer, chunk).await {
                tracing::error!("run store: a batch of {} records was refused ({}); trying each alone", chunk.len(), Why(&e));
                for row in chunk {
                    if let Err(e) = commit(&url, &mut writer, std::slice::from_ref(row)).await {
                        tracing::error!("run store: run {} not stored: {}", row.run_id, Why(&e));
                        failed.push(row.run_id);
                    }
                }
            }
        }
        drop(rows);
        outbox.settle(batch, &failed);
    }
}

/// `rows` in runs of at most `MAX_BATCH_BYTES` of text (one at least).
fn by_bytes<'a, 'b>(rows: &'b [&'a Write]) -> Vec<&'b [&'a Write]> {
    let mut chunks = Vec::new();
    let (mut start, mut bytes) = (0, 0);
    for (i, w) in rows.iter().enumerate() {
        let size = w.record.heap_bytes();
        if i > start && bytes + size > MAX_BATCH_BYTES {
            chunks.push(&rows[start..i]);
            (start, bytes) = (i, 0);
        }
        bytes += size;
    }
    if start < rows.len() {
        chunks.push(&rows[start..]);
    }
    chunks
}

/// Commits `rows` as one upsert; `Err` is PostgreSQL refusing them (a lost
/// connection is made again and the rows sent again, until it holds).
async fn commit(url: &str, writer: &mut Writer, rows: &[&Write]) -> Result<(), tokio_postgres::Error> {
    let texts = |f: fn(&RunRecord) -> &str| rows.iter().map(|w| no_nul(f(&w.record))).collect::<Vec<_>>();
    let (inputs, users, outputs) = (texts(RunRecord::inputs_json), texts(RunRecord::user_id), texts(|r| r.outputs_json()));
    let nodes = texts(|r| if r.nodes_json().is_empty() { "[]" } else { r.nodes_json() });
    let errors: Vec<Option<std::borrow::Cow<'_, str>>> = rows.iter().map(|w| w.record.error().map(no_nul)).collect();
    let (inputs, users, outputs, nodes) = (strs(&inputs), strs(&users), strs(&outputs), strs(&nodes));
    let errors: Vec<Option<&str>> = errors.iter().map(|e| e.as_deref()).collect();
    let totals = |w: &&Write| w.record.totals;
    let ids: Vec<Uuid> = rows.iter().map(|w| w.run_id).collect();
    let apps: Vec<Uuid> = rows.iter().map(|w| w.app_id).collect();
    let status: Vec<&str> = rows.iter().map(|w| totals(w).status.as_str()).collect();
    let tokens: Vec<i64> = rows.iter().map(|w| totals(w).total_tokens as i64).collect();
    let steps: Vec<i32> = rows.iter().map(|w| totals(w).total_steps as i32).collect();
    let elapsed: Vec<f64> = rows.iter().map(|w| totals(w).elapsed_time).collect();
    let created: Vec<i64> = rows.iter().map(|w| totals(w).created_at).collect();
    let finished: Vec<Option<i64>> = rows.iter().map(|w| totals(w).finished_at).collect();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); COLUMNS] =
        [&ids, &apps, &status, &tokens, &steps, &elapsed, &created, &finished, &inputs, &users, &outputs, &errors, &nodes];
    loop {
        match writer.client.execute(&writer.upsert, &params).await {
            Ok(_) => return Ok(()),
            Err(e) if connection_lost(&e) => {
                tracing::error!("run store: {}; connecting again", Why(&e));
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                *writer = Writer::reopen(url).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn strs<'a>(v: &'a [std::borrow::Cow<'_, str>]) -> Vec<&'a str> {
    v.iter().map(|c| c.as_ref()).collect()
}

/// Whether `e` means the connection is gone (closed, an I/O error, or the
/// server shutting down or not yet accepting: SQLSTATE 57P01-57P03, class 08)
/// rather than PostgreSQL refusing the statement.
fn connection_lost(e: &tokio_postgres::Error) -> bool {
    if e.is_closed() {
        return true;
    }
    match e.as_db_error() {
        // Anything else that is not PostgreSQL's answer (a parameter that
        // will not encode) is a refusal: retrying it would never end.
        None => std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>()),
        // Shutdown, crash, still starting (57P01-57P03) and connection
        // failures (class 08); not 57014, a cancelled statement, which
        // would be retried for ever.
        Some(db) => matches!(db.code().code(), "57P01" | "57P02" | "57P03") || db.code().code().starts_with("08"),
    }
}

/// Every batch, whatever its size, as one statement with one array per
/// column: prepared once per connection, so a commit is one round trip
/// with no parsing or planning, where a `VALUES` list per batch size was a
/// new statement (parse, plan) for each size.
const UPSERT: &str = "INSERT INTO flowbench_runs (id, app_id, status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error, node_executions) \
     SELECT * FROM unnest($1::uuid[], $2::uuid[], $3::text[], $4::int8[], $5::int4[], $6::float8[], $7::int8[], $8::int8[], $9::text[], $10::text[], $11::text[], $12::text[], $13::text[]) \
     ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, total_tokens = EXCLUDED.total_tokens, \
     total_steps = EXCLUDED.total_steps, elapsed_time = EXCLUDED.elapsed_time, finished_at = EXCLUDED.finished_at, \
     outputs = EXCLUDED.outputs, error = EXCLUDED.error, node_executions = EXCLUDED.node_executions, updated_at = now()";

/// The writer's connection and its prepared upsert.
struct Writer {
    client: tokio_postgres::Client,
    upsert: tokio_postgres::Statement,
}

impl Writer {
    async fn open(url: &str) -> Result<Self, PgStoreError> {
        let client = connect(url).await?;
        let upsert = client.prepare(UPSERT).await.map_err(PgStoreError::Prepare)?;
        Ok(Self { client, upsert })
    }

    /// Connects again until it works: after a PostgreSQL restart or failover.
    async fn reopen(url: &str) -> Self {
        let mut wait = std::time::Duration::from_millis(50);
        loop {
            match Self::open(url).await {
                Ok(writer) => return writer,
                Err(e) => {
                    tracing::error!("{}; retrying in {wait:?}", Why(&e));
                    tokio::time::sleep(wait).await;
                    wait = (wait * 2).min(std::time::Duration::from_secs(2));
                }
            }
        }
    }
}

impl RunStore for PgStore {
    fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed {
        self.outbox.put(app_id, run_id, record)
    }

    fn get<'a>(&'a self, app_id: Uuid, run_id: &'a str) -> BoxFuture<'a, Result<Option<RunRecord>, StoreError>> {
        Box::pin(async move {
            let Ok(id) = Uuid::parse_str(run_id) else { return Ok(None) };
            if let Some(record) = self.outbox.get(app_id, id) {
                return Ok(Some(record));
            }
            let query = "SELECT status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error, node_executions \
                         FROM flowbench_runs WHERE id = $1 AND app_id = $2";
            let unavailable = |e: &(dyn std::error::Error + 'static)| StoreError(format!("reading run {run_id}: {}", Why(e)));
            let client = self.reads.read().await.clone();
            let row = match client.query_opt(query, &[&id, &app_id]).await {
                Ok(row) => row,
                Err(e) if connection_lost(&e) => {
                    // The connection went (a PostgreSQL restart): connect
                    // again, once for every reader that saw it go, and ask again.
                    let fresh = {
                        let mut reads = self.reads.write().await;
                        if Arc::ptr_eq(&reads, &client) {
                            *reads = Arc::new(connect(&self.url).await.map_err(|e| unavailable(&e))?);
                        }
                        reads.clone()
                    };
                    fresh.query_opt(query, &[&id, &app_id]).await.map_err(|e| unavailable(&e))?
                }
                Err(e) => return Err(unavailable(&e)),
            };
            let Some(row) = row else { return Ok(None) };
            let bad = |e: tokio_postgres::Error| StoreError(format!("run {run_id}: a row this server cannot read: {e}"));
            let totals = RunTotals {
                status: status(row.try_get::<_, &str>(0).map_err(bad)?),
                total_tokens: row.try_get::<_, i64>(1).map_err(bad)? as u64,
                total_steps: row.try_get::<_, i32>(2).map_err(bad)? as u32,
                elapsed_time: row.try_get(3).map_err(bad)?,
                created_at: row.try_get(4).map_err(bad)?,
                finished_at: row.try_get(5).map_err(bad)?,
            };
            let map = |text: &str| serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
            let (inputs, outputs) = (map(row.try_get(6).map_err(bad)?), map(row.try_get(8).map_err(bad)?));
            let error: Option<&str> = row.try_get(9).map_err(bad)?;
            let user: &str = row.try_get(7).map_err(bad)?;
            let nodes_json: &str = row.try_get(10).map_err(bad)?;
            Ok(Some(RunRecord::pack(&RecordParts { totals, inputs: &inputs, user_id: user, outputs: &outputs, error, nodes_json })))
        })
    }

    fn keeps_nodes(&self) -> bool {
        true
    }

    fn forward_stop(&self, task_id: &str, app_id: &str, user: &str) {
        let payload = format!("{task_id}\n{app_id}\n{user}");
        let reads = self.reads.try_read().map(|c| c.clone());
        tokio::spawn(async move {
            let Ok(client) = reads else { return tracing::error!("run store: passing a stop on: reconnecting") };
            if let Err(e) = client.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await {
                tracing::error!("run store: passing a stop on: {}", Why(&e));
            }
        });
    }

    fn flush(&self) -> BoxFuture<'_, ()> {
        self.outbox.flush()
    }

    /// Records not yet committed (the table holds the rest).
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
