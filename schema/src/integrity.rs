//! Whether each stream formed a Dify run (`Violation`, `Integrity`), and
//! where a run's time went (`Timeline`): the report's types for the
//! driver's grammar check and its per-event timeline.

use crate::metrics::Summary;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// A rule of Dify's event grammar that a stream broke. A stream that
/// breaks any is an error of class `integrity`; each rule it broke is
/// counted once for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Violation {
    /// The first data event is not `workflow_started` (or none came).
    MissingStart,
    /// A second `workflow_started`.
    DuplicateStart,
    /// An event whose `workflow_run_id`, `task_id` (or a chat's
    /// `message_id`, `conversation_id`) is not the run's.
    ForeignEvent,
    /// A `node_finished` without its `node_started`, or a node started and
    /// never finished by the end of a run that finished.
    UnpairedNode,
    /// A node's event after its `node_finished` (a second finish, a restart).
    NodeAfterFinish,
    /// A second terminal event (`workflow_finished`, `error`, `message_end`).
    DuplicateTerminal,
    /// A data event other than the terminal after the terminal event.
    EventOutsideRun,
    /// The terminal event's run id is not the run's, or its `total_steps`
    /// is not the number of nodes the stream finished.
    TerminalMismatch,
    /// The `text_chunk`s put together are not the text the run's outputs
    /// hold (a lost, duplicated or reordered chunk).
    TextMismatch,
}

impl Violation {
    pub const ALL: [Violation; 9] = [
        Violation::MissingStart,
        Violation::DuplicateStart,
        Violation::ForeignEvent,
        Violation::UnpairedNode,
        Violation::NodeAfterFinish,
        Violation::DuplicateTerminal,
        Violation::EventOutsideRun,
        Violation::TerminalMismatch,
        Violation::TextMismatch,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Violation::MissingStart => "missing_start",
            Violation::DuplicateStart => "duplicate_start",
            Violation::ForeignEvent => "foreign_event",
            Violation::UnpairedNode => "unpaired_node",
            Violation::NodeAfterFinish => "node_after_finish",
            Violation::DuplicateTerminal => "duplicate_terminal",
            Violation::EventOutsideRun => "event_outside_run",
            Violation::TerminalMismatch => "terminal_mismatch",
            Violation::TextMismatch => "text_mismatch",
        }
    }

    /// What a reader is told it means.
    pub fn description(self) -> &'static str {
        match self {
            Violation::MissingStart => "the first event was not workflow_started",
            Violation::DuplicateStart => "workflow_started came twice",
            Violation::ForeignEvent => "an event carried another run's ids",
            Violation::UnpairedNode => "a node finished without starting, or started and never finished",
            Violation::NodeAfterFinish => "a node's event came after its node_finished",
            Violation::DuplicateTerminal => "the terminal event came twice",
            Violation::EventOutsideRun => "an event came after the terminal event",
            Violation::TerminalMismatch => "the terminal event's run id or total_steps disagreed with the stream",
            Violation::TextMismatch => "the text chunks did not add up to the run's output",
        }
    }

    /// Its bit in a stream's set of violations.
    pub const fn bit(self) -> u16 {
        1 << self as u16
    }

    /// The violations of a set, in order.
    pub fn of_set(set: u16) -> impl Iterator<Item = Violation> {
        Violation::ALL.into_iter().filter(move |v| set & v.bit() != 0)
    }
}

/// What a report says of a streaming scenario without `integrity`.
pub const NOT_CHECKED: &str = "not checked (--no-integrity, or no stream reached its end)";

/// What the grammar check found in a scenario's measured streams.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Integrity {
    /// Streams checked: those that reached their terminal event (a stream
    /// that failed before it is an error of its own class).
    pub checked: u64,
    /// Streams that broke at least one rule: the errors of class `integrity`.
    pub violating: u64,
    /// Streams per rule broken, by `Violation::as_str` (a stream may break several).
    pub by_class: BTreeMap<String, u64>,
    /// The first offending streams, whole.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub examples: Vec<OffendingStream>,
}

/// A stream that broke the grammar, as it came.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OffendingStream {
    /// The app it went to.
    pub app: String,
    pub violations: Vec<String>,
    /// Every event, in order; pings included.
    pub events: Vec<StreamEvent>,
    /// Events past the kept number were left out.
    #[serde(default)]
    pub truncated: bool,
}

/// One SSE event of a kept stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamEvent {
    /// Since the request was sent, in ms (the read it came in).
    pub at_ms: f64,
    /// Its `event:` field, when it had one (`ping`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event: Option<String>,
    pub data: String,
}

/// Where a scenario's streams spent their time: from the intended send to
/// each step of the run, as HDR histograms, and two streams drawn whole.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Timeline {
    /// In the order a run meets them.
    pub steps: Vec<TimelineStep>,
    /// The stream whose duration is nearest the median, and the slowest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub median: Option<StreamTrace>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slowest: Option<StreamTrace>,
    /// Node labels past the kept number were not given their own rows.
    #[serde(default)]
    pub nodes_left_out: u64,
}

/// A step of a run: an event type, for a node its title and type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// The intended send → `workflow_started`.
    WorkflowStarted,
    /// → a node's `node_started`.
    NodeStarted,
    /// → its `node_finished`.
    NodeFinished,
    /// The node's own time: its finish minus its start.
    NodeTime,
    /// → the first `text_chunk` (a chat's first `message`).
    FirstText,
    /// → the terminal event.
    Terminal,
    /// `--stamped`: a chunk's emit at the upstream → its receipt: what the
    /// server (and the network) added to each chunk.
    ServerAddedPerChunk,
    /// `--stamped`: between two chunks' emits at the upstream: what the
    /// upstream model took per chunk.
    UpstreamPerChunk,
}

impl Step {
    pub fn as_str(self) -> &'static str {
        match self {
            Step::WorkflowStarted => "workflow_started",
            Step::NodeStarted => "node_started",
            Step::NodeFinished => "node_finished",
            Step::NodeTime => "node_time",
            Step::FirstText => "first_text",
            Step::Terminal => "terminal",
            Step::ServerAddedPerChunk => "server_added_per_chunk",
            Step::UpstreamPerChunk => "upstream_per_chunk",
        }
    }
}

/// A node as the stream named it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct NodeLabel {
    pub title: String,
    pub node_type: String,
}

/// One row of a timeline.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimelineStep {
    pub step: Step,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeLabel>,
    pub ms: Summary,
    /// HdrHistogram V2+DEFLATE, base64, µs (as the report's histograms).
    pub histogram: String,
}

/// One stream's events on its time line, for the waterfall.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamTrace {
    /// Intended send → terminal event.
    pub duration_ms: f64,
    pub points: Vec<TracePoint>,
    /// Points past the kept number were left out.
    #[serde(default)]
    pub truncated: bool,
}

/// An event of a traced stream.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TracePoint {
    /// From the intended send.
    pub at_ms: f64,
    /// Its Dify event name (`text_chunk`, `node_started`, …).
    pub event: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<NodeLabel>,
}
