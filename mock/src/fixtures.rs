//! The workspace's fixture apps, which every stack serves.

use std::path::{Path, PathBuf};

/// A fixture app: the scenario's name, its API key and its workflow.
#[derive(Debug, Clone, Copy)]
pub struct FixtureApp {
    pub name: &'static str,
    pub api_key: &'static str,
    /// Relative to the workspace root.
    pub workflow: &'static str,
}

/// `empty`: Start→End; `llm`: Start→LLM→End.
pub const APPS: [FixtureApp; 2] = [
    FixtureApp { name: "empty", api_key: "app-flowbench-empty", workflow: "fixtures/workflows/start_end.yml" },
    FixtureApp { name: "llm", api_key: "app-flowbench-llm", workflow: "fixtures/workflows/start_llm_end.yml" },
];

/// The workspace root, where `fixtures/` lives.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("mock/ sits in the workspace").to_owned()
}
