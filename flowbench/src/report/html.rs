//! One self-contained HTML page for one or more reports (`--html FILE` on
//! `run` and `merge`; `flowbench report A.json [B.json …] --html`): no
//! script, no network, every plot an inline SVG drawn with plotters. It
//! leads with the answer: a card per scenario and run with its verdict and
//! why, the headline figures it measured and what it did not measure. Then
//! per scenario: the seed's tables it measured (a row per run), what the
//! grammar check found, where the streams' time went (a table of steps, a
//! waterfall of the median and the slowest stream), its plots in groups
//! (latency distributions, over time, health), and with two runs or more
//! each later one's changes against the first. A run is named by
//! `run_label` (its label, commit and start), never by its file's path.

use super::ab::{AbReport, Slice};
use super::compare::compare;
use super::figures::{AB, Figure, SEED_TABLES, Scalar, Stat, Unit};
use super::integrity::{NodeLabel, OffendingStream, StreamTrace, Timeline, Violation};
use super::soak::{SoakReport, SoakSample};
use super::{Report, ScenarioReport};
use crate::load::health::{HealthSecond, HealthVerdict};
use crate::load::metrics::{Metric, decode_histogram};
use pages::html::{Lane, Lines, esc, interval_plot, page, table, waterfall};
use std::fmt::Write;
use std::path::Path;

/// Percentile axis: x = −log10(1 − q), so 1 is p90, 2 p99, 3 p99.9.
const NINES: f64 = 4.0;
const STEP: f64 = 0.02;

/// An offending stream's event data is cut to this many characters in its
/// cell: the JSON report keeps it whole.
const DATA_CHARS: usize = 300;

/// `−log10(1 − q)` back to a percentile's label.
fn percentile_label(x: &f64) -> String {
    let p = 100.0 * (1.0 - 10f64.powf(-x));
    let digits = (x.round() as usize).saturating_sub(2);
    format!("{p:.digits$}%")
}

/// A metric's percentile curve from a report's HDR histogram, in ms: up to
/// the percentile its sample count resolves (1 − 1/n).
fn percentile_curve(s: &ScenarioReport, metric: Metric) -> Option<Vec<(f64, f64)>> {
    let h = decode_histogram(s.histograms.get(metric.key())?).ok()?;
    if h.is_empty() {
        return None;
    }
    let resolved = (h.len() as f64).log10().min(NINES);
    let steps = (resolved / STEP).floor() as usize;
    Some(
        (0..=steps)
            .map(|k| {
                let x = k as f64 * STEP;
                (x, h.value_at_quantile(1.0 - 10f64.powf(-x)) as f64 / 1000.0)
            })
            .collect(),
    )
}

/// A scenario's per-second series, as numbers.
type Series = fn(&ScenarioReport) -> Vec<f64>;
/// A figure of a `T`, where it has one.
type Pick<T> = fn(&T) -> Option<f64>;

/// What a run is called in legends, rows and cards: its label's name, else
/// its file's stem; then the commit it measured (its first 7 characters)
/// and when it started, in UTC to the minute.
pub fn run_label(file_name: &str, report: &Report) -> String {
    let mut out = report.label.name.clone().unwrap_or_else(|| {
        Path::new(file_name).file_stem().map_or_else(|| file_name.to_owned(), |stem| stem.to_string_lossy().into_owned())
    });
    if let Some(commit) = &report.label.commit {
        let _ = write!(out, " @ {}", commit.chars().take(7).collect::<String>());
    }
    // Zero is no start time written, not the epoch.
    if report.started_at_unix > 0 {
        let _ = write!(out, ", {} UTC", utc_minute(report.started_at_unix));
    }
    out
}

/// Each report's `run_label`, told apart where two would read the same:
/// by their files, then by their place.
fn run_labels(reports: &[(String, Report)]) -> Vec<String> {
    let distinct = |labels: Vec<String>, apart: &dyn Fn(usize, &str) -> String| -> Vec<String> {
        labels
            .iter()
            .enumerate()
            .map(|(i, l)| if labels.iter().filter(|m| *m == l).count() > 1 { apart(i, l) } else { l.clone() })
            .collect()
    };
    let labels = reports.iter().map(|(file, r)| run_label(file, r)).collect();
    let labels = distinct(labels, &|i, l| format!("{l} [{}]", reports[i].0));
    distinct(labels, &|i, l| format!("{l} #{}", i + 1))
}

/// Seconds since the Unix epoch as `YYYY-MM-DD HH:MM` (UTC), from
/// humantime's RFC 3339 form.
fn utc_minute(unix: u64) -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(unix);
    let rfc = humantime::format_rfc3339_seconds(at).to_string();
    rfc.get(..16).map_or(rfc.clone(), |minute| minute.replacen('T', " ", 1))
}

/// A figure's value in a cell: a whole count without decimals, others to
/// two; "—" where the scenario did not measure it, never a zero.
fn figure_cell(figure: Figure, s: &ScenarioReport) -> String {
    match figure.read(s) {
        Some(v) if figure.unit() == Unit::Count && v.fract() == 0.0 => format!("{v:.0}"),
        Some(v) => format!("{v:.2}"),
        None => "—".to_owned(),
    }
}

/// The seed's four tables and the health table, a row per run: a seed
/// table only for the scenarios it is for (streaming or not), so a
/// blocking scenario has no event table and no TTFE.
pub fn seed_tables(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    let table_of =
        |out: &mut String, title: &str, head: &[&str], rows: &[(&str, &ScenarioReport)], cells: &dyn Fn(&ScenarioReport) -> Vec<String>| {
            let _ = write!(out, "<table><caption>{}</caption><tr><th>run</th>", esc(title));
            for h in head {
                let _ = write!(out, "<th>{}</th>", esc(h));
            }
            out.push_str("</tr>");
            for (name, s) in rows {
                let _ = write!(out, "<tr><td>{}</td>", esc(name));
                for c in cells(s) {
                    let _ = write!(out, "<td>{c}</td>");
                }
                out.push_str("</tr>");
            }
            out.push_str("</table>\n");
        };
    let f = |v: f64| format!("{v:.2}");
    // The seed's tables, as the text report has them (`figures::SEED_TABLES`).
    for seed in &SEED_TABLES {
        let shown: Vec<(&str, &ScenarioReport)> = rows.iter().filter(|(_, s)| s.streams() == seed.streams).copied().collect();
        if shown.is_empty() {
            continue;
        }
        let head: Vec<&str> = seed.columns.iter().map(|(h, _)| *h).collect();
        table_of(out, seed.title, &head, &shown, &|s| seed.columns.iter().map(|(_, figure)| figure_cell(*figure, s)).collect());
    }
    let head = ["verdict", "driver CPU (cores)", "target CPU (cores)", "others (cores)", "requests sent", "errors"];
    table_of(out, "Health", &head, rows, &|s| {
        let h = &s.health;
        vec![
            format!("{:?}", h.verdict),
            f(h.driver_cpu_cores),
            h.target_cpu_cores.map_or_else(|| "not measured".to_owned(), f),
            f(h.other_cpu_cores),
            s.counts.sent.to_string(),
            s.counts.errors.to_string(),
        ]
    });
}

/// Why scenario `s` of `report` fails (none: it passes), and what else a
/// reader should know of it: interrupted, the driver the bottleneck, no
/// success, errors over the run's `--max-error-rate` (streams left on
/// purpose are not errors, streams that broke the grammar are; any error
/// when the report records no budget), a threshold crossed.
fn verdict(report: &Report, s: &ScenarioReport) -> (Vec<String>, Vec<String>) {
    let (mut fails, mut notes) = (Vec::new(), Vec::new());
    if report.interrupted || s.interrupted {
        fails.push("interrupted: the figures cover the part that ran".to_owned());
    }
    let reasons = if s.health.reasons.is_empty() { String::new() } else { format!(": {}", s.health.reasons.join("; ")) };
    match s.health.verdict {
        HealthVerdict::Invalid => fails.push(format!("driver health INVALID: the driver, not the target, was the bottleneck{reasons}")),
        HealthVerdict::Disturbed => notes.push(format!("driver health disturbed: figures may be biased{reasons}")),
        HealthVerdict::Valid => {}
    }
    let c = &s.counts;
    if c.ok + c.aborted() == 0 {
        fails.push("no request succeeded in the measured phase".to_owned());
    }
    // Failures fail the scenario as they failed the run: over the error
    // budget it ran with; a report that does not say its budget is judged
    // with none.
    let failed = c.errors.saturating_sub(c.aborted());
    let measured = c.ok + c.errors;
    let rate = if measured > 0 { failed as f64 / measured as f64 } else { 0.0 };
    let over = report.max_error_rate.is_none_or(|budget| rate > budget);
    let budget = report
        .max_error_rate
        .map_or_else(|| "no error budget recorded".to_owned(), |b| format!("--max-error-rate {}%", schema::text::num(b * 100.0)));
    if failed > 0 {
        let classes: Vec<String> = c.errors_by_class.iter().filter(|(k, _)| *k != "aborted").map(|(k, v)| format!("{k} {v}")).collect();
        let what = format!(
            "{failed} error{} ({}): {}% of measured requests, {} {budget}",
            if failed == 1 { "" } else { "s" },
            classes.join(", "),
            schema::text::num(rate * 100.0),
            if over { "over" } else { "within" }
        );
        if over { fails.push(what) } else { notes.push(what) }
    }
    if c.aborted() > 0 {
        notes.push(format!("{} streams left on purpose (aborted): not failures", c.aborted()));
    }
    match &s.integrity {
        Some(i) if i.violating > 0 => {
            let what = format!(
                "integrity: {} of {} streams broke the grammar: {}",
                i.violating,
                i.checked,
                i.by_class.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ")
            );
            if over { fails.push(what) } else { notes.push(what) }
        }
        Some(i) => notes.push(format!("integrity: {} streams checked, none broke the grammar", i.checked)),
        None => {}
    }
    for t in report.thresholds.iter().filter(|t| t.scenario == s.name) {
        let value = t.value.map_or_else(|| "not measured".to_owned(), |v| format!("measured {}", schema::text::num(v)));
        if t.passed {
            notes.push(format!("threshold {} met ({value})", t.threshold));
        } else {
            fails.push(format!("threshold {} crossed ({value})", t.threshold));
        }
    }
    (fails, notes)
}

