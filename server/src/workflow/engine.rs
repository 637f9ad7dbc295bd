//! Runs one workflow: walks the pre-validated node order, keeps the run's
//! variables, streams the end node's outputs as `text_chunk`s the moment they
//! exist, and emits Dify's event sequence into a `Sink`. Blocking and
//! streaming runs share this one code path; a blocking run's sink wants no
//! events, so none is serialized.

use super::dsl::Workflow;
use super::dsl::{LlmNode, Node, NodeKind, StreamSegment};
use super::events::{self, EmptyObject, InputsView, NodeFinished, NodeStarted, RunIds, RunStatus, RunTotals, SysVars, TextChunk};
use super::template::{Selector, TemplatePart};
use crate::upstream::llm::{ChatMessage, ChatRequest, LlmError, Provider, StreamOptions, TokenUsage};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::future::Future;
use std::sync::Arc;
use std::time::Instant;
use tokio_util::sync::CancellationToken;

/// The error text of a run ended by the task-stop endpoint.
pub const STOPPED_BY_USER: &str = "Workflow execution stopped by user.";
/// The error text recorded when the client went away mid-stream.
pub const CLIENT_DISCONNECTED: &str = "Client disconnected; the run was cancelled.";

/// Where a run's events go.
pub trait Sink: Send {
    /// False for blocking runs: their events are never serialized.
    fn wants_events(&self) -> bool;
    /// Delivers `n_events` complete SSE frames in one buffer: deltas that
    /// arrived together leave together (one buffer, one socket write).
    /// `Err` once the client is gone.
    fn send_batch(&mut self, frames: Vec<u8>, n_events: usize) -> impl Future<Output = Result<(), ClientGone>> + Send;
    /// Delivers one complete SSE frame.
    fn send(&mut self, frame: Vec<u8>) -> impl Future<Output = Result<(), ClientGone>> + Send {
        self.send_batch(frame, 1)
    }
    /// Resolves when the client is gone (never, for a blocking run).
    fn gone(&self) -> impl Future<Output = ()> + Send;
    /// Delivers the run's terminal frame (`workflow_finished`); a sink may
    /// hold it until the run's record is stored.
    fn send_terminal(&mut self, frame: Vec<u8>) -> impl Future<Output = Result<(), ClientGone>> + Send {
        self.send(frame)
    }
}

#[derive(Debug, Clone, Copy)]
pub struct ClientGone;

/// A sink for blocking runs: nothing is sent.
pub struct NoEvents;

impl Sink for NoEvents {
    fn wants_events(&self) -> bool {
        false
    }
    async fn send_batch(&mut self, _frames: Vec<u8>, _n_events: usize) -> Result<(), ClientGone> {
        Ok(())
    }
    async fn gone(&self) {
        std::future::pending::<()>().await;
    }
}

/// An app as the engine runs it: its ids and its workflow. How it is
/// served over HTTP (its key, its cap, its precomputed bodies) is
/// `state::ServedApp`'s, which holds one of these.
#[derive(Debug)]
pub struct AppWorkflow {
    pub app_id: String,
    /// `app_id` as a UUID, as the run store keys it.
    pub app_uuid: uuid::Uuid,
    pub workflow_id: String,
    pub workflow: Workflow,
}

/// One accepted run request, its ids and its validated inputs.
#[derive(Debug)]
pub struct Run {
    pub app: Arc<AppWorkflow>,
    /// `sys.workflow_run_id` as a UUID, as the run store keys it.
    pub id: uuid::Uuid,
    /// `sys.user_id`.
    pub user_id: String,
    /// `sys.workflow_run_id` (`id`, written out) and then the task id, in
    /// one allocation: see `run_id` and `task_id`.
    ids: String,
    /// Every start variable, in declaration order (missing optional ones null).
    pub inputs: Map<String, Value>,
    pub created_at: i64,
    pub started: Instant,
    /// Whether the outcome lists each node's execution (`RunOutcome::nodes`):
    /// for a store that keeps them, as Dify's `workflow_node_executions`.
    pub keep_nodes: bool,
    /// The wall clock at `started`, since the Unix epoch: `finished_at` is
    /// this plus the run's elapsed time, one clock read fewer per run.
    started_wall: std::time::Duration,
}

