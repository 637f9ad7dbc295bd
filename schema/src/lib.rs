//! The files flowbench writes and reads back, as types: a run's report
//! (`report`), `flowbench ab`'s and `soak`'s, `flowbench up`'s stack line
//! (`stack`), with what they are made of (`load`, `metrics`, `health`), the
//! one table of figures (`figures`), the stream-integrity check's
//! findings and a run's timeline (`integrity`) and the renderings that need nothing
//! but these types (`text`: the seed's tables and the rest as text and
//! Markdown; `bmf`: Bencher Metric Format), and what was observed of the
//! target beside its answers (`observe`: scraped series, Prometheus'
//! figures). serde only: `cargo xtask` reads them without building the
//! driver, the runtime or the server.

pub mod ab;
pub mod bmf;
pub mod capacity;
pub mod figures;
pub mod health;
pub mod integrity;
pub mod load;
pub mod metrics;
pub mod observe;
pub mod report;
pub mod soak;
pub mod stack;
pub mod text;