/// What scenario `s` of `report` did not measure, each with why.
fn not_measured(report: &Report, s: &ScenarioReport) -> Vec<String> {
    let mut out = Vec::new();
    if s.target_cpu_us_per_request.is_none() {
        let why = if !report.shards.is_empty() {
            "not attributed (merged shards; each shard's is in the JSON)".to_owned()
        } else {
            // Where the health monitor said why, its words; else the usual cause.
            format!("not measured ({})", s.health.target_cpu_of.as_deref().unwrap_or("remote"))
        };
        out.push(format!("target CPU: {why}"));
    }
    if s.streams() {
        if s.integrity.is_none() {
            out.push(format!("integrity: {}", schema::integrity::NOT_CHECKED));
        }
        if s.latency(Metric::Ttfe).n == 0 {
            out.push("TTFE: no event received".to_owned());
        }
        if s.timeline.is_none() {
            out.push("timeline: none (no stream reached its end)".to_owned());
        }
    } else {
        out.push("integrity: not checked (blocking answers have no event stream)".to_owned());
        out.push("events and TTFE: none (blocking)".to_owned());
    }
    out
}

/// The figures a card leads with: for a streaming scenario its events per
/// second, TTFE, duration and peak concurrency; for a blocking one its
/// requests per second and duration; for both, its measured requests.
fn headline(s: &ScenarioReport) -> Vec<(&'static str, String)> {
    let cell = |figure: Figure| figure_cell(figure, s);
    let spread = |metric: Metric| format!("{} / {}", cell(Figure::Latency(metric, Stat::P50)), cell(Figure::Latency(metric, Stat::P99)));
    let mut rows = if s.streams() {
        vec![
            ("events/s", cell(Figure::Scalar(Scalar::EventsPerS))),
            ("TTFE p50 / p99 (ms)", spread(Metric::Ttfe)),
            ("duration p50 / p99 (ms)", spread(Metric::Duration)),
            ("max concurrent", cell(Figure::Scalar(Scalar::MaxConcurrent))),
        ]
    } else {
        vec![
            ("requests/s", cell(Figure::Scalar(Scalar::RequestsPerS))),
            ("avg duration (ms)", cell(Figure::Scalar(Scalar::AvgDuration))),
            ("duration p50 / p99 (ms)", spread(Metric::Duration)),
        ]
    };
    rows.push(("measured requests", format!("{} ok, {} errors", s.counts.ok, s.counts.errors)));
    rows
}

/// A scenario's card in the summary: its name (a link to its section), the
/// run when the page has several, the verdict and why, the headline
/// figures, what was not measured.
fn card(out: &mut String, anchor: &str, report: &Report, run: Option<&str>, s: &ScenarioReport) {
    let (fails, notes) = verdict(report, s);
    let pass = fails.is_empty();
    let _ = writeln!(
        out,
        "<div class=\"card {}\"><h3><a href=\"#{anchor}\">{}</a> <span class=\"note\">({})</span> <span class=\"verdict\">{}</span></h3>",
        if pass { "pass" } else { "fail" },
        esc(&s.name),
        s.mode_label(),
        if pass { "PASS" } else { "FAIL" }
    );
    if let Some(run) = run {
        let _ = writeln!(out, "<div class=\"note\">{}</div>", esc(run));
    }
    for (list, class) in [(&fails, "why"), (&notes, "note")] {
        if !list.is_empty() {
            let _ = write!(out, "<ul class=\"{class}\">");
            for item in list {
                let _ = write!(out, "<li>{}</li>", esc(item));
            }
            out.push_str("</ul>\n");
        }
    }
    out.push_str("<table>");
    for (name, value) in headline(s) {
        let _ = write!(out, "<tr><td>{}</td><td>{}</td></tr>", esc(name), esc(&value));
    }
    out.push_str("</table>\n");
    let missing = not_measured(report, s);
    if !missing.is_empty() {
        let _ = writeln!(out, "<p class=\"note\">Not measured: {}.</p>", esc(&missing.join("; ")));
    }
    out.push_str("</div>\n");
}

/// The `i`-th scenario's anchor: its name kept to letters, digits, `-`
/// and `_`, after its place (two names may keep the same).
fn anchor(i: usize, name: &str) -> String {
    let kept: String = name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("scenario-{}-{kept}", i + 1)
}

/// What the grammar check found in each run of a streaming scenario: the
/// rules broken (with what each means), by app where there are several,
/// and the offending streams kept, each folded with its events.
fn integrity_section(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    let streaming: Vec<&(&str, &ScenarioReport)> = rows.iter().filter(|(_, s)| s.streams()).collect();
    if streaming.is_empty() {
        return;
    }
    out.push_str("<h3>Integrity</h3>\n");
    for (run, s) in streaming {
        let of = if rows.len() > 1 { format!(" ({run})") } else { String::new() };
        let Some(i) = &s.integrity else {
            let _ = writeln!(out, "<p class=\"note\">Not checked{}: --no-integrity, or no stream reached its end.</p>", esc(&of));
            continue;
        };
        if i.violating == 0 {
            let _ = writeln!(out, "<p>{} streams checked against Dify's event grammar{}: none broke it.</p>", i.checked, esc(&of));
            continue;
        }
        let _ = writeln!(
            out,
            "<p>{} of {} streams checked broke Dify's event grammar{}: each is an error of class integrity; a stream may break several rules.</p>",
            i.violating,
            i.checked,
            esc(&of)
        );
        let meaning = |class: &str| Violation::ALL.iter().find(|v| v.as_str() == class).map_or("", |v| v.description());
        let classes: Vec<Vec<String>> = i.by_class.iter().map(|(k, n)| vec![esc(k), n.to_string(), esc(meaning(k))]).collect();
        out.push_str(&table(&format!("Rules broken{of}"), &["class", "streams", "what it means"], &classes));
        let by_app: Vec<Vec<String>> =
            s.apps.iter().flat_map(|a| a.integrity.iter().map(|(k, n)| vec![esc(&a.name), esc(k), n.to_string()])).collect();
        if !by_app.is_empty() {
            out.push_str(&table(&format!("Rules broken by app{of}"), &["app", "class", "streams"], &by_app));
        }
        if !i.examples.is_empty() {
            let n = i.examples.len();
            let _ = writeln!(
                out,
                "<p>{n} offending stream{} kept, each as it came (ms since the request was sent):</p>",
                if n == 1 { "" } else { "s" }
            );
            for stream in &i.examples {
                offending_stream(out, stream);
            }
        }
    }
}

/// One kept offending stream, folded: its app and the rules it broke, then
/// each event with its data (cut to `DATA_CHARS`).
fn offending_stream(out: &mut String, stream: &OffendingStream) {
    let _ = write!(
        out,
        "<details><summary>{}: {} ({} events{})</summary><table><tr><th>ms</th><th>event</th><th>data</th></tr>",
        esc(&stream.app),
        esc(&stream.violations.join(", ")),
        stream.events.len(),
        if stream.truncated { ", the rest left out" } else { "" }
    );
    for e in &stream.events {
        // Dify names an event in its data; the SSE field names the rest (`ping`).
        let name = event_name(&e.data).or_else(|| e.event.clone()).unwrap_or_default();
        let _ = write!(
            out,
            "<tr><td>{:.1}</td><td class=\"words\">{}</td><td class=\"data\">{}</td></tr>",
            e.at_ms,
            esc(&name),
            esc(&cut(&e.data, DATA_CHARS))
        );
    }
    out.push_str("</table></details>\n");
}

