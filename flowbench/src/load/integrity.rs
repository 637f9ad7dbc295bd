//! The grammar of a Dify run's stream, checked event by event on the
//! driver's hot path (`Grammar`), and what a stream leaves for its run's
//! timeline (`Trace`).
//!
//! A workflow app's stream is one run: one `workflow_started` first (pings
//! aside), every event with that run's `workflow_run_id` and `task_id`, each
//! `node_started` followed by one `node_finished` of the same execution id
//! and nothing of that node after it, `text_chunk`s inside the run, one
//! terminal event (`workflow_finished` or `error`) and no data event after
//! it; the terminal's run id and `total_steps` agree with the stream, and
//! the chunks' text is what the outputs hold. A chat app's stream (Dify's
//! `/chat-messages`, `/completion-messages`) ends at `message_end`; its
//! workflow events, where it has them, follow the same rules, and its
//! `message_id` and `conversation_id` stay one.
//!
//! Each event is parsed once, into borrowed fields (no allocation for an
//! id or a text without escapes); the check keeps per stream only the ids,
//! the open nodes and the text so far, in buffers reused across streams.

use schema::integrity::Violation;
use serde::Deserialize;
use serde::de::{Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::time::Duration;

/// Which grammar a stream is held to: the app's kind, by the path its
/// requests go to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `/v1/workflows/run` (or a gateway's route to it): ends at
    /// `workflow_finished` or `error`.
    Workflow,
    /// `/chat-messages`, `/completion-messages`: ends at `message_end` or `error`.
    Chat,
}

impl Kind {
    /// The kind of an app whose requests go to `path` (none: the workflow run).
    pub fn of_path(path: Option<&str>) -> Kind {
        match path {
            Some(p) if p.trim_end_matches('/').ends_with("chat-messages") || p.trim_end_matches('/').ends_with("completion-messages") => {
                Kind::Chat
            }
            _ => Kind::Workflow,
        }
    }
}

/// An event's type, as the trace keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    WorkflowStarted,
    NodeStarted,
    NodeFinished,
    TextChunk,
    /// A chat's `message` (its text) or `agent_message`.
    Message,
    WorkflowFinished,
    MessageEnd,
    Error,
    Other,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::WorkflowStarted => "workflow_started",
            EventKind::NodeStarted => "node_started",
            EventKind::NodeFinished => "node_finished",
            EventKind::TextChunk => "text_chunk",
            EventKind::Message => "message",
            EventKind::WorkflowFinished => "workflow_finished",
            EventKind::MessageEnd => "message_end",
            EventKind::Error => "error",
            EventKind::Other => "other",
        }
    }
}

/// What an event meant to the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// A piece of the answer's text (`text_chunk`, a chat's `message`).
    Text,
    /// The stream's terminal event, and whether the run succeeded.
    Terminal(bool),
    Other,
    /// Not the JSON of an event.
    Invalid,
}

/// An event's meaning without the grammar (`--no-integrity`): cheap for
/// the frequent `text_chunk` (Dify's envelope always starts with
/// `"event"`), a JSON parse for the rest. A chat app's stream ends at
/// `message_end`, after its workflow's `workflow_finished`.
pub fn unchecked(data: &str, kind: Kind) -> Seen {
    if data.starts_with(r#"{"event":"text_chunk""#) && data.ends_with('}') {
        return Seen::Text;
    }
    // Borrowed: the event's name and status, the rest skipped.
    let Ok(e) = serde_json::from_str::<EventName<'_>>(data) else { return Seen::Invalid };
    match &*e.event {
        "text_chunk" | "message" | "agent_message" => Seen::Text,
        "workflow_finished" if kind == Kind::Chat => Seen::Other,
        "workflow_finished" => Seen::Terminal(e.data.and_then(|d| d.status).as_deref() == Some("succeeded")),
        "message_end" => Seen::Terminal(true),
        "error" => Seen::Terminal(false),
        _ => Seen::Other,
    }
}

/// The node labels (title, type) a worker has met, each kept once: a
/// trace names a node by its index here, so an event allocates nothing.
#[derive(Debug, Default)]
pub struct Labels(Vec<(String, String)>);

/// Labels past this many are traced without one (an app with a huge graph
/// or titles that change per run would otherwise grow every table).
pub const MAX_LABELS: usize = 64;

impl Labels {
    /// The index of (title, type), added if new; `None` past `MAX_LABELS`.
    pub fn intern(&mut self, title: &str, node_type: &str) -> Option<u32> {
        if let Some(i) = self.0.iter().position(|(t, n)| t == title && n == node_type) {
            return Some(i as u32);
        }
        if self.0.len() >= MAX_LABELS {
            return None;
        }
        self.0.push((title.to_owned(), node_type.to_owned()));
        Some(self.0.len() as u32 - 1)
    }

