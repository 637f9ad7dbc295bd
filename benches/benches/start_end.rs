//! The Start→End workflow: the blocking round trip over loopback HTTP, and
//! the engine alone (no HTTP, no event serialization), to split the server's
//! cost between its HTTP layer and its workflow engine.

use benches::{Client, run_body, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use flowbench::{InProcessStack, StackOptions};
use serde_json::json;
use server::workflow::engine::{self, NoEvents, Run};

fn start_end(c: &mut Criterion) {
    let rt = runtime();
    let stack = rt.block_on(InProcessStack::start(StackOptions::default())).expect("stack");
    let mut group = c.benchmark_group("start_end");
    let body = run_body("What is machine learning?", "blocking");
    let (url, key) = (stack.info.server_url.clone(), stack.api_key("empty").to_owned());
    group.bench_function("http_round_trip", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (url, key, body) = (url.clone(), key.clone(), body.clone());
            async move {
                // The connection is opened (and warmed) outside the timing.
                let mut client = Client::new(&url, &key).await;
                client.run_to_end(body.clone()).await;
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(client.run_to_end(body.clone()).await);
                }
                start.elapsed()
            }
        });
    });
    let app = stack.server.state.app(stack.api_key("empty")).expect("app");
    let provider = stack.server.state.provider().clone();
    let stop = tokio_util::sync::CancellationToken::new();
    group.bench_function("engine", |b| {
        b.to_async(&rt).iter(|| {
            let inputs = json!({"question": "What is machine learning?"}).as_object().cloned().unwrap_or_default();
            let run = Run::new(app.runnable.clone(), "bench".into(), inputs);
            let (provider, stop) = (&provider, &stop);
            async move { std::hint::black_box(engine::execute(provider, &run, &mut NoEvents, stop).await) }
        });
    });
    group.finish();
    rt.block_on(stack.shutdown()).expect("stack stops");
}

criterion_group!(benches, start_end);
criterion_main!(benches);
