//! A scenario file's input rows: from JSON (an object of inputs; a chat
//! app's `query` taken out of it), or read from a `.jsonl` or `.csv` file,
//! each bad row named by its line.

use crate::load::inputs::Row;
use serde_json::Value;
use std::path::Path;

/// A chat app's path: each request carries a `query`.
pub fn is_chat(path: &http::uri::PathAndQuery) -> bool {
    path.path().ends_with("/chat-messages")
}

/// An input row from JSON: an object of inputs; a chat app's `query` is
/// taken out of it.
pub fn row(value: Value, chat: bool) -> Result<Row, String> {
    let Value::Object(mut inputs) = value else { return Err("must be an object of inputs".into()) };
    let query = if chat {
        match inputs.remove("query") {
            Some(Value::String(q)) => Some(q),
            Some(_) => return Err("`query` must be a string".into()),
            None => return Err("a chat app's row needs a `query`".into()),
        }
    } else {
        None
    };
    Ok(Row { inputs, query })
}

pub(super) enum RowsError {
    Open(String),
    /// A bad row: its line in the input file, when known.
    Row(Option<usize>, String),
}

/// Rows from a `.jsonl` (an object per line) or `.csv` (a header row; each
/// cell a string) file.
pub(super) fn read_rows(path: &Path, chat: bool) -> Result<Vec<Row>, RowsError> {
    let text = std::fs::read_to_string(path).map_err(|e| RowsError::Open(format!("{}: {e}", path.display())))?;
    let mut rows = Vec::new();
    match path.extension().and_then(|e| e.to_str()) {
        Some("jsonl" | "ndjson") => {
            for (i, line) in text.lines().enumerate() {
                if line.trim().is_empty() {
                    continue;
                }
                let value: Value = serde_json::from_str(line).map_err(|e| RowsError::Row(Some(i + 1), format!("not JSON: {e}")))?;
                rows.push(row(value, chat).map_err(|m| RowsError::Row(Some(i + 1), m))?);
            }
        }
        Some("csv") => {
            let mut reader = csv::Reader::from_reader(text.as_bytes());
            let headers = reader.headers().map_err(|e| RowsError::Row(Some(1), format!("the header row: {e}")))?.clone();
            for record in reader.records() {
                let record = record.map_err(|e| RowsError::Row(e.position().map(|p| p.line() as usize), e.to_string()))?;
                let line = record.position().map(|p| p.line() as usize);
                let inputs = headers.iter().zip(record.iter()).map(|(k, v)| (k.to_owned(), Value::String(v.to_owned()))).collect();
                rows.push(row(Value::Object(inputs), chat).map_err(|m| RowsError::Row(line, m))?);
            }
        }
        _ => return Err(RowsError::Open(format!("{}: must end in .jsonl or .csv", path.display()))),
    }
    if rows.is_empty() {
        return Err(RowsError::Open(format!("{}: holds no row", path.display())));
    }
    Ok(rows)
}
