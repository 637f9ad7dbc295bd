//! What a run request's metrics cost in each well-kept Prometheus crate:
//! one labelled counter and two histogram observations (run duration and
//! TTFE), through handles looked up once, as the server keeps them. Alone on
//! one thread, and on two threads at once on the same handles (the server's
//! workers share them, so a crate whose histogram takes a lock or bounces a
//! cache line pays there). The server's `/metrics` uses the cheapest
//! (docs/performance.md, "Metrics crates").

use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;
use std::time::{Duration, Instant};

const BUCKETS: [f64; 12] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0];

/// One request's metrics: the counter and two observations.
trait PerRequest: Sync {
    fn record(&self, seconds: f64);
}

struct TikvPrometheus {
    requests: prometheus::IntCounter,
    duration: prometheus::Histogram,
    ttfe: prometheus::Histogram,
}

impl TikvPrometheus {
    fn new() -> Self {
        let registry = prometheus::Registry::new();
        let requests = prometheus::IntCounterVec::new(prometheus::Opts::new("requests_total", "r"), &["app", "mode", "status"]).unwrap();
        let histogram = |name: &str| {
            let h = prometheus::HistogramVec::new(prometheus::HistogramOpts::new(name, "h").buckets(BUCKETS.to_vec()), &["app"]).unwrap();
            registry.register(Box::new(h.clone())).unwrap();
            h.with_label_values(&["empty"])
        };
        registry.register(Box::new(requests.clone())).unwrap();
        let (duration, ttfe) = (histogram("duration_seconds"), histogram("ttfe_seconds"));
        Self { requests: requests.with_label_values(&["empty", "streaming", "200"]), duration, ttfe }
    }
}

impl PerRequest for TikvPrometheus {
    fn record(&self, seconds: f64) {
        self.requests.inc();
        self.duration.observe(seconds);
        self.ttfe.observe(seconds / 2.0);
    }
}

type LabelPairs = Vec<(&'static str, &'static str)>;

struct PrometheusClient {
    requests: prometheus_client::metrics::counter::Counter,
    duration: prometheus_client::metrics::histogram::Histogram,
    ttfe: prometheus_client::metrics::histogram::Histogram,
}

impl PrometheusClient {
    fn new() -> Self {
        use prometheus_client::metrics::family::Family;
        use prometheus_client::metrics::histogram::Histogram;
        let mut registry = prometheus_client::registry::Registry::default();
        let requests = Family::<LabelPairs, prometheus_client::metrics::counter::Counter>::default();
        registry.register("requests", "r", requests.clone());
        let mut histogram = |name: &str| {
            let family = Family::<LabelPairs, Histogram>::new_with_constructor(|| Histogram::new(BUCKETS));
            registry.register(name, "h", family.clone());
            family.get_or_create(&vec![("app", "empty")]).clone()
        };
        let (duration, ttfe) = (histogram("duration_seconds"), histogram("ttfe_seconds"));
        let requests = requests.get_or_create(&vec![("app", "empty"), ("mode", "streaming"), ("status", "200")]).clone();
        Self { requests, duration, ttfe }
    }
}

impl PerRequest for PrometheusClient {
    fn record(&self, seconds: f64) {
        self.requests.inc();
        self.duration.observe(seconds);
        self.ttfe.observe(seconds / 2.0);
    }
}

struct MetricsRs {
    requests: metrics::Counter,
    duration: metrics::Histogram,
    ttfe: metrics::Histogram,
    _handle: metrics_exporter_prometheus::PrometheusHandle,
}

impl MetricsRs {
    fn new() -> Self {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().set_buckets(&BUCKETS).unwrap().build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || Self {
            requests: metrics::counter!("requests_total", "app" => "empty", "mode" => "streaming", "status" => "200"),
            duration: metrics::histogram!("duration_seconds", "app" => "empty"),
            ttfe: metrics::histogram!("ttfe_seconds", "app" => "empty"),
            _handle: handle,
        })
    }
}

impl PerRequest for MetricsRs {
    fn record(&self, seconds: f64) {
        self.requests.increment(1);
        self.duration.record(seconds);
        self.ttfe.record(seconds / 2.0);
    }
}

/// `iters` requests' metrics, half on each of two threads at once.
fn two_threads(m: &dyn PerRequest, iters: u64) -> Duration {
    let start = Instant::now();
    std::thread::scope(|s| {
        for t in 0..2u64 {
            s.spawn(move || {
                for i in 0..iters / 2 {
                    m.record(black_box(((i + t) % 100) as f64 * 0.001));
                }
            });
        }
    });
    start.elapsed()
}

fn crates(c: &mut Criterion) {
    let contenders: [(&str, Box<dyn PerRequest>); 3] = [
        ("prometheus", Box::new(TikvPrometheus::new())),
        ("prometheus-client", Box::new(PrometheusClient::new())),
        ("metrics-exporter-prometheus", Box::new(MetricsRs::new())),
    ];
    let mut group = c.benchmark_group("metrics_per_request");
    for (name, m) in &contenders {
        group.bench_function(format!("{name}/one thread"), |b| {
            let mut i = 0u64;
            b.iter(|| {
                i += 1;
                m.record(black_box((i % 100) as f64 * 0.001));
            });
        });
        group.bench_function(format!("{name}/two threads"), |b| b.iter_custom(|iters| two_threads(m.as_ref(), iters)));
    }
    group.finish();
}

criterion_group!(benches, crates);
criterion_main!(benches);
