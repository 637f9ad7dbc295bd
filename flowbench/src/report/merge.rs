//! `flowbench merge`: the reports of a load's shards (`flowbench run --shard
//! I/N`, one per machine or pod) → the report one driver would have printed.
//!
//! - Histograms are added (HdrHistogram's add is exact: the merged one is
//!   the one a recorder that saw every sample would hold), and every
//!   latency summary is read from them again.
//! - Counts, bytes and events add up.
//! - Per-second series are aligned on wall-clock seconds (each scenario's
//!   measured phase records when it began) and added; the rates are
//!   computed from the sums as for one run.
//! - Connections: each second's mean and peak are added across shards.
//!   Avg Active is the sum of the shards' (exact); Max Concurrent is the
//!   largest second's sum of peaks: exact when the shards peak in the same
//!   second (a steady load), otherwise an upper bound.
//! - Health: each shard's is kept; the merged verdict is the worst one
//!   (INVALID if any shard was). The target's CPU is not attributed: the
//!   shards saw the same target from different machines.

use super::thresholds::{Threshold, ThresholdResult};
use super::{AppReport, Connections, Counts, Integrity, LoadParams, PerSecond, Report, ScenarioReport, Shard, ShardSummary, Timeline};
use crate::load::health::{HealthReport, HealthVerdict};
use crate::load::metrics::{Metric, decode_histogram, encode_histogram, new_histogram, summary_of};
use crate::load::recorder::MAX_EXAMPLES;
use crate::load::schedule::{LoadModel, Stage};
use crate::load::timeline::TimelineTally;
use anyhow::{Context, bail, ensure};
use hdrhistogram::Histogram;
use std::collections::BTreeMap;

/// Shards whose measured phases began further apart than this are merged,
/// with a note: their per-second series cover different seconds.
const ALIGNED_MS: u64 = 1_000;

/// Merges `reports`, named by `names` in errors.
pub fn merge(reports: &[(String, Report)]) -> anyhow::Result<Report> {
    ensure!(reports.len() >= 2, "merge takes two reports or more");
    let first = &reports[0].1;
    check_shards(reports)?;
    let mut scenarios = Vec::new();
    for scenario in &first.scenarios {
        let mut parts = Vec::new();
        for (name, report) in reports {
            let part = report.scenarios.iter().find(|s| s.name == scenario.name);
            parts.push(part.with_context(|| format!("{name} has no scenario {:?}", scenario.name))?);
        }
        scenarios.push(merge_scenario(&parts, reports).with_context(|| format!("scenario {:?}", scenario.name))?);
    }
    for (name, report) in reports {
        if let Some(extra) = report.scenarios.iter().find(|s| !first.scenarios.iter().any(|f| f.name == s.name)) {
            bail!("{name} has scenario {:?}, which {} has not", extra.name, reports[0].0);
        }
    }
    let mut merged = Report {
        schema: first.schema.clone(),
        schema_version: first.schema_version,
        flowbench_version: first.flowbench_version.clone(),
        started_at_unix: reports.iter().map(|(_, r)| r.started_at_unix).min().unwrap_or(first.started_at_unix),
        label: first.label.clone(),
        interrupted: reports.iter().any(|(_, r)| r.interrupted),
        target: first.target.clone(),
        machine: first.machine.clone(),
        scenarios,
        thresholds: Vec::new(),
        max_error_rate: None,
        request_slo: first.request_slo.clone(),
        shard: None,
        shards: reports
            .iter()
            .map(|(file, r)| ShardSummary {
                file: file.clone(),
                shard: r.shard,
                machine: r.machine.clone(),
                health: r.scenarios.iter().map(|s| (s.name.clone(), s.health.clone())).collect(),
                target_cpu_us_per_request: r.scenarios.iter().map(|s| (s.name.clone(), s.target_cpu_us_per_request)).collect(),
            })
            .collect(),
    };
    // The shards' thresholds, judged again on the merged figures.
    let mut texts: Vec<&str> = Vec::new();
    for (_, r) in reports {
        for t in &r.thresholds {
            if !texts.contains(&t.threshold.as_str()) {
                texts.push(&t.threshold);
            }
        }
    }
    for text in texts {
        let threshold: Threshold = text.parse().map_err(|e| anyhow::anyhow!("threshold {text:?}: {e}"))?;
        let judged: Vec<ThresholdResult> =
            merged.scenarios.iter().filter(|s| threshold.applies_to(&s.name)).map(|s| threshold.judge(s)).collect();
        if judged.is_empty() {
            let scenario = threshold.scenario.clone().unwrap_or_default();
            merged.thresholds.push(ThresholdResult { threshold: text.to_owned(), scenario, value: None, passed: false });
        }
        merged.thresholds.extend(judged);
    }
    Ok(merged)
}

