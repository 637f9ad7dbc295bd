//! The report as people read it: first the seed's four tables in the seed's
//! own shape (Event Throughput, TTFE, Connections, Empty Workflow QPS), then
//! what the seed lacks (P99/P99.9, TTFB, first-token time, gaps, errors by
//! class, driver health, load parameters, machine); as text or Markdown.

use crate::figures::SEED_TABLES;
use crate::health::HealthVerdict;
use crate::load::LoadModel;
use crate::metrics::Metric;
use crate::report::{LoadParams, Report, ScenarioReport};
use std::fmt::Write;

pub fn num(v: f64) -> String {
    let rounded = (v * 100.0).round() / 100.0;
    if rounded.fract() == 0.0 { format!("{rounded:.1}") } else { format!("{rounded}") }
}

/// A number in prose: at most two decimals, none for a whole one.
fn compact(v: f64) -> String {
    format!("{}", (v * 100.0).round() / 100.0)
}

impl Report {
    /// The seed's four tables, in the seed's shape and order
    /// (`figures::SEED_TABLES`): a table shows the scenarios it is for
    /// (streaming or not), one row each, named when there are several; a
    /// table with none is left out.
    pub fn seed_tables(&self) -> String {
        let mut out = String::from("Performance Metrics\n");
        for seed in &SEED_TABLES {
            let rows: Vec<&ScenarioReport> = self.scenarios.iter().filter(|s| s.streams() == seed.streams).collect();
            if rows.is_empty() {
                continue;
            }
            let named = rows.len() > 1;
            let mut header: Vec<&str> = seed.columns.iter().map(|(h, _)| *h).collect();
            if named {
                header.insert(0, "scenario");
            }
            let _ = writeln!(out, "{}", seed.title);
            let _ = writeln!(out, "| {} |", header.join(" | "));
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for s in rows {
                let mut cells: Vec<String> = seed.columns.iter().map(|(_, f)| f.read(s).map_or_else(|| "—".to_owned(), num)).collect();
                if named {
                    cells.insert(0, s.name.clone());
                }
                let _ = writeln!(out, "| {} |", cells.join(" | "));
            }
        }
        out
    }

