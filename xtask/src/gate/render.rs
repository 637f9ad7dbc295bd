//! The gate's outputs: the summary line, the Markdown table (printed, and
//! written with `--markdown`), the JSON of every metric's figures (`--json`)
//! and Bencher Metric Format of the head's figures (`--bmf`).

use super::GateArgs;
use super::metrics::METRICS;
use super::rounds::Round;
use super::verdict::MetricVerdict;
use crate::verdict::ChangeVerdict;
use schema::bmf::{Bmf, Measure};
use std::fmt::Write;
use std::time::Duration;

/// The one line that answers the question, from the metrics that count.
pub(super) fn summary(regressed: &[&str], unresolved: &[&str]) -> String {
    if !regressed.is_empty() {
        format!("REGRESSED: {}", regressed.join(", "))
    } else if unresolved.is_empty() {
        "PASS: no metric regressed past its floor".to_owned()
    } else {
        format!("UNRESOLVED: no regression found, but too noisy to rule one out past the floor: {}", unresolved.join(", "))
    }
}

/// The gate's Markdown: title, summary, one row per metric, how it measured.
pub(super) fn markdown(label: &str, verdicts: &[MetricVerdict], n_rounds: usize, args: &GateArgs, summary: &str, wall: Duration) -> String {
    let mut out = format!("### Performance gate: {label}\n\n**{summary}**\n\n");
    out.push_str("| metric | base | head | change | 95% CI | MDE (90% power) | floor | verdict |\n|---|---|---|---|---|---|---|---|\n");
    for v in verdicts {
        let verdict = match (v.verdict, v.advisory) {
            (ChangeVerdict::Regressed, false) => "❌ **Regressed**".to_owned(),
            (ChangeVerdict::Improved, _) => "✅ Improved".to_owned(),
            (ChangeVerdict::Pass, _) => "✅ Pass".to_owned(),
            (ChangeVerdict::Unresolved, false) => "⚠️ Unresolved (too noisy)".to_owned(),
            (verdict, true) => format!("ℹ️ advisory: {verdict}"),
            // bench-compare's verdict; the gate's rule never gives it.
            (verdict @ ChangeVerdict::NonSignificant, false) => verdict.to_string(),
        };
        if v.change_pct.is_nan() {
            // Measured over different processes on the two sides (a base
            // whose stack ran the mock in its server's process).
            let _ = writeln!(out, "| {} | — | — | not compared | — | — | {}% | {verdict} |", v.metric, v.floor_pct);
            continue;
        }
        let _ = writeln!(
            out,
            "| {} | {:.3} | {:.3} | {:+.2}% | [{:+.2}%, {:+.2}%] | {} | {}% | {verdict} |",
            v.metric,
            v.base_mean,
            v.head_mean,
            v.change_pct,
            v.ci_low_pct,
            v.ci_high_pct,
            mde(v),
            v.floor_pct
        );
    }
    let _ = writeln!(
        out,
        "\nbase and head: geometric means over the rounds. {n_rounds} rounds, each with fresh base and head stacks driven at the same time on one core ({} slices of {} per phase: empty and llm saturating, TTFE at {}/s a side); {:.0} s in all.",
        args.load.slices,
        humantime::format_duration(args.load.slice),
        args.ttfe_rate,
        wall.as_secs_f64()
    );
    out
}

/// A metric's MDE, or a dash where it has none (the error rate).
fn mde(v: &MetricVerdict) -> String {
    if v.mde_pct.is_finite() { format!("{:.1}%", v.mde_pct) } else { "—".to_owned() }
}

/// `--markdown`, `--json`, `--bmf` and `--html`, those given.
pub(super) fn write_outputs(
    args: &GateArgs,
    verdicts: &[MetricVerdict],
    rounds: &[Round],
    markdown: &str,
    summary: &str,
) -> anyhow::Result<()> {
    if let Some(path) = &args.markdown {
        std::fs::write(path, markdown)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&serde_json::json!({"summary": summary, "metrics": verdicts}))?)?;
    }
    if let Some(path) = &args.bmf {
        bmf(verdicts).write(path)?;
    }
    // Last, and never the verdict's undoing: a page that cannot be drawn
    // or written is said, and the exit code stays the verdict's.
    if let Some(path) = &args.html {
        let written = html(verdicts, rounds, markdown, summary).and_then(|page| Ok(std::fs::write(path, page)?));
        if let Err(e) = written {
            eprintln!("gate: the HTML page {} was not written: {e:#}", path.display());
        }
    }
    Ok(())
}

