//! The upstream client's body decoder (chunked framing) on arbitrary bytes,
//! split at an arbitrary point: it must never panic, and splitting the
//! bytes must not change the body it decodes, whether it ends, or fails.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use server::upstream::UpstreamError;
use server::upstream::decoder::{BodyDecoder, Framing};

/// The body, whether it ended, and whether it failed.
fn decode(parts: &[&[u8]]) -> (Vec<u8>, bool, bool) {
    let mut decoder = BodyDecoder::new(Framing::Chunked);
    let mut buf = BytesMut::new();
    let mut body = Vec::new();
    for part in parts {
        buf.extend_from_slice(part);
        let decoded = decoder.decode(&mut buf, |d| {
            body.extend_from_slice(d);
            Ok::<(), UpstreamError>(())
        });
        if decoded.is_err() {
            return (body, decoder.is_done(), true);
        }
    }
    (body, decoder.is_done(), false)
}

fuzz_target!(|data: &[u8]| {
    let Some((&split, bytes)) = data.split_first() else { return };
    let split = usize::from(split).min(bytes.len());
    let whole = decode(&[bytes]);
    let parts = decode(&[&bytes[..split], &bytes[split..]]);
    if !whole.2 && !parts.2 {
        assert_eq!(whole, parts, "splitting at {split} changed the body");
    } else {
        // An error is found at once or one split later, never lost.
        assert_eq!(whole.2, parts.2, "splitting at {split} changed whether the framing is bad");
    }
});
