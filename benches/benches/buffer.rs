//! The buffered tracker (`stats-buffer`) beside the unbuffered tracker, on the in-process
//! store and on Redis, in the same run.
//!
//! Needs `STATS_BENCH_REDIS_URL` (`cargo xtask bench buffer` starts a throwaway server and
//! sets it).
//!
//! Workload: 8 tasks; the default 7 granularities; 3 integer fields per event; 1,000 metric
//! keys; event times spread pseudo-randomly (fixed seeds) over the hour before a fixed instant
//! at half past an hour, so events fall in 60 minute buckets and 2 hour buckets. Every figure
//! is in events per second.
//!
//! - groups `buffer/atomics` and `buffer/redis`, case `ingest`: ours is
//!   `BufferedTracker::write` (fields flattened once, up front) of rounds of 1,000,000 events
//!   (125,000 per task) into memory, with interval flushes off and a flush after each round
//!   outside the measured time; raw is the unbuffered `Tracker::track`, one store batch of 21
//!   leaf updates per event.
//! - same groups, case `ingest-then-flush`: ours is a round of 1,000,000 events and then
//!   `flush()`, with the default settings (so the background 1 s interval flushes that fall
//!   inside a round are measured too); raw is the unbuffered tracker again.
//! - group `buffer/atomics`, case `ingest-one-minute`: as `ingest`, with every event in the
//!   last minute of that hour (one pending document per metric instead of up to sixty), to
//!   show what the number of pending documents per metric costs at ingest.
//! - figures, printed and (under `cargo xtask bench`) added to the summary: the write reduction
//!   (`stats().tracked / stats().flushed`) of both Redis trackers, and the largest
//!   `stats().pending` sampled while 1,000,000 events go into Redis through a tracker with a
//!   small `max_pending` (20,000 entries, and `max_size` 5,000 so that a partition flushes
//!   when it holds its share: reaching `max_pending` alone does not start a flush, so writers
//!   would wait for the next interval).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use stats_backend_atomics::AtomicsStore;
use stats_backend_redis::{RedisConfig, RedisStore};
use stats_benches::{figure, keys_32};
use stats_buffer::{BufferedTracker, Coalescing, Options};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Config, Tracker};
use stats_core::{Fields, MetricStore, Op, Values, values};
use tokio::runtime::Runtime;

const TASKS: usize = 8;
const KEYS: usize = 1_000;
/// Events per measured round of the buffered cases.
const ROUND: usize = 1_000_000;
const PER_TASK: usize = ROUND / TASKS;
/// Distinct field values per event (so sums differ per leaf).
const DOCS: usize = 16;
/// Tasks yield to the runtime this often, as a producer that awaits anything would (so the
/// partitions' flush tasks get their turn on the two worker threads).
const YIELD_EVERY: usize = 1_024;
/// The memory bound of the pending-sampling run, in pending entries.
const SMALL_MAX_PENDING: usize = 20_000;
/// Leaf updates the unbuffered tracker sends per event: 3 fields x 7 granularities.
const LEAVES_PER_EVENT: u64 = 21;

/// One event: a metric key, an instant and one of the documents.
#[derive(Clone, Copy)]
struct Event {
    key: u16,
    at: Timestamp,
    doc: u8,
}

/// The events of every task and the documents they carry, built once.
struct Workload {
    keys: Vec<String>,
    /// `ROUND` events, `PER_TASK` per task.
    events: Vec<Vec<Event>>,
    values: Vec<Values>,
    fields: Vec<Fields>,
}

/// xorshift64*: deterministic and cheap.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

impl Workload {
    /// Events over the `spread` seconds before half past an hour (for `3_600`: two hour
    /// buckets and sixty minute ones).
    fn new(spread: u64) -> Self {
        let now: Timestamp = "2026-11-29T10:30:00Z".parse().expect("instant");
        let now = now.as_second();
        let events = (0..TASKS)
            .map(|task| {
                let mut state = 0x9e37_79b9_7f4a_7c15_u64 ^ (task as u64 + 1);
                (0..PER_TASK)
                    .map(|_| {
                        let r = next(&mut state);
                        let back = (r >> 32) % spread;
                        Event {
                            key: (r % KEYS as u64) as u16,
                            at: Timestamp::from_second(now - 1 - back as i64).expect("in range"),
                            doc: ((r >> 16) % DOCS as u64) as u8,
                        }
                    })
                    .collect()
            })
            .collect();
        let values: Vec<Values> = (0..DOCS as i64)
            .map(|d| values!({"count": 1, "amount": 100 + d * 7, "items": 1 + d % 4}))
            .collect();
        let fields = values
            .iter()
            .map(|v| Fields::from_values(v).expect("fields"))
            .collect();
        Workload {
            keys: keys_32(0, KEYS),
            events,
            values,
            fields,
        }
    }
}