    /// Label `i`'s title and type.
    pub fn get(&self, i: u32) -> Option<(&str, &str)> {
        self.0.get(i as usize).map(|(t, n)| (t.as_str(), n.as_str()))
    }
}

/// One event of a stream on its time line.
#[derive(Debug, Clone, Copy)]
pub struct TracedEvent {
    /// From the intended send.
    pub at: Duration,
    pub kind: EventKind,
    /// A node event's label, when it has one.
    pub label: Option<u32>,
}

/// What one stream leaves for the timeline: its events' times and its
/// nodes' own times. Buffers are reused from stream to stream.
#[derive(Debug, Default)]
pub struct Trace {
    pub points: Vec<TracedEvent>,
    /// Per finished node execution: its label and its finish minus its start.
    pub node_times: Vec<(Option<u32>, Duration)>,
    /// Points past `MAX_POINTS` were not kept.
    pub truncated: bool,
}

/// A stream keeps at most this many points (a long answer's chunks).
pub const MAX_POINTS: usize = 4096;

impl Trace {
    pub fn clear(&mut self) {
        self.points.clear();
        self.node_times.clear();
        self.truncated = false;
    }

    fn push(&mut self, point: TracedEvent) {
        if self.points.len() < MAX_POINTS {
            self.points.push(point);
        } else {
            self.truncated = true;
        }
    }
}

/// A node execution the stream started.
#[derive(Debug)]
struct OpenNode {
    id: String,
    label: Option<u32>,
    started: Duration,
    finished: bool,
}

/// One stream's grammar state; `reset` before each stream.
#[derive(Debug)]
pub struct Grammar {
    kind: Kind,
    /// The run's ids as the stream first carried them: `workflow_run_id`,
    /// `task_id`, `message_id`, `conversation_id` (empty: not yet carried).
    ids: [String; 4],
    carried: [bool; 4],
    started: bool,
    /// A data event has come.
    any: bool,
    terminal: bool,
    /// A chat's run failed before its `message_end`.
    chat_failed: bool,
    /// The stream's node executions: the first `n_nodes`; those past them
    /// are a stream before's, kept for their strings.
    nodes: Vec<OpenNode>,
    n_nodes: usize,
    text: String,
    violations: u16,
    /// Once the run's ids are known, how a `text_chunk`, a `node_started`
    /// and a `node_finished` of this run begin in Dify's shape, up to
    /// their first data field's value (empty until then).
    prefixes: [String; 3],
    /// The last text chunk's tail after its text, read as plain: the next
    /// one of the same node ends the same way.
    chunk_tail: String,
}

const CHUNK: usize = 0;
const NODE_STARTED: usize = 1;
const NODE_FINISHED: usize = 2;

impl Default for Grammar {
    fn default() -> Self {
        Self::new(Kind::Workflow)
    }
}

impl Grammar {
    pub fn new(kind: Kind) -> Self {
        Self {
            kind,
            ids: Default::default(),
            carried: [false; 4],
            started: false,
            any: false,
            terminal: false,
            chat_failed: false,
            nodes: Vec::new(),
            n_nodes: 0,
            text: String::new(),
            violations: 0,
            prefixes: Default::default(),
            chunk_tail: String::new(),
        }
    }

    /// Ready for a new stream of `kind`, its buffers kept.
    pub fn reset(&mut self, kind: Kind) {
        self.kind = kind;
        for id in &mut self.ids {
            id.clear();
        }
        self.carried = [false; 4];
        self.started = false;
        self.any = false;
        self.terminal = false;
        self.chat_failed = false;
        self.n_nodes = 0;
        self.text.clear();
        self.violations = 0;
        for prefix in &mut self.prefixes {
            prefix.clear();
        }
        self.chunk_tail.clear();
    }

    /// The rules broken so far, as `Violation` bits.
    pub fn violations(&self) -> u16 {
        self.violations
    }

    fn flag(&mut self, v: Violation) {
        self.violations |= v.bit();
    }

