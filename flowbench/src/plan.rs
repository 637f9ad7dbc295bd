//! A command's flags checked and resolved into what it runs: a `Plan`
//! (`run`), an `AbPlan`, a `SoakPlan`. Every check is here, so a bad value
//! of any kind (a key that cannot be a header, a start in the past, flags
//! wrong together, a scenario file's error) is refused with exit 2 before a
//! process starts or a byte is sent; `cmd/` only carries a plan out.

use crate::cli::{AbArgs, ReportFiles, RunArgs, ScriptArgs, SoakArgs, TargetTls, UpArgs};
use crate::load::client::Protocol;
use crate::load::client::{TargetOptions, bearer};
use crate::load::driver::{AfterTerminal, Mode};
use crate::load::inputs::{InputOrder, InputSet};
use crate::load::metrics::RequestSlo;
use crate::load::schedule::{LoadModel, Stage};
use crate::report::Shard;
use crate::report::ab::AbScenario;
use crate::report::thresholds::Threshold;
use crate::scenario::{FileLoad, FileScenario, ScenarioFile};
use http::HeaderValue;
use mock::Script;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

/// Flags that are each valid but wrong together; exit 2 with clap's format.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

macro_rules! usage {
    ($($arg:tt)*) => { UsageError(format!($($arg)*)) };
}

impl UpArgs {
    /// Flags that are each valid but wrong together.
    pub fn check(&self) -> Result<(), UsageError> {
        if self.replicas > 1 && self.store == "memory" {
            return Err(usage!(
                "--replicas {} with --store memory: each replica would hold only its own runs, and GET and stop would miss on the others; give --store sqlite:PATH or postgres://…",
                self.replicas
            ));
        }
        Ok(())
    }
}

impl ScriptArgs {
    pub fn build(&self) -> anyhow::Result<Script> {
        let mut script = match &self.mock_script {
            Some(path) => Script::from_file(path)?,
            None => Script::default(),
        };
        if let Some(d) = self.ttft {
            script.time_to_first_token = d;
        }
        if let Some(d) = self.inter_token_delay {
            script.inter_token_delay = d;
        }
        if let Some(d) = self.jitter {
            script.jitter = d;
        }
        if let Some(seed) = self.seed {
            script.seed = seed;
        }
        Ok(script)
    }
}

/// The profile's files: (name, text); their relative paths are under the
/// workspace's `fixtures/scenarios/`.
fn profile_files(profile: crate::cli::Profile) -> &'static [(&'static str, &'static str)] {
    use crate::cli::Profile;
    match profile {
        Profile::Dify => &[
            ("fixtures/scenarios/seed-empty.toml", include_str!("../../fixtures/scenarios/seed-empty.toml")),
            ("fixtures/scenarios/seed-llm.toml", include_str!("../../fixtures/scenarios/seed-llm.toml")),
        ],
        Profile::Capacity => &[("fixtures/scenarios/capacity.toml", include_str!("../../fixtures/scenarios/capacity.toml"))],
    }
}

/// A scenario to run, fully resolved.
#[derive(Debug, Clone)]
pub struct PlannedScenario {
    pub name: String,
    /// At least one.
    pub apps: Vec<PlannedApp>,
    pub load: LoadModel,
    pub warmup: Duration,
    pub duration: Duration,
    pub protocol: Protocol,
}

/// One app of a planned scenario.
#[derive(Debug, Clone)]
pub struct PlannedApp {
    pub name: String,
    /// The `Authorization` header's value; `None`: the embedded stack's key
    /// for `fixture`.
    pub key: Option<HeaderValue>,
    pub fixture: String,
    pub path: Option<http::uri::PathAndQuery>,
    pub mode: Mode,
    pub weight: u32,
    pub inputs: InputSet,
}

/// Everything a run needs, validated in one place.
#[derive(Debug, Clone)]
pub struct Plan {
    pub scenarios: Vec<PlannedScenario>,
    pub window_s: u64,
    pub timeout: Duration,
    pub seed: u64,
    pub target: Option<String>,
    pub mock_script: Option<PathBuf>,
    pub driver_threads: usize,
    pub stamped: bool,
    pub abort_after_chunks: Option<u32>,
    pub after_terminal: AfterTerminal,
    /// Check each stream's grammar and keep its timeline.
    pub integrity: bool,
    /// The report's name and commit.
    pub label: crate::report::RunLabel,
    pub target_options: TargetOptions,
    pub target_pids: Vec<u32>,
    pub target_cgroup: Option<PathBuf>,
    pub thresholds: Vec<Threshold>,
    /// The files' `[slo] thresholds` (`capacity` adds its `--slo`s).
    pub slo: Vec<Threshold>,
    /// `--request-slo`, or a file's `[slo] request`: goodput is counted.
    pub request_slo: Option<RequestSlo>,
    /// `--trace-sample`: the share of traceparents flagged sampled; `None`
    /// with `--no-traceparent`.
    pub trace_sample: Option<f64>,
    /// `--max-error-rate`: above it a scenario's failures fail the run (exit 5).
    pub max_error_rate: f64,
    pub shard: Option<Shard>,
    /// In the future when planned.
    pub start_at: Option<SystemTime>,
    pub files: ReportFiles,
    /// `--scrape`, `--series`, `--prometheus` and its queries.
    pub observe: crate::cli::ObserveArgs,
}

