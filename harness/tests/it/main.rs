//! The harness's integration tests, over real loopback sockets.

mod mock_llm;
mod up;