/// The `event` field of an event's JSON data, where it has one.
fn event_name(data: &str) -> Option<String> {
    serde_json::from_str::<serde_json::Value>(data).ok()?.get("event")?.as_str().map(str::to_owned)
}

/// `text` cut to `max` characters, an ellipsis saying so.
fn cut(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((at, _)) => format!("{}…", &text[..at]),
        None => text.to_owned(),
    }
}

/// A node as the timeline names it: `title (type)`.
fn node_name(node: &NodeLabel) -> String {
    format!("{} ({})", node.title, node.node_type)
}

/// Where each run's streams spent their time: its steps from the intended
/// send (a table), then the median and the slowest stream as waterfalls.
/// The slowest requests by the trace ids their `traceparent` carried, to
/// open in the target's tracing system.
fn slowest_section(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    for (run, s) in rows.iter().filter(|(_, s)| !s.slowest.is_empty()) {
        let of = if rows.len() > 1 { format!(" ({run})") } else { String::new() };
        let slow: Vec<Vec<String>> = s
            .slowest
            .iter()
            .map(|r| {
                vec![
                    format!("<code>{}</code>", esc(&r.trace_id)),
                    format!("{:.2}", r.duration_ms),
                    r.ttfe_ms.map_or_else(|| "-".to_owned(), |t| format!("{t:.2}")),
                    esc(&r.outcome),
                    esc(r.app.as_deref().unwrap_or("")),
                ]
            })
            .collect();
        out.push_str(&table(
            &format!("The slowest requests by trace id{of}"),
            &["traceparent trace id", "duration ms", "TTFE ms", "outcome", "app"],
            &slow,
        ));
    }
}

fn timeline_section(out: &mut String, rows: &[(&str, &ScenarioReport)]) -> anyhow::Result<()> {
    let traced: Vec<(&str, &Timeline)> = rows.iter().filter_map(|(run, s)| Some((*run, s.timeline.as_ref()?))).collect();
    if traced.is_empty() {
        return Ok(());
    }
    out.push_str("<h3>Timeline</h3>\n");
    let f = |v: f64| format!("{v:.2}");
    for (run, t) in traced {
        let of = if rows.len() > 1 { format!(" ({run})") } else { String::new() };
        let steps: Vec<Vec<String>> = t
            .steps
            .iter()
            .map(|step| {
                let m = &step.ms;
                let node = step.node.as_ref().map_or_else(String::new, |n| esc(&node_name(n)));
                vec![esc(step.step.as_str()), node, m.n.to_string(), f(m.p50), f(m.p90), f(m.p99), f(m.max)]
            })
            .collect();
        out.push_str(&table(
            &format!("Steps of the successful streams, ms{of}"),
            &["step", "node", "n", "P50", "P90", "P99", "Max"],
            &steps,
        ));
        out.push_str(
            "<p class=\"note\">Each step counts from the intended send, but node_time (a node's own time, its finish minus its start) \
             and the per-chunk rows (per chunk).</p>\n",
        );
        if t.nodes_left_out > 0 {
            let _ = writeln!(out, "<p class=\"note\">{} node labels past the kept number have no rows of their own.</p>", t.nodes_left_out);
        }
        out.push_str("<div class=\"plots\">\n");
        for (which, trace) in [("The median stream", &t.median), ("The slowest stream", &t.slowest)] {
            let Some(trace) = trace else { continue };
            let caption = format!("{which}: {:.0} ms{of}", trace.duration_ms);
            out.push_str(&waterfall(&caption, "ms from the intended send", &lanes_of(trace))?);
        }
        out.push_str("</div>\n");
        if [&t.median, &t.slowest].into_iter().flatten().any(|trace| trace.truncated) {
            out.push_str("<p class=\"note\">A drawn stream had more events than are kept: its last ones are left out.</p>\n");
        }
    }
    Ok(())
}

/// A traced stream as a waterfall's lanes: the run from `workflow_started`
/// to its terminal event (other events as ticks on it), each node from its
/// `node_started` to its `node_finished` (a node run several times has a
/// bar each; one never finished runs to the end), the text as ticks.
fn lanes_of(trace: &StreamTrace) -> Vec<Lane> {
    let end = trace.points.iter().map(|p| p.at_ms).fold(trace.duration_ms, f64::max);
    let mut run = Lane { label: "run".to_owned(), ..Lane::default() };
    let mut text = Vec::new();
    // Each node's lane and the starts not yet finished, in order of appearance.
    let mut nodes: Vec<(&NodeLabel, Lane, Vec<f64>)> = Vec::new();
    let (mut started, mut terminal) = (None, None);
    for p in &trace.points {
        match (p.event.as_str(), &p.node) {
            ("workflow_started", _) => started = started.or(Some(p.at_ms)),
            ("workflow_finished" | "message_end", _) => terminal = terminal.or(Some(p.at_ms)),
            ("error", _) => {
                terminal = terminal.or(Some(p.at_ms));
                run.ticks.push(p.at_ms);
            }
            ("text_chunk" | "message", _) => text.push(p.at_ms),
            ("node_started" | "node_finished", Some(node)) => {
                let at = match nodes.iter().position(|(n, _, _)| *n == node) {
                    Some(at) => at,
                    None => {
                        nodes.push((node, Lane { label: node_name(node), ..Lane::default() }, Vec::new()));
                        nodes.len() - 1
                    }
                };
                let (_, lane, open) = &mut nodes[at];
                if p.event == "node_started" {
                    open.push(p.at_ms);
                } else if open.is_empty() {
                    lane.ticks.push(p.at_ms);
                } else {
                    lane.bars.push((open.remove(0), p.at_ms));
                }
            }
            _ => run.ticks.push(p.at_ms),
        }
    }
    let last = terminal.unwrap_or(end);
    if let Some(start) = started {
        run.bars.push((start, last));
    }
    let mut lanes = vec![run];
    for (_, mut lane, open) in nodes {
        lane.bars.extend(open.into_iter().map(|start| (start, last)));
        lanes.push(lane);
    }
    if !text.is_empty() {
        let label = format!("text ({} chunk{})", text.len(), if text.len() == 1 { "" } else { "s" });
        lanes.push(Lane { label, bars: Vec::new(), ticks: text });
    }
    lanes
}

/// The plots of one scenario as each run measured it, in groups: the
/// latency distributions by percentile; second by second from the load's
/// start (the warm-up shaded); the health figures over the same seconds.
pub fn scenario_plots(rows: &[(&str, &ScenarioReport)]) -> anyhow::Result<String> {
    let mut out = String::new();
    let group = |out: &mut String, title: &str, plots: &[String]| {
        if !plots.is_empty() {
            let _ = writeln!(out, "<h3>{}</h3>\n<div class=\"plots\">", esc(title));
            for svg in plots {
                out.push_str(svg);
            }
            out.push_str("</div>\n");
        }
    };
    let mut distributions = Vec::new();
    for metric in [Metric::Ttfe, Metric::Ttfb, Metric::Duration, Metric::EventGap] {
        let series: Vec<(String, Vec<(f64, f64)>)> =
            rows.iter().filter_map(|(n, s)| percentile_curve(s, metric).map(|c| ((*n).to_owned(), c))).collect();
        if series.is_empty() {
            continue;
        }
        let caption = format!("{} by percentile", metric.label());
        distributions.push(lines(&caption, "percentile", "ms", series, &percentile_label, Vec::new()).svg()?);
    }
    group(&mut out, "Latency distributions", &distributions);
    let mut warmups: Vec<(f64, f64, String)> =
        rows.iter().filter(|(_, s)| s.load.warmup_s > 0.0).map(|(n, s)| (0.0, s.load.warmup_s, format!("warm-up ({n})"))).collect();
    // Runs warmed up alike share one span: their labels would overprint.
    if warmups.iter().all(|w| w.1 == warmups[0].1) {
        warmups.truncate(1);
        if let Some(w) = warmups.first_mut() {
            w.2 = "warm-up".to_owned();
        }
    }
    let per_second: [(&str, &str, Series, Series); 4] = [
        ("Events per second", "events/s", |s| counts(&s.per_second.events), |s| counts(&s.per_second.warmup.events)),
        ("Requests per second", "requests/s", |s| counts(&s.per_second.ok), |s| counts(&s.per_second.warmup.ok)),
        ("Errors per second", "errors/s", |s| counts(&s.per_second.errors), |s| counts(&s.per_second.warmup.errors)),
        ("Active connections", "in flight", |s| s.per_second.connections.clone(), |_| Vec::new()),
    ];
    let mut over_time = Vec::new();
    for (caption, unit, measured, warmup) in per_second {
        let series: Vec<(String, Vec<(f64, f64)>)> = rows
            .iter()
            .map(|(n, s)| ((*n).to_owned(), from_the_start(s.load.warmup_s, &warmup(s), &measured(s))))
            .filter(|(_, points)| !points.is_empty())
            .collect();
        // A blocking run sends no events: no plot of zeros for it.
        let all_zero = series.iter().all(|(_, p)| p.iter().all(|&(_, y)| y == 0.0));
        if series.is_empty() || (caption == "Events per second" && all_zero) {
            continue;
        }
        over_time.push(lines(caption, "seconds since the load started", unit, series, &|x| format!("{x:.0}"), warmups.clone()).svg()?);
    }
    group(&mut out, "Over time", &over_time);
    let health: [(&str, Pick<HealthSecond>); 4] =
        [("driver", |h| Some(h.driver)), ("target", |h| h.target), ("others", |h| Some(h.others)), ("steal", |h| Some(h.steal))];
    let mut series = Vec::new();
    for (n, s) in rows {
        for (figure, value) in health {
            let points: Vec<(f64, f64)> = s.health.per_second.iter().filter_map(|h| Some((h.t_s, value(h)?))).collect();
            if !points.is_empty() {
                series.push((if rows.len() > 1 { format!("{figure} ({n})") } else { figure.to_owned() }, points));
            }
        }
    }
    let mut health_plots = Vec::new();
    if !series.is_empty() {
        health_plots.push(
            lines("Health: CPU used", "seconds since the load started", "cores", series, &|x| format!("{x:.0}"), warmups.clone()).svg()?,
        );
    }
    group(&mut out, "Health", &health_plots);
    group(&mut out, "Scraped from the target (--scrape)", &scraped_plots(rows, &warmups)?);
    prometheus_notes(&mut out, rows);
    out.push_str(
        "<p class=\"note\">Seconds count from the load's start; the warm-up, shaded, is in no figure. \
         A request sent in the warm-up and ended after it is in neither the warm-up's requests nor the measured phase's, \
         so long streams leave a dip there. Active connections are kept for the measured phase only. Health is each second's CPU in cores: \
         the driver, the target (where it is a local process or cgroup), every other process, and the time the host held back this machine's CPUs (steal).</p>\n",
    );
    Ok(out)
}