impl Run {
    /// A new run of `app` for `user`, with checked `inputs`
    /// (see `request::check_inputs`).
    pub fn new(app: Arc<AppWorkflow>, user: String, inputs: Map<String, Value>) -> Self {
        Self::with_id(app, user, inputs, uuid::Uuid::new_v4())
    }

    /// `new`, with the run id the store chose (`RunStore::new_run_id`).
    pub fn with_id(app: Arc<AppWorkflow>, user: String, inputs: Map<String, Value>, run_id: uuid::Uuid) -> Self {
        let started_wall = since_epoch();
        let created_at = started_wall.as_secs() as i64;
        let mut ids = String::with_capacity(2 * uuid::fmt::Hyphenated::LENGTH);
        let mut text = uuid::Uuid::encode_buffer();
        ids.push_str(run_id.hyphenated().encode_lower(&mut text));
        ids.push_str(uuid::Uuid::new_v4().hyphenated().encode_lower(&mut text));
        Self { user_id: user, ids, inputs, created_at, started: Instant::now(), keep_nodes: false, started_wall, app, id: run_id }
    }

    pub fn run_id(&self) -> &str {
        &self.ids[..uuid::fmt::Hyphenated::LENGTH]
    }

    /// The run's task id (a UUID of its own, as Dify's).
    pub fn task_id(&self) -> &str {
        &self.ids[uuid::fmt::Hyphenated::LENGTH..]
    }

    /// The run's `sys.*` variables.
    pub fn sys(&self) -> SysVars<'_> {
        SysVars {
            user_id: &self.user_id,
            app_id: &self.app.app_id,
            workflow_id: &self.app.workflow_id,
            workflow_run_id: self.run_id(),
            timestamp: self.created_at,
        }
    }

    /// The end user's id as Dify reports it in `created_by.id`: stable per
    /// app and user. Only streams show it, so only they compute it.
    pub fn end_user_id(&self) -> String {
        uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, format!("{}:{}", self.app.app_id, self.user_id).as_bytes()).to_string()
    }

    pub fn ids(&self) -> RunIds<'_> {
        RunIds { run_id: self.run_id(), task_id: self.task_id() }
    }
}

/// How a run ended.
#[derive(Debug, Clone)]
pub struct RunOutcome {
    pub totals: RunTotals,
    pub outputs: Map<String, Value>,
    pub error: Option<String>,
    /// Each node that ran, in order (only when `Run::keep_nodes`).
    pub nodes: Vec<NodeExecution>,
}

/// One node's execution, as a store keeps it: the node (its position in
/// the workflow), how it ended, and when. A blocking run's Start and End
/// nodes read no clock (see `Exec::walk`): their times are the run's
/// start and their elapsed time 0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NodeExecution {
    pub node: usize,
    pub status: RunStatus,
    pub elapsed_time: f64,
    pub created_at: i64,
    pub finished_at: i64,
}