/// The flags' defaults where neither a flag nor a file sets a value.
const DEFAULT_USERS: u32 = 10;
const DEFAULT_SPAWN_RATE: f64 = 2.0;
const DEFAULT_DURATION: Duration = Duration::from_secs(60);
const DEFAULT_WARMUP: Duration = Duration::from_secs(5);
const DEFAULT_CONNECTIONS: u32 = 256;
/// `--quick`: the measured phase and the warm-up of each scenario.
const QUICK: (Duration, Duration) = (Duration::from_secs(5), Duration::from_secs(1));

impl RunArgs {
    /// The scenario files (or the profile's) with the flags on top, checked.
    pub fn plan(&self) -> Result<Plan, UsageError> {
        let files = self.scenario_files()?;
        let mut mock_script = None;
        let mut timeout = None;
        let mut seed = None;
        let mut thresholds = Vec::new();
        let mut slo = Vec::new();
        let mut request_slo = None;
        let mut all: Vec<(String, FileScenario)> = Vec::new();
        for (origin, file) in files {
            merge_once(&mut timeout, file.timeout, "timeout", &origin)?;
            merge_once(&mut seed, file.seed, "seed", &origin)?;
            merge_once(&mut mock_script, file.mock_script, "mock_script", &origin)?;
            thresholds.extend(file.thresholds);
            slo.extend(file.slo);
            merge_once(&mut request_slo, file.request_slo, "[slo] request", &origin)?;
            for s in file.scenarios {
                if let Some((first, _)) = all.iter().find(|(_, o)| o.name == s.name) {
                    return Err(usage!("scenario {:?} is in {first} and in {origin}", s.name));
                }
                all.push((origin.clone(), s));
            }
        }
        for (flag, d) in [("--duration", self.duration), ("--warmup", self.warmup), ("--timeout", self.timeout)] {
            if d.is_some_and(|d| d > crate::scenario::MAX_DURATION) {
                return Err(usage!("{flag}: over a year"));
            }
        }
        let mut known: Vec<String> = Vec::new();
        for (_, s) in &all {
            known.extend(s.apps.iter().map(|a| a.name.clone()));
            if s.apps.len() == 1 {
                known.push(s.name.clone());
            }
        }
        let chosen: Vec<(String, FileScenario, Protocol)> = match self.scenario.as_str() {
            "all" => all.into_iter().map(|(o, s)| (o, s, Protocol::Dify)).collect(),
            // The mock LLM straight, at the `llm` scenario's load.
            "direct" if !all.iter().any(|(_, s)| s.name == "direct") => {
                let (origin, mut llm) = all
                    .into_iter()
                    .find(|(_, s)| s.name == "llm")
                    .ok_or_else(|| usage!("--scenario direct runs at the load of a scenario named llm; there is none"))?;
                llm.name = "direct".to_owned();
                let app = &mut llm.apps[0];
                app.name = "direct".to_owned();
                // The direct path's OpenAI-compatible mock takes any key.
                app.key = Some("sk-flowbench".to_owned());
                app.mode = Mode::Streaming;
                llm.apps.truncate(1);
                vec![(origin, llm, Protocol::OpenAi)]
            }
            name => {
                let names: Vec<String> = all.iter().map(|(_, s)| s.name.clone()).collect();
                let found = all.into_iter().find(|(_, s)| s.name == name);
                let (o, s) = found.ok_or_else(|| usage!("--scenario {name:?}: no such scenario; there are: all, {}", names.join(", ")))?;
                vec![(o, s, Protocol::Dify)]
            }
        };
        let keys = self.keys(&chosen, known)?;
        // A file's thresholds on a scenario that does not run are not
        // judged (`--threshold`s are: the user named them for this run).
        let runs = |t: &Threshold| t.scenario.as_ref().is_none_or(|scope| chosen.iter().any(|(_, s, _)| &s.name == scope));
        thresholds.retain(runs);
        slo.retain(runs);
        let seed = self.seed.or(seed.map(|(s, _)| s)).unwrap_or(1);
        // A shard's users draw their own inputs and think times.
        let seed = match self.shard {
            Some(shard) => seed ^ (u64::from(shard.index) << 32),
            None => seed,
        };
        let mut scenarios = Vec::new();
        for (origin, s, protocol) in chosen {
            let (mut load, warmup, duration) = self.load(&origin, &s, seed)?;
            if let Some(shard) = self.shard {
                load = load
                    .share(shard.index, shard.count)
                    .map_err(|e| usage!("--shard {}/{}: scenario {:?}: {e}", shard.index, shard.count, s.name))?;
            }
            let single = s.apps.len() == 1;
            let mut apps = Vec::new();
            for app in s.apps {
                let flag = keys.get(app.name.as_str()).or_else(|| keys.get(s.name.as_str()).filter(|_| single)).or(keys.get(""));
                let key = match (flag, app.key, &app.key_env) {
                    (Some(key), _, _) => Some((key.clone(), "--api-key".to_owned())),
                    (None, Some(key), _) => Some((key, format!("{origin} line {}: `key`", app.line))),
                    (None, None, Some(var)) => Some((
                        std::env::var(var).map_err(|_| {
                            usage!("{origin} line {}: app {:?}: `key_env` names {var:?}, which is not set", app.line, app.name)
                        })?,
                        format!("{origin} line {}: `key_env` {var:?}", app.line),
                    )),
                    (None, None, None) => None,
                };
                // The key becomes a header here, so a bad one stops the run before it starts.
                let key = match key {
                    Some((text, from)) => Some(bearer(&text).map_err(|_| {
                        usage!(
                            "{from}: the API key of app {:?} holds characters a header cannot (a control character or a non-visible byte)",
                            app.name
                        )
                    })?),
                    None => None,
                };
                if self.target.is_none() && key.is_none() && !mock::fixtures::APPS.iter().any(|f| f.name == app.fixture) {
                    let fixtures: Vec<&str> = mock::fixtures::APPS.iter().map(|f| f.name).collect();
                    return Err(usage!(
                        "{origin} line {}: app {:?} has no key, and the embedded stack has no fixture app {:?} (set `fixture` to one of: {})",
                        app.line,
                        app.name,
                        app.fixture,
                        fixtures.join(", ")
                    ));
                }
                if self.target.is_some() && key.is_none() {
                    return Err(usage!(
                        "--target needs an API key for app {:?} of scenario {:?} (--api-key {}=app-...)",
                        app.name,
                        s.name,
                        app.name
                    ));
                }
                // A profile's llm scenario always streams (the direct path too).
                let profile_llm = self.scenario_files.is_empty() && matches!(s.name.as_str(), "llm" | "direct");
                let mode = match self.mode {
                    Some(mode) if !profile_llm => mode,
                    _ => app.mode,
                };
                let inputs = match &self.inputs {
                    Some(inputs) => {
                        let chat = app.path.as_ref().is_some_and(crate::scenario::is_chat);
                        let row = crate::scenario::row(inputs.clone(), chat)
                            .map_err(|m| usage!("--inputs for app {:?} of scenario {:?}: {m}", app.name, s.name))?;
                        InputSet::new(&[row], InputOrder::RoundRobin)
                    }
                    None => app.inputs.unwrap_or_else(InputSet::questions),
                };
                apps.push(PlannedApp { name: app.name, key, fixture: app.fixture, path: app.path, mode, weight: app.weight, inputs });
            }
            scenarios.push(PlannedScenario { name: s.name, apps, load, warmup, duration, protocol });
        }
        thresholds.extend(self.thresholds.iter().cloned());
        let target_options = target_options(&self.tls, self.target.as_deref())?;
        // A CPU source that cannot be read is a mistake, not "not measured".
        for pid in &self.target_pids {
            if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
                return Err(usage!("--target-pid {pid}: no such process on this machine"));
            }
        }
        if let Some(cgroup) = &self.target_cgroup
            && crate::load::health::cgroup_cpu_ns(cgroup).is_none()
        {
            return Err(usage!(
                "--target-cgroup {}: no cgroup v2 with a readable cpu.stat there (a relative path is under /sys/fs/cgroup)",
                cgroup.display()
            ));
        }
        if self.observe.prometheus.is_some() && self.observe.target_cpu.is_none() && self.observe.target_memory.is_none() {
            return Err(usage!("--prometheus: give the query to run with --target-cpu or --target-memory"));
        }
        for url in self.observe.scrape.iter().chain(&self.observe.prometheus) {
            match url::Url::parse(url) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => return Err(usage!("{url:?} is not an http:// or https:// URL (--scrape, --prometheus)")),
            }
        }
        if let Some(at) = self.start_at.filter(|at| *at <= SystemTime::now()) {
            return Err(usage!("--start-at {}: that instant has passed", humantime::format_rfc3339_seconds(at)));
        }
        Ok(Plan {
            scenarios,
            window_s: self.window.as_secs(),
            timeout: self.timeout.or(timeout.map(|(t, _)| t)).unwrap_or(Duration::from_secs(60)),
            seed,
            target: self.target.clone(),
            mock_script: self.mock_script.clone().or(mock_script.map(|(m, _)| m)),
            driver_threads: self.driver.driver_threads,
            stamped: self.stamped,
            abort_after_chunks: self.abort_after_chunks,
            after_terminal: self.driver.after_terminal.into(),
            integrity: !self.driver.no_integrity,
            label: crate::report::RunLabel { name: self.label.clone(), commit: self.commit.clone().or_else(git_head) },
            target_pids: self.target_pids.clone(),
            thresholds,
            slo,
            request_slo: self.request_slo.clone().or(request_slo.map(|(r, _)| r)),
            trace_sample: (!self.driver.no_traceparent).then_some(self.driver.trace_sample),
            max_error_rate: self.errors.max_error_rate,
            shard: self.shard,
            start_at: self.start_at,
            target_cgroup: self.target_cgroup.clone(),
            target_options,
            files: self.files.clone(),
            observe: self.observe.clone(),
        })
    }

    /// The scenario files given, or the profile's, read.
    fn scenario_files(&self) -> Result<Vec<(String, ScenarioFile)>, UsageError> {
        if self.scenario_files.is_empty() {
            let dir = mock::workspace_root().join("fixtures/scenarios");
            return profile_files(self.profile)
                .iter()
                .map(|(name, text)| ScenarioFile::parse(text, name, &dir).map(|f| ((*name).to_owned(), f)))
                .collect::<Result<_, _>>()
                .map_err(|e| usage!("{e}"));
        }
        self.scenario_files
            .iter()
            .map(|path| ScenarioFile::load(path).map(|f| (path.display().to_string(), f)).map_err(|e| usage!("{e}")))
            .collect()
    }

    /// `--api-key`s by the app or scenario they name (`""`: the one app
    /// that runs). A name may be any app or one-app scenario of the files,
    /// run or not, so one command line serves a file's scenarios one by one.
    fn keys(
        &self,
        chosen: &[(String, FileScenario, Protocol)],
        mut known: Vec<String>,
    ) -> Result<std::collections::HashMap<String, String>, UsageError> {
        let mut running: Vec<&str> = Vec::new();
        for (_, s, _) in chosen {
            running.extend(s.apps.iter().map(|a| a.name.as_str()));
            if s.apps.len() == 1 {
                running.push(&s.name);
            }
        }
        running.sort_unstable();
        running.dedup();
        known.extend(running.iter().map(|n| (*n).to_owned()));
        known.sort_unstable();
        known.dedup();
        let n_apps: usize = chosen.iter().map(|(_, s, _)| s.apps.len()).sum();
        let mut keys = std::collections::HashMap::new();
        for given in &self.api_keys {
            let (name, key) = match given.split_once('=') {
                Some((name, key)) if known.iter().any(|n| n == name) => (name.to_owned(), key.to_owned()),
                Some((other, _)) if !other.starts_with("app-") => {
                    return Err(usage!("--api-key {given:?}: {other:?} names no app or scenario; there are: {}", known.join(", ")));
                }
                _ if n_apps == 1 => (String::new(), given.clone()),
                _ => return Err(usage!("--api-key {given:?}: several apps run; give NAME=KEY for each of: {}", running.join(", "))),
            };
            if keys.contains_key(&name) {
                let shown = if name.is_empty() { "KEY" } else { name.as_str() };
                return Err(usage!("--api-key {shown}: given twice"));
            }
            keys.insert(name, key);
        }
        Ok(keys)
    }

    /// A scenario's load, warm-up and measured time, flags over the file.
    fn load(&self, origin: &str, s: &FileScenario, seed: u64) -> Result<(LoadModel, Duration, Duration), UsageError> {
        match &s.load {
            FileLoad::Flat { users, spawn_rate, rate, poisson, connections, duration, warmup } => {
                let warmup_given = self.warmup.is_some() || (!self.quick && warmup.is_some());
                // A flag wins over --quick, and --quick over the file.
                let (duration, warmup) = if self.quick {
                    (self.duration.unwrap_or(QUICK.0), self.warmup.unwrap_or(QUICK.1))
                } else {
                    (self.duration.or(*duration).unwrap_or(DEFAULT_DURATION), self.warmup.or(*warmup).unwrap_or(DEFAULT_WARMUP))
                };
                if self.spawn_rate.is_some() && self.users.is_none() && rate.is_some() && self.rate.is_none() {
                    return Err(usage!(
                        "--spawn-rate: scenario {:?} ({origin} line {}) is open (`rate`); give --users too to make it closed",
                        s.name,
                        s.line
                    ));
                }
                let closed_flags = self.users.is_some() || self.spawn_rate.is_some();
                let rate = if closed_flags { None } else { self.rate.or(*rate) };
                if rate.is_some() && !s.think_time.is_zero() {
                    return Err(usage!(
                        "--rate: scenario {:?} ({origin} line {}) has a `think_time`, which an open load cannot have",
                        s.name,
                        s.line
                    ));
                }
                // A warm-up no flag or file set covers the users' ramp and a
                // second after it, so the figures are of every user running.
                let covering = |users: u32, spawn_rate: f64| -> Result<Duration, UsageError> {
                    if warmup_given {
                        return Ok(warmup);
                    }
                    let ramp = f64::from(users.saturating_sub(1)) / spawn_rate;
                    match Duration::try_from_secs_f64(ramp).ok().and_then(|r| r.checked_add(QUICK.1)) {
                        Some(covering) if covering <= crate::scenario::MAX_DURATION => Ok(warmup.max(covering)),
                        _ => Err(usage!(
                            "scenario {:?}: {users} users at {spawn_rate}/s take over a year to start, and the warm-up covers the ramp; give --warmup, or a higher --spawn-rate",
                            s.name
                        )),
                    }
                };
                let mut warmup = warmup;
                let load = match rate {
                    Some(rate) => LoadModel::Open {
                        rate,
                        poisson: self.poisson || poisson.unwrap_or(false),
                        connections: self.connections.or(*connections).unwrap_or(DEFAULT_CONNECTIONS),
                        seed,
                    },
                    None => {
                        if self.poisson || self.connections.is_some() {
                            return Err(usage!(
                                "--poisson and --connections are for an open load (--rate); scenario {:?} ({origin} line {}) is closed",
                                s.name,
                                s.line
                            ));
                        }
                        let users = self.users.or(*users).unwrap_or(DEFAULT_USERS);
                        let spawn_rate = self.spawn_rate.or(*spawn_rate).unwrap_or(DEFAULT_SPAWN_RATE);
                        warmup = covering(users, spawn_rate)?;
                        if s.think_time.is_zero() {
                            LoadModel::Closed { users, spawn_rate }
                        } else {
                            // The same ramp as `Closed`, as stages, to carry the think time.
                            let ramp = f64::from(users) / spawn_rate;
                            let total = (warmup + duration).as_secs_f64();
                            let stages = vec![
                                Stage { duration_s: ramp, target: f64::from(users) },
                                Stage { duration_s: (total - ramp).max(0.0), target: f64::from(users) },
                            ];
                            LoadModel::RampingUsers { stages, think_time: s.think_time }
                        }
                    }
                };
                Ok((load, warmup, duration))
            }
            FileLoad::Stages { stages, open, poisson, connections, warmup } => {
                let given = [
                    ("--users", self.users.is_some()),
                    ("--spawn-rate", self.spawn_rate.is_some()),
                    ("--rate", self.rate.is_some()),
                    ("--duration", self.duration.is_some()),
                    ("--warmup", self.warmup.is_some()),
                ];
                if let Some((flag, _)) = given.iter().find(|(_, set)| *set) {
                    return Err(usage!(
                        "{flag}: scenario {:?} ({origin} line {}) sets its load by stages; edit them instead",
                        s.name,
                        s.line
                    ));
                }
                if !open && (self.poisson || self.connections.is_some()) {
                    return Err(usage!(
                        "--poisson and --connections are for stages of rate; scenario {:?} ({origin} line {}) has stages of users",
                        s.name,
                        s.line
                    ));
                }
                let mut stages = stages.clone();
                let mut warmup = *warmup;
                let total: f64 = stages.iter().map(|s| s.duration_s).sum();
                if self.quick {
                    let scale = (QUICK.0 + QUICK.1).as_secs_f64() / total;
                    for stage in &mut stages {
                        stage.duration_s *= scale;
                    }
                    warmup = warmup.mul_f64(scale);
                }
                let total: f64 = stages.iter().map(|s| s.duration_s).sum();
                let duration = Duration::from_secs_f64(total).saturating_sub(warmup);
                let load = if *open {
                    LoadModel::RampingRate {
                        stages,
                        poisson: self.poisson || *poisson,
                        connections: self.connections.unwrap_or(*connections),
                        seed,
                    }
                } else {
                    LoadModel::RampingUsers { stages, think_time: s.think_time }
                };
                Ok((load, warmup, duration))
            }
        }
    }
}

