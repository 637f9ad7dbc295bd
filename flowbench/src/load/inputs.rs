//! What requests carry: an app's input rows (`Row`: inputs, and a chat
//! app's query and conversation), drawn in order or at random
//! (`InputOrder`), each serialized once (`InputSet`), and Dify's five
//! questions, the default.

use bytes::Bytes;
use serde_json::{Value, json};
use std::sync::Arc;

/// The five questions of Dify's stress test; each request picks one.
pub const QUESTIONS: [&str; 5] = [
    "What is artificial intelligence?",
    "Explain quantum computing",
    "What is machine learning?",
    "How do neural networks work?",
    "What is renewable energy?",
];

/// What one request of an app carries beside `response_mode` and `user`.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    pub inputs: serde_json::Map<String, Value>,
    /// A chat app's `query` (`/v1/chat-messages`).
    pub query: Option<String>,
}

impl Row {
    /// A row of inputs only; `inputs` must be a JSON object (anything else
    /// is sent as no inputs).
    pub fn inputs(inputs: Value) -> Self {
        match inputs {
            Value::Object(map) => Self { inputs: map, query: None },
            _ => Self { inputs: serde_json::Map::new(), query: None },
        }
    }
}

/// How the rows of an input set are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InputOrder {
    /// In order, shared by every user: row k goes with the app's k-th request.
    RoundRobin,
    /// Uniformly at random, each user from its own seeded generator.
    Random,
}

/// An app's rows, each serialized once: the hot path copies bytes.
#[derive(Debug, Clone)]
pub struct InputSet {
    /// Each row as the body's first fields, e.g. `"inputs":{…},"query":"…"`.
    pub(super) fields: Arc<[Bytes]>,
    pub order: InputOrder,
}

impl InputSet {
    pub fn new(rows: &[Row], order: InputOrder) -> Self {
        let fields = rows
            .iter()
            .map(|row| {
                let mut text = format!(r#""inputs":{}"#, Value::Object(row.inputs.clone()));
                if let Some(query) = &row.query {
                    text.push_str(r#","query":"#);
                    text.push_str(&Value::String(query.clone()).to_string());
                }
                Bytes::from(text)
            })
            .collect();
        Self { fields, order }
    }

    /// Dify's stress test: `{"question": one of QUESTIONS}`, at random.
    pub fn questions() -> Self {
        let rows: Vec<Row> = QUESTIONS.iter().map(|q| Row::inputs(json!({ "question": q }))).collect();
        Self::new(&rows, InputOrder::Random)
    }

    pub fn len(&self) -> usize {
        self.fields.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}
