//! Scenario files (`flowbench run --scenario-file load.toml`), as k6 and
//! Locust users describe a test: scenarios, each with its apps (path, key,
//! mode, weight, inputs inline or from a JSONL/CSV file, drawn round robin or
//! at random), its load (the flags' keys, or `[[scenario.stages]]` of users or
//! rate), think time and thresholds. The profiles are such files
//! (`fixtures/scenarios/`). Every error names the file, the line and the key.
//!
//! No I/O beyond reading the file and its input files; no printing.

use crate::load::driver::Mode;
use crate::load::inputs::{InputOrder, InputSet};
use crate::load::metrics::RequestSlo;
use crate::load::schedule::{Stage, ThinkTime};
use crate::report::thresholds::Threshold;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use serde_json::Value;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

mod rows;
use rows::{RowsError, read_rows};
pub use rows::{is_chat, row};

/// A bad scenario file: where, and what.
#[derive(Debug, thiserror::Error)]
#[error("{file}{}: {message}", line.map_or(String::new(), |l| format!(" line {l}")))]
pub struct FileError {
    pub file: String,
    pub line: Option<usize>,
    pub message: String,
}

/// A scenario file, read and checked.
#[derive(Debug, Clone)]
pub struct ScenarioFile {
    pub scenarios: Vec<FileScenario>,
    /// The embedded stack's mock script, resolved against the file's folder.
    pub mock_script: Option<PathBuf>,
    pub timeout: Option<Duration>,
    pub seed: Option<u64>,
    /// Every threshold, each scoped (a scenario's own carry its name).
    pub thresholds: Vec<Threshold>,
    /// `[slo] thresholds`: what `flowbench capacity` searches against.
    pub slo: Vec<Threshold>,
    /// `[slo] request`: each request's own limits, for goodput.
    pub request_slo: Option<RequestSlo>,
}

/// One `[[scenario]]`.
#[derive(Debug, Clone)]
pub struct FileScenario {
    pub name: String,
    pub apps: Vec<FileApp>,
    pub load: FileLoad,
    pub think_time: ThinkTime,
    /// Where it starts in the file, for errors found later (flags against it).
    pub line: usize,
}

/// A scenario's load: the flags' keys, or stages.
#[derive(Debug, Clone, PartialEq)]
pub enum FileLoad {
    /// `users`/`spawn_rate` or `rate`/`poisson`/`connections`, `duration`,
    /// `warmup`: each one left out takes the flag's value or its default.
    Flat {
        users: Option<u32>,
        spawn_rate: Option<f64>,
        rate: Option<f64>,
        poisson: Option<bool>,
        connections: Option<u32>,
        duration: Option<Duration>,
        warmup: Option<Duration>,
    },
    /// `[[scenario.stages]]`: all of users or all of rate.
    Stages { stages: Vec<Stage>, open: bool, poisson: bool, connections: u32, warmup: Duration },
}

/// One `[[scenario.apps]]`.
#[derive(Debug, Clone)]
pub struct FileApp {
    pub name: String,
    /// The key as written; or the environment variable holding it, read
    /// only when the app runs without `--api-key` (so a file for a real
    /// target loads without it); neither: the embedded stack's key for the
    /// fixture app `fixture`.
    pub key: Option<String>,
    pub key_env: Option<String>,
    pub fixture: String,
    pub path: Option<http::uri::PathAndQuery>,
    pub mode: Mode,
    pub weight: u32,
    pub inputs: Option<InputSet>,
    /// Where it starts in the file.
    pub line: usize,
}

impl ScenarioFile {
    /// Reads `path` (and the input files it names, relative to its folder).
    pub fn load(path: &Path) -> Result<Self, FileError> {
        let text = std::fs::read_to_string(path).map_err(|e| FileError {
            file: path.display().to_string(),
            line: None,
            message: format!("cannot read it: {e}"),
        })?;
        Self::parse(&text, &path.display().to_string(), path.parent().unwrap_or(Path::new(".")))
    }

