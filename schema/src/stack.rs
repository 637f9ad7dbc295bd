//! The one JSON line `flowbench up` prints: the stack's URLs, its apps'
//! keys and its server processes.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// What `flowbench up` prints, and what tests use to reach the stack.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackInfo {
    pub server_url: String,
    pub mock_llm_url: String,
    pub apps: BTreeMap<String, StackApp>,
    /// The server processes (`flowbench up --replicas N`); empty when the
    /// server runs in the `up` process itself.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub server_pids: Vec<u32>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StackApp {
    pub api_key: String,
    pub workflow: String,
}

impl StackInfo {
    /// `flowbench up`'s line.
    pub fn parse(line: &str) -> Result<Self, StackLineError> {
        serde_json::from_str(line.trim_end()).map_err(|e| StackLineError(format!("flowbench up printed {line:?}, not its stack line: {e}")))
    }

    /// The API key of fixture app `app` (`empty` or `llm`).
    pub fn api_key(&self, app: &str) -> Result<&str, StackLineError> {
        self.apps.get(app).map(|a| a.api_key.as_str()).ok_or_else(|| StackLineError(format!("the stack has no app {app:?}")))
    }
}

/// A stack line that does not read, or names no such app.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackLineError(pub String);

impl std::fmt::Display for StackLineError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StackLineError {}
