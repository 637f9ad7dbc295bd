//! The SSE parser against real Dify streams: split at every byte boundary,
//! with every kind of line end, and at random cut points, it yields the same
//! events as in one piece.

use mock::workspace_root;
use proptest::prelude::*;
use server::sse::{SseEvent, SseParser};

/// The SSE bodies of the transcript's streaming exchanges.
fn streams() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(workspace_root().join("fixtures/transcripts/dify-1.13.2.txt")).unwrap().replace("\r\n", "\n");
    text.split("################")
        .filter(|s| s.contains("text/event-stream"))
        .map(|s| s.split_once("\n\n").unwrap().1.trim_end().to_owned() + "\n\n")
        .map(String::into_bytes)
        .collect()
}

fn parse(chunks: &[&[u8]]) -> Vec<SseEvent> {
    let mut parser = SseParser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.push(chunk, |e| events.push(e));
    }
    events
}

#[test]
fn every_split_point_gives_the_same_events() {
    let streams = streams();
    assert_eq!(streams.len(), 3);
    for stream in &streams {
        let whole = parse(&[stream]);
        assert!(whole.len() >= 7, "{} events", whole.len());
        assert!(whole.iter().all(|e| e.data.starts_with("{\"event\":")), "the ping is not an event");
        for i in 0..=stream.len() {
            assert_eq!(parse(&[&stream[..i], &stream[i..]]), whole, "split at byte {i}");
        }
        for line_end in ["\r\n", "\r"] {
            let converted = String::from_utf8(stream.clone()).unwrap().replace('\n', line_end).into_bytes();
            for i in 0..=converted.len() {
                assert_eq!(parse(&[&converted[..i], &converted[i..]]), whole, "{line_end:?} line ends, split at {i}");
            }
        }
    }
}

proptest! {
    #[test]
    fn random_cuts_give_the_same_events(cuts in proptest::collection::vec(0usize..4000, 0..40)) {
        for stream in streams() {
            let whole = parse(&[&stream]);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut from = 0;
            for p in points {
                chunks.push(&stream[from..p]);
                from = p;
            }
            chunks.push(&stream[from..]);
            prop_assert_eq!(parse(&chunks), whole);
        }
    }
}