/// Executes `run` to its end, sending its events to `sink`; `stop` ends it
/// early with status `stopped`.
pub async fn execute<S: Sink>(provider: &Provider, run: &Run, sink: &mut S, stop: &CancellationToken) -> RunOutcome {
    let nodes = if run.keep_nodes { Vec::with_capacity(run.app.workflow.nodes.len()) } else { Vec::new() };
    let mut exec = Exec { provider, run, sink, stop, finished: 0, llm_outputs: Vec::new(), plan_pos: 0, total_tokens: 0, steps: 0, nodes };
    let result = exec.walk().await;
    let elapsed = run.started.elapsed();
    let client_gone = matches!(result, Err(End::Gone));
    let (status, outputs, error) = match result {
        Ok(outputs) => (RunStatus::Succeeded, outputs, None),
        Err(End::Failed(error)) => (RunStatus::Failed, Map::new(), Some(error)),
        Err(End::Stopped) => (RunStatus::Stopped, Map::new(), Some(STOPPED_BY_USER.to_owned())),
        Err(End::Gone) => (RunStatus::Stopped, Map::new(), Some(CLIENT_DISCONNECTED.to_owned())),
    };
    let totals = RunTotals {
        status,
        total_tokens: exec.total_tokens,
        total_steps: exec.steps,
        elapsed_time: seconds(elapsed),
        created_at: run.created_at,
        finished_at: Some((run.started_wall + elapsed).as_secs() as i64),
    };
    let outcome = RunOutcome { totals, outputs, error, nodes: std::mem::take(&mut exec.nodes) };
    if !client_gone && exec.sink.wants_events() {
        let end_user_id = run.end_user_id();
        let created_by = events::CreatedBy { id: &end_user_id, user: &run.user_id };
        let finished = events::WorkflowFinished::new(
            run.ids(),
            &run.app.workflow_id,
            &outcome.totals,
            &outcome.outputs,
            outcome.error.as_deref(),
            created_by,
        );
        // The client may leave right now; the outcome stands either way.
        let _ = exec.sink.send_terminal(events::frame("workflow_finished", &run.ids(), finished)).await;
    }
    outcome
}

/// Seconds as Dify prints them: a float rounded to microseconds.
pub fn seconds(d: std::time::Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e6
}

pub fn unix_now() -> i64 {
    since_epoch().as_secs() as i64
}

fn since_epoch() -> std::time::Duration {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default()
}

/// Why a walk ended before the end node finished.
enum End {
    Failed(String),
    Stopped,
    Gone,
}

/// Why the LLM node's upstream work stopped early.
enum Interrupted {
    End(End),
    Upstream(LlmError),
}

impl From<End> for Interrupted {
    fn from(end: End) -> Self {
        Interrupted::End(end)
    }
}

impl From<LlmError> for Interrupted {
    fn from(e: LlmError) -> Self {
        Interrupted::Upstream(e)
    }
}

impl From<ClientGone> for Interrupted {
    fn from(_: ClientGone) -> Self {
        Interrupted::End(End::Gone)
    }
}

impl From<ClientGone> for End {
    fn from(_: ClientGone) -> Self {
        End::Gone
    }
}

struct Exec<'a, S> {
    provider: &'a Provider,
    run: &'a Run,
    sink: &'a mut S,
    stop: &'a CancellationToken,
    /// How many nodes have finished, so their outputs can be read: the
    /// walk runs the nodes in order, so they are the first `finished`
    /// (a count, where a list of their ids cost an allocation per run).
    finished: usize,
    llm_outputs: Vec<(&'a str, LlmOutputs)>,
    /// The next end-output segment to stream.
    plan_pos: usize,
    total_tokens: u64,
    steps: u32,
    nodes: Vec<NodeExecution>,
}

