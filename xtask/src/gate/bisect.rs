//! `cargo xtask bisect --good REV --bad REV --metric NAME`: which commit
//! moved a metric, and how sure that is.
//!
//! Every probe is the gate's measurement: a commit's build and the good
//! end's, fresh stacks pinned to one core and driven at once, rounds of
//! slices, and per round the mean log ratio of the metric (probe over
//! good). First the bad end, for the total change; then the midpoints.
//! A midpoint is placed by its change as a share of the total, with the
//! interval of its rounds: wholly under half is "like good", wholly over
//! half "like bad". One whose interval holds half gets more rounds (up to
//! `--max-rounds`), then the search stops and says so: never a guess. One
//! that is told apart from both ends (its share's interval inside 0 to 1)
//! holds part of the change on each side: no single commit made it, and
//! the answer is "drift", with the split. Two adjacent commits left, the
//! later one is measured against the earlier directly: a step past
//! `--resolution` is named with its interval; a smaller one means the
//! total was made of small steps (drift) after all.

use super::GateArgs;
use super::metrics::{GateMetric, METRICS};
use super::rounds::{self, Side};
use crate::stats::{PairedChange, pct};
use anyhow::{Context, bail};
use serde::Serialize;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

#[derive(Debug, Clone, clap::Args)]
pub struct BisectArgs {
    /// A revision where the metric was as it should be.
    #[arg(long)]
    pub good: String,
    /// A later revision where it was not.
    #[arg(long)]
    pub bad: String,
    /// The metric, by the gate's name in snake case: empty_qps,
    /// empty_cpu_per_request, empty_p50_duration, empty_p99_duration,
    /// ttfe_p50, ttfe_p99, llm_events_per_s, llm_cpu_per_event.
    #[arg(long)]
    pub metric: String,
    /// Rounds per probe at first (the gate's statistical unit).
    #[arg(long, default_value_t = 4)]
    pub rounds: usize,
    /// Rounds a probe may take, doubling, before the search says it cannot tell.
    #[arg(long, default_value_t = 16)]
    pub max_rounds: usize,
    /// The smallest single step (in %) named as one commit's doing.
    #[arg(long, default_value_t = 2.0)]
    pub resolution: f64,
    #[command(flatten)]
    pub load: super::RoundLoad,
    /// The repository whose history is searched [default: this one].
    #[arg(long)]
    pub repo: Option<PathBuf>,
    /// For testing the bisect itself: every commit runs this working
    /// tree's build, with the server's busy cost per request that FILE
    /// holds at that commit (`git show REV:FILE`, e.g. `3us`).
    #[arg(long, value_name = "FILE")]
    pub inject_from: Option<String>,
    /// With `--inject-from`: this `flowbench` binary instead of a release
    /// build of the working tree.
    #[arg(long, value_name = "PATH", requires = "inject_from")]
    pub binary: Option<PathBuf>,
    #[arg(long)]
    pub json: Option<PathBuf>,
    #[arg(long)]
    pub markdown: Option<PathBuf>,
    /// A self-contained page: each probed commit's change against the good
    /// end, with its interval, and the step marked.
    #[arg(long)]
    pub html: Option<PathBuf>,
}

/// The metric's name as the bisect takes it: `empty CPU µs/request` →
/// `empty_cpu_per_request`.
fn key_of(metric: &GateMetric) -> String {
    metric.name.to_lowercase().replace(" µs/", "_per_").replace('/', "_per_").replace(' ', "_")
}

/// One probe: a commit (its place in the range, 0 the good end) and its
/// change against the good end over its rounds.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub commit: String,
    pub position: usize,
    pub rounds: usize,
    pub change_pct: f64,
    pub low_pct: f64,
    pub high_pct: f64,
    /// Its change as a share of the total, with the interval: where it
    /// lies between good (0) and bad (1).
    pub share: f64,
    pub share_low: f64,
    pub share_high: f64,
    pub verdict: &'static str,
}

/// What the search found.
#[derive(Debug, Clone, Serialize)]
pub struct BisectReport {
    pub metric: String,
    pub good: String,
    pub bad: String,
    pub commits: usize,
    /// Bad against good.
    pub total_pct: f64,
    pub total_low_pct: f64,
    pub total_high_pct: f64,
    /// `step`, `drift`, `no change` or `cannot tell`.
    pub answer: &'static str,
    /// The commit that stepped (answer `step`), or the first commit after
    /// the split (`drift`).
    pub commit: Option<String>,
    /// The last step measured directly: the commit against its parent.
    pub step_pct: Option<f64>,
    pub step_low_pct: Option<f64>,
    pub step_high_pct: Option<f64>,
    pub sentence: String,
    pub probes: Vec<Probe>,
    pub seconds: f64,
}

