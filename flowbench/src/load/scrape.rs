//! `--scrape URL --series SELECTOR`: the target's own metrics, read once a
//! second during a scenario from Prometheus exposition endpoints, so a
//! report shows what the target said about itself beside what the driver
//! measured (its queue, its pool, its counters' rates).
//!
//! The exposition parser is written here rather than taken from the
//! prometheus-parse crate: that crate folds a histogram's or a summary's
//! lines into one metric and so loses the raw sample names (`_bucket`,
//! `_count`, `_sum`) a selector names. Here a sample is its raw name, its
//! sorted labels and its value; the family's `# TYPE` only says whether
//! the sample is shown as a rate or as read. It reads the text format
//! 0.0.4 and OpenMetrics text alike, and never panics on what an endpoint
//! sends: a malformed line is an error naming its line.
//!
//! HTTP goes through the driver's own client (`client::Conn`), one
//! keep-alive connection per endpoint, so a scrape costs the target no
//! more than one request a second.

use crate::load::client::{Conn, Target};
use bytes::Bytes;
use http_body_util::BodyExt;
use schema::observe::{ScrapeProblem, ScrapedSeries, SeriesKind};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Duration;
use tokio::time::Instant;

/// A scrape that takes longer would overlap the next second's.
const SCRAPE_TIMEOUT: Duration = Duration::from_millis(900);
/// Series kept per selector and endpoint: a selector that matches a
/// whole exporter would bury the report (and the driver's memory).
const SERIES_CAP: usize = 50;
/// A body past this is no exposition anyone meant to scrape once a second.
const MAX_BODY: usize = 64 << 20;

/// One sample of an exposition, as the endpoint wrote it.
#[derive(Debug, Clone, PartialEq)]
pub struct ExpositionSample {
    /// The raw sample name: `foo_bucket`, not the family `foo`.
    pub name: String,
    /// Sorted by label name, so one series reads the same in every scrape.
    pub labels: Vec<(String, String)>,
    pub value: f64,
    pub kind: SeriesKind,
}

impl ExpositionSample {
    /// The series in full: `name{a="v",b="w"}`, values escaped as the
    /// exposition format escapes them; just `name` without labels.
    pub fn series(&self) -> String {
        if self.labels.is_empty() {
            return self.name.clone();
        }
        let mut out = format!("{}{{", self.name);
        for (i, (label, value)) in self.labels.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(label);
            out.push_str("=\"");
            for c in value.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '"' => out.push_str("\\\""),
                    '\n' => out.push_str("\\n"),
                    c => out.push(c),
                }
            }
            out.push('"');
        }
        out.push('}');
        out
    }
}

/// A metric family's `# TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FamilyType {
    Counter,
    Gauge,
    Histogram,
    GaugeHistogram,
    Summary,
    /// `untyped`, OpenMetrics' `unknown`, `info`, `stateset`, or a word not known.
    Untyped,
}

impl FamilyType {
    fn of(word: &str) -> Self {
        match word {
            "counter" => Self::Counter,
            "gauge" => Self::Gauge,
            "histogram" => Self::Histogram,
            "gaugehistogram" => Self::GaugeHistogram,
            "summary" => Self::Summary,
            _ => Self::Untyped,
        }
    }
}

/// Whether a sample is shown per second or as read: a counter's value,
/// and a histogram's or summary's `_count`, `_sum` and `_bucket`, only
/// mean something as increases. The family is the sample's own name
/// (text format 0.0.4: `# TYPE foo_total counter`) or its name less a
/// suffix (OpenMetrics: `# TYPE foo counter` has `foo_total`).
fn kind_of(types: &HashMap<String, FamilyType>, name: &str) -> SeriesKind {
    let total = name.ends_with("_total");
    match types.get(name) {
        Some(FamilyType::Counter) => return SeriesKind::Rate,
        Some(FamilyType::Untyped) if total => return SeriesKind::Rate,
        Some(_) => return SeriesKind::Gauge,
        None => {}
    }
    for suffix in ["_total", "_count", "_sum", "_bucket", "_created", "_gcount", "_gsum"] {
        let Some(family) = name.strip_suffix(suffix).and_then(|stem| types.get(stem)) else { continue };
        match (family, suffix) {
            // A creation time, not an amount.
            (_, "_created") => return SeriesKind::Gauge,
            (FamilyType::Counter, "_total") => return SeriesKind::Rate,
            (FamilyType::Histogram | FamilyType::Summary, "_count" | "_sum" | "_bucket") => return SeriesKind::Rate,
            (FamilyType::GaugeHistogram, _) => return SeriesKind::Gauge,
            _ => {}
        }
    }
    if total { SeriesKind::Rate } else { SeriesKind::Gauge }
}

/// Parses an exposition (text format 0.0.4 or OpenMetrics text) into its
/// samples, in the order written. Timestamps and exemplars are read past,
/// not kept: a scrape's time is when its answer arrived. Everything after
/// `# EOF` is ignored. The first malformed line fails the whole scrape, as
/// it fails Prometheus': its error names the line.
pub fn parse_exposition(text: &str) -> Result<Vec<ExpositionSample>, String> {
    let mut types = HashMap::new();
    let mut samples = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        if let Some(comment) = line.strip_prefix('#') {
            let mut words = comment.split_whitespace();
            match words.next() {
                Some("EOF") => break,
                Some("TYPE") => {
                    let (Some(name), Some(word)) = (words.next(), words.next()) else {
                        return Err(format!("line {number}: # TYPE needs a metric name and a type"));
                    };
                    types.insert(name.to_owned(), FamilyType::of(word));
                }
                // HELP, UNIT and plain comments say nothing a sample needs.
                _ => {}
            }
            continue;
        }
        samples.push(parse_sample(line).map_err(|e| format!("line {number}: {e}"))?);
    }
    for sample in &mut samples {
        sample.kind = kind_of(&types, &sample.name);
    }
    Ok(samples)
}

