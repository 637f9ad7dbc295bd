//! One self-contained HTML page for one or more reports (`--html FILE` on
//! `run` and `merge`; `flowbench report A.json [B.json …] --html`): no
//! script, no network, every plot an inline SVG drawn with plotters. Per
//! scenario: the seed's four tables (a row per report), the latency
//! percentile distributions (HDR-style, the percentile axis logarithmic),
//! the measured phase second by second, the health figures, and with two
//! reports or more each later one's changes against the first.

use super::compare::compare;
use super::{Report, ScenarioReport};
use crate::load::metrics::{Metric, decode_histogram};
use plotters::prelude::*;
use std::fmt::Write;

/// Plot size in pixels.
const PLOT: (u32, u32) = (720, 300);
/// Percentile axis: x = −log10(1 − q), so 1 is p90, 2 p99, 3 p99.9.
const NINES: f64 = 4.0;
const STEP: f64 = 0.02;

fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The colour of the `i`-th report's series, the same in every plot.
fn colour(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// A line plot of `series` (a name and its points each) as SVG text.
fn line_plot(
    caption: &str,
    x_desc: &str,
    y_desc: &str,
    series: &[(String, Vec<(f64, f64)>)],
    x_labels: &dyn Fn(&f64) -> String,
    whole_x: bool,
) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, PLOT).into_drawing_area();
        root.fill(&WHITE)?;
        let points = series.iter().flat_map(|(_, p)| p.iter());
        let (x_max, y_max) = points.fold((1.0f64, 0.0f64), |(x, y), &(px, py)| (x.max(px), y.max(py)));
        let y_max = if y_max > 0.0 { y_max * 1.1 } else { 1.0 };
        // Ticks on whole numbers of the x axis (nines, seconds), ten at most.
        let x_max = if whole_x { x_max.ceil() } else { x_max };
        let x_ticks = if whole_x { (x_max as usize + 1).min(11) } else { 10 };
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(64)
            .build_cartesian_2d(0f64..x_max, 0f64..y_max)?;
        chart.configure_mesh().x_desc(x_desc).y_desc(y_desc).x_labels(x_ticks).x_label_formatter(x_labels).draw()?;
        for (i, (name, points)) in series.iter().enumerate() {
            let c = colour(i);
            chart
                .draw_series(LineSeries::new(points.iter().copied(), c.stroke_width(2)))?
                .label(name.as_str())
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()?;
        root.present()?;
    }
    Ok(svg)
}

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

fn second_series(values: &[f64]) -> Vec<(f64, f64)> {
    values.iter().enumerate().map(|(i, &v)| (i as f64 + 1.0, v)).collect()
}

