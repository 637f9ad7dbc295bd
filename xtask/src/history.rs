//! `cargo xtask history DIR`: when did main get slower? A series of saved
//! results (`flowbench run --json`, or BMF from `run --bmf`, the gate or
//! bench-compare), one file per commit, ordered by commit time; per metric,
//! change points found by E-divisive means with a permutation test, as
//! Apache Otava (Hunter) and MongoDB's performance CI find them.
//!
//! E-divisive (Matteson and James, 2014): for a series x₁…xₙ, the split τ
//! that maximizes
//!   Q(τ) = τ(n−τ)/n · [2/(τ(n−τ)) Σᵢ≤τ<ⱼ |xᵢ−xⱼ| − C(τ,2)⁻¹ Σᵢ<ₖ≤τ |xᵢ−xₖ| − C(n−τ,2)⁻¹ Στ<ⱼ<ₗ |xⱼ−xₗ|]
//! is a candidate; it is kept when the series' own values, shuffled, reach
//! that Q in fewer than `alpha` of the permutations; then each side is
//! searched the same way.

use anyhow::{Context, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

/// How the search decides.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// A change point is kept when its permutation p-value is below this.
    pub alpha: f64,
    pub permutations: usize,
    /// The fewest points on either side of a change.
    pub min_segment: usize,
    pub seed: u64,
}

impl Default for Settings {
    fn default() -> Self {
        Self { alpha: 0.01, permutations: 199, min_segment: 3, seed: 1 }
    }
}

/// The best split of `x` (its index: the first point after the change)
/// and its Q, or none when `x` is too short to split. O(n²): the sums
/// within each side grow (and shrink) by one point's distances per split,
/// and the sum between the sides is what the whole's sum leaves.
fn best_split(x: &[f64], min_segment: usize) -> Option<(usize, f64)> {
    let n = x.len();
    let min = min_segment.max(2);
    if n < 2 * min {
        return None;
    }
    // left[t] = Σ |xᵢ − xⱼ| over i < j < t; right[t] the same over t ≤ i < j.
    let mut left = vec![0.0; n + 1];
    for t in 1..=n {
        left[t] = left[t - 1] + x[..t - 1].iter().map(|a| (a - x[t - 1]).abs()).sum::<f64>();
    }
    let mut right = vec![0.0; n + 1];
    for t in (0..n).rev() {
        right[t] = right[t + 1] + x[t + 1..].iter().map(|a| (a - x[t]).abs()).sum::<f64>();
    }
    let total = left[n];
    let pairs = |len: f64| len * (len - 1.0) / 2.0;
    let mut best: Option<(usize, f64)> = None;
    for tau in min..=n - min {
        let (m, k) = (tau as f64, (n - tau) as f64);
        let between = total - left[tau] - right[tau];
        let q = m * k / n as f64 * (2.0 * between / (m * k) - left[tau] / pairs(m) - right[tau] / pairs(k));
        if best.is_none_or(|(_, b)| q > b) {
            best = Some((tau, q));
        }
    }
    best
}

/// A change point of one series.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct ChangePoint {
    /// The first point after the change.
    pub index: usize,
    pub p_value: f64,
    pub mean_before: f64,
    pub mean_after: f64,
}

impl ChangePoint {
    pub fn change_pct(&self) -> f64 {
        if self.mean_before == 0.0 { 0.0 } else { (self.mean_after - self.mean_before) / self.mean_before * 100.0 }
    }
}