    /// `text` as the file `name`, whose relative paths are under `dir`.
    pub fn parse(text: &str, name: &str, dir: &Path) -> Result<Self, FileError> {
        let err = |line: Option<usize>, message: String| FileError { file: name.to_owned(), line, message };
        let at = |span: std::ops::Range<usize>| Some(line_of(text, span.start));
        let raw: RawFile = toml::from_str(text).map_err(|e| {
            let line = e.span().map(|s| line_of(text, s.start));
            err(line, e.message().to_owned())
        })?;
        let mut thresholds = Vec::new();
        let mut file_scopes = Vec::new();
        let (slo_thresholds, request_slo) = raw.slo.map_or((Vec::new(), None), |s| (s.thresholds, s.request));
        let mut slo = Vec::new();
        for t in slo_thresholds {
            let line = line_of(text, t.span().start);
            let t = t.into_inner().0;
            file_scopes.push((t.scenario.clone(), t.text.clone(), line));
            slo.push(t);
        }
        for t in raw.thresholds {
            let line = line_of(text, t.span().start);
            let t = t.into_inner().0;
            file_scopes.push((t.scenario.clone(), t.text.clone(), line));
            thresholds.push(t);
        }
        if raw.scenario.is_empty() {
            return Err(err(None, "no [[scenario]]: a scenario file needs at least one".into()));
        }
        let mut scenarios: Vec<FileScenario> = Vec::new();
        for spanned in raw.scenario {
            let line = line_of(text, spanned.span().start);
            let s = spanned.into_inner();
            let name_line = at(s.name.span());
            let name = s.name.into_inner();
            if scenarios.iter().any(|o| o.name == name) {
                return Err(err(name_line, format!("scenario `name`: {name:?} is used twice")));
            }
            if name == "all" {
                return Err(err(name_line, "scenario `name`: \"all\" is taken (it means every scenario)".into()));
            }
            if s.apps.is_empty() {
                return Err(err(Some(line), format!("scenario {name:?} has no [[scenario.apps]]")));
            }
            let mut apps: Vec<FileApp> = Vec::new();
            for app in s.apps {
                let app_line = line_of(text, app.span().start);
                let app = app.into_inner();
                let app_name = app.name.unwrap_or_else(|| name.clone());
                if apps.iter().any(|a| a.name == app_name) {
                    return Err(err(Some(app_line), format!("app `name`: {app_name:?} is used twice in scenario {name:?}")));
                }
                if app.key.is_some() && app.key_env.is_some() {
                    return Err(err(Some(app_line), format!("app {app_name:?}: give `key` or `key_env`, not both")));
                }
                if let Some(w) = app.weight.as_ref().filter(|w| *w.get_ref() == 0) {
                    return Err(err(at(w.span()), format!("app {app_name:?}: `weight` must be at least 1")));
                }
                let chat = app.path.as_ref().is_some_and(|p| is_chat(&p.get_ref().0));
                let order = app.inputs_order.unwrap_or(InputOrder::RoundRobin);
                let rows = match (app.inputs, app.inputs_file) {
                    (Some(_), Some(_)) => {
                        return Err(err(Some(app_line), format!("app {app_name:?}: give `inputs` or `inputs_file`, not both")));
                    }
                    (Some(list), None) => {
                        let span = list.span();
                        let mut rows = Vec::new();
                        for (i, item) in list.into_inner().into_iter().enumerate() {
                            let item_line = at(item.span());
                            let row = row(item.into_inner(), chat)
                                .map_err(|m| err(item_line, format!("app {app_name:?}: `inputs` item {}: {m}", i + 1)))?;
                            rows.push(row);
                        }
                        if rows.is_empty() {
                            return Err(err(at(span), format!("app {app_name:?}: `inputs` is empty")));
                        }
                        Some(rows)
                    }
                    (None, Some(file)) => {
                        let span = file.span();
                        let path = dir.join(file.into_inner());
                        Some(read_rows(&path, chat).map_err(|e| match e {
                            RowsError::Open(m) => err(at(span), format!("app {app_name:?}: `inputs_file`: {m}")),
                            RowsError::Row(line, m) => FileError { file: path.display().to_string(), line, message: m },
                        })?)
                    }
                    (None, None) if chat => {
                        return Err(err(
                            Some(app_line),
                            format!("app {app_name:?}: a chat app needs `inputs` or `inputs_file` with a `query` in each"),
                        ));
                    }
                    (None, None) => None,
                };
                apps.push(FileApp {
                    fixture: app.fixture.unwrap_or_else(|| app_name.clone()),
                    name: app_name,
                    key: app.key,
                    key_env: app.key_env,
                    path: app.path.map(|p| p.into_inner().0),
                    mode: app.mode.unwrap_or(if name == "llm" { Mode::Streaming } else { Mode::Blocking }),
                    weight: app.weight.map_or(1, Spanned::into_inner),
                    inputs: rows.map(|rows| InputSet::new(&rows, order)),
                    line: app_line,
                });
            }
            // Each key's own line, for the errors that name it.
            let key_line = |span: Option<std::ops::Range<usize>>| span.map(|s| line_of(text, s.start));
            let users_at = key_line(s.users.as_ref().map(Spanned::span));
            let rate_at = key_line(s.rate.as_ref().map(Spanned::span));
            let think_at = key_line(s.think_time.as_ref().map(Spanned::span));
            let poisson_at = key_line(s.poisson.as_ref().map(Spanned::span));
            let connections_at = key_line(s.connections.as_ref().map(Spanned::span));
            let spawn_at = key_line(s.spawn_rate.as_ref().map(Spanned::span));
            let duration_at = key_line(s.duration.as_ref().map(Spanned::span));
            let users = s.users.map(Spanned::into_inner);
            let connections = s.connections.map(Spanned::into_inner);
            if users == Some(0) {
                return Err(err(users_at, format!("scenario {name:?}: `users` must be at least 1")));
            }
            if connections == Some(0) {
                return Err(err(connections_at, format!("scenario {name:?}: `connections` must be at least 1")));
            }
            let think_time = s.think_time.map(|t| t.into_inner().0);
            let warmup = s.warmup.map(|d| d.into_inner().0);
            let load = if s.stages.is_empty() {
                let rate = s.rate.map(|r| r.into_inner().0);
                if users.is_some() && rate.is_some() {
                    return Err(err(rate_at, format!("scenario {name:?}: `users` (closed) and `rate` (open) exclude each other")));
                }
                if rate.is_some() && think_time.is_some() {
                    return Err(err(think_at, format!("scenario {name:?}: `think_time` is for users; an open load (`rate`) has none")));
                }
                if rate.is_some() && spawn_at.is_some() {
                    return Err(err(spawn_at, format!("scenario {name:?}: `spawn_rate` is for users; an open load (`rate`) has none")));
                }
                if rate.is_none() && (poisson_at.is_some() || connections_at.is_some()) {
                    return Err(err(
                        poisson_at.or(connections_at),
                        format!("scenario {name:?}: `poisson` and `connections` are for an open load (`rate`)"),
                    ));
                }
                FileLoad::Flat {
                    users,
                    spawn_rate: s.spawn_rate.map(|r| r.into_inner().0),
                    rate,
                    poisson: s.poisson.map(Spanned::into_inner),
                    connections,
                    duration: s.duration.map(|d| d.into_inner().0),
                    warmup,
                }
            } else {
                let flat = [("users", users_at), ("spawn_rate", spawn_at), ("rate", rate_at), ("duration", duration_at)];
                if let Some((key, key_at)) = flat.iter().find(|(_, at)| at.is_some()) {
                    return Err(err(*key_at, format!("scenario {name:?}: `{key}` and [[scenario.stages]] exclude each other")));
                }
                let mut stages = Vec::new();
                let mut open = None;
                for stage in s.stages {
                    let stage_line = Some(line_of(text, stage.span().start));
                    let st = stage.into_inner();
                    let (target, is_open) = match (st.users, st.rate) {
                        (Some(users), None) => (f64::from(users), false),
                        (None, Some(rate)) => (rate.0, true),
                        _ => return Err(err(stage_line, format!("scenario {name:?}: a stage needs `users` or `rate` (one of them)"))),
                    };
                    if open.is_some_and(|o| o != is_open) {
                        return Err(err(stage_line, format!("scenario {name:?}: stages are all of `users` or all of `rate`")));
                    }
                    open = Some(is_open);
                    stages.push(Stage { duration_s: st.duration.0.as_secs_f64(), target });
                }
                let open = open.unwrap_or(false);
                let total: f64 = stages.iter().map(|s| s.duration_s).sum();
                if total <= 0.0 {
                    return Err(err(Some(line), format!("scenario {name:?}: the stages last no time")));
                }
                if total > MAX_DURATION.as_secs_f64() {
                    return Err(err(Some(line), format!("scenario {name:?}: the stages last over a year")));
                }
                if stages.iter().all(|s| s.target <= 0.0) {
                    return Err(err(Some(line), format!("scenario {name:?}: no stage has any {}", if open { "rate" } else { "users" })));
                }
                if open && think_time.is_some() {
                    return Err(err(think_at, format!("scenario {name:?}: `think_time` is for users; stages of `rate` have none")));
                }
                if !open && (poisson_at.is_some() || connections_at.is_some()) {
                    return Err(err(
                        poisson_at.or(connections_at),
                        format!("scenario {name:?}: `poisson` and `connections` are for stages of `rate`"),
                    ));
                }
                let warmup = warmup.unwrap_or(Duration::ZERO);
                if warmup.as_secs_f64() >= total {
                    return Err(err(
                        Some(line),
                        format!("scenario {name:?}: `warmup` is as long as the stages or longer; nothing would be measured"),
                    ));
                }
                FileLoad::Stages {
                    stages,
                    open,
                    poisson: s.poisson.is_some_and(Spanned::into_inner),
                    connections: connections.unwrap_or(256),
                    warmup,
                }
            };
            for t in s.thresholds {
                let t_line = at(t.span());
                let mut t = t.into_inner().0;
                match &t.scenario {
                    Some(other) if *other != name => {
                        return Err(err(t_line, format!("threshold {:?} is scoped to {other:?} inside scenario {name:?}", t.text)));
                    }
                    _ => t.scenario = Some(name.clone()),
                }
                thresholds.push(t);
            }
            scenarios.push(FileScenario { name, apps, load, think_time: think_time.unwrap_or_default(), line });
        }
        for (scope, text, line) in file_scopes {
            if let Some(scope) = scope
                && !scenarios.iter().any(|s| s.name == scope)
            {
                return Err(err(Some(line), format!("threshold {text:?} names scenario {scope:?}, which the file does not have")));
            }
        }
        Ok(Self {
            scenarios,
            // Canonical where it exists, so the report names it plainly.
            mock_script: raw.mock_script.map(|p| {
                let joined = dir.join(p);
                joined.canonicalize().unwrap_or(joined)
            }),
            timeout: raw.timeout.map(|d| d.0),
            seed: raw.seed,
            thresholds,
            slo,
            request_slo: request_slo.map(|r| r.into_inner().0),
        })
    }
}

