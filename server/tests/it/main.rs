//! The server's integration tests, over real loopback sockets.

mod bad_requests;
mod disconnect;
mod dsl;
mod errors;
mod llm;
mod runs;
mod shutdown;
mod slow_clients;
mod sse;
mod support;
mod transcripts;
mod upstream;
