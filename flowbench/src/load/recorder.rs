//! A worker's tally of its requests (`Recorder`): one HDR histogram per
//! `Metric` in an array indexed by it, the counts (sent, warm-up, ok,
//! errors by class) and the per-second counters of the measured phase and
//! of the warm-up. Recorders merge losslessly at the end; shards of
//! workers share one behind a lock, so the hot path takes no global lock.
//! Every request sent is counted once, warm-up or not.
//!
//! Latencies are of the requests intended in the measured phase, and of
//! successes only: a failure (refused in 50 µs, or timed out) is counted
//! by class and timed in `failed_duration`, never averaged into a success's
//! figure. Throughput is by completion: a measured second counts what
//! finished in it, whichever second the request was sent in, so long
//! streams begun in the warm-up are not lost from the first seconds.

use super::metrics::{ErrorClass, Metric, Sample, new_histogram};
use super::timeline::TimelineTally;
use hdrhistogram::Histogram;
use schema::integrity::{OffendingStream, Violation};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;

/// A worker's metrics; merge them for the run's.
pub struct Recorder {
    measure_start: Instant,
    /// The load's start (`warming_from`): the warm-up's seconds count from it.
    run_start: Instant,
    pub n_sent: u64,
    /// Requests intended before the measured phase: counted, not in figures.
    pub n_warmup: u64,
    pub n_ok: u64,
    pub errors: BTreeMap<ErrorClass, u64>,
    /// One histogram per metric, indexed by `Metric as usize`.
    histograms: [Histogram<u64>; Metric::COUNT],
    pub n_events: u64,
    /// Events of every request, warm-up included (for CPU per event).
    pub n_events_all: u64,
    pub n_bytes: u64,
    /// Per second of the measured phase.
    pub events_per_s: Vec<u64>,
    pub ok_per_s: Vec<u64>,
    pub errors_per_s: Vec<u64>,
    /// Per second of the warm-up, from the load's start: events received
    /// and requests finished before the measured phase (none are in figures).
    pub warmup_events_per_s: Vec<u64>,
    pub warmup_ok_per_s: Vec<u64>,
    pub warmup_errors_per_s: Vec<u64>,
    /// Summed over users: time waited before retrying after a connect error.
    pub backoff: Duration,
    /// Per app, when a run has more than one (empty otherwise).
    pub apps: Vec<AppTally>,
    /// Measured streams whose grammar was checked, and those that broke it.
    pub n_checked: u64,
    pub n_violating: u64,
    /// Streams per rule broken, indexed by `Violation as usize`.
    pub violations: [u64; Violation::ALL.len()],
    /// The first offending streams, whole.
    pub examples: Vec<OffendingStream>,
    /// The successful streams' timeline.
    pub timeline: TimelineTally,
    /// Measured requests that met the request SLO, when the run has one.
    pub n_good: Option<u64>,
    /// The slowest measured requests with a trace id, slowest first.
    pub slowest: Vec<Slow>,
}

/// Slow requests a run keeps by trace id.
pub const MAX_SLOWEST: usize = 10;

/// One of the slowest requests: what finds it in the target's traces.
#[derive(Debug, Clone, Copy)]
pub struct Slow {
    /// Intended send to its end: its duration, or a failure's.
    pub took: Duration,
    pub ttfe: Option<Duration>,
    pub trace_id: [u64; 2],
    pub app: u16,
    pub outcome: Result<(), ErrorClass>,
}

/// Whether a request that took `took` belongs in `list`.
fn slow_enough(list: &[Slow], took: Duration) -> bool {
    list.len() < MAX_SLOWEST || list.last().is_some_and(|last| last.took < took)
}

/// `slow` into `list`, kept slowest first and at most `MAX_SLOWEST` long.
fn keep_slowest(list: &mut Vec<Slow>, slow: Slow) {
    if !slow_enough(list, slow.took) {
        return;
    }
    let at = list.partition_point(|s| s.took >= slow.took);
    list.insert(at, slow);
    list.truncate(MAX_SLOWEST);
}

/// Offending streams a run keeps whole.
pub const MAX_EXAMPLES: usize = 5;

/// One app's share of a run's measured requests.
pub struct AppTally {
    pub n_ok: u64,
    pub n_errors: u64,
    /// Streams per rule broken, as the run's.
    pub violations: [u64; Violation::ALL.len()],
    pub duration: Histogram<u64>,
    pub ttfe: Histogram<u64>,
}

