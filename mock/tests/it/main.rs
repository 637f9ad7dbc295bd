//! The stand-in services' integration tests, over real loopback sockets.

mod bare;
mod llm;
