//! Load: who sends when (`schedule`), over what (`client`), the worker loop
//! that turns each request into one `Sample` (`driver`), what is counted
//! (`metrics`), and whether the measurement can be trusted (`health`).
//! Nothing here parses flags or prints.

pub mod client;
pub mod driver;
pub mod health;
pub mod metrics;
pub mod schedule;
