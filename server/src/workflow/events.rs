//! The JSON shapes Dify 1.13 puts on the wire, as borrowed structs whose
//! field order is the wire's key order, so each event is one serializer pass
//! straight into its SSE frame, with no intermediate `Value`.

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

/// A stream event's envelope: `{"event","workflow_run_id","task_id","data"}`.
#[derive(Serialize)]
pub struct Envelope<'a, D> {
    pub event: &'static str,
    pub workflow_run_id: &'a str,
    pub task_id: &'a str,
    pub data: D,
}

/// Serializes one event as a complete `data:` SSE frame.
pub fn frame<D: Serialize>(event: &'static str, ids: &RunIds<'_>, data: D) -> Vec<u8> {
    exact(|out| frame_into(out, event, ids, data))
}

/// What `write` writes, in a buffer of its exact length. It writes into
/// this thread's scratch buffer, which is copied out: one allocation and one
/// copy, where a buffer grown from a guess was copied at each growth, and
/// its spare room cost `Bytes` a second allocation when the body took it.
pub fn exact(write: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    thread_local! {
        static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    // A large buffer is not kept for the next one.
    const KEPT: usize = 64 * 1024;
    SCRATCH.with(|scratch| match scratch.try_borrow_mut() {
        Ok(mut out) => {
            out.clear();
            write(&mut out);
            let written = out.as_slice().to_vec();
            if out.capacity() > KEPT {
                *out = Vec::new();
            }
            written
        }
        // Called from within `write` (nothing does so today): a buffer of its own.
        Err(_) => {
            let mut out = Vec::new();
            write(&mut out);
            out
        }
    })
}

/// Appends one event's complete `data:` SSE frame to `out`.
pub fn frame_into<D: Serialize>(out: &mut Vec<u8>, event: &'static str, ids: &RunIds<'_>, data: D) {
    let envelope = Envelope { event, workflow_run_id: ids.run_id, task_id: ids.task_id, data };
    let start = out.len();
    out.extend_from_slice(b"data: ");
    serde_json::to_writer(&mut *out, &envelope).expect("serialize to Vec");
    out.extend_from_slice(b"\n\n");
    debug_assert!(!out[start + 6..out.len() - 2].contains(&b'\n'));
}

/// Appends one `text_chunk` event's frame to `out`, byte for byte what
/// [`frame_into`] writes for a [`TextChunk`] (a test checks). Written by
/// hand: a relayed stream is mostly these, and serde's generic path spent
/// more on the fixed keys and the server's own ids, which need no escaping
/// (the server made them), than on the text.
pub fn text_chunk_into(out: &mut Vec<u8>, ids: &RunIds<'_>, text: &str, from_variable_selector: [&str; 2]) {
    envelope_head_into(out, b"text_chunk", ids);
    out.extend_from_slice(b"{\"text\":");
    json_into(out, text);
    out.extend_from_slice(b",\"from_variable_selector\":[");
    json_into(out, from_variable_selector[0]);
    out.push(b',');
    json_into(out, from_variable_selector[1]);
    out.extend_from_slice(b"]}}\n\n");
}

/// Appends one `node_started` event's frame to `out`, byte for byte what
/// [`frame_into`] writes for it (a test checks): every node of every run
/// sends one, and most of serde's work on it was its fixed keys. What the
/// workflow's author wrote (node ids, titles) still goes through serde.
pub fn node_started_into(out: &mut Vec<u8>, ids: &RunIds<'_>, node: &NodeStarted<'_>) {
    let mut int = itoa::Buffer::new();
    node_head_into(out, b"node_started", ids, [node.id, node.node_id, node.node_type, node.title], node.index, node.predecessor_node_id);
    // `inputs`, `iteration_id`, `loop_id` and `agent_strategy` are
    // `Option<()>`: null whatever they hold, as serde writes a unit.
    out.extend_from_slice(b",\"inputs\":null,\"inputs_truncated\":");
    out.extend_from_slice(bool_text(node.inputs_truncated));
    out.extend_from_slice(b",\"created_at\":");
    out.extend_from_slice(int.format(node.created_at).as_bytes());
    out.extend_from_slice(b",\"extras\":{},\"iteration_id\":null,\"loop_id\":null,\"agent_strategy\":null}}\n\n");
}

/// Appends one `node_finished` event's frame to `out`, byte for byte what
/// [`frame_into`] writes for it (a test checks): its fixed keys by hand, as
/// [`node_started_into`]'s; its inputs, process data, outputs, metadata,
/// error and what the workflow's author wrote through serde.
pub fn node_finished_into<I, P, O, M>(out: &mut Vec<u8>, ids: &RunIds<'_>, node: &NodeFinished<'_, I, P, O, M>)
where
    I: Serialize,
    P: Serialize,
    O: Serialize,
    M: Serialize,
{
    debug_assert!(is_plain(node.status));
    let mut int = itoa::Buffer::new();
    node_head_into(out, b"node_finished", ids, [node.id, node.node_id, node.node_type, node.title], node.index, node.predecessor_node_id);
    out.extend_from_slice(b",\"inputs\":");
    json_into(out, &node.inputs);
    out.extend_from_slice(b",\"inputs_truncated\":");
    out.extend_from_slice(bool_text(node.inputs_truncated));
    out.extend_from_slice(b",\"process_data\":");
    json_into(out, &node.process_data);
    out.extend_from_slice(b",\"process_data_truncated\":");
    out.extend_from_slice(bool_text(node.process_data_truncated));
    out.extend_from_slice(b",\"outputs\":");
    json_into(out, &node.outputs);
    out.extend_from_slice(b",\"outputs_truncated\":");
    out.extend_from_slice(bool_text(node.outputs_truncated));
    out.extend_from_slice(b",\"status\":\"");
    out.extend_from_slice(node.status.as_bytes());
    out.extend_from_slice(b"\",\"error\":");
    json_into(out, &node.error);
    out.extend_from_slice(b",\"elapsed_time\":");
    json_into(out, &node.elapsed_time);
    out.extend_from_slice(b",\"execution_metadata\":");
    json_into(out, &node.execution_metadata);
    out.extend_from_slice(b",\"created_at\":");
    out.extend_from_slice(int.format(node.created_at).as_bytes());
    out.extend_from_slice(b",\"finished_at\":");
    out.extend_from_slice(int.format(node.finished_at).as_bytes());
    // `files` is always empty; `iteration_id` and `loop_id` are `Option<()>`.
    out.extend_from_slice(b",\"files\":[],\"iteration_id\":null,\"loop_id\":null}}\n\n");
}

/// The keys a node's `node_started` and `node_finished` share, in that
/// order, up to `predecessor_node_id`'s value: the node execution's id
/// (the server's own, nothing to escape), then the node's id, type and
/// title through serde.
fn node_head_into(
    out: &mut Vec<u8>,
    event: &[u8],
    ids: &RunIds<'_>,
    [id, node_id, node_type, title]: [&str; 4],
    index: u32,
    predecessor: Option<&str>,
) {
    debug_assert!(is_plain(id));
    envelope_head_into(out, event, ids);
    out.extend_from_slice(b"{\"id\":\"");
    out.extend_from_slice(id.as_bytes());
    out.extend_from_slice(b"\",\"node_id\":");
    json_into(out, node_id);
    out.extend_from_slice(b",\"node_type\":");
    json_into(out, node_type);
    out.extend_from_slice(b",\"title\":");
    json_into(out, title);
    out.extend_from_slice(b",\"index\":");
    out.extend_from_slice(itoa::Buffer::new().format(index).as_bytes());
    out.extend_from_slice(b",\"predecessor_node_id\":");
    json_into(out, &predecessor);
}

/// Appends `value`'s JSON to `out`.
fn json_into<T: Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(&mut *out, value).expect("serialize to Vec");
}