/// Exit codes: 0 an answer (a step, drift, or no change), 2 could not
/// measure or bad input, 3 cannot tell (the search stopped and says where).
pub fn run(root: &Path, args: &BisectArgs) -> anyhow::Result<i32> {
    let started = Instant::now();
    let metric_index = METRICS
        .iter()
        .position(|m| key_of(m) == args.metric)
        .with_context(|| format!("--metric {:?}: one of {}", args.metric, METRICS.iter().map(key_of).collect::<Vec<_>>().join(", ")))?;
    if args.rounds < 2 || args.max_rounds < args.rounds {
        bail!("--rounds must be at least 2 and --max-rounds at least --rounds");
    }
    let repo = args.repo.clone().unwrap_or_else(|| root.to_owned());
    let good = git(&repo, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.good)]).context("--good")?;
    let bad = git(&repo, &["rev-parse", "--verify", &format!("{}^{{commit}}", args.bad)]).context("--bad")?;
    let mut commits = vec![good.clone()];
    commits.extend(git(&repo, &["rev-list", "--first-parent", "--reverse", &format!("{good}..{bad}")])?.lines().map(str::to_owned));
    if commits.len() < 2 || commits.last() != Some(&bad) {
        bail!("--bad {} is not a descendant of --good {} along its first parents", args.bad, args.good);
    }
    let mut search = Bisection::new(root, &repo, args, metric_index, commits)?;
    let report = search.run(started)?;
    let text = markdown(&report);
    print!("{text}");
    if let Some(path) = &args.markdown {
        std::fs::write(path, &text)?;
    }
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&report)?)?;
    }
    if let Some(path) = &args.html {
        std::fs::write(path, html(&report)?)?;
    }
    Ok(match report.answer {
        "cannot tell" => 3,
        _ => 0,
    })
}

struct Bisection<'a> {
    root: &'a Path,
    repo: &'a Path,
    args: &'a BisectArgs,
    gate: GateArgs,
    metric: usize,
    commits: Vec<String>,
    /// Each measured commit's per-round log ratios against the good end.
    logs: HashMap<usize, Vec<f64>>,
    sides: HashMap<usize, Side>,
    driver: PathBuf,
    probes: Vec<Probe>,
}

impl<'a> Bisection<'a> {
    fn new(root: &'a Path, repo: &'a Path, args: &'a BisectArgs, metric: usize, commits: Vec<String>) -> anyhow::Result<Self> {
        let gate = GateArgs::rounds_of(args.rounds, args.load.clone(), args.resolution);
        // The rounds write their phases' reports there, built or not.
        std::fs::create_dir_all(root.join("target/gate")).context("creating target/gate")?;
        // The driver is this working tree's `flowbench ab` (or --binary),
        // whose reports the rounds read: an old end's writes an older schema.
        let driver = match &args.binary {
            Some(binary) => binary.clone(),
            None => super::build::build(root, None)?,
        };
        Ok(Self { root, repo, args, gate, metric, commits, logs: HashMap::new(), sides: HashMap::new(), driver, probes: Vec::new() })
    }

    /// The side that runs commit `i`: its build, or the working tree's with
    /// the cost `--inject-from` holds there.
    fn side(&mut self, i: usize) -> anyhow::Result<Side> {
        if let Some(side) = self.sides.get(&i) {
            return Ok(side.clone());
        }
        let commit = &self.commits[i];
        let side = match &self.args.inject_from {
            Some(file) => {
                let text = git(self.repo, &["show", &format!("{commit}:{file}")]).unwrap_or_default();
                let cost = if text.trim().is_empty() {
                    Duration::ZERO
                } else {
                    humantime::parse_duration(text.trim()).with_context(|| format!("{file} at {commit}: {text:?} is not a duration"))?
                };
                Side { busy_per_request: cost, ..Side::plain(if i == 0 { "good" } else { "probe" }, self.driver.clone()) }
            }
            None => Side::plain(if i == 0 { "good" } else { "probe" }, super::build::build(self.repo, Some(commit))?),
        };
        self.sides.insert(i, side.clone());
        Ok(side)
    }