/// A top-level key that two files may both set, if to the same value;
/// the slot keeps the file that set it first.
fn merge_once<T: PartialEq + std::fmt::Debug>(
    slot: &mut Option<(T, String)>,
    value: Option<T>,
    key: &str,
    origin: &str,
) -> Result<(), UsageError> {
    match (slot.as_ref(), value) {
        (Some((old, first)), Some(new)) if *old != new => {
            Err(usage!("`{key}` is {old:?} in {first} and {new:?} in {origin}: give it in one file, or as a flag"))
        }
        (None, Some(new)) => {
            *slot = Some((new, origin.to_owned()));
            Ok(())
        }
        _ => Ok(()),
    }
}

/// How requests reach the target (`url`, when one is given), checked as
/// the client checks them when it resolves a target.
fn target_options(tls: &TargetTls, url: Option<&str>) -> Result<TargetOptions, UsageError> {
    let options = TargetOptions { headers: tls.headers.clone(), insecure: tls.insecure, ca_cert: tls.ca_cert.clone() };
    options
        .check_for(url.is_some_and(|u| u.starts_with("https://")))
        .map_err(|e| usage!("{e:#} ({})", url.map_or("no --target is given".to_owned(), |u| format!("the target is {u:?}"))))?;
    Ok(options)
}

