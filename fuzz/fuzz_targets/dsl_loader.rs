//! The DSL loader on arbitrary text: a workflow or a named error, never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = server::workflow::dsl::parse(std::path::Path::new("fuzz.yml"), text);
    }
});