fn bool_text(b: bool) -> &'static [u8] {
    if b { b"true" } else { b"false" }
}

/// A hand-written frame's start, up to its `data` value: `data: {"event":
/// EVENT,"workflow_run_id":…,"task_id":…,"data":`, as [`frame_into`]
/// writes it. The ids are the server's own: nothing to escape.
fn envelope_head_into(out: &mut Vec<u8>, event: &[u8], ids: &RunIds<'_>) {
    debug_assert!(is_plain(ids.run_id) && is_plain(ids.task_id));
    out.extend_from_slice(b"data: {\"event\":\"");
    out.extend_from_slice(event);
    out.extend_from_slice(b"\",\"workflow_run_id\":\"");
    out.extend_from_slice(ids.run_id.as_bytes());
    out.extend_from_slice(b"\",\"task_id\":\"");
    out.extend_from_slice(ids.task_id.as_bytes());
    out.extend_from_slice(b"\",\"data\":");
}

/// Text that JSON holds as it is: no quote, backslash or control character.
fn is_plain(s: &str) -> bool {
    !s.bytes().any(|b| b == b'"' || b == b'\\' || b < 0x20)
}

/// The ids every event of one run carries.
#[derive(Clone, Copy)]
pub struct RunIds<'a> {
    pub run_id: &'a str,
    pub task_id: &'a str,
}