    /// `n` more rounds of `b` against `a`: the metric's log ratio per round.
    fn rounds(&mut self, a: usize, b: usize, n: usize) -> anyhow::Result<Result<Vec<f64>, String>> {
        let (side_a, side_b) = (self.side(a)?, self.side(b)?);
        let phase = [METRICS[self.metric].phase];
        let rig = rounds::Rig { root: self.root, args: &self.gate, a: &side_a, b: &side_b, driver: &self.driver, phases: &phase };
        let logs: Result<Vec<f64>, String> =
            rounds::measure(rig, n)?.map(|rounds| rounds.iter().map(|r| r.log_ratios[self.metric]).collect());
        if let Ok(logs) = &logs
            && logs.iter().any(|l| !l.is_finite())
        {
            // The gate leaves a CPU figure out when the two builds' target
            // CPU covers different processes (an old build's server ran in
            // the mock's process): such builds cannot be compared on it.
            bail!(
                "{} cannot be compared between {} and {}: one of them does not measure it the same way (pick another --metric)",
                self.args.metric,
                short(&self.commits[a]),
                short(&self.commits[b])
            );
        }
        Ok(logs)
    }

    /// Commit `i` against the good end, with at least `n` rounds in all.
    fn change(&mut self, i: usize, n: usize) -> anyhow::Result<Result<PairedChange, String>> {
        let have = self.logs.get(&i).map_or(0, Vec::len);
        if have < n {
            eprintln!(
                "bisect: {} ({} of {}): {} rounds against the good end",
                short(&self.commits[i]),
                i,
                self.commits.len() - 1,
                n - have
            );
            match self.rounds(0, i, n - have)? {
                Ok(more) => self.logs.entry(i).or_default().extend(more),
                Err(why) => return Ok(Err(why)),
            }
        }
        Ok(Ok(PairedChange::of(&self.logs[&i])))
    }

