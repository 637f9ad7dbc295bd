//! Loading Dify DSL files (YAML app exports) into a validated `Workflow`.
//!
//! All parsing and checking happens here, once, at load: exactly one start
//! node, exactly one end node reachable from it, no cycle, only supported node
//! types (start, llm, end), and every `{{#node.var#}}` and `value_selector`
//! pointing at a variable that a node running earlier produces. Every error
//! names the file, the node id and the problem. Unknown DSL keys are ignored,
//! as Dify's exports carry many (positions, viewport, plugin dependencies).

use super::template::{Selector, Template};
use serde::Deserialize;
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The `sys.*` variables a workflow run provides.
pub const SYS_VARS: [&str; 6] = ["files", "user_id", "app_id", "workflow_id", "workflow_run_id", "timestamp"];

/// The variables an LLM node outputs.
pub const LLM_OUTPUTS: [&str; 4] = ["text", "reasoning_content", "usage", "finish_reason"];

#[derive(Debug, thiserror::Error)]
pub enum DslError {
    #[error("reading workflow file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a Dify DSL file: {source}")]
    Yaml {
        path: PathBuf,
        #[source]
        source: serde_yaml::Error,
    },
    #[error("{path}: app mode is {mode:?}; only \"workflow\" apps are supported")]
    Mode { path: PathBuf, mode: String },
    #[error("{path}: node {node_id}: {problem}")]
    Node { path: PathBuf, node_id: String, problem: String },
    #[error("{path}: {problem}")]
    Graph { path: PathBuf, problem: String },
}

/// A validated workflow, ready to run: nodes in execution order.
#[derive(Debug, Clone)]
pub struct Workflow {
    pub name: String,
    pub description: String,
    /// Nodes reachable from the start node, in a topological order; the first
    /// is the start node, and the end node comes after all it depends on.
    pub nodes: Vec<Node>,
    /// What the end node streams as `text_chunk`s, in order.
    pub stream_plan: Vec<StreamSegment>,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub id: String,
    pub title: String,
    pub kind: NodeKind,
}

#[derive(Debug, Clone)]
pub enum NodeKind {
    Start { variables: Vec<StartVariable> },
    Llm(LlmNode),
    End { outputs: Vec<(String, Selector)> },
}

