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

use crate::store::{Committed, RecordParts, RunRecord, RunStore, TaskRegistry};
use crate::workflow::events::{RunStatus, RunTotals};
use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// Records one batch may hold (one statement's parameters stay well under
/// PostgreSQL's 65,535).
const MAX_BATCH: usize = 1024;
const COLUMNS: usize = 12;
const CHANNEL: &str = "flowbench_stop";

const SCHEMA: &str = "CREATE TABLE IF NOT EXISTS flowbench_runs (
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
)";

#[derive(Debug, thiserror::Error)]
pub enum PgStoreError {
    #[error("connecting to the run store {url}: {source}")]
    Connect { url: String, source: tokio_postgres::Error },
    #[error("creating the run store's table: {0}")]
    Schema(tokio_postgres::Error),
}

struct Write {
    app_id: Uuid,
    run_id: Uuid,
    record: RunRecord,
    done: oneshot::Sender<()>,
}

pub struct PgStore {
    writes: mpsc::UnboundedSender<Write>,
    reads: Arc<tokio_postgres::Client>,
    /// Kept for its connection, which carries the `LISTEN`.
    _listener: tokio_postgres::Client,
    /// Records sent to the writer and not yet committed, by run id.
    pending: Arc<Mutex<HashMap<Uuid, (Uuid, RunRecord)>>>,
}

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
            tracing::error!("run store connection: {e}");
        }
    });
    Ok(client)
}

impl PgStore {
    /// Connects (a writer, a reader and a listener), creates the table, and
    /// starts passing stops between replicas through `tasks`.
    pub async fn open(url: &str, tasks: Arc<TaskRegistry>) -> Result<Self, PgStoreError> {
        let writer = connect(url).await?;
        writer.batch_execute(SCHEMA).await.map_err(PgStoreError::Schema)?;
        let reads = Arc::new(connect(url).await?);
        let listener = listen(url, tasks).await?;
        let (writes, queue) = mpsc::unbounded_channel();
        let pending = Arc::new(Mutex::new(HashMap::new()));
        tokio::spawn(write_batches(writer, queue, pending.clone()));
        Ok(Self { writes, reads, _listener: listener, pending })
    }
}

