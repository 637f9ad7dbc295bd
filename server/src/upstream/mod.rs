//! The LLM node's upstream: an OpenAI-compatible chat completion, streamed.
//! `client` is the HTTP/1.1 client for its one exchange, `decoder` the
//! framing of its body (no I/O), `chunk` one `chat.completion.chunk`, `llm`
//! the completion stream on top.

mod chunk;
pub mod client;
pub mod decoder;
pub mod llm;

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("{0}")]
    Connect(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("invalid response: {0}")]
    Protocol(String),
    #[error("connection closed before the response body ended")]
    Incomplete,
}
