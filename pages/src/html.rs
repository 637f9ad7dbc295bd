//! The kit of flowbench's HTML pages: a page shell with its style (`page`),
//! tables (`table`), line plots with shaded spans and marks (`Lines`),
//! interval plots (`interval_plot`) and waterfalls (`waterfall`), each an
//! inline SVG drawn with plotters: no script, no network. flowbench draws
//! a run's, `ab`'s and `soak`'s pages with it; xtask the gate's and
//! `history`'s.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write;

/// Plot size in pixels.
const PLOT: (u32, u32) = (720, 300);

/// `text` safe inside HTML.
pub fn esc(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// The colour of the `i`-th report's series, the same in every plot.
fn colour(i: usize) -> RGBAColor {
    Palette99::pick(i).to_rgba()
}

/// One plot of lines: `series` (a name and its points each) with, behind
/// them, `shaded` spans of x (the warm-up) and `marks` (change points).
pub struct Lines<'a> {
    pub caption: &'a str,
    pub x_desc: &'a str,
    pub y_desc: &'a str,
    pub series: Vec<(String, Vec<(f64, f64)>)>,
    pub x_labels: &'a dyn Fn(&f64) -> String,
    /// Ticks on whole numbers of x (nines, seconds, commits).
    pub whole_x: bool,
    /// Spans of x drawn grey behind the lines, each with its label.
    pub shaded: Vec<(f64, f64, String)>,
    /// Values of x marked with a vertical line.
    pub marks: Vec<f64>,
    /// The legend in the lower right, where the lines run high.
    pub legend_low: bool,
}

impl Lines<'_> {
    /// The plot as SVG text.
    pub fn svg(&self) -> anyhow::Result<String> {
        let mut svg = String::new();
        {
            let root = SVGBackend::with_string(&mut svg, PLOT).into_drawing_area();
            root.fill(&WHITE)?;
            let points = self.series.iter().flat_map(|(_, p)| p.iter()).filter(|p| p.0.is_finite() && p.1.is_finite());
            let spans = self.shaded.iter().flat_map(|(a, b, _)| [*a, *b]).chain(self.marks.iter().copied());
            let x_all = points.clone().map(|p| p.0).chain(spans);
            let (x_min, x_max) = x_all.fold((0.0f64, 1.0f64), |(lo, hi), x| (lo.min(x), hi.max(x)));
            // From zero, or below it where a series goes (changes in %).
            let (y_min, y_max) = points.fold((0.0f64, 0.0f64), |(lo, hi), p| (lo.min(p.1), hi.max(p.1)));
            let y_max = if y_max > 0.0 {
                y_max * 1.1
            } else if y_min < 0.0 {
                0.0
            } else {
                1.0
            };
            let y_min = y_min * 1.1;
            let (x_min, x_max) = if self.whole_x { (x_min.floor(), x_max.ceil()) } else { (x_min, x_max) };
            let x_ticks = if self.whole_x { ((x_max - x_min) as usize + 1).min(11) } else { 10 };
            let mut chart = ChartBuilder::on(&root)
                .caption(self.caption, ("sans-serif", 16))
                .margin(12)
                .margin_right(40)
                .x_label_area_size(40)
                .y_label_area_size(64)
                .build_cartesian_2d(x_min..x_max, y_min..y_max)?;
            chart.configure_mesh().x_desc(self.x_desc).y_desc(self.y_desc).x_labels(x_ticks).x_label_formatter(self.x_labels).draw()?;
            for (a, b, label) in &self.shaded {
                chart.draw_series(std::iter::once(Rectangle::new([(*a, y_min), (*b, y_max)], BLACK.mix(0.08).filled())))?;
                chart.draw_series(std::iter::once(Text::new(
                    label.clone(),
                    (*a, y_max * 0.08),
                    ("sans-serif", 12).into_font().color(&BLACK.mix(0.6)),
                )))?;
            }
            for x in &self.marks {
                chart.draw_series(std::iter::once(PathElement::new(vec![(*x, y_min), (*x, y_max)], RED.mix(0.7).stroke_width(1))))?;
            }
            for (i, (name, points)) in self.series.iter().enumerate() {
                let c = colour(i);
                chart
                    .draw_series(LineSeries::new(points.iter().copied().filter(|p| p.0.is_finite() && p.1.is_finite()), c.stroke_width(2)))?
                    .label(name.as_str())
                    .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
            }
            chart
                .configure_series_labels()
                .position(if self.legend_low { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperLeft })
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()?;
            root.present()?;
        }
        Ok(svg)
    }
}