impl<'a, S: Sink> Exec<'a, S> {
    async fn walk(&mut self) -> Result<Map<String, Value>, End> {
        let run = self.run;
        let ids = run.ids();
        if self.sink.wants_events() {
            let started = events::WorkflowStarted {
                id: run.run_id(),
                workflow_id: &run.app.workflow_id,
                inputs: InputsView { user: &run.inputs, sys: run.sys(), with_timestamp: false },
                created_at: run.created_at,
                reason: "initial",
            };
            self.sink.send(events::frame("workflow_started", &ids, started)).await?;
        }
        let mut workflow_outputs = Map::new();
        for (position, node) in run.app.workflow.nodes.iter().enumerate() {
            // A blocking run's Start and End nodes wait on nothing and take
            // microseconds: they read no clock (only the LLM node's latency,
            // in its outputs, needs one) and check for no stop, since
            // `is_cancelled` locks the token's mutex and a blocking run's
            // token is the server's shutdown token, shared by every thread,
            // so every check contends across cores. A stop is seen before
            // any other node.
            let timed = self.sink.wants_events() || matches!(node.kind, NodeKind::Llm(_));
            if timed && self.stop.is_cancelled() {
                return Err(End::Stopped);
            }
            self.steps += 1;
            let exec_id = if self.sink.wants_events() { uuid::Uuid::new_v4().to_string() } else { String::new() };
            let node_started_at = if timed { Instant::now() } else { run.started };
            let created_at = if self.sink.wants_events() { unix_now() } else { run.created_at };
            if self.sink.wants_events() {
                let started = NodeStarted {
                    id: &exec_id,
                    node_id: &node.id,
                    node_type: node.kind.type_name(),
                    title: &node.title,
                    index: 1,
                    predecessor_node_id: None,
                    inputs: None,
                    inputs_truncated: false,
                    created_at,
                    extras: EmptyObject,
                    iteration_id: None,
                    loop_id: None,
                    agent_strategy: None,
                };
                self.sink.send(events::exact(|out| events::node_started_into(out, &ids, &started))).await?;
            }
            let finish = NodeDone { exec_id: &exec_id, node, created_at, started: node_started_at };
            let ran = self.run_node(&finish, &mut workflow_outputs).await;
            if run.keep_nodes {
                let status = match &ran {
                    Ok(()) => RunStatus::Succeeded,
                    Err(End::Failed(_)) => RunStatus::Failed,
                    Err(End::Stopped | End::Gone) => RunStatus::Stopped,
                };
                let elapsed = if timed { node_started_at.elapsed() } else { std::time::Duration::ZERO };
                let finished_at = if timed { unix_now() } else { created_at };
                self.nodes.push(NodeExecution { node: position, status, elapsed_time: seconds(elapsed), created_at, finished_at });
            }
            ran?;
        }
        Ok(workflow_outputs)
    }

    async fn run_node(&mut self, finish: &NodeDone<'_, 'a>, workflow_outputs: &mut Map<String, Value>) -> Result<(), End> {
        let (run, node) = (self.run, finish.node);
        match &node.kind {
            NodeKind::Start { .. } => {
                self.finished += 1;
                self.flush_plan(None).await?;
                let view = || InputsView { user: &run.inputs, sys: run.sys(), with_timestamp: true };
                self.node_finished(finish, view(), EmptyObject, view(), None::<()>, None).await?;
            }
            // Boxed: the LLM node's state is most of a run's future, and a
            // Start→End run should not carry (and allocate) it.
            NodeKind::Llm(llm) => Box::pin(self.run_llm(finish, llm)).await?,
            NodeKind::End { outputs } => {
                for (var, sel) in outputs {
                    workflow_outputs.insert(var.clone(), self.lookup(sel).map_or(Value::Null, Cow::into_owned));
                }
                self.finished += 1;
                self.flush_plan(None).await?;
                self.node_finished(finish, &*workflow_outputs, EmptyObject, &*workflow_outputs, None::<()>, None).await?;
            }
        }
        Ok(())
    }

