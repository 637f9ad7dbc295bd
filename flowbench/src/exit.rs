//! What each exit code of `flowbench` means (README.md, "Exit codes").

/// Done; the figures are valid (a `Disturbed` run says so in its report).
pub const OK: i32 = 0;
/// The command failed, or its verdict did (run, merge: a scenario without
/// one successful request in its measured phase; soak: memory grew or runs
/// leaked).
pub const FAILED: i32 = 1;
/// Nothing was measured: a bad flag, or a target that is down, refused
/// or rejected the key.
pub const USAGE: i32 = 2;
/// The run finished but its verdict is INVALID (the driver, not the
/// target, was the bottleneck): the figures must not be trusted.
pub const INVALID: i32 = 3;
/// The run is valid and a `--threshold` was crossed (or had nothing to
/// measure): the target is slower than asked.
pub const THRESHOLD: i32 = 4;
/// The run is valid, but a scenario's failures were over
/// `--max-error-rate` (1% by default): its latencies describe the
/// requests that succeeded, and too many did not.
pub const ERRORS: i32 = 5;
/// Ctrl-C; the report of what ran is printed and written.
pub const INTERRUPTED: i32 = 130;