/// A plot of intervals: per label, a point (`value`) and its whisker
/// (`low`..`high`), with horizontal lines at `levels` (floors, zero).
pub fn interval_plot(caption: &str, y_desc: &str, rows: &[(String, f64, f64, f64)], levels: &[f64]) -> anyhow::Result<String> {
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (PLOT.0, PLOT.1 + 60)).into_drawing_area();
        root.fill(&WHITE)?;
        let ys = rows.iter().flat_map(|r| [r.1, r.2, r.3]).chain(levels.iter().copied()).filter(|v| v.is_finite());
        let (lo, hi) = ys.fold((0.0f64, 0.0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let pad = ((hi - lo) * 0.1).max(0.5);
        let n = rows.len().max(1) as f64;
        let labels: Vec<String> = rows.iter().map(|r| r.0.clone()).collect();
        let label_of = move |x: &f64| labels.get(x.round() as usize).filter(|_| (x - x.round()).abs() < 1e-6).cloned().unwrap_or_default();
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(100)
            .y_label_area_size(64)
            .build_cartesian_2d(-0.5f64..n - 0.5, (lo - pad)..(hi + pad))?;
        chart
            .configure_mesh()
            .y_desc(y_desc)
            .x_labels(rows.len() * 2 + 1)
            .x_label_formatter(&label_of)
            .x_label_style(("sans-serif", 11).into_font().transform(FontTransform::Rotate90))
            .disable_x_mesh()
            .draw()?;
        for level in levels {
            chart
                .draw_series(std::iter::once(PathElement::new(vec![(-0.5, *level), (n - 0.5, *level)], BLACK.mix(0.4).stroke_width(1))))?;
        }
        for (i, (_, value, low, high)) in rows.iter().enumerate() {
            let x = i as f64;
            let c = colour(0);
            if low.is_finite() && high.is_finite() {
                chart.draw_series(std::iter::once(PathElement::new(vec![(x, *low), (x, *high)], c.stroke_width(2))))?;
                for end in [low, high] {
                    chart.draw_series(std::iter::once(PathElement::new(vec![(x - 0.15, *end), (x + 0.15, *end)], c.stroke_width(2))))?;
                }
            }
            if value.is_finite() {
                chart.draw_series(std::iter::once(Circle::new((x, *value), 4, c.filled())))?;
            }
        }
        root.present()?;
    }
    Ok(svg)
}