/// The gate's page: the verdict, the table, each metric's change with its
/// interval, and each round's change per metric.
fn html(verdicts: &[MetricVerdict], rounds: &[Round], markdown: &str, summary: &str) -> anyhow::Result<String> {
    use pages::html::{Lines, esc, interval_plot, page, table};
    let mut body = format!("<p><b>{}</b></p>\n", esc(summary));
    let rows: Vec<Vec<String>> = verdicts
        .iter()
        .map(|v| {
            let verdict = if v.advisory { format!("advisory: {}", v.verdict) } else { v.verdict.to_string() };
            vec![
                esc(v.metric),
                format!("{:.3}", v.base_mean),
                format!("{:.3}", v.head_mean),
                format!("{:+.2}%", v.change_pct),
                format!("[{:+.2}%, {:+.2}%]", v.ci_low_pct, v.ci_high_pct),
                mde(v),
                format!("{}%", v.floor_pct),
                esc(&verdict),
            ]
        })
        .collect();
    body.push_str(&table(
        "Head against base",
        &["metric", "base", "head", "change", "95% CI", "MDE (90% power)", "floor", "verdict"],
        &rows,
    ));
    body.push_str("<div class=\"plots\">\n");
    let intervals: Vec<(String, f64, f64, f64)> = verdicts
        .iter()
        .filter(|v| v.change_pct.is_finite())
        .map(|v| (v.metric.to_owned(), v.change_pct, v.ci_low_pct, v.ci_high_pct))
        .collect();
    body.push_str(&interval_plot("Change per metric, with its 95% interval", "% change, head against base", &intervals, &[0.0])?);
    let by_round: Vec<(String, Vec<(f64, f64)>)> = METRICS
        .iter()
        .enumerate()
        .map(|(m, metric)| {
            let points = rounds.iter().enumerate().filter_map(|(r, round)| {
                let ratio = *round.log_ratios.get(m)?;
                ratio.is_finite().then(|| (r as f64 + 1.0, (ratio.exp() - 1.0) * 100.0))
            });
            (metric.name.to_owned(), points.collect::<Vec<_>>())
        })
        .filter(|(_, p)| !p.is_empty())
        .collect();
    let round_no = |x: &f64| format!("{x:.0}");
    let lines = Lines {
        caption: "Each round's change per metric",
        x_desc: "round",
        y_desc: "% change",
        series: by_round,
        x_labels: &round_no,
        whole_x: true,
        shaded: Vec::new(),
        marks: Vec::new(),
        legend_low: false,
    };
    body.push_str(&lines.svg()?);
    body.push_str("</div>\n");
    let how = markdown.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("");
    let _ = writeln!(body, "<p class=\"note\">{}</p>", esc(how));
    Ok(page("flowbench gate", &body))
}

