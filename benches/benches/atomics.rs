//! The in-process store against raw primitives, in the same run.
//!
//! - `atomics/handle`: a counter handle's checked increment vs a raw `AtomicI64::fetch_add`.
//! - `atomics/keyed`: keyed increments (32-byte keys, 10,000 keys in rotation) through the sync
//!   path vs a raw single-thread `HashMap<String, i64>::get_mut`; on 1 thread, on 2 threads with
//!   distinct keys (a store of their 20,000 counters; raw: one private map per thread), on 2 threads with one shared key (raw:
//!   `fetch_add` on one shared atomic); and through the async `CounterStore` trait.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicI64, Ordering};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stats_backend_atomics::AtomicsStore;
use stats_benches::{keys_32, on_threads};
use stats_core::CounterStore;

const KEYS: usize = 10_000;

fn handle(c: &mut Criterion) {
    let mut group = c.benchmark_group("atomics/handle");
    group.throughput(Throughput::Elements(1));
    let store = AtomicsStore::new();
    let handle = store
        .counters()
        .handle("bench", "handle", 0)
        .expect("handle");
    group.bench_function(BenchmarkId::new("ours", "inc"), |b| {
        b.iter(|| black_box(handle.inc(black_box(1)).expect("inc")))
    });
    let raw = AtomicI64::new(0);
    group.bench_function(BenchmarkId::new("raw", "inc"), |b| {
        b.iter(|| black_box(raw.fetch_add(black_box(1), Ordering::Relaxed)))
    });
    group.finish();
}

fn keyed(c: &mut Criterion) {
    let mut group = c.benchmark_group("atomics/keyed");
    let keys = keys_32(0, KEYS);
    let store = AtomicsStore::new();
    for k in &keys {
        store.counters().inc("bench", k, 0, 0).expect("create");
    }
    let mut raw: HashMap<String, i64> = keys.iter().map(|k| (k.clone(), 0)).collect();

    group.throughput(Throughput::Elements(1));
    group.bench_function(BenchmarkId::new("ours", "1-thread"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.counters().inc("bench", &keys[i], 1, 0).expect("inc"))
        })
    });
    group.bench_function(BenchmarkId::new("raw", "1-thread"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            *raw.get_mut(keys[i].as_str()).expect("present") += 1;
        })
    });

    // Two threads, each on its own 10,000 keys, in a store holding just those (as the
    // 1-thread case's store holds just its keys, and each raw thread has a private map).
    let threaded = AtomicsStore::new();
    let per_thread: Vec<Vec<String>> = (0..2).map(|t| keys_32(t + 1, KEYS)).collect();
    for (t, keys) in per_thread.iter().enumerate() {
        for k in keys {
            threaded
                .counters()
                .inc(&format!("bench{t}"), k, 0, 0)
                .expect("create");
        }
    }
    let namespaces = ["bench0", "bench1"];
    group.throughput(Throughput::Elements(2));
    group.bench_function(BenchmarkId::new("ours", "2-threads-distinct"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, |t, iters| {
                let keys = &per_thread[t];
                for n in 0..iters as usize {
                    black_box(
                        threaded
                            .counters()
                            .inc(namespaces[t], &keys[n % KEYS], 1, 0)
                            .expect("inc"),
                    );
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "2-threads-distinct"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, |t, iters| {
                let keys = &per_thread[t];
                let mut map: HashMap<String, i64> = keys.iter().map(|k| (k.clone(), 0)).collect();
                for n in 0..iters as usize {
                    *map.get_mut(keys[n % KEYS].as_str()).expect("present") += 1;
                }
                black_box(map);
            })
        })
    });

    // Two threads on one shared key.
    let shared = AtomicI64::new(0);
    group.bench_function(BenchmarkId::new("ours", "2-threads-shared"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, |_, iters| {
                for _ in 0..iters {
                    black_box(store.counters().inc("bench", &keys[0], 1, 0).expect("inc"));
                }
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "2-threads-shared"), |b| {
        b.iter_custom(|iters| {
            on_threads(2, iters, |_, iters| {
                for _ in 0..iters {
                    black_box(shared.fetch_add(1, Ordering::Relaxed));
                }
            })
        })
    });

    // The async trait path, awaited on a current-thread runtime.
    group.throughput(Throughput::Elements(1));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    group.bench_function(BenchmarkId::new("ours", "async-trait"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = std::time::Instant::now();
                for n in 0..iters as usize {
                    let inc = CounterStore::inc(&store, "bench", &keys[n % KEYS], 1, 0);
                    black_box(inc.await.expect("inc"));
                }
                start.elapsed()
            })
        })
    });
    group.bench_function(BenchmarkId::new("raw", "async-trait"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            *raw.get_mut(keys[i].as_str()).expect("present") += 1;
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion();
    targets = handle, keyed
}
criterion_main!(benches);