fn is_space(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn skip_spaces(bytes: &[u8], mut at: usize) -> usize {
    while bytes.get(at).copied().is_some_and(is_space) {
        at += 1;
    }
    at
}

/// The end of a name starting at `at`: metric names may hold `:`, label names not.
fn name_end(bytes: &[u8], at: usize, metric: bool) -> usize {
    let mut end = at;
    while let Some(&b) = bytes.get(end) {
        let ok = b.is_ascii_alphabetic() || b == b'_' || (metric && b == b':') || (end > at && b.is_ascii_digit());
        if !ok {
            break;
        }
        end += 1;
    }
    end
}

/// Text from `bytes[from..to]`, shortened for an error message.
fn shown(bytes: &[u8], from: usize, to: usize) -> String {
    let text = String::from_utf8_lossy(bytes.get(from..to.min(bytes.len())).unwrap_or_default());
    let mut out: String = text.chars().take(40).collect();
    if text.chars().count() > 40 {
        out.push('…');
    }
    out
}

/// One sample line: `name{labels} value [timestamp] [# exemplar]`; its
/// kind is the family's, known once every `# TYPE` is read.
fn parse_sample(line: &str) -> Result<ExpositionSample, String> {
    let bytes = line.as_bytes();
    let end = name_end(bytes, 0, true);
    if end == 0 {
        return Err(format!("expected a metric name, found {:?}", shown(bytes, 0, bytes.len())));
    }
    let name = String::from_utf8_lossy(&bytes[..end]).into_owned();
    let mut at = end;
    let mut labels = Vec::new();
    if bytes.get(at) == Some(&b'{') {
        at += 1;
        while let Some(label) = next_label(bytes, &mut at).map_err(|e| format!("{name}: {e}"))? {
            if bytes.get(at) != Some(&b'=') {
                return Err(format!("{name}: label {label}: expected = after the label name"));
            }
            at = skip_spaces(bytes, at + 1);
            if bytes.get(at) != Some(&b'"') {
                return Err(format!("{name}: label {label}: the value must be quoted"));
            }
            at += 1;
            let mut value = Vec::new();
            loop {
                match bytes.get(at) {
                    None => return Err(format!("{name}: label {label}: the value has no closing quote")),
                    Some(b'"') => {
                        at += 1;
                        break;
                    }
                    Some(b'\\') => {
                        match bytes.get(at + 1) {
                            Some(b'n') => value.push(b'\n'),
                            Some(b'\\') => value.push(b'\\'),
                            Some(b'"') => value.push(b'"'),
                            // Not an escape the format has: kept as written.
                            Some(&other) => value.extend_from_slice(&[b'\\', other]),
                            None => return Err(format!("{name}: label {label}: the value has no closing quote")),
                        }
                        at += 2;
                    }
                    Some(&b) => {
                        value.push(b);
                        at += 1;
                    }
                }
            }
            labels.push((label, String::from_utf8_lossy(&value).into_owned()));
            at = skip_spaces(bytes, at);
            match bytes.get(at) {
                // A trailing comma before `}` is allowed: the loop's next turn finds `}`.
                Some(b',') => at += 1,
                Some(b'}') => {
                    at += 1;
                    break;
                }
                None => return Err(format!("{name}: the label set has no closing }}")),
                Some(_) => {
                    let label = labels.last().map_or("", |(label, _)| label.as_str());
                    return Err(format!("{name}: expected , or }} after label {label}'s value"));
                }
            }
        }
    }
    let from = skip_spaces(bytes, at);
    if from == bytes.len() {
        return Err(format!("{name}: no value"));
    }
    if from == at {
        return Err(format!("{name}: expected a space and a value, found {:?}", shown(bytes, at, bytes.len())));
    }
    let token = |from: usize| {
        let mut to = from;
        while bytes.get(to).is_some_and(|&b| !is_space(b)) {
            to += 1;
        }
        to
    };
    let to = token(from);
    let value = number(&bytes[from..to]).ok_or_else(|| format!("{name}: value {:?} is not a number", shown(bytes, from, to)))?;
    // A timestamp, then an exemplar after ` # `: neither is kept.
    let at = skip_spaces(bytes, to);
    if at < bytes.len() && bytes[at] != b'#' {
        let to = token(at);
        if number(&bytes[at..to]).is_none() {
            return Err(format!("{name}: timestamp {:?} is not a number", shown(bytes, at, to)));
        }
        let rest = skip_spaces(bytes, to);
        if rest < bytes.len() && bytes[rest] != b'#' {
            return Err(format!("{name}: unexpected {:?} after the timestamp", shown(bytes, rest, bytes.len())));
        }
    }
    labels.sort();
    Ok(ExpositionSample { name, labels, value, kind: SeriesKind::Gauge })
}

/// A value as the formats write it: a float, `+Inf`, `-Inf` or `NaN`.
fn number(token: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(token).ok()?;
    match text {
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        "NaN" => Some(f64::NAN),
        _ => text.parse().ok(),
    }
}

/// How a label matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MatchOp {
    Equal,
    NotEqual,
    Matches,
    NotMatches,
}

#[derive(Debug, Clone)]
struct LabelMatcher {
    label: String,
    op: MatchOp,
    value: String,
    /// `=~` and `!~`: anchored at both ends, as PromQL anchors them.
    regex: Option<regex::Regex>,
}

