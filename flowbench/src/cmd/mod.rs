//! The commands: each takes its validated flags (`crate::cli`), runs, and is
//! the only code that prints. Shared here: Ctrl-C, SIGTERM, progress, files.

pub mod ab;
pub mod bare;
pub mod capacity;
pub mod merge;
pub mod mock;
pub mod report;
pub mod run;
pub mod soak;
pub mod up;

use crate::load::driver::Live;
use anyhow::Context;
pub use pages::progress::Steps;
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

/// The live progress of one timed run on stderr: a bar with the driver's
/// counters on a terminal; otherwise a line when it starts, one every
/// `every` (when given) and one when it ends, so a CI log shows it too.
pub struct Progress {
    bar: Option<indicatif::ProgressBar>,
    task: Option<tokio::task::JoinHandle<()>>,
    lines: Option<(String, Arc<Live>, tokio::time::Instant)>,
}

fn counters(live: &Live) -> String {
    format!(
        "sent {} done {} errors {} events {}",
        live.sent.load(Ordering::Relaxed),
        live.done.load(Ordering::Relaxed),
        live.errors.load(Ordering::Relaxed),
        live.events.load(Ordering::Relaxed)
    )
}

impl Progress {
    pub fn start(name: &str, total: Duration, live: Arc<Live>) -> Self {
        Self::start_every(name, total, live, None)
    }

    pub fn start_every(name: &str, total: Duration, live: Arc<Live>, every: Option<Duration>) -> Self {
        let start = tokio::time::Instant::now();
        if !std::io::stderr().is_terminal() {
            say(&format!("flowbench: {name}: started, {} of load", humantime::format_duration(total)));
            let task = every.map(|every| {
                let (name, live) = (name.to_owned(), live.clone());
                tokio::spawn(async move {
                    let mut tick = tokio::time::interval_at(start + every, every);
                    loop {
                        tick.tick().await;
                        say(&format!(
                            "flowbench: {name}: {:.0} s of {:.0} s: {}",
                            start.elapsed().as_secs_f64(),
                            total.as_secs_f64(),
                            counters(&live)
                        ));
                    }
                })
            });
            return Self { bar: None, task, lines: Some((name.to_owned(), live, start)) };
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
            loop {
                tokio::time::sleep(Duration::from_millis(200)).await;
                ticker.set_position(start.elapsed().as_millis() as u64);
                ticker.set_message(counters(&live));
            }
        });
        Self { bar: Some(bar), task: Some(task), lines: None }
    }

    pub fn finish(self) {
        if let Some(task) = self.task {
            task.abort();
        }
        if let Some(bar) = self.bar {
            bar.finish_and_clear();
        }
        if let Some((name, live, start)) = self.lines {
            say(&format!("flowbench: {name}: ended after {:.1} s: {}", start.elapsed().as_secs_f64(), counters(&live)));
        }
    }
}

/// Saved `flowbench run --json` (or `merge --json`) reports, each named by
/// its path; the first that does not read says why.
pub fn read_reports(paths: &[std::path::PathBuf]) -> Result<Vec<(String, crate::report::Report)>, String> {
    paths
        .iter()
        .map(|path| {
            let name = path.display().to_string();
            let bytes = std::fs::read(path).map_err(|e| format!("reading {name}: {e}"))?;
            let report: crate::report::Report =
                serde_json::from_slice(&bytes).map_err(|e| format!("{name} is not a flowbench run --json report: {e}"))?;
            // Another version's figures mean other things (schema 3 keeps
            // failures out of the latencies): never mixed.
            if report.schema_version != crate::report::SCHEMA_VERSION {
                return Err(format!(
                    "{name} is a report of schema version {}; this flowbench reads version {} (rerun it with this flowbench)",
                    report.schema_version,
                    crate::report::SCHEMA_VERSION
                ));
            }
            Ok((name, report))
        })
        .collect()
}

/// Writes `line` and its newline to stderr in one write: the embedded
/// stack (`flowbench up`, a child) shares this stderr, and `eprintln!`
/// writes a line in pieces, so two processes' lines could interleave
/// mid-line (a URL cut in two).
pub fn say(line: &str) {
    use std::io::Write;
    let mut whole = String::with_capacity(line.len() + 1);
    whole.push_str(line);
    whole.push('\n');
    let _ = std::io::stderr().write_all(whole.as_bytes());
}