    async fn run_llm(&mut self, finish: &NodeDone<'_, 'a>, llm: &'a LlmNode) -> Result<(), End> {
        let node_id = finish.node.id.as_str();
        let messages: Vec<ChatMessage<'_>> = llm
            .prompts
            .iter()
            .map(|(role, template)| ChatMessage { role, content: self.render(template) })
            .filter(|m| !m.content.is_empty())
            .collect();
        let request = ChatRequest {
            model: &llm.model,
            messages,
            stream: true,
            stream_options: StreamOptions { include_usage: true },
            user: &self.run.user_id,
            params: &llm.completion_params,
        };
        let body = request.to_body();
        // Stream deltas live only when the end node's next output is this text.
        let live = self.sink.wants_events()
            && matches!(self.run.app.workflow.stream_plan.get(self.plan_pos), Some(StreamSegment::Var(s)) if s.node_id == node_id && s.var == "text");
        let mut text = String::new();
        let streamed = async {
            let mut stream = self.interruptible(self.provider.stream(body)).await??;
            while let Some(first) = self.interruptible(stream.next_delta()).await?? {
                if !live {
                    text.push_str(&first);
                    continue;
                }
                let ids = self.run.ids();
                let mut n_events = 0;
                // Deltas already read and decoded go out with this one; none waits for more.
                let frames = events::exact(|frames| {
                    let mut next = Some(first);
                    while let Some(delta) = next {
                        text.push_str(&delta);
                        events::text_chunk_into(frames, &ids, &delta, [node_id, "text"]);
                        n_events += 1;
                        next = stream.ready_delta();
                    }
                });
                self.sink.send_batch(frames, n_events).await?;
            }
            Ok::<_, Interrupted>((stream.finish_reason().map(str::to_owned), stream.usage()))
        }
        .await;
        let (finish_reason, usage) = match streamed {
            Ok(done) => done,
            Err(Interrupted::End(end)) => return Err(end),
            Err(Interrupted::Upstream(e)) => {
                let error = e.to_string();
                self.node_finished(finish, EmptyObject, EmptyObject, EmptyObject, None::<()>, Some(&error)).await?;
                return Err(End::Failed(error));
            }
        };
        let latency = seconds(finish.started.elapsed());
        let usage = usage.unwrap_or_default();
        self.total_tokens += usage.total_tokens;
        let outputs = LlmOutputs { text: Value::String(text), usage: LlmUsage { tokens: usage, latency }, finish_reason };
        self.llm_outputs.push((node_id, outputs));
        self.finished += 1;
        self.flush_plan(live.then_some(node_id)).await?;
        if self.sink.wants_events() {
            // Borrowed, not built: the usage is the outputs' own, and the
            // outputs are lent to the event, not copied for it.
            let (id, outputs) = self.llm_outputs.pop().expect("just pushed");
            let process_data = LlmProcessData {
                model_mode: "chat",
                prompts: Prompts(&request.messages),
                usage: &outputs.usage,
                finish_reason: outputs.finish_reason.as_deref(),
                model_provider: &llm.provider,
                model_name: &llm.model,
            };
            let metadata = LlmMetadata { total_tokens: usage.total_tokens, total_price: "0", currency: "USD" };
            let sent = self.node_finished(finish, EmptyObject, &process_data, &outputs, Some(&metadata), None).await;
            self.llm_outputs.push((id, outputs));
            sent?;
        }
        Ok(())
    }

    /// Awaits upstream work unless the run is stopped or its client leaves.
    async fn interruptible<T>(&self, work: impl Future<Output = Result<T, LlmError>>) -> Result<Result<T, LlmError>, End> {
        tokio::select! {
            r = work => Ok(r),
            () = self.stop.cancelled() => Err(End::Stopped),
            () = self.sink.gone() => Err(End::Gone),
        }
    }

    /// Streams every end-output segment that can be streamed now; `streamed`
    /// names a node whose text was already streamed live.
    async fn flush_plan(&mut self, streamed: Option<&str>) -> Result<(), ClientGone> {
        let plan = &self.run.app.workflow.stream_plan;
        let end_id = self.run.app.workflow.nodes.last().map_or("", |n| n.id.as_str());
        while let Some(segment) = plan.get(self.plan_pos) {
            match segment {
                StreamSegment::Separator => {
                    if self.sink.wants_events() {
                        let chunk = TextChunk { text: "\n", from_variable_selector: [end_id, "answer"] };
                        self.sink.send(events::frame("text_chunk", &self.run.ids(), chunk)).await?;
                    }
                }
                StreamSegment::Var(sel) => {
                    let Some(value) = self.lookup(sel) else { break };
                    let already = streamed == Some(sel.node_id.as_str()) && sel.var == "text";
                    if self.sink.wants_events() && !already {
                        let chunk = TextChunk { text: &value_text(&value), from_variable_selector: [&sel.node_id, &sel.var] };
                        self.sink.send(events::frame("text_chunk", &self.run.ids(), chunk)).await?;
                    }
                }
            }
            self.plan_pos += 1;
        }
        Ok(())
    }

