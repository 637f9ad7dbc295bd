//! The connection gauge: in-flight requests, +1 just before a request is
//! written and -1 when it ends, however it ends; the peak and the
//! time-weighted mean over the measured phase, and each second's.

use std::sync::Mutex;
use std::time::Duration;
use tokio::time::Instant;

/// In-flight requests: +1 just before a request is written, −1 when it ends.
/// Keeps the peak and the time-weighted mean over the measured phase.
pub struct Gauge {
    state: Mutex<GaugeState>,
}

struct GaugeState {
    value: i64,
    peak: i64,
    measure_start: Instant,
    /// Time after this is outside the measured phase.
    measure_end: Instant,
    last: Instant,
    /// ∫ value dt over the measured phase, in value·seconds.
    integral: f64,
    /// The same per second of the measured phase, and each second's peak:
    /// what `flowbench merge` adds up across shards.
    per_second: Vec<f64>,
    peak_per_second: Vec<i64>,
}

/// What a gauge measured over the measured phase.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GaugeFigures {
    pub peak: i64,
    /// Time-weighted mean.
    pub mean: f64,
    /// The time-weighted mean of each second (the last one over its part).
    pub mean_per_second: Vec<f64>,
    pub peak_per_second: Vec<i64>,
}

/// Decrements the gauge when the request ends, however it ends.
pub struct GaugeGuard<'a>(&'a Gauge);

impl Drop for GaugeGuard<'_> {
    fn drop(&mut self) {
        self.0.change(-1);
    }
}

impl Gauge {
    /// A gauge whose mean covers `[measure_start, measure_end]`.
    pub fn new(measure_start: Instant, measure_end: Instant) -> Self {
        Self {
            state: Mutex::new(GaugeState {
                value: 0,
                peak: 0,
                measure_start,
                measure_end,
                last: measure_start,
                integral: 0.0,
                per_second: Vec::new(),
                peak_per_second: Vec::new(),
            }),
        }
    }

    /// Ends the measured phase early (the run was interrupted at `at`).
    pub fn close_at(&self, at: Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.advance(at);
        s.measure_end = s.measure_end.min(at);
    }

    pub fn enter(&self) -> GaugeGuard<'_> {
        self.change(1);
        GaugeGuard(self)
    }

    fn change(&self, delta: i64) {
        let now = Instant::now();
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.advance(now);
        s.value += delta;
        s.peak = s.peak.max(s.value);
        // A rise is a peak; a fall was counted at the value before it.
        if delta > 0
            && let Some(second) = s.second_of(now)
        {
            let value = s.value;
            let slot = slot(&mut s.peak_per_second, second);
            *slot = (*slot).max(value);
        }
    }

    /// The figures over the measured phase, and that phase's end.
    pub fn finish(&self) -> (GaugeFigures, Instant) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let end = s.measure_end;
        s.advance(end);
        let span = end.saturating_duration_since(s.measure_start).as_secs_f64();
        let n = span.ceil() as usize;
        let mut mean_per_second = s.per_second.clone();
        mean_per_second.resize(n, 0.0);
        if let Some(last) = mean_per_second.last_mut() {
            // The last second may be a part of one.
            let part = span - (n - 1) as f64;
            if part > 0.0 {
                *last /= part;
            }
        }
        let mut peak_per_second = s.peak_per_second.clone();
        peak_per_second.resize(n, 0);
        let mean = if span > 0.0 { s.integral / span } else { 0.0 };
        (GaugeFigures { peak: s.peak, mean, mean_per_second, peak_per_second }, end)
    }
}

fn slot<T: Default + Clone>(v: &mut Vec<T>, i: usize) -> &mut T {
    if v.len() <= i {
        v.resize(i + 1, T::default());
    }
    &mut v[i]
}

impl GaugeState {
    /// The measured phase's second `at` falls in.
    fn second_of(&self, at: Instant) -> Option<usize> {
        (at < self.measure_end).then(|| at.checked_duration_since(self.measure_start).map(|d| d.as_secs() as usize))?
    }

    fn advance(&mut self, now: Instant) {
        let mut from = self.last.max(self.measure_start);
        let to = now.min(self.measure_end);
        if to > from {
            self.integral += self.value as f64 * (to - from).as_secs_f64();
            // The same, second by second; each second touched held `value`.
            while from < to {
                let second = (from - self.measure_start).as_secs() as usize;
                let second_end = self.measure_start + Duration::from_secs(second as u64 + 1);
                let until = to.min(second_end);
                let value = self.value;
                *slot(&mut self.per_second, second) += value as f64 * (until - from).as_secs_f64();
                let peak = slot(&mut self.peak_per_second, second);
                *peak = (*peak).max(value);
                from = until;
            }
        }
        if now > self.last {
            self.last = now;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn gauge_peak_and_time_weighted_mean() {
        let start = Instant::now();
        let gauge = Gauge::new(start, start + Duration::from_secs(4));
        let one = gauge.enter();
        tokio::time::advance(Duration::from_secs(1)).await;
        let two = gauge.enter();
        tokio::time::advance(Duration::from_secs(1)).await;
        drop(one);
        drop(two);
        tokio::time::advance(Duration::from_secs(2)).await;
        // A request still open after the phase does not count.
        let _late = gauge.enter();
        tokio::time::advance(Duration::from_secs(2)).await;
        let (g, _) = gauge.finish();
        assert_eq!(g.peak, 2);
        // (1·1 s + 2·1 s + 0·2 s) / 4 s
        assert!((g.mean - 0.75).abs() < 1e-9, "{}", g.mean);
        assert_eq!(g.peak_per_second, [1, 2, 0, 0]);
        let means: Vec<f64> = g.mean_per_second.iter().map(|m| (m * 1e9).round() / 1e9).collect();
        assert_eq!(means, [1.0, 2.0, 0.0, 0.0]);
    }
}