/// `flowbench ab`, checked.
#[derive(Debug, Clone)]
pub struct AbPlan {
    /// The flags whose values clap checked alone (sides, load, slices).
    pub flags: AbArgs,
    /// `empty`'s mode as asked; `llm` always streams.
    pub mode: Mode,
    pub api_key: HeaderValue,
    pub target_options: TargetOptions,
}

impl AbArgs {
    pub fn plan(&self) -> Result<AbPlan, UsageError> {
        let api_key = bearer(&self.api_key)
            .map_err(|_| usage!("--api-key: the key holds characters a header cannot (a control character or a non-visible byte)"))?;
        // Both sides are reached alike: the TLS flags need both https://.
        target_options(&self.tls, Some(&self.a))?;
        let options = target_options(&self.tls, Some(&self.b))?;
        Ok(AbPlan {
            flags: self.clone(),
            mode: match self.scenario {
                AbScenario::Empty => self.mode,
                AbScenario::Llm => Mode::Streaming,
            },
            api_key,
            target_options: options,
        })
    }
}

/// `flowbench soak`, checked.
#[derive(Debug, Clone)]
pub struct SoakPlan {
    /// The flags whose values clap checked alone.
    pub flags: SoakArgs,
    /// The mock's script, a file that parses.
    pub mock_script: PathBuf,
}

