//! The SSE parser and encoder, in bytes/s: parsing real Dify streams (the
//! driver's and the LLM node's hot path) and writing `text_chunk` frames (the
//! server's).

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use server::sse::SseParser;
use server::workflow::events::{self, RunIds, TextChunk};

fn transcript_streams() -> Vec<u8> {
    let path = mock::workspace_root().join("fixtures/transcripts/dify-1.13.2.txt");
    let text = std::fs::read_to_string(path).expect("transcript").replace("\r\n", "\n");
    let mut out = Vec::new();
    for section in text.split("################").filter(|s| s.contains("text/event-stream")) {
        out.extend_from_slice(section.split_once("\n\n").expect("headers end").1.trim_end().as_bytes());
        out.extend_from_slice(b"\n\n");
    }
    out
}

fn sse(c: &mut Criterion) {
    let mut group = c.benchmark_group("sse");
    let stream = transcript_streams().repeat(20);
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("parse", |b| {
        b.iter(|| {
            let mut parser = SseParser::new();
            let mut n = 0usize;
            // 1 KiB reads, as a socket would deliver them.
            for chunk in stream.chunks(1024) {
                parser.push_ref(chunk, |e| n += e.data.len());
            }
            std::hint::black_box(n)
        });
    });
    let ids = RunIds { run_id: "231d40f1-a250-42d2-b009-ad706e6f58f8", task_id: "f6c1c8a1-c399-48aa-8176-10b4553bdaef" };
    let sample = events::frame("text_chunk", &ids, TextChunk { text: "response ", from_variable_selector: ["llm", "text"] });
    group.throughput(Throughput::Bytes(sample.len() as u64));
    group.bench_function("encode_text_chunk", |b| {
        b.iter(|| {
            let chunk = TextChunk { text: std::hint::black_box("response "), from_variable_selector: ["llm", "text"] };
            std::hint::black_box(events::frame("text_chunk", &ids, chunk))
        });
    });
    group.finish();
}

/// A Start → LLM → End stream as the driver reads it: Dify's own stream
/// from the transcripts with 32 more `text_chunk`s in its LLM node, so
/// text chunks dominate as they do in an LLM app's stream.
fn llm_stream_events() -> Vec<String> {
    let stream = transcript_streams();
    let text = String::from_utf8(stream).expect("UTF-8");
    let last = text.split("event: ping").filter(|s| s.contains("text_chunk")).last().expect("a stream with text");
    let mut events: Vec<String> = last.lines().filter_map(|l| l.strip_prefix("data: ")).map(str::to_owned).collect();
    let at = events.iter().position(|e| e.contains("\"event\":\"text_chunk\"")).expect("a text chunk");
    let chunk = events[at].clone();
    let start = chunk.find("\"text\":\"").expect("its text") + 8;
    let end = start + chunk[start..].find("\",\"from_variable_selector").expect("its end");
    for i in 0..32 {
        events.insert(at, format!("{}tok{i} {}", &chunk[..start], &chunk[end..]));
    }
    events
}

/// The driver's cost per event with the grammar check (a borrowed parse of
/// each event, the run's state) and without it (`--no-integrity`: a prefix
/// test for text chunks, a parse for the rest), side by side.
fn integrity(c: &mut Criterion) {
    use flowbench::load::integrity::{Grammar, Kind, Labels, Trace, unchecked};
    let events = llm_stream_events();
    let mut group = c.benchmark_group("integrity");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function("unchecked", |b| {
        b.iter(|| {
            for e in &events {
                std::hint::black_box(unchecked(std::hint::black_box(e), Kind::Workflow));
            }
        });
    });
    let (mut grammar, mut trace, mut labels) = (Grammar::new(Kind::Workflow), Trace::default(), Labels::default());
    group.bench_function("checked", |b| {
        b.iter(|| {
            grammar.reset(Kind::Workflow);
            trace.clear();
            for (i, e) in events.iter().enumerate() {
                let at = std::time::Duration::from_micros(i as u64);
                std::hint::black_box(grammar.event(std::hint::black_box(e), at, &mut trace, &mut labels));
            }
            std::hint::black_box(grammar.violations())
        });
    });
    group.finish();
}

criterion_group!(benches, sse, integrity);
criterion_main!(benches);
