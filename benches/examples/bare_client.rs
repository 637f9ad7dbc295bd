//! The least a load generator can do: hyper's HTTP/1.1 client, one
//! connection per user in a closed loop, each response read to its end and
//! its SSE events counted by their blank-line separators, nothing parsed,
//! timed or checked. The yardstick for flowbench's driver's own cost per
//! request and per event (docs/capacity.md, the driver's ceiling): what
//! flowbench spends above it is its parsing, its histograms and its checks.
//!
//! ```sh
//! cargo run --release -p benches --example bare_client -- \
//!   URL KEY '{"inputs":{},"response_mode":"blocking","user":"u"}' USERS SECONDS [THREADS]
//! ```
//!
//! Prints one JSON line: requests, events, seconds, the process's CPU
//! seconds (user + system, from /proc/self/stat) and the rates per second
//! and per CPU second.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command's closing parenthesis; utime and stime are the 14th and 15th.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
    // In USER_HZ ticks, which Linux fixes at 100 a second for user space.
    (ticks(11) + ticks(12)) / 100.0
}

/// Blank-line event separators in `chunk`, `last` the byte before it.
fn separators(chunk: &[u8], last: &mut u8) -> u64 {
    let mut n = 0;
    for &b in chunk {
        if b == b'\n' && *last == b'\n' {
            n += 1;
        }
        *last = b;
    }
    n
}

async fn user(url: hyper::Uri, key: Arc<str>, body: Bytes, end: Instant, requests: Arc<AtomicU64>, events: Arc<AtomicU64>) {
    let authority = url.authority().expect("URL with a host").clone();
    'connect: while Instant::now() < end {
        let Ok(stream) = tokio::net::TcpStream::connect(authority.as_str()).await else { return };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, conn)) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await else { return };
        tokio::spawn(conn);
        while Instant::now() < end {
            let request = Request::post(url.clone())
                .header(hyper::header::HOST, authority.as_str())
                .header(hyper::header::AUTHORIZATION, format!("Bearer {key}"))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))
                .expect("a request");
            let Ok(response) = sender.send_request(request).await else { continue 'connect };
            let mut body = response.into_body();
            let mut last = 0u8;
            let mut n = 0;
            while let Some(frame) = body.frame().await {
                let Ok(frame) = frame else { continue 'connect };
                if let Some(data) = frame.data_ref() {
                    n += separators(data, &mut last);
                }
            }
            requests.fetch_add(1, Ordering::Relaxed);
            events.fetch_add(n, Ordering::Relaxed);
            if sender.ready().await.is_err() {
                continue 'connect;
            }
        }
    }
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [url, key, body, users, seconds, rest @ ..] = args.as_slice() else {
        anyhow::bail!("usage: bare_client URL KEY BODY USERS SECONDS [THREADS]");
    };
    let url: hyper::Uri = url.parse()?;
    let users: usize = users.parse()?;
    let seconds: f64 = seconds.parse()?;
    let threads: usize = rest.first().map_or(Ok(1), |t| t.parse())?;
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?;
    let (requests, events) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let key: Arc<str> = key.as_str().into();
    let body = Bytes::from(body.clone());
    let (cpu0, t0) = (cpu_seconds(), Instant::now());
    let end = t0 + Duration::from_secs_f64(seconds);
    runtime.block_on(async {
        let mut set = tokio::task::JoinSet::new();
        for _ in 0..users {
            set.spawn(user(url.clone(), key.clone(), body.clone(), end, requests.clone(), events.clone()));
        }
        while set.join_next().await.is_some() {}
    });
    let (cpu, wall) = (cpu_seconds() - cpu0, t0.elapsed().as_secs_f64());
    let (r, e) = (requests.load(Ordering::Relaxed) as f64, events.load(Ordering::Relaxed) as f64);
    println!(
        "{}",
        serde_json::json!({
            "requests": r, "events": e, "seconds": wall, "cpu_seconds": cpu,
            "requests_per_s": r / wall, "events_per_s": e / wall,
            "requests_per_cpu_s": r / cpu, "events_per_cpu_s": e / cpu,
        })
    );
    Ok(())
}