/// The `sys.*` variables of one run, borrowed from the run and its app
/// (`Run::sys`): a run does not keep its own copies of the app's ids.
#[derive(Debug, Clone, Copy)]
pub struct SysVars<'a> {
    pub user_id: &'a str,
    pub app_id: &'a str,
    pub workflow_id: &'a str,
    pub workflow_run_id: &'a str,
    pub timestamp: i64,
}

impl SysVars<'_> {
    pub fn get(&self, var: &str) -> Value {
        match var {
            "files" => Value::Array(Vec::new()),
            "user_id" => Value::from(self.user_id),
            "app_id" => Value::from(self.app_id),
            "workflow_id" => Value::from(self.workflow_id),
            "workflow_run_id" => Value::from(self.workflow_run_id),
            "timestamp" => Value::from(self.timestamp),
            _ => Value::Null,
        }
    }
}

/// User inputs followed by the `sys.*` variables, in Dify's order;
/// `sys.timestamp` only where Dify shows it (the start node, not
/// `workflow_started`).
pub struct InputsView<'a> {
    pub user: &'a Map<String, Value>,
    pub sys: SysVars<'a>,
    pub with_timestamp: bool,
}

impl Serialize for InputsView<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.user.len() + 6))?;
        for (k, v) in self.user {
            map.serialize_entry(k, v)?;
        }
        map.serialize_entry("sys.files", &[(); 0])?;
        map.serialize_entry("sys.user_id", &self.sys.user_id)?;
        map.serialize_entry("sys.app_id", &self.sys.app_id)?;
        map.serialize_entry("sys.workflow_id", &self.sys.workflow_id)?;
        map.serialize_entry("sys.workflow_run_id", &self.sys.workflow_run_id)?;
        if self.with_timestamp {
            map.serialize_entry("sys.timestamp", &self.sys.timestamp)?;
        }
        map.end()
    }
}

/// `{}` without allocating.
pub struct EmptyObject;

impl Serialize for EmptyObject {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_map(Some(0))?.end()
    }
}

#[derive(Serialize)]
pub struct WorkflowStarted<'a> {
    pub id: &'a str,
    pub workflow_id: &'a str,
    pub inputs: InputsView<'a>,
    pub created_at: i64,
    pub reason: &'static str,
}

#[derive(Serialize)]
pub struct NodeStarted<'a> {
    pub id: &'a str,
    pub node_id: &'a str,
    pub node_type: &'static str,
    pub title: &'a str,
    pub index: u32,
    pub predecessor_node_id: Option<&'a str>,
    pub inputs: Option<()>,
    pub inputs_truncated: bool,
    pub created_at: i64,
    pub extras: EmptyObject,
    pub iteration_id: Option<()>,
    pub loop_id: Option<()>,
    pub agent_strategy: Option<()>,
}

#[derive(Serialize)]
pub struct TextChunk<'a> {
    pub text: &'a str,
    pub from_variable_selector: [&'a str; 2],
}

#[derive(Serialize)]
pub struct NodeFinished<'a, I, P, O, M> {
    pub id: &'a str,
    pub node_id: &'a str,
    pub node_type: &'static str,
    pub title: &'a str,
    pub index: u32,
    pub predecessor_node_id: Option<&'a str>,
    pub inputs: I,
    pub inputs_truncated: bool,
    pub process_data: P,
    pub process_data_truncated: bool,
    pub outputs: O,
    pub outputs_truncated: bool,
    pub status: &'static str,
    pub error: Option<&'a str>,
    pub elapsed_time: f64,
    pub execution_metadata: M,
    pub created_at: i64,
    pub finished_at: i64,
    pub files: [(); 0],
    pub iteration_id: Option<()>,
    pub loop_id: Option<()>,
}

#[derive(Serialize)]
pub struct CreatedBy<'a> {
    pub id: &'a str,
    pub user: &'a str,
}

/// How a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    Running,
    Succeeded,
    Failed,
    Stopped,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Succeeded => "succeeded",
            RunStatus::Failed => "failed",
            RunStatus::Stopped => "stopped",
        }
    }
}