/// `gate/<metric>`: the head's mean, with the interval applied to the
/// base's mean as bounds.
fn bmf(verdicts: &[MetricVerdict]) -> Bmf {
    let mut out = Bmf::default();
    for v in verdicts {
        let key = v.metric.replace(' ', "_").replace('/', "_per_").replace(['(', ')'], "");
        let measure = if v.metric == super::verdict::ERROR_RATE {
            // Percentage points: the interval is added, not applied as a ratio.
            Measure { value: v.head_mean, lower_value: Some(v.base_mean + v.ci_low_pct), upper_value: Some(v.base_mean + v.ci_high_pct) }
        } else {
            Measure::of_change(v.head_mean, v.base_mean, v.ci_low_pct, v.ci_high_pct)
        };
        out.insert(format!("gate/{key}"), "value", measure);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn verdict(metric: &'static str, verdict: ChangeVerdict, advisory: bool) -> MetricVerdict {
        MetricVerdict {
            metric,
            base_mean: 100.0,
            head_mean: 110.0,
            change_pct: 10.0,
            ci_low_pct: 0.0,
            ci_high_pct: 25.0,
            mde_pct: 3.0,
            round_sd_pct: 1.0,
            floor_pct: 2.0,
            advisory,
            verdict,
        }
    }

    #[test]
    fn table_rows_and_bmf_keys() {
        let verdicts = [
            verdict("empty CPU µs/request", ChangeVerdict::Regressed, false),
            verdict("TTFE p99", ChangeVerdict::Unresolved, true),
            verdict("TTFE p50", ChangeVerdict::Pass, false),
        ];
        let args = <crate::Cli as clap::Parser>::try_parse_from(["cargo xtask", "gate", "--base", "HEAD~1"]).unwrap();
        let crate::Task::Gate(args) = args.command else { panic!("gate") };
        let table =
            markdown("HEAD~1 → working tree", &verdicts, 8, &args, &summary(&["empty CPU µs/request"], &[]), Duration::from_secs(250));
        assert!(table.starts_with("### Performance gate: HEAD~1 → working tree\n\n**REGRESSED: empty CPU µs/request**\n\n"), "{table}");
        assert!(
            table.contains("| empty CPU µs/request | 100.000 | 110.000 | +10.00% | [+0.00%, +25.00%] | 3.0% | 2% | ❌ **Regressed** |"),
            "{table}"
        );
        assert!(table.contains("| ℹ️ advisory: Unresolved |") && table.contains("| ✅ Pass |"), "{table}");
        assert!(table.contains("(4 slices of 2s per phase: empty and llm saturating, TTFE at 400/s a side); 250 s in all."), "{table}");
        let json = serde_json::to_value(bmf(&verdicts)).unwrap();
        assert_eq!(
            json["gate/empty_CPU_µs_per_request"]["value"],
            serde_json::json!({"value": 110.0, "lower_value": 100.0, "upper_value": 125.0})
        );
        assert!(json.get("gate/TTFE_p99").is_some());
        assert_eq!(summary(&[], &[]), "PASS: no metric regressed past its floor");
        assert_eq!(summary(&[], &["TTFE p50"]), "UNRESOLVED: no regression found, but too noisy to rule one out past the floor: TTFE p50");
    }

    #[test]
    fn the_page_draws_each_metric_with_its_interval_and_each_round() {
        let verdicts = [verdict("empty CPU µs/request", ChangeVerdict::Regressed, false), verdict("TTFE p50", ChangeVerdict::Pass, false)];
        let rounds: Vec<Round> = (0..3)
            .map(|r| Round {
                log_ratios: METRICS.iter().enumerate().map(|(m, _)| 0.01 * (m as f64 - 3.0) + 0.002 * f64::from(r)).collect(),
                base: vec![1.0; METRICS.len()],
                head: vec![1.0; METRICS.len()],
                base_errors: Default::default(),
                head_errors: Default::default(),
                disturbed: None,
            })
            .collect();
        let page = html(&verdicts, &rounds, "| table |\n\nhow it measured.\n", "REGRESSED: empty CPU µs/request").unwrap();
        assert!(page.starts_with("<!doctype html>") && !page.contains("<script"));
        assert!(page.contains("<p><b>REGRESSED: empty CPU µs/request</b></p>") && page.contains("how it measured."));
        assert!(page.contains("<td>+10.00%</td><td>[+0.00%, +25.00%]</td>"), "{page}");
        assert_eq!(page.matches("<svg ").count(), 2);
        // Every metric's line, changes below zero included.
        for m in &METRICS {
            assert!(page.contains(&pages::html::esc(m.name)), "{}", m.name);
        }
        let caption = page.split("<text").find(|t| t.contains("Each round")).expect("the rounds' plot has its caption");
        assert!(caption.contains("change per metric"), "{caption}");
    }
}
