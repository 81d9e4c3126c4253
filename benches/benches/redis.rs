//! The Redis store against redis-benchmark on the same server, in the same run.
//!
//! Needs `STATS_BENCH_REDIS_URL` (`cargo xtask bench redis` starts a throwaway server and sets
//! it) and `redis-benchmark` (`STATS_REDIS_BENCHMARK_BIN`, else on the PATH).
//!
//! - `redis/hincrby`, case `batched-field-increments`: raw is `redis-benchmark -P 64` running
//!   `HINCRBY` on random fields (50 clients, 64 commands in flight each); ours applies batches
//!   of 1,000 bucket-field increments (10 buckets x 100 fields) from 8 concurrent tasks. Both are
//!   counted in field increments per second.
//! - `redis/batch-size`, cases `10`, `100`, `1000`: the same 1,000 increments (new buckets,
//!   10 leaves each, half of them nested) sent in batches of that many updates from 8 concurrent
//!   tasks, counted in field increments per second. The work per increment is the same in every
//!   case, so the rate must not fall as batches grow (a script that scans per new field would);
//!   raw is redis-benchmark's HINCRBY rate.
//! - `redis/track`, case `7-granularities-3-fields`: tracker events per second (each event is
//!   21 field increments in one script call) from 8 concurrent tasks; raw is the rate of events
//!   made of 21 redis-benchmark HINCRBYs each (pipelined, random fields).

use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stats_backend_redis::{RedisConfig, RedisStore};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Config, Tracker};
use stats_core::{Batch, Granularity, Key, MetricStore, Values, values};

const BATCH: u64 = 1_000;
const TASKS: u64 = 8;

fn url() -> String {
    stats_benches::server_url("STATS_BENCH_REDIS_URL", "redis")
}

fn host_port() -> (String, String) {
    let url = url();
    let rest = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, port) = rest.rsplit_once(':').expect("redis://host:port/");
    (host.to_owned(), port.to_owned())
}

/// The time redis-benchmark takes for `ops` pipelined HINCRBY commands, from the rate it reports
/// (which excludes process start-up); runs of fewer than 10,000 commands are measured as 10,000
/// and scaled.
fn redis_benchmark(ops: u64) -> Duration {
    let measured = ops.max(10_000);
    let bin =
        std::env::var("STATS_REDIS_BENCHMARK_BIN").unwrap_or_else(|_| "redis-benchmark".into());
    let (host, port) = host_port();
    let out = Command::new(&bin)
        .args([
            "-h", &host, "-p", &port, "-P", "64", "-c", "50", "-r", "100000", "-q",
        ])
        .args([
            "-n",
            &measured.to_string(),
            "HINCRBY",
            "rawbench:{h}",
            "__rand_int__",
            "1",
        ])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {bin}: {e}"));
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "\n");
    let rps: f64 = text
        .lines()
        .filter_map(|l| l.split(": ").nth(1))
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|n| n.parse().ok())
        .next_back()
        .unwrap_or_else(|| panic!("no rate in redis-benchmark output: {text}"));
    Duration::from_secs_f64(ops as f64 / rps)
}

fn runtime() -> tokio::runtime::Runtime {
    stats_benches::runtime()
}

fn hincrby(c: &mut Criterion) {
    let rt = runtime();
    let store = Arc::new(rt.block_on(async {
        let config = RedisConfig::from_url(&url())
            .expect("url")
            .key_prefix("bench")
            .expect("key prefix");
        RedisStore::connect(config).await.expect("connect")
    }));
    let hour: Granularity = "1h".parse().expect("granularity");
    let mut doc = Values::new();
    for f in 0..100 {
        doc.insert(format!("f{f}"), 1).expect("field");
    }
    let mut batch = Batch::new();
    let keys: Vec<Key> = (0..10)
        .map(|i| Key::bucket("bench", hour, i * 3600).expect("key"))
        .collect();
    batch.inc(keys, &doc).expect("batch");
    assert_eq!(batch.len() as u64, BATCH);
    let batch = Arc::new(batch);

    let mut group = c.benchmark_group("redis/hincrby");
    group.throughput(Throughput::Elements(BATCH));
    group.bench_function(BenchmarkId::new("ours", "batched-field-increments"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let (store, batch) = (store.clone(), batch.clone());
                        let n = iters / TASKS + u64::from(t < iters % TASKS);
                        tokio::spawn(async move {
                            for _ in 0..n {
                                store.apply(&batch).await.expect("apply");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "batched-field-increments"), |b| {
        b.iter_custom(|iters| redis_benchmark(iters * BATCH))
    });
    group.finish();

    let mut group = c.benchmark_group("redis/batch-size");
    group.throughput(Throughput::Elements(BATCH));
    let minute: Granularity = "1m".parse().expect("granularity");
    let leaves = values!({
        "a": 1, "b": 2, "c": 3, "d": 4, "e": 5,
        "by": {"v": 1, "w": 2, "x": 3, "y": 4, "z": 5}
    });
    let per_key = leaves.flatten().len() as u64;
    // Every batch writes buckets no batch wrote before.
    let next_bucket = Arc::new(AtomicI64::new(0));
    for size in [10_u64, 100, 1_000] {
        group.bench_function(BenchmarkId::new("ours", size), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    let tasks: Vec<_> = (0..TASKS)
                        .map(|t| {
                            let (store, next, leaves) =
                                (store.clone(), next_bucket.clone(), leaves.clone());
                            let n = iters / TASKS + u64::from(t < iters % TASKS);
                            tokio::spawn(async move {
                                for _ in 0..n * (BATCH / size) {
                                    let keys = size / per_key;
                                    let first = next.fetch_add(keys as i64, Ordering::Relaxed);
                                    let keys = (first..first + keys as i64).map(|i| {
                                        Key::bucket("batchsize", minute, i * 60).expect("key")
                                    });
                                    let mut batch = Batch::new();
                                    batch.inc(keys, &leaves).expect("batch");
                                    store.apply(&batch).await.expect("apply");
                                }
                            })
                        })
                        .collect();
                    for t in tasks {
                        t.await.expect("task");
                    }
                    start.elapsed()
                })
            })
        });
        group.bench_function(BenchmarkId::new("raw", size), |b| {
            b.iter_custom(|iters| redis_benchmark(iters * BATCH))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("redis/track");
    group.throughput(Throughput::Elements(1));
    let tracker = Arc::new(Tracker::new(store.clone(), Config::new()));
    let base = 1_714_550_400_i64;
    group.bench_function(BenchmarkId::new("ours", "7-granularities-3-fields"), |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                let tasks: Vec<_> = (0..TASKS)
                    .map(|t| {
                        let tracker = tracker.clone();
                        let n = iters / TASKS + u64::from(t < iters % TASKS);
                        tokio::spawn(async move {
                            let doc = values!({"count": 1, "amount": 2.5, "by": {"eu": 1}});
                            for i in 0..n as i64 {
                                let at =
                                    Timestamp::from_second(base + (i % 1000) * 60).expect("time");
                                tracker.track("orders", at, &doc).await.expect("track");
                            }
                        })
                    })
                    .collect();
                for t in tasks {
                    t.await.expect("task");
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "7-granularities-3-fields"), |b| {
        b.iter_custom(|iters| redis_benchmark(iters * 21))
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion().sample_size(10).measurement_time(Duration::from_secs(4));
    targets = hincrby
}
criterion_main!(benches);