/// A dedicated connection that `LISTEN`s for stops and applies them here.
async fn listen(url: &str, tasks: Arc<TaskRegistry>) -> Result<tokio_postgres::Client, PgStoreError> {
    let (client, mut connection) =
        tokio_postgres::connect(url, tokio_postgres::NoTls).await.map_err(|source| PgStoreError::Connect { url: shown(url), source })?;
    let messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    tokio::spawn(async move {
        use futures_util::StreamExt;
        let mut messages = std::pin::pin!(messages);
        while let Some(message) = messages.next().await {
            match message {
                Ok(tokio_postgres::AsyncMessage::Notification(n)) if n.channel() == CHANNEL => {
                    let mut parts = n.payload().splitn(3, '\n');
                    if let (Some(task), Some(app), Some(user)) = (parts.next(), parts.next(), parts.next()) {
                        tasks.stop(task, app, user);
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!("run store listener: {e}");
                    break;
                }
            }
        }
    });
    client.batch_execute(&format!("LISTEN {CHANNEL}")).await.map_err(PgStoreError::Schema)?;
    Ok(client)
}

/// The writer: each round takes every write waiting (up to `MAX_BATCH`),
/// commits them as one upsert, then tells each one. A failed commit is
/// retried; nothing is acknowledged before it holds.
async fn write_batches(
    client: tokio_postgres::Client,
    mut queue: mpsc::UnboundedReceiver<Write>,
    pending: Arc<Mutex<HashMap<Uuid, (Uuid, RunRecord)>>>,
) {
    let mut batch: Vec<Write> = Vec::with_capacity(MAX_BATCH);
    while queue.recv_many(&mut batch, MAX_BATCH).await > 0 {
        // One row per run: a later write of a run replaces an earlier one.
        let mut last: HashMap<Uuid, usize> = HashMap::with_capacity(batch.len());
        for (i, w) in batch.iter().enumerate() {
            last.insert(w.run_id, i);
        }
        let rows: Vec<&Write> = batch.iter().enumerate().filter(|(i, w)| last[&w.run_id] == *i).map(|(_, w)| w).collect();
        let statement = upsert(rows.len());
        let values: Vec<Row<'_>> = rows.iter().map(|w| Row::of(w)).collect();
        let mut params: Vec<&(dyn tokio_postgres::types::ToSql + Sync)> = Vec::with_capacity(rows.len() * COLUMNS);
        for v in &values {
            params.extend_from_slice(&[
                &v.id,
                &v.app_id,
                &v.status,
                &v.tokens,
                &v.steps,
                &v.elapsed,
                &v.created,
                &v.finished,
                &v.inputs,
                &v.user,
                &v.outputs,
                &v.error,
            ]);
        }
        loop {
            match client.execute(statement.as_str(), &params).await {
                Ok(_) => break,
                Err(e) => {
                    tracing::error!("run store: committing {} records failed, retrying: {e}", rows.len());
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            }
        }
        {
            let mut pending = pending.lock().unwrap_or_else(|e| e.into_inner());
            for w in &rows {
                pending.remove(&w.run_id);
            }
        }
        drop(params);
        drop(values);
        for w in batch.drain(..) {
            let _ = w.done.send(());
        }
    }
}

/// One row's values, in the table's column order.
struct Row<'a> {
    id: Uuid,
    app_id: Uuid,
    status: &'static str,
    tokens: i64,
    steps: i32,
    elapsed: f64,
    created: i64,
    finished: Option<i64>,
    inputs: &'a str,
    user: &'a str,
    outputs: &'a str,
    error: Option<&'a str>,
}

impl<'a> Row<'a> {
    fn of(w: &'a Write) -> Self {
        let (r, t) = (&w.record, &w.record.totals);
        Self {
            id: w.run_id,
            app_id: w.app_id,
            status: t.status.as_str(),
            tokens: t.total_tokens as i64,
            steps: t.total_steps as i32,
            elapsed: t.elapsed_time,
            created: t.created_at,
            finished: t.finished_at,
            inputs: r.inputs_json(),
            user: r.user_id(),
            outputs: r.outputs_json(),
            error: r.error(),
        }
    }
}

/// `INSERT … VALUES ($1…$12), … ON CONFLICT (id) DO UPDATE` for `n` rows.
fn upsert(n: usize) -> String {
    let mut sql = String::from(
        "INSERT INTO flowbench_runs (id, app_id, status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error) VALUES ",
    );
    for row in 0..n {
        sql.push_str(if row == 0 { "(" } else { ",(" });
        for col in 0..COLUMNS {
            if col > 0 {
                sql.push(',');
            }
            sql.push('$');
            sql.push_str(&(row * COLUMNS + col + 1).to_string());
        }
        sql.push(')');
    }
    sql.push_str(
        " ON CONFLICT (id) DO UPDATE SET status = EXCLUDED.status, total_tokens = EXCLUDED.total_tokens, \
         total_steps = EXCLUDED.total_steps, elapsed_time = EXCLUDED.elapsed_time, finished_at = EXCLUDED.finished_at, \
         outputs = EXCLUDED.outputs, error = EXCLUDED.error, updated_at = now()",
    );
    sql
}

fn status(text: &str) -> RunStatus {
    match text {
        "succeeded" => RunStatus::Succeeded,
        "failed" => RunStatus::Failed,
        "stopped" => RunStatus::Stopped,
        _ => RunStatus::Running,
    }
}

impl RunStore for PgStore {
    fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed {
        let (done, committed) = oneshot::channel();
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).insert(run_id, (app_id, record.clone()));
        if self.writes.send(Write { app_id, run_id, record, done }).is_err() {
            tracing::error!("run store: the writer has stopped; run {run_id} is not stored");
        }
        Committed::Later(committed)
    }

    fn get<'a>(&'a self, app_id: Uuid, run_id: &'a str) -> BoxFuture<'a, Option<RunRecord>> {
        Box::pin(async move {
            let id = Uuid::parse_str(run_id).ok()?;
            if let Some((app, record)) = self.pending.lock().unwrap_or_else(|e| e.into_inner()).get(&id)
                && *app == app_id
            {
                return Some(record.clone());
            }
            let row = self
                .reads
                .query_opt(
                    "SELECT status, total_tokens, total_steps, elapsed_time, created_at, finished_at, inputs, user_id, outputs, error \
                     FROM flowbench_runs WHERE id = $1 AND app_id = $2",
                    &[&id, &app_id],
                )
                .await
                .map_err(|e| tracing::error!("run store: reading {run_id}: {e}"))
                .ok()??;
            let totals = RunTotals {
                status: status(row.get::<_, &str>(0)),
                total_tokens: row.get::<_, i64>(1) as u64,
                total_steps: row.get::<_, i32>(2) as u32,
                elapsed_time: row.get(3),
                created_at: row.get(4),
                finished_at: row.get(5),
            };
            let map = |text: &str| serde_json::from_str::<Map<String, Value>>(text).unwrap_or_default();
            let (inputs, outputs) = (map(row.get(6)), map(row.get(8)));
            let error: Option<&str> = row.get(9);
            Some(RunRecord::pack(&RecordParts { totals, inputs: &inputs, user_id: row.get(7), outputs: &outputs, error }))
        })
    }

    fn forward_stop(&self, task_id: &str, app_id: &str, user: &str) {
        let payload = format!("{task_id}\n{app_id}\n{user}");
        let reads = self.reads.clone();
        tokio::spawn(async move {
            if let Err(e) = reads.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &payload]).await {
                tracing::error!("run store: passing a stop on: {e}");
            }
        });
    }

    /// Records not yet committed (the table holds the rest).
    fn len(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// What this process holds: the records not yet committed.
    fn bytes(&self) -> usize {
        self.pending.lock().unwrap_or_else(|e| e.into_inner()).values().map(|(_, r)| r.heap_bytes()).sum()
    }
}