/// A run's summary: its status and numbers, built once when it starts
/// (`running`) and once when it ends (`engine::execute`). Every shape that
/// reports a run (the `workflow_finished` event, the blocking answer, the
/// run record and its `GET`) takes its numbers from here, in its own
/// constructor below; each shape lists its keys itself only because Dify's
/// key order differs between them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunTotals {
    pub status: RunStatus,
    pub total_tokens: u64,
    pub total_steps: u32,
    pub elapsed_time: f64,
    pub created_at: i64,
    /// `None` while the run is live.
    pub finished_at: Option<i64>,
}

impl RunTotals {
    /// A run that has just started.
    pub fn running(created_at: i64) -> Self {
        Self { status: RunStatus::Running, total_tokens: 0, total_steps: 0, elapsed_time: 0.0, created_at, finished_at: None }
    }
}

#[derive(Serialize)]
pub struct WorkflowFinished<'a> {
    pub id: &'a str,
    pub workflow_id: &'a str,
    pub status: &'static str,
    pub outputs: &'a Map<String, Value>,
    pub error: Option<&'a str>,
    pub elapsed_time: f64,
    pub total_tokens: u64,
    pub total_steps: u32,
    pub created_by: CreatedBy<'a>,
    pub created_at: i64,
    pub finished_at: i64,
    pub exceptions_count: u32,
    pub files: [(); 0],
}

impl<'a> WorkflowFinished<'a> {
    pub fn new(
        ids: RunIds<'a>,
        workflow_id: &'a str,
        totals: &RunTotals,
        outputs: &'a Map<String, Value>,
        error: Option<&'a str>,
        created_by: CreatedBy<'a>,
    ) -> Self {
        Self {
            id: ids.run_id,
            workflow_id,
            status: totals.status.as_str(),
            outputs,
            error,
            elapsed_time: totals.elapsed_time,
            total_tokens: totals.total_tokens,
            total_steps: totals.total_steps,
            created_by,
            created_at: totals.created_at,
            finished_at: totals.finished_at.unwrap_or(totals.created_at),
            exceptions_count: 0,
            files: [],
        }
    }
}

/// The blocking response (written with Python's `json.dumps` separators).
#[derive(Serialize)]
pub struct BlockingResponse<'a> {
    pub task_id: &'a str,
    pub workflow_run_id: &'a str,
    pub data: RunSummary<'a>,
}

impl BlockingResponse<'_> {
    /// The body, byte for byte what `pyjson::to_python_json(self)` writes,
    /// with the fixed keys as literals: serde's generic path for this one
    /// struct was the largest part of the server's own work on a Start→End
    /// request (docs/performance.md). Only `outputs` goes through serde.
    pub fn to_python_json(&self) -> Vec<u8> {
        exact(|out| self.write_python_json(out))
    }

    fn write_python_json(&self, out: &mut Vec<u8>) {
        use crate::pyjson::{append_plain_str, append_python_json, append_python_str, write_python_float};
        let d = &self.data;
        let mut int = itoa::Buffer::new();
        let strings: [(&[u8], &str); 5] = [
            (b"{\"task_id\": ", self.task_id),
            (b", \"workflow_run_id\": ", self.workflow_run_id),
            (b", \"data\": {\"id\": ", d.id),
            (b", \"workflow_id\": ", d.workflow_id),
            (b", \"status\": ", d.status),
        ];
        // Ids and statuses the server wrote: nothing to escape.
        for (key, value) in strings {
            out.extend_from_slice(key);
            append_plain_str(out, value);
        }
        out.extend_from_slice(b", \"outputs\": ");
        append_python_json(out, d.outputs);
        out.extend_from_slice(b", \"error\": ");
        match d.error {
            Some(error) => append_python_str(out, error),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b", \"elapsed_time\": ");
        write_python_float(out, d.elapsed_time).expect("write to Vec");
        let counts: [(&[u8], u64); 2] = [(b", \"total_tokens\": ", d.total_tokens), (b", \"total_steps\": ", u64::from(d.total_steps))];
        for (key, n) in counts {
            out.extend_from_slice(key);
            out.extend_from_slice(int.format(n).as_bytes());
        }
        let times: [(&[u8], i64); 2] = [(b", \"created_at\": ", d.created_at), (b", \"finished_at\": ", d.finished_at)];
        for (key, t) in times {
            out.extend_from_slice(key);
            out.extend_from_slice(int.format(t).as_bytes());
        }
        out.extend_from_slice(b"}}");
    }
}