/// Shards of one load: the same N, each index once, all of them.
fn check_shards(reports: &[(String, Report)]) -> anyhow::Result<()> {
    let shards: Vec<Option<Shard>> = reports.iter().map(|(_, r)| r.shard).collect();
    let mut seen = Vec::new();
    for ((name, _), shard) in reports.iter().zip(&shards) {
        // Two whole runs summed would be a load no one ran.
        let shard = shard.with_context(|| format!("{name} is not a shard's report (run each part with --shard I/N)"))?;
        if let Some(first) = seen.first().copied() {
            let Shard { count, .. } = first;
            ensure!(shard.count == count, "{name} is a shard of {}, the others of {count}", shard.count);
        }
        ensure!(!seen.iter().any(|s: &Shard| s.index == shard.index), "{name}: shard {}/{} is given twice", shard.index, shard.count);
        seen.push(shard);
    }
    let count = seen[0].count;
    let missing: Vec<String> = (1..=count).filter(|i| !seen.iter().any(|s| s.index == *i)).map(|i| format!("{i}/{count}")).collect();
    ensure!(missing.is_empty(), "shards {} are missing: a merge of part of a load is not the load's report", missing.join(", "));
    Ok(())
}

fn merge_scenario(parts: &[&ScenarioReport], reports: &[(String, Report)]) -> anyhow::Result<ScenarioReport> {
    let first = parts[0];
    for (part, (name, _)) in parts.iter().zip(reports) {
        ensure!(
            part.load.window_s == first.load.window_s,
            "{name}: a {} s window, the first a {} s one",
            part.load.window_s,
            first.load.window_s
        );
        ensure!(!part.histograms.is_empty(), "{name}: no histograms (an `ab` slice?); merge needs `flowbench run --json` reports");
    }
    // Where each part's measured phase began, in whole seconds after the first one's.
    let starts: Vec<Option<u64>> = parts.iter().map(|p| p.measure_start_unix_ms).collect();
    let earliest = starts.iter().flatten().min().copied();
    let offsets: Vec<usize> = starts
        .iter()
        .map(|s| match (s, earliest) {
            (Some(s), Some(e)) => ((s - e + 500) / 1000) as usize,
            _ => 0,
        })
        .collect();
    let spread = match (starts.iter().flatten().max(), earliest) {
        (Some(max), Some(min)) => max - min,
        _ => 0,
    };
    let mut histograms: BTreeMap<String, Histogram<u64>> = BTreeMap::new();
    for (part, (name, _)) in parts.iter().zip(reports) {
        for (key, text) in &part.histograms {
            let h = decode_histogram(text).with_context(|| format!("{name}: histogram {key}"))?;
            histograms.entry(key.clone()).or_insert_with(new_histogram).add(&h).with_context(|| format!("{name}: histogram {key}"))?;
        }
    }
    let by_metric: Vec<Histogram<u64>> =
        Metric::ALL.into_iter().map(|m| histograms.remove(m.key()).unwrap_or_else(new_histogram)).collect();
    let mut per_second = PerSecond::default();
    for (part, offset) in parts.iter().zip(&offsets) {
        let p = &part.per_second;
        add_shifted(&mut per_second.events, &p.events, *offset);
        add_shifted(&mut per_second.ok, &p.ok, *offset);
        add_shifted(&mut per_second.errors, &p.errors, *offset);
        add_shifted(&mut per_second.connections, &p.connections, *offset);
        add_shifted(&mut per_second.peak_connections, &p.peak_connections, *offset);
        // Every shard warms up for the same time from the same --start-at.
        add_shifted(&mut per_second.warmup.events, &p.warmup.events, 0);
        add_shifted(&mut per_second.warmup.ok, &p.warmup.ok, 0);
        add_shifted(&mut per_second.warmup.errors, &p.warmup.errors, 0);
    }
    let measured_s = parts.iter().zip(&offsets).map(|(p, o)| *o as f64 + p.load.measured_s).fold(0.0, f64::max);
    let mut counts = Counts { sent: 0, warmup: 0, ok: 0, errors: 0, errors_by_class: BTreeMap::new(), backoff_s: 0.0, good: None };
    let mut n_events = 0u64;
    for p in parts {
        counts.sent += p.counts.sent;
        counts.warmup += p.counts.warmup;
        counts.ok += p.counts.ok;
        counts.errors += p.counts.errors;
        counts.backoff_s += p.counts.backoff_s;
        if let Some(good) = p.counts.good {
            *counts.good.get_or_insert(0) += good;
        }
        for (class, n) in &p.counts.errors_by_class {
            *counts.errors_by_class.entry(class.clone()).or_default() += n;
        }
        // events_per_request = n / m in f64: n comes back exactly.
        n_events += (p.events_per_request * (p.counts.ok + p.counts.errors) as f64).round() as u64;
    }
    let derived = super::derive(|m| &by_metric[m as usize], &per_second, &first.load, measured_s, n_events, counts.ok + counts.errors);
    let peak = if per_second.peak_connections.is_empty() {
        parts.iter().map(|p| p.connections.max_concurrent).sum()
    } else {
        per_second.peak_connections.iter().copied().max().unwrap_or(0)
    };
    let mut health = merged_health(parts, reports);
    // Apart by more than a window, the shards were not one load: their
    // seconds would stretch the series and no window would hold them all.
    ensure!(
        spread <= first.load.window_s.max(1) * 1000,
        "the shards' measured phases began {:.1} s apart, more than a {} s window: not one load (give every shard the same --start-at)",
        spread as f64 / 1000.0,
        first.load.window_s.max(1)
    );
    if spread > ALIGNED_MS {
        health.reasons.push(format!(
            "the shards' measured phases began up to {:.1} s apart (give every shard the same --start-at): per-second figures are aligned to the nearest second",
            spread as f64 / 1000.0
        ));
    }
    Ok(ScenarioReport {
        name: first.name.clone(),
        mode: first.mode,
        load: LoadParams { model: whole(combine(parts.iter().map(|p| &p.load.model))?, parts.len()), measured_s, ..first.load.clone() },
        interrupted: parts.iter().any(|p| p.interrupted),
        counts,
        event_throughput: derived.event_throughput,
        qps: derived.qps,
        avg_duration_ms: derived.avg_duration_ms,
        connections: Connections { max_concurrent: peak, avg_active: parts.iter().map(|p| p.connections.avg_active).sum() },
        latency: derived.latency,
        events_per_request: derived.events_per_request,
        target_cpu_us_per_request: None,
        target_cpu_us_per_event: None,
        bytes_received: parts.iter().map(|p| p.bytes_received).sum(),
        per_second,
        health,
        histograms: derived.histograms,
        apps: merge_apps(parts)?,
        integrity: merge_integrity(parts),
        timeline: merge_timelines(parts, by_metric[Metric::Duration as usize].value_at_quantile(0.5) as f64 / 1000.0)?,
        slowest: {
            // The shards' slowest together, slowest first, as many as one driver keeps.
            let mut all: Vec<_> = parts.iter().flat_map(|p| p.slowest.iter().cloned()).collect();
            all.sort_by(|a, b| b.duration_ms.total_cmp(&a.duration_ms));
            all.truncate(crate::load::recorder::MAX_SLOWEST);
            all
        },
        measure_start_unix_ms: earliest,
        // Each shard read the same endpoints and queried the same
        // deployment over its own interval: their figures do not add up,
        // and stay in each shard's JSON.
        scraped: Vec::new(),
        scrape_problems: Vec::new(),
        prometheus: None,
    })
}

