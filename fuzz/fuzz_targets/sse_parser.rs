//! The SSE parser on arbitrary bytes, split at an arbitrary point: it must
//! never panic, and splitting a stream must not change what it dispatches.
#![no_main]

use libfuzzer_sys::fuzz_target;
use server::sse::SseParser;

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let split = usize::from(split).min(bytes.len());
    let mut whole = Vec::new();
    SseParser::new().push(bytes, |e| whole.push(e));
    let mut parts = Vec::new();
    let mut parser = SseParser::new();
    parser.push(&bytes[..split], |e| parts.push(e));
    parser.push(&bytes[split..], |e| parts.push(e));
    assert_eq!(whole, parts, "splitting at {split} changed the events");
});