impl<'a> BlockingResponse<'a> {
    pub fn new(ids: RunIds<'a>, workflow_id: &'a str, totals: &RunTotals, outputs: &'a Map<String, Value>, error: Option<&'a str>) -> Self {
        let data = RunSummary {
            id: ids.run_id,
            workflow_id,
            status: totals.status.as_str(),
            outputs,
            error,
            elapsed_time: totals.elapsed_time,
            total_tokens: totals.total_tokens,
            total_steps: totals.total_steps,
            created_at: totals.created_at,
            finished_at: totals.finished_at.unwrap_or(totals.created_at),
        };
        Self { task_id: ids.task_id, workflow_run_id: ids.run_id, data }
    }
}

#[derive(Serialize)]
pub struct RunSummary<'a> {
    pub id: &'a str,
    pub workflow_id: &'a str,
    pub status: &'static str,
    pub outputs: &'a Map<String, Value>,
    pub error: Option<&'a str>,
    pub elapsed_time: f64,
    pub total_tokens: u64,
    pub total_steps: u32,
    pub created_at: i64,
    pub finished_at: i64,
}

/// `GET /v1/workflows/run/{id}`: note `inputs` is a JSON-encoded string and
/// `elapsed_time` comes last.
#[derive(Serialize)]
pub struct RunRecordView<'a> {
    pub id: &'a str,
    pub workflow_id: &'a str,
    pub status: &'static str,
    pub inputs: &'a str,
    pub outputs: &'a Map<String, Value>,
    pub error: Option<&'a str>,
    pub total_steps: u32,
    pub total_tokens: u64,
    pub created_at: i64,
    pub finished_at: Option<i64>,
    pub elapsed_time: f64,
}

