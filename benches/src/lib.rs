//! Criterion benchmarks live in `benches/benches/`; this library only anchors the crate.