    /// The whole text report.
    pub fn to_text(&self) -> String {
        let mut out = self.seed_tables();
        out.push('\n');
        if self.interrupted {
            out.push_str("INTERRUPTED: the run was stopped early; figures cover the part that ran.\n\n");
        }
        for s in &self.scenarios {
            let _ = writeln!(out, "== {} ({}) ==", s.name, s.mode_label());
            let _ = writeln!(out, "Load: {}", describe_load(&s.load));
            let c = &s.counts;
            let _ = writeln!(out, "Requests: {} sent = {} warm-up + {} ok + {} errors", c.sent, c.warmup, c.ok, c.errors);
            if !c.errors_by_class.is_empty() {
                let classes: Vec<String> = c.errors_by_class.iter().map(|(k, v)| format!("{k} {v}")).collect();
                // As `error_rate`: streams left on purpose are not failures.
                let rate = c.errors.saturating_sub(c.aborted()) as f64 / (c.ok + c.errors).max(1) as f64 * 100.0;
                let _ = writeln!(out, "Errors by class: {} ({} % of measured requests failed)", classes.join(", "), num(rate));
            }
            match &s.integrity {
                Some(i) if i.violating == 0 => {
                    let _ = writeln!(out, "Integrity: {} streams checked against Dify's event grammar, none broke it", i.checked);
                }
                Some(i) => {
                    let classes: Vec<String> = i.by_class.iter().map(|(k, v)| format!("{k} {v}")).collect();
                    let kept = if i.examples.is_empty() {
                        String::new()
                    } else {
                        format!("; the first {} are in the JSON, whole (integrity.examples)", i.examples.len())
                    };
                    let _ = writeln!(
                        out,
                        "Integrity: {} of {} streams checked broke Dify's event grammar (errors of class integrity): {}{kept}",
                        i.violating,
                        i.checked,
                        classes.join(", ")
                    );
                }
                None if s.streams() => {
                    let _ = writeln!(out, "Integrity: {}", crate::integrity::NOT_CHECKED);
                }
                None => {}
            }
            if let (Some(good), Some(rate)) = (c.good, s.goodput_rps()) {
                let measured = c.ok + c.errors;
                let _ = writeln!(
                    out,
                    "Goodput: {} req/s met the request SLO{} ({good} of {measured} measured requests)",
                    num(rate),
                    self.request_slo.as_deref().map(|t| format!(" {t}")).unwrap_or_default(),
                );
            }
            if !s.slowest.is_empty() {
                // Three here; the JSON keeps ten.
                let slow: Vec<String> = s
                    .slowest
                    .iter()
                    .take(3)
                    .map(|r| {
                        format!(
                            "{} ms {}{}",
                            num(r.duration_ms),
                            r.trace_id,
                            if r.outcome == "ok" { String::new() } else { format!(" ({})", r.outcome) }
                        )
                    })
                    .collect();
                let _ = writeln!(out, "Slowest requests by traceparent trace id: {}", slow.join("; "));
            }
            if c.backoff_s > 0.0 {
                let _ = writeln!(out, "Back-off: users waited {} s in all before retrying refused connections", num(c.backoff_s));
            }
            let _ = writeln!(
                out,
                "Throughput: {} req/s ok (max {}, min {} per {} s window); {} events/s; {:.1} events/request",
                num(s.qps.avg),
                num(s.qps.max),
                num(s.qps.min),
                s.load.window_s,
                num(s.event_throughput.avg),
                s.events_per_request
            );
            let failed = c.errors.saturating_sub(c.aborted());
            if c.ok + c.aborted() == 0 {
                let _ = writeln!(out, "Latency: none; no request succeeded in the measured phase (failures are timed on their own row)");
            } else if failed > 0 {
                let _ = writeln!(
                    out,
                    "Latency: of the {} answered requests; the {failed} failures are timed on their own row",
                    c.ok + c.aborted()
                );
            }
            let _ = writeln!(out, "| ms | Avg | Min | P50 | P90 | P95 | P99 | P99.9 | Max |");
            let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|");
            // The stamped chunks' lag is tens of µs: its own line, below.
            for metric in Metric::ALL.into_iter().filter(|m| *m != Metric::EmitToReceipt) {
                let (label, m) = (metric.label(), s.latency(metric));
                if m.n == 0 {
                    continue;
                }
                let _ = writeln!(
                    out,
                    "| {label} | {} | {} | {} | {} | {} | {} | {} | {} |",
                    num(m.avg),
                    num(m.min),
                    num(m.p50),
                    num(m.p90),
                    num(m.p95),
                    num(m.p99),
                    num(m.p999),
                    num(m.max)
                );
            }
            if !s.apps.is_empty() {
                let _ = writeln!(out, "| app | mode | weight | ok | errors | duration p50 | p95 | p99 | TTFE p50 | p95 |");
                let _ = writeln!(out, "|---|---|---|---|---|---|---|---|---|---|");
                for a in &s.apps {
                    let (d, t) = (&a.duration_ms, &a.ttfe_ms);
                    let _ = writeln!(
                        out,
                        "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                        a.name,
                        a.mode.as_str(),
                        a.weight,
                        a.ok,
                        a.errors,
                        num(d.p50),
                        num(d.p95),
                        num(d.p99),
                        num(t.p50),
                        num(t.p95)
                    );
                }
            }
            if let Some(lag) = s.latency.0.get(&Metric::EmitToReceipt) {
                let us = |ms: f64| format!("{:.0}", ms * 1000.0);
                let _ = writeln!(
                    out,
                    "Emit → receipt (µs, {} stamped chunks): avg {}, p50 {}, p90 {}, p99 {}, p99.9 {}, max {}",
                    lag.n,
                    us(lag.avg),
                    us(lag.p50),
                    us(lag.p90),
                    us(lag.p99),
                    us(lag.p999),
                    us(lag.max)
                );
            }
            if let Some(t) = &s.timeline {
                let _ = writeln!(
                    out,
                    "Timeline of the successful streams (ms from the intended send; node_time is a node's own, the per-chunk rows per chunk):"
                );
                let _ = writeln!(out, "| step | node | n | P50 | P90 | P99 | Max |");
                let _ = writeln!(out, "|---|---|---|---|---|---|---|");
                for step in &t.steps {
                    let node = step.node.as_ref().map_or(String::new(), |n| format!("{} ({})", n.title, n.node_type));
                    let m = &step.ms;
                    let _ = writeln!(
                        out,
                        "| {} | {node} | {} | {} | {} | {} | {} |",
                        step.step.as_str(),
                        m.n,
                        num(m.p50),
                        num(m.p90),
                        num(m.p99),
                        num(m.max)
                    );
                }
            }
            if let Some(per_request) = s.target_cpu_us_per_request {
                let per_event = s.target_cpu_us_per_event.map_or(String::new(), |e| format!(", {e:.2} µs per event"));
                let of = s.health.target_cpu_of.as_deref().map_or(String::new(), |of| format!(" ({of})"));
                let _ = writeln!(out, "Target CPU: {per_request:.2} µs per request{per_event}{of}");
            } else {
                let why = if self.shards.is_empty() {
                    "not measured (remote)"
                } else {
                    "not attributed (merged shards; each shard's is in the JSON)"
                };
                let _ = writeln!(out, "Target CPU: {why}");
            }
            if let Some(prom) = &s.prometheus {
                prometheus_lines(&mut out, s, prom);
            }
            if !s.scraped.is_empty() || !s.scrape_problems.is_empty() {
                let endpoints: std::collections::BTreeSet<&str> = s.scraped.iter().map(|x| x.url.as_str()).collect();
                let _ = writeln!(
                    out,
                    "Scraped: {} series from {} endpoint(s), each second (in the JSON and the HTML report)",
                    s.scraped.len(),
                    endpoints.len()
                );
                for p in &s.scrape_problems {
                    let _ = writeln!(out, "  {}: {} of {} reads failed; first: {}", p.url, p.failed, p.of, p.first_error);
                }
            }
            let h = &s.health;
            let _ = writeln!(
                out,
                "Driver health: {:?}; scheduler lag p50 {} / p99 {} ms; CPU (cores): driver {:.2} of {}, target {}{}, others {:.2}, stolen by the host {:.2}, on {} cores",
                h.verdict,
                num(h.scheduler_lag_ms.p50),
                num(h.scheduler_lag_ms.p99),
                h.driver_cpu_cores,
                h.driver_threads,
                h.target_cpu_cores.map_or("not measured (remote)".to_owned(), |c| format!("{c:.2}")),
                h.mock_cpu_cores.map_or(String::new(), |c| format!(", mock LLM {c:.2} (not the target's)")),
                h.other_cpu_cores,
                h.steal_cores,
                h.machine_cores
            );
            for reason in &h.reasons {
                let _ = writeln!(out, "  {}: {reason}", if h.verdict == HealthVerdict::Invalid { "INVALID" } else { "note" });
            }
            out.push('\n');
        }
        if !self.thresholds.is_empty() {
            out.push_str("Thresholds:\n");
            for t in &self.thresholds {
                let value = t.value.map_or("not measured".to_owned(), |v| format!("measured {v:.4}"));
                let _ = writeln!(out, "  {} {}: {} ({value})", if t.passed { "PASS" } else { "FAIL" }, t.scenario, t.threshold);
            }
            out.push('\n');
        }
        if !self.shards.is_empty() {
            let _ = writeln!(out, "Merged from {} reports:", self.shards.len());
            for shard in &self.shards {
                let part = shard.shard.map_or(String::new(), |s| format!(" (shard {}/{})", s.index, s.count));
                let verdicts: Vec<String> = shard.health.iter().map(|(name, h)| format!("{name} {:?}", h.verdict)).collect();
                let _ = writeln!(
                    out,
                    "  {}{part}: {} on {} cores; {}",
                    shard.file,
                    shard.machine.cpu_model,
                    shard.machine.cores,
                    verdicts.join(", ")
                );
            }
        }
        let m = &self.machine;
        let _ = writeln!(out, "Target: {}{}", self.target.url, if self.target.embedded { " (embedded mocked stack)" } else { "" });
        let _ = writeln!(out, "Machine: {} × {}, {} GiB, Linux {}", m.cores, m.cpu_model, m.memory_gib, m.kernel);
        out
    }

