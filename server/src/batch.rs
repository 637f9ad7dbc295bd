//! What the database stores share: records put but not yet committed (so
//! this replica's `GET` sees a run at once), and the writer's queue, which a
//! writer drains as one batch per commit (group commit).

use crate::store::{Committed, RunRecord};
use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

/// One record on its way to the writer.
pub struct Write {
    pub app_id: Uuid,
    pub run_id: Uuid,
    pub record: RunRecord,
    /// This write's number: a commit clears `pending` only of its own.
    seq: u64,
    done: oneshot::Sender<bool>,
}

pub enum Message {
    Write(Write),
    /// Answered once everything sent before it is committed.
    Flush(oneshot::Sender<()>),
}

/// The writer's side of a batch: the writes taken, one row per run (a
/// later write of a run replaces an earlier one), and the flushes to answer.
pub struct Batch {
    writes: Vec<Write>,
    flushes: Vec<oneshot::Sender<()>>,
    /// Indexes into `writes` of each run's last write.
    rows: Vec<usize>,
    /// When the writer took it, for the commit's time in `/metrics`.
    taken: std::time::Instant,
}

impl Batch {
    pub fn of(messages: impl IntoIterator<Item = Message>) -> Self {
        let (mut writes, mut flushes) = (Vec::new(), Vec::new());
        for m in messages {
            match m {
                Message::Write(w) => writes.push(w),
                Message::Flush(f) => flushes.push(f),
            }
        }
        let mut last: HashMap<Uuid, usize> = HashMap::with_capacity(writes.len());
        for (i, w) in writes.iter().enumerate() {
            last.insert(w.run_id, i);
        }
        let rows = (0..writes.len()).filter(|&i| last[&writes[i].run_id] == i).collect();
        Self { writes, flushes, rows, taken: std::time::Instant::now() }
    }

    /// The records to write, one per run.
    pub fn rows(&self) -> Vec<&Write> {
        self.rows.iter().map(|&i| &self.writes[i]).collect()
    }
}

/// Records put and not yet committed, and the queue to the writer.
pub struct Outbox {
    pending: Mutex<HashMap<Uuid, (Uuid, RunRecord, u64)>>,
    next_seq: AtomicU64,
    writes: mpsc::UnboundedSender<Message>,
}

impl Outbox {
    /// An outbox and the queue its writer reads.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<Message>) {
        let (writes, queue) = mpsc::unbounded_channel();
        (Self { pending: Mutex::new(HashMap::new()), next_seq: AtomicU64::new(0), writes }, queue)
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, (Uuid, RunRecord, u64)>> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn put(&self, app_id: Uuid, run_id: Uuid, record: RunRecord) -> Committed {
        let (done, committed) = oneshot::channel();
        let seq = self.next_seq.fetch_add(1, Ordering::Relaxed);
        self.pending().insert(run_id, (app_id, record.clone(), seq));
        if self.writes.send(Message::Write(Write { app_id, run_id, record, seq, done })).is_err() {
            tracing::error!("run store: the writer has stopped; run {run_id} is not stored");
            self.pending().remove(&run_id);
        }
        Committed::Later(committed)
    }

    /// The record of `run_id` if it is put and not yet committed.
    pub fn get(&self, app_id: Uuid, run_id: Uuid) -> Option<RunRecord> {
        self.pending().get(&run_id).filter(|(app, _, _)| *app == app_id).map(|(_, record, _)| record.clone())
    }

    /// After a batch's commit: its records leave `pending` (unless a later
    /// write of the run is on its way), each write is told whether it is
    /// stored (`failed` names the runs that are not), and the flushes
    /// answered.
    pub fn settle(&self, batch: Batch, failed: &[Uuid]) {
        crate::metrics::METRICS.store_commit.observe(batch.taken.elapsed().as_secs_f64());
        {
            let mut pending = self.pending();
            for &i in &batch.rows {
                let w = &batch.writes[i];
                if pending.get(&w.run_id).is_some_and(|(_, _, seq)| *seq == w.seq) {
                    pending.remove(&w.run_id);
                }
            }
        }
        for w in batch.writes {
            let _ = w.done.send(!failed.contains(&w.run_id));
        }
        for f in batch.flushes {
            let _ = f.send(());
        }
    }

    /// Resolves once every record put before it is committed.
    pub fn flush(&self) -> futures_util::future::BoxFuture<'_, ()> {
        let (done, flushed) = oneshot::channel();
        let sent = self.writes.send(Message::Flush(done)).is_ok();
        Box::pin(async move {
            if sent {
                let _ = flushed.await;
            }
        })
    }

    pub fn len(&self) -> usize {
        self.pending().len()
    }

    pub fn bytes(&self) -> usize {
        self.pending().values().map(|(_, r, _)| r.heap_bytes()).sum()
    }
}

/// Text as a database's text column takes it: PostgreSQL's holds no NUL,
/// so a record keeps everything else.
pub fn no_nul(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') { std::borrow::Cow::Owned(text.replace('\0', "")) } else { std::borrow::Cow::Borrowed(text) }
}

/// A stored status back to its value.
pub fn status(text: &str) -> crate::workflow::events::RunStatus {
    use crate::workflow::events::RunStatus;
    match text {
        "succeeded" => RunStatus::Succeeded,
        "failed" => RunStatus::Failed,
        "stopped" => RunStatus::Stopped,
        _ => RunStatus::Running,
    }
}
