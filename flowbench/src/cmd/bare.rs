//! `flowbench bare`: the bare axum handler (`mock::bare`), the yardstick for
//! Start→End QPS, until SIGINT or SIGTERM.

use super::shutdown_signal;
use crate::cli::BareArgs;
use crate::exit;

pub async fn execute(args: &BareArgs) -> anyhow::Result<i32> {
    let (addr, task) = mock::bare::serve(args.listen).await?;
    eprintln!("flowbench: bare axum handler at http://{addr}; Ctrl-C to stop");
    tokio::select! {
        result = task => { result??; }
        () = shutdown_signal() => {}
    }
    Ok(exit::OK)
}
