//! `flowbench up`: the mocked stack; one JSON line on stdout (`StackInfo`),
//! then serves until SIGINT or SIGTERM.
//!
//! The mock LLM runs in this process and the server in its own: one or
//! (`--replicas N`) N server processes (`flowbench replica`, this binary)
//! share one address by SO_REUSEPORT, as the seed's replicas sit behind
//! one Service, on the shared store `--store` names. The target's CPU is
//! then the servers' alone (`StackInfo::server_pids`), never the mock's.
//! Each replica exits when this process's end of its stdin closes, so a
//! stack killed outright leaves no server behind.

use super::shutdown_signal;
use crate::cli::{InjectArgs, ReplicaArgs, UpArgs};
use crate::exit;
use crate::stack::{StackInfo, StackOptions, apps, server_config};
use anyhow::Context;
use std::io::{BufRead, BufReader, Write};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// How long a replica has to open its store and listen.
const REPLICA_START: Duration = Duration::from_secs(30);

fn inject(limits: &mut server::Limits, inject: &InjectArgs) {
    limits.inject_busy_per_request = inject.inject_busy_per_request.unwrap_or_default();
    limits.inject_busy_per_event = inject.inject_busy_per_event.unwrap_or_default();
    limits.metrics = !inject.no_metrics;
}

fn store(name: &str) -> Option<String> {
    (name != "memory").then(|| name.to_owned())
}

pub async fn execute(args: &UpArgs) -> anyhow::Result<i32> {
    let mut options = StackOptions {
        script: args.script.build()?,
        server_addr: args.server_addr,
        mock_addr: args.mock_addr,
        store: store(&args.store),
        ..StackOptions::default()
    };
    if let Some(n) = args.max_stored_runs {
        options.limits.max_stored_runs = n;
    }
    inject(&mut options.limits, &args.inject);
    replicas(args, options).await
}

fn announce(info: &StackInfo) -> anyhow::Result<()> {
    let line = serde_json::to_string(info)?;
    let mut stdout = std::io::stdout().lock();
    writeln!(stdout, "{line}").and_then(|()| stdout.flush()).context("writing to stdout")?;
    drop(stdout);
    super::say(&format!("flowbench: stack up at {}; Ctrl-C to stop", info.server_url));
    Ok(())
}

/// Server processes, stopped (SIGTERM, then waited for) on drop.
struct Replicas(Vec<Child>);

/// A replica's stdin, held open by `up`: it ends when `up` does.
const EXIT_WITH_STDIN: &str = "--exit-with-stdin";

impl Drop for Replicas {
    fn drop(&mut self) {
        for child in &mut self.0 {
            // Its stdin closed first: the replica's reader of it returns,
            // so nothing holds its runtime's shutdown.
            drop(child.stdin.take());
            let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).status();
        }
        for child in &mut self.0 {
            let _ = child.wait();
        }
    }
}

async fn replicas(args: &UpArgs, options: StackOptions) -> anyhow::Result<i32> {
    let mock = mock::MockLlm::start(options.script.clone(), options.mock_addr).await?;
    // The address is held (bound with SO_REUSEPORT, never listening, so it
    // takes no connection) until every replica listens on it.
    let holder = if options.server_addr.is_ipv6() { tokio::net::TcpSocket::new_v6() } else { tokio::net::TcpSocket::new_v4() }
        .context("a socket for the replicas' address")?;
    holder.set_reuseport(true)?;
    holder.bind(options.server_addr).with_context(|| format!("binding {}", options.server_addr))?;
    let addr: SocketAddr = holder.local_addr()?;
    let exe = std::env::current_exe().context("finding the flowbench binary")?;
    let mut children = Replicas(Vec::new());
    for _ in 0..args.replicas {
        let mut command = Command::new(&exe);
        command.args(["replica", EXIT_WITH_STDIN, "--listen", &addr.to_string(), "--provider-base-url", &mock.base_url()]);
        command.args(["--store", &args.store]);
        if let Some(n) = args.max_stored_runs {
            command.args(["--max-stored-runs", &n.to_string()]);
        }
        if let Some(n) = args.worker_threads {
            command.args(["--worker-threads", &n.to_string()]);
        }
        if let Some(d) = args.inject.inject_busy_per_request {
            command.args(["--inject-busy-per-request", &humantime::format_duration(d).to_string()]);
        }
        if let Some(d) = args.inject.inject_busy_per_event {
            command.args(["--inject-busy-per-event", &humantime::format_duration(d).to_string()]);
        }
        if args.inject.no_metrics {
            command.arg("--no-metrics");
        }
        let child = command.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::inherit()).spawn().context("starting a replica")?;
        children.0.push(child);
    }
    // Each replica prints one line once it listens.
    for (i, child) in children.0.iter_mut().enumerate() {
        let stdout = child.stdout.take().expect("piped stdout");
        let ready = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        });
        match tokio::time::timeout(REPLICA_START, ready).await {
            Ok(Ok(Ok(line))) if line.starts_with("listening") => {}
            Ok(_) => anyhow::bail!("replica {} of {} did not start (its error is above)", i + 1, args.replicas),
            Err(_) => anyhow::bail!("replica {} of {} did not listen within {REPLICA_START:?}", i + 1, args.replicas),
        }
    }
    drop(holder);
    let info = StackInfo {
        server_url: format!("http://{addr}"),
        mock_llm_url: mock.base_url(),
        apps: apps(),
        server_pids: children.0.iter().map(Child::id).collect(),
    };
    announce(&info)?;
    shutdown_signal().await;
    drop(children);
    mock.shutdown().await;
    Ok(exit::OK)
}

/// `flowbench replica`: one server of `up --replicas N`; prints `listening`
/// once it does, serves until SIGTERM, then commits its store.
pub async fn replica(args: &ReplicaArgs) -> anyhow::Result<i32> {
    let mut options = StackOptions { server_addr: args.listen, store: store(&args.store), ..StackOptions::default() };
    if let Some(n) = args.max_stored_runs {
        options.limits.max_stored_runs = n;
    }
    inject(&mut options.limits, &args.inject);
    let config = server_config(&options, &args.provider_base_url);
    let server = server::Running::open(&config, true).await.context("starting the replica")?;
    println!("listening {}", server.url);
    std::io::stdout().flush()?;
    if args.exit_with_stdin {
        // `up`'s end of the pipe closes when `up` exits, however it exits.
        let orphaned = tokio::task::spawn_blocking(|| {
            use std::io::Read;
            let mut sink = [0u8; 64];
            while std::io::stdin().read(&mut sink).is_ok_and(|n| n > 0) {}
        });
        tokio::select! {
            () = shutdown_signal() => {}
            _ = orphaned => {}
        }
    } else {
        shutdown_signal().await;
    }
    server.shutdown().await?;
    Ok(exit::OK)
}
