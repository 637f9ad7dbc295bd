//! When each request is meant to be sent: the one thing the two load models
//! differ in. The driver has one worker loop; it asks its `Schedule` for the
//! next intended send time and gets `None` when the run is over.
//!
//! - Closed (Locust's model): N virtual users started at `spawn_rate` per
//!   second, each sending its next request as soon as the last one ended.
//! - Open (wrk2's model): arrivals at a fixed rate, evenly spaced or Poisson
//!   (seeded), served by a pool of connections. A request waiting for a free
//!   connection is late, and its latency counts from its intended time
//!   (coordinated omission), so a stalled server cannot hide the requests it
//!   delayed.

use rand::{Rng, SeedableRng};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "model", rename_all = "snake_case")]
pub enum LoadModel {
    Closed {
        users: u32,
        spawn_rate: f64,
    },
    Open {
        rate: f64,
        poisson: bool,
        connections: u32,
        /// Seeds the Poisson arrivals. Named apart in JSON: the report's load
        /// parameters flatten this model beside a `seed` of their own.
        #[serde(rename = "arrival_seed")]
        seed: u64,
    },
}

impl LoadModel {
    /// Workers the driver runs: one per user, or one per connection.
    pub fn n_workers(&self) -> u32 {
        match *self {
            LoadModel::Closed { users, .. } => users,
            LoadModel::Open { connections, .. } => connections,
        }
    }
}

/// Intended send times for one run, shared by all workers.
pub struct Schedule {
    model: LoadModel,
    start: Instant,
    end: Instant,
    next_arrival: AtomicU64,
    poisson: Mutex<(rand::rngs::SmallRng, Duration)>,
}

impl Schedule {
    /// A schedule sending from `start` until `start + duration`.
    pub fn new(model: LoadModel, start: Instant, duration: Duration) -> Self {
        let seed = match model {
            LoadModel::Open { seed, .. } => seed,
            LoadModel::Closed { .. } => 0,
        };
        Self {
            model,
            start,
            end: start + duration,
            next_arrival: AtomicU64::new(0),
            poisson: Mutex::new((rand::rngs::SmallRng::seed_from_u64(seed), Duration::ZERO)),
        }
    }

    pub fn start(&self) -> Instant {
        self.start
    }

    pub fn end(&self) -> Instant {
        self.end
    }

    /// The next intended send time for `worker`, after waiting for it; `None`
    /// once the run's time is up. `first` marks a worker's first request.
    pub async fn next(&self, worker: u32, first: bool) -> Option<Instant> {
        let intended = match self.model {
            LoadModel::Closed { spawn_rate, .. } => {
                if first {
                    self.start + Duration::from_secs_f64(f64::from(worker) / spawn_rate)
                } else {
                    Instant::now()
                }
            }
            LoadModel::Open { rate, poisson: false, .. } => {
                let k = self.next_arrival.fetch_add(1, Ordering::Relaxed);
                self.start + Duration::from_secs_f64(k as f64 / rate)
            }
            LoadModel::Open { rate, poisson: true, .. } => {
                let mut state = self.poisson.lock().unwrap_or_else(|e| e.into_inner());
                let (rng, offset) = &mut *state;
                // Exponential inter-arrival times: -ln(U) / rate.
                let u: f64 = rng.random_range(f64::EPSILON..1.0);
                *offset += Duration::from_secs_f64(-u.ln() / rate);
                self.start + *offset
            }
        };
        if intended >= self.end {
            return None;
        }
        if intended > Instant::now() {
            tokio::time::sleep_until(intended).await;
        }
        Some(intended)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn closed_users_start_at_the_spawn_rate_then_go_back_to_back() {
        let start = Instant::now();
        let schedule = Schedule::new(LoadModel::Closed { users: 10, spawn_rate: 2.0 }, start, Duration::from_secs(60));
        let t9 = schedule.next(9, true).await.unwrap();
        assert_eq!(t9 - start, Duration::from_millis(4500));
        let again = schedule.next(9, false).await.unwrap();
        assert_eq!(again, Instant::now());
        tokio::time::advance(Duration::from_secs(60)).await;
        assert!(schedule.next(9, false).await.is_none());
    }

    #[tokio::test(start_paused = true)]
    async fn open_constant_rate_spaces_arrivals_evenly() {
        let start = Instant::now();
        let model = LoadModel::Open { rate: 100.0, poisson: false, connections: 4, seed: 0 };
        let schedule = Schedule::new(model, start, Duration::from_secs(1));
        let mut times = Vec::new();
        while let Some(t) = schedule.next(0, times.is_empty()).await {
            times.push(t - start);
        }
        assert_eq!(times.len(), 100);
        assert_eq!(times[1], Duration::from_millis(10));
        assert_eq!(times[99], Duration::from_millis(990));
    }

    #[tokio::test(start_paused = true)]
    async fn open_poisson_is_seeded_and_near_its_rate() {
        let count = |seed| async move {
            let model = LoadModel::Open { rate: 1000.0, poisson: true, connections: 1, seed };
            let schedule = Schedule::new(model, Instant::now(), Duration::from_secs(10));
            let mut times = Vec::new();
            while let Some(t) = schedule.next(0, false).await {
                times.push(t);
            }
            times
        };
        let a = count(7).await;
        let b = count(7).await;
        assert_eq!(a.len(), b.len());
        // 10,000 expected; a Poisson count's SD is 100.
        assert!((9_500..10_500).contains(&a.len()), "{}", a.len());
    }
}
