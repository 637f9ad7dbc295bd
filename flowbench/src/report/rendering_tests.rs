//! Tests of the renderings the `schema` crate holds (the text and Markdown
//! report, BMF, `ab`'s summary), on reports from fixed samples: the text
//! snapshots are byte for byte what a run prints.

mod ab {
    use crate::load::driver::Mode;
    use crate::report::figures::{Figure, Scalar};
    use schema::ab::*;

    fn slice(a: f64, b: f64) -> Slice {
        let side = |qps: f64| {
            let mut report = crate::report::sample::sample_scenario("empty");
            report.qps.avg = qps;
            report
        };
        Slice { a: side(a), b: side(b) }
    }

    #[test]
    fn ratios_are_per_slice_and_skip_missing_figures() {
        let report = AbReport {
            schema: SCHEMA.to_owned(),
            schema_version: SCHEMA_VERSION,
            scenario: AbScenario::Empty,
            mode: Mode::Blocking,
            a: "a".into(),
            b: "b".into(),
            users: 1,
            rate: None,
            slice_s: 1.0,
            settle_s: 0.0,
            interrupted: false,
            slices: vec![slice(100.0, 90.0), slice(200.0, 180.0), slice(0.0, 10.0)],
        };
        let ratios = report.log_ratios(Figure::Scalar(Scalar::RequestsPerS));
        assert_eq!(ratios.len(), 2);
        assert!(ratios.iter().all(|r| (r - 0.9f64.ln()).abs() < 1e-12));
        assert!(report.to_text().contains("-10.00%"), "{}", report.to_text());
    }
}

mod bmf {
    use schema::bmf::*;

    /// A run's BMF holds each scenario's seed figures, read off its report.
    #[test]
    fn a_run_report_becomes_bmf() {
        let report = crate::report::sample::sample_report();
        let bmf = serde_json::to_value(report.to_bmf()).unwrap();
        for s in &report.scenarios {
            let b = &bmf[&s.name];
            assert_eq!(b["requests_per_s"]["value"], s.qps.avg, "{b}");
            assert_eq!(b["requests_per_s"]["lower_value"], s.qps.min);
            assert_eq!(b["events_per_s"]["upper_value"], s.event_throughput.max);
            let ttfe = s.latency.get(crate::load::metrics::Metric::Ttfe);
            if ttfe.n > 0 {
                assert_eq!(b["ttfe_p99_ms"]["value"], ttfe.p99);
                assert!(b["ttfe_p99_ms"].get("lower_value").is_none());
            }
            assert_eq!(b["errors"]["value"], s.counts.errors as f64);
            assert_eq!(b["max_concurrent"]["value"], s.connections.max_concurrent as f64);
        }
    }

    #[test]
    fn writes_bencher_metric_format() {
        let mut bmf = Bmf::default();
        bmf.insert("b/second".into(), "latency", Measure::of_change(110.0, 100.0, 0.0, 25.0));
        bmf.insert("a/first".into(), "value", Measure::of_change(1.0, 2.0, -50.0, 50.0));
        let json = serde_json::to_value(&bmf).unwrap();
        assert_eq!(json["b/second"]["latency"], serde_json::json!({"value": 110.0, "lower_value": 100.0, "upper_value": 125.0}));
        assert_eq!(json["a/first"]["value"]["lower_value"], 1.0);
        // A benchmark holds several measures; a value may have no bounds.
        bmf.insert("a/first".into(), "p99", Measure::of(7.0));
        let json = serde_json::to_value(&bmf).unwrap();
        assert_eq!(json["a/first"]["p99"], serde_json::json!({"value": 7.0}));
        assert_eq!(json["a/first"]["value"]["value"], 1.0);
        // Insertion order, not sorted; fields in BMF's order.
        let text = serde_json::to_string(&json).unwrap();
        assert!(text.find("b/second").unwrap() < text.find("a/first").unwrap(), "{text}");
        assert!(text.find("\"value\":110").unwrap() < text.find("lower_value").unwrap(), "{text}");
    }
}

mod text {
    use schema::text::*;

    #[test]
    fn the_text_report_keeps_its_shape() {
        insta::assert_snapshot!("text", crate::report::sample::sample_report().to_text());
    }

    #[test]
    fn the_markdown_report_keeps_its_shape() {
        insta::assert_snapshot!("markdown", crate::report::sample::sample_report().to_markdown());
    }

    /// README.md's sample output has the report's shape: its headings,
    /// table headers and row labels, in the renderer's order.
    #[test]
    fn the_readme_sample_has_the_reports_shape() {
        let readme = include_str!("../../../README.md");
        let block = readme.split("<!-- sample:begin -->").nth(1).and_then(|rest| rest.split("<!-- sample:end -->").next());
        let block = block.expect("README.md has a sample block");
        let shape = |line: &str| -> Option<String> {
            let line = line.trim();
            // A table's header and separator, a title, or a row's label.
            if line.starts_with("| ") && line.chars().nth(2).is_some_and(|c| c.is_ascii_digit()) {
                return None;
            }
            if line.starts_with("| failed") {
                return None;
            }
            if line.starts_with("| ") {
                return Some(line.split(" | ").next().map_or(line, |label| if line.contains("| Avg |") { line } else { label }).to_owned());
            }
            let head = line.split([':', '(']).next().unwrap_or("").trim();
            // Only when requests failed.
            if matches!(head, "Errors by class" | "Latency" | "Back-off") {
                return None;
            }
            (!head.is_empty() && !head.chars().any(|c| c.is_ascii_digit())).then(|| head.to_owned())
        };
        let expected: Vec<String> = crate::report::sample::sample_report().to_text().lines().filter_map(shape).collect();
        let got: Vec<String> = block.lines().filter(|l| !l.starts_with("```")).filter_map(shape).collect();
        let mut rest = got.iter();
        for line in &expected {
            assert!(rest.any(|g| g == line), "README's sample lacks {line:?} (in order); regenerate it with `cargo xtask bench --quick`");
        }
    }

    #[test]
    fn a_target_whose_cpu_cannot_be_read_says_so_and_gives_no_number() {
        let mut report = crate::report::sample::sample_report();
        for scenario in &mut report.scenarios {
            scenario.health.target_cpu_cores = None;
            scenario.health.target_cpu_of = Some("not measured (remote)".to_owned());
            scenario.target_cpu_us_per_request = None;
            scenario.target_cpu_us_per_event = None;
        }
        let text = report.to_text();
        assert!(text.contains("Target CPU: not measured (remote)"), "{text}");
        assert!(text.contains("target not measured (remote)"), "{text}");
        assert!(!text.contains("µs per request"), "{text}");
    }

    #[test]
    fn numbers_print_like_the_seed() {
        assert_eq!(num(22.0), "22.0");
        assert_eq!(num(46.666), "46.67");
        assert_eq!(num(98.3), "98.3");
    }
}
