//! When each request is meant to be sent: the one thing the load models
//! differ in. The driver has one worker loop; it asks its `Schedule` for the
//! next intended send time and gets `None` when the run is over.
//!
//! - Closed (Locust's model): virtual users, each sending its next request as
//!   soon as the last one ended (after its think time, if any). `Closed`
//!   starts N users at `spawn_rate` per second; `RampingUsers` follows
//!   stages (k6's ramping-vus): the number of users moves linearly from one
//!   stage's target to the next, user `i` runs while that number is above
//!   `i`, and a user ramped down finishes its request, then waits.
//! - Open (wrk2's model): arrivals at a rate, evenly spaced or Poisson
//!   (seeded), served by a pool of connections. `Open` holds one rate;
//!   `RampingRate` follows stages (k6's ramping-arrival-rate). A request
//!   waiting for a free connection is late, and its latency counts from its
//!   intended time (coordinated omission), so a stalled server cannot hide
//!   the requests it delayed.
//!
//! All four are one piecewise-linear level over time (users, or arrivals
//! per second): arrivals are the inverse of the level's integral, so a
//! ramp of rate is as exact as a constant one.

use rand::{Rng, SeedableRng};
pub use schema::load::{LoadModel, Stage, ThinkTime};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;
use tokio::time::Instant;

/// One pause of `think`, drawn with `rng`.
pub fn draw_think(think: &ThinkTime, rng: &mut impl Rng) -> Duration {
    if think.max_s <= think.min_s {
        return Duration::from_secs_f64(think.min_s.max(0.0));
    }
    Duration::from_secs_f64(rng.random_range(think.min_s..=think.max_s))
}

/// The level over time: users, or arrivals per second.
fn level_of(model: &LoadModel) -> Level {
    match model {
        // User i starts at i / spawn_rate: a ramp to N over N / spawn_rate.
        LoadModel::Closed { users, spawn_rate } => {
            let users = f64::from(*users);
            Level::new(&[Stage { duration_s: users / spawn_rate, target: users }])
        }
        LoadModel::Open { rate, .. } => Level::new(&[Stage { duration_s: 0.0, target: *rate }]),
        LoadModel::RampingUsers { stages, .. } | LoadModel::RampingRate { stages, .. } => Level::new(stages),
    }
}

/// A piecewise-linear level from t = 0, held at its last value after the
/// last stage.
#[derive(Debug, Clone)]
struct Level {
    /// (start time, start level, end time, end level, area before it).
    segments: Vec<LevelSegment>,
}

#[derive(Debug, Clone, Copy)]
struct LevelSegment {
    t0: f64,
    v0: f64,
    t1: f64,
    v1: f64,
    area_before: f64,
}

impl LevelSegment {
    fn area(&self) -> f64 {
        (self.t1 - self.t0) * (self.v0 + self.v1) / 2.0
    }
}

impl Level {
    fn new(stages: &[Stage]) -> Self {
        let (mut t, mut v, mut area) = (0.0, 0.0, 0.0);
        let mut segments = Vec::with_capacity(stages.len() + 1);
        for stage in stages {
            let s = LevelSegment { t0: t, v0: v, t1: t + stage.duration_s, v1: stage.target, area_before: area };
            area += s.area();
            (t, v) = (s.t1, s.v1);
            segments.push(s);
        }
        segments.push(LevelSegment { t0: t, v0: v, t1: f64::INFINITY, v1: v, area_before: area });
        Self { segments }
    }

    /// The first time at or after `t` when user `i` runs (the level is above
    /// `i`; on a rising ramp, from the instant it reaches `i`).
    fn user_runs_from(&self, i: f64, t: f64) -> Option<f64> {
        for s in &self.segments {
            if s.t1 <= t && s.t1.is_finite() {
                continue;
            }
            let from = t.max(s.t0);
            if s.v0 == s.v1 || !s.t1.is_finite() {
                if s.v0 > i {
                    return Some(from);
                }
                continue;
            }
            // Where the ramp crosses i.
            let cross = s.t0 + (i - s.v0) / (s.v1 - s.v0) * (s.t1 - s.t0);
            if s.v1 > s.v0 {
                // Reaching exactly i at the ramp's end is not running.
                if s.v1 > i {
                    return Some(from.max(cross));
                }
            } else if s.v0 > i && from < cross {
                return Some(from);
            }
        }
        None
    }