    /// The tables as GitHub Markdown, for a pull-request comment.
    pub fn to_markdown(&self) -> String {
        let mut out = String::from("## flowbench\n\n");
        for line in self.seed_tables().lines() {
            if line.starts_with('|') {
                out.push_str(line);
                out.push('\n');
            } else {
                let _ = write!(out, "\n**{line}**\n\n");
            }
        }
        out.push_str("\n<details><summary>Details</summary>\n\n```\n");
        out.push_str(&self.to_text());
        out.push_str("```\n</details>\n");
        out
    }
}

pub fn describe_load(load: &LoadParams) -> String {
    let arrivals = |poisson: bool| if poisson { "Poisson" } else { "constant" };
    let model = match &load.model {
        LoadModel::Closed { users, spawn_rate } => format!("closed, {users} users spawned at {spawn_rate}/s, no think time"),
        LoadModel::Open { rate, poisson, connections, seed } => {
            format!("open, {rate} req/s {} over {connections} connections (seed {seed})", arrivals(*poisson))
        }
        LoadModel::RampingUsers { stages, think_time } => {
            let think = if think_time.is_zero() {
                "no think time".to_owned()
            } else if think_time.min_s == think_time.max_s {
                format!("think time {} s", compact(think_time.min_s))
            } else {
                format!("think time {}–{} s", compact(think_time.min_s), compact(think_time.max_s))
            };
            format!("closed, users by stages {}; {think}", describe_stages(stages))
        }
        LoadModel::RampingRate { stages, poisson, connections, seed } => {
            format!("open, req/s by stages {} {} over {connections} connections (seed {seed})", describe_stages(stages), arrivals(*poisson))
        }
    };
    format!("{model}; warm-up {} s, measured {:.1} of {} s", compact(load.warmup_s), load.measured_s, compact(load.duration_s))
}