/// The shards' grammar checks added up; `None` when no shard checked a stream.
fn merge_integrity(parts: &[&ScenarioReport]) -> Option<Integrity> {
    let mut merged: Option<Integrity> = None;
    for i in parts.iter().filter_map(|p| p.integrity.as_ref()) {
        let m = merged.get_or_insert_with(Integrity::default);
        m.checked += i.checked;
        m.violating += i.violating;
        for (class, n) in &i.by_class {
            *m.by_class.entry(class.clone()).or_default() += n;
        }
        let room = MAX_EXAMPLES.saturating_sub(m.examples.len());
        m.examples.extend(i.examples.iter().take(room).cloned());
    }
    merged
}

/// The shards' timelines: each step's histograms added; the slowest of the
/// slowest streams, and of their median streams the one nearest the
/// merged median.
fn merge_timelines(parts: &[&ScenarioReport], median_ms: f64) -> anyhow::Result<Option<Timeline>> {
    let mut merged: Option<TimelineTally> = None;
    for timeline in parts.iter().filter_map(|p| p.timeline.as_ref()) {
        let tally = TimelineTally::of_report(timeline)?;
        match merged.as_mut() {
            Some(m) => m.merge(&tally),
            None => merged = Some(tally),
        }
    }
    Ok(merged.and_then(|m| m.finish(median_ms)))
}