    /// The time when the level's integral reaches `area` (the arrival whose
    /// cumulative count is `area`); `None` if it never does.
    fn time_of_area(&self, area: f64) -> Option<f64> {
        for s in &self.segments {
            let left = area - s.area_before;
            // An arrival on a segment's end is the next segment's first: one
            // where the rate has fallen to 0 is not sent until it rises.
            if s.t1.is_finite() && left >= s.area() {
                continue;
            }
            if !s.t1.is_finite() && s.v0 <= 0.0 {
                return None;
            }
            // left = v0·τ + (v1 − v0)/(2D)·τ²; the stable root.
            let a = if s.t1.is_finite() && s.t1 > s.t0 { (s.v1 - s.v0) / (2.0 * (s.t1 - s.t0)) } else { 0.0 };
            let b = s.v0;
            let disc = (b * b + 4.0 * a * left).max(0.0);
            let denom = b + disc.sqrt();
            if denom <= 0.0 {
                // A segment with no area yet (a ramp up from 0, at its start).
                return Some(s.t0);
            }
            return Some(s.t0 + 2.0 * left / denom);
        }
        None
    }
}

/// Intended send times for one run, shared by all workers.
pub struct Schedule {
    open: bool,
    poisson: bool,
    level: Level,
    start: Instant,
    end: Instant,
    next_arrival: AtomicU64,
    /// Evenly spaced arrivals fall where the integral reaches k + phase: a
    /// shard's share of a load sent between the other shards' (0 ≤ phase < 1).
    phase: f64,
    /// The Poisson arrivals' generator and the last arrival's cumulative count.
    poisson_state: Mutex<(rand::rngs::SmallRng, f64)>,
}

impl Schedule {
    /// A schedule sending from `start` until `start + duration`.
    pub fn new(model: &LoadModel, start: Instant, duration: Duration) -> Self {
        let (poisson, seed) = match *model {
            LoadModel::Open { poisson, seed, .. } | LoadModel::RampingRate { poisson, seed, .. } => (poisson, seed),
            _ => (false, 0),
        };
        Self {
            open: model.is_open(),
            poisson,
            level: level_of(model),
            start,
            // Plans are checked to last under a year; a longer one is capped, not an overflow.
            end: start + duration.min(Duration::from_secs(100 * 365 * 86_400)),
            next_arrival: AtomicU64::new(0),
            phase: 0.0,
            poisson_state: Mutex::new((rand::rngs::SmallRng::seed_from_u64(seed), 0.0)),
        }
    }