/// The longest a file's durations may be (an `Instant` plus it must not overflow).
pub const MAX_DURATION: Duration = Duration::from_secs(366 * 86_400);

/// The 1-based line of byte `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    1 + text.as_bytes()[..offset.min(text.len())].iter().filter(|&&b| b == b'\n').count()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFile {
    #[serde(default)]
    scenario: Vec<Spanned<RawScenario>>,
    mock_script: Option<PathBuf>,
    timeout: Option<Dur>,
    seed: Option<u64>,
    #[serde(default)]
    thresholds: Vec<Spanned<ThresholdText>>,
    slo: Option<RawSlo>,
}

/// `[slo]`: the service level `flowbench capacity` holds a load to.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSlo {
    #[serde(default)]
    thresholds: Vec<Spanned<ThresholdText>>,
    request: Option<Spanned<RequestSloText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawScenario {
    name: Spanned<String>,
    #[serde(default)]
    apps: Vec<Spanned<RawApp>>,
    users: Option<Spanned<u32>>,
    spawn_rate: Option<Spanned<Positive>>,
    rate: Option<Spanned<Positive>>,
    poisson: Option<Spanned<bool>>,
    connections: Option<Spanned<u32>>,
    duration: Option<Spanned<Dur>>,
    warmup: Option<Spanned<Dur>>,
    #[serde(default)]
    stages: Vec<Spanned<RawStage>>,
    think_time: Option<Spanned<Think>>,
    #[serde(default)]
    thresholds: Vec<Spanned<ThresholdText>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawApp {
    name: Option<String>,
    key: Option<String>,
    key_env: Option<String>,
    fixture: Option<String>,
    path: Option<Spanned<ApiPath>>,
    mode: Option<Mode>,
    weight: Option<Spanned<u32>>,
    inputs: Option<Spanned<Vec<Spanned<Value>>>>,
    inputs_file: Option<Spanned<PathBuf>>,
    inputs_order: Option<InputOrder>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStage {
    duration: Dur,
    users: Option<u32>,
    rate: Option<NonNegative>,
}

/// `"5s"`, `"1m30s"`, `"250ms"` (humantime).
struct Dur(Duration);

impl<'de> Deserialize<'de> for Dur {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match humantime::parse_duration(&text) {
            Ok(d) if d > MAX_DURATION => Err(de::Error::custom(format!("{text:?} is over a year"))),
            Ok(d) => Ok(Dur(d)),
            Err(e) => Err(de::Error::custom(format!("{text:?} is not a duration (e.g. \"30s\"): {e}"))),
        }
    }
}

/// A finite number above 0.
struct Positive(f64);

impl<'de> Deserialize<'de> for Positive {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v > 0.0 && v.is_finite() { Ok(Positive(v)) } else { Err(de::Error::custom(format!("{v} must be above 0"))) }
    }
}

