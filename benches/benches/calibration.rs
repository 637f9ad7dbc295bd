//! Calibration: a bare axum handler's blocking round trip on the same runtime
//! and client as `start_end/http_round_trip`, so every report can state the
//! server's cost as a ratio to the least an axum server can do here.

use benches::{Client, run_body, runtime};
use criterion::{Criterion, criterion_group, criterion_main};

fn calibration(c: &mut Criterion) {
    let rt = runtime();
    let url = rt.block_on(async {
        let (addr, _task) = mock::bare::serve("127.0.0.1:0".parse().expect("addr")).await.expect("bare server");
        format!("http://{addr}")
    });
    let body = run_body("What is machine learning?", "blocking");
    let mut group = c.benchmark_group("calibration");
    group.bench_function("axum_round_trip", |b| {
        b.to_async(&rt).iter_custom(|iters| {
            let (url, body) = (url.clone(), body.clone());
            async move {
                let mut client = Client::new(&url, "app-none").await;
                client.run_to_end(body.clone()).await;
                let start = std::time::Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(client.run_to_end(body.clone()).await);
                }
                start.elapsed()
            }
        });
    });
    group.finish();
}

criterion_group!(benches, calibration);
criterion_main!(benches);