impl LabelMatcher {
    /// PromQL's rule: a missing label matches as the empty string.
    fn matches(&self, value: &str) -> bool {
        match (self.op, &self.regex) {
            (MatchOp::Equal, _) => value == self.value,
            (MatchOp::NotEqual, _) => value != self.value,
            (MatchOp::Matches, Some(re)) => re.is_match(value),
            (MatchOp::NotMatches, Some(re)) => !re.is_match(value),
            (MatchOp::Matches | MatchOp::NotMatches, None) => false,
        }
    }
}

/// A `--series`: a PromQL series selector without a range or offset,
/// `NAME`, `NAME{label="v",...}` or `{label="v",...}`, with the matchers
/// `=`, `!=`, `=~` and `!~`; `__name__` matches the sample's name.
#[derive(Debug, Clone)]
pub struct SeriesSelector {
    text: String,
    name: Option<String>,
    matchers: Vec<LabelMatcher>,
}

impl std::str::FromStr for SeriesSelector {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Self::parse(text)
    }
}

impl SeriesSelector {
    /// Parses a selector; the error names it and what is wrong.
    pub fn parse(text: &str) -> Result<Self, String> {
        let fail = |what: String| format!("--series \"{text}\": {what}");
        let bytes = text.trim().as_bytes();
        let end = name_end(bytes, 0, true);
        let name = (end > 0).then(|| String::from_utf8_lossy(&bytes[..end]).into_owned());
        let mut at = skip_spaces(bytes, end);
        let mut matchers = Vec::new();
        match bytes.get(at) {
            None => {}
            Some(b'{') => {
                at += 1;
                while let Some(label) = next_label(bytes, &mut at).map_err(fail)? {
                    let rest = &bytes[at..];
                    let (op, len) = if rest.starts_with(b"=~") {
                        (MatchOp::Matches, 2)
                    } else if rest.starts_with(b"!~") {
                        (MatchOp::NotMatches, 2)
                    } else if rest.starts_with(b"!=") {
                        (MatchOp::NotEqual, 2)
                    } else if rest.starts_with(b"=") {
                        (MatchOp::Equal, 1)
                    } else {
                        return Err(fail(format!("label {label}: expected =, !=, =~ or !~ after the label name")));
                    };
                    at = skip_spaces(bytes, at + len);
                    let (value, next) = quoted(bytes, at).map_err(fail)?;
                    at = next;
                    let regex = match op {
                        MatchOp::Matches | MatchOp::NotMatches => Some(
                            regex::Regex::new(&format!("^(?:{value})$")).map_err(|e| fail(format!("label {label}: not a regex: {e}")))?,
                        ),
                        MatchOp::Equal | MatchOp::NotEqual => None,
                    };
                    matchers.push(LabelMatcher { label, op, value, regex });
                    at = skip_spaces(bytes, at);
                    match bytes.get(at) {
                        Some(b',') => at += 1,
                        Some(b'}') => {
                            at += 1;
                            break;
                        }
                        None => return Err(fail("the label matchers have no closing }".into())),
                        Some(_) => return Err(fail("expected , or } after a label matcher".into())),
                    }
                }
                at = skip_spaces(bytes, at);
                if at < bytes.len() {
                    return Err(fail(format!("unexpected {:?} after }}", shown(bytes, at, bytes.len()))));
                }
            }
            Some(_) if name.is_none() => return Err(fail("expected a metric name or {label=\"value\"}".into())),
            Some(_) => return Err(fail(format!("unexpected {:?} after the metric name", shown(bytes, at, bytes.len())))),
        }
        if name.is_none() && matchers.is_empty() {
            return Err(fail("selects every series; give a metric name or a label matcher".into()));
        }
        Ok(Self { text: text.to_owned(), name, matchers })
    }

    /// The selector as the user wrote it.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// Whether the series `name` with `labels` is one this selector names.
    pub fn matches(&self, name: &str, labels: &[(String, String)]) -> bool {
        if self.name.as_deref().is_some_and(|n| n != name) {
            return false;
        }
        self.matchers.iter().all(|m| {
            let value =
                if m.label == "__name__" { name } else { labels.iter().find(|(l, _)| *l == m.label).map_or("", |(_, v)| v.as_str()) };
            m.matches(value)
        })
    }
}

/// In a `{…}` label set at `at`: the next label's name, `at` moved past it
/// and the spaces after; `None` at the closing brace, `at` moved past it.
fn next_label(bytes: &[u8], at: &mut usize) -> Result<Option<String>, String> {
    *at = skip_spaces(bytes, *at);
    match bytes.get(*at) {
        None => return Err("the label set has no closing }".into()),
        Some(b'}') => {
            *at += 1;
            return Ok(None);
        }
        Some(_) => {}
    }
    let end = name_end(bytes, *at, false);
    if end == *at {
        return Err(format!("expected a label name, found {:?}", shown(bytes, *at, bytes.len())));
    }
    let label = String::from_utf8_lossy(&bytes[*at..end]).into_owned();
    *at = skip_spaces(bytes, end);
    Ok(Some(label))
}

/// A PromQL string at `at`: `"..."` or `'...'` with backslash escapes, or
/// a raw `` `...` ``. An escape PromQL has no special meaning for is kept
/// as written, so `"\d+"` reaches the regex as `\d+`. Returns the string
/// and the index after its closing quote.
fn quoted(bytes: &[u8], at: usize) -> Result<(String, usize), String> {
    let Some(&quote) = bytes.get(at).filter(|&&b| matches!(b, b'"' | b'\'' | b'`')) else {
        return Err("label value must be quoted".into());
    };
    let mut value = Vec::new();
    let mut at = at + 1;
    loop {
        match bytes.get(at) {
            None => return Err("a label value has no closing quote".into()),
            Some(&b) if b == quote => return Ok((String::from_utf8_lossy(&value).into_owned(), at + 1)),
            Some(b'\\') if quote != b'`' => {
                match bytes.get(at + 1) {
                    Some(b'n') => value.push(b'\n'),
                    Some(b't') => value.push(b'\t'),
                    Some(&b) if b == b'\\' || b == quote => value.push(b),
                    Some(&b) => value.extend_from_slice(&[b'\\', b]),
                    None => return Err("a label value has no closing quote".into()),
                }
                at += 2;
            }
            Some(&b) => {
                value.push(b);
                at += 1;
            }
        }
    }
}

