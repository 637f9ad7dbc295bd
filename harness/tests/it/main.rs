//! The harness's integration tests, over real loopback sockets.

mod cli;
mod driver;
mod target_cpu;
mod tls;
mod up;