fn us(d: Duration) -> u64 {
    (d.as_micros() as u64).max(1)
}

impl Recorder {
    pub fn new(measure_start: Instant) -> Self {
        Self::with_apps(measure_start, 1)
    }

    /// A recorder that also tallies each of `n_apps` apps, if more than one.
    pub fn with_apps(measure_start: Instant, n_apps: usize) -> Self {
        let apps = if n_apps > 1 {
            (0..n_apps)
                .map(|_| AppTally {
                    n_ok: 0,
                    n_errors: 0,
                    violations: [0; Violation::ALL.len()],
                    duration: new_histogram(),
                    ttfe: new_histogram(),
                })
                .collect()
        } else {
            Vec::new()
        };
        Self {
            measure_start,
            run_start: measure_start,
            n_sent: 0,
            n_warmup: 0,
            n_ok: 0,
            errors: BTreeMap::new(),
            histograms: std::array::from_fn(|_| new_histogram()),
            n_events: 0,
            n_events_all: 0,
            n_bytes: 0,
            events_per_s: Vec::new(),
            ok_per_s: Vec::new(),
            errors_per_s: Vec::new(),
            warmup_events_per_s: Vec::new(),
            warmup_ok_per_s: Vec::new(),
            warmup_errors_per_s: Vec::new(),
            backoff: Duration::ZERO,
            apps,
            n_checked: 0,
            n_violating: 0,
            violations: [0; Violation::ALL.len()],
            examples: Vec::new(),
            timeline: TimelineTally::default(),
            n_good: None,
            slowest: Vec::new(),
        }
    }

    /// Goodput is counted: `good` requests are tallied (none, not unknown).
    pub fn counting_good(mut self, counting: bool) -> Self {
        self.n_good = counting.then_some(0);
        self
    }

    /// `sample` met the request SLO: counted if it is of the measured phase.
    pub fn good(&mut self, sample: &Sample) {
        if sample.intended >= self.measure_start {
            *self.n_good.get_or_insert(0) += 1;
        }
    }

    /// The load started at `start`: the warm-up's seconds are kept from it.
    pub fn warming_from(mut self, start: Instant) -> Self {
        self.run_start = start.min(self.measure_start);
        self
    }

    /// The histogram of `metric`.
    pub fn histogram(&self, metric: Metric) -> &Histogram<u64> {
        &self.histograms[metric as usize]
    }

    /// The measured-phase second `at` falls in, if it is in that phase.
    fn second(&self, at: Instant) -> Option<usize> {
        at.checked_duration_since(self.measure_start).map(|d| d.as_secs() as usize)
    }

    /// The warm-up second `at` falls in, if it is in the warm-up.
    fn warmup_second(&self, at: Instant) -> Option<usize> {
        (at < self.measure_start).then(|| at.checked_duration_since(self.run_start).map(|d| d.as_secs() as usize))?
    }

    /// Counts `n` events received at `at` (throughput is by receipt time).
    pub fn events_at(&mut self, at: Instant, n: u64) {
        if let Some(s) = self.second(at) {
            bump(&mut self.events_per_s, s, n);
        } else if let Some(s) = self.warmup_second(at) {
            bump(&mut self.warmup_events_per_s, s, n);
        }
    }

    /// Records one stamped chunk's emit → receipt, in ns (kept in µs).
    pub fn emit_lag(&mut self, ns: u64, intended: Instant) {
        if intended >= self.measure_start {
            self.histograms[Metric::EmitToReceipt as usize].saturating_record((ns / 1000).max(1));
        }
    }

    /// Records one gap between two events.
    pub fn gap(&mut self, gap: Duration, intended: Instant) {
        if intended >= self.measure_start {
            self.histograms[Metric::EventGap as usize].saturating_record(us(gap));
        }
    }

