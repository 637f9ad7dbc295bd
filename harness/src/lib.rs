//! flowbench's harness: the OpenAI-compatible mock LLM (`mock_llm`) and the
//! in-process mocked stack (`stack`) that the load driver, the tests, the
//! benchmarks and `cargo xtask up` run against.

pub mod mock_llm;
pub mod stack;

pub use mock_llm::{Fault, MockLlm, Reply, Script};
pub use stack::{Stack, StackInfo, StackOptions};
