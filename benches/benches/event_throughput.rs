//! Event throughput through the relay: events/s received by clients of the
//! real server fed by the mock LLM at full speed (no delays), at 1, 100 and
//! 1,000 concurrent streams.

use benches::{Client, run_body, runtime};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use flowbench::{InProcessStack, StackOptions};
use mock::{Reply, Script};
use server::sse::SseParser;
use std::time::{Duration, Instant};

/// Content chunks per stream; each stream also carries 8 workflow events.
const TOKENS_PER_STREAM: u32 = 50;

fn event_throughput(c: &mut Criterion) {
    let rt = runtime();
    let script = Script { reply: Reply::Tokens(TOKENS_PER_STREAM), inter_token_delay: Duration::ZERO, ..Script::default() };
    let stack = rt.block_on(InProcessStack::start(StackOptions { script, ..StackOptions::default() })).expect("stack");
    let url = stack.info.server_url.clone();
    let key = stack.api_key("llm").to_owned();
    let mut group = c.benchmark_group("event_throughput");
    group.sample_size(10);
    for streams in [1u64, 100, 1000] {
        let events_per_stream = u64::from(TOKENS_PER_STREAM) + 8;
        group.throughput(Throughput::Elements(streams * events_per_stream));
        group.bench_with_input(BenchmarkId::from_parameter(streams), &streams, |b, &streams| {
            b.to_async(&rt).iter_custom(|iters| {
                let (url, key) = (url.clone(), key.clone());
                async move {
                    let mut clients = Vec::new();
                    for _ in 0..streams {
                        clients.push(Client::new(&url, &key).await);
                    }
                    let mut total = Duration::ZERO;
                    for _ in 0..iters {
                        let start = Instant::now();
                        let mut tasks = tokio::task::JoinSet::new();
                        for mut client in clients.drain(..) {
                            tasks.spawn(async move {
                                let mut body = client.run(run_body("q", "streaming")).await.into_body();
                                let n = benches::read_events(&mut body, &mut SseParser::new(), usize::MAX, |_| false).await;
                                (client, n)
                            });
                        }
                        while let Some(done) = tasks.join_next().await {
                            let (client, n) = done.expect("stream task");
                            assert_eq!(n as u64, events_per_stream, "every event arrives");
                            clients.push(client);
                        }
                        total += start.elapsed();
                    }
                    total
                }
            });
        });
    }
    group.finish();
    rt.block_on(stack.shutdown()).expect("stack stops");
}

criterion_group!(benches, event_throughput);
criterion_main!(benches);