    /// Takes one data event (its `data:` text) that came `at` after the
    /// intended send; `trace` gets its point, `labels` its node's label.
    pub fn event(&mut self, data: &str, at: Duration, trace: &mut Trace, labels: &mut Labels) -> Seen {
        if let Some(text) = self.plain_chunk(data) {
            self.text.push_str(text);
            trace.push(TracedEvent { at, kind: EventKind::TextChunk, label: None });
            return Seen::Text;
        }
        let e = match self.plain_node(data) {
            Some(e) => e,
            None => match serde_json::from_str::<EventFields<'_>>(data) {
                Ok(e) => e,
                Err(_) => return Seen::Invalid,
            },
        };
        let kind = match &*e.event {
            "workflow_started" => EventKind::WorkflowStarted,
            "node_started" => EventKind::NodeStarted,
            "node_finished" => EventKind::NodeFinished,
            "text_chunk" => EventKind::TextChunk,
            "message" | "agent_message" => EventKind::Message,
            "workflow_finished" => EventKind::WorkflowFinished,
            "message_end" => EventKind::MessageEnd,
            "error" => EventKind::Error,
            "ping" => return Seen::Other,
            _ => EventKind::Other,
        };
        let first = !self.any;
        self.any = true;
        if self.terminal {
            // Nothing but pings after the terminal event.
            let again = matches!(kind, EventKind::Error | EventKind::MessageEnd)
                || (kind == EventKind::WorkflowFinished && self.kind == Kind::Workflow);
            self.flag(if again { Violation::DuplicateTerminal } else { Violation::EventOutsideRun });
        }
        match kind {
            EventKind::WorkflowStarted => {
                if self.started {
                    self.flag(Violation::DuplicateStart);
                } else if !first && self.kind == Kind::Workflow {
                    self.flag(Violation::MissingStart);
                }
                self.started = true;
            }
            _ if first && self.kind == Kind::Workflow => self.flag(Violation::MissingStart),
            _ => {}
        }
        self.same_run(&e);
        let data_fields = e.data.unwrap_or_default();
        let mut label = None;
        let mut seen = Seen::Other;
        match kind {
            EventKind::NodeStarted | EventKind::NodeFinished => {
                label = labels.intern(data_fields.title.as_deref().unwrap_or(""), data_fields.node_type.as_deref().unwrap_or(""));
                let id = data_fields.id.as_deref().unwrap_or("");
                let open = self.nodes[..self.n_nodes].iter().position(|n| n.id == id);
                if kind == EventKind::NodeStarted {
                    match open {
                        Some(i) if self.nodes[i].finished => self.flag(Violation::NodeAfterFinish),
                        // Started twice, finished at most once.
                        Some(_) => self.flag(Violation::UnpairedNode),
                        None => self.open_node(id, label, at),
                    }
                } else {
                    match open {
                        None => self.flag(Violation::UnpairedNode),
                        Some(i) if self.nodes[i].finished => self.flag(Violation::NodeAfterFinish),
                        Some(i) => {
                            self.nodes[i].finished = true;
                            trace.node_times.push((self.nodes[i].label, at.saturating_sub(self.nodes[i].started)));
                        }
                    }
                }
            }
            EventKind::TextChunk => {
                if let Some(text) = &data_fields.text {
                    self.text.push_str(text);
                }
                seen = Seen::Text;
            }
            EventKind::Message => seen = Seen::Text,
            EventKind::WorkflowFinished => {
                let ok = data_fields.status.as_deref() == Some("succeeded");
                if data_fields.id.as_deref().is_some_and(|id| self.carried[RUN] && self.ids[RUN] != id)
                    // Dify's `total_steps`: the node executions finished.
                    || data_fields.total_steps.is_some_and(|steps| steps != self.nodes[..self.n_nodes].iter().filter(|n| n.finished).count() as u64)
                {
                    self.flag(Violation::TerminalMismatch);
                }
                self.open_nodes_at_end();
                match self.kind {
                    Kind::Workflow => {
                        if ok && !self.text.is_empty() && !holds_text(data_fields.outputs, &self.text) {
                            self.flag(Violation::TextMismatch);
                        }
                        self.terminal = true;
                        seen = Seen::Terminal(ok);
                    }
                    Kind::Chat => self.chat_failed |= !ok,
                }
            }
            EventKind::MessageEnd if self.kind == Kind::Chat => {
                self.terminal = true;
                seen = Seen::Terminal(!self.chat_failed);
            }
            EventKind::Error => {
                self.terminal = true;
                seen = Seen::Terminal(false);
            }
            _ => {}
        }
        trace.push(TracedEvent { at, kind, label });
        seen
    }

    /// The text of a `text_chunk` in Dify's own shape, within the run, with
    /// this run's ids and a text without escapes: the hot path's common
    /// event, read without a parse (a parse per chunk was the check's main
    /// cost, docs/performance.md). Anything else (another key order, an
    /// escape, another id, a chunk outside the run) is `None`, and the
    /// event is parsed and judged in full.
    fn plain_chunk<'d>(&mut self, data: &'d str) -> Option<&'d str> {
        if !self.started || self.terminal || self.prefixes[CHUNK].is_empty() {
            return None;
        }
        let rest = data.strip_prefix(self.prefixes[CHUNK].as_str())?;
        // The text ends at the first quote; an escape or a control character
        // (invalid raw in JSON) sends the event to the parser.
        let (text, tail) = plain_str(rest)?;
        // Then the selector, an array of plain strings, and the two closing
        // braces: as the last chunk's, or read.
        if tail != self.chunk_tail {
            let selector = tail.strip_prefix(r#","from_variable_selector":["#)?.strip_suffix("]}}")?;
            let plain = selector.bytes().all(|b| !matches!(b, b'\\' | b'{' | b'}' | b'[' | b']') && b >= 0x20);
            if !plain || selector.bytes().filter(|&b| b == b'"').count() % 2 != 0 {
                return None;
            }
            self.chunk_tail.clear();
            self.chunk_tail.push_str(tail);
        }
        Some(text)
    }

    /// A `node_started` or `node_finished` in Dify's own shape, within the
    /// run, with this run's ids and its node's id, `node_id`, `node_type`
    /// and `title` first and without escapes: the fields the grammar reads,
    /// taken from their places, the whole event still checked to be JSON
    /// (the cheapest full read serde has, as `--no-integrity` reads it).
    /// A node event's inputs and outputs make it the largest of a stream, and
    /// a parse into fields cost the check more than the rest of its work.
    /// Anything else is `None`, and the event is parsed.
    fn plain_node<'d>(&self, data: &'d str) -> Option<EventFields<'d>> {
        if !self.started || self.terminal || self.prefixes[NODE_STARTED].is_empty() {
            return None;
        }
        let (event, rest) = if let Some(rest) = data.strip_prefix(self.prefixes[NODE_STARTED].as_str()) {
            ("node_started", rest)
        } else {
            ("node_finished", data.strip_prefix(self.prefixes[NODE_FINISHED].as_str())?)
        };
        let (id, rest) = plain_str(rest)?;
        let (_, rest) = plain_str(rest.strip_prefix(r#","node_id":""#)?)?;
        let (node_type, rest) = plain_str(rest.strip_prefix(r#","node_type":""#)?)?;
        let (title, _) = plain_str(rest.strip_prefix(r#","title":""#)?)?;
        serde_json::from_str::<IgnoredAny>(data).ok()?;
        Some(EventFields {
            event: Cow::Borrowed(event),
            // The ids matched the run's: nothing for `same_run` to compare.
            workflow_run_id: None,
            task_id: None,
            message_id: None,
            conversation_id: None,
            data: Some(EventData {
                id: Some(Cow::Borrowed(id)),
                title: Some(Cow::Borrowed(title)),
                node_type: Some(Cow::Borrowed(node_type)),
                ..EventData::default()
            }),
        })
    }

    fn open_node(&mut self, id: &str, label: Option<u32>, at: Duration) {
        match self.nodes.get_mut(self.n_nodes) {
            Some(node) => {
                node.id.clear();
                node.id.push_str(id);
                (node.label, node.started, node.finished) = (label, at, false);
            }
            None => self.nodes.push(OpenNode { id: id.to_owned(), label, started: at, finished: false }),
        }
        self.n_nodes += 1;
    }

    /// A run that finished with a node still open: unpaired.
    fn open_nodes_at_end(&mut self) {
        if self.nodes[..self.n_nodes].iter().any(|n| !n.finished) {
            self.flag(Violation::UnpairedNode);
        }
    }

    /// Each id the event carries is the first one of its key the stream
    /// carried (`workflow_started`'s own id included).
    fn same_run(&mut self, e: &EventFields<'_>) {
        let run_of_start = (e.event == "workflow_started").then(|| e.data.as_ref().and_then(|d| d.id.as_deref())).flatten();
        let carried =
            [e.workflow_run_id.as_deref().or(run_of_start), e.task_id.as_deref(), e.message_id.as_deref(), e.conversation_id.as_deref()];
        let mut foreign = false;
        for ((mine, known), theirs) in self.ids.iter_mut().zip(&mut self.carried).zip(carried) {
            match theirs {
                None => {}
                Some(t) if !*known => {
                    mine.push_str(t);
                    *known = true;
                }
                Some(t) => foreign |= mine != t,
            }
        }
        // A workflow_started whose data.id is not its envelope's run id.
        if let (Some(a), Some(b)) = (e.workflow_run_id.as_deref(), run_of_start) {
            foreign |= a != b;
        }
        if foreign {
            self.flag(Violation::ForeignEvent);
        }
        if self.prefixes[CHUNK].is_empty() && self.carried[RUN] && self.carried[TASK] {
            // Written into the strings a stream before left, not allocated.
            let (run, task) = (&self.ids[RUN], &self.ids[TASK]);
            for (prefix, (event, field)) in
                self.prefixes.iter_mut().zip([("text_chunk", "text"), ("node_started", "id"), ("node_finished", "id")])
            {
                for part in
                    [r#"{"event":""#, event, r#"","workflow_run_id":""#, run, r#"","task_id":""#, task, r#"","data":{""#, field, r#"":""#]
                {
                    prefix.push_str(part);
                }
            }
        }
    }
}

/// A JSON string's text up to its closing quote, and what follows the
/// quote; `None` if it holds an escape or a control character.
fn plain_str(s: &str) -> Option<(&str, &str)> {
    let end = s.bytes().position(|b| b == b'"' || b == b'\\' || b < 0x20)?;
    (s.as_bytes()[end] == b'"').then(|| (&s[..end], &s[end + 1..]))
}

const RUN: usize = 0;
const TASK: usize = 1;

/// Whether outputs hold the streamed text: Dify 1.13 streams an End
/// node's outputs in order, joined by a newline; earlier versions stream
/// one output's text. Outputs that are not all strings or integers
/// (objects, files, floats) are not text the stream can be held to.
fn holds_text(outputs: Option<&RawValue>, text: &str) -> bool {
    // Outputs that are not an object (or not JSON) hold no text to compare.
    let Some(OutputTexts(Some(values))) = outputs.and_then(|raw| serde_json::from_str::<OutputTexts<'_>>(raw.get()).ok()) else {
        return true;
    };
    if values.is_empty() {
        return true;
    }
    // Compared in place: one of them, all joined by a newline, or all in a row.
    let joined_by = |sep: &str| {
        let mut rest = text;
        for (i, v) in values.iter().enumerate() {
            if i > 0 {
                let Some(r) = rest.strip_prefix(sep) else { return false };
                rest = r;
            }
            let Some(r) = rest.strip_prefix(v.as_ref()) else { return false };
            rest = r;
        }
        rest.is_empty()
    };
    values.iter().any(|v| v == text) || joined_by("\n") || joined_by("")
}

/// An outputs object's values as text, in order, borrowed where they
/// hold no escape; `None` when one is not a string or an integer.
struct OutputTexts<'a>(Option<Vec<Cow<'a, str>>>);

/// One output's value as text, `None` for any other type.
struct OutputText<'a>(Option<Cow<'a, str>>);

impl<'de> Deserialize<'de> for OutputTexts<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Texts;
        impl<'de> Visitor<'de> for Texts {
            type Value = OutputTexts<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an outputs object")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut values = Some(Vec::new());
                while let Some((IgnoredAny, OutputText(v))) = map.next_entry()? {
                    match (&mut values, v) {
                        (Some(vs), Some(v)) => vs.push(v),
                        _ => values = None,
                    }
                }
                Ok(OutputTexts(values))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(OutputTexts(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
            fn visit_str<E>(self, _: &str) -> Result<Self::Value, E> {
                Ok(OutputTexts(None))
            }
        }
        d.deserialize_any(Texts)
    }
}

impl<'de> Deserialize<'de> for OutputText<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Text;
        impl<'de> Visitor<'de> for Text {
            type Value = OutputText<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("an output")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
                Ok(OutputText(Some(Cow::Borrowed(v))))
            }
            fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
                Ok(OutputText(Some(Cow::Owned(v.to_owned()))))
            }
            fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
                Ok(OutputText(Some(Cow::Owned(v))))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
                Ok(OutputText(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
                Ok(OutputText(Some(Cow::Owned(v.to_string()))))
            }
            fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
                Ok(OutputText(None))
            }
            fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
                Ok(OutputText(None))
            }
            fn visit_unit<E>(self) -> Result<Self::Value, E> {
                Ok(OutputText(None))
            }
            fn visit_none<E>(self) -> Result<Self::Value, E> {
                Ok(OutputText(None))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(OutputText(None))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(OutputText(None))
            }
        }
        d.deserialize_any(Text)
    }
}