/// A finite number, 0 or more (a stage may ramp to 0).
struct NonNegative(f64);

impl<'de> Deserialize<'de> for NonNegative {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = f64::deserialize(d)?;
        if v >= 0.0 && v.is_finite() { Ok(NonNegative(v)) } else { Err(de::Error::custom(format!("{v} must be 0 or more"))) }
    }
}

/// `"1s"` (constant) or `["500ms", "1500ms"]` (uniform between).
struct Think(ThinkTime);

impl<'de> Deserialize<'de> for Think {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> de::Visitor<'de> for V {
            type Value = Think;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str(r#"a duration ("1s") or two (["500ms", "1500ms"])"#)
            }
            fn visit_str<E: de::Error>(self, text: &str) -> Result<Think, E> {
                let d = humantime::parse_duration(text).map_err(|e| E::custom(format!("{text:?} is not a duration: {e}")))?;
                Ok(Think(ThinkTime { min_s: d.as_secs_f64(), max_s: d.as_secs_f64() }))
            }
            fn visit_seq<A: de::SeqAccess<'de>>(self, mut seq: A) -> Result<Think, A::Error> {
                let mut bound = |which| -> Result<f64, A::Error> {
                    let text: String = seq.next_element()?.ok_or_else(|| de::Error::custom(format!("the {which} duration is missing")))?;
                    humantime::parse_duration(&text)
                        .map(|d| d.as_secs_f64())
                        .map_err(|e| de::Error::custom(format!("{text:?} is not a duration: {e}")))
                };
                let (min_s, max_s) = (bound("first")?, bound("second")?);
                if seq.next_element::<de::IgnoredAny>()?.is_some() {
                    return Err(de::Error::custom("two durations, no more"));
                }
                if min_s > max_s {
                    return Err(de::Error::custom("the first duration is the shorter"));
                }
                Ok(Think(ThinkTime { min_s, max_s }))
            }
        }
        d.deserialize_any(V)
    }
}