/// One round: every task writes its `PER_TASK` events through the buffered tracker.
async fn buffered_round(tracker: &Arc<BufferedTracker>, work: &Arc<Workload>) {
    let tasks: Vec<_> = (0..TASKS)
        .map(|t| {
            let (tracker, work) = (tracker.clone(), work.clone());
            tokio::spawn(async move {
                for (i, e) in work.events[t].iter().enumerate() {
                    let (key, fields) = (&work.keys[e.key as usize], &work.fields[e.doc as usize]);
                    tracker
                        .write(Op::Inc, key, e.at, fields)
                        .await
                        .expect("write");
                    if i % YIELD_EVERY == YIELD_EVERY - 1 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// `total` events through the unbuffered tracker, spread over the tasks, each task going round
/// its own events.
async fn unbuffered(tracker: &Arc<Tracker>, work: &Arc<Workload>, total: u64) {
    let tasks: Vec<_> = (0..TASKS as u64)
        .map(|t| {
            let (tracker, work) = (tracker.clone(), work.clone());
            let n = total / TASKS as u64 + u64::from(t < total % TASKS as u64);
            tokio::spawn(async move {
                let events = &work.events[t as usize];
                for i in 0..n as usize {
                    let e = events[i % events.len()];
                    let (key, values) = (&work.keys[e.key as usize], &work.values[e.doc as usize]);
                    tracker.track(key, e.at, values).await.expect("track");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// Measures rounds of the buffered tracker: each round's ingest, and its flush when `flush`
/// (else the flush runs after the round, outside the measured time).
fn buffered_rounds(
    rt: &Runtime,
    tracker: &Arc<BufferedTracker>,
    work: &Arc<Workload>,
    rounds: u64,
    flush: bool,
) -> Duration {
    rt.block_on(async {
        let mut measured = Duration::ZERO;
        for _ in 0..rounds {
            let start = Instant::now();
            buffered_round(tracker, work).await;
            if flush {
                tracker.flush().await.expect("flush");
                measured += start.elapsed();
            } else {
                measured += start.elapsed();
                tracker.flush().await.expect("flush");
            }
        }
        measured
    })
}

/// The coalescing settings with interval flushes off: only the explicit flush after each round
/// (and a partition reaching `max_size`) writes.
fn no_interval() -> Coalescing {
    let defaults = Coalescing::new();
    let options = defaults
        .get_options()
        .clone()
        .interval(Duration::from_secs(3_600))
        .expect("interval");
    defaults.options(options)
}

/// The cases of one store: `ingest` and `ingest-then-flush` of `work`, and `ingest-one-minute`
/// of `one_minute` when given, ours beside raw. Returns the buffered trackers of the first two
/// (for their counters).
fn store_group(
    c: &mut Criterion,
    rt: &Runtime,
    name: &str,
    store: &Arc<dyn MetricStore>,
    work: &Arc<Workload>,
    one_minute: Option<&Arc<Workload>>,
) -> [Arc<BufferedTracker>; 2] {
    let _guard = rt.enter();
    let ingest = Arc::new(
        BufferedTracker::with(store.clone(), Config::new(), no_interval()).expect("tracker"),
    );
    let flushed = Arc::new(BufferedTracker::new(store.clone(), Config::new()).expect("tracker"));
    let raw = Arc::new(Tracker::new(store.clone(), Config::new()));
    assert_eq!(raw.config().granularity_list().len(), 7);

    let minute_tracker = Arc::new(
        BufferedTracker::with(store.clone(), Config::new(), no_interval()).expect("tracker"),
    );
    let mut cases = vec![
        ("ingest", &ingest, false, work),
        ("ingest-then-flush", &flushed, true, work),
    ];
    if let Some(one_minute) = one_minute {
        cases.push(("ingest-one-minute", &minute_tracker, false, one_minute));
    }
    let mut group = c.benchmark_group(format!("buffer/{name}"));
    for (case, tracker, flush, work) in cases {
        group.sampling_mode(SamplingMode::Flat);
        group.throughput(Throughput::Elements(ROUND as u64));
        group.bench_function(BenchmarkId::new("ours", case), |b| {
            b.iter_custom(|rounds| buffered_rounds(rt, tracker, work, rounds, flush))
        });
        group.sampling_mode(SamplingMode::Auto);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("raw", case), |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    unbuffered(&raw, work, iters).await;
                    start.elapsed()
                })
            })
        });
    }
    group.finish();
    assert!(rt.block_on(minute_tracker.shutdown()).is_empty());
    [ingest, flushed]
}

/// Prints (and reports to the xtask) the write reduction of `tracker`.
fn write_reduction(name: &str, what: &str, tracker: &BufferedTracker) {
    let stats = tracker.stats();
    if stats.flushed == 0 {
        println!("{name}: not measured in this run (case filtered out)");
        return;
    }
    let events = stats.tracked / LEAVES_PER_EVENT;
    figure(
        name,
        stats.tracked as f64 / stats.flushed as f64,
        "x fewer leaf writes",
        &format!(
            "{what}: {events} events, {} leaf updates tracked, {} sent in {} batches",
            stats.tracked, stats.flushed, stats.batches
        ),
    );
}

/// 1,000,000 events into Redis through a tracker whose `max_pending` is small, while a thread
/// samples `stats().pending`; reports the largest sample, the rate and the write reduction.
fn bounded_pending(rt: &Runtime, store: &Arc<dyn MetricStore>, work: &Arc<Workload>) {
    let _guard = rt.enter();
    let defaults = Coalescing::new();
    let options: Options = defaults
        .get_options()
        .clone()
        .max_pending(SMALL_MAX_PENDING)
        .and_then(|o| o.max_size(SMALL_MAX_PENDING / 4))
        .expect("max_pending");
    let tracker = Arc::new(
        BufferedTracker::with(store.clone(), Config::new(), defaults.options(options))
            .expect("tracker"),
    );
    let stop = Arc::new(AtomicBool::new(false));
    let max = Arc::new(AtomicUsize::new(0));
    let samples = Arc::new(AtomicUsize::new(0));
    let sampler = {
        let (tracker, stop, max, samples) =
            (tracker.clone(), stop.clone(), max.clone(), samples.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                max.fetch_max(tracker.stats().pending, Ordering::Relaxed);
                samples.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(200));
            }
        })
    };
    let elapsed = rt.block_on(async {
        let start = Instant::now();
        buffered_round(&tracker, work).await;
        tracker.flush().await.expect("flush");
        start.elapsed()
    });
    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler");
    let stats = tracker.stats();
    assert_eq!(stats.pending, 0, "everything written after the flush");
    figure(
        "redis max pending sampled",
        max.load(Ordering::Relaxed) as f64,
        "pending entries",
        &format!(
            "max_pending {SMALL_MAX_PENDING}, backpressure; {} samples while {ROUND} events \
             went in at {:.0} events/s (flush included)",
            samples.load(Ordering::Relaxed),
            ROUND as f64 / elapsed.as_secs_f64()
        ),
    );
    write_reduction(
        "redis write reduction, small max_pending",
        &format!("max_pending {SMALL_MAX_PENDING}"),
        &tracker,
    );
    assert!(rt.block_on(tracker.shutdown()).is_empty());
}

fn buffer(c: &mut Criterion) {
    let rt = stats_benches::runtime();
    let work = Arc::new(Workload::new(3_600));
    let one_minute = Arc::new(Workload::new(60));

    let atomics: Arc<dyn MetricStore> = Arc::new(AtomicsStore::new());
    for tracker in store_group(c, &rt, "atomics", &atomics, &work, Some(&one_minute)) {
        assert!(rt.block_on(tracker.shutdown()).is_empty());
    }

    let redis: Arc<dyn MetricStore> = Arc::new(rt.block_on(async {
        let url = stats_benches::server_url("STATS_BENCH_REDIS_URL", "buffer");
        let config = RedisConfig::from_url(&url)
            .expect("url")
            .key_prefix("bufbench")
            .expect("key prefix");
        RedisStore::connect(config).await.expect("connect")
    }));
    let [ingest, flushed] = store_group(c, &rt, "redis", &redis, &work, None);
    write_reduction(
        "redis write reduction, default settings",
        "ingest-then-flush (1 s interval flushes and a flush per 1,000,000 events)",
        &flushed,
    );
    write_reduction(
        "redis write reduction, one flush per round",
        "ingest (a flush per 1,000,000 events, no interval flushes)",
        &ingest,
    );
    for tracker in [ingest, flushed] {
        assert!(rt.block_on(tracker.shutdown()).is_empty());
    }
    bounded_pending(&rt, &redis, &work);
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(5));
    targets = buffer
}
criterion_main!(benches);