impl SoakArgs {
    pub fn plan(&self) -> Result<SoakPlan, UsageError> {
        let mock_script = self.mock_script.clone().unwrap_or_else(|| mock::workspace_root().join("fixtures/mock/soak.toml"));
        Script::from_file(&mock_script).map_err(|e| usage!("--mock-script: {e:#}"))?;
        if !(self.max_growth.is_finite() && self.max_growth >= 0.0) {
            return Err(usage!("--max-growth {}: a percentage of 0 or more", self.max_growth));
        }
        Ok(SoakPlan { flags: self.clone(), mock_script })
    }
}

/// The current directory's git HEAD (12 hex digits), if it is in a work tree.
fn git_head() -> Option<String> {
    let out =
        std::process::Command::new("git").args(["rev-parse", "--short=12", "HEAD"]).stderr(std::process::Stdio::null()).output().ok()?;
    let sha = String::from_utf8(out.stdout).ok()?.trim().to_owned();
    (out.status.success() && !sha.is_empty()).then_some(sha)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    /// The `Authorization` value of `key`.
    fn auth(key: &str) -> Option<HeaderValue> {
        Some(bearer(key).unwrap())
    }

    fn plan(args: &[&str]) -> Plan {
        let cli = Cli::try_parse_from([&["flowbench", "run"], args].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        args.plan().unwrap()
    }

    /// The profiles are their files: the same scenarios, apps and loads.
    #[test]
    fn a_profile_is_its_scenario_files() {
        let files = |names: &[&str]| -> Vec<String> {
            names
                .iter()
                .flat_map(|n| {
                    ["--scenario-file".to_owned(), mock::workspace_root().join("fixtures/scenarios").join(n).display().to_string()]
                })
                .collect()
        };
        for (profile, names) in [("dify", &["seed-empty.toml", "seed-llm.toml"][..]), ("capacity", &["capacity.toml"][..])] {
            let by_profile = plan(&["--profile", profile]);
            let by_file = files(names);
            let by_file = plan(&by_file.iter().map(String::as_str).collect::<Vec<_>>());
            let shape = |p: &Plan| -> Vec<String> {
                p.scenarios
                    .iter()
                    .map(|s| {
                        format!(
                            "{} {:?} {:?} {:?} {:?}",
                            s.name,
                            s.load,
                            s.warmup,
                            s.duration,
                            s.apps.iter().map(|a| (&a.name, a.mode)).collect::<Vec<_>>()
                        )
                    })
                    .collect()
            };
            assert_eq!(shape(&by_profile), shape(&by_file), "{profile}");
            assert_eq!(by_profile.mock_script, by_file.mock_script, "{profile}");
        }
        let dify = plan(&[]);
        assert_eq!(dify.scenarios.iter().map(|s| s.name.as_str()).collect::<Vec<_>>(), ["empty", "llm"]);
        assert_eq!(dify.scenarios[0].load, LoadModel::Closed { users: 10, spawn_rate: 2.0 });
        // The profile's 5 s warm-up covers its ramp (10 users at 2/s: the last starts at 4.5 s).
        assert_eq!((dify.scenarios[0].warmup, dify.scenarios[0].duration), (DEFAULT_WARMUP, DEFAULT_DURATION));
        // --quick's warm-up lasts a second past the ramp.
        let quick = plan(&["--quick"]);
        assert_eq!(quick.scenarios[0].warmup, Duration::from_millis(5500), "--quick measures after the ramp too");
        let given = plan(&["--quick", "--warmup", "1s"]);
        assert_eq!(given.scenarios[0].warmup, Duration::from_secs(1), "a warm-up asked for is kept");
        // A ramp no warm-up can cover is refused, not a panic.
        assert!(plan_err(&["--quick", "--users", "100", "--spawn-rate", "1e-18"]).contains("take over a year to start"));
        assert!(plan(&["--profile", "capacity"]).mock_script.is_some_and(|p| p.ends_with("fixtures/mock/fast.toml")));
    }

    #[test]
    fn flags_override_a_files_flat_load_and_quick_scales_stages() {
        let p = plan(&["--scenario", "empty", "--rate", "50", "--connections", "8", "--duration", "3s", "--mode", "streaming"]);
        let s = &p.scenarios[0];
        assert_eq!(s.load, LoadModel::Open { rate: 50.0, poisson: false, connections: 8, seed: 1 });
        assert_eq!((s.duration, s.apps[0].mode), (Duration::from_secs(3), Mode::Streaming));
        let llm = plan(&["--scenario", "llm", "--mode", "blocking"]);
        assert_eq!(llm.scenarios[0].apps[0].mode, Mode::Streaming, "the llm scenario always streams");
        let direct = plan(&["--scenario", "direct"]);
        assert_eq!((direct.scenarios[0].protocol, direct.scenarios[0].apps[0].key.clone()), (Protocol::OpenAi, auth("sk-flowbench")));
        let mixed = mock::workspace_root().join("fixtures/scenarios/mixed.toml");
        let quick = plan(&["--quick", "--scenario-file", mixed.to_str().unwrap()]);
        let s = &quick.scenarios[0];
        let LoadModel::RampingUsers { stages, think_time } = &s.load else { panic!("{:?}", s.load) };
        let total: f64 = stages.iter().map(|st| st.duration_s).sum();
        assert!((total - 6.0).abs() < 1e-9, "{total}");
        assert!(((s.warmup + s.duration).as_secs_f64() - 6.0).abs() < 1e-6);
        assert_eq!(think_time.max_s, 0.15);
        assert_eq!(
            s.apps.iter().map(|a| (a.name.as_str(), a.weight, a.inputs.len())).collect::<Vec<_>>(),
            [("chat-like", 3, 8), ("lookup", 1, 1)]
        );
    }

    #[test]
    fn keys_may_name_any_app_of_the_files_and_nothing_else() {
        let file = mock::workspace_root().join("fixtures/scenarios/dify-real.toml");
        let file = file.to_str().unwrap();
        let base = ["--scenario-file", file, "--target", "http://127.0.0.1:9", "--scenario", "empty"];
        let p = plan(&[&base[..], &["--api-key", "empty=app-a", "--api-key", "http=app-b"]].concat());
        assert_eq!(p.scenarios.len(), 1);
        assert_eq!(p.scenarios[0].apps[0].key, auth("app-a"));
        let cli = Cli::try_parse_from([&["flowbench", "run"][..], &base[..], &["--api-key", "nope=app-c"]].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        let err = args.plan().unwrap_err().to_string();
        assert!(err.contains("\"nope\" names no app or scenario; there are: empty, empty-streaming, http"), "{err}");
        let cli = Cli::try_parse_from([&["flowbench", "run"][..], &base[..]].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        assert!(args.plan().unwrap_err().to_string().contains("--target needs an API key for app \"empty\""));
    }

    fn plan_err(args: &[&str]) -> String {
        let cli = Cli::try_parse_from([&["flowbench", "run"], args].concat()).unwrap();
        let Command::Run(args) = cli.command else { unreachable!() };
        args.plan().unwrap_err().to_string()
    }

    #[test]
    fn a_file_is_checked_against_the_flags_where_they_meet() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            path.display().to_string()
        };
        let two = write(
            "two.toml",
            "[[scenario]]\nname = \"a\"\nthresholds = [\"qps > 1\"]\n[[scenario.apps]]\nfixture = \"empty\"\n\n\
             [[scenario]]\nname = \"b\"\n[[scenario.apps]]\nkey_env = \"FLOWBENCH_TEST_NO_SUCH_VAR\"\n\n\
             [[scenario]]\nname = \"c\"\n[[scenario.apps]]\nname = \"lookup\"\n",
        );
        // A file's thresholds on a scenario that does not run are left out.
        let a = plan(&["--scenario-file", &two, "--scenario", "a"]);
        assert_eq!(a.thresholds.len(), 1);
        let b = plan(&["--scenario-file", &two, "--scenario", "b", "--api-key", "b=app-x"]);
        assert!(b.thresholds.is_empty(), "{:?}", b.thresholds);
        // key_env is read only for an app that runs without --api-key.
        assert_eq!(b.scenarios[0].apps[0].key, auth("app-x"));
        let err = plan_err(&["--scenario-file", &two, "--scenario", "b"]);
        assert!(err.contains("two.toml line 9: app \"b\": `key_env` names \"FLOWBENCH_TEST_NO_SUCH_VAR\", which is not set"), "{err}");
        // An app with no key on the embedded stack must be a fixture app.
        let err = plan_err(&["--scenario-file", &two, "--scenario", "c"]);
        assert!(err.contains("two.toml line 14: app \"lookup\" has no key, and the embedded stack has no fixture app \"lookup\""), "{err}");
        assert!(plan_err(&["--scenario-file", &two, "--scenario", "a", "--api-key", "a=x", "--api-key", "a=y"]).contains("given twice"));
        // A flag wins over --quick.
        let quick = plan(&["--scenario-file", &two, "--scenario", "a", "--quick", "--duration", "2s"]);
        // --quick's warm-up covers the ramp of the file's users (10 at 2/s) and a second.
        assert_eq!((quick.scenarios[0].duration, quick.scenarios[0].warmup), (Duration::from_secs(2), Duration::from_millis(5500)));
        assert!(plan_err(&["--scenario-file", &two, "--scenario", "a", "--duration", "400days"]).contains("--duration: over a year"));
        // A chat app's --inputs must carry its query.
        let chat = write(
            "chat.toml",
            "[[scenario]]\nname = \"c\"\n[[scenario.apps]]\nkey = \"k\"\npath = \"/v1/chat-messages\"\ninputs = [{ query = \"q\" }]\n",
        );
        let err = plan_err(&["--scenario-file", &chat, "--inputs", r#"{"lang":"en"}"#]);
        assert!(err.contains("--inputs for app \"c\" of scenario \"c\": a chat app's row needs a `query`"), "{err}");
        assert!(plan(&["--scenario-file", &chat, "--inputs", r#"{"query":"hi"}"#]).scenarios[0].apps[0].inputs.len() == 1);
        // --rate cannot keep a file's think time; --spawn-rate alone cannot close an open load.
        let think = write("think.toml", "[[scenario]]\nname = \"t\"\nthink_time = \"1s\"\n[[scenario.apps]]\nfixture = \"empty\"\n");
        assert!(plan_err(&["--scenario-file", &think, "--rate", "5"]).contains("--rate: scenario \"t\" ("));
        let open = write("open.toml", "[[scenario]]\nname = \"o\"\nrate = 5.0\n[[scenario.apps]]\nfixture = \"empty\"\n");
        assert!(plan_err(&["--scenario-file", &open, "--spawn-rate", "5"]).contains("--spawn-rate: scenario \"o\" ("));
        // --mode sets every app of a file, a scenario named llm too (only a profile's llm always streams).
        let llm = write("llm.toml", "[[scenario]]\nname = \"llm\"\n[[scenario.apps]]\nfixture = \"llm\"\nmode = \"streaming\"\n");
        assert_eq!(plan(&["--scenario-file", &llm, "--mode", "blocking"]).scenarios[0].apps[0].mode, Mode::Blocking);
        let twice = plan_err(&["--scenario-file", &two, "--scenario-file", &two]);
        assert!(twice.contains("scenario \"a\" is in ") && twice.contains("two.toml and in "), "{twice}");
    }
}
