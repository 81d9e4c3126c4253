//! `track` on the in-process store (7 granularities x 3 fields, one batch per event) beside
//! the same store's raw keyed counter increment, in the same run.

use std::hint::black_box;
use std::sync::Arc;
use std::time::Instant;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use stats_backend_atomics::AtomicsStore;
use stats_benches::keys_32;
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Config, Tracker};
use stats_core::values;

const KEYS: usize = 10_000;
/// Events rotate over this many distinct minutes (so minute buckets vary as in real traffic).
const MINUTES: i64 = 1_000;

fn track(c: &mut Criterion) {
    let mut group = c.benchmark_group("tracker/track");
    group.throughput(Throughput::Elements(1));
    let store = Arc::new(AtomicsStore::new());
    let tracker = Tracker::new(store.clone(), Config::new());
    assert_eq!(tracker.config().granularity_list().len(), 7);
    let doc = values!({"count": 1, "amount": 2.5, "by": {"eu": 1}});
    let base = 1_714_550_400_i64; // 2024-05-01T08:00:00Z
    let times: Vec<Timestamp> = (0..MINUTES)
        .map(|m| Timestamp::from_second(base + m * 60 + 7).expect("in range"))
        .collect();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    group.bench_function(BenchmarkId::new("ours", "7-granularities-3-fields"), |b| {
        b.iter_custom(|iters| {
            runtime.block_on(async {
                let start = Instant::now();
                for n in 0..iters as usize {
                    let at = times[n % times.len()];
                    tracker.track("orders", at, &doc).await.expect("track");
                }
                start.elapsed()
            })
        })
    });

    let keys = keys_32(0, KEYS);
    for k in &keys {
        store.counters().inc("bench", k, 0, 0).expect("create");
    }
    group.bench_function(BenchmarkId::new("raw", "7-granularities-3-fields"), |b| {
        let mut i = 0;
        b.iter(|| {
            i = (i + 1) % KEYS;
            black_box(store.counters().inc("bench", &keys[i], 1, 0).expect("inc"))
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion();
    targets = track
}
criterion_main!(benches);