    pub fn record(&mut self, sample: &Sample) {
        self.n_sent += 1;
        self.n_events_all += sample.n_events;
        // Throughput, by completion.
        if let Some(s) = self.second(sample.done) {
            bump(if sample.outcome.is_ok() { &mut self.ok_per_s } else { &mut self.errors_per_s }, s, 1);
        } else if let Some(s) = self.warmup_second(sample.done) {
            bump(if sample.outcome.is_ok() { &mut self.warmup_ok_per_s } else { &mut self.warmup_errors_per_s }, s, 1);
        }
        if sample.intended < self.measure_start {
            self.n_warmup += 1;
            return;
        }
        match sample.outcome {
            Ok(()) => self.n_ok += 1,
            Err(class) => *self.errors.entry(class).or_default() += 1,
        }
        if sample.checked {
            self.n_checked += 1;
            self.n_violating += u64::from(sample.violations != 0);
            for v in Violation::of_set(sample.violations) {
                self.violations[v as usize] += 1;
            }
        }
        // A success's metrics, or a failure's `failed_duration`.
        for metric in Metric::ALL {
            if let Some(v) = sample.value(metric) {
                self.histograms[metric as usize].saturating_record(us(v));
            }
        }
        if let Some(app) = self.apps.get_mut(usize::from(sample.app)) {
            if sample.outcome.is_ok() {
                app.n_ok += 1;
            } else {
                app.n_errors += 1;
            }
            for v in Violation::of_set(sample.violations) {
                app.violations[v as usize] += 1;
            }
            if let Some(v) = sample.value(Metric::Duration) {
                app.duration.saturating_record(us(v));
            }
            if let Some(v) = sample.value(Metric::Ttfe) {
                app.ttfe.saturating_record(us(v));
            }
        }
        self.n_events += sample.n_events;
        self.n_bytes += sample.n_bytes;
        let took = sample.done.saturating_duration_since(sample.intended);
        if sample.trace_id != [0; 2] && slow_enough(&self.slowest, took) {
            let slow = Slow { took, ttfe: sample.value(Metric::Ttfe), trace_id: sample.trace_id, app: sample.app, outcome: sample.outcome };
            keep_slowest(&mut self.slowest, slow);
        }
    }

    pub fn merge(&mut self, other: &Recorder) {
        self.n_sent += other.n_sent;
        self.n_warmup += other.n_warmup;
        self.n_ok += other.n_ok;
        for (class, n) in &other.errors {
            *self.errors.entry(*class).or_default() += n;
        }
        for (mine, theirs) in self.histograms.iter_mut().zip(&other.histograms) {
            mine.add(theirs).expect("histograms share bounds");
        }
        for (mine, theirs) in self.apps.iter_mut().zip(&other.apps) {
            mine.n_ok += theirs.n_ok;
            mine.n_errors += theirs.n_errors;
            for (m, t) in mine.violations.iter_mut().zip(&theirs.violations) {
                *m += t;
            }
            mine.duration.add(&theirs.duration).expect("histograms share bounds");
            mine.ttfe.add(&theirs.ttfe).expect("histograms share bounds");
        }
        self.n_events += other.n_events;
        self.n_events_all += other.n_events_all;
        self.n_bytes += other.n_bytes;
        self.backoff += other.backoff;
        self.n_checked += other.n_checked;
        self.n_violating += other.n_violating;
        for (m, t) in self.violations.iter_mut().zip(&other.violations) {
            *m += t;
        }
        let room = MAX_EXAMPLES.saturating_sub(self.examples.len());
        self.examples.extend(other.examples.iter().take(room).cloned());
        self.timeline.merge(&other.timeline);
        if let Some(good) = other.n_good {
            *self.n_good.get_or_insert(0) += good;
        }
        for slow in &other.slowest {
            keep_slowest(&mut self.slowest, *slow);
        }
        for (mine, theirs) in [
            (&mut self.events_per_s, &other.events_per_s),
            (&mut self.ok_per_s, &other.ok_per_s),
            (&mut self.errors_per_s, &other.errors_per_s),
            (&mut self.warmup_events_per_s, &other.warmup_events_per_s),
            (&mut self.warmup_ok_per_s, &other.warmup_ok_per_s),
            (&mut self.warmup_errors_per_s, &other.warmup_errors_per_s),
        ] {
            for (s, n) in theirs.iter().enumerate() {
                bump(mine, s, *n);
            }
        }
    }

    /// Whether `sample` is of the measured phase (its figures count).
    pub fn measures(&self, sample: &Sample) -> bool {
        sample.intended >= self.measure_start
    }

    pub fn n_errors(&self) -> u64 {
        self.errors.values().sum()
    }
}