    /// A variable's value, or `None` while its node has not finished;
    /// borrowed where it is stored, so that a caller that only reads it
    /// (a blocking run's stream plan) copies nothing.
    fn lookup(&self, sel: &Selector) -> Option<Cow<'_, Value>> {
        const NULL: &Value = &Value::Null;
        if sel.is_sys() {
            return Some(Cow::Owned(self.run.sys().get(&sel.var)));
        }
        if !self.run.app.workflow.nodes[..self.finished].iter().any(|n| n.id == sel.node_id) {
            return None;
        }
        let found = match self.llm_outputs.iter().find(|(id, _)| *id == sel.node_id) {
            Some((_, outputs)) => return Some(outputs.get(&sel.var)),
            None => self.run.inputs.get(&sel.var),
        };
        Some(Cow::Borrowed(found.unwrap_or(NULL)))
    }

    fn render(&self, template: &super::template::Template) -> String {
        let mut out = String::new();
        for segment in &template.segments {
            match segment {
                TemplatePart::Text(t) => out.push_str(t),
                TemplatePart::Var(sel) => out.push_str(&value_text(self.lookup(sel).as_deref().unwrap_or(&Value::Null))),
            }
        }
        out
    }

    #[allow(clippy::too_many_arguments)]
    async fn node_finished<I, P, O, M>(
        &mut self,
        finish: &NodeDone<'_, '_>,
        inputs: I,
        process_data: P,
        outputs: O,
        execution_metadata: M,
        error: Option<&str>,
    ) -> Result<(), ClientGone>
    where
        I: serde::Serialize,
        P: serde::Serialize,
        O: serde::Serialize,
        M: serde::Serialize,
    {
        if !self.sink.wants_events() {
            return Ok(());
        }
        let finished = NodeFinished {
            id: finish.exec_id,
            node_id: &finish.node.id,
            node_type: finish.node.kind.type_name(),
            title: &finish.node.title,
            index: 1,
            predecessor_node_id: None,
            inputs,
            inputs_truncated: false,
            process_data,
            process_data_truncated: false,
            outputs,
            outputs_truncated: false,
            status: if error.is_some() { "failed" } else { "succeeded" },
            error,
            elapsed_time: seconds(finish.started.elapsed()),
            execution_metadata,
            created_at: finish.created_at,
            finished_at: unix_now(),
            files: [],
            iteration_id: None,
            loop_id: None,
        };
        self.sink.send(events::exact(|out| events::node_finished_into(out, &self.run.ids(), &finished))).await
    }
}

struct NodeDone<'e, 'n> {
    exec_id: &'e str,
    node: &'n Node,
    created_at: i64,
    started: Instant,
}

/// How Dify turns a value into streamed or prompt text.
pub fn value_text(value: &Value) -> Cow<'_, str> {
    match value {
        Value::Null => Cow::Borrowed(""),
        Value::String(s) => Cow::Borrowed(s),
        Value::Array(a) if a.is_empty() => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

/// An LLM node's outputs, typed: built per run without a map, and read as
/// values only where a selector names one (`get`).
struct LlmOutputs {
    /// Always a string: a selector of the text borrows it.
    text: Value,
    usage: LlmUsage,
    finish_reason: Option<String>,
}

impl LlmOutputs {
    /// The output `var`, as Dify's variable pool holds it (null if none).
    fn get(&self, var: &str) -> Cow<'_, Value> {
        match var {
            "text" => Cow::Borrowed(&self.text),
            "reasoning_content" => Cow::Owned(Value::String(String::new())),
            "usage" => Cow::Owned(serde_json::to_value(&self.usage).expect("usage to value")),
            "finish_reason" => Cow::Owned(self.finish_reason.clone().map_or(Value::Null, Value::String)),
            _ => Cow::Owned(Value::Null),
        }
    }
}