/// Every change point of `x`, in order.
pub fn change_points(x: &[f64], settings: &Settings) -> Vec<ChangePoint> {
    let mut rng = rand::rngs::SmallRng::seed_from_u64(settings.seed);
    // Each kept change point with the p-value that kept it.
    let mut found: Vec<(usize, f64)> = Vec::new();
    let mut segments = vec![(0, x.len())];
    while let Some((start, end)) = segments.pop() {
        let segment = &x[start..end];
        let Some((tau, q)) = best_split(segment, settings.min_segment) else { continue };
        let mut shuffled = segment.to_vec();
        let mut reached = 0;
        for _ in 0..settings.permutations {
            shuffled.shuffle(&mut rng);
            if best_split(&shuffled, settings.min_segment).is_some_and(|(_, qp)| qp >= q) {
                reached += 1;
            }
        }
        let p = (reached as f64 + 1.0) / (settings.permutations as f64 + 1.0);
        if p < settings.alpha {
            found.push((start + tau, p));
            segments.push((start, start + tau));
            segments.push((start + tau, end));
        }
    }
    found.sort_by_key(|&(index, _)| index);
    // The levels between neighbouring change points.
    let mut bounds = vec![0];
    bounds.extend(found.iter().map(|&(index, _)| index));
    bounds.push(x.len());
    let mean = |s: &[f64]| s.iter().sum::<f64>() / s.len() as f64;
    found
        .iter()
        .enumerate()
        .map(|(i, &(index, p_value))| ChangePoint {
            index,
            p_value,
            mean_before: mean(&x[bounds[i]..index]),
            mean_after: mean(&x[index..bounds[i + 2]]),
        })
        .collect()
}

/// One result file: its commit and its figures, `benchmark/measure` → value.
#[derive(Debug, Clone)]
pub struct Point {
    pub commit: String,
    /// Its place in the repository's history.
    pub position: usize,
    pub figures: BTreeMap<String, f64>,
}

/// Why a run's figures are no point of a series: interrupted, its driver
/// the bottleneck, a scenario with no success or failures over 1%, a
/// threshold crossed. `None`: valid.
pub fn not_valid(report: &schema::report::Report) -> Option<String> {
    use schema::figures::{Figure, Scalar};
    if report.interrupted {
        return Some("the run was interrupted".to_owned());
    }
    for s in &report.scenarios {
        if s.health.verdict == schema::health::HealthVerdict::Invalid {
            return Some(format!("scenario {} is INVALID (the driver was the bottleneck)", s.name));
        }
        if s.counts.ok + s.counts.aborted() == 0 {
            return Some(format!("scenario {} had no successful request", s.name));
        }
        if let Some(rate) = Figure::Scalar(Scalar::ErrorRate).read(s).filter(|r| *r > 0.01) {
            return Some(format!("scenario {}: {:.2}% of its requests failed", s.name, rate * 100.0));
        }
    }
    report.thresholds.iter().find(|t| !t.passed).map(|t| format!("threshold {:?} was crossed", t.threshold))
}

/// A file's figures: a `flowbench run --json` report (through its BMF), or
/// a BMF document (`{"bench": {"measure": {"value": …}}}`); `Err(why)` for
/// a report whose run was not valid (`not_valid`).
fn figures(path: &Path) -> anyhow::Result<Result<BTreeMap<String, f64>, String>> {
    let text = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    let value: serde_json::Value = serde_json::from_slice(&text).with_context(|| format!("{} is not JSON", path.display()))?;
    let bmf = if value.get("schema").and_then(|s| s.as_str()) == Some(schema::report::SCHEMA) {
        let report: schema::report::Report =
            serde_json::from_value(value).with_context(|| format!("{} is not a readable flowbench report", path.display()))?;
        if let Some(why) = not_valid(&report) {
            return Ok(Err(why));
        }
        serde_json::to_value(report.to_bmf())?
    } else {
        value
    };
    let mut out = BTreeMap::new();
    let Some(benches) = bmf.as_object() else { bail!("{}: neither a flowbench report nor BMF", path.display()) };
    for (bench, measures) in benches {
        for (measure, m) in measures.as_object().into_iter().flatten() {
            if let Some(v) = m.get("value").and_then(|v| v.as_f64()) {
                out.insert(format!("{bench}/{measure}"), v);
            }
        }
    }
    if out.is_empty() {
        bail!("{}: neither a flowbench report nor BMF (no figures in it)", path.display());
    }
    Ok(Ok(out))
}