fn add_shifted<T: Copy + Default + std::ops::AddAssign>(into: &mut Vec<T>, from: &[T], offset: usize) {
    if into.len() < offset + from.len() {
        into.resize(offset + from.len(), T::default());
    }
    for (i, v) in from.iter().enumerate() {
        into[offset + i] += *v;
    }
}

/// The whole load from its shares: users, rates and connections add up.
fn combine<'a>(mut models: impl Iterator<Item = &'a LoadModel>) -> anyhow::Result<LoadModel> {
    let mut total = models.next().context("no scenario")?.clone();
    for m in models {
        total = match (total, m) {
            (LoadModel::Closed { users, spawn_rate }, LoadModel::Closed { users: u, spawn_rate: r }) => {
                LoadModel::Closed { users: users + u, spawn_rate: spawn_rate + r }
            }
            (LoadModel::Open { rate, poisson, connections, seed }, LoadModel::Open { rate: r, connections: c, .. }) => {
                LoadModel::Open { rate: rate + r, poisson, connections: connections + c, seed }
            }
            (LoadModel::RampingUsers { stages, think_time }, LoadModel::RampingUsers { stages: s, .. }) => {
                LoadModel::RampingUsers { stages: add_stages(&stages, s)?, think_time }
            }
            (LoadModel::RampingRate { stages, poisson, connections, seed }, LoadModel::RampingRate { stages: s, connections: c, .. }) => {
                LoadModel::RampingRate { stages: add_stages(&stages, s)?, poisson, connections: connections + c, seed }
            }
            (a, b) => bail!("the shards ran different load models ({a:?} and {b:?})"),
        };
    }
    Ok(total)
}

/// The sum of `n` shards' stages of users is the whole's less the shards'
/// offsets (`LoadModel::share`: shard c ran (level − c) / n, after a step
/// to −c / n): add them back, and drop the step.
fn whole(model: LoadModel, n: usize) -> LoadModel {
    match model {
        LoadModel::RampingUsers { mut stages, think_time }
            if n > 1 && stages.first().is_some_and(|s| s.duration_s == 0.0 && s.target < 0.0) =>
        {
            stages.remove(0);
            let offsets = (n as f64 - 1.0) / 2.0;
            for stage in &mut stages {
                stage.target += offsets;
            }
            LoadModel::RampingUsers { stages, think_time }
        }
        other => other,
    }
}

fn add_stages(a: &[Stage], b: &[Stage]) -> anyhow::Result<Vec<Stage>> {
    ensure!(a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.duration_s == y.duration_s), "the shards ran different stages");
    Ok(a.iter().zip(b).map(|(x, y)| Stage { duration_s: x.duration_s, target: x.target + y.target }).collect())
}

