//! Busy polling (`--busy-poll`, off by default): while runs are live and
//! their upstreams are sending, one task per worker thread yields in a
//! loop, so its worker never sleeps. Each yield makes tokio poll its
//! sockets without blocking (a zero-timeout `epoll_wait`), so an upstream
//! chunk is read as soon as it lands instead of after the kernel wakes a
//! sleeping thread. On a VM that wake-up is the largest part of what the
//! relay adds to a paced event (docs/performance.md, "Busy polling"). The price is
//! CPU: the workers run flat out while they spin, even with nothing to do.
//! So they spin only within a window (`busy_poll_window`, 100 ms by
//! default) after the last run started or the last upstream read: runs
//! waiting on a slow first token cost no CPU. Outside the window the tasks
//! sleep, and the next run start or upstream read wakes them (that read
//! paid the wake-up). Each turn also yields the thread (`sched_yield`), so
//! another process on the same core (a client, the driver) is not starved
//! (docs/performance.md, "Busy polling").

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The pollers' parking spot, shared by the runs that wake them.
#[derive(Debug)]
pub(crate) struct BusyPoll {
    /// How long the pollers spin after the last activity.
    window: Duration,
    /// Bumped by every run start and every upstream read.
    activity: AtomicU64,
    /// Pollers asleep, or about to be: counted before they check
    /// `activity` a last time; read after every bump.
    parked: AtomicUsize,
    wake: Notify,
}

impl BusyPoll {
    pub(crate) fn new(window: Duration) -> Self {
        Self { window, activity: AtomicU64::new(0), parked: AtomicUsize::new(0), wake: Notify::new() }
    }

    /// Called by each run after it is counted live, and after each upstream
    /// read: keeps the pollers spinning, or wakes them.
    pub(crate) fn active(&self) {
        self.activity.fetch_add(1, Ordering::SeqCst);
        if self.parked.load(Ordering::SeqCst) > 0 {
            self.wake.notify_waiters();
        }
    }

    /// Spins while `live()` is above zero and the last activity is within
    /// the window; sleeps otherwise, until `stop` is cancelled.
    pub(crate) async fn poll(&self, live: impl Fn() -> u64, stop: CancellationToken) {
        let mut seen = self.activity.load(Ordering::SeqCst);
        let mut since = Instant::now();
        loop {
            if stop.is_cancelled() {
                return;
            }
            let now_seen = self.activity.load(Ordering::SeqCst);
            if now_seen != seen {
                (seen, since) = (now_seen, Instant::now());
            }
            if live() == 0 || since.elapsed() >= self.window {
                // Registered before it is counted parked, and `activity`
                // read after: a run that starts or sends in between either
                // sees it counted and wakes it, or has bumped `activity`.
                let woken = self.wake.notified();
                tokio::pin!(woken);
                woken.as_mut().enable();
                self.parked.fetch_add(1, Ordering::SeqCst);
                let stopped = if self.activity.load(Ordering::SeqCst) == seen {
                    tokio::select! {
                        () = woken => false,
                        () = stop.cancelled() => true,
                    }
                } else {
                    false
                };
                self.parked.fetch_sub(1, Ordering::SeqCst);
                if stopped {
                    return;
                }
                (seen, since) = (self.activity.load(Ordering::SeqCst), Instant::now());
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
    use std::sync::atomic::AtomicBool;

    /// Waits (up to 10 s) until `cond` holds.
    async fn eventually(what: &str, cond: impl Fn() -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while !cond() {
            assert!(tokio::time::Instant::now() < deadline, "{what}");
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Spawns a poller of `poll` whose `live()` is `live`, counting its turns.
    fn spawn_poller(
        poll: &Arc<BusyPoll>,
        live: impl Fn() -> u64 + Send + 'static,
        stop: &CancellationToken,
    ) -> (Arc<AtomicU64>, tokio::task::JoinHandle<()>) {
        let spins = Arc::new(AtomicU64::new(0));
        let (poll, counted, stop) = (poll.clone(), spins.clone(), stop.clone());
        let task = tokio::spawn(async move {
            poll.poll(
                move || {
                    counted.fetch_add(1, Ordering::SeqCst);
                    live()
                },
                stop,
            )
            .await;
        });
        (spins, task)
    }

    /// Waits (up to 10 s) until the poller counting `spins` sleeps: no
    /// turn in 50 ms. A spinning poller turns thousands of times in that.
    async fn sleeps(spins: &AtomicU64, what: &str) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        loop {
            let before = spins.load(Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(50)).await;
            if spins.load(Ordering::SeqCst) == before {
                return;
            }
            assert!(tokio::time::Instant::now() < deadline, "{what}");
        }
    }

    /// A poller sleeps with no run live, spins (yields) with one, sleeps
    /// again after it ends, and returns when stopped.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pollers_spin_only_while_a_run_is_live() {
        // A window longer than the test: only the live count matters.
        let poll = Arc::new(BusyPoll::new(Duration::from_secs(3600)));
        let stats = Arc::new(Stats::default());
        let stop = CancellationToken::new();
        let (spins, poller) = spawn_poller(
            &poll,
            {
                let stats = stats.clone();
                move || stats.live_runs()
            },
            &stop,
        );
        sleeps(&spins, "an idle poller sleeps").await;
        // A run starts: the poller wakes and spins.
        let idle = spins.load(Ordering::SeqCst);
        stats.runs_started.fetch_add(1, Ordering::SeqCst);
        poll.active();
        eventually("a live run keeps the poller spinning", || spins.load(Ordering::SeqCst) > idle + 100).await;
        // The run ends: the poller sleeps again.
        stats.runs_finished.fetch_add(1, Ordering::SeqCst);
        sleeps(&spins, "the poller sleeps once no run is live").await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), poller).await.expect("a stopped poller returns").unwrap();
    }

    /// With a run live but its upstream silent, a poller spins for the
    /// window after the last activity, then sleeps; upstream reads wake
    /// it, and it sleeps again once they stop.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn pollers_sleep_once_live_runs_go_quiet() {
        let poll = Arc::new(BusyPoll::new(Duration::from_millis(20)));
        let stop = CancellationToken::new();
        poll.active();
        // One run, live throughout.
        let (spins, poller) = spawn_poller(&poll, || 1, &stop);
        sleeps(&spins, "a quiet live run lets the poller sleep").await;
        // Reads come in every 2 ms until the poller is seen spinning.
        let quiet = spins.load(Ordering::SeqCst);
        let spinning = Arc::new(AtomicBool::new(false));
        let reader = {
            let (poll, spinning) = (poll.clone(), spinning.clone());
            tokio::spawn(async move {
                while !spinning.load(Ordering::SeqCst) {
                    poll.active();
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            })
        };
        eventually("upstream reads wake the poller", || spins.load(Ordering::SeqCst) > quiet + 100).await;
        spinning.store(true, Ordering::SeqCst);
        reader.await.unwrap();
        // They stop: the poller sleeps again after the window.
        sleeps(&spins, "the poller sleeps once reads stop").await;
        stop.cancel();
        tokio::time::timeout(Duration::from_secs(5), poller).await.expect("a stopped poller returns").unwrap();
    }
}
