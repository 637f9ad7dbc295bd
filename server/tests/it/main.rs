//! The server's integration tests, over real loopback sockets.

mod bad_requests;
mod dify_edges;
mod disconnect;
mod dsl;
mod errors;
mod hostile;
mod hostile_upstream;
mod llm;
mod metrics;
mod runs;
mod shutdown;
mod slow_clients;
mod sse;
mod store_bytes;
mod stores;
mod support;
mod transcripts;
mod upstream;