impl<'a> RunRecordView<'a> {
    pub fn new(
        id: &'a str,
        workflow_id: &'a str,
        totals: &RunTotals,
        inputs: &'a str,
        outputs: &'a Map<String, Value>,
        error: Option<&'a str>,
    ) -> Self {
        Self {
            id,
            workflow_id,
            status: totals.status.as_str(),
            inputs,
            outputs,
            error,
            total_steps: totals.total_steps,
            total_tokens: totals.total_tokens,
            created_at: totals.created_at,
            finished_at: totals.finished_at,
            elapsed_time: totals.elapsed_time,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// What `by_hand` appends for `data` is what serde's [`frame_into`] does.
    #[track_caller]
    fn assert_hand_is_serde<D: Serialize>(event: &'static str, ids: &RunIds<'_>, data: D, by_hand: impl FnOnce(&mut Vec<u8>, &D)) {
        let mut hand = b"earlier".to_vec();
        by_hand(&mut hand, &data);
        let mut serde = b"earlier".to_vec();
        frame_into(&mut serde, event, ids, data);
        assert_eq!(String::from_utf8(hand).unwrap(), String::from_utf8(serde).unwrap());
    }

    /// The hand-written `text_chunk` frame is byte for byte serde's,
    /// whatever the text and the selector hold.
    #[test]
    fn the_text_chunk_frame_is_what_serde_writes() {
        let ids = RunIds { run_id: "d6bc75b4-1850-4c98-a671-d87f9483ccf3", task_id: "eb249fa7-f392-4531-ae20-5b78c9073a83" };
        let texts = ["", "tok0 ", "é \"q\" \\ \n\t\u{1}\u{7f} 😀", "</script>\u{2028}"];
        let selectors = [["llm", "text"], ["17000", "answer"], ["nö\"de", "v\\ar\n"]];
        for text in texts {
            for selector in selectors {
                let chunk = TextChunk { text, from_variable_selector: selector };
                assert_hand_is_serde("text_chunk", &ids, chunk, |out, chunk| {
                    text_chunk_into(out, &ids, chunk.text, chunk.from_variable_selector)
                });
            }
        }
    }

    /// The hand-written `node_started` frame is byte for byte serde's,
    /// whatever the workflow's author named and titled the node.
    #[test]
    fn node_started_by_hand_is_what_serde_writes() {
        let ids = RunIds { run_id: "d6bc75b4-1850-4c98-a671-d87f9483ccf3", task_id: "eb249fa7-f392-4531-ae20-5b78c9073a83" };
        let names = ["llm", "1711528914102", "é \"quoted\" \\ \n\t\u{1}\u{7f}", ""];
        for name in names {
            for predecessor in [None, Some("start"), Some(name)] {
                for (index, created_at, truncated) in [(1, 1_796_161_128, false), (u32::MAX, -1, true), (0, i64::MIN, false)] {
                    let started = NodeStarted {
                        id: "5ad5b4a5-4e7c-4a5d-9f62-2b2b1f0c9a11",
                        node_id: name,
                        node_type: "llm",
                        title: name,
                        index,
                        predecessor_node_id: predecessor,
                        inputs: None,
                        inputs_truncated: truncated,
                        created_at,
                        extras: EmptyObject,
                        iteration_id: None,
                        loop_id: None,
                        agent_strategy: None,
                    };
                    assert_hand_is_serde("node_started", &ids, started, |out, started| node_started_into(out, &ids, started));
                }
            }
        }
    }

    /// The hand-written `node_finished` frame is byte for byte serde's,
    /// whatever the node's names, values, error and numbers hold.
    #[test]
    fn node_finished_by_hand_is_what_serde_writes() {
        let ids = RunIds { run_id: "d6bc75b4-1850-4c98-a671-d87f9483ccf3", task_id: "eb249fa7-f392-4531-ae20-5b78c9073a83" };
        let names = ["llm", "é \"quoted\" \\ \n\t\u{1}\u{7f}", ""];
        let values = [json!({}), json!({"text": "é \"q\" \\ \n\t\u{1}", "n": 1.5e-7, "list": [1, null, true, {"x": "ü"}]})];
        let numbers = [(1, 8e-6, 1_796_161_128, 1_796_161_128), (u32::MAX, 1e16, -1, i64::MAX), (0, 0.0, i64::MIN, 0)];
        for name in names {
            for (value, error) in values.iter().zip([None, Some(name)]) {
                for (index, elapsed_time, created_at, finished_at) in numbers {
                    for (predecessor, truncated) in [(None, false), (Some(name), true)] {
                        let finished = NodeFinished {
                            id: "5ad5b4a5-4e7c-4a5d-9f62-2b2b1f0c9a11",
                            node_id: name,
                            node_type: "llm",
                            title: name,
                            index,
                            predecessor_node_id: predecessor,
                            inputs: value,
                            inputs_truncated: truncated,
                            process_data: EmptyObject,
                            process_data_truncated: !truncated,
                            outputs: value,
                            outputs_truncated: truncated,
                            status: if error.is_some() { "failed" } else { "succeeded" },
                            error,
                            elapsed_time,
                            execution_metadata: error.map(|_| value),
                            created_at,
                            finished_at,
                            files: [],
                            iteration_id: None,
                            loop_id: None,
                        };
                        assert_hand_is_serde("node_finished", &ids, finished, |out, finished| node_finished_into(out, &ids, finished));
                    }
                }
            }
        }
    }

    /// The hand-written blocking body is byte for byte serde's, whatever
    /// the outputs, the error and the numbers hold.
    #[test]
    fn the_blocking_body_is_what_serde_writes() {
        let outputs = [
            json!({}),
            json!({"answer": "What is ML?"}),
            json!({"answer": "é \"q\" \\ \n\t\u{1}", "n": 1.5e-7, "list": [1, null, true, {"x": "ü"}]}),
        ];
        let errors = [None, Some("[openai] Error code: 500 - {\"error\": \"boom\"}"), Some("ünïcode\u{7f}")];
        let numbers = [(8e-6, 0, 2, 1_796_161_128, 1_796_161_128), (0.023748, 8, 3, -1, i64::MAX), (1e16, u64::MAX, u32::MAX, 0, 0)];
        for outputs in &outputs {
            for error in errors {
                for (elapsed_time, total_tokens, total_steps, created_at, finished_at) in numbers {
                    let response = BlockingResponse {
                        task_id: "eb249fa7-f392-4531-ae20-5b78c9073a83",
                        workflow_run_id: "d6bc75b4-1850-4c98-a671-d87f9483ccf3",
                        data: RunSummary {
                            id: "d6bc75b4-1850-4c98-a671-d87f9483ccf3",
                            workflow_id: "079668a7-bbe7-5fab-b0e8-fc0e7e657ce4",
                            status: "failed",
                            outputs: outputs.as_object().unwrap(),
                            error,
                            elapsed_time,
                            total_tokens,
                            total_steps,
                            created_at,
                            finished_at,
                        },
                    };
                    let by_hand = String::from_utf8(response.to_python_json()).unwrap();
                    assert_eq!(by_hand, String::from_utf8(crate::pyjson::to_python_json(&response)).unwrap());
                }
            }
        }
    }
}
