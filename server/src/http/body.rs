//! A streaming run's response body and its outbox: the body polls the run on
//! the connection's task and takes the frames the run has put in the
//! outbox, which is bounded, so a stalled reader stalls its run, not memory.

use super::busy_for;
use crate::sse::PING_FRAME;
use crate::workflow::engine::{ClientGone, Sink};
use bytes::Bytes;
use http_body::Frame;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

/// A streaming run's app and when it was accepted, for its figures in `/metrics`.
pub(super) struct StreamMeasured {
    pub(super) app: Arc<crate::state::ServedApp>,
    /// Until the first event goes.
    pub(super) accepted: Option<tokio::time::Instant>,
}

/// The frames a streaming run has made and its body has not yet taken. The
/// run is polled by its response body (below), on the connection's task, so
/// the two never contend for the lock.
#[derive(Default)]
pub(super) struct EventOutbox {
    frames: Vec<u8>,
    events: usize,
    /// The body is gone: the client left.
    closed: bool,
}

fn lock(outbox: &Mutex<EventOutbox>) -> std::sync::MutexGuard<'_, EventOutbox> {
    outbox.lock().unwrap_or_else(|e| e.into_inner())
}

/// A streaming run's sink: frames go to the outbox; a run whose outbox holds
/// `max_events` waits until its body takes them, so a slow reader slows its
/// own run and nothing buffers without bound.
pub(super) struct OutboxSink {
    pub(super) outbox: Arc<Mutex<EventOutbox>>,
    pub(super) max_events: usize,
    pub(super) busy_per_event: Duration,
    /// The terminal frame, held until the run's record is stored: a client
    /// that has `workflow_finished` finds the run finished, on any replica.
    pub(super) terminal: Option<Vec<u8>>,
}

impl Sink for OutboxSink {
    fn wants_events(&self) -> bool {
        true
    }

    async fn send_batch(&mut self, frames: Vec<u8>, n_events: usize) -> Result<(), ClientGone> {
        if !self.busy_per_event.is_zero() {
            busy_for(self.busy_per_event * n_events as u32);
        }
        let mut frames = Some(frames);
        std::future::poll_fn(|_| {
            let mut outbox = lock(&self.outbox);
            if outbox.closed {
                return Poll::Ready(Err(ClientGone));
            }
            if outbox.events >= self.max_events {
                // The body takes the frames before it polls the run again.
                return Poll::Pending;
            }
            let frames = frames.take().expect("polled after completion");
            if outbox.frames.is_empty() {
                outbox.frames = frames;
            } else {
                outbox.frames.extend_from_slice(&frames);
            }
            outbox.events += n_events;
            Poll::Ready(Ok(()))
        })
        .await
    }

    async fn send_terminal(&mut self, frame: Vec<u8>) -> Result<(), ClientGone> {
        self.terminal = Some(frame);
        Ok(())
    }

    async fn gone(&self) {
        // Only the body's drop closes the outbox, and it hands the run to a
        // task of its own, whose first poll sees it: no waker is needed.
        std::future::poll_fn(|_| if lock(&self.outbox).closed { Poll::Ready(()) } else { Poll::Pending }).await;
    }
}

pub(super) type Execution = Pin<Box<dyn Future<Output = ()> + Send>>;

/// The streaming response body. It drives its run: each poll runs the
/// workflow as far as it can go (reading the upstream socket itself), then
/// hands over every frame made so far as one buffer. A ping goes first, and
/// after each `ping_interval` of silence; the body ends after the run ends
/// and its last frame (`workflow_finished`) is taken, or `tail` later (to
/// imitate Dify, which holds its body about 1 s more). Dropped early (the
/// client left), it closes the outbox and lets the run end on a task of its
/// own, which cancels the upstream request and records the run.
pub(super) struct RunBody {
    execution: Option<Execution>,
    outbox: Arc<Mutex<EventOutbox>>,
    ping_interval: Duration,
    ping: Pin<Box<tokio::time::Sleep>>,
    last_frame: tokio::time::Instant,
    sent_first_ping: bool,
    tail: Duration,
    /// When the body ends, once the run has ended and `tail` is not zero.
    tail_end: Option<tokio::time::Instant>,
    measured: Option<StreamMeasured>,
}

impl RunBody {
    pub(super) fn new(
        execution: Execution,
        outbox: Arc<Mutex<EventOutbox>>,
        (ping_interval, tail): (Duration, Duration),
        measured: Option<StreamMeasured>,
    ) -> Self {
        let now = tokio::time::Instant::now();
        Self {
            execution: Some(execution),
            outbox,
            ping_interval,
            ping: Box::pin(tokio::time::sleep_until(now + ping_interval)),
            last_frame: now,
            sent_first_ping: false,
            tail,
            tail_end: None,
            measured,
        }
    }
}

impl http_body::Body for RunBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if !this.sent_first_ping {
            this.sent_first_ping = true;
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(PING_FRAME)))));
        }
        if let Some(execution) = this.execution.as_mut()
            && execution.as_mut().poll(cx).is_ready()
        {
            this.execution = None;
        }
        let (frames, events) = {
            let mut outbox = lock(&this.outbox);
            (std::mem::take(&mut outbox.frames), std::mem::take(&mut outbox.events))
        };
        if !frames.is_empty() {
            // Cheaper than re-arming the timer for every event.
            this.last_frame = tokio::time::Instant::now();
            if let Some(measured) = &mut this.measured {
                if let Some(accepted) = measured.accepted.take() {
                    measured.app.metrics.ttfe(this.last_frame.saturating_duration_since(accepted).as_secs_f64());
                }
                // Once per buffer taken, not per event: the counter's line is shared by every worker.
                measured.app.metrics.events(events as u64);
            }
            return Poll::Ready(Some(Ok(Frame::data(Bytes::from(frames)))));
        }
        if this.execution.is_none() {
            if this.tail.is_zero() {
                return Poll::Ready(None);
            }
            // The ping timer, no longer needed for pings, times the tail.
            if this.tail_end.is_none() {
                let end = tokio::time::Instant::now() + this.tail;
                this.tail_end = Some(end);
                this.ping.as_mut().reset(end);
            }
            return this.ping.as_mut().poll(cx).map(|()| None);
        }
        loop {
            if this.ping.as_mut().poll(cx).is_pending() {
                return Poll::Pending;
            }
            let due = this.last_frame + this.ping_interval;
            if tokio::time::Instant::now() >= due {
                this.last_frame = tokio::time::Instant::now();
                this.ping.as_mut().reset(this.last_frame + this.ping_interval);
                return Poll::Ready(Some(Ok(Frame::data(Bytes::from_static(PING_FRAME)))));
            }
            this.ping.as_mut().reset(due);
        }
    }
}

impl Drop for RunBody {
    fn drop(&mut self) {
        lock(&self.outbox).closed = true;
        if let Some(execution) = self.execution.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
        {
            runtime.spawn(execution);
        }
    }
}