fn bump(v: &mut Vec<u64>, i: usize, n: u64) {
    if v.len() <= i {
        v.resize(i + 1, 0);
    }
    v[i] += n;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at: Instant, ms: u64, outcome: Result<(), ErrorClass>) -> Sample {
        Sample {
            done: at + Duration::from_millis(ms),
            ttfb: Some(Duration::from_millis(1)),
            ttfe: Some(Duration::from_millis(2)),
            n_events: 3,
            n_bytes: 100,
            ..Sample::new(at, at, outcome)
        }
    }

    /// The slowest measured requests with a trace id are kept, slowest
    /// first and ten at most, across shards merged too; warm-up and
    /// untraced requests are not among them.
    #[tokio::test(start_paused = true)]
    async fn the_slowest_traced_requests_are_kept_slowest_first() {
        let t0 = Instant::now();
        let measure = t0 + Duration::from_secs(1);
        let (mut a, mut b) = (Recorder::new(measure), Recorder::new(measure));
        for i in 1..=30u64 {
            let mut s = sample(measure, i, if i == 17 { Err(ErrorClass::Timeout) } else { Ok(()) });
            s.trace_id = [0, i];
            if i % 2 == 0 { &mut a } else { &mut b }.record(&s);
        }
        let mut untraced = sample(measure, 999, Ok(()));
        untraced.trace_id = [0; 2];
        a.record(&untraced);
        let mut warm = sample(t0, 5_000, Ok(()));
        warm.trace_id = [0, 99];
        a.record(&warm);
        a.merge(&b);
        let ids: Vec<u64> = a.slowest.iter().map(|s| s.trace_id[1]).collect();
        assert_eq!(ids, (21..=30).rev().collect::<Vec<_>>());
        assert!(a.slowest.windows(2).all(|w| w[0].took >= w[1].took));
    }

    #[tokio::test(start_paused = true)]
    async fn every_sample_is_counted_once_and_warmup_is_excluded() {
        let t0 = Instant::now();
        let measure = t0 + Duration::from_secs(1);
        let mut a = Recorder::new(measure);
        let mut b = Recorder::new(measure);
        a.record(&sample(t0, 5, Ok(())));
        a.record(&sample(measure, 5, Ok(())));
        b.record(&sample(measure + Duration::from_millis(1500), 7, Err(ErrorClass::Http5xx)));
        a.merge(&b);
        assert_eq!((a.n_sent, a.n_warmup, a.n_ok, a.n_errors()), (3, 1, 1, 1));
        assert_eq!(a.histogram(Metric::Duration).len(), 1, "a failure is in no success's latency");
        assert_eq!(a.histogram(Metric::Ttfe).len(), 1);
        assert_eq!(a.histogram(Metric::FailedDuration).len(), 1, "it is timed apart");
        assert_eq!(a.ok_per_s, [1]);
        assert_eq!(a.errors_per_s, [0, 1]);
        assert!(a.warmup_ok_per_s.is_empty(), "no warm-up seconds kept unless asked");
    }

    #[tokio::test(start_paused = true)]
    async fn the_warmup_is_kept_second_by_second_apart_from_the_figures() {
        let t0 = Instant::now();
        let measure = t0 + Duration::from_millis(2500);
        let ms = Duration::from_millis;
        let mut a = Recorder::new(measure).warming_from(t0);
        let mut b = Recorder::new(measure).warming_from(t0);
        a.record(&sample(t0, 5, Ok(())));
        a.events_at(t0 + ms(5), 3);
        b.record(&sample(t0 + ms(1200), 5, Err(ErrorClass::Timeout)));
        b.record(&sample(t0 + ms(2000), 5, Ok(())));
        b.events_at(t0 + ms(2005), 2);
        // Sent in the warm-up, finished in the measured phase: the measured
        // phase's throughput counts it (by completion), its figures do not.
        a.record(&sample(t0 + ms(2400), 200, Ok(())));
        a.events_at(measure + ms(100), 4);
        a.merge(&b);
        assert_eq!((a.n_warmup, a.n_ok), (4, 0));
        assert_eq!(a.ok_per_s, [1]);
        assert!(a.histogram(Metric::Duration).is_empty());
        assert_eq!(a.warmup_ok_per_s, [1, 0, 1]);
        assert_eq!(a.warmup_errors_per_s, [0, 1]);
        assert_eq!(a.warmup_events_per_s, [3, 0, 2]);
        assert_eq!(a.events_per_s, [4]);
    }
}
