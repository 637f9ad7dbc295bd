//! Load: who sends when (`schedule`), over what (`client`), the worker loop
//! that turns each request into one `Sample` (`driver`), what a request
//! measures (`metrics`), how they are tallied (`recorder`, `gauge`), and
//! whether the measurement can be trusted (`health`), and what the target's
//! own metrics say: Prometheus endpoints scraped during a run (`scrape`)
//! and a Prometheus server's figures over it (`promql`).
//! Nothing here parses flags or prints.

pub mod client;
pub mod driver;
pub mod gauge;
pub mod health;
pub mod inputs;
pub mod integrity;
pub mod metrics;
pub mod promql;
pub mod recorder;
pub mod schedule;
pub mod scrape;
pub mod timeline;