impl serde::Serialize for LlmOutputs {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = serializer.serialize_map(Some(4))?;
        map.serialize_entry("text", &self.text)?;
        map.serialize_entry("reasoning_content", "")?;
        map.serialize_entry("usage", &self.usage)?;
        map.serialize_entry("finish_reason", &self.finish_reason)?;
        map.end()
    }
}

/// An LLM node's usage: the upstream's counts and the node's latency,
/// shown with Dify's prices (all zero) in Dify's key order.
struct LlmUsage {
    tokens: TokenUsage,
    latency: f64,
}

impl serde::Serialize for LlmUsage {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut usage = serializer.serialize_struct("LlmUsage", 12)?;
        usage.serialize_field("prompt_tokens", &self.tokens.prompt_tokens)?;
        usage.serialize_field("prompt_unit_price", "0")?;
        usage.serialize_field("prompt_price_unit", "0")?;
        usage.serialize_field("prompt_price", "0")?;
        usage.serialize_field("completion_tokens", &self.tokens.completion_tokens)?;
        usage.serialize_field("completion_unit_price", "0")?;
        usage.serialize_field("completion_price_unit", "0")?;
        usage.serialize_field("completion_price", "0")?;
        usage.serialize_field("total_tokens", &self.tokens.total_tokens)?;
        usage.serialize_field("total_price", "0")?;
        usage.serialize_field("currency", "USD")?;
        usage.serialize_field("latency", &self.latency)?;
        usage.end()
    }
}

/// The prompts in an LLM node's `process_data`: `[{"role","text","files":[]}]`.
struct Prompts<'a>(&'a [ChatMessage<'a>]);

impl serde::Serialize for Prompts<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        #[derive(serde::Serialize)]
        struct Prompt<'a> {
            role: &'a str,
            text: &'a str,
            files: [(); 0],
        }
        serializer.collect_seq(self.0.iter().map(|m| Prompt { role: m.role, text: &m.content, files: [] }))
    }
}

/// An LLM node's `process_data` in its `node_finished` event, in Dify's key order.
#[derive(serde::Serialize)]
struct LlmProcessData<'a> {
    model_mode: &'static str,
    prompts: Prompts<'a>,
    usage: &'a LlmUsage,
    finish_reason: Option<&'a str>,
    model_provider: &'a str,
    model_name: &'a str,
}

/// An LLM node's `execution_metadata`, in Dify's key order.
#[derive(serde::Serialize)]
struct LlmMetadata {
    total_tokens: u64,
    total_price: &'static str,
    currency: &'static str,
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A selector reads each LLM output as the node's `node_finished`
    /// shows it, and an output the node does not have as null.
    #[test]
    fn llm_outputs_read_as_they_are_shown() {
        let usage = TokenUsage { prompt_tokens: 3, completion_tokens: 40, total_tokens: 43 };
        for finish_reason in [None, Some("stop".to_owned())] {
            let outputs =
                LlmOutputs { text: Value::String("é \"q\"".into()), usage: LlmUsage { tokens: usage, latency: 0.012345 }, finish_reason };
            let shown = serde_json::to_value(&outputs).unwrap();
            let shown = shown.as_object().unwrap();
            let keys: Vec<&str> = shown.keys().map(String::as_str).collect();
            assert_eq!(keys, ["text", "reasoning_content", "usage", "finish_reason"]);
            for (var, value) in shown {
                assert_eq!(&*outputs.get(var), value, "{var}");
            }
            assert_eq!(shown["usage"]["total_tokens"], 43);
            assert_eq!(shown["usage"]["latency"], 0.012345);
            assert_eq!(*outputs.get("files"), Value::Null);
        }
    }
}
