//! How long the server takes to refuse an API key, by the key's shape: a
//! wrong key of a real key's length against one of another length, 2,000
//! tries each, taken in turns on one kept-alive connection so that drift in
//! the machine falls on both alike. A lookup whose time told a key's length
//! or a prefix of a real key would show as a gap between their medians.
//! Prints the medians, their quartiles and the right key's for scale; it
//! times, it does not judge (a gap is for a person to read, with the noise).

use benches::{Client, runtime};
use flowbench::load::client::bearer;
use flowbench::{InProcessStack, StackOptions};
use http_body_util::BodyExt;
use std::time::{Duration, Instant};

const TRIES: usize = 2_000;

fn main() {
    let rt = runtime();
    rt.block_on(async {
        let stack = InProcessStack::start(StackOptions::default()).await.expect("stack");
        let real = stack.api_key("empty").to_owned();
        // The real key with its last character changed, and one 16 characters longer.
        let same_length = format!("{}{}", &real[..real.len() - 1], if real.ends_with('x') { 'y' } else { 'x' });
        let other_length = format!("{real}0123456789abcdef");
        let keys = [
            ("right key", real.as_str(), 200),
            ("wrong key, same length", &same_length, 401),
            ("wrong key, other length", &other_length, 401),
        ];
        let keys: Vec<_> = keys.into_iter().map(|(name, key, status)| (name, bearer(key).expect("key"), status)).collect();
        let mut client = Client::new(&stack.info.server_url, "app-unused").await;
        let mut times = vec![Vec::with_capacity(TRIES); keys.len()];
        // One untimed round of each first: the connection and caches warm.
        for round in 0..=TRIES {
            for (i, (_, key, status)) in keys.iter().enumerate() {
                let request = client.target.get("/v1/info", key);
                let sent = Instant::now();
                let response = client.conn.send(&client.target, request).await.expect("answered");
                assert_eq!(response.status().as_u16(), *status);
                response.into_body().collect().await.expect("body");
                if round > 0 {
                    times[i].push(sent.elapsed());
                }
            }
        }
        println!("auth: {TRIES} tries of each key, in turns, one connection (GET /v1/info round trips)");
        for ((name, _, _), times) in keys.iter().zip(&mut times) {
            times.sort_unstable();
            let q = |f: f64| times[((times.len() - 1) as f64 * f) as usize];
            println!("  {name:<24} median {:>9.2?}  quartiles {:>9.2?} – {:>9.2?}", q(0.5), q(0.25), q(0.75));
        }
        let median = |i: usize| times[i][TRIES / 2].as_secs_f64();
        let gap = Duration::from_secs_f64((median(1) - median(2)).abs());
        println!("  same length − other length: {:+.2}% of the median ({gap:.2?})", (median(1) / median(2) - 1.0) * 100.0);
        stack.shutdown().await.expect("stack stops");
    });
}
