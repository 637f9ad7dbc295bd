//! `flowbench mock`: the mock LLM alone, e.g. for a real Dify's
//! OpenAI-compatible provider to point at, until SIGINT or SIGTERM.

use super::shutdown_signal;
use crate::cli::MockArgs;
use crate::exit;

pub async fn execute(args: &MockArgs) -> anyhow::Result<i32> {
    let mock = mock::MockLlm::start(args.script.build()?, args.listen).await?;
    eprintln!("flowbench: mock LLM at {}; Ctrl-C to stop", mock.base_url());
    shutdown_signal().await;
    mock.shutdown().await;
    Ok(exit::OK)
}