/// Plots drawn of scraped series at most: a selector can match many.
const MAX_SCRAPED_PLOTS: usize = 12;

/// A plot per scraped series (by its name and labels; a run's own line in
/// each), on the same seconds as the run's own, with the Prometheus
/// figures and what could not be read in a note.
fn scraped_plots(rows: &[(&str, &ScenarioReport)], warmups: &[(f64, f64, String)]) -> anyhow::Result<Vec<String>> {
    let mut names: Vec<(&str, schema::observe::SeriesKind)> = Vec::new();
    for (_, s) in rows {
        for x in &s.scraped {
            if !names.iter().any(|(n, _)| *n == x.series) {
                names.push((&x.series, x.kind));
            }
        }
    }
    let mut plots = Vec::new();
    for (name, kind) in names.into_iter().take(MAX_SCRAPED_PLOTS) {
        let series: Vec<(String, Vec<(f64, f64)>)> = rows
            .iter()
            .filter_map(|(n, s)| {
                let x = s.scraped.iter().find(|x| x.series == name)?;
                let points: Vec<(f64, f64)> = x.t_s.iter().zip(&x.values).filter_map(|(&t, v)| Some((t, (*v)?))).collect();
                Some(((*n).to_owned(), points))
            })
            .filter(|(_, points)| !points.is_empty())
            .collect();
        if series.is_empty() {
            continue;
        }
        let unit = match kind {
            schema::observe::SeriesKind::Rate => "per second",
            schema::observe::SeriesKind::Gauge => "value",
        };
        plots.push(lines(name, "seconds since the load started", unit, series, &|x| format!("{x:.0}"), warmups.to_vec()).svg()?);
    }
    Ok(plots)
}

/// The Prometheus figures of each row, and what `--scrape` could not read.
fn prometheus_notes(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    for (n, s) in rows {
        if let Some(prom) = &s.prometheus {
            let mut text = String::new();
            for (what, q) in [("target CPU", &prom.cpu), ("target memory", &prom.memory)] {
                let Some(q) = q else { continue };
                let value = match (q.value, what) {
                    (Some(v), "target CPU") => format!("{v:.3} cores"),
                    (Some(v), _) => format!("{:.1} MiB", v / 1048576.0),
                    (None, _) => format!("not measured: {}", q.error.as_deref().unwrap_or("no value")),
                };
                let _ = write!(text, "{what}: {value} (<code>{}</code>, {}); ", esc(&q.query), esc(&q.method));
            }
            let _ = writeln!(
                out,
                "<p class=\"note\">{}: Prometheus at {} over the measured interval ({:.2} s): {}</p>",
                esc(n),
                esc(&prom.url),
                prom.end_unix_s - prom.start_unix_s,
                text.trim_end_matches("; ")
            );
        }
        for p in &s.scrape_problems {
            let _ = writeln!(
                out,
                "<p class=\"note\">{}: --scrape {}: {} of {} reads failed; first: {}</p>",
                esc(n),
                esc(&p.url),
                p.failed,
                p.of,
                esc(&p.first_error)
            );
        }
    }
}

fn counts(v: &[u64]) -> Vec<f64> {
    v.iter().map(|&n| n as f64).collect()
}

/// A line plot with whole-number ticks.
fn lines<'a>(
    caption: &'a str,
    x_desc: &'a str,
    y_desc: &'a str,
    series: Vec<(String, Vec<(f64, f64)>)>,
    x_labels: &'a dyn Fn(&f64) -> String,
    shaded: Vec<(f64, f64, String)>,
) -> Lines<'a> {
    Lines { caption, x_desc, y_desc, series, x_labels, whole_x: true, shaded, marks: Vec::new(), legend_low: false }
}

/// A scenario's seconds, warm-up then measured, each at its end in seconds
/// since the load's start, as a rate (the warm-up's last second may be part
/// of one).
fn from_the_start(warmup_s: f64, warmup: &[f64], measured: &[f64]) -> Vec<(f64, f64)> {
    let mut points: Vec<(f64, f64)> = warmup
        .iter()
        .enumerate()
        .filter_map(|(i, &v)| {
            let (from, to) = (i as f64, (i as f64 + 1.0).min(warmup_s));
            // A sliver of a second would make its few events a huge rate.
            (to - from >= 0.1).then(|| (to, v / (to - from)))
        })
        .collect();
    points.extend(measured.iter().enumerate().map(|(j, &v)| (warmup_s + j as f64 + 1.0, v)));
    points
}

/// The page for `reports`, each with the file it was read from (or a name
/// for it): a table of contents; the summary, a card per scenario and run;
/// the runs; then each scenario's section. Runs are named by `run_label`.
pub fn render(reports: &[(String, Report)]) -> anyhow::Result<String> {
    let labels = run_labels(reports);
    let runs: Vec<(&str, &Report)> = labels.iter().map(String::as_str).zip(reports.iter().map(|(_, r)| r)).collect();
    let mut names: Vec<&str> = Vec::new();
    for (_, r) in &runs {
        for s in &r.scenarios {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    let scenarios: Vec<(&str, String)> = names.iter().enumerate().map(|(i, n)| (*n, anchor(i, n))).collect();
    let mut out = String::from("<nav class=\"toc\"><b>Contents:</b> <a href=\"#summary\">Summary</a>");
    for (name, id) in &scenarios {
        let _ = write!(out, "<a href=\"#{id}\">{}</a>", esc(name));
    }
    out.push_str("<a href=\"#runs\">Runs</a></nav>\n<h2 id=\"summary\">Summary</h2>\n<div class=\"cards\">\n");
    for (name, id) in &scenarios {
        for (label, r) in &runs {
            if let Some(s) = r.scenarios.iter().find(|s| s.name == *name) {
                card(&mut out, id, r, (runs.len() > 1).then_some(*label), s);
            }
        }
    }
    out.push_str("</div>\n<h2 id=\"runs\">Runs</h2>\n<ul>\n");
    for ((label, r), (file, _)) in runs.iter().zip(reports) {
        let _ = writeln!(
            out,
            "<li><b>{}</b> ({}): {} ({}), {} cores of {}, flowbench {}{}</li>",
            esc(label),
            esc(file),
            esc(&r.target.url),
            if r.target.embedded { "embedded stack" } else { "target" },
            r.machine.cores,
            esc(&r.machine.cpu_model),
            esc(&r.flowbench_version),
            if r.interrupted { ", interrupted" } else { "" }
        );
    }
    out.push_str("</ul>\n");
    for (scenario, id) in &scenarios {
        let rows: Vec<(&str, &ScenarioReport)> =
            runs.iter().filter_map(|(label, r)| r.scenarios.iter().find(|s| s.name == *scenario).map(|s| (*label, s))).collect();
        let mode = rows.first().map_or("", |(_, s)| s.mode_label());
        let _ = writeln!(out, "<section class=\"scenario\" id=\"{id}\">\n<h2>{} <span class=\"note\">({mode})</span></h2>", esc(scenario));
        seed_tables(&mut out, &rows);
        integrity_section(&mut out, &rows);
        timeline_section(&mut out, &rows)?;
        slowest_section(&mut out, &rows);
        out.push_str(&scenario_plots(&rows)?);
        if let [(a_name, a), rest @ ..] = runs.as_slice() {
            for (b_name, b) in rest {
                let c = compare(a_name, a, b_name, b);
                let Some(sc) = c.scenarios.iter().find(|s| s.name == *scenario) else { continue };
                let _ = writeln!(out, "<h3>{} against {}</h3>", esc(b_name), esc(a_name));
                for w in &c.warnings {
                    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(w));
                }
                let cell = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.3}"));
                let changes: Vec<Vec<String>> = sc
                    .rows
                    .iter()
                    .map(|r| {
                        vec![esc(&r.figure.label()), cell(r.a), cell(r.b), r.change_pct().map_or("—".to_owned(), |p| format!("{p:+.1}%"))]
                    })
                    .collect();
                out.push_str(&table(&format!("{b_name} against {a_name}"), &["figure", a_name, b_name, "change"], &changes));
                for w in &sc.warnings {
                    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(w));
                }
            }
        }
        out.push_str("</section>\n");
    }
    if reports.len() > 1 {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(super::compare::CAVEAT));
    }
    Ok(page("flowbench report", &out))
}

