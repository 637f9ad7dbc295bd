//! The harness's integration tests, over real loopback sockets.

mod cli;
mod driver;
mod tls;
mod up;
