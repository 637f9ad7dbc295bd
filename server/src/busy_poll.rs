//! Busy polling (`--busy-poll`, off by default): while any run is live, one
//! task per worker thread yields in a loop, so its worker never sleeps.
//! Each yield makes tokio poll its sockets without blocking (a zero-timeout
//! `epoll_wait`), so an upstream chunk is read as soon as it lands instead
//! of after the kernel wakes a sleeping thread. On a VM that wake-up is the
//! largest part of what the relay adds to a paced event (README.md, "Relay
//! latency"). The price is CPU: the workers run flat out while a run is
//! live, even with nothing to do. When no run is live the tasks sleep, and
//! the next run to start wakes them. Each turn also yields the thread
//! (`sched_yield`), so another process on the same core is not starved: a
//! client on the server's core measured a p99 of 3.8 ms without it, 1.1 ms
//! with it (README.md, "Relay latency").

use std::sync::atomic::{AtomicBool, Ordering};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The pollers' parking spot, shared by the runs that wake them.
#[derive(Debug, Default)]
pub(crate) struct BusyPoll {
    /// Set by a poller before it sleeps; read by every starting run.
    parked: AtomicBool,
    wake: Notify,
}

impl BusyPoll {
    /// Called by each run after it is counted live: wakes sleeping pollers.
    pub(crate) fn run_started(&self) {
        if self.parked.load(Ordering::SeqCst) {
            self.parked.store(false, Ordering::SeqCst);
            self.wake.notify_waiters();
        }
    }

    /// Spins while `live()` is above zero, sleeps while it is zero, until
    /// `stop` is cancelled.
    pub(crate) async fn poll(&self, live: impl Fn() -> u64, stop: CancellationToken) {
        loop {
            if stop.is_cancelled() {
                return;
            }
            if live() == 0 {
                // Registered before `parked` is set, and `live` read after:
                // a run that starts in between either sees `parked` and
                // wakes this waiter, or is counted by `live`.
                let woken = self.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                self.parked.store(true, Ordering::SeqCst);
                if live() == 0 {
                    tokio::select! {
                        () = woken => {}
                        () = stop.cancelled() => return,
                    }
                }
            }
            // Lets any other runnable thread on this core go first (sched_yield).
            std::thread::yield_now();
            tokio::task::yield_now().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::Stats;
    use std::sync::Arc;
    use std::sync::atomic::AtomicU64;
    use std::time::Duration;

    /// Waits (up to 5 s) until `cond` holds.
    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// A poller sleeps with no run live, spins (yields) with one, sleeps
    /// again after it ends, and returns when stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pollers_spin_only_while_a_run_is_live() {
        let poll = Arc::new(BusyPoll::default());
        let stats = Arc::new(Stats::default());
        let spins = Arc::new(AtomicU64::new(0));
        let stop = CancellationToken::new();
        let poller = {
            let (poll, stats, spins, stop) = (poll.clone(), stats.clone(), spins.clone(), stop.clone());
            tokio::spawn(async move {
                poll.poll(
                    || {
                        spins.fetch_add(1, Ordering::SeqCst);
                        stats.live_runs()
                    },
                    stop,
                )
                .await;
            })
        };
        // Idle: the poller parks after a check or two.
        eventually("an idle poller sleeps", || poll.parked.load(Ordering::SeqCst)).await;
        let idle = spins.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(spins.load(Ordering::SeqCst), idle, "a sleeping poller does not spin");
        // A run starts: the poller wakes and spins.
        stats.runs_started.fetch_add(1, Ordering::SeqCst);
        poll.run_started();
        eventually("a live run keeps the poller spinning", || spins.load(Ordering::SeqCst) > idle + 1000).await;
        // The run ends: the poller parks again.
        stats.runs_finished.fetch_add(1, Ordering::SeqCst);
        eventually("the poller sleeps once no run is live", || poll.parked.load(Ordering::SeqCst)).await;
        let parked = spins.load(Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert_eq!(spins.load(Ordering::SeqCst), parked);
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), poller).await.expect("a stopped poller returns").unwrap();
    }
}