/// The worst shard's verdict, and each shard's reasons under its name.
fn merged_health(parts: &[&ScenarioReport], reports: &[(String, Report)]) -> HealthReport {
    let worst = |v: HealthVerdict| match v {
        HealthVerdict::Valid => 0,
        HealthVerdict::Disturbed => 1,
        HealthVerdict::Invalid => 2,
    };
    let worst_part = parts.iter().max_by_key(|p| worst(p.health.verdict)).copied().unwrap_or(parts[0]);
    let mut reasons = Vec::new();
    for (p, (name, r)) in parts.iter().zip(reports) {
        let who = r.shard.map_or(name.clone(), |s| format!("shard {}/{}", s.index, s.count));
        reasons.extend(p.health.reasons.iter().map(|reason| format!("{who}: {reason}")));
    }
    let lag = parts.iter().map(|p| p.health.scheduler_lag_ms).max_by(|a, b| a.p99.total_cmp(&b.p99)).unwrap_or_default();
    HealthReport {
        verdict: worst_part.health.verdict,
        reasons,
        scheduler_lag_ms: lag,
        driver_cpu_cores: parts.iter().map(|p| p.health.driver_cpu_cores).sum(),
        driver_threads: parts.iter().map(|p| p.health.driver_threads).sum(),
        target_cpu_cores: None,
        target_cpu_of: Some("not attributed: merged shards (each shard's figure is in `shards`)".to_owned()),
        mock_cpu_cores: None,
        other_cpu_cores: parts.iter().map(|p| p.health.other_cpu_cores).fold(0.0, f64::max),
        steal_cores: parts.iter().map(|p| p.health.steal_cores).fold(0.0, f64::max),
        machine_cores: worst_part.health.machine_cores,
        span_s: parts.iter().map(|p| p.health.span_s).fold(0.0, f64::max),
        // The shards' machines differ: each keeps its own seconds in `shards`.
        per_second: Vec::new(),
        lag_max_ms_per_second: Vec::new(),
    }
}

