//! The server's integration tests, over real loopback sockets.

mod disconnect;
mod dsl;
mod errors;
mod llm;
mod runs;
mod support;
mod transcripts;