/// The fields of an event the grammar reads; the rest are skipped.
#[derive(Deserialize)]
struct EventFields<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    workflow_run_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    task_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    conversation_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    data: Option<EventData<'a>>,
}

#[derive(Deserialize, Default)]
struct EventData<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    title: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    node_type: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    status: Option<Cow<'a, str>>,
    /// Kept raw: only a `workflow_finished`'s are read.
    #[serde(borrow, default)]
    outputs: Option<&'a RawValue>,
    #[serde(default, deserialize_with = "lenient_u64")]
    total_steps: Option<u64>,
}

/// What a field is read as when it has the type Dify sends (a string, an
/// object); any other value is `None`: an event whose field is not what
/// Dify sends is judged on what it has, not refused.
trait Lenient<'de>: Sized {
    fn of_str(_: Cow<'de, str>) -> Option<Self> {
        None
    }
    fn of_map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

impl<'de> Lenient<'de> for Cow<'de, str> {
    fn of_str(s: Cow<'de, str>) -> Option<Self> {
        Some(s)
    }
}

/// An object read as `T` itself.
macro_rules! lenient_object {
    ($t:ident) => {
        impl<'de> Lenient<'de> for $t<'de> {
            fn of_map<A: MapAccess<'de>>(map: A) -> Result<Option<Self>, A::Error> {
                $t::deserialize(serde::de::value::MapAccessDeserializer::new(map)).map(Some)
            }
        }
    };
}
lenient_object!(EventData);
lenient_object!(StatusOnly);