/// Apps by name: counts added, distributions from their added histograms.
fn merge_apps(parts: &[&ScenarioReport]) -> anyhow::Result<Vec<AppReport>> {
    let mut merged: Vec<(AppReport, Histogram<u64>, Histogram<u64>)> = Vec::new();
    for part in parts {
        for app in &part.apps {
            let decode = |text: &Option<String>| -> anyhow::Result<Histogram<u64>> {
                text.as_deref().map_or_else(|| Ok(new_histogram()), decode_histogram)
            };
            let (d, t) = (decode(&app.duration_histogram)?, decode(&app.ttfe_histogram)?);
            match merged.iter_mut().find(|(a, _, _)| a.name == app.name) {
                Some((a, dh, th)) => {
                    a.ok += app.ok;
                    a.errors += app.errors;
                    for (class, n) in &app.integrity {
                        *a.integrity.entry(class.clone()).or_default() += n;
                    }
                    dh.add(&d)?;
                    th.add(&t)?;
                }
                None => merged.push((app.clone(), d, t)),
            }
        }
    }
    Ok(merged
        .into_iter()
        .map(|(mut a, d, t)| {
            a.duration_ms = summary_of(&d);
            a.ttfe_ms = summary_of(&t);
            a.duration_histogram = Some(encode_histogram(&d));
            a.ttfe_histogram = Some(encode_histogram(&t));
            a
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::integrity::{NodeLabel, Step};
    use crate::report::sample::{sample_report, sample_shards};

    /// Three shards' reports, each from a third of the samples, merged:
    /// the same histograms, bit for bit, and the same four tables as the
    /// report of one recorder that saw every sample.
    #[test]
    fn three_shards_merge_into_the_one_drivers_report() {
        let whole = sample_report();
        let shards = sample_shards(3);
        let named: Vec<(String, Report)> = shards.into_iter().enumerate().map(|(i, r)| (format!("shard{i}.json"), r)).collect();
        let merged = merge(&named).unwrap();
        for (m, w) in merged.scenarios.iter().zip(&whole.scenarios) {
            for (key, h) in &w.histograms {
                let (a, b) = (decode_histogram(h).unwrap(), decode_histogram(&m.histograms[key]).unwrap());
                assert_eq!(a, b, "{} {key}", w.name);
                assert_eq!(a.len(), b.len());
            }
            assert_eq!(m.latency, w.latency, "{}", w.name);
            assert_eq!(m.per_second.events, w.per_second.events);
            assert_eq!((m.counts.sent, m.counts.ok, m.counts.errors), (w.counts.sent, w.counts.ok, w.counts.errors));
            assert_eq!(m.events_per_request, w.events_per_request);
            // The grammar's counts add up; the timeline's histograms too.
            assert_eq!(m.integrity, w.integrity, "{}", w.name);
            let steps = |s: &ScenarioReport| -> Vec<(Step, Option<NodeLabel>, crate::load::metrics::Summary)> {
                s.timeline.iter().flat_map(|t| &t.steps).map(|r| (r.step, r.node.clone(), r.ms)).collect()
            };
            assert_eq!(steps(m), steps(w), "{}", w.name);
            assert_eq!(
                m.timeline.as_ref().and_then(|t| t.slowest.as_ref()).map(|t| t.duration_ms),
                w.timeline.as_ref().and_then(|t| t.slowest.as_ref()).map(|t| t.duration_ms)
            );
        }
        assert_eq!(merged.seed_tables(), whole.seed_tables());
        assert_eq!(merged.shards.len(), 3);
    }

    #[test]
    fn shards_of_a_ramp_merge_into_the_whole_ramp() {
        let ramp = LoadModel::RampingUsers {
            stages: vec![Stage { duration_s: 10.0, target: 10.0 }, Stage { duration_s: 5.0, target: 4.0 }],
            think_time: Default::default(),
        };
        let parts: Vec<LoadModel> = (1..=3).map(|i| ramp.share(i, 3).unwrap()).collect();
        let merged = whole(combine(parts.iter()).unwrap(), 3);
        let LoadModel::RampingUsers { stages, .. } = &merged else { panic!("{merged:?}") };
        let targets: Vec<f64> = stages.iter().map(|s| (s.target * 1e9).round() / 1e9).collect();
        assert_eq!(targets, [10.0, 4.0]);
    }

    #[test]
    fn a_merge_of_part_of_a_load_or_of_mismatched_shards_is_refused() {
        let shards = sample_shards(3);
        let named = |v: Vec<Report>| v.into_iter().enumerate().map(|(i, r)| (format!("s{i}.json"), r)).collect::<Vec<_>>();
        let two = named(shards[..2].to_vec());
        assert!(merge(&two).unwrap_err().to_string().contains("shards 3/3 are missing"));
        let mut twice = shards.clone();
        twice[1].shard = twice[0].shard;
        assert!(merge(&named(twice)).unwrap_err().to_string().contains("given twice"));
        let mut invalid = shards.clone();
        invalid[2].scenarios[0].health.verdict = HealthVerdict::Invalid;
        invalid[2].scenarios[0].health.reasons.push("the driver was saturated".into());
        let merged = merge(&named(invalid)).unwrap();
        assert_eq!(merged.scenarios[0].health.verdict, HealthVerdict::Invalid, "one invalid shard makes the merge invalid");
        assert!(merged.scenarios[0].health.reasons.iter().any(|r| r == "shard 3/3: the driver was saturated"));
        assert_eq!(merged.scenarios[0].target_cpu_us_per_request, None, "the target's CPU is not attributed across shards");
        // Whole runs are not shards: summing them is a load no one ran.
        let mut unsharded = shards.clone();
        for r in &mut unsharded {
            r.shard = None;
        }
        assert!(merge(&named(unsharded)).unwrap_err().to_string().contains("not a shard's report"));
        // Shards begun further apart than a window were not one load.
        let mut apart = shards.clone();
        for s in &mut apart[1].scenarios {
            s.measure_start_unix_ms = s.measure_start_unix_ms.map(|t| t + 1000 * s.load.window_s + 1);
        }
        assert!(format!("{:#}", merge(&named(apart)).unwrap_err()).contains("s apart, more than a"));
    }
}
