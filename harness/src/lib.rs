//! flowbench's harness: the OpenAI-compatible mock LLM (`mock_llm`), the
//! in-process mocked stack (`stack`), and the load driver (`schedule`,
//! `client`, `driver`, `metrics`, `health`) with its report (`report`,
//! `run`), the side-by-side A/B measurement (`ab`), the
//! long run (`soak`) and the bare axum yardstick (`bare`).

pub mod ab;
pub mod bare;
pub mod client;
pub mod driver;
pub mod health;
pub mod metrics;
pub mod mock_llm;
pub mod report;
pub mod run;
pub mod schedule;
pub mod soak;
pub mod stack;

pub use mock_llm::{Fault, MockLlm, Reply, Script};
pub use stack::{Stack, StackInfo, StackOptions};
