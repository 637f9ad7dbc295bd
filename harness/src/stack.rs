//! The mocked stack, in-process: the mock LLM and the server on ephemeral
//! 127.0.0.1 ports, with the two fixture apps (`empty`: Start→End, `llm`:
//! Start→LLM→End). A `Stack` owns both and stops both.

use crate::mock_llm::{MockLlm, Script};
use anyhow::Context;
use serde::Serialize;
use server::{AppConfig, AppState, Config, Limits};
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use tokio_util::sync::CancellationToken;

/// The fixture apps: name, API key, workflow path relative to the workspace.
pub const APPS: [(&str, &str, &str); 2] = [
    ("empty", "app-flowbench-empty", "fixtures/workflows/start_end.yml"),
    ("llm", "app-flowbench-llm", "fixtures/workflows/start_llm_end.yml"),
];

/// The workspace root, where `fixtures/` lives.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("harness/ sits in the workspace").to_owned()
}

/// How to start a stack.
#[derive(Debug, Clone)]
pub struct StackOptions {
    pub script: Script,
    pub server_addr: SocketAddr,
    pub mock_addr: SocketAddr,
    pub limits: Limits,
    /// Per-app cap on concurrent runs (429 above); `None`: no cap.
    pub max_concurrent_runs: Option<usize>,
    /// The server's `busy_poll` (server/src/busy_poll.rs).
    pub busy_poll: bool,
}

impl Default for StackOptions {
    fn default() -> Self {
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("valid address");
        Self {
            script: Script::default(),
            server_addr: loopback,
            mock_addr: loopback,
            limits: Limits::default(),
            max_concurrent_runs: None,
            busy_poll: false,
        }
    }
}

/// What `cargo xtask up` prints, and what tests use to reach the stack.
#[derive(Debug, Clone, Serialize)]
pub struct StackInfo {
    pub server_url: String,
    pub mock_llm_url: String,
    pub apps: BTreeMap<String, StackApp>,
}

#[derive(Debug, Clone, Serialize)]
pub struct StackApp {
    pub api_key: String,
    pub workflow: String,
}

/// A running stack.
pub struct Stack {
    pub info: StackInfo,
    pub mock: MockLlm,
    pub state: AppState,
    stop: CancellationToken,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Stack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let mock = MockLlm::start(options.script, options.mock_addr).await?;
        let root = workspace_root();
        let mut config = Config { listen: options.server_addr, limits: options.limits, busy_poll: options.busy_poll, ..Config::default() };
        config.provider.base_url = mock.base_url();
        config.provider.api_key = "sk-flowbench-mock".to_owned();
        let mut apps = BTreeMap::new();
        for (name, api_key, workflow) in APPS {
            config.apps.push(AppConfig {
                api_key: api_key.to_owned(),
                workflow: root.join(workflow),
                max_concurrent_runs: options.max_concurrent_runs,
            });
            apps.insert(name.to_owned(), StackApp { api_key: api_key.to_owned(), workflow: workflow.to_owned() });
        }
        let state = AppState::new(&config).context("loading the fixture apps")?;
        let listener = server::conn::listen(config.listen).with_context(|| format!("binding the server to {}", config.listen))?;
        let server_url = format!("http://{}", listener.local_addr()?);
        let stop = CancellationToken::new();
        let server = tokio::spawn(server::serve(listener, state.clone(), stop.clone().cancelled_owned()));
        let info = StackInfo { server_url, mock_llm_url: mock.base_url(), apps };
        Ok(Self { info, mock, state, stop, server })
    }

    pub fn api_key(&self, app: &str) -> &str {
        &self.info.apps[app].api_key
    }

    /// Stops the server (draining in-flight runs), then the mock.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.server.await.context("server task panicked")?.context("server failed")?;
        self.mock.shutdown().await;
        Ok(())
    }
}