/// The commit a file is of: the name, or its last `-`/`_`-separated part,
/// must be a revision this repository knows (`<sha>.json`, `report-<sha>.json`).
fn commit_of(root: &Path, path: &Path) -> anyhow::Result<String> {
    let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("");
    let candidates = [stem, stem.rsplit(['-', '_']).next().unwrap_or(stem)];
    for rev in candidates {
        let out =
            Command::new("git").args(["rev-parse", "--verify", "--quiet", &format!("{rev}^{{commit}}")]).current_dir(root).output()?;
        if out.status.success() {
            return Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned());
        }
    }
    bail!("{}: its name names no commit of this repository (name it <sha>.json or <anything>-<sha>.json)", path.display())
}

/// The series in `dir`, in the order of the repository's history (oldest
/// first; commits made in the same second keep their parents first).
pub fn read_series(root: &Path, dir: &Path) -> anyhow::Result<Vec<Point>> {
    let out = Command::new("git").args(["rev-list", "--all", "--topo-order", "--reverse"]).current_dir(root).output()?;
    if !out.status.success() {
        bail!("git rev-list: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let order: std::collections::HashMap<String, usize> =
        String::from_utf8_lossy(&out.stdout).lines().enumerate().map(|(i, sha)| (sha.to_owned(), i)).collect();
    // Every file's commit first, so two files of one commit are named as
    // such whatever order the folder lists them in.
    let mut seen: Vec<(String, usize, std::path::PathBuf)> = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        let commit = commit_of(root, &path)?;
        let Some(&position) = order.get(&commit) else { bail!("{}: commit {commit} is on no branch here", path.display()) };
        if let Some((_, _, other)) = seen.iter().find(|(c, _, _)| *c == commit) {
            bail!("{} and {} are both of commit {commit}: keep one", other.display(), path.display());
        }
        seen.push((commit, position, path));
    }
    let mut points = Vec::new();
    for (commit, position, path) in seen {
        match figures(&path)? {
            Ok(figures) => points.push(Point { commit, position, figures }),
            Err(why) => eprintln!("history: {} left out: {why}", path.display()),
        }
    }
    points.sort_by_key(|p| p.position);
    Ok(points)
}

/// A change point of one metric, with the commit it came in.
#[derive(Debug, Clone, Serialize)]
pub struct Found {
    pub metric: String,
    pub commit: String,
    #[serde(flatten)]
    pub point: ChangePoint,
}

/// Every metric's change points over `points` (metrics missing from some
/// files are read over the files that have them); only those named in
/// `only`, when it names any.
pub fn analyse(points: &[Point], settings: &Settings, only: &[String]) -> Vec<Found> {
    let metrics: std::collections::BTreeSet<&String> =
        points.iter().flat_map(|p| p.figures.keys()).filter(|m| only.is_empty() || only.iter().any(|o| o == *m)).collect();
    let mut out = Vec::new();
    for metric in metrics {
        let series: Vec<(&str, f64)> = points.iter().filter_map(|p| p.figures.get(metric).map(|&v| (p.commit.as_str(), v))).collect();
        let values: Vec<f64> = series.iter().map(|(_, v)| *v).collect();
        for point in change_points(&values, settings) {
            out.push(Found { metric: metric.clone(), commit: series[point.index].0.to_owned(), point });
        }
    }
    out
}

/// A metric's change from its first `k` results to its last `k`: a slope
/// that no single change point explains (each step under the noise) shows
/// here, with its interval.
#[derive(Debug, Clone, Serialize)]
pub struct Drift {
    pub metric: String,
    pub k: usize,
    /// Geometric means of the first and the last `k` results.
    pub first: f64,
    pub last: f64,
    pub change_pct: f64,
    /// The change's 95% interval (Welch's t on the two groups' logs), in %.
    pub low_pct: f64,
    pub high_pct: f64,
    /// Whether a higher value is better, where the metric's name says
    /// (a flowbench figure's key); `None` for another BMF measure.
    pub higher_is_better: Option<bool>,
}

impl Drift {
    /// Worse by more than `limit_pct` beyond doubt: the whole interval past
    /// the limit in the worse direction (either, when it is not known).
    pub fn worse_than(&self, limit_pct: f64) -> bool {
        match self.higher_is_better {
            Some(true) => self.high_pct < -limit_pct,
            Some(false) => self.low_pct > limit_pct,
            None => self.high_pct < -limit_pct || self.low_pct > limit_pct,
        }
    }
}

/// Each metric's drift between its first and last `k` results (the series
/// needs `2k` of them; fewer, and the metric has none). Values must be
/// positive: the change is a ratio.
pub fn drift(points: &[Point], k: usize, only: &[String]) -> Vec<Drift> {
    let metrics: std::collections::BTreeSet<&String> =
        points.iter().flat_map(|p| p.figures.keys()).filter(|m| only.is_empty() || only.iter().any(|o| o == *m)).collect();
    let mut out = Vec::new();
    for metric in metrics {
        let logs: Vec<f64> = points.iter().filter_map(|p| p.figures.get(metric)).filter(|v| **v > 0.0).map(|v| v.ln()).collect();
        if k < 2 || logs.len() < 2 * k {
            continue;
        }
        let (first, last) = (&logs[..k], &logs[logs.len() - k..]);
        let d = crate::stats::mean(last) - crate::stats::mean(first);
        let (v1, v2) = (crate::stats::sd(first).powi(2) / k as f64, crate::stats::sd(last).powi(2) / k as f64);
        let se = (v1 + v2).sqrt();
        // Welch–Satterthwaite; equal variances give 2k − 2.
        let df = if se > 0.0 { ((v1 + v2).powi(2) / ((v1 * v1 + v2 * v2) / (k as f64 - 1.0))).floor() as usize } else { 2 * k - 2 };
        let half = crate::stats::t_975(df.max(1)) * se;
        let measure = metric.rsplit('/').next().unwrap_or(metric);
        let figure = schema::figures::Figure::from_key(measure.strip_suffix("_ms").unwrap_or(measure)).ok();
        out.push(Drift {
            metric: metric.clone(),
            k,
            first: crate::stats::mean(first).exp(),
            last: crate::stats::mean(last).exp(),
            change_pct: crate::stats::pct(d),
            low_pct: crate::stats::pct(d - half),
            high_pct: crate::stats::pct(d + half),
            higher_is_better: figure.map(schema::figures::Figure::higher_is_better),
        });
    }
    out
}

/// The drift table, Markdown.
pub fn drift_markdown(drifts: &[Drift], limit_pct: Option<f64>) -> String {
    let Some(k) = drifts.first().map(|d| d.k) else { return String::new() };
    let mut out = format!("\n## Drift: the first {k} results against the last {k}\n\n");
    out.push_str("| metric | first | last | change | 95% CI | verdict |\n|---|---|---|---|---|---|\n");
    for d in drifts {
        let verdict = match limit_pct {
            Some(limit) if d.worse_than(limit) => format!("**drift** (worse than {limit}%)"),
            Some(_) => "within".to_owned(),
            None => String::new(),
        };
        out.push_str(&format!(
            "| {} | {:.3} | {:.3} | {:+.1}% | [{:+.1}%, {:+.1}%] | {verdict} |\n",
            d.metric, d.first, d.last, d.change_pct, d.low_pct, d.high_pct
        ));
    }
    out
}

pub fn markdown(points: &[Point], found: &[Found], settings: &Settings) -> String {
    let mut out = format!("# Change points over {} results ({})\n\n{}.\n\n", points.len(), span(points), method(settings));
    if found.is_empty() {
        out.push_str("No change point.\n");
        return out;
    }
    out.push_str("| metric | commit | before | after | change | p |\n|---|---|---|---|---|---|\n");
    for f in found {
        out.push_str(&format!(
            "| {} | `{}` | {:.3} | {:.3} | {:+.1}% | {:.3} |\n",
            f.metric,
            &f.commit[..f.commit.len().min(9)],
            f.point.mean_before,
            f.point.mean_after,
            f.point.change_pct(),
            f.point.p_value
        ));
    }
    out
}

/// The page of `cargo xtask history --html`: per metric searched, its value
/// at each commit, the level between change points, and each change point
/// marked at its commit.
pub fn html(points: &[Point], found: &[Found], drifts: &[Drift], settings: &Settings, only: &[String]) -> anyhow::Result<String> {
    use pages::html::{Lines, esc, page, table};
    let short = |c: &str| c[..c.len().min(9)].to_owned();
    let mut body = format!("<p>{} results ({}); {}.</p>\n", points.len(), span(points), esc(&method(settings)));
    let rows: Vec<Vec<String>> = found
        .iter()
        .map(|f| {
            vec![
                esc(&f.metric),
                format!("<code>{}</code>", short(&f.commit)),
                format!("{:.3}", f.point.mean_before),
                format!("{:.3}", f.point.mean_after),
                format!("{:+.1}%", f.point.change_pct()),
                format!("{:.3}", f.point.p_value),
            ]
        })
        .collect();
    if rows.is_empty() {
        body.push_str("<p><b>No change point.</b></p>\n");
    } else {
        body.push_str(&table("Change points", &["metric", "commit", "before", "after", "change", "p"], &rows));
    }
    if let Some(k) = drifts.first().map(|d| d.k) {
        let rows: Vec<Vec<String>> = drifts
            .iter()
            .map(|d| {
                vec![
                    esc(&d.metric),
                    format!("{:.3}", d.first),
                    format!("{:.3}", d.last),
                    format!("{:+.1}%", d.change_pct),
                    format!("[{:+.1}%, {:+.1}%]", d.low_pct, d.high_pct),
                ]
            })
            .collect();
        body.push_str(&table(
            &format!("Drift: the first {k} results against the last {k}"),
            &["metric", "first", "last", "change", "95% CI"],
            &rows,
        ));
    }
    body.push_str("<div class=\"plots\">\n");
    let metrics: std::collections::BTreeSet<&String> =
        points.iter().flat_map(|p| p.figures.keys()).filter(|m| only.is_empty() || only.iter().any(|o| o == *m)).collect();
    for metric in metrics {
        let series: Vec<(&str, f64)> = points.iter().filter_map(|p| p.figures.get(metric).map(|&v| (p.commit.as_str(), v))).collect();
        let commits: Vec<String> = series.iter().map(|(c, _)| short(c)).collect();
        let label = move |x: &f64| commits.get(x.round() as usize).filter(|_| (x - x.round()).abs() < 1e-6).cloned().unwrap_or_default();
        let values: Vec<(f64, f64)> = series.iter().enumerate().map(|(i, (_, v))| (i as f64, *v)).collect();
        let changes: Vec<&Found> = found.iter().filter(|f| &f.metric == metric).collect();
        // The level of each segment between change points, drawn as steps.
        let mut bounds = vec![0];
        bounds.extend(changes.iter().map(|f| f.point.index));
        bounds.push(values.len());
        let mut level = Vec::new();
        for w in bounds.windows(2) {
            let part = &values[w[0]..w[1]];
            let mean = part.iter().map(|p| p.1).sum::<f64>() / part.len().max(1) as f64;
            level.push((w[0] as f64 - if w[0] == 0 { 0.0 } else { 0.5 }, mean));
            level.push(((w[1] - 1) as f64 + if w[1] == values.len() { 0.0 } else { 0.5 }, mean));
        }
        let lines = Lines {
            caption: metric,
            x_desc: "commit (oldest first)",
            y_desc: "value",
            series: vec![("at each commit".to_owned(), values), ("level between change points".to_owned(), level)],
            x_labels: &label,
            whole_x: true,
            shaded: Vec::new(),
            marks: changes.iter().map(|f| f.point.index as f64 - 0.5).collect(),
            legend_low: true,
        };
        body.push_str(&lines.svg()?);
    }
    body.push_str(
        "</div>\n<p class=\"note\">A red line marks each change point, between the last commit before it and the first after.</p>\n",
    );
    Ok(page("flowbench history", &body))
}

/// The first and last commits of `points`, short.
fn span(points: &[Point]) -> String {
    let short = |p: &Point| p.commit[..p.commit.len().min(9)].to_owned();
    format!("{} … {}", points.first().map(short).unwrap_or_default(), points.last().map(short).unwrap_or_default())
}

/// How the change points were found.
fn method(settings: &Settings) -> String {
    format!(
        "E-divisive means, permutation test ({} permutations, kept at p < {}, segments of {} or more)",
        settings.permutations, settings.alpha, settings.min_segment
    )
}

/// The commits `dir` already holds a result of.
pub fn commits_in(root: &Path, dir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .filter_map(|p| commit_of(root, &p).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    /// `n` points of level 100 in Gaussian-like noise of `noise_pct` (a sum
    /// of uniforms), stepping by `step_pct` at `at`.
    fn series(rng: &mut rand::rngs::SmallRng, n: usize, at: usize, step_pct: f64, noise_pct: f64) -> Vec<f64> {
        (0..n)
            .map(|i| {
                let level = if i >= at { 100.0 * (1.0 + step_pct / 100.0) } else { 100.0 };
                // Twelve uniforms less six: mean 0, SD 1.
                let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                level * (1.0 + noise_pct / 100.0 * z)
            })
            .collect()
    }

    /// Detection and false positives on 40-point series, a step at 20 in 2%
    /// noise: the rates are asserted loosely and printed (docs/reports.md).
    #[test]
    fn finds_known_steps_in_noise() {
        let settings = Settings::default();
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let trials = 100;
        let mut rates = Vec::new();
        for step in [0.0, 3.0, 5.0, 10.0] {
            let (mut detected, mut false_points) = (0, 0);
            for trial in 0..trials {
                let x = series(&mut rng, 40, 20, step, 2.0);
                let found = change_points(&x, &Settings { seed: trial, ..settings });
                let near = |p: &ChangePoint| p.index.abs_diff(20) <= 2;
                if step > 0.0 && found.iter().any(near) {
                    detected += 1;
                }
                false_points += found.iter().filter(|p| step == 0.0 || !near(p)).count();
            }
            println!("step {step}%: detected {detected}/{trials}, false change points {false_points} in {trials} series");
            rates.push((step, detected as f64 / trials as f64, false_points as f64 / trials as f64));
        }
        let rate = |s: f64| rates.iter().find(|r| r.0 == s).unwrap();
        assert!(rate(10.0).1 >= 0.95, "{rates:?}");
        assert!(rate(5.0).1 >= 0.8, "{rates:?}");
        assert!(rate(0.0).2 <= 0.1, "a flat series should rarely show a change: {rates:?}");
        for r in &rates {
            assert!(r.2 <= 0.2, "false change points per series: {rates:?}");
        }
    }

    #[test]
    fn two_steps_are_two_change_points_with_their_levels() {
        let mut x = vec![100.0, 101.0, 99.0, 100.5, 99.5, 100.0, 100.2, 99.8];
        x.extend([110.0, 111.0, 109.0, 110.5, 109.5, 110.0, 110.2, 109.8]);
        x.extend([90.0, 91.0, 89.0, 90.5, 89.5, 90.0, 90.2, 89.8]);
        let found = change_points(&x, &Settings::default());
        assert_eq!(found.iter().map(|p| p.index).collect::<Vec<_>>(), [8, 16], "{found:?}");
        assert!((found[0].change_pct() - 10.0).abs() < 0.5, "{found:?}");
        assert!(found.iter().all(|p| p.p_value < 0.01));
    }

    /// Results named by eight of this repository's own commits, a step of
    /// 10% in one metric from the fifth: found at the fifth's commit, read
    /// in history order whatever the files' order on disk.
    #[test]
    fn a_folder_of_results_named_by_commits_is_read_in_history_order() {
        let root = crate::workspace_root();
        let out = Command::new("git").args(["rev-list", "--first-parent", "--max-count=8", "HEAD"]).current_dir(&root).output().unwrap();
        let mut commits: Vec<String> = String::from_utf8_lossy(&out.stdout).lines().map(str::to_owned).collect();
        commits.reverse();
        assert_eq!(commits.len(), 8, "the test needs 8 commits of history");
        let dir = std::env::temp_dir().join(format!("flowbench-history-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        for (i, sha) in commits.iter().enumerate() {
            let qps = if i >= 4 { 1100.0 } else { 1000.0 } + (i % 2) as f64;
            let doc = serde_json::json!({"empty": {"requests_per_s": {"value": qps}, "errors": {"value": 0.0}}});
            // Named in two ways, neither in history order.
            let name = if i % 2 == 0 { format!("{sha}.json") } else { format!("report-{}.json", &sha[..12]) };
            std::fs::write(dir.join(name), serde_json::to_vec(&doc).unwrap()).unwrap();
        }
        let points = read_series(&root, &dir).unwrap();
        assert_eq!(points.iter().map(|p| p.commit.clone()).collect::<Vec<_>>(), commits);
        let settings = Settings { min_segment: 2, alpha: 0.05, ..Settings::default() };
        let found = analyse(&points, &settings, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        assert_eq!((found[0].metric.as_str(), found[0].commit.as_str()), ("empty/requests_per_s", commits[4].as_str()));
        assert!(markdown(&points, &found, &settings).contains("| empty/requests_per_s |"));
        assert!(analyse(&points, &settings, &["empty/errors".to_owned()]).is_empty(), "only the metric named");
        std::fs::write(dir.join(format!("again-{}.json", &commits[0][..10])), "{}").unwrap();
        let error = read_series(&root, &dir).unwrap_err().to_string();
        assert!(error.contains("are both of commit"), "{error}");
        std::fs::remove_file(dir.join(format!("again-{}.json", &commits[0][..10]))).unwrap();
        std::fs::write(dir.join("nothing.json"), "{}").unwrap();
        let error = read_series(&root, &dir).unwrap_err().to_string();
        assert!(error.contains("nothing.json") && error.contains("names no commit"), "{error}");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_page_plots_each_metric_with_its_change_points_marked() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(7);
        let values = series(&mut rng, 16, 8, 10.0, 1.0);
        let points: Vec<Point> = values
            .iter()
            .enumerate()
            .map(|(i, &v)| Point {
                commit: format!("{i:040x}"),
                position: i,
                figures: [("empty/requests_per_s".to_owned(), v), ("llm/events_per_s".to_owned(), 50.0)].into_iter().collect(),
            })
            .collect();
        let settings = Settings::default();
        let found = analyse(&points, &settings, &[]);
        assert_eq!(found.len(), 1, "{found:?}");
        let page = html(&points, &found, &drift(&points, 4, &[]), &settings, &[]).unwrap();
        assert!(page.starts_with("<!doctype html>") && !page.contains("<script"));
        assert_eq!(page.matches("<svg ").count(), 2, "a plot per metric");
        assert!(page.contains("Drift: the first 4 results against the last 4"), "the drift table is on the page");
        assert!(page.contains(&format!("<code>{}</code>", &points[8].commit[..9])), "the change point's commit is named");
        // The change point is marked between commits 7 and 8, in red.
        let plot = page.split("<svg ").nth(1).unwrap();
        assert!(plot.contains("level between change points") && plot.contains(&points[8].commit[..9]));
        let llm = ["llm/events_per_s".to_owned()];
        let only = html(&points, &analyse(&points, &settings, &llm), &[], &settings, &llm).unwrap();
        assert_eq!(only.matches("<svg ").count(), 1);
        assert!(only.contains("llm/events_per_s") && !only.contains(">empty/requests_per_s<"));
    }

    /// Ten steps of 1% in 1% noise: the change-point search may find none
    /// of them, but the drift between the first and last results shows the
    /// whole slope with an interval that excludes zero, and a flat series
    /// of the same noise shows none past 2%.
    #[test]
    fn ten_small_steps_are_drift_and_a_flat_series_is_not() {
        let mut rng = rand::rngs::SmallRng::seed_from_u64(3);
        let make = |rng: &mut rand::rngs::SmallRng, step_pct: f64| -> Vec<Point> {
            (0..40)
                .map(|i| {
                    // Four results at each of eleven levels, 1% apart; then the noise.
                    let level = 100.0 * (1.0 + step_pct / 100.0).powi((i / 4).min(10) as i32);
                    let z: f64 = (0..12).map(|_| rng.random::<f64>()).sum::<f64>() - 6.0;
                    let figures = [("empty/duration_p50_ms".to_owned(), level * (1.0 + 0.01 * z))].into_iter().collect();
                    Point { commit: format!("{i:040x}"), position: i, figures }
                })
                .collect()
        };
        let sloped = make(&mut rng, 1.0);
        let d = &drift(&sloped, 8, &[])[0];
        assert!(d.low_pct > 5.0 && d.high_pct < 15.0 && (d.change_pct - 9.5).abs() < 3.0, "{d:?}");
        assert_eq!(d.higher_is_better, Some(false), "a duration: lower is better");
        assert!(d.worse_than(2.0) && !d.worse_than(20.0), "{d:?}");
        let md = drift_markdown(std::slice::from_ref(d), Some(2.0));
        assert!(md.contains("**drift** (worse than 2%)"), "{md}");
        let flat = make(&mut rng, 0.0);
        let d = &drift(&flat, 8, &[])[0];
        // Its interval may miss zero by chance (one time in twenty); never by 2%.
        assert!(d.change_pct.abs() < 1.5 && d.high_pct - d.low_pct < 3.0 && !d.worse_than(2.0), "{d:?}");
        // Better, not worse: a throughput that rose drifts nowhere bad.
        let mut rising = sloped.clone();
        for p in &mut rising {
            let v = p.figures.remove("empty/duration_p50_ms").unwrap();
            p.figures.insert("empty/requests_per_s".to_owned(), v);
        }
        let d = &drift(&rising, 8, &[])[0];
        assert_eq!(d.higher_is_better, Some(true));
        assert!(!d.worse_than(2.0), "{d:?}");
        assert!(drift(&sloped[..15], 8, &[]).is_empty(), "2k results are needed");
    }

    /// A run that was not valid is no point of the series, and says why.
    #[test]
    fn runs_that_were_not_valid_are_left_out() {
        let mut report = flowbench::report::sample::sample_report();
        assert!(not_valid(&report).is_some_and(|why| why.contains("10.00% of its requests failed")), "{:?}", not_valid(&report));
        for s in &mut report.scenarios {
            s.counts.errors = 0;
            s.counts.errors_by_class.clear();
        }
        assert_eq!(not_valid(&report), None);
        report.scenarios[1].health.verdict = schema::health::HealthVerdict::Invalid;
        assert!(not_valid(&report).is_some_and(|why| why.contains("INVALID")));
        report.scenarios[1].health.verdict = schema::health::HealthVerdict::Valid;
        report.interrupted = true;
        assert!(not_valid(&report).is_some());
        report.interrupted = false;
        report.thresholds.push(schema::report::ThresholdResult {
            threshold: "qps>1".into(),
            scenario: "llm".into(),
            value: Some(0.5),
            passed: false,
        });
        assert!(not_valid(&report).is_some_and(|why| why.contains("qps>1")));
    }

    #[test]
    fn a_short_or_flat_series_has_none() {
        assert!(change_points(&[1.0, 2.0, 3.0], &Settings::default()).is_empty());
        assert!(change_points(&[5.0; 30], &Settings::default()).is_empty());
    }
}
