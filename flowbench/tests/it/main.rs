//! flowbench's integration tests, over real loopback sockets.

mod capacity;
mod cli;
mod deploy;
mod driver;
mod html;
mod integrity;
mod prometheus;
mod target_cpu;
mod tls;
mod trace;
mod up;
