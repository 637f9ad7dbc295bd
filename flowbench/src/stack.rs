//! The mocked stack: the mock LLM and the server with the two fixture apps
//! (`empty`: Start→End, `llm`: Start→LLM→End). `InProcessStack` runs both in this
//! process (what `flowbench up` serves); `ChildStack` runs `flowbench up` as
//! a child process, so that the target's CPU is measured apart from the
//! driver's. `StackInfo` is the one line `flowbench up` prints, written and
//! parsed here only.

use anyhow::Context;
use mock::fixtures::APPS;
use mock::{MockLlm, Script};
pub use schema::stack::{StackApp, StackInfo};
use server::{AppConfig, Config, Limits, Running};
use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};

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
    /// The server's run store: `None` is memory; `sqlite:PATH`, `postgres://…`.
    pub store: Option<String>,
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
            store: None,
        }
    }
}

/// The server's config for the fixture apps on `options`, its provider the
/// mock at `mock_base_url`.
pub fn server_config(options: &StackOptions, mock_base_url: &str) -> Config {
    let root = mock::workspace_root();
    let mut config = Config {
        listen: options.server_addr,
        limits: options.limits.clone(),
        busy_poll: options.busy_poll,
        store: options.store.clone(),
        ..Config::default()
    };
    config.provider.base_url = mock_base_url.to_owned();
    config.provider.api_key = "sk-flowbench-mock".to_owned();
    for app in APPS {
        config.apps.push(AppConfig {
            api_key: app.api_key.to_owned(),
            workflow: root.join(app.workflow),
            max_concurrent_runs: options.max_concurrent_runs,
        });
    }
    config
}

/// The fixture apps, by name, as `StackInfo` lists them.
pub fn apps() -> BTreeMap<String, StackApp> {
    APPS.iter().map(|app| (app.name.to_owned(), StackApp { api_key: app.api_key.to_owned(), workflow: app.workflow.to_owned() })).collect()
}

/// A running stack.
pub struct InProcessStack {
    pub info: StackInfo,
    pub mock: MockLlm,
    pub server: Running,
}

impl InProcessStack {
    pub async fn start(options: StackOptions) -> anyhow::Result<Self> {
        let mock = MockLlm::start(options.script.clone(), options.mock_addr).await?;
        let config = server_config(&options, &mock.base_url());
        let server = Running::open(&config, false).await.context("starting the server")?;
        let info = StackInfo { server_url: server.url.clone(), mock_llm_url: mock.base_url(), apps: apps(), server_pids: Vec::new() };
        Ok(Self { info, mock, server })
    }

    pub fn api_key(&self, app: &str) -> &str {
        self.info.api_key(app).expect("a fixture app")
    }

    /// Stops the server (draining in-flight runs), then the mock.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.server.shutdown().await.context("server failed")?;
        self.mock.shutdown().await;
        Ok(())
    }
}

/// The mocked stack as a child process (`flowbench up`), killed on drop.
pub struct ChildStack {
    pub child: Child,
    pub info: StackInfo,
}

impl ChildStack {
    /// `flowbench up` with these flags, from this same binary.
    pub fn start(mock_script: Option<&Path>, up_args: &[String]) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("finding the flowbench binary")?;
        let mut command = Command::new(exe);
        command.arg("up").args(up_args).stdout(Stdio::piped()).stderr(Stdio::inherit()).env("RUST_LOG", "warn");
        if let Some(script) = mock_script {
            command.arg("--mock-script").arg(script);
        }
        let mut child = command.spawn().context("starting the embedded stack")?;
        let mut line = String::new();
        BufReader::new(child.stdout.take().expect("piped stdout")).read_line(&mut line).context("reading the stack's address")?;
        Ok(Self { info: StackInfo::parse(&line)?, child })
    }

    /// SIGTERM, then waits: the server drains as it would in production.
    pub fn stop(mut self) {
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).status();
        let _ = self.child.wait();
    }
}

impl Drop for ChildStack {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}
