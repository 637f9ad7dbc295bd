//! Relay latency: from the upstream emitting one chunk to the client holding
//! the matching `text_chunk`, through the real server over loopback; and the
//! same chunk read straight from the upstream (`direct`), the yardstick the
//! server's added latency is measured against.

use benches::{Client, ControlledUpstream, delta_frame, llm_server, read_events, run_body, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use http_body_util::{BodyExt, Full};
use server::sse::SseParser;
use std::time::{Duration, Instant};

fn relay_latency(c: &mut Criterion) {
    let rt = runtime();
    let upstream = rt.block_on(ControlledUpstream::start());
    let server = rt.block_on(async { llm_server(&upstream.base_url) });
    let url = server.url.clone();
    let mut group = c.benchmark_group("relay_latency");
    group.bench_function("server", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let tx = upstream.prepare();
            let url = url.clone();
            async move {
                let mut client = Client::new(&url, "app-bench-llm").await;
                let mut body = client.run(run_body("q", "streaming")).await.into_body();
                let mut parser = SseParser::new();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    tx.send(delta_frame("token ")).expect("upstream open");
                    read_events(&mut body, &mut parser, 1, |d| d.starts_with("{\"event\":\"text_chunk\"")).await;
                    total += start.elapsed();
                }
                drop(tx);
                total
            }
        });
    });
    group.bench_function("direct", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let tx = upstream.prepare();
            let base = upstream.base_url.clone();
            async move {
                let client =
                    hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new()).build_http::<Full<bytes::Bytes>>();
                let request =
                    http::Request::post(format!("{base}/chat/completions")).body(Full::new(bytes::Bytes::from_static(b"{}"))).unwrap();
                let mut body = client.request(request).await.expect("upstream answers").into_body();
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let start = Instant::now();
                    tx.send(delta_frame("token ")).expect("upstream open");
                    let _ = body.frame().await;
                    total += start.elapsed();
                }
                total
            }
        });
    });
    group.finish();
}

criterion_group!(benches, relay_latency);
criterion_main!(benches);