    fn run(&mut self, started: Instant) -> anyhow::Result<BisectReport> {
        let n = self.commits.len() - 1;
        let mut report = BisectReport {
            metric: self.args.metric.clone(),
            good: self.commits[0].clone(),
            bad: self.commits[n].clone(),
            commits: n,
            total_pct: f64::NAN,
            total_low_pct: f64::NAN,
            total_high_pct: f64::NAN,
            answer: "cannot tell",
            commit: None,
            step_pct: None,
            step_low_pct: None,
            step_high_pct: None,
            sentence: String::new(),
            probes: Vec::new(),
            seconds: 0.0,
        };
        let resolution = (1.0 + self.args.resolution / 100.0).ln();
        // The total: more rounds while its interval holds zero.
        let mut rounds = self.args.rounds;
        let total = loop {
            let total = match self.change(n, rounds)? {
                Ok(t) => t,
                Err(why) => bail!("could not measure the bad end: {why}"),
            };
            let clear = total.log_low > 0.0 || total.log_high < 0.0;
            if clear || rounds >= self.args.max_rounds {
                break total;
            }
            rounds = (rounds * 2).min(self.args.max_rounds);
        };
        (report.total_pct, report.total_low_pct, report.total_high_pct) = (pct(total.log_mean), pct(total.log_low), pct(total.log_high));
        if total.log_low <= 0.0 && total.log_high >= 0.0 {
            report.answer = if total.log_high - total.log_low < 2.0 * resolution { "no change" } else { "cannot tell" };
            report.sentence = format!(
                "bad against good: {} after {} rounds: {}",
                change_text(&total),
                self.logs[&n].len(),
                if report.answer == "no change" { "no change to bisect" } else { "too noisy to say whether it changed" }
            );
            return Ok(self.finish(report, started));
        }
        let (mut lo, mut hi) = (0, n);
        while hi - lo > 1 {
            let mid = (lo + hi) / 2;
            let mut rounds = self.args.rounds;
            let verdict = loop {
                let change = match self.change(mid, rounds)? {
                    Ok(c) => c,
                    Err(why) => bail!("could not measure {}: {why}", short(&self.commits[mid])),
                };
                // Its share of the total; the total's own error is left to the direct step at the end.
                let (a, b) = (change.log_low / total.log_mean, change.log_high / total.log_mean);
                let (share_low, share_high) = (a.min(b), a.max(b));
                let verdict = if share_high < 0.5 {
                    "like good"
                } else if share_low > 0.5 {
                    "like bad"
                } else if share_low > 0.0 && share_high < 1.0 {
                    "between"
                } else {
                    "cannot tell"
                };
                // "between" ends the search as drift, so it must hold at the
                // most rounds: one noisy probe of a commit like good (or like
                // bad) would otherwise pass for a split change.
                let settled = matches!(verdict, "like good" | "like bad");
                if settled || rounds >= self.args.max_rounds {
                    self.probe(mid, &change, total.log_mean, (share_low, share_high), verdict);
                    break verdict;
                }
                rounds = (rounds * 2).min(self.args.max_rounds);
            };
            match verdict {
                "like good" => lo = mid,
                "like bad" => hi = mid,
                "between" => {
                    let p = self.probes.last().expect("just probed");
                    report.answer = "drift";
                    report.commit = Some(self.commits[mid].clone());
                    report.sentence = format!(
                        "drift: {} ({mid} of {n}) is {} from good, {:.0}% of the total \
                         (between {:.0}% and {:.0}%): the change is spread over the range, part before it and part after, \
                         not one commit's; bisect each part (--good/--bad) to find its pieces",
                        short(&self.commits[mid]),
                        interval_text(p.change_pct, p.low_pct, p.high_pct),
                        p.share * 100.0,
                        p.share_low * 100.0,
                        p.share_high * 100.0
                    );
                    return Ok(self.finish(report, started));
                }
                _ => {
                    report.sentence = format!(
                        "cannot tell: {} ({mid} of {n}) after {} rounds lies between good and bad with half the total inside its interval; \
                         the step is between {} and {}",
                        short(&self.commits[mid]),
                        self.logs[&mid].len(),
                        short(&self.commits[lo]),
                        short(&self.commits[hi])
                    );
                    return Ok(self.finish(report, started));
                }
            }
        }
        // Two adjacent commits: the later against the earlier, directly.
        let mut logs = Vec::new();
        let mut rounds = self.args.rounds;
        let step = loop {
            eprintln!(
                "bisect: {} against its parent {}: {} rounds",
                short(&self.commits[hi]),
                short(&self.commits[lo]),
                rounds - logs.len()
            );
            match self.rounds(lo, hi, rounds - logs.len())? {
                Ok(more) => logs.extend(more),
                Err(why) => bail!("could not measure {} against its parent: {why}", short(&self.commits[hi])),
            }
            let step = PairedChange::of(&logs);
            let decided = step.log_low.abs().min(step.log_high.abs()) > resolution || step.log_high - step.log_low < resolution;
            if decided || rounds >= self.args.max_rounds {
                break step;
            }
            rounds = (rounds * 2).min(self.args.max_rounds);
        };
        report.commit = Some(self.commits[hi].clone());
        (report.step_pct, report.step_low_pct, report.step_high_pct) =
            (Some(pct(step.log_mean)), Some(pct(step.log_low)), Some(pct(step.log_high)));
        let same_way = step.log_mean.signum() == total.log_mean.signum();
        let past = if total.log_mean > 0.0 { step.log_low > resolution } else { step.log_high < -resolution };
        let subject = self.subject(hi);
        if same_way && past {
            report.answer = "step";
            report.sentence = format!(
                "{} stepped the metric {} against its parent ({} rounds); bad against good: {}{subject}",
                short(&self.commits[hi]),
                change_text(&step),
                logs.len(),
                change_text(&total)
            );
        } else if step.log_high - step.log_low < 2.0 * resolution {
            report.answer = "drift";
            report.sentence = format!(
                "drift: no single commit moved it by {}% or more: the last step, {} against its parent, is {}, \
                 while bad against good is {}: many small steps",
                self.args.resolution,
                short(&self.commits[hi]),
                change_text(&step),
                change_text(&total)
            );
        } else {
            report.sentence = format!(
                "cannot tell: {} against its parent is {} after {} rounds: too noisy to name it or rule it out",
                short(&self.commits[hi]),
                change_text(&step),
                logs.len()
            );
        }
        Ok(self.finish(report, started))
    }

    fn probe(&mut self, i: usize, change: &PairedChange, total: f64, (share_low, share_high): (f64, f64), verdict: &'static str) {
        let probe = Probe {
            commit: self.commits[i].clone(),
            position: i,
            rounds: self.logs[&i].len(),
            change_pct: pct(change.log_mean),
            low_pct: pct(change.log_low),
            high_pct: pct(change.log_high),
            share: change.log_mean / total,
            share_low,
            share_high,
            verdict,
        };
        eprintln!("bisect: {} ({i}): {}: {verdict}", short(&probe.commit), interval_text(probe.change_pct, probe.low_pct, probe.high_pct));
        self.probes.push(probe);
    }

    /// `: "<subject>"` of commit `i`, for the sentence.
    fn subject(&self, i: usize) -> String {
        git(self.repo, &["log", "-1", "--format=%s", &self.commits[i]])
            .map_or(String::new(), |s| format!(": \"{}\"", s.chars().take(100).collect::<String>()))
    }