/// `flowbench ab --html`: per figure, both sides slice by slice; B's
/// change per slice; each slice's health.
pub fn render_ab(report: &AbReport) -> anyhow::Result<String> {
    let mut out = format!(
        "<ul><li><b>A</b>: {}</li><li><b>B</b>: {}</li><li>{:?} ({}), {} slices of {} s after {} s settling, {}, both sides at once{}</li></ul>\n",
        esc(&report.a),
        esc(&report.b),
        report.scenario,
        report.mode.as_str(),
        report.slices.len(),
        report.slice_s,
        report.settle_s,
        match report.rate {
            Some(rate) => format!("{rate} requests/s over {} connections a side", report.users),
            None => format!("{} users a side", report.users),
        },
        if report.interrupted { "; interrupted: only the slices below were measured" } else { "" }
    );
    let f = |v: f64| if v.is_finite() { format!("{v:.3}") } else { "—".to_owned() };
    let rows: Vec<Vec<String>> = report
        .summary()
        .iter()
        .map(|r| {
            vec![esc(&r.figure.label()), f(r.a_mean), f(r.b_mean), format!("{:+.2}%", r.change_pct), format!("{}%", f(r.slice_sd_pct))]
        })
        .collect();
    out.push_str(&table("B against A (mean log ratio over the slices)", &["figure", "A mean", "B mean", "B/A", "slice SD"], &rows));
    out.push_str("<div class=\"plots\">\n");
    let slice_no = |x: &f64| format!("{x:.0}");
    let mut changes = Vec::new();
    for figure in AB {
        let label = figure.label();
        let label = label.as_str();
        let side = |pick: fn(&Slice) -> &ScenarioReport| -> Vec<(f64, f64)> {
            report.slices.iter().enumerate().filter_map(|(i, s)| Some((i as f64 + 1.0, figure.read(pick(s))?))).collect()
        };
        let (a, b) = (side(|s| &s.a), side(|s| &s.b));
        if a.is_empty() && b.is_empty() {
            continue;
        }
        let ratios = report.log_ratios(figure);
        if !ratios.is_empty() {
            changes.push((label.to_owned(), ratios));
        }
        let caption = format!("{label} by slice");
        out.push_str(&lines(&caption, "slice", label, vec![("A".to_owned(), a), ("B".to_owned(), b)], &slice_no, Vec::new()).svg()?);
    }
    // One interval per figure: the change from the mean log ratio, as the
    // table and the gate give it; its whisker the slices' range.
    let pct = |r: f64| (r.exp() - 1.0) * 100.0;
    let spread: Vec<(String, f64, f64, f64)> = changes
        .iter()
        .map(|(label, r)| {
            let mean = r.iter().sum::<f64>() / r.len() as f64;
            let (low, high) = r.iter().fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| (lo.min(v), hi.max(v)));
            (label.to_string(), pct(mean), pct(low), pct(high))
        })
        .collect();
    if !spread.is_empty() {
        out.push_str(&interval_plot("B against A: mean change per slice and the slices' range", "% change", &spread, &[0.0])?);
    }
    let health: [(&str, Pick<Slice>); 5] = [
        ("driver (both sides)", |s| Some(s.a.health.driver_cpu_cores)),
        ("target A", |s| s.a.health.target_cpu_cores),
        ("target B", |s| s.b.health.target_cpu_cores),
        ("others", |s| Some(s.a.health.other_cpu_cores.max(s.b.health.other_cpu_cores))),
        ("steal", |s| Some(s.a.health.steal_cores.max(s.b.health.steal_cores))),
    ];
    let series: Vec<(String, Vec<(f64, f64)>)> = health
        .iter()
        .map(|(name, value)| {
            ((*name).to_owned(), report.slices.iter().enumerate().filter_map(|(i, s)| Some((i as f64 + 1.0, value(s)?))).collect())
        })
        .filter(|(_, p): &(String, Vec<(f64, f64)>)| !p.is_empty())
        .collect();
    if !series.is_empty() {
        out.push_str(&lines("Health by slice: CPU used", "slice", "cores", series, &slice_no, Vec::new()).svg()?);
    }
    out.push_str(
        "</div>\n<p class=\"note\">Each slice measures both sides over the same seconds, so they share the machine's drift; \
         <code>cargo xtask gate</code> turns the slices' log ratios into a verdict.</p>\n",
    );
    Ok(page("flowbench ab", &out))
}

/// `flowbench soak --html`: the stack's RSS, its live runs and the load
/// each second (the warm-up shaded), then the run's tables and plots.
pub fn render_soak(report: &SoakReport) -> anyhow::Result<String> {
    let mut out = format!(
        "<p><b>{}</b>: {} streams, {} s after a {} s warm-up; RSS {} → {} KiB ({:+.1}%, limit {}%); live runs after the load: {}{}</p>\n",
        if report.pass { "PASS" } else { "FAIL" },
        report.streams,
        report.duration_s,
        report.warmup_s,
        report.rss_start_kib,
        report.rss_end_kib,
        report.rss_growth_pct,
        report.max_growth_pct,
        report.live_runs_after.map_or_else(|| "not read".to_owned(), |n| n.to_string()),
        if report.interrupted { "; interrupted" } else { "" }
    );
    for reason in &report.reasons {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(reason));
    }
    out.push_str("<div class=\"plots\">\n");
    let warmup: Vec<(f64, f64, String)> =
        (report.warmup_s > 0.0).then(|| (0.0, report.warmup_s, "warm-up".to_owned())).into_iter().collect();
    let seconds = |x: &f64| format!("{x:.0}");
    let samples = &report.samples;
    let rss: Vec<(f64, f64)> = samples.iter().map(|s| (s.t_s, s.rss_kib as f64 / 1024.0)).collect();
    out.push_str(
        &lines("Stack RSS", "seconds since the load started", "MiB", vec![("RSS".to_owned(), rss)], &seconds, warmup.clone()).svg()?,
    );
    let live: Vec<(f64, f64)> = samples.iter().filter_map(|s| Some((s.t_s, s.live_runs? as f64))).collect();
    if !live.is_empty() {
        out.push_str(
            &lines(
                "Live runs on the server",
                "seconds since the load started",
                "runs",
                vec![("live runs".to_owned(), live)],
                &seconds,
                warmup.clone(),
            )
            .svg()?,
        );
    }
    // Rates from the driver's running totals, sample to sample.
    let rate = |pick: fn(&SoakSample) -> u64| -> Vec<(f64, f64)> {
        samples
            .windows(2)
            .filter(|w| w[1].t_s > w[0].t_s)
            .map(|w| (w[1].t_s, pick(&w[1]).saturating_sub(pick(&w[0])) as f64 / (w[1].t_s - w[0].t_s)))
            .collect()
    };
    out.push_str(
        &lines(
            "Events per second, the whole soak",
            "seconds since the load started",
            "events/s",
            vec![("events".to_owned(), rate(|s| s.events))],
            &seconds,
            warmup.clone(),
        )
        .svg()?,
    );
    let load = vec![("ended (errors included)".to_owned(), rate(|s| s.done)), ("errors".to_owned(), rate(|s| s.errors))];
    out.push_str(
        &lines("Streams ended and failed per second", "seconds since the load started", "per second", load, &seconds, warmup).svg()?,
    );
    out.push_str("</div>\n");
    let rows = [("soak", &report.scenario)];
    seed_tables(&mut out, &rows);
    out.push_str(&scenario_plots(&rows)?);
    Ok(page("flowbench soak", &out))
}