/// A counter's readings as per-second rates: each sample's increase over
/// the previous one, divided by the time between their answers. None for
/// the first sample, next to a failed scrape, and after a decrease (the
/// counter was reset: its process restarted).
pub fn rates(points: &[(f64, Option<f64>)]) -> Vec<Option<f64>> {
    let later = points.windows(2).map(|pair| match (pair[0], pair[1]) {
        ((t0, Some(v0)), (t1, Some(v1))) if v1 >= v0 && t1 > t0 => Some((v1 - v0) / (t1 - t0)),
        _ => None,
    });
    std::iter::once(None).chain(later).take(points.len()).collect()
}

/// The series a selector matched at one endpoint: its kind and each
/// scrape's (time, reading), None where the scrape failed or lacked it.
#[derive(Debug)]
struct SeriesTrack {
    kind: SeriesKind,
    points: Vec<(f64, Option<f64>)>,
}

/// One endpoint's scrapes.
struct ScrapeLog {
    url: String,
    /// Resolved at the first scrape, and again after a failure to resolve.
    target: Option<(Target, String)>,
    /// Kept across seconds: one connection, not one a second.
    conn: Conn,
    scrapes: u64,
    failed: u64,
    first_error: Option<String>,
    /// Per selector: its series by their full name.
    tracks: Vec<BTreeMap<String, SeriesTrack>>,
    /// Per selector: series past the cap.
    dropped: Vec<HashSet<String>>,
}

impl ScrapeLog {
    fn new(url: String, selectors: usize) -> Self {
        Self {
            url,
            target: None,
            conn: Conn::new(),
            scrapes: 0,
            failed: 0,
            first_error: None,
            tracks: (0..selectors).map(|_| BTreeMap::new()).collect(),
            dropped: (0..selectors).map(|_| HashSet::new()).collect(),
        }
    }

    async fn get(&mut self) -> Result<String, String> {
        if self.target.is_none() {
            self.target = Some(resolve(&self.url).await?);
        }
        let Some((target, path)) = &self.target else { return Err(format!("GET {}: not resolved", self.url)) };
        let (status, body) = send_get(&self.url, target, path, &mut self.conn).await?;
        if !status.is_success() {
            return Err(status_error(&self.url, status, &body));
        }
        Ok(body)
    }

    async fn scrape(&mut self, selectors: &[SeriesSelector], started: Instant) {
        let answer = tokio::time::timeout(SCRAPE_TIMEOUT, self.get()).await;
        // The time the answer arrived: rates divide by the time between answers.
        let t = started.elapsed().as_secs_f64();
        self.scrapes += 1;
        let samples = match answer {
            Ok(Ok(text)) => parse_exposition(&text).map_err(|e| format!("GET {}: {e}", self.url)),
            Ok(Err(e)) => Err(e),
            Err(_) => {
                // Cut off mid-answer: the connection is no use for the next.
                self.conn.reset();
                Err(format!("GET {}: no answer within {} ms", self.url, SCRAPE_TIMEOUT.as_millis()))
            }
        };
        let samples = match samples {
            Ok(samples) => samples,
            Err(e) => {
                self.failed += 1;
                self.first_error.get_or_insert(e);
                for track in self.tracks.iter_mut().flat_map(BTreeMap::values_mut) {
                    track.points.push((t, None));
                }
                return;
            }
        };
        for (i, selector) in selectors.iter().enumerate() {
            let (Some(tracks), Some(dropped)) = (self.tracks.get_mut(i), self.dropped.get_mut(i)) else { continue };
            let mut now = HashMap::new();
            for sample in samples.iter().filter(|s| selector.matches(&s.name, &s.labels)) {
                let series = sample.series();
                if !tracks.contains_key(&series) {
                    if tracks.len() >= SERIES_CAP {
                        dropped.insert(series);
                        continue;
                    }
                    tracks.insert(series.clone(), SeriesTrack { kind: sample.kind, points: Vec::new() });
                }
                // Infinities and NaN have no place in a plot or in JSON.
                now.insert(series, sample.value.is_finite().then_some(sample.value));
            }
            for (series, track) in tracks.iter_mut() {
                track.points.push((t, now.get(series).copied().flatten()));
            }
        }
    }

    /// The series and problems this endpoint gives the report.
    fn report(self, selectors: &[String], series: &mut Vec<ScrapedSeries>, problems: &mut Vec<ScrapeProblem>) {
        let url = self.url;
        if let Some(first_error) = self.first_error {
            problems.push(ScrapeProblem { url: url.clone(), failed: self.failed, of: self.scrapes, first_error });
        }
        let answered = self.scrapes - self.failed;
        for ((selector, tracks), dropped) in selectors.iter().zip(self.tracks).zip(self.dropped) {
            if tracks.is_empty() && answered > 0 {
                let first_error = format!("--series \"{selector}\" matched no series at {url}");
                problems.push(ScrapeProblem { url: url.clone(), failed: answered, of: answered, first_error });
            }
            if !dropped.is_empty() {
                let (kept, dropped) = (tracks.len() as u64, dropped.len() as u64);
                let first_error = format!(
                    "--series \"{selector}\" matched {} series at {url}; kept {kept}, dropped {dropped}: narrow it with label matchers",
                    kept + dropped
                );
                problems.push(ScrapeProblem { url: url.clone(), failed: dropped, of: kept + dropped, first_error });
            }
            for (name, track) in tracks {
                let values = match track.kind {
                    SeriesKind::Rate => rates(&track.points),
                    SeriesKind::Gauge => track.points.iter().map(|&(_, v)| v).collect(),
                };
                let t_s = track.points.iter().map(|&(t, _)| (t * 1000.0).round() / 1000.0).collect();
                series.push(ScrapedSeries { url: url.clone(), selector: selector.clone(), series: name, kind: track.kind, t_s, values });
            }
        }
    }
}