fn seed_tables(out: &mut String, rows: &[(&str, &ScenarioReport)]) {
    let table = |out: &mut String, title: &str, head: &[&str], cells: &dyn Fn(&ScenarioReport) -> Vec<String>| {
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
    table(out, "Event Throughput (events/s)", &["Max", "Avg", "Min"], &|s| {
        vec![f(s.event_throughput.max), f(s.event_throughput.avg), f(s.event_throughput.min)]
    });
    table(out, "TTFE - Time To First Event (ms)", &["Avg", "P50", "P95", "P99"], &|s| {
        let t = s.latency(Metric::Ttfe);
        vec![f(t.avg), f(t.p50), f(t.p95), f(t.p99)]
    });
    table(out, "Connections", &["Max Concurrent", "Avg Active"], &|s| {
        vec![s.connections.max_concurrent.to_string(), f(s.connections.avg_active)]
    });
    table(out, "Empty Workflow QPS", &["Max QPS", "Avg QPS", "Avg Duration (ms)"], &|s| {
        vec![f(s.qps.max), f(s.qps.avg), f(s.avg_duration_ms)]
    });
    table(out, "Health", &["verdict", "driver CPU (cores)", "target CPU (cores)", "others (cores)", "requests sent", "errors"], &|s| {
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

/// The page for `reports` (a name each, shown in legends and tables).
pub fn render(reports: &[(String, Report)]) -> anyhow::Result<String> {
    let mut out = String::from(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>flowbench report</title>\n<style>\
         body{font-family:sans-serif;margin:24px;color:#222;max-width:1500px}table{border-collapse:collapse;margin:8px 16px 16px 0;display:inline-table;vertical-align:top}\
         caption{font-weight:bold;text-align:left;padding:4px 0}td,th{border:1px solid #bbb;padding:3px 8px;text-align:right}td:first-child{text-align:left}\
         .plots svg{margin:4px;border:1px solid #ddd}.note{color:#555;font-size:90%}</style></head><body>\n<h1>flowbench report</h1>\n<ul>\n",
    );
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
        out.push_str("<div class=\"plots\">\n");
        for metric in [Metric::Ttfe, Metric::Ttfb, Metric::Duration, Metric::EventGap] {
            let series: Vec<(String, Vec<(f64, f64)>)> =
                rows.iter().filter_map(|(n, s)| percentile_curve(s, metric).map(|c| ((*n).to_owned(), c))).collect();
            if series.is_empty() {
                continue;
            }
            out.push_str(&line_plot(&format!("{} by percentile", metric.label()), "percentile", "ms", &series, &percentile_label, true)?);
        }
        let per_second: [(&str, &str, Series); 4] = [
            ("Events per second", "events/s", |s| s.per_second.events.iter().map(|&v| v as f64).collect()),
            ("Requests per second", "requests/s", |s| s.per_second.ok.iter().map(|&v| v as f64).collect()),
            ("Errors per second", "errors/s", |s| s.per_second.errors.iter().map(|&v| v as f64).collect()),
            ("Active connections", "in flight", |s| s.per_second.connections.clone()),
        ];
        for (caption, unit, values) in per_second {
            let series: Vec<(String, Vec<(f64, f64)>)> =
                rows.iter().map(|(n, s)| ((*n).to_owned(), second_series(&values(s)))).filter(|(_, points)| !points.is_empty()).collect();
            // A blocking run sends no events: no plot of zeros for it.
            let all_zero = series.iter().all(|(_, p)| p.iter().all(|&(_, y)| y == 0.0));
            if series.is_empty() || (caption == "Events per second" && all_zero) {
                continue;
            }
            out.push_str(&line_plot(caption, "second of the measured phase", unit, &series, &|x| format!("{x:.0}"), true)?);
        }
        out.push_str(
            "</div>\n<p class=\"note\">Seconds are the measured phase's (the warm-up is not kept second by second). \
             Health is a figure per run: the reports do not keep it second by second.</p>\n",
        );
        if let [(a_name, a), rest @ ..] = reports {
            for (b_name, b) in rest {
                let c = compare(a_name, a, b_name, b);
                let Some(sc) = c.scenarios.iter().find(|s| s.name == scenario) else { continue };
                for w in &c.warnings {
                    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(w));
                }
                let _ = write!(
                    out,
                    "<table><caption>{} against {}</caption><tr><th>figure</th><th>{}</th><th>{}</th><th>change</th></tr>",
                    esc(b_name),
                    esc(a_name),
                    esc(a_name),
                    esc(b_name)
                );
                for r in &sc.rows {
                    let cell = |v: Option<f64>| v.map_or("—".to_owned(), |v| format!("{v:.3}"));
                    let change = r.change_pct().map_or("—".to_owned(), |p| format!("{p:+.1}%"));
                    let _ =
                        write!(out, "<tr><td>{}</td><td>{}</td><td>{}</td><td>{change}</td></tr>", esc(&r.figure), cell(r.a), cell(r.b));
                }
                out.push_str("</table>\n");
                for w in &sc.warnings {
                    let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(w));
                }
            }
        }
    }
    if reports.len() > 1 {
        let _ = writeln!(out, "<p class=\"note\">{}</p>", esc(super::compare::CAVEAT));
    }
    out.push_str("</body></html>\n");
    Ok(out)
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
}
