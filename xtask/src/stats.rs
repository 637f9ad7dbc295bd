//! The statistics behind `bench-compare` and `gate`: paired log-ratio t
//! intervals, minimum detectable effects, and a seeded bootstrap.

/// Two-sided 95% (t_0.975) and one-sided 90% (t_0.90) Student t quantiles
/// for 1..=30 degrees of freedom; above 30 the normal values are close enough.
const T_975: [f64; 30] = [
    12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093,
    2.086, 2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
];
const T_90: [f64; 30] = [
    3.078, 1.886, 1.638, 1.533, 1.476, 1.440, 1.415, 1.397, 1.383, 1.372, 1.363, 1.356, 1.350, 1.345, 1.341, 1.337, 1.333, 1.330, 1.328,
    1.325, 1.323, 1.321, 1.319, 1.318, 1.316, 1.315, 1.314, 1.313, 1.311, 1.310,
];

pub fn t_975(df: usize) -> f64 {
    if df == 0 { f64::INFINITY } else { T_975.get(df - 1).copied().unwrap_or(1.96) }
}

pub fn t_90(df: usize) -> f64 {
    if df == 0 { f64::INFINITY } else { T_90.get(df - 1).copied().unwrap_or(1.2816) }
}

pub fn mean(xs: &[f64]) -> f64 {
    xs.iter().sum::<f64>() / xs.len() as f64
}

/// The geometric mean of positive values: the mean that matches a mean of
/// log ratios, so GM(head) / GM(base) − 1 is exactly the change those give.
pub fn geomean(xs: &[f64]) -> f64 {
    mean(&xs.iter().map(|x| x.ln()).collect::<Vec<_>>()).exp()
}

pub fn sd(xs: &[f64]) -> f64 {
    if xs.len() < 2 {
        return f64::NAN;
    }
    let m = mean(xs);
    (xs.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (xs.len() - 1) as f64).sqrt()
}

/// A paired comparison on log ratios ln(head/base), one per pair.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct PairedChange {
    pub n_pairs: usize,
    /// Mean log ratio, and its 95% t interval.
    pub log_mean: f64,
    pub log_low: f64,
    pub log_high: f64,
    /// SD of the per-pair log ratios.
    pub log_sd: f64,
    /// The smallest effect (as a log ratio) found 90% of the time at 95%.
    pub log_mde: f64,
}

impl PairedChange {
    pub fn of(log_ratios: &[f64]) -> Self {
        let n = log_ratios.len();
        let m = mean(log_ratios);
        let s = sd(log_ratios);
        let se = s / (n as f64).sqrt();
        let half = t_975(n.saturating_sub(1)) * se;
        Self {
            n_pairs: n,
            log_mean: m,
            log_low: m - half,
            log_high: m + half,
            log_sd: s,
            log_mde: (t_975(n.saturating_sub(1)) + t_90(n.saturating_sub(1))) * se,
        }
    }
}

/// A log ratio as a percent change.
pub fn pct(log_ratio: f64) -> f64 {
    (log_ratio.exp() - 1.0) * 100.0
}

/// A small seeded generator (SplitMix64) for resampling.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }
}

/// Bootstrap 95% interval of ln(mean(new)/mean(base)) for two independent samples.
pub fn bootstrap_log_ratio_of_means(base: &[f64], new: &[f64], resamples: usize, seed: u64) -> (f64, f64, f64) {
    let mut rng = SplitMix64::new(seed);
    let point = (mean(new) / mean(base)).ln();
    let mut draws: Vec<f64> = (0..resamples)
        .map(|_| {
            let b: f64 = (0..base.len()).map(|_| base[rng.below(base.len())]).sum::<f64>() / base.len() as f64;
            let n: f64 = (0..new.len()).map(|_| new[rng.below(new.len())]).sum::<f64>() / new.len() as f64;
            (n / b).ln()
        })
        .collect();
    draws.sort_by(f64::total_cmp);
    let at = |q: f64| draws[((draws.len() - 1) as f64 * q).round() as usize];
    (point, at(0.025), at(0.975))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The gate's base and head columns agree with its change column: with
    /// arithmetic means they could disagree in sign.
    #[test]
    fn geometric_means_give_the_change_the_log_ratios_give() {
        let (base, head) = ([1.0, 10.0], [2.0, 4.0]);
        let logs: Vec<f64> = base.iter().zip(&head).map(|(b, h): (&f64, &f64)| (h / b).ln()).collect();
        let change = PairedChange::of(&logs).log_mean.exp() - 1.0;
        assert!((geomean(&head) / geomean(&base) - 1.0 - change).abs() < 1e-12);
        assert!(change < 0.0 && mean(&head) < mean(&base) && (change + 0.1056).abs() < 1e-3, "{change}");
        let (base, head) = ([1.0, 10.0], [3.0, 6.0]);
        let logs: Vec<f64> = base.iter().zip(&head).map(|(b, h): (&f64, &f64)| (h / b).ln()).collect();
        let change = PairedChange::of(&logs).log_mean.exp() - 1.0;
        // Up by the log ratios, down by the arithmetic means; the geometric agree.
        assert!(change > 0.0 && mean(&head) < mean(&base));
        assert!((geomean(&head) / geomean(&base) - 1.0 - change).abs() < 1e-12);
    }

    #[test]
    fn paired_interval_matches_a_hand_computation() {
        // mean 0.05, sd 0.01, n 4: half-width 3.182 × 0.01 / 2.
        let c = PairedChange::of(&[0.04, 0.05, 0.06, 0.05 + 0.0]);
        assert!((c.log_mean - 0.05).abs() < 1e-12);
        let s = sd(&[0.04, 0.05, 0.06, 0.05]);
        assert!((c.log_high - c.log_mean - 3.182 * s / 2.0).abs() < 1e-12);
        assert!((pct(0.0)).abs() < 1e-12);
    }

    #[test]
    fn bootstrap_brackets_a_clear_shift() {
        let base: Vec<f64> = (0..50).map(|i| 100.0 + f64::from(i % 5)).collect();
        let new: Vec<f64> = base.iter().map(|x| x * 1.10).collect();
        let (point, low, high) = bootstrap_log_ratio_of_means(&base, &new, 2000, 7);
        assert!((point - 1.1f64.ln()).abs() < 1e-9);
        assert!(low > 0.08 && high < 0.11, "{low} {high}");
    }
}
