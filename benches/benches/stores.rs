//! Start→End with each run store, in one run: the memory store, a SQLite
//! file (WAL, group commit; `synchronous` FULL and NORMAL) and, when
//! `FLOWBENCH_BENCH_POSTGRES` names a PostgreSQL URL, PostgreSQL. Each
//! iteration is one blocking run with 32 or 256 runs in flight (a durable
//! store commits what is waiting together, so one at a time would measure
//! a commit's latency, not the store's throughput): criterion's time per
//! iteration is the inverse of req/s, and the stores' ratios are read off
//! one report.

use benches::{Client, run_body, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use flowbench::{InProcessStack, StackOptions};

const IN_FLIGHT: [u64; 2] = [32, 256];

fn stores(c: &mut Criterion) {
    let rt = runtime();
    let dir = tempfile::tempdir().expect("a temporary folder");
    let sqlite = |name: &str, query: &str| Some(format!("sqlite:{}{query}", dir.path().join(name).display()));
    let mut stores =
        vec![("memory", None), ("sqlite", sqlite("full.db", "")), ("sqlite_normal", sqlite("normal.db", "?synchronous=normal"))];
    match std::env::var("FLOWBENCH_BENCH_POSTGRES") {
        Ok(url) => stores.push(("postgres", Some(url))),
        Err(_) => eprintln!("stores/postgres: not measured (set FLOWBENCH_BENCH_POSTGRES=postgres://…)"),
    }
    let mut group = c.benchmark_group("stores");
    let body = run_body("What is machine learning?", "blocking");
    for (name, store) in stores {
        let stack = rt.block_on(InProcessStack::start(StackOptions { store, ..StackOptions::default() })).expect("stack");
        let (url, key) = (stack.info.server_url.clone(), stack.api_key("empty").to_owned());
        for in_flight in IN_FLIGHT {
            group.bench_function(format!("start_end_{in_flight}_in_flight/{name}"), |b| {
                b.to_async(&rt).iter_custom(|iters| {
                    let (url, key, body) = (url.clone(), key.clone(), body.clone());
                    async move {
                        // Connections are opened (and warmed) outside the timing.
                        let mut clients = Vec::new();
                        for _ in 0..in_flight {
                            let mut client = Client::new(&url, &key).await;
                            client.run_to_end(body.clone()).await;
                            clients.push(client);
                        }
                        let start = std::time::Instant::now();
                        let mut tasks = tokio::task::JoinSet::new();
                        for (i, mut client) in clients.into_iter().enumerate() {
                            // The iterations dealt over the clients: every one is run.
                            let n = iters / in_flight + u64::from((i as u64) < iters % in_flight);
                            let body = body.clone();
                            tasks.spawn(async move {
                                for _ in 0..n {
                                    std::hint::black_box(client.run_to_end(body.clone()).await);
                                }
                            });
                        }
                        while let Some(done) = tasks.join_next().await {
                            done.expect("a client task");
                        }
                        start.elapsed()
                    }
                });
            });
        }
        rt.block_on(stack.shutdown()).expect("stack stops");
    }
    group.finish();
}

criterion_group!(benches, stores);
criterion_main!(benches);
