//! Progress through counted steps (slices, rounds, commits) on stderr, for
//! flowbench's `ab` and xtask's gate and `history`.

use std::io::IsTerminal;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// Progress through counted steps (slices, rounds, commits) on stderr: a
/// bar with the step in hand on a terminal, a line per step otherwise.
pub struct Steps {
    label: String,
    total: u64,
    done: std::sync::atomic::AtomicU64,
    bar: Option<indicatif::ProgressBar>,
}

impl Steps {
    pub fn new(label: &str, total: u64) -> Self {
        Self::shown(label, total, std::io::stderr().is_terminal())
    }

    fn shown(label: &str, total: u64, terminal: bool) -> Self {
        let bar = terminal.then(|| {
            let bar = indicatif::ProgressBar::new(total);
            bar.set_style(
                indicatif::ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} {elapsed_precise} {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.set_prefix(label.to_owned());
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Self { label: label.to_owned(), total, done: Default::default(), bar }
    }

    /// What is under way now (the bar's message; a line otherwise).
    pub fn doing(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.set_message(what.to_owned()),
            None => eprintln!("{}: {}/{} {what}", self.label, self.done.load(Ordering::Relaxed) + 1, self.total),
        }
    }

    /// A step ended: `what` says how.
    pub fn step(&self, what: &str) {
        let done = self.done.fetch_add(1, Ordering::Relaxed) + 1;
        match &self.bar {
            Some(bar) => {
                bar.inc(1);
                bar.println(format!("{}: {done}/{} {what}", self.label, self.total));
            }
            None => eprintln!("{}: {done}/{} {what}", self.label, self.total),
        }
    }

    /// Says something between steps without breaking the bar.
    pub fn note(&self, what: &str) {
        match &self.bar {
            Some(bar) => bar.println(format!("{}: {what}", self.label)),
            None => eprintln!("{}: {what}", self.label),
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}