/// A path under the Dify API root, e.g. `/v1/chat-messages`.
struct ApiPath(http::uri::PathAndQuery);

impl<'de> Deserialize<'de> for ApiPath {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        if !text.starts_with('/') {
            return Err(de::Error::custom(format!("{text:?} must start with /")));
        }
        text.parse().map(ApiPath).map_err(|e| de::Error::custom(format!("{text:?} is not a URL path: {e}")))
    }
}

/// A threshold as `--threshold` takes it.
struct ThresholdText(Threshold);

/// A request SLO as `--request-slo` takes it.
struct RequestSloText(RequestSlo);

impl<'de> Deserialize<'de> for RequestSloText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(RequestSloText).map_err(de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for ThresholdText {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map(ThresholdText).map_err(de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ScenarioFile, FileError> {
        ScenarioFile::parse(text, "load.toml", Path::new("/nonexistent"))
    }

    fn error(text: &str) -> String {
        parse(text).expect_err("a bad file").to_string()
    }

    #[test]
    fn a_full_file_reads_as_written() {
        let file = parse(
            r#"
seed = 7
timeout = "30s"
thresholds = ["error_rate < 1%"]

[[scenario]]
name = "mixed"
warmup = "2s"
think_time = ["500ms", "1500ms"]
thresholds = ["ttfe_p95 < 200ms"]

[[scenario.apps]]
name = "wf"
key = "app-a"
mode = "streaming"
weight = 3
inputs = [{ text = "one" }, { text = "two" }]
inputs_order = "random"

[[scenario.apps]]
name = "chat"
key = "app-b"
path = "/v1/chat-messages"
inputs = [{ query = "hi", lang = "en" }]

[[scenario.stages]]
duration = "10s"
users = 20

[[scenario.stages]]
duration = "0s"
users = 5
"#,
        )
        .unwrap();
        assert_eq!((file.seed, file.timeout), (Some(7), Some(Duration::from_secs(30))));
        let s = &file.scenarios[0];
        assert_eq!(s.think_time, ThinkTime { min_s: 0.5, max_s: 1.5 });
        assert_eq!(
            s.load,
            FileLoad::Stages {
                stages: vec![Stage { duration_s: 10.0, target: 20.0 }, Stage { duration_s: 0.0, target: 5.0 }],
                open: false,
                poisson: false,
                connections: 256,
                warmup: Duration::from_secs(2)
            }
        );
        let (wf, chat) = (&s.apps[0], &s.apps[1]);
        assert_eq!((wf.weight, wf.mode, wf.inputs.as_ref().map(InputSet::len)), (3, Mode::Streaming, Some(2)));
        assert_eq!(wf.inputs.as_ref().unwrap().order, InputOrder::Random);
        assert_eq!(chat.path.as_ref().map(|p| p.as_str()), Some("/v1/chat-messages"));
        assert_eq!((chat.mode, chat.weight), (Mode::Blocking, 1));
        let scopes: Vec<_> = file.thresholds.iter().map(|t| t.scenario.clone()).collect();
        assert_eq!(scopes, [None, Some("mixed".to_owned())], "a scenario's own thresholds carry its name");
    }

    /// `[slo]`: the thresholds capacity holds a load to, scoped as a
    /// file's thresholds are, and each request's limits for goodput.
    #[test]
    fn a_files_slo_is_read_and_its_errors_named() {
        let file = parse(
            "[slo]\nthresholds = [\"ttfe_p95 < 200ms\", \"a:error_rate < 0.1%\"]\nrequest = \"ttfe<200ms, duration<5s\"\n\
             [[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\n",
        )
        .unwrap();
        let texts: Vec<&str> = file.slo.iter().map(|t| t.text.as_str()).collect();
        assert_eq!(texts, ["ttfe_p95 < 200ms", "a:error_rate < 0.1%"]);
        assert!(file.thresholds.is_empty(), "an SLO is not a run's threshold");
        assert_eq!(file.request_slo.unwrap().text, "ttfe<200ms, duration<5s");
        for (text, says) in [
            ("[slo]\nrequest = \"ttfe>1s\"\n", "load.toml line 2: \"ttfe>1s\": a request SLO is an upper limit"),
            ("[slo]\nthresholds = [\"b:qps > 1\"]\n", "load.toml line 2: threshold \"b:qps > 1\" names scenario \"b\""),
            ("[slo]\nlatency = 3\n", "load.toml line 2: unknown field `latency`"),
        ] {
            let err = parse(&format!("{text}[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\n")).unwrap_err().to_string();
            assert!(err.contains(says), "{err}");
        }
    }

    #[test]
    fn errors_name_the_line_and_the_key() {
        let cases: &[(&str, &str)] = &[
            ("[[scenario]]\nname = \"a\"\nuserz = 3\n", "load.toml line 3: unknown field `userz`"),
            ("[[scenario]]\nname = \"a\"\nduration = \"ten\"\n", "load.toml line 3: \"ten\" is not a duration"),
            (
                "[[scenario]]\nname = \"a\"\n\n[[scenario.apps]]\nkey = \"k\"\nmode = \"stream\"\n",
                "load.toml line 6: unknown variant `stream`",
            ),
            ("[[scenario]]\nname = \"a\"\nthresholds = [\"ttfe_p95 <\"]\n", "load.toml line 3:"),
            ("[[scenario]]\nname = \"a\"\n", "load.toml line 1: scenario \"a\" has no [[scenario.apps]]"),
            (
                "[[scenario]]\nname = \"a\"\nusers = 2\nrate = 3.0\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 4: scenario \"a\": `users` (closed) and `rate` (open)",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\n[[scenario.stages]]\nduration = \"1s\"\nusers = 2\n[[scenario.stages]]\nduration = \"1s\"\nrate = 2.0\n",
                "load.toml line 8: scenario \"a\": stages are all of `users` or all of `rate`",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\nweight = 0\n",
                "load.toml line 5: app \"a\": `weight` must be at least 1",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\ninputs = [1]\n",
                "load.toml line 5: app \"a\": `inputs` item 1: must be an object",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\npath = \"/v1/chat-messages\"\ninputs = [{ text = \"x\" }]\n",
                "a chat app's row needs a `query`",
            ),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\npath = \"v1/run\"\n",
                "load.toml line 5: \"v1/run\" must start with /",
            ),
            (
                "[[scenario]]\nname = \"a\"\nusers = 0\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 3: scenario \"a\": `users` must be at least 1",
            ),
            (
                "[[scenario]]\nname = \"a\"\nusers = 2\nconnections = 4\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 4: scenario \"a\": `poisson` and `connections` are for an open load",
            ),
            (
                "[[scenario]]\nname = \"a\"\nrate = 2.0\nspawn_rate = 4\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 4: scenario \"a\": `spawn_rate` is for users",
            ),
            ("[[scenario]]\nname = \"a\"\nduration = \"400days\"\n", "load.toml line 3: \"400days\" is over a year"),
            (
                "[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\ninputs = [{ text = \"x\" },\n  7]\n",
                "load.toml line 6: app \"a\": `inputs` item 2: must be an object",
            ),
            (
                "[[scenario]]\nname = \"a\"\nwarmup = \"5s\"\n[[scenario.apps]]\nkey = \"k\"\n[[scenario.stages]]\nduration = \"5s\"\nusers = 1\n",
                "`warmup` is as long as the stages",
            ),
            (
                "thresholds = [\"b:qps > 1\"]\n[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 1: threshold \"b:qps > 1\" names scenario \"b\", which the file does not have",
            ),
            (
                "[[scenario]]\nname = \"a\"\nthink_time = [\"2s\", \"1s\"]\n[[scenario.apps]]\nkey = \"k\"\n",
                "load.toml line 3: the first duration is the shorter",
            ),
            ("", "no [[scenario]]"),
        ];
        for (text, expected) in cases {
            let got = error(text);
            assert!(got.contains(expected), "{text:?}\n  got: {got}\n  want: {expected}");
        }
    }

    #[test]
    fn input_files_are_read_and_their_bad_rows_named_by_line() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("rows.jsonl"), "{\"text\":\"a\"}\n\n{\"text\":\"b\",\"n\":2}\n").unwrap();
        std::fs::write(dir.path().join("rows.csv"), "query,lang\nhello,en\n\"with, comma\",fr\n").unwrap();
        std::fs::write(dir.path().join("bad.jsonl"), "{\"text\":\"a\"}\n{oops\n").unwrap();
        std::fs::write(dir.path().join("bad.csv"), "query,lang\nhello,en\nhi\n").unwrap();
        let file = |inputs: &str, path: &str| {
            format!("[[scenario]]\nname = \"a\"\n[[scenario.apps]]\nkey = \"k\"\npath = \"{path}\"\ninputs_file = \"{inputs}\"\n")
        };
        let parse = |text: &str| ScenarioFile::parse(text, "load.toml", dir.path());
        let jsonl = parse(&file("rows.jsonl", "/v1/workflows/run")).unwrap();
        assert_eq!(jsonl.scenarios[0].apps[0].inputs.as_ref().map(InputSet::len), Some(2), "blank lines are skipped");
        let csv = parse(&file("rows.csv", "/v1/chat-messages")).unwrap();
        assert_eq!(csv.scenarios[0].apps[0].inputs.as_ref().map(InputSet::len), Some(2));
        let bad = parse(&file("bad.jsonl", "/v1/workflows/run")).unwrap_err().to_string();
        assert!(bad.ends_with("bad.jsonl line 2: not JSON: key must be a string at line 1 column 2"), "{bad}");
        let bad = parse(&file("bad.csv", "/v1/chat-messages")).unwrap_err().to_string();
        assert!(bad.contains("bad.csv line 3"), "{bad}");
        let missing = parse(&file("nope.jsonl", "/v1/workflows/run")).unwrap_err().to_string();
        assert!(missing.starts_with("load.toml line 6: app \"a\": `inputs_file`:"), "{missing}");
    }

    #[test]
    fn the_fixture_scenarios_read() {
        let dir = mock::workspace_root().join("fixtures/scenarios");
        let mut n = 0;
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.extension().is_some_and(|e| e == "toml") {
                ScenarioFile::load(&path).unwrap_or_else(|e| panic!("{e}"));
                n += 1;
            }
        }
        assert!(n >= 3, "the seed's scenarios and the profiles: {n}");
    }
}
