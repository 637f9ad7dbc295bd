//! Deterministic instruction counts (Gungraun on valgrind's callgrind) for
//! the CPU-bound hot paths: SSE parse, SSE encode, the LLM node's
//! chunk-to-event transform, and a Start→End graph execution. Counts do not
//! drift with machine load, so a +1% change in instructions fails the run
//! (exit 3) when compared with a saved baseline:
//!
//! ```sh
//! cargo bench -p benches --bench instructions -- --save-baseline=main   # on main
//! cargo bench -p benches --bench instructions -- --baseline=main        # on the branch
//! ```
//!
//! Needs valgrind and `gungraun-runner` (the same version as the `gungraun`
//! crate) on the PATH; `cargo xtask test` installs the runner when missing.

use gungraun::{Callgrind, EventKind, LibraryBenchmarkConfig, library_benchmark, library_benchmark_group, main};
use server::sse::SseParser;
use server::upstream::llm::UpstreamDecoder;
use server::workflow::events::{self, RunIds, TextChunk};
use std::hint::black_box;

/// A Dify stream from the transcripts (~5 KiB, 8 events).
fn dify_stream() -> Vec<u8> {
    let path = mock::workspace_root().join("fixtures/transcripts/dify-1.13.2.txt");
    let text = std::fs::read_to_string(path).expect("transcript").replace("\r\n", "\n");
    let section = text.split("################").find(|s| s.contains("text/event-stream")).expect("a stream");
    format!("{}\n\n", section.split_once("\n\n").expect("headers end").1.trim_end()).into_bytes()
}

/// An upstream answer of 100 content chunks, as the mock LLM sends it.
fn upstream_stream() -> Vec<u8> {
    let mut out = Vec::new();
    for i in 0..100 {
        out.extend_from_slice(
            format!("data: {{\"id\":\"chatcmpl-1\",\"object\":\"chat.completion.chunk\",\"created\":1,\"model\":\"gpt-4o\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]}}\n\n").as_bytes(),
        );
    }
    out.extend_from_slice(b"data: [DONE]\n\n");
    out
}

#[library_benchmark]
#[bench::transcript(setup = dify_stream)]
fn sse_parse(stream: Vec<u8>) -> usize {
    let mut parser = SseParser::new();
    let mut n = 0;
    for chunk in stream.chunks(512) {
        parser.push_ref(chunk, |e| n += e.data.len());
    }
    black_box(n)
}

#[library_benchmark]
fn sse_encode() -> usize {
    let ids = RunIds { run_id: "231d40f1-a250-42d2-b009-ad706e6f58f8", task_id: "f6c1c8a1-c399-48aa-8176-10b4553bdaef" };
    let mut n = 0;
    for _ in 0..100 {
        n += events::frame("text_chunk", &ids, TextChunk { text: black_box("token "), from_variable_selector: ["llm", "text"] }).len();
    }
    black_box(n)
}

#[library_benchmark]
#[bench::hundred_chunks(setup = upstream_stream)]
fn chunk_to_event(upstream: Vec<u8>) -> usize {
    let ids = RunIds { run_id: "231d40f1-a250-42d2-b009-ad706e6f58f8", task_id: "f6c1c8a1-c399-48aa-8176-10b4553bdaef" };
    let mut decoder = UpstreamDecoder::default();
    let mut n = 0;
    for chunk in upstream.chunks(1024) {
        decoder.feed(chunk).expect("valid upstream");
        while let Some(delta) = decoder.pop_delta() {
            n += events::frame("text_chunk", &ids, TextChunk { text: &delta, from_variable_selector: ["llm", "text"] }).len();
        }
    }
    black_box(n)
}

fn start_end_run() -> (tokio::runtime::Runtime, server::AppState, server::workflow::engine::Run) {
    let mut config = server::Config::default();
    config.apps.push(server::AppConfig {
        api_key: "app-bench".into(),
        workflow: mock::workspace_root().join("fixtures/workflows/start_end.yml"),
        max_concurrent_runs: None,
    });
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
    let state = runtime.block_on(async { server::AppState::new(&config).expect("config") });
    let app = state.app("app-bench").expect("app");
    let inputs = serde_json::json!({"question": "What is machine learning?"}).as_object().cloned().unwrap_or_default();
    let run = server::workflow::engine::Run::new(app.runnable.clone(), "bench".into(), inputs);
    (runtime, state, run)
}

#[library_benchmark]
#[bench::start_end(setup = start_end_run)]
fn graph_execution((runtime, state, run): (tokio::runtime::Runtime, server::AppState, server::workflow::engine::Run)) -> u32 {
    let stop = tokio_util::sync::CancellationToken::new();
    let outcome =
        runtime.block_on(server::workflow::engine::execute(state.provider(), &run, &mut server::workflow::engine::NoEvents, &stop));
    black_box(outcome.totals.total_steps)
}

library_benchmark_group!(
    name = hot_paths;
    benchmarks = sse_parse, sse_encode, chunk_to_event, graph_execution
);

mod counted {
    use super::*;

    main!(
        config = LibraryBenchmarkConfig::default().tool(Callgrind::default().soft_limits([(EventKind::Ir, 1.0)]));
        library_benchmark_groups = hot_paths
    );

    pub fn run() {
        main();
    }
}

/// The instruction counts need valgrind and gungraun's runner binary; on a
/// machine without them `cargo bench` says so and how to get them, instead
/// of failing the whole run. The check is for `cargo bench`'s call alone:
/// the runner calls this binary again under valgrind with `--gungraun-run`
/// and a cleared environment, where no PATH finds either program, and a
/// check there would skip every count and leave zeros.
fn main() {
    if std::env::args().any(|arg| arg == "--gungraun-run") {
        counted::run();
        return;
    }
    let runner = std::env::var_os("GUNGRAUN_RUNNER").unwrap_or_else(|| "gungraun-runner".into());
    let found = |program: &std::ffi::OsStr| std::process::Command::new(program).arg("--version").output().is_ok_and(|o| o.status.success());
    if !found(&runner) || !found("valgrind".as_ref()) {
        eprintln!(
            "instructions: skipped: needs valgrind and gungraun-runner 0.20.0 \
             (apt-get install valgrind; cargo install gungraun-runner --version 0.20.0 --locked)"
        );
        return;
    }
    counted::run();
}