/// A field read as `T` if it has `T`'s type, `None` otherwise.
fn lenient<'de, D: Deserializer<'de>, T: Lenient<'de>>(d: D) -> Result<Option<T>, D::Error> {
    struct AnyValue<T>(std::marker::PhantomData<T>);
    impl<'de, T: Lenient<'de>> Visitor<'de> for AnyValue<T> {
        type Value = Option<T>;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("any value")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(T::of_str(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(T::of_str(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(T::of_str(Cow::Owned(v)))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            T::of_map(map)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, _: bool) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
    }
    d.deserialize_any(AnyValue(std::marker::PhantomData))
}

/// An integer field, or `None` for any other value.
fn lenient_u64<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    Ok(match Value::deserialize(d)? {
        Value::Number(n) => n.as_u64(),
        _ => None,
    })
}

/// An event's name and status, all `unchecked` reads of the events it parses.
#[derive(Deserialize)]
struct EventName<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
    #[serde(borrow, default, deserialize_with = "lenient")]
    data: Option<StatusOnly<'a>>,
}

#[derive(Deserialize)]
struct StatusOnly<'a> {
    #[serde(borrow, default, deserialize_with = "lenient")]
    status: Option<Cow<'a, str>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The data events of each stream of Dify 1.13.2's transcripts.
    fn dify_streams() -> Vec<Vec<String>> {
        let text = std::fs::read_to_string(mock::workspace_root().join("fixtures/transcripts/dify-1.13.2.txt")).unwrap();
        let streams: Vec<Vec<String>> = text
            .split("################ ")
            .filter(|s| s.contains("text/event-stream"))
            .map(|s| s.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect())
            .collect();
        assert!(streams.len() >= 3, "the transcripts hold Dify's streams");
        streams
    }

    fn check(kind: Kind, events: &[String]) -> (u16, Seen) {
        let (mut g, mut trace, mut labels) = (Grammar::new(kind), Trace::default(), Labels::default());
        let mut last = Seen::Other;
        for (i, e) in events.iter().enumerate() {
            last = g.event(e, Duration::from_millis(i as u64), &mut trace, &mut labels);
            assert_ne!(last, Seen::Invalid, "{e}");
        }
        (g.violations(), last)
    }

    fn names(set: u16) -> Vec<&'static str> {
        Violation::of_set(set).map(Violation::as_str).collect()
    }

    #[test]
    fn dify_s_own_streams_keep_the_grammar() {
        for stream in dify_streams() {
            let (violations, last) = check(Kind::Workflow, &stream);
            assert_eq!(names(violations), Vec::<&str>::new(), "{stream:#?}");
            assert_eq!(last, Seen::Terminal(true));
        }
        // One grammar, reset between streams as a worker's is, judges each
        // as a new one would: its buffers carry nothing over.
        let (mut g, mut trace, mut labels) = (Grammar::new(Kind::Workflow), Trace::default(), Labels::default());
        let streams = dify_streams();
        for stream in streams.iter().chain(&streams) {
            g.reset(Kind::Workflow);
            let seen: Vec<Seen> = stream.iter().map(|e| g.event(e, Duration::ZERO, &mut trace, &mut labels)).collect();
            assert_eq!((g.violations(), seen.last()), (0, Some(&Seen::Terminal(true))));
        }
        let longest = streams.iter().max_by_key(|s| s.len()).unwrap();
        let finish = longest.iter().position(|e| e.contains(r#""event":"node_finished""#)).unwrap();
        g.reset(Kind::Workflow);
        for (i, e) in longest.iter().enumerate() {
            if i != finish {
                g.event(e, Duration::ZERO, &mut trace, &mut labels);
            }
        }
        assert_eq!(names(g.violations()), ["unpaired_node", "terminal_mismatch"]);
    }

    /// A Dify stream broken one way, and the one rule it must name.
    #[test]
    fn each_broken_rule_is_named() {
        let stream = dify_streams().into_iter().max_by_key(Vec::len).unwrap();
        let other_run =
            |e: &str| e.replacen(&e[e.find("\"workflow_run_id\":\"").unwrap() + 19..][..36], "00000000-0000-4000-8000-000000000000", 1);
        let position = |name: &str| stream.iter().position(|e| e.contains(&format!("\"event\":\"{name}\""))).unwrap();
        let text_at = position("text_chunk");
        let node_finished = position("node_finished");
        let end = stream.len() - 1;
        // A node started (an execution id of its own) and never finished.
        let started = &stream[position("node_started")];
        let id_at = started.find("\"data\":{\"id\":\"").unwrap() + 14;
        let never_finished = started.replacen(&started[id_at..id_at + 36], "99999999-0000-4000-8000-000000000000", 1);
        // A lost node_finished also leaves total_steps one over the stream's.
        let lost_finish: Vec<String> = stream.iter().enumerate().filter(|(i, _)| *i != node_finished).map(|(_, e)| e.clone()).collect();
        assert_eq!(names(check(Kind::Workflow, &lost_finish).0), ["unpaired_node", "terminal_mismatch"]);
        let cases: Vec<(&str, Vec<String>)> = vec![
            ("missing_start", stream[1..].to_vec()),
            ("duplicate_start", [&stream[..1], &stream[..]].concat()),
            ("foreign_event", stream.iter().enumerate().map(|(i, e)| if i == text_at { other_run(e) } else { e.clone() }).collect()),
            ("unpaired_node", [&stream[..end], &[never_finished], &stream[end..]].concat()),
            ("node_after_finish", [&stream[..=node_finished], &stream[node_finished..]].concat()),
            ("duplicate_terminal", [&stream[..], &stream[end..]].concat()),
            ("event_outside_run", [&stream[..], &stream[text_at..=text_at]].concat()),
            ("terminal_mismatch", stream.iter().map(|e| e.replace("\"total_steps\":3", "\"total_steps\":4")).collect()),
            ("text_mismatch", stream.iter().enumerate().filter(|(i, _)| *i != text_at).map(|(_, e)| e.clone()).collect()),
        ];
        for (class, events) in cases {
            let (violations, _) = check(Kind::Workflow, &events);
            assert_eq!(names(violations), vec![class], "{class}");
        }
    }

    #[test]
    fn a_chat_stream_ends_at_message_end_and_keeps_its_ids() {
        let e =
            |event: &str, extra: &str| format!(r#"{{"event":"{event}","task_id":"t1","message_id":"m1","conversation_id":"c1"{extra}}}"#);
        let stream = vec![e("message", r#","answer":"hi""#), e("message", r#","answer":" there""#), e("message_end", "")];
        assert_eq!(check(Kind::Chat, &stream), (0, Seen::Terminal(true)));
        let mut foreign = stream.clone();
        foreign[1] = foreign[1].replace("m1", "m2");
        assert_eq!(names(check(Kind::Chat, &foreign).0), ["foreign_event"]);
        // A chat app's workflow_finished is not its end; a failed one fails it.
        let failed = r#"{"event":"workflow_finished","task_id":"t1","data":{"status":"failed"}}"#.to_owned();
        let (v, last) = check(Kind::Chat, &[stream[0].clone(), failed, stream[2].clone()]);
        assert_eq!((v, last), (0, Seen::Terminal(false)));
    }

    /// The unparsed path for plain chunks reads what the parser reads, and
    /// leaves everything else to it.
    #[test]
    fn plain_chunks_are_read_as_the_parser_reads_them() {
        let (run, task) = ("r-1", "t-1");
        let chunk = |text: &str| {
            serde_json::json!({"event": "text_chunk", "workflow_run_id": run, "task_id": task, "data": {"text": text, "from_variable_selector": ["llm", "text"]}})
                .to_string()
        };
        let mut g = Grammar::new(Kind::Workflow);
        let (mut trace, mut labels) = (Trace::default(), Labels::default());
        let started = format!(r#"{{"event":"workflow_started","workflow_run_id":"{run}","task_id":"{task}","data":{{"id":"{run}"}}}}"#);
        assert!(g.plain_chunk(&chunk("early")).is_none(), "not before the run starts");
        g.event(&started, Duration::ZERO, &mut trace, &mut labels);
        let texts = ["plain ", "a \"quote\" ", "new\nline ", "tab\t", "ünï ", ""];
        for text in texts {
            let e = chunk(text);
            assert_eq!(g.plain_chunk(&e).is_some(), !text.contains(['"', '\n', '\t']), "{e}");
            assert_eq!(g.event(&e, Duration::ZERO, &mut trace, &mut labels), Seen::Text);
        }
        assert_eq!(g.text, texts.concat());
        // Another run's chunk, or one with a key more, is parsed and judged.
        assert!(g.plain_chunk(&chunk("x").replace("r-1", "r-2")).is_none());
        assert!(g.plain_chunk(&chunk("x").replace("]}}", r#"]},"extra":1}"#)).is_none());
        assert!(g.plain_chunk(&chunk("x").replace(r#"["llm","text"]"#, r#"["llm",{"a":1}]"#)).is_none());
        assert_eq!(g.violations(), 0);
        g.event(&chunk("x").replace("r-1", "r-2"), Duration::ZERO, &mut trace, &mut labels);
        assert_eq!(names(g.violations()), ["foreign_event"]);
    }

    /// Each node event of Dify's streams is read in place, with the fields
    /// the parser reads; one not in that shape, or not JSON, goes to the
    /// parser.
    #[test]
    fn plain_node_events_are_read_as_the_parser_reads_them() {
        let mut read_in_place = 0;
        for stream in dify_streams() {
            let (mut g, mut trace, mut labels) = (Grammar::new(Kind::Workflow), Trace::default(), Labels::default());
            for e in &stream {
                if let Some(fast) = g.plain_node(e) {
                    read_in_place += 1;
                    let parsed = serde_json::from_str::<EventFields<'_>>(e).unwrap();
                    let (fast_data, data) = (fast.data.unwrap(), parsed.data.unwrap());
                    assert_eq!(fast.event, parsed.event);
                    assert_eq!((fast_data.id, fast_data.title, fast_data.node_type), (data.id, data.title, data.node_type));
                    assert_eq!(parsed.workflow_run_id.as_deref(), Some(g.ids[RUN].as_str()), "only the run's own");
                    // Cut short, or with an escape in its title: parsed.
                    assert!(g.plain_node(&e[..e.len() - 1]).is_none());
                    let title_at = e.find(r#""title":""#).unwrap() + 9;
                    assert!(g.plain_node(&format!("{}\\u0041{}", &e[..title_at], &e[title_at..])).is_none());
                    assert!(g.plain_node(&e.replacen(g.ids[TASK].as_str(), "another-task", 1)).is_none());
                } else {
                    assert!(!g.started || !e.starts_with(r#"{"event":"node_"#), "a Dify node event read in place: {e}");
                }
                g.event(e, Duration::ZERO, &mut trace, &mut labels);
            }
            assert_eq!(g.violations(), 0);
        }
        assert!(read_in_place >= 6, "{read_in_place}");
    }

    #[test]
    fn outputs_hold_the_text_joined_one_by_one_or_alone() {
        let raw = |json: &str| RawValue::from_string(json.to_owned()).unwrap();
        let outputs = raw(r#"{"text": "hello", "user": "bench", "n": 200}"#);
        assert!(holds_text(Some(&outputs), "hello\nbench\n200"));
        assert!(holds_text(Some(&outputs), "hellobench200"));
        assert!(holds_text(Some(&outputs), "bench"));
        assert!(!holds_text(Some(&outputs), "hell\nbench\n200"));
        assert!(!holds_text(Some(&outputs), "hello\nbench\n2000"));
        assert!(!holds_text(Some(&outputs), "hello\nbench"));
        // Escaped text is compared as its characters.
        assert!(holds_text(Some(&raw(r#"{"text": "a \"quote\"\nline \u00fc"}"#)), "a \"quote\"\nline ü"));
        // Outputs that are not text are not held to the stream.
        assert!(holds_text(Some(&raw(r#"{"files": []}"#)), "anything"));
        assert!(holds_text(Some(&raw(r#"{"text": "x", "score": 0.5}"#)), "anything"));
        assert!(holds_text(Some(&raw("null")), "anything"));
        assert!(holds_text(None, "anything"));
    }

    #[test]
    fn fields_of_another_shape_are_judged_not_refused() {
        let mut g = Grammar::new(Kind::Workflow);
        let (mut trace, mut labels) = (Trace::default(), Labels::default());
        let odd = r#"{"event":"workflow_started","workflow_run_id":7,"task_id":null,"data":"x"}"#;
        assert_eq!(g.event(odd, Duration::ZERO, &mut trace, &mut labels), Seen::Other);
        assert_eq!(g.event("{not json", Duration::ZERO, &mut trace, &mut labels), Seen::Invalid);
        assert_eq!(g.violations(), 0);
    }
}