/// `flowbench capacity`'s page: per scenario the answer (capacity, its
/// interval, what ran out), latency percentiles against the offered load
/// with the SLO's latency limits as lines and the knee marked, the rates
/// achieved, and every step as a table.
pub fn render_capacity(report: &schema::capacity::CapacityReport) -> anyhow::Result<String> {
    use schema::capacity::StepVerdict;
    let mut out = String::new();
    let unit = report.by.unit();
    let x_desc = format!("offered load ({unit}, log scale)");
    for s in &report.scenarios {
        let c = &s.capacity;
        let answer = c.answer();
        let _ = writeln!(
            out,
            "<h2>{}</h2>\n<div class=\"cards\"><div class=\"card\"><b>Capacity: {}</b><br>limited by {}: {}<br>SLO: {}</div></div>",
            esc(&s.name),
            esc(&answer),
            esc(&c.limited_by),
            esc(&c.why),
            esc(&s.slo(&report.slo).join(", "))
        );
        // Steps in order of load, on a log scale (the ramp doubles); TTFE
        // apart from duration, each with its SLO's lines. A step whose
        // driver was the bottleneck is in the table, not drawn: its figures
        // are not the target's.
        let mut steps: Vec<&schema::capacity::CapacityStep> =
            s.steps.iter().filter(|st| st.verdict != StepVerdict::DriverLimited && st.offered > 0.0).collect();
        steps.sort_by(|a, b| a.offered.total_cmp(&b.offered));
        // x is log10 of the load from the first step's (the axis starts at 0).
        let base = steps.first().map_or(0.0, |st| st.offered.log10());
        let x = move |load: f64| load.log10() - base;
        let of = |pick: &dyn Fn(&schema::capacity::CapacityStep) -> Option<f64>| -> Vec<(f64, f64)> {
            steps.iter().filter_map(|st| Some((x(st.offered), pick(st)?))).collect()
        };
        let x_hi = steps.last().map_or(1.0, |st| x(st.offered));
        let checks = s.steps.first().map(|st| st.checks.as_slice()).unwrap_or_default();
        // An SLO's limit as a line on the plot of its metric.
        let slo_lines = |ttfe: bool| -> Vec<(String, Vec<(f64, f64)>)> {
            checks
                .iter()
                .filter(|check| check.unit == "ms" && check.threshold.contains("ttfe") == ttfe)
                .filter_map(|check| Some((format!("SLO {}", check.threshold), vec![(0.0, check.limit?), (x_hi, check.limit?)])))
                .collect()
        };
        let labels = move |v: &f64| format!("{:.0}", 10f64.powf(*v + base));
        let knee: Vec<f64> = c.rate.into_iter().chain(c.high).filter(|v| *v > 0.0).map(x).collect();
        let plot_of = |caption: &str, y: &str, series: Vec<(String, Vec<(f64, f64)>)>| -> anyhow::Result<String> {
            let mut plot = lines(caption, &x_desc, y, series, &labels, Vec::new());
            plot.whole_x = false;
            plot.marks = knee.clone();
            plot.svg()
        };
        out.push_str("<div class=\"plots\">\n");
        if steps.iter().any(|st| st.ttfe_ms.is_some()) {
            let mut series = vec![
                ("TTFE p50".to_owned(), of(&|st| Some(st.ttfe_ms?.p50))),
                ("TTFE p95".to_owned(), of(&|st| Some(st.ttfe_ms?.p95))),
                ("TTFE p99".to_owned(), of(&|st| Some(st.ttfe_ms?.p99))),
            ];
            series.extend(slo_lines(true));
            out.push_str(&plot_of("TTFE against the offered load", "ms", series)?);
        }
        let mut series = vec![
            ("duration p50".to_owned(), of(&|st| Some(st.duration_ms.p50))),
            ("duration p95".to_owned(), of(&|st| Some(st.duration_ms.p95))),
            ("duration p99".to_owned(), of(&|st| Some(st.duration_ms.p99))),
        ];
        series.extend(slo_lines(false));
        out.push_str(&plot_of("Duration against the offered load", "ms", series)?);
        let mut rates = vec![("offered".to_owned(), of(&|st| Some(st.offered))), ("completed".to_owned(), of(&|st| Some(st.achieved_rps)))];
        if steps.iter().any(|st| st.goodput_rps.is_some()) {
            rates.push((format!("good ({})", report.request_slo.as_deref().unwrap_or("request SLO")), of(&|st| st.goodput_rps)));
        }
        out.push_str(&plot_of("Requests per second against the offered load", "req/s", rates)?);
        out.push_str("</div>\n");
        if steps.len() < s.steps.len() {
            out.push_str(
                "<p class=\"note\">A red line marks the highest load that held and the lowest that failed. Steps where the \
                 driver was the bottleneck are in the table, not drawn: their figures are not the target's.</p>\n",
            );
        } else {
            out.push_str("<p class=\"note\">A red line marks the highest load that held and the lowest that failed.</p>\n");
        }
        let rows: Vec<Vec<String>> = s
            .steps
            .iter()
            .map(|st| {
                vec![
                    format!("{:.1}", st.offered),
                    format!("{:.1}", st.achieved_rps),
                    st.goodput_rps.map_or_else(|| "-".to_owned(), |g| format!("{g:.1}")),
                    st.ttfe_ms.map_or_else(|| "-".to_owned(), |t| format!("{:.2}", t.p95)),
                    format!("{:.2}", st.duration_ms.p50),
                    format!("{:.2}", st.duration_ms.p95),
                    format!("{:.2}", st.duration_ms.p99),
                    format!("{:.2}%", st.error_rate * 100.0),
                    st.target_cpu_cores.map_or_else(|| "not measured".to_owned(), |c| format!("{c:.2}")),
                    format!("{:.1}", st.concurrency),
                    st.runs.to_string(),
                    match st.verdict {
                        StepVerdict::Pass => "pass".to_owned(),
                        StepVerdict::PassWithinNoise => "pass (within noise)".to_owned(),
                        StepVerdict::Fail => "FAIL".to_owned(),
                        StepVerdict::FailWithinNoise => "FAIL (within noise)".to_owned(),
                        StepVerdict::DriverLimited => format!("driver-limited: {}", st.driver_reasons.join("; ")),
                    },
                ]
            })
            .collect();
        out.push_str(&table(
            "Steps, in the order measured",
            &[
                "offered",
                "completed/s",
                "good/s",
                "TTFE p95 ms",
                "duration p50 ms",
                "p95 ms",
                "p99 ms",
                "errors",
                "target CPU",
                "in flight",
                "runs",
                "verdict",
            ],
            &rows,
        ));
    }
    Ok(page("flowbench capacity", &out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::sample::sample_report;

    /// What each plot of a page draws: how many of each SVG element, and
    /// every text in it (caption, axis descriptions and ticks, legend).
    fn structure(page: &str) -> String {
        let mut out = String::new();
        for svg in page.split("<svg ").skip(1) {
            let svg = &svg[..svg.find("</svg>").expect("closed")];
            let count = |tag: &str| svg.matches(&format!("<{tag} ")).count();
            let texts: Vec<&str> = svg
                .split("<text ")
                .skip(1)
                .filter_map(|t| t.split_once('>').map(|(_, rest)| rest.split('<').next().unwrap_or("").trim()))
                .collect();
            let _ = writeln!(
                out,
                "rect {} line {} polyline {} text {}: {}",
                count("rect"),
                count("line"),
                count("polyline"),
                texts.len(),
                texts.join(" · ")
            );
        }
        out
    }

    #[test]
    fn one_report_is_one_self_contained_page_of_plots() {
        let page = render(&[("run.json".to_owned(), sample_report())]).unwrap();
        self_contained(&page);
        for heading in ["Event Throughput (events/s)", "TTFE - Time To First Event (ms)", "Connections", "Empty Workflow QPS"] {
            assert!(page.contains(heading), "{heading}");
        }
        insta::assert_snapshot!(structure(&page));
    }

    /// The part of `page` from scenario `name`'s section to the next.
    fn section<'a>(page: &'a str, name: &str) -> &'a str {
        let heading = format!("<h2>{name} <span");
        let from = page.find(&heading).unwrap_or_else(|| panic!("no section {name}"));
        let rest = &page[from..];
        &rest[..rest.find("</section>").expect("closed")]
    }

    /// The summary's card of scenario `name` (the first, with several runs).
    fn card_of<'a>(page: &'a str, name: &str) -> &'a str {
        let at = page.find(&format!("\">{name}</a> <span class=\"note\">")).unwrap_or_else(|| panic!("no card {name}"));
        let from = page[..at].rfind("<div class=\"card ").expect("a card");
        let rest = &page[from..];
        &rest[..rest.find("</div>\n").expect("closed")]
    }

    #[test]
    fn the_page_leads_with_a_verdict_per_scenario() {
        let page = render(&[("run.json".to_owned(), sample_report())]).unwrap();
        let summary = page.find("<h2 id=\"summary\">Summary</h2>").expect("a summary");
        let first_table = page.find("<caption>").expect("tables");
        assert!(summary < first_table, "the summary comes before any table");
        assert!(page.find("<div class=\"card ").unwrap() < first_table);
        // A table of contents links each scenario's section.
        let toc = &page[page.find("<nav class=\"toc\">").expect("contents")..page.find("</nav>").unwrap()];
        for name in ["empty", "llm"] {
            let id = toc.split(&format!("\">{name}</a>")).next().unwrap().rsplit("href=\"#").next().unwrap();
            assert!(page.contains(&format!("<section class=\"scenario\" id=\"{id}\">")), "{name}: {id}");
        }
        let empty = card_of(&page, "empty");
        assert!(
            empty.contains("FAIL")
                && empty.contains("<li>3 errors (http_5xx 3): 10.0% of measured requests, over no error budget recorded</li>"),
            "{empty}"
        );
        assert!(empty.contains("requests/s") && empty.contains("avg duration (ms)") && !empty.contains("events/s"), "{empty}");
        assert!(empty.contains("integrity: not checked"), "{empty}");
        assert!(!empty.contains("target CPU"), "the sample's target CPU is measured: {empty}");
        let llm = card_of(&page, "llm");
        assert!(llm.contains("FAIL") && llm.contains("<li>5 errors (http_5xx 3, integrity 2): 16.67% of measured requests"), "{llm}");
        assert!(llm.contains("integrity: 2 of 27 streams broke the grammar: missing_start 2, text_mismatch 1"), "{llm}");
        for figure in ["events/s", "TTFE p50 / p99 (ms)", "duration p50 / p99 (ms)", "max concurrent"] {
            assert!(llm.contains(figure), "{figure}: {llm}");
        }
        assert!(llm.contains("<td>6.00 / 9.01</td>"), "TTFE p50 / p99: {llm}");
        // Judged by the budget the run had, as its exit code was: within
        // 20%, both pass and say what failed; within 12%, llm fails.
        let mut budgeted = sample_report();
        budgeted.max_error_rate = Some(0.2);
        let page = render(&[("run.json".to_owned(), budgeted.clone())]).unwrap();
        let llm = card_of(&page, "llm");
        assert!(llm.contains("PASS") && llm.contains("within --max-error-rate 20.0%") && llm.contains("integrity: 2 of 27"), "{llm}");
        budgeted.max_error_rate = Some(0.12);
        let page = render(&[("run.json".to_owned(), budgeted)]).unwrap();
        assert!(card_of(&page, "empty").contains("PASS"));
        let llm = card_of(&page, "llm");
        assert!(llm.contains("FAIL") && llm.contains("over --max-error-rate 12.0%"), "{llm}");
    }

    #[test]
    fn a_clean_run_passes_and_says_what_it_did_not_measure() {
        let mut report = sample_report();
        for s in &mut report.scenarios {
            s.counts.ok += s.counts.errors;
            s.counts.errors = 0;
            s.counts.errors_by_class.clear();
            if let Some(i) = &mut s.integrity {
                i.violating = 0;
                i.by_class.clear();
            }
            // A remote target: its CPU is nobody's to read.
            s.target_cpu_us_per_request = None;
            s.target_cpu_us_per_event = None;
            s.health.target_cpu_cores = None;
            s.health.target_cpu_of = None;
        }
        report.scenarios[1].latency.0.remove(&Metric::Ttfe);
        let page = render(&[("run.json".to_owned(), report.clone())]).unwrap();
        let llm = card_of(&page, "llm");
        assert!(llm.starts_with("<div class=\"card pass\">") && llm.contains("PASS") && !llm.contains("FAIL"), "{llm}");
        assert!(llm.contains("integrity: 27 streams checked, none broke the grammar"), "{llm}");
        assert!(llm.contains("target CPU: not measured (remote)") && llm.contains("TTFE: no event received"), "{llm}");
        assert!(llm.contains("<td>— / —</td>") && !llm.contains("0.00 /"), "not measured is no zero: {llm}");
        // A crossed threshold, an invalid driver and an interruption each fail it, saying so.
        report.thresholds.push(crate::report::ThresholdResult {
            threshold: "ttfe_p95<1ms".into(),
            scenario: "llm".into(),
            value: None,
            passed: false,
        });
        report.scenarios[1].health.verdict = HealthVerdict::Invalid;
        report.scenarios[1].health.reasons = vec!["the driver used 1.9 of 2 cores".into()];
        report.interrupted = true;
        let page = render(&[("run.json".to_owned(), report)]).unwrap();
        let llm = card_of(&page, "llm");
        assert!(llm.starts_with("<div class=\"card fail\">"), "{llm}");
        for why in
            ["threshold ttfe_p95&lt;1ms crossed (not measured)", "driver health INVALID", "the driver used 1.9 of 2 cores", "interrupted"]
        {
            assert!(llm.contains(why), "{why}: {llm}");
        }
    }

    #[test]
    fn a_blocking_scenario_shows_only_what_it_measured() {
        let page = render(&[("run.json".to_owned(), sample_report())]).unwrap();
        let empty = section(&page, "empty");
        assert!(empty.contains("Empty Workflow QPS") && empty.contains("Requests per second"), "{empty}");
        for absent in ["Event Throughput", "TTFE", "Events per second", "Integrity", "Timeline"] {
            assert!(!empty.contains(absent), "{absent} in the blocking scenario's section");
        }
        let llm = section(&page, "llm");
        assert!(llm.contains("Event Throughput") && llm.contains("TTFE") && !llm.contains("Empty Workflow QPS"));
        // The plots in their groups, two to a row.
        for group in ["Latency distributions", "Over time", "Health"] {
            assert!(llm.contains(&format!("<h3>{group}</h3>\n<div class=\"plots\">")), "{group}");
        }
        assert!(page.contains(".plots{display:grid;grid-template-columns:repeat(2,"));
    }

    #[test]
    fn a_streaming_scenario_shows_its_integrity_and_its_waterfalls() {
        use crate::report::integrity::{OffendingStream, StreamEvent};
        let mut report = sample_report();
        let long = format!("{{\"event\":\"text_chunk\",\"data\":{{\"text\":\"<script>{}\"}}}}", "a".repeat(400));
        report.scenarios[1].integrity.as_mut().unwrap().examples = vec![OffendingStream {
            app: "chat".into(),
            violations: vec!["missing_start".into()],
            events: vec![
                StreamEvent { at_ms: 3.5, event: None, data: long },
                StreamEvent { at_ms: 4.0, event: Some("ping".into()), data: String::new() },
            ],
            truncated: false,
        }];
        let page = render(&[("run.json".to_owned(), report)]).unwrap();
        let llm = section(&page, "llm");
        assert!(llm.contains("<h3>Integrity</h3>") && llm.contains("2 of 27 streams checked broke"), "{llm}");
        for row in [
            "<td>missing_start</td><td>2</td><td class=\"words\">the first event was not workflow_started</td>",
            "<td>text_mismatch</td><td>1</td><td class=\"words\">the text chunks did not add up to the run's output</td>",
        ] {
            assert!(llm.contains(row), "{row}: {llm}");
        }
        // The kept stream, folded, its data escaped and cut.
        assert!(llm.contains("<details><summary>chat: missing_start (2 events)</summary>"), "{llm}");
        assert!(
            llm.contains("<td>3.5</td><td class=\"words\">text_chunk</td>") && llm.contains("<td>4.0</td><td class=\"words\">ping</td>"),
            "{llm}"
        );
        assert!(!llm.contains("<script") && llm.contains("&lt;script&gt;"));
        // 46 characters of JSON and tag come before the a's.
        assert!(llm.contains(&format!("{}…", "a".repeat(DATA_CHARS - 46))) && !llm.contains(&"a".repeat(DATA_CHARS - 45)), "cut");
        // The timeline: its steps, then the median and the slowest stream drawn.
        assert!(llm.contains("<h3>Timeline</h3>") && llm.contains("<td>node_time</td><td class=\"words\">LLM (llm)</td>"), "{llm}");
        let plots = structure(llm);
        for caption in ["The median stream: 92 ms", "The slowest stream: 137 ms"] {
            let drawn = plots.lines().find(|l| l.contains(caption)).unwrap_or_else(|| panic!("{caption}: {plots}"));
            for lane in ["run", "Start (start)", "LLM (llm)", "End (end)", "text (3 chunks)", "ms from the intended send"] {
                assert!(drawn.contains(&format!("· {lane}")), "{lane}: {drawn}");
            }
            // The background, then the run's and three nodes' bars.
            assert!(drawn.starts_with("rect 5 "), "{drawn}");
        }
    }

    #[test]
    fn a_stream_becomes_lanes_of_the_run_its_nodes_and_its_text() {
        use crate::report::integrity::TracePoint;
        let node = |t: &str| Some(NodeLabel { title: t.into(), node_type: "code".into() });
        let point = |at_ms: f64, event: &str, node: Option<NodeLabel>| TracePoint { at_ms, event: event.into(), node };
        let trace = StreamTrace {
            duration_ms: 50.0,
            points: vec![
                point(2.0, "workflow_started", None),
                point(3.0, "node_started", node("loop")),
                point(5.0, "node_finished", node("loop")),
                point(6.0, "node_started", node("loop")),
                point(9.0, "node_finished", node("loop")),
                point(10.0, "node_started", node("hang")),
                point(12.0, "message", None),
                point(13.0, "node_finished", node("ghost")),
                point(20.0, "agent_log", None),
                point(40.0, "workflow_finished", None),
            ],
            truncated: false,
        };
        let lane =
            |label: &str, bars: &[(f64, f64)], ticks: &[f64]| Lane { label: label.into(), bars: bars.to_vec(), ticks: ticks.to_vec() };
        let expected = [
            lane("run", &[(2.0, 40.0)], &[20.0]),
            lane("loop (code)", &[(3.0, 5.0), (6.0, 9.0)], &[]),
            lane("hang (code)", &[(10.0, 40.0)], &[]),
            lane("ghost (code)", &[], &[13.0]),
            lane("text (1 chunk)", &[], &[12.0]),
        ];
        assert_eq!(lanes_of(&trace), expected);
    }

    #[test]
    fn runs_are_named_by_label_commit_and_start_not_by_path() {
        let report = sample_report();
        assert_eq!(run_label("runs/x/run.json", &report), "sample @ 0123456, 2025-11-24 16:00 UTC");
        let mut unnamed = report.clone();
        unnamed.label = crate::report::RunLabel::default();
        unnamed.started_at_unix = 951_782_400 + 23 * 3600 + 59 * 60;
        assert_eq!(run_label("runs/x/base.json", &unnamed), "base, 2000-02-29 23:59 UTC");
        unnamed.started_at_unix = 0;
        assert_eq!(run_label("this run", &unnamed), "this run");
        assert_eq!(utc_minute(4_102_444_799), "2099-12-31 23:59");
        assert_eq!(utc_minute(0), "1970-01-01 00:00");
        let page = render(&[("runs/x/run.json".to_owned(), report)]).unwrap();
        let plots = structure(&page);
        assert!(plots.contains("sample @ 0123456, 2025-11-24 16:00 UTC"), "{plots}");
        assert!(page.contains("<tr><td>sample @ 0123456, 2025-11-24 16:00 UTC</td>"), "table rows");
        // The path is said once, in the list of runs.
        assert_eq!(page.matches("runs/x/run.json").count(), 1);
        assert!(page.contains("<li><b>sample @ 0123456, 2025-11-24 16:00 UTC</b> (runs/x/run.json)"));
    }

    #[test]
    fn two_reports_are_overlaid_with_their_changes() {
        let mut a = sample_report();
        a.label.name = Some("base".into());
        let mut b = a.clone();
        b.label = crate::report::RunLabel { name: Some("head".into()), commit: Some("fedcba9876".into()) };
        b.scenarios[0].qps.avg *= 1.1;
        let page = render(&[("a/base.json".to_owned(), a.clone()), ("b/head.json".to_owned(), b)]).unwrap();
        let (base, head) = ("base @ 0123456, 2025-11-24 16:00 UTC", "head @ fedcba9, 2025-11-24 16:00 UTC");
        // Every line plot has a line per run; a waterfall draws one stream of one run.
        let plots = structure(&page);
        for plot in plots.lines().filter(|p| !p.contains(" stream: ")) {
            assert!(plot.contains(base) && plot.contains(head), "a legend names both: {plot}");
        }
        assert!(plots.lines().filter(|p| p.contains(" stream: ")).count() == 4, "a median and a slowest stream per run: {plots}");
        // Runs warmed up alike share one shaded span, labelled once.
        assert!(plots.contains("· warm-up ·") && !plots.contains("warm-up ("), "{plots}");
        assert!(page.contains(&format!("{head} against {base}")) && page.contains("+10.0%"));
        assert!(page.contains("One pair of runs cannot tell"));
        // A card per scenario and run, each naming its run.
        assert_eq!(page.matches("<div class=\"card ").count(), 4);
        assert!(card_of(&page, "empty").contains(base));
        // The same run twice is told apart.
        let page = render(&[("x.json".to_owned(), a.clone()), ("x.json".to_owned(), a)]).unwrap();
        assert!(page.contains(&format!("{base} [x.json] #2 against {base} [x.json] #1")), "{page}");
    }

    /// A whole page, nothing to fetch, nothing to run: its links stay on it.
    fn self_contained(page: &str) {
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        assert!(!page.contains("<script") && !page.contains("src="), "nothing to fetch, nothing to run");
        assert!(page.split("href=\"").skip(1).all(|link| link.starts_with('#')), "links only within the page");
    }

    /// A capacity search's page: its answer and what ran out, latency
    /// against the offered load with the SLO's line and the knee marked,
    /// the rates with goodput, every step in the table.
    #[test]
    fn a_capacity_page_draws_the_curve_and_the_knee() {
        let report: schema::capacity::CapacityReport =
            serde_json::from_str(include_str!("../../../fixtures/reports/capacity-llm.json")).unwrap();
        let page = render_capacity(&report).unwrap();
        self_contained(&page);
        assert!(page.contains("Capacity: at least 3200.0 req/s"), "the answer first");
        assert!(page.contains("limited by driver"), "what ran out");
        let plots = structure(&page);
        assert_eq!(plots.lines().count(), 3, "TTFE, duration, rates: {plots}");
        assert!(plots.contains("SLO ttfe_p95&lt;100ms") || plots.contains("SLO ttfe_p95<100ms"), "the SLO's line: {plots}");
        assert!(plots.contains("TTFE p95") && plots.contains("good (ttfe&lt;100ms)"), "{plots}");
        let steps = report.scenarios[0].steps.len();
        assert_eq!(page.matches("<tr><td>").count(), steps, "a row per step");
        assert!(page.contains("driver-limited: driver overloaded"));
    }

    #[test]
    fn an_ab_page_draws_both_sides_slice_by_slice_and_the_change() {
        use crate::report::ab::{AbScenario, SCHEMA, SCHEMA_VERSION};
        let side = |qps: f64| {
            let mut s = crate::report::sample::sample_scenario("empty").slim();
            s.qps.avg = qps;
            s
        };
        let report = AbReport {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            scenario: AbScenario::Empty,
            mode: crate::load::driver::Mode::Blocking,
            a: "http://127.0.0.1:1".into(),
            b: "http://127.0.0.1:2".into(),
            users: 4,
            rate: None,
            slice_s: 2.0,
            settle_s: 0.3,
            interrupted: false,
            slices: vec![Slice { a: side(100.0), b: side(90.0) }, Slice { a: side(200.0), b: side(180.0) }],
        };
        let page = render_ab(&report).unwrap();
        self_contained(&page);
        assert!(page.contains("Avg QPS (requests/s) by slice") && page.contains("Health by slice"), "{page}");
        assert!(page.contains("<td>Avg QPS (requests/s)</td><td>150.000</td><td>135.000</td><td>-10.00%</td>"), "the summary row");
        let plots = structure(&page);
        assert!(plots.lines().all(|l| l.contains("slice") || l.contains("change")), "{plots}");
        assert!(plots.contains("B against A") && plots.contains("requests/s"), "{plots}");
    }

    #[test]
    fn a_soak_page_draws_memory_and_load_over_time_then_the_run() {
        use crate::report::soak::{SCHEMA, SCHEMA_VERSION};
        let samples = (1..=6u64)
            .map(|t| SoakSample {
                t_s: t as f64,
                rss_kib: 10_000 + 10 * t,
                live_runs: Some(4),
                sent: 100 * t,
                done: 98 * t,
                errors: 0,
                events: 1000 * t,
            })
            .collect();
        let report = SoakReport {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            streams: 4,
            warmup_s: 2.0,
            duration_s: 4.0,
            interrupted: false,
            samples,
            rss_start_kib: 10_030,
            rss_end_kib: 10_060,
            rss_growth_pct: 0.3,
            max_growth_pct: 5.0,
            live_runs_after: Some(0),
            pass: true,
            reasons: Vec::new(),
            scenario: sample_scenario_llm(),
        };
        let page = render_soak(&report).unwrap();
        self_contained(&page);
        let plots = structure(&page);
        for caption in [
            "Stack RSS",
            "Live runs on the server",
            "Events per second",
            "Streams ended and failed per second",
            "TTFE (first event) by percentile",
            "Health: CPU used",
        ] {
            assert!(plots.contains(caption), "{caption}: {plots}");
        }
        assert!(plots.lines().next().unwrap().contains("warm-up"), "the warm-up is shaded: {plots}");
        assert!(page.contains("<b>PASS</b>"));
    }

    fn sample_scenario_llm() -> ScenarioReport {
        crate::report::sample::sample_scenario("llm")
    }
}
