//! What the store keeps of a run, in one place beside the engine: the
//! record of a run still going (no outcome yet) or finished, packed from
//! the engine's `Run` and `RunOutcome` (with each node's execution for a
//! store that keeps them, as Dify's `workflow_node_executions`), put into
//! any `RunStore`. The HTTP layer calls it; it knows no HTTP.

use super::engine::{NodeExecution, Run, RunOutcome};
use super::events::RunTotals;
use crate::store::{Committed, RecordParts, RunRecord, RunStore};

/// Stores what `GET /v1/workflows/run/{id}` will answer for `run`: running
/// (no outcome yet) or finished. Packed, not rendered (see `RunRecord`).
pub fn store_run(store: &dyn RunStore, run: &Run, outcome: Option<&RunOutcome>) -> Committed {
    let no_outputs = serde_json::Map::new();
    let totals = outcome.map_or_else(|| RunTotals::running(run.created_at), |o| o.totals);
    let nodes = if run.keep_nodes { nodes_json(run, outcome.map_or(&[], |o| &o.nodes)) } else { String::new() };
    let record = RunRecord::pack(&RecordParts {
        totals,
        inputs: &run.inputs,
        user_id: &run.user_id,
        outputs: outcome.map_or(&no_outputs, |o| &o.outputs),
        error: outcome.and_then(|o| o.error.as_deref()),
        nodes_json: &nodes,
    });
    store.put(run.app.app_uuid, run.id, record)
}

/// A run's node executions as a store keeps them: a JSON array, one object
/// per node that ran, with what Dify's `workflow_node_executions` row holds
/// for our node types.
fn nodes_json(run: &Run, nodes: &[NodeExecution]) -> String {
    let rows: Vec<serde_json::Value> = nodes
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let node = run.app.workflow.nodes.get(n.node)?;
            Some(serde_json::json!({
                "index": i + 1,
                "node_id": node.id,
                "node_type": node.kind.type_name(),
                "title": node.title,
                "status": n.status.as_str(),
                "elapsed_time": n.elapsed_time,
                "created_at": n.created_at,
                "finished_at": n.finished_at,
            }))
        })
        .collect();
    serde_json::Value::Array(rows).to_string()
}
