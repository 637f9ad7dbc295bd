//! Every workflow fixture loads; every bad DSL gives an error naming the
//! file, the node and the problem.

use mock::workspace_root;
use server::workflow::dsl;
use std::path::Path;

#[test]
fn every_workflow_fixture_loads() {
    let mut n = 0;
    for dir in ["fixtures/workflows", "fixtures/workflows/dify"] {
        for entry in std::fs::read_dir(workspace_root().join(dir)).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "yml") {
                dsl::load_file(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
    }
    assert_eq!(n, 5);
}

#[test]
fn every_bad_dsl_fixture_names_its_problem() {
    // Each file's first line is `# expect: <text the error must contain>`.
    let mut n = 0;
    for entry in std::fs::read_dir(workspace_root().join("fixtures/bad_dsl")).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let expect =
            text.lines().next().and_then(|l| l.strip_prefix("# expect: ")).unwrap_or_else(|| panic!("{}: no expect line", path.display()));
        let error = dsl::load_file(&path).expect_err(&path.display().to_string()).to_string();
        assert!(error.contains(&path.display().to_string()), "{error}");
        assert!(error.contains(expect), "{}: {error:?} does not contain {expect:?}", path.display());
        n += 1;
    }
    assert!(n >= 8, "only {n} bad DSL fixtures");
}

#[track_caller]
fn check(yaml: &str, expect: &str) {
    let error = dsl::parse(Path::new("inline.yml"), yaml).unwrap_err().to_string();
    assert_eq!(error, expect);
}

const HEAD: &str = "app: {mode: workflow, name: t}\nworkflow:\n  graph:\n";

#[test]
fn inline_errors() {
    check(&format!("{HEAD}    nodes: []\n"), "inline.yml: no start node; a workflow needs exactly one");
    check(
        "app: {mode: chat, name: t}\nworkflow: {graph: {nodes: []}}\n",
        "inline.yml: app mode is \"chat\"; only \"workflow\" apps are supported",
    );
    check(
        &format!(
            "{HEAD}    nodes:\n    - {{id: s, data: {{type: start, title: S}}}}\n    - {{id: e, data: {{type: end, title: E, outputs: [{{variable: a, value_selector: [s]}}]}}}}\n    edges: [{{source: s, target: e}}]\n"
        ),
        "inline.yml: node e: output \"a\": value_selector [\"s\"] must be [node_id, variable]",
    );
}
