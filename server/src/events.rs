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
    let mut out = Vec::with_capacity(256);
    frame_into(&mut out, event, ids, data);
    out
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

/// The ids every event of one run carries.
#[derive(Clone, Copy)]
pub struct RunIds<'a> {
    pub run_id: &'a str,
    pub task_id: &'a str,
}

/// The `sys.*` variables of one run.
#[derive(Debug, Clone)]
pub struct SysVars {
    pub user_id: String,
    pub app_id: String,
    pub workflow_id: String,
    pub workflow_run_id: String,
    pub timestamp: i64,
}

impl SysVars {
    pub fn get(&self, var: &str) -> Value {
        match var {
            "files" => Value::Array(Vec::new()),
            "user_id" => Value::String(self.user_id.clone()),
            "app_id" => Value::String(self.app_id.clone()),
            "workflow_id" => Value::String(self.workflow_id.clone()),
            "workflow_run_id" => Value::String(self.workflow_run_id.clone()),
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
    pub sys: &'a SysVars,
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

/// The blocking response (written with Python's `json.dumps` separators).
#[derive(Serialize)]
pub struct BlockingResponse<'a> {
    pub task_id: &'a str,
    pub workflow_run_id: &'a str,
    pub data: RunSummary<'a>,
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
