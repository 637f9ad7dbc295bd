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

criterion_group!(benches, sse);
criterion_main!(benches);