/// Scrapes endpoints once a second from `start` until `finish`.
pub struct Scraper {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<(Vec<ScrapeLog>, Vec<String>)>,
}

impl std::fmt::Debug for Scraper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Scraper").finish_non_exhaustive()
    }
}

impl Scraper {
    /// Starts scraping every URL at once, now and then each second; times
    /// are seconds since `started` (the load's start). Dropping the
    /// scraper without `finish` stops it too.
    pub fn start(urls: Vec<String>, selectors: Vec<SeriesSelector>, started: Instant) -> Self {
        let (stop, mut stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let mut logs: Vec<ScrapeLog> = urls.into_iter().map(|url| ScrapeLog::new(url, selectors.len())).collect();
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            // After a slow second, keep a second between scrapes rather than catch up.
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let mut last = Instant::now();
            loop {
                tokio::select! {
                    _ = tick.tick() => {
                        last = Instant::now();
                        scrape_all(&mut logs, &selectors, started).await;
                    }
                    _ = &mut stopped => break,
                }
            }
            // The last stretch of the run, up to `finish`, is read too,
            // unless it is a sliver: a rate over a few milliseconds is noise.
            if last.elapsed() >= Duration::from_millis(500) {
                scrape_all(&mut logs, &selectors, started).await;
            }
            (logs, selectors.into_iter().map(|s| s.text).collect())
        });
        Self { stop, task }
    }

    /// Takes one last sample, stops, and gives each matched series (in
    /// the order of the URLs, then the selectors, then the series' names)
    /// and what went wrong.
    pub async fn finish(self) -> (Vec<ScrapedSeries>, Vec<ScrapeProblem>) {
        let _ = self.stop.send(());
        let (logs, selectors) = match self.task.await {
            Ok(done) => done,
            Err(e) => {
                let problem = ScrapeProblem { url: String::new(), failed: 1, of: 1, first_error: format!("the scraper stopped: {e}") };
                return (Vec::new(), vec![problem]);
            }
        };
        let (mut series, mut problems) = (Vec::new(), Vec::new());
        for log in logs {
            log.report(&selectors, &mut series, &mut problems);
        }
        (series, problems)
    }
}

async fn scrape_all(logs: &mut [ScrapeLog], selectors: &[SeriesSelector], started: Instant) {
    futures_util::future::join_all(logs.iter_mut().map(|log| log.scrape(selectors, started))).await;
}

/// The target of `url` and the path (with its query) to ask it for:
/// `Target::resolve` takes a base URL only, so the query goes into the path.
async fn resolve(url: &str) -> Result<(Target, String), String> {
    let mut parsed = url::Url::parse(url).map_err(|e| format!("GET {url}: not a URL: {e}"))?;
    let query = parsed.query().map(str::to_owned);
    parsed.set_query(None);
    parsed.set_fragment(None);
    let target = Target::resolve(parsed.as_str()).await.map_err(|e| format!("GET {url}: {e:#}"))?;
    let mut path = parsed.path().to_owned();
    if let Some(query) = query {
        path.push('?');
        path.push_str(&query);
    }
    Ok((target, path))
}

