//! `flowbench up`: the mocked stack in this process; one JSON line on
//! stdout (`StackInfo`), then serves until SIGINT or SIGTERM.

use super::shutdown_signal;
use crate::cli::{UpArgs, exit};
use crate::stack::{Stack, StackOptions};
use anyhow::Context;
use std::io::Write;

pub async fn execute(args: &UpArgs) -> anyhow::Result<i32> {
    let mut options =
        StackOptions { script: args.script.build()?, server_addr: args.server_addr, mock_addr: args.mock_addr, ..StackOptions::default() };
    if let Some(n) = args.max_stored_runs {
        options.limits.max_stored_runs = n;
    }
    options.limits.inject_busy_per_request = args.inject_busy_per_request.unwrap_or_default();
    options.limits.inject_busy_per_event = args.inject_busy_per_event.unwrap_or_default();
    let stack = Stack::start(options).await?;
    let line = serde_json::to_string(&stack.info)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("writing to stdout")?;
    drop(stdout);
    eprintln!("flowbench: stack up at {}; Ctrl-C to stop", stack.info.server_url);
    shutdown_signal().await;
    stack.shutdown().await?;
    Ok(exit::OK)
}