/// `0 → 10 over 5 s, 10 for 60 s`: each stage from the level before it.
fn describe_stages(stages: &[crate::load::Stage]) -> String {
    let mut level = 0.0;
    let parts: Vec<String> = stages
        .iter()
        .map(|s| {
            let part = if s.duration_s == 0.0 {
                format!("→ {} at once", compact(s.target))
            } else if s.target == level {
                format!("{} for {} s", compact(s.target), compact(s.duration_s))
            } else {
                format!("{} → {} over {} s", compact(level), compact(s.target), compact(s.duration_s))
            };
            level = s.target;
            part
        })
        .collect();
    parts.join(", ")
}

/// `--prometheus`'s figures for a scenario: each query's value, or why it
/// is not measured, with the query as sent and the interval it covered.
fn prometheus_lines(out: &mut String, s: &ScenarioReport, prom: &crate::observe::PromFigures) {
    let _ = writeln!(
        out,
        "Prometheus ({}): the measured interval, Unix {:.3} to {:.3} s ({:.2} s)",
        prom.url,
        prom.start_unix_s,
        prom.end_unix_s,
        prom.end_unix_s - prom.start_unix_s
    );
    let requests = s.counts.ok + s.counts.errors;
    let events: u64 = s.per_second.events.iter().sum();
    let measured_s = prom.end_unix_s - prom.start_unix_s;
    if let Some(q) = &prom.cpu {
        let figure = match q.value {
            Some(cores) => {
                let cpu_us = cores * measured_s * 1e6;
                let per_request = if requests > 0 { format!(", {:.2} µs per request", cpu_us / requests as f64) } else { String::new() };
                let per_event = if events > 0 { format!(", {:.2} µs per event", cpu_us / events as f64) } else { String::new() };
                format!("{cores:.3} cores{per_request}{per_event}")
            }
            None => format!("not measured: {}", q.error.as_deref().unwrap_or("no value")),
        };
        let _ = writeln!(out, "  target CPU: {figure}\n    query: {} ({})", q.query, q.method);
    }
    if let Some(q) = &prom.memory {
        let mib = |b: f64| b / (1024.0 * 1024.0);
        let figure = match q.value {
            Some(bytes) => match q.max {
                Some(max) => format!("{:.1} MiB mean, {:.1} MiB peak", mib(bytes), mib(max)),
                None => format!("{:.1} MiB", mib(bytes)),
            },
            None => format!("not measured: {}", q.error.as_deref().unwrap_or("no value")),
        };
        let _ = writeln!(out, "  target memory: {figure}\n    query: {} ({})", q.query, q.method);
    }
}
