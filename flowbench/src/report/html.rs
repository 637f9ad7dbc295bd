//! One self-contained HTML page for one or more reports (`--html FILE` on
//! `run` and `merge`; `flowbench report A.json [B.json …] --html`): no
//! script, no network, every plot an inline SVG drawn with plotters. Per
//! scenario: the seed's four tables (a row per report), the latency
//! percentile distributions (HDR-style, the percentile axis logarithmic),
//! the measured phase second by second, the health figures, and with two
//! reports or more each later one's changes against the first.

use super::ab::{AbReport, Slice};
use super::compare::compare;
use super::figures::{AB, SEED_TABLES, Unit};
use super::soak::{SoakReport, SoakSample};
use super::{Report, ScenarioReport};
use crate::load::health::HealthSecond;
use crate::load::metrics::{Metric, decode_histogram};
use pages::html::{Lines, esc, interval_plot, page, table};
use std::fmt::Write;

/// Percentile axis: x = −log10(1 − q), so 1 is p90, 2 p99, 3 p99.9.
const NINES: f64 = 4.0;
const STEP: f64 = 0.02;

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

/// The seed's four tables and the health table, a row per report.
pub fn seed_tables(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    let table_of =
        |out: &mut String, title: &str, head: &[&str], rows: &[(&str, &ScenarioReport)], cells: &dyn Fn(&ScenarioReport) -> Vec<String>| {
            let _ = write!(out, "<table><caption>{}</caption><tr><th>report</th>", esc(title));
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
    // The seed's tables, as the text report has them (`figures::SEED_TABLES`);
    // a table shows only the scenarios it is for (streaming or not).
    for seed in &SEED_TABLES {
        if !rows.iter().any(|(_, s)| s.streams() == seed.streams) {
            continue;
        }
        let head: Vec<&str> = seed.columns.iter().map(|(h, _)| *h).collect();
        let shown: Vec<(&str, &ScenarioReport)> = rows.iter().filter(|(_, s)| s.streams() == seed.streams).copied().collect();
        table_of(out, seed.title, &head, &shown, &|s| {
            seed.columns
                .iter()
                .map(|(_, figure)| match figure.read(s) {
                    Some(v) if figure.unit() == Unit::Count && v.fract() == 0.0 => format!("{v:.0}"),
                    Some(v) => f(v),
                    None => "—".to_owned(),
                })
                .collect()
        });
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

/// The plots of one scenario as each report measured it: percentile
/// distributions, then second by second from the load's start (the warm-up
/// shaded), then the health figures over the same seconds.
pub fn scenario_plots(rows: &[(&str, &ScenarioReport)]) -> anyhow::Result<String> {
    let mut out = String::from("<div class=\"plots\">\n");
    for metric in [Metric::Ttfe, Metric::Ttfb, Metric::Duration, Metric::EventGap] {
        let series: Vec<(String, Vec<(f64, f64)>)> =
            rows.iter().filter_map(|(n, s)| percentile_curve(s, metric).map(|c| ((*n).to_owned(), c))).collect();
        if series.is_empty() {
            continue;
        }
        let caption = format!("{} by percentile", metric.label());
        out.push_str(&lines(&caption, "percentile", "ms", series, &percentile_label, Vec::new()).svg()?);
    }
    let warmups: Vec<(f64, f64, String)> = rows
        .iter()
        .filter(|(_, s)| s.load.warmup_s > 0.0)
        .map(|(n, s)| (0.0, s.load.warmup_s, if rows.len() > 1 { format!("warm-up ({n})") } else { "warm-up".to_owned() }))
        .collect();
    let per_second: [(&str, &str, Series, Series); 4] = [
        ("Events per second", "events/s", |s| counts(&s.per_second.events), |s| counts(&s.per_second.warmup.events)),
        ("Requests per second", "requests/s", |s| counts(&s.per_second.ok), |s| counts(&s.per_second.warmup.ok)),
        ("Errors per second", "errors/s", |s| counts(&s.per_second.errors), |s| counts(&s.per_second.warmup.errors)),
        ("Active connections", "in flight", |s| s.per_second.connections.clone(), |_| Vec::new()),
    ];
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
        out.push_str(&lines(caption, "seconds since the load started", unit, series, &|x| format!("{x:.0}"), warmups.clone()).svg()?);
    }
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
    if !series.is_empty() {
        out.push_str(&lines("Health: CPU used", "seconds since the load started", "cores", series, &|x| format!("{x:.0}"), warmups).svg()?);
    }
    out.push_str(
        "</div>\n<p class=\"note\">Seconds count from the load's start; the warm-up, shaded, is in no figure. \
         A request sent in the warm-up and ended after it is in neither the warm-up's requests nor the measured phase's, \
         so long streams leave a dip there. Active connections are kept for the measured phase only. Health is each second's CPU in cores: \
         the driver, the target (where it is a local process or cgroup), every other process, and the time the host held back this machine's CPUs (steal).</p>\n",
    );
    Ok(out)
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

/// The page for `reports` (a name each, shown in legends and tables).
pub fn render(reports: &[(String, Report)]) -> anyhow::Result<String> {
    let mut out = String::from("<ul>\n");
    for (name, r) in reports {
        let _ = writeln!(
            out,
            "<li><b>{}</b>: {} ({}), {} cores of {}, flowbench {}{}</li>",
            esc(name),
            esc(&r.target.url),
            if r.target.embedded { "embedded stack" } else { "target" },
            r.machine.cores,
            esc(&r.machine.cpu_model),
            esc(&r.flowbench_version),
            if r.interrupted { ", interrupted" } else { "" }
        );
    }
    out.push_str("</ul>\n");
    let mut names: Vec<&str> = Vec::new();
    for (_, r) in reports {
        for s in &r.scenarios {
            if !names.contains(&s.name.as_str()) {
                names.push(&s.name);
            }
        }
    }
    for scenario in names {
        let rows: Vec<(&str, &ScenarioReport)> =
            reports.iter().filter_map(|(n, r)| r.scenarios.iter().find(|s| s.name == scenario).map(|s| (n.as_str(), s))).collect();
        let _ = writeln!(out, "<h2>{}</h2>", esc(scenario));
        seed_tables(&mut out, &rows);
        out.push_str(&scenario_plots(&rows)?);
        if let [(a_name, a), rest @ ..] = reports {
            for (b_name, b) in rest {
                let c = compare(a_name, a, b_name, b);
                let Some(sc) = c.scenarios.iter().find(|s| s.name == scenario) else { continue };
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
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "nothing to fetch, nothing to run");
        for heading in ["Event Throughput (events/s)", "TTFE - Time To First Event (ms)", "Connections", "Empty Workflow QPS"] {
            assert!(page.contains(heading), "{heading}");
        }
        insta::assert_snapshot!(structure(&page));
    }

    #[test]
    fn two_reports_are_overlaid_with_their_changes() {
        let a = sample_report();
        let mut b = a.clone();
        b.scenarios[0].qps.avg *= 1.1;
        let page = render(&[("base.json".to_owned(), a), ("head.json".to_owned(), b)]).unwrap();
        // Every plot has a line per report.
        for svg in page.split("<svg").skip(1) {
            assert!(svg.contains("base.json") && svg.contains("head.json"), "a legend names both");
        }
        assert!(page.contains("head.json against base.json") && page.contains("+10.0%"));
        assert!(page.contains("One pair of runs cannot tell"));
    }

    fn self_contained(page: &str) {
        assert!(page.starts_with("<!doctype html>") && page.ends_with("</html>\n"));
        assert!(!page.contains("<script") && !page.contains("src=") && !page.contains("href="), "nothing to fetch, nothing to run");
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
