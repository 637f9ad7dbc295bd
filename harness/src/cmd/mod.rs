//! The commands: each takes its validated flags (`crate::cli`), runs, and is
//! the only code that prints. Shared here: Ctrl-C, SIGTERM, progress, files.

pub mod ab;
pub mod bare;
pub mod merge;
pub mod mock;
pub mod report;
pub mod run;
pub mod soak;
pub mod up;

use crate::load::driver::Live;
use anyhow::Context;
use std::io::IsTerminal;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// A token cancelled on the first Ctrl-C (saying `message` on stderr), and
/// the task that waits for it (abort it when the run is over).
pub fn cancel_on_ctrl_c(message: &'static str) -> (CancellationToken, tokio::task::JoinHandle<()>) {
    let cancel = CancellationToken::new();
    let ctrl_c = cancel.clone();
    let signal = tokio::spawn(async move {
        if tokio::signal::ctrl_c().await.is_ok() {
            eprintln!("\n{message}");
            ctrl_c.cancel();
        }
    });
    (cancel, signal)
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match term.as_mut() { Some(t) => { t.recv().await; } None => std::future::pending().await } } => {}
    }
}

/// Writes `bytes` to `path`, naming the file when it fails.
pub fn write_file(path: &Path, bytes: impl AsRef<[u8]>) -> anyhow::Result<()> {
    std::fs::write(path, bytes).with_context(|| format!("writing {}", path.display()))
}

/// The live progress line on stderr, when it is a terminal.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Progress {
    pub fn start(name: &str, total: Duration, live: Arc<Live>) -> Self {
        if !std::io::stderr().is_terminal() {
            return Self { bar: None, task: None };
        }
        let bar = indicatif::ProgressBar::new(total.as_millis() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{prefix:>6} [{bar:30}] {elapsed}/{duration} {msg}")
                .expect("valid template")
                .progress_chars("=> "),
        );
        bar.set_prefix(name.to_owned());
        let ticker = bar.clone();
        let task = tokio::spawn(async move {
            let start = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                ticker.set_position(start.elapsed().as_millis() as u64);
                ticker.set_message(format!(
                    "sent {} done {} errors {} events {}",
                    live.sent.load(Ordering::Relaxed),
                    live.done.load(Ordering::Relaxed),
                    live.errors.load(Ordering::Relaxed),
                    live.events.load(Ordering::Relaxed)
                ));
            }
        });
        Self { bar: Some(bar), task: Some(task) }
    }

    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
    }
}