/// A whole page: `title`, then `body` (HTML). Plots in a `plots` block
/// sit two to a row (one on a narrow screen), cards in a `cards` block as
/// many as fit.
pub fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title>\n<style>\
         body{{font-family:sans-serif;margin:24px;color:#222;max-width:1500px}}table{{border-collapse:collapse;margin:8px 16px 16px 0;display:inline-table;vertical-align:top}}\
         caption{{font-weight:bold;text-align:left;padding:4px 0}}td,th{{border:1px solid #bbb;padding:3px 8px;text-align:right}}td:first-child{{text-align:left}}\
         .plots{{display:grid;grid-template-columns:repeat(2,minmax(0,1fr));gap:8px;align-items:start}}\
         .plots svg{{width:100%;height:auto;border:1px solid #ddd}}@media (max-width:900px){{.plots{{grid-template-columns:1fr}}}}\
         .note{{color:#555;font-size:90%}}nav.toc{{margin:8px 0 16px}}nav.toc a{{margin-right:12px}}\
         .cards{{display:grid;grid-template-columns:repeat(auto-fill,minmax(400px,1fr));gap:12px}}\
         .card{{border:1px solid #bbb;border-left:8px solid #888;padding:6px 12px}}.card.pass{{border-left-color:#2a7d3c}}.card.fail{{border-left-color:#c0392b}}\
         .card h3{{margin:4px 0}}.card table{{margin:6px 0}}.card ul{{margin:4px 0;padding-left:20px}}\
         .verdict{{font-weight:bold;padding:0 6px;color:#fff;background:#888}}.pass .verdict{{background:#2a7d3c}}.fail .verdict{{background:#c0392b}}\
         section.scenario{{border-top:2px solid #ccc;margin-top:28px}}details{{margin:4px 0}}summary{{cursor:pointer}}\
         td.words{{text-align:left}}td.data{{font-family:monospace;font-size:85%;text-align:left;white-space:pre-wrap;word-break:break-all;max-width:900px}}</style></head><body>\n<h1>{t}</h1>\n{body}</body></html>\n",
        t = esc(title)
    )
}

/// One row of a waterfall: its label, its spans of x (bars) and its
/// instants (thin ticks).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Lane {
    pub label: String,
    pub bars: Vec<(f64, f64)>,
    pub ticks: Vec<f64>,
}

/// Lane labels longer than this are cut, so the plot keeps its width.
const LANE_LABEL_CHARS: usize = 40;

/// A waterfall: `lanes` top to bottom on one axis of x from zero, each
/// labelled on the left, its bars in its own colour and its ticks as thin
/// dark lines across it.
pub fn waterfall(caption: &str, x_desc: &str, lanes: &[Lane]) -> anyhow::Result<String> {
    let labels: Vec<String> = lanes
        .iter()
        .map(|l| {
            if l.label.chars().count() > LANE_LABEL_CHARS {
                format!("{}…", l.label.chars().take(LANE_LABEL_CHARS - 1).collect::<String>())
            } else {
                l.label.clone()
            }
        })
        .collect();
    let n = lanes.len().max(1);
    // Wide enough for the longest label at about 7 px a character.
    let label_px = (labels.iter().map(|l| l.chars().count()).max().unwrap_or(0) as u32 * 7 + 16).max(64);
    let size = (PLOT.0.max(label_px + 480), 96 + 28 * n as u32);
    let xs = lanes.iter().flat_map(|l| l.bars.iter().flat_map(|b| [b.0, b.1]).chain(l.ticks.iter().copied()));
    let x_max = xs.filter(|x| x.is_finite()).fold(0.0f64, f64::max);
    let x_max = if x_max > 0.0 { x_max * 1.04 } else { 1.0 };
    // A span shorter than a pixel or two would not show.
    let min_width = x_max / f64::from(size.0 - label_px - 42) * 2.0;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, size).into_drawing_area();
        root.fill(&WHITE)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .margin_right(30)
            .x_label_area_size(40)
            .y_label_area_size(label_px)
            .build_cartesian_2d(0.0..x_max, -0.5..n as f64 - 0.5)?;
        chart.configure_mesh().x_desc(x_desc).x_labels(10).y_labels(0).disable_y_mesh().draw()?;
        // The first lane on top.
        let y_of = |i: usize| (n - 1 - i) as f64;
        for i in 1..n {
            let y = y_of(i) + 0.5;
            chart.draw_series(std::iter::once(PathElement::new(vec![(0.0, y), (x_max, y)], BLACK.mix(0.12).stroke_width(1))))?;
        }
        let label_style = ("sans-serif", 12).into_font().color(&BLACK).pos(Pos::new(HPos::Right, VPos::Center));
        for (i, (lane, label)) in lanes.iter().zip(&labels).enumerate() {
            let y = y_of(i);
            let c = colour(i);
            let bars = lane.bars.iter().filter(|(a, b)| a.is_finite() && b.is_finite()).map(|&(a, b)| {
                let (a, b) = (a.min(b), a.max(b));
                Rectangle::new([(a, y - 0.3), (b.max(a + min_width), y + 0.3)], c.filled())
            });
            chart.draw_series(bars)?;
            let ticks = lane
                .ticks
                .iter()
                .filter(|t| t.is_finite())
                .map(|&t| PathElement::new(vec![(t, y - 0.4), (t, y + 0.4)], BLACK.mix(0.8).stroke_width(1)));
            chart.draw_series(ticks)?;
            let (x, y) = chart.backend_coord(&(0.0, y));
            root.draw(&Text::new(label.clone(), (x - 8, y), label_style.clone()))?;
        }
        root.present()?;
    }
    Ok(svg)
}

/// An HTML table: `caption`, a header row, rows of cells (already HTML);
/// a cell of words is set left, one of figures right.
pub fn table(caption: &str, head: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = format!("<table><caption>{}</caption><tr>", esc(caption));
    for h in head {
        let _ = write!(out, "<th>{}</th>", esc(h));
    }
    out.push_str("</tr>");
    for row in rows {
        out.push_str("<tr>");
        for (i, c) in row.iter().enumerate() {
            // The first column is set left by the page's style.
            if i > 0 && c.starts_with(char::is_alphabetic) {
                let _ = write!(out, "<td class=\"words\">{c}</td>");
            } else {
                let _ = write!(out, "<td>{c}</td>");
            }
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A lane per row, its label on the left, a bar per span and a line per
    /// tick; labels are escaped and long ones cut.
    #[test]
    fn a_waterfall_draws_each_lane_its_bars_and_ticks() {
        let lanes = vec![
            Lane { label: "run".to_owned(), bars: vec![(1.0, 92.0)], ticks: Vec::new() },
            Lane { label: "LLM <llm>".to_owned(), bars: vec![(2.0, 91.0), (95.0, 95.0)], ticks: Vec::new() },
            Lane { label: "x".repeat(60), bars: Vec::new(), ticks: vec![6.0, 46.0, 90.0] },
        ];
        let svg = waterfall("the median stream", "ms from the intended send", &lanes).unwrap();
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        // The background, three bars (the zero-width one widened).
        assert_eq!(svg.matches("<rect ").count(), 4, "{svg}");
        assert!(svg.contains("LLM &lt;llm&gt;") && !svg.contains("<llm>"), "escaped");
        assert!(svg.contains(&format!("{}…", "x".repeat(LANE_LABEL_CHARS - 1))) && !svg.contains(&"x".repeat(LANE_LABEL_CHARS)));
        assert!(svg.contains("the median stream") && svg.contains("ms from the intended send"));
        let run = svg.find("\nrun\n").unwrap();
        let llm = svg.find("\nLLM &lt;llm&gt;\n").unwrap();
        assert!(run < llm, "lanes in their order");
        assert!(waterfall("nothing", "ms", &[]).unwrap().contains("nothing"), "no lane is still a plot");
    }

    /// Words are set left, figures right; the caption and heads escaped.
    #[test]
    fn a_table_sets_words_left_and_figures_right() {
        let rows = vec![vec!["a".to_owned(), "the first event".to_owned(), "2.00".to_owned(), "—".to_owned()]];
        let html = table("x < y", &["name", "what", "ms", "n"], &rows);
        assert!(html.starts_with("<table><caption>x &lt; y</caption>"), "{html}");
        assert!(html.contains("<tr><td>a</td><td class=\"words\">the first event</td><td>2.00</td><td>—</td></tr>"), "{html}");
    }
}
