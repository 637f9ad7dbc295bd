//! flowbench: the load driver and what it reports.
//!
//! - `load`: the schedule, the HTTP/SSE client, the driver, the metrics and
//!   the health checks (no clap, no printing);
//! - `report`: the report's types (read by `cargo xtask gate` too) and their
//!   renderings;
//! - `scenario`: scenario files (TOML) → scenarios, checked;
//! - `stack`: the mocked stack, in this process or as a child process;
//! - `cli`: every flag, as clap types; `plan`: a command's flags checked
//!   and resolved into what it runs; `cmd`: the commands, the only code
//!   that prints; `exit`: the exit codes.
//!
//! The stand-in services (mock LLM, bare handler) are the `mock` crate.

pub mod cli;
pub mod cmd;
pub mod exit;
pub mod load;
pub mod plan;
pub mod report;
pub mod scenario;
pub mod stack;

pub use stack::{InProcessStack, StackInfo, StackOptions};