    /// This schedule's evenly spaced arrivals, shifted by `phase` of a period.
    pub fn with_phase(mut self, phase: f64) -> Self {
        self.phase = phase;
        self
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
        // A time past the end is no time: checked before it is an Instant,
        // so an arrival centuries away (a rate of 1e-20) cannot overflow.
        let span = (self.end - self.start).as_secs_f64();
        let at = |secs: f64| (secs < span).then(|| self.start + Duration::from_secs_f64(secs));
        let intended = if !self.open {
            let now = Instant::now();
            let since = if first { 0.0 } else { now.saturating_duration_since(self.start).as_secs_f64() };
            let from = self.level.user_runs_from(f64::from(worker), since)?;
            // A user that may go on goes now, not at a time rounded to f64.
            if !first && from <= since { now } else { at(from)? }
        } else if !self.poisson {
            let k = self.next_arrival.fetch_add(1, Ordering::Relaxed);
            at(self.level.time_of_area(k as f64 + self.phase)?)?
        } else {
            let mut state = self.poisson_state.lock().unwrap_or_else(|e| e.into_inner());
            let (rng, area) = &mut *state;
            // Unit-rate exponential steps of the cumulative count: a Poisson
            // process at the level's rate, ramps included.
            let u: f64 = rng.random_range(f64::EPSILON..1.0);
            *area += -u.ln();
            at(self.level.time_of_area(*area)?)?
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
        let schedule = Schedule::new(&LoadModel::Closed { users: 10, spawn_rate: 2.0 }, start, Duration::from_secs(60));
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
        let schedule = Schedule::new(&model, start, Duration::from_secs(1));
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
            let schedule = Schedule::new(&model, Instant::now(), Duration::from_secs(10));
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

    fn stages(list: &[(f64, f64)]) -> Vec<Stage> {
        list.iter().map(|&(duration_s, target)| Stage { duration_s, target }).collect()
    }

    #[tokio::test(start_paused = true)]
    async fn ramping_users_start_on_the_ramp_pause_when_ramped_down_and_come_back() {
        let start = Instant::now();
        // 0 → 4 users over 4 s, hold 4 s, down to 2 over 2 s, hold 2 s, back to 4 at once.
        let model = LoadModel::RampingUsers {
            stages: stages(&[(4.0, 4.0), (4.0, 4.0), (2.0, 2.0), (2.0, 2.0), (0.0, 4.0), (2.0, 4.0)]),
            think_time: ThinkTime::default(),
        };
        assert_eq!(model.n_workers(), 4);
        let schedule = Schedule::new(&model, start, Duration::from_secs(14));
        for worker in 0..4 {
            let t = schedule.next(worker, true).await.unwrap();
            assert_eq!(t - start, Duration::from_secs(u64::from(worker)), "user {worker} starts as the ramp reaches it");
        }
        tokio::time::advance(Duration::from_millis(6_600)).await;
        // At 9.6 s the level is 2.4: user 2 still runs, user 3 waits for the step back to 4 at 12 s.
        assert_eq!(schedule.next(2, false).await.unwrap(), Instant::now());
        let back = schedule.next(3, false).await.unwrap();
        assert_eq!(back - start, Duration::from_secs(12));
        tokio::time::advance(Duration::from_secs(2)).await;
        assert!(schedule.next(0, false).await.is_none(), "the stages are over");
    }

    #[tokio::test(start_paused = true)]
    async fn closed_is_the_ramp_it_stands_for() {
        let start = Instant::now();
        let flat = Schedule::new(&LoadModel::Closed { users: 6, spawn_rate: 3.0 }, start, Duration::from_secs(10));
        let ramp = LoadModel::RampingUsers { stages: stages(&[(2.0, 6.0), (8.0, 6.0)]), think_time: ThinkTime::default() };
        let ramp = Schedule::new(&ramp, start, Duration::from_secs(10));
        for worker in 0..6 {
            assert_eq!(flat.next(worker, true).await, ramp.next(worker, true).await);
        }
    }

    #[tokio::test(start_paused = true)]
    async fn ramping_rate_sends_the_area_under_its_stages() {
        let start = Instant::now();
        // 0 → 100/s over 2 s (100 arrivals), 100/s for 1 s (100), down to 0 over 2 s (100).
        let model =
            LoadModel::RampingRate { stages: stages(&[(2.0, 100.0), (1.0, 100.0), (2.0, 0.0)]), poisson: false, connections: 8, seed: 1 };
        let schedule = Schedule::new(&model, start, Duration::from_secs(10));
        let mut times = Vec::new();
        while let Some(t) = schedule.next(0, times.is_empty()).await {
            times.push((t - start).as_secs_f64());
        }
        assert_eq!(times.len(), 300, "the arrivals are the integral, and none after the rate fell to 0");
        // The 50th arrival of a linear ramp to 100/s over 2 s: 50 = 25·t² → t = √2.
        assert!((times[50] - 2f64.sqrt()).abs() < 1e-6, "{}", times[50]);
        assert!((times[150] - 2.5).abs() < 1e-6, "{}", times[150]);
        assert!(times.windows(2).all(|w| w[0] <= w[1]), "in order");

        let poisson = LoadModel::RampingRate { stages: stages(&[(10.0, 2000.0)]), poisson: true, connections: 8, seed: 3 };
        let schedule = Schedule::new(&poisson, start, Duration::from_secs(10));
        let mut n = 0;
        while schedule.next(0, false).await.is_some() {
            n += 1;
        }
        // 10,000 expected (the ramp's area); a Poisson count's SD is 100.
        assert!((9_500..10_500).contains(&n), "{n}");
    }

    #[tokio::test(start_paused = true)]
    async fn an_arrival_beyond_the_end_is_none_however_far() {
        let start = Instant::now();
        let model = LoadModel::Open { rate: 1e-20, poisson: false, connections: 1, seed: 1 };
        let schedule = Schedule::new(&model, start, Duration::from_secs(1));
        assert_eq!(schedule.next(0, true).await, Some(start));
        assert_eq!(schedule.next(0, false).await, None, "the next is 1e20 s away");
        let slow = Schedule::new(&LoadModel::Closed { users: 10, spawn_rate: 1e-19 }, start, Duration::from_secs(1));
        assert_eq!(slow.next(9, true).await, None);
    }

    #[tokio::test(start_paused = true)]
    async fn shards_are_equal_parts_that_add_up_to_the_load() {
        let start = Instant::now();
        // Users: 10 over 3 shards is 4 + 3 + 3, each user once.
        let closed = LoadModel::Closed { users: 10, spawn_rate: 5.0 };
        let parts: Vec<_> = (1..=3).map(|i| closed.share(i, 3).unwrap()).collect();
        assert_eq!(parts.iter().map(LoadModel::n_workers).sum::<u32>(), 10);
        assert!(LoadModel::Closed { users: 2, spawn_rate: 1.0 }.share(3, 3).unwrap_err().contains("2 users cannot be split 3 ways"));
        // Stages of users: at every moment the shards run as many users as the whole.
        let ramp = LoadModel::RampingUsers { stages: stages(&[(10.0, 10.0), (5.0, 10.0)]), think_time: ThinkTime::default() };
        let parts: Vec<_> = (1..=3).map(|i| ramp.share(i, 3).unwrap()).collect();
        for t in [0.5, 2.0, 3.3, 7.9, 12.0] {
            let running = |m: &LoadModel| (0..m.n_workers()).filter(|&u| level_of(m).user_runs_from(f64::from(u), t) == Some(t)).count();
            assert_eq!(parts.iter().map(running).sum::<usize>(), running(&ramp), "at {t} s");
        }
        // Evenly spaced arrivals: 3 shards of 300/s, phased, are the whole's 300 arrivals, interleaved.
        let open = LoadModel::Open { rate: 300.0, poisson: false, connections: 6, seed: 1 };
        let mut all = Vec::new();
        for i in 1..=3 {
            let part = open.share(i, 3).unwrap();
            let schedule = Schedule::new(&part, start, Duration::from_secs(1)).with_phase(f64::from(i - 1) / 3.0);
            while let Some(t) = schedule.next(0, false).await {
                all.push((t - start).as_secs_f64());
            }
        }
        all.sort_by(f64::total_cmp);
        assert_eq!(all.len(), 300);
        assert!(all.windows(2).all(|w| (w[1] - w[0] - 1.0 / 300.0).abs() < 1e-9), "evenly spaced as one schedule");
    }

    #[test]
    fn think_time_is_uniform_in_its_bounds() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(1);
        let think = ThinkTime { min_s: 0.5, max_s: 1.5 };
        let draws: Vec<f64> = (0..1000).map(|_| draw_think(&think, &mut rng).as_secs_f64()).collect();
        assert!(draws.iter().all(|d| (0.5..=1.5).contains(d)));
        let mean = draws.iter().sum::<f64>() / 1000.0;
        assert!((mean - 1.0).abs() < 0.05, "{mean}");
        assert_eq!(draw_think(&ThinkTime { min_s: 2.0, max_s: 2.0 }, &mut rng), Duration::from_secs(2));
    }
}