/// One GET on `conn`: the status and the body as text (lossy: an
/// exposition is UTF-8, and a stray byte should not fail a scrape).
async fn send_get(url: &str, target: &Target, path: &str, conn: &mut Conn) -> Result<(http::StatusCode, String), String> {
    let request = http::Request::get(path)
        .header(http::header::HOST, target.host.clone())
        .body(http_body_util::Full::new(Bytes::new()))
        .map_err(|e| format!("GET {url}: {e}"))?;
    let response = conn.send(target, request).await.map_err(|e| format!("GET {url}: {e}"))?;
    let status = response.status();
    let body = match http_body_util::Limited::new(response.into_body(), MAX_BODY).collect().await {
        Ok(body) => body.to_bytes(),
        Err(e) => {
            conn.reset();
            if e.is::<http_body_util::LengthLimitError>() {
                return Err(format!("GET {url}: the body is over {} MiB", MAX_BODY >> 20));
            }
            return Err(format!("GET {url}: reading the body: {e}"));
        }
    };
    Ok((status, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET URL: HTTP <status>: <the body's start>`.
pub(crate) fn status_error(url: &str, status: http::StatusCode, body: &str) -> String {
    let mut end = body.len().min(200);
    while !body.is_char_boundary(end) {
        end -= 1;
    }
    format!("GET {url}: HTTP {}: {}", status.as_u16(), body[..end].trim())
}

/// A GET of `url` (a query string allowed) on a connection of its own:
/// the status and the body as text, or what went wrong, naming the URL.
/// Any status is an answer; the caller judges it.
pub async fn fetch_text(url: &str, timeout: Duration) -> Result<(http::StatusCode, String), String> {
    fetch_text_as(url, url, timeout).await
}

/// As `fetch_text`, errors naming `shown` instead: a URL whose query is
/// long (PromQL) reads better without it.
pub(crate) async fn fetch_text_as(url: &str, shown: &str, timeout: Duration) -> Result<(http::StatusCode, String), String> {
    let mut conn = Conn::new();
    let get = async {
        let (target, path) = resolve(url).await.map_err(|e| e.replace(url, shown))?;
        send_get(shown, &target, &path, &mut conn).await
    };
    tokio::time::timeout(timeout, get)
        .await
        .unwrap_or_else(|_| Err(format!("GET {shown}: no answer within {}", humantime::format_duration(timeout))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn one(text: &str) -> Vec<(String, f64, SeriesKind)> {
        parse_exposition(text).unwrap().into_iter().map(|s| (s.series(), s.value, s.kind)).collect()
    }

    #[test]
    fn a_node_exporter_page_reads_sample_by_sample() {
        let text = "\
# HELP node_cpu_seconds_total Seconds the CPUs spent in each mode.
# TYPE node_cpu_seconds_total counter
node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 12345.67
node_cpu_seconds_total{mode=\"user\",cpu=\"0\"} 89.1
# HELP node_load1 1m load average.
# TYPE node_load1 gauge
node_load1 0.42

# HELP node_memory_MemAvailable_bytes Memory information field MemAvailable_bytes.
# TYPE node_memory_MemAvailable_bytes gauge
node_memory_MemAvailable_bytes 8.123456e+09
process_open_fds 17
http_requests_total{code=\"200\"} 1027 1395066363000
";
        assert_eq!(
            one(text),
            [
                ("node_cpu_seconds_total{cpu=\"0\",mode=\"idle\"}".to_owned(), 12345.67, SeriesKind::Rate),
                ("node_cpu_seconds_total{cpu=\"0\",mode=\"user\"}".to_owned(), 89.1, SeriesKind::Rate),
                ("node_load1".to_owned(), 0.42, SeriesKind::Gauge),
                ("node_memory_MemAvailable_bytes".to_owned(), 8.123456e9, SeriesKind::Gauge),
                ("process_open_fds".to_owned(), 17.0, SeriesKind::Gauge),
                // Untyped, but its name says counter.
                ("http_requests_total{code=\"200\"}".to_owned(), 1027.0, SeriesKind::Rate),
            ]
        );
    }

    #[test]
    fn histograms_and_summaries_keep_their_raw_sample_names() {
        let text = "\
# TYPE http_request_duration_seconds histogram
http_request_duration_seconds_bucket{le=\"0.05\"} 24054
http_request_duration_seconds_bucket{le=\"+Inf\"} 144320
http_request_duration_seconds_sum 53423
http_request_duration_seconds_count 144320
# TYPE rpc_duration_seconds summary
rpc_duration_seconds{quantile=\"0.99\"} 76656
rpc_duration_seconds_sum 1.7560473e+07
rpc_duration_seconds_count 2693
";
        let kinds: Vec<_> = one(text).into_iter().map(|(s, _, k)| (s, k)).collect();
        assert_eq!(
            kinds,
            [
                ("http_request_duration_seconds_bucket{le=\"0.05\"}".to_owned(), SeriesKind::Rate),
                ("http_request_duration_seconds_bucket{le=\"+Inf\"}".to_owned(), SeriesKind::Rate),
                ("http_request_duration_seconds_sum".to_owned(), SeriesKind::Rate),
                ("http_request_duration_seconds_count".to_owned(), SeriesKind::Rate),
                ("rpc_duration_seconds{quantile=\"0.99\"}".to_owned(), SeriesKind::Gauge),
                ("rpc_duration_seconds_sum".to_owned(), SeriesKind::Rate),
                ("rpc_duration_seconds_count".to_owned(), SeriesKind::Rate),
            ]
        );
    }

    #[test]
    fn openmetrics_text_reads_too() {
        let text = "\
# TYPE acme_http_router_request_seconds summary
# UNIT acme_http_router_request_seconds seconds
# HELP acme_http_router_request_seconds Latency though all of ACME's HTTP request router.
acme_http_router_request_seconds_sum{path=\"/api/v1\",method=\"GET\"} 9036.32
acme_http_router_request_seconds_count{path=\"/api/v1\",method=\"GET\"} 807283.0
acme_http_router_request_seconds_created{path=\"/api/v1\",method=\"GET\"} 1605281325.0
# TYPE go_goroutines gauge
go_goroutines 69 1605281325.5
# TYPE foo counter
foo_total{a=\"x\",} 17.0 1520879607.789 # {trace_id=\"KOO5S4vxi0o\"} 0.67
foo_created 1520430000.123
# TYPE weird gauge
weird{v=\"a \\\"quoted\\\" \\\\ back\\nline\"} -Inf
weird{v=\"nan\"} NaN
weird{v=\"inf\"} +Inf
# EOF
this line is past the end and not read {
";
        let samples = parse_exposition(text).unwrap();
        let kinds: Vec<_> = samples.iter().map(|s| (s.name.as_str(), s.kind)).collect();
        assert_eq!(
            kinds,
            [
                ("acme_http_router_request_seconds_sum", SeriesKind::Rate),
                ("acme_http_router_request_seconds_count", SeriesKind::Rate),
                ("acme_http_router_request_seconds_created", SeriesKind::Gauge),
                ("go_goroutines", SeriesKind::Gauge),
                ("foo_total", SeriesKind::Rate),
                ("foo_created", SeriesKind::Gauge),
                ("weird", SeriesKind::Gauge),
                ("weird", SeriesKind::Gauge),
                ("weird", SeriesKind::Gauge),
            ]
        );
        assert_eq!(samples[0].series(), "acme_http_router_request_seconds_sum{method=\"GET\",path=\"/api/v1\"}");
        assert_eq!(samples[4].labels, [("a".to_owned(), "x".to_owned())]);
        assert_eq!(samples[4].value, 17.0);
        assert_eq!(samples[6].labels[0].1, "a \"quoted\" \\ back\nline");
        assert_eq!(samples[6].series(), "weird{v=\"a \\\"quoted\\\" \\\\ back\\nline\"}");
        assert_eq!(samples[6].value, f64::NEG_INFINITY);
        assert!(samples[7].value.is_nan());
        assert_eq!(samples[8].value, f64::INFINITY);
    }

    #[test]
    fn a_malformed_line_is_named_with_what_is_wrong() {
        for (text, says) in [
            ("ok 1\nfoo{a=b} 1\n", "line 2: foo: label a: the value must be quoted"),
            ("foo{a=\"b\" 1\n", "line 1: foo: expected , or } after label a's value"),
            ("foo{a=\"b\"", "line 1: foo: the label set has no closing }"),
            ("foo{a=\"b\n", "line 1: foo: label a: the value has no closing quote"),
            ("\n\nfoo\n", "line 3: foo: no value"),
            ("foo one\n", "line 1: foo: value \"one\" is not a number"),
            ("foo 1 yesterday\n", "line 1: foo: timestamp \"yesterday\" is not a number"),
            ("foo 1 2 3\n", "line 1: foo: unexpected \"3\" after the timestamp"),
            ("{a=\"b\"} 1\n", "line 1: expected a metric name"),
            ("# TYPE foo\n", "line 1: # TYPE needs a metric name and a type"),
            ("foo{=\"b\"} 1\n", "line 1: foo: expected a label name"),
            ("foo{a \"b\"} 1\n", "line 1: foo: label a: expected = after the label name"),
            ("foo{a=\"b\"}1\n", "line 1: foo: expected a space and a value"),
        ] {
            let error = parse_exposition(text).unwrap_err();
            assert!(error.starts_with(says), "{text:?}: {error}");
        }
    }

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panicking(text in any::<String>()) {
            let _ = parse_exposition(&text);
            let _ = SeriesSelector::parse(&text);
        }

        #[test]
        fn near_valid_text_parses_or_fails_without_panicking(text in "[a-z_{}=\",\\\\ #+.0-9nIEOFé\n\t]{0,80}") {
            let _ = parse_exposition(&text);
            let _ = SeriesSelector::parse(&text);
        }
    }

    fn labels(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs.iter().map(|(l, v)| ((*l).to_owned(), (*v).to_owned())).collect()
    }

    #[test]
    fn selectors_match_as_promql_matches() {
        let cpu = labels(&[("cpu", "0"), ("mode", "user")]);
        let idle = labels(&[("cpu", "1"), ("mode", "idle")]);
        for (text, user, idle_too) in [
            ("node_cpu_seconds_total", true, true),
            ("node_cpu_seconds_total{}", true, true),
            ("node_cpu_seconds_total{mode=\"user\"}", true, false),
            ("node_cpu_seconds_total{mode!=\"idle\"}", true, false),
            ("node_cpu_seconds_total{ mode =~ \"us.*|sys\" , }", true, false),
            // Anchored: "idl" matches no whole value.
            ("node_cpu_seconds_total{mode=~\"idl\"}", false, false),
            ("node_cpu_seconds_total{mode!~'idle|iowait'}", true, false),
            ("{__name__=~\"node_cpu_.*\",cpu=\"1\"}", false, true),
            ("node_cpu_seconds_total{cpu=~`\\d+`}", true, true),
            ("node_cpu_seconds_total{cpu=~\"\\d\"}", true, true),
            // A missing label matches as empty.
            ("node_cpu_seconds_total{missing=\"\"}", true, true),
            ("node_cpu_seconds_total{missing!=\"\"}", false, false),
            ("node_load1", false, false),
        ] {
            let selector = SeriesSelector::parse(text).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(selector.text(), text);
            assert_eq!(
                (selector.matches("node_cpu_seconds_total", &cpu), selector.matches("node_cpu_seconds_total", &idle)),
                (user, idle_too),
                "{text}"
            );
        }
    }

    #[test]
    fn a_bad_selector_is_named_with_what_is_wrong() {
        for (text, says) in [
            ("foo{a=b}", "--series \"foo{a=b}\": label value must be quoted"),
            ("foo{a=\"b\"", "--series \"foo{a=\"b\"\": the label matchers have no closing }"),
            ("foo{a~\"b\"}", "label a: expected =, !=, =~ or !~ after the label name"),
            ("foo{a=~\"(\"}", "label a: not a regex"),
            ("foo bar", "unexpected \"bar\" after the metric name"),
            ("foo{a=\"b\"} x", "unexpected \"x\" after }"),
            ("", "selects every series"),
            ("{}", "selects every series"),
            ("9foo", "expected a metric name or {label=\"value\"}"),
            ("foo{a=\"b\" c=\"d\"}", "expected , or } after a label matcher"),
        ] {
            let error = SeriesSelector::parse(text).unwrap_err();
            assert!(error.contains(says), "{text:?}: {error}");
        }
        assert!("foo{a=b}".parse::<SeriesSelector>().is_err());
    }

    #[test]
    fn rates_divide_increases_by_time_and_gap_at_resets_and_failures() {
        let points = [
            (0.0, Some(100.0)),
            (1.0, Some(110.0)),
            (3.0, Some(130.0)),
            (4.0, Some(5.0)),
            (5.0, Some(9.0)),
            (6.0, None),
            (7.0, Some(20.0)),
        ];
        assert_eq!(rates(&points), [None, Some(10.0), Some(10.0), None, Some(4.0), None, None]);
        assert_eq!(rates(&[]), Vec::<Option<f64>>::new());
        assert_eq!(rates(&[(0.0, Some(1.0))]), [None]);
    }

    /// An exporter whose counter grows by ten a scrape, with a gauge, and
    /// a histogram with more series than the cap.
    async fn exporter() -> String {
        use std::sync::atomic::{AtomicU64, Ordering};
        let scrapes = std::sync::Arc::new(AtomicU64::new(0));
        let page = move || {
            let n = scrapes.fetch_add(1, Ordering::SeqCst);
            let mut text = format!(
                "# TYPE jobs_total counter\njobs_total{{queue=\"a\"}} {}\n# TYPE queue_depth gauge\nqueue_depth {n}\n# TYPE wide histogram\n",
                n * 10
            );
            for le in 0..60 {
                text.push_str(&format!("wide_bucket{{le=\"{le}\"}} {n}\n"));
            }
            async move { text }
        };
        let app = axum::Router::new()
            .route("/metrics", axum::routing::get(page))
            .route("/down", axum::routing::get(|| async { (http::StatusCode::SERVICE_UNAVAILABLE, "overloaded, try later") }))
            .route("/garbled", axum::routing::get(|| async { "ok 1\nbroken{ 2\n" }));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        base
    }

    #[tokio::test]
    async fn the_scraper_reads_each_second_and_reports_rates_and_problems() {
        let base = exporter().await;
        let selectors = ["jobs_total", "queue_depth", "wide_bucket", "absent_metric"].map(|s| SeriesSelector::parse(s).unwrap());
        let urls = vec![format!("{base}/metrics?format=text"), format!("{base}/down"), format!("{base}/garbled")];
        let scraper = Scraper::start(urls.clone(), selectors.to_vec(), Instant::now());
        tokio::time::sleep(Duration::from_millis(1900)).await;
        let (series, problems) = scraper.finish().await;

        let jobs = series.iter().find(|s| s.selector == "jobs_total").unwrap();
        assert_eq!((jobs.url.as_str(), jobs.series.as_str(), jobs.kind), (urls[0].as_str(), "jobs_total{queue=\"a\"}", SeriesKind::Rate));
        // Scrapes at the start and a second later, and the last at `finish`
        // (0.9 s on: more than a sliver, with room for a late tick). The
        // interval never fires early; how late it fires is the machine's.
        assert_eq!(jobs.t_s.len(), 3, "{jobs:?}");
        assert!(jobs.t_s[1] - jobs.t_s[0] >= 0.7, "{jobs:?}");
        assert_eq!(jobs.values[0], None);
        let rate = jobs.values[1].unwrap();
        assert!((5.0..20.0).contains(&rate), "about ten a second: {jobs:?}");
        let depth = series.iter().find(|s| s.selector == "queue_depth").unwrap();
        assert_eq!((depth.kind, &depth.values), (SeriesKind::Gauge, &vec![Some(0.0), Some(1.0), Some(2.0)]));
        assert_eq!(series.iter().filter(|s| s.selector == "wide_bucket").count(), SERIES_CAP);
        assert_eq!(series.len(), 2 + SERIES_CAP, "only /metrics gives series");

        let says = |url: &str, text: &str| problems.iter().find(|p| p.url == url && p.first_error.contains(text)).cloned();
        let down = says(&urls[1], "HTTP 503: overloaded, try later").unwrap_or_else(|| panic!("{problems:#?}"));
        assert_eq!((down.failed, down.of), (3, 3));
        assert_eq!(down.first_error, format!("GET {}: HTTP 503: overloaded, try later", urls[1]));
        let garbled = says(&urls[2], "line 2: broken: expected a label name").unwrap_or_else(|| panic!("{problems:#?}"));
        assert_eq!((garbled.failed, garbled.of), (3, 3));
        assert!(says(&urls[0], "--series \"absent_metric\" matched no series at").is_some(), "{problems:#?}");
        let wide = says(&urls[0], "--series \"wide_bucket\" matched 60 series").unwrap_or_else(|| panic!("{problems:#?}"));
        assert!(wide.first_error.contains("kept 50, dropped 10"), "{wide:?}");
        assert_eq!((wide.failed, wide.of), (10, 60));
        // A failed endpoint's selectors are its failure, not "matched nothing".
        assert!(says(&urls[1], "matched no series").is_none(), "{problems:#?}");
        assert_eq!(problems.len(), 4, "{problems:#?}");
    }

    /// A `finish` a moment after a scrape takes no last sample: a rate over
    /// a few milliseconds would be noise, drawn as the run's last second.
    #[tokio::test]
    async fn a_sliver_at_the_end_is_not_read() {
        let base = exporter().await;
        let scraper = Scraper::start(vec![format!("{base}/metrics")], vec![SeriesSelector::parse("jobs_total").unwrap()], Instant::now());
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let (series, _) = scraper.finish().await;
        assert_eq!(series[0].t_s.len(), 2, "{:?}", series[0]);
    }
    #[tokio::test]
    async fn fetch_text_names_the_url_when_it_cannot_get_an_answer() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/metrics?x=1", listener.local_addr().unwrap());
        drop(listener);
        let error = fetch_text(&url, Duration::from_secs(5)).await.unwrap_err();
        assert!(error.starts_with(&format!("GET {url}: ")), "{error}");
        let error = fetch_text("ftp://127.0.0.1/x", Duration::from_secs(5)).await.unwrap_err();
        assert!(error.contains("http:// or https://"), "{error}");
        let base = exporter().await;
        let (status, body) = fetch_text(&format!("{base}/down"), Duration::from_secs(5)).await.unwrap();
        assert_eq!((status.as_u16(), body.as_str()), (503, "overloaded, try later"));
    }
}
