use std::sync::Arc;
use std::time::Instant;

use stats_backend_atomics::AtomicsStore;
use stats_buffer::BufferedTracker;
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::tracker::Config;
use stats_core::{Fields, Op, values};

#[tokio::main]
async fn main() {
    let tracker =
        Arc::new(BufferedTracker::new(Arc::new(AtomicsStore::new()), Config::new()).unwrap());
    let fields = Fields::from_values(&values!({"count": 1, "amount": 2, "items": 3})).unwrap();
    let keys: Vec<String> = (0..1000).map(|i| format!("key{i}")).collect();
    let keys = Arc::new(keys);
    let now = Timestamp::now();
    let per_task = 100_000u64;
    let started = Instant::now();
    let tasks: Vec<_> = (0..8u64)
        .map(|t| {
            let (tracker, keys, fields) = (tracker.clone(), keys.clone(), fields.clone());
            tokio::spawn(async move {
                let mut x = t * 7919 + 1;
                for _ in 0..per_task {
                    x ^= x << 13;
                    x ^= x >> 7;
                    x ^= x << 17;
                    let key = &keys[(x % 1000) as usize];
                    let at = now - SignedDuration::from_secs(((x >> 10) % 3600) as i64);
                    tracker.write(Op::Inc, key, at, &fields).await.unwrap();
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.unwrap();
    }
    let ingest = started.elapsed();
    let s0 = tracker.stats();
    println!("before flush: pending {} documents {}", s0.pending, s0.keys);
    tracker.flush().await.unwrap();
    let total = started.elapsed();
    let n = 8 * per_task;
    let s = tracker.stats();
    println!(
        "ingest {:.2} M events/s, with flush {:.2} M/s; tracked {} flushed {} ratio {:.0} batches {}",
        n as f64 / ingest.as_secs_f64() / 1e6,
        n as f64 / total.as_secs_f64() / 1e6,
        s.tracked,
        s.flushed,
        s.tracked as f64 / s.flushed as f64,
        s.batches
    );
}