    fn finish(&mut self, mut report: BisectReport, started: Instant) -> BisectReport {
        let n = self.commits.len() - 1;
        if let Some(logs) = self.logs.get(&n) {
            let total = PairedChange::of(logs);
            self.probes.insert(
                0,
                Probe {
                    commit: self.commits[n].clone(),
                    position: n,
                    rounds: logs.len(),
                    change_pct: pct(total.log_mean),
                    low_pct: pct(total.log_low),
                    high_pct: pct(total.log_high),
                    share: 1.0,
                    share_low: 1.0,
                    share_high: 1.0,
                    verdict: "bad end",
                },
            );
        }
        report.probes = std::mem::take(&mut self.probes);
        report.seconds = started.elapsed().as_secs_f64();
        report
    }
}

/// A change in % with its interval: `+1.01% [+0.07%, +1.96%]`.
fn interval_text(change: f64, low: f64, high: f64) -> String {
    format!("{change:+.2}% [{low:+.2}%, {high:+.2}%]")
}

/// `change` (log ratios) as [`interval_text`] writes it.
fn change_text(change: &PairedChange) -> String {
    interval_text(pct(change.log_mean), pct(change.log_low), pct(change.log_high))
}

fn short(sha: &str) -> &str {
    &sha[..sha.len().min(9)]
}

/// `git ARGS` in `repo`: its trimmed stdout, or its stderr as the error.
fn git(repo: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git").args(args).current_dir(repo).output()?;
    if !out.status.success() {
        bail!("git {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim());
    }
    Ok(String::from_utf8(out.stdout)?.trim().to_owned())
}

pub fn markdown(r: &BisectReport) -> String {
    let mut out = format!(
        "### Bisect of {}: {} … {} ({} commits)\n\n**{}**: {}\n\n| commit | place | rounds | change against good | 95% CI | share of the total | verdict |\n|---|---|---|---|---|---|---|\n",
        r.metric,
        short(&r.good),
        short(&r.bad),
        r.commits,
        r.answer,
        r.sentence
    );
    for p in &r.probes {
        out.push_str(&format!(
            "| `{}` | {} | {} | {:+.2}% | [{:+.2}%, {:+.2}%] | {:.0}% [{:.0}%, {:.0}%] | {} |\n",
            short(&p.commit),
            p.position,
            p.rounds,
            p.change_pct,
            p.low_pct,
            p.high_pct,
            p.share * 100.0,
            p.share_low * 100.0,
            p.share_high * 100.0,
            p.verdict
        ));
    }
    out.push_str(&format!("\n{:.0} s in all.\n", r.seconds));
    out
}

/// The page of `--html`: each probed commit's change against the good end
/// by its place in the range, its interval's ends, and the answer's commit marked.
pub fn html(r: &BisectReport) -> anyhow::Result<String> {
    use pages::html::{Lines, esc, page};
    let mut probes: Vec<&Probe> = r.probes.iter().collect();
    probes.sort_by_key(|p| p.position);
    let mut points = vec![(0.0, 0.0)];
    points.extend(probes.iter().map(|p| (p.position as f64, p.change_pct)));
    let low: Vec<(f64, f64)> = probes.iter().map(|p| (p.position as f64, p.low_pct)).collect();
    let high: Vec<(f64, f64)> = probes.iter().map(|p| (p.position as f64, p.high_pct)).collect();
    let marked = r.commit.as_ref().and_then(|c| r.probes.iter().find(|p| &p.commit == c).map(|p| p.position as f64 - 0.5));
    let caption = format!("{}: change against good by commit", r.metric);
    let label = |x: &f64| format!("{x:.0}");
    let lines = Lines {
        caption: &caption,
        x_desc: "commit, by its place after good",
        y_desc: "% against good",
        series: vec![("change".to_owned(), points), ("95% CI low".to_owned(), low), ("95% CI high".to_owned(), high)],
        x_labels: &label,
        whole_x: true,
        shaded: Vec::new(),
        marks: marked.into_iter().collect(),
        legend_low: false,
    };
    let body = format!(
        "<p><b>{}</b>: {}</p>\n<div class=\"plots\">{}</div>\n<pre>{}</pre>\n",
        esc(r.answer),
        esc(&r.sentence),
        lines.svg()?,
        esc(&markdown(r))
    );
    Ok(page("flowbench bisect", &body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_gate_metric_has_a_bisect_key() {
        let keys: Vec<String> = METRICS.iter().map(key_of).collect();
        assert_eq!(
            keys,
            [
                "empty_qps",
                "empty_cpu_per_request",
                "empty_p50_duration",
                "empty_p99_duration",
                "ttfe_p50",
                "ttfe_p99",
                "llm_events_per_s",
                "llm_cpu_per_event"
            ]
        );
    }
}