impl NodeKind {
    /// Dify's `node_type` string.
    pub fn type_name(&self) -> &'static str {
        match self {
            NodeKind::Start { .. } => "start",
            NodeKind::Llm(_) => "llm",
            NodeKind::End { .. } => "end",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
pub struct StartVariable {
    pub variable: String,
    #[serde(default)]
    pub label: Option<String>,
    #[serde(rename = "type")]
    pub var_type: VarType,
    #[serde(default)]
    pub required: bool,
    #[serde(default)]
    pub max_length: Option<u64>,
    #[serde(default)]
    pub options: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum VarType {
    #[serde(rename = "text-input")]
    TextInput,
    #[serde(rename = "paragraph")]
    Paragraph,
    #[serde(rename = "select")]
    Select,
    #[serde(rename = "number")]
    Number,
    #[serde(rename = "checkbox")]
    Checkbox,
}

impl VarType {
    pub fn as_str(self) -> &'static str {
        match self {
            VarType::TextInput => "text-input",
            VarType::Paragraph => "paragraph",
            VarType::Select => "select",
            VarType::Number => "number",
            VarType::Checkbox => "checkbox",
        }
    }
}

#[derive(Debug, Clone)]
pub struct LlmNode {
    pub provider: String,
    pub model: String,
    /// `completion_params` from the DSL, sent as extra request fields.
    pub completion_params: serde_json::Map<String, serde_json::Value>,
    pub prompts: Vec<(String, Template)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamSegment {
    /// A variable's value, streamed as soon as its node produces it.
    Var(Selector),
    /// The `"\n"` Dify streams between two end outputs.
    Separator,
}

/// Reads and validates a DSL file.
pub fn load_file(path: &Path) -> Result<Workflow, DslError> {
    let text = std::fs::read_to_string(path).map_err(|source| DslError::Read { path: path.to_owned(), source })?;
    parse(path, &text)
}

/// Validates DSL text; `path` only labels errors.
pub fn parse(path: &Path, text: &str) -> Result<Workflow, DslError> {
    let file: DslFile = serde_yaml::from_str(text).map_err(|source| DslError::Yaml { path: path.to_owned(), source })?;
    Loader { path }.compile(file)
}

#[derive(Deserialize)]
struct DslFile {
    app: DslApp,
    workflow: DslWorkflow,
}

#[derive(Deserialize)]
struct DslApp {
    mode: String,
    name: String,
    #[serde(default)]
    description: Option<String>,
}

#[derive(Deserialize)]
struct DslWorkflow {
    graph: DslGraph,
}

#[derive(Deserialize)]
struct DslGraph {
    nodes: Vec<DslNode>,
    #[serde(default)]
    edges: Vec<DslEdge>,
}

#[derive(Deserialize)]
struct DslNode {
    id: String,
    data: serde_yaml::Value,
}

#[derive(Deserialize)]
struct DslEdge {
    source: String,
    target: String,
}

#[derive(Deserialize)]
struct NodeHeader {
    #[serde(rename = "type")]
    node_type: String,
    #[serde(default)]
    title: Option<String>,
}

#[derive(Deserialize)]
struct StartData {
    #[serde(default)]
    variables: Vec<StartVariable>,
}

#[derive(Deserialize)]
struct LlmData {
    model: LlmModel,
    prompt_template: Vec<PromptMessage>,
}

#[derive(Deserialize)]
struct LlmModel {
    #[serde(default)]
    provider: String,
    name: String,
    #[serde(default)]
    mode: Option<String>,
    #[serde(default)]
    completion_params: serde_json::Map<String, serde_json::Value>,
}

#[derive(Deserialize)]
struct PromptMessage {
    role: String,
    #[serde(default)]
    text: String,
}

#[derive(Deserialize)]
struct EndData {
    #[serde(default)]
    outputs: Vec<EndOutput>,
}

#[derive(Deserialize)]
struct EndOutput {
    variable: String,
    value_selector: Vec<String>,
}

struct Loader<'a> {
    path: &'a Path,
}

impl Loader<'_> {
    fn node_err(&self, node_id: &str, problem: impl Into<String>) -> DslError {
        DslError::Node { path: self.path.to_owned(), node_id: node_id.to_owned(), problem: problem.into() }
    }

    fn graph_err(&self, problem: impl Into<String>) -> DslError {
        DslError::Graph { path: self.path.to_owned(), problem: problem.into() }
    }

    fn data<T: for<'de> Deserialize<'de>>(&self, node: &DslNode) -> Result<T, DslError> {
        serde_yaml::from_value(node.data.clone()).map_err(|e| self.node_err(&node.id, format!("bad node data: {e}")))
    }

    fn compile(&self, file: DslFile) -> Result<Workflow, DslError> {
        if file.app.mode != "workflow" {
            return Err(DslError::Mode { path: self.path.to_owned(), mode: file.app.mode });
        }
        let graph = file.workflow.graph;
        let mut nodes = Vec::with_capacity(graph.nodes.len());
        let mut seen = HashSet::new();
        for raw in &graph.nodes {
            if !seen.insert(raw.id.as_str()) {
                return Err(self.node_err(&raw.id, "duplicate node id"));
            }
            nodes.push(self.compile_node(raw)?);
        }
        let starts: Vec<usize> = (0..nodes.len()).filter(|&i| matches!(nodes[i].kind, NodeKind::Start { .. })).collect();
        let start = match starts[..] {
            [one] => one,
            [] => return Err(self.graph_err("no start node; a workflow needs exactly one")),
            _ => {
                return Err(self.graph_err(format!("{} start nodes; a workflow needs exactly one", starts.len())));
            }
        };
        let index: HashMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.id.as_str(), i)).collect();
        let mut children = vec![Vec::new(); nodes.len()];
        for edge in &graph.edges {
            let source = *index
                .get(edge.source.as_str())
                .ok_or_else(|| self.node_err(&edge.source, format!("edge {} -> {} starts at an unknown node", edge.source, edge.target)))?;
            let target = *index
                .get(edge.target.as_str())
                .ok_or_else(|| self.node_err(&edge.target, format!("edge {} -> {} ends at an unknown node", edge.source, edge.target)))?;
            if !children[source].contains(&target) {
                children[source].push(target);
            }
        }
        let order = self.topological_order(&nodes, &children, start)?;
        let ends: Vec<usize> = order.iter().copied().filter(|&i| matches!(nodes[i].kind, NodeKind::End { .. })).collect();
        let end = match ends[..] {
            [one] => one,
            [] => return Err(self.graph_err("no end node is reachable from the start node")),
            _ => {
                return Err(self.graph_err(format!("{} end nodes are reachable; flowbench supports exactly one", ends.len())));
            }
        };
        if let Some(&after) = children[end].first() {
            return Err(self.node_err(&nodes[after].id, "follows the end node; nothing may run after it"));
        }
        // The end node has no children, so moving it last keeps the order topological.
        let mut order = order;
        order.retain(|&i| i != end);
        order.push(end);
        self.check_references(&nodes, &order)?;
        let stream_plan = match &nodes[end].kind {
            NodeKind::End { outputs } => {
                let mut plan = Vec::with_capacity(outputs.len() * 2);
                for (i, (_, sel)) in outputs.iter().enumerate() {
                    if i > 0 {
                        plan.push(StreamSegment::Separator);
                    }
                    plan.push(StreamSegment::Var(sel.clone()));
                }
                plan
            }
            _ => unreachable!("end index points at an end node"),
        };
        let mut slots: Vec<Option<Node>> = nodes.into_iter().map(Some).collect();
        let nodes = order.iter().map(|&i| slots[i].take().expect("each node once in the order")).collect();
        Ok(Workflow { name: file.app.name, description: file.app.description.unwrap_or_default(), nodes, stream_plan })
    }

    fn compile_node(&self, raw: &DslNode) -> Result<Node, DslError> {
        let header: NodeHeader = self.data(raw)?;
        let title = header.title.unwrap_or_default();
        let kind = match header.node_type.as_str() {
            "start" => {
                let data: StartData = self.data(raw)?;
                let mut names = HashSet::new();
                for v in &data.variables {
                    if !names.insert(v.variable.as_str()) {
                        return Err(self.node_err(&raw.id, format!("variable {:?} is declared twice", v.variable)));
                    }
                    if v.var_type == VarType::Select && v.options.is_empty() {
                        return Err(self.node_err(&raw.id, format!("select variable {:?} has no options", v.variable)));
                    }
                }
                NodeKind::Start { variables: data.variables }
            }
            "llm" => {
                let data: LlmData = self.data(raw)?;
                if let Some(mode) = data.model.mode.as_deref().filter(|m| *m != "chat") {
                    return Err(self.node_err(&raw.id, format!("model mode {mode:?} is not supported; use \"chat\"")));
                }
                let mut prompts = Vec::with_capacity(data.prompt_template.len());
                for message in data.prompt_template {
                    if !matches!(message.role.as_str(), "system" | "user" | "assistant") {
                        return Err(self.node_err(&raw.id, format!("prompt role {:?} is not system, user or assistant", message.role)));
                    }
                    let template = Template::parse(&message.text).map_err(|p| self.node_err(&raw.id, p))?;
                    prompts.push((message.role, template));
                }
                NodeKind::Llm(LlmNode {
                    provider: data.model.provider,
                    model: data.model.name,
                    completion_params: data.model.completion_params,
                    prompts,
                })
            }
            "end" => {
                let data: EndData = self.data(raw)?;
                let mut outputs = Vec::with_capacity(data.outputs.len());
                for out in data.outputs {
                    let [node_id, var] = <[String; 2]>::try_from(out.value_selector).map_err(|sel| {
                        self.node_err(&raw.id, format!("output {:?}: value_selector {sel:?} must be [node_id, variable]", out.variable))
                    })?;
                    outputs.push((out.variable, Selector::new(node_id, var)));
                }
                NodeKind::End { outputs }
            }
            other => {
                return Err(self.node_err(&raw.id, format!("node type {other:?} is not supported (supported: start, llm, end)")));
            }
        };
        Ok(Node { id: raw.id.clone(), title, kind })
    }

    /// Kahn's algorithm over the nodes reachable from `start`, stable in DSL
    /// order; a cycle anywhere among them is an error naming one of its nodes.
    fn topological_order(&self, nodes: &[Node], children: &[Vec<usize>], start: usize) -> Result<Vec<usize>, DslError> {
        let mut reachable = vec![false; nodes.len()];
        let mut stack = vec![start];
        while let Some(i) = stack.pop() {
            if !std::mem::replace(&mut reachable[i], true) {
                stack.extend(children[i].iter().copied());
            }
        }
        let mut in_degree = vec![0usize; nodes.len()];
        for (i, kids) in children.iter().enumerate() {
            if reachable[i] {
                for &k in kids {
                    in_degree[k] += 1;
                }
            }
        }
        if in_degree[start] > 0 {
            return Err(self.node_err(&nodes[start].id, "the start node has an incoming edge"));
        }
        let mut order = Vec::with_capacity(nodes.len());
        let mut ready = vec![start];
        while let Some(i) = ready.pop() {
            order.push(i);
            for &k in children[i].iter().rev() {
                in_degree[k] -= 1;
                if in_degree[k] == 0 {
                    ready.push(k);
                }
            }
        }
        let n_reachable = reachable.iter().filter(|r| **r).count();
        if order.len() < n_reachable {
            let stuck = (0..nodes.len()).find(|&i| reachable[i] && in_degree[i] > 0).expect("a node left means a cycle");
            return Err(self.node_err(&nodes[stuck].id, "is part of a cycle; workflows must be acyclic"));
        }
        Ok(order)
    }

    /// Every reference must name a `sys.*` variable or an output of a node
    /// that runs before the one using it.
    fn check_references(&self, nodes: &[Node], order: &[usize]) -> Result<(), DslError> {
        let mut available: HashSet<(&str, &str)> = SYS_VARS.iter().map(|v| ("sys", *v)).collect();
        for &i in order {
            let node = &nodes[i];
            let used: Vec<&Selector> = match &node.kind {
                NodeKind::Start { .. } => Vec::new(),
                NodeKind::Llm(llm) => llm.prompts.iter().flat_map(|(_, t)| t.selectors()).collect(),
                NodeKind::End { outputs } => outputs.iter().map(|(_, s)| s).collect(),
            };
            for sel in used {
                if !available.contains(&(sel.node_id.as_str(), sel.var.as_str())) {
                    let why = if nodes.iter().any(|n| n.id == sel.node_id) {
                        "names a variable that node does not output, or a node that does not run before this one"
                    } else if sel.is_sys() {
                        "names an unknown sys variable"
                    } else {
                        "names a node that does not exist"
                    };
                    return Err(self.node_err(&node.id, format!("reference {sel} cannot be resolved: it {why}")));
                }
            }
            match &node.kind {
                NodeKind::Start { variables } => available.extend(variables.iter().map(|v| (node.id.as_str(), v.variable.as_str()))),
                NodeKind::Llm(_) => available.extend(LLM_OUTPUTS.iter().map(|v| (node.id.as_str(), *v))),
                NodeKind::End { .. } => {}
            }
        }
        Ok(())
    }
}
