//! The buffered tracker writes what the unbuffered tracker writes: random events (all four
//! operations, several metrics, times spread over hours so that minutes meet in coarser
//! buckets) tracked both ways on two stores, then every bucket of every granularity compared.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::Rng;
use stats_backend_atomics::AtomicsStore;
use stats_buffer::{BufferedTracker, Coalescing, Options};
use stats_core::jiff::Timestamp;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{MetricStore, Number, Op, Values};

fn config() -> Config {
    Config::new()
        .system_index(true)
        .time_zone("Europe/Berlin")
        .expect("zone")
}

fn settings() -> Coalescing {
    Coalescing::new().options(
        Options::new()
            .interval(Duration::from_secs(3600))
            .expect("interval")
            .partitions(3)
            .expect("partitions"),
    )
}

async fn write(tracker: &Tracker, op: Op, key: &str, at: Timestamp, values: &Values) {
    match op {
        Op::Inc => tracker.track(key, at, values).await,
        Op::Set => tracker.assert(key, at, values).await,
        Op::Max => tracker.track_max(key, at, values).await,
        Op::Min => tracker.track_min(key, at, values).await,
    }
    .expect("the unbuffered tracker takes it");
}

/// Every bucket of `metrics` (and the system index) over the period, in every granularity.
async fn everything(
    tracker: &Tracker,
    metrics: &[String],
    from: Timestamp,
    to: Timestamp,
) -> Vec<String> {
    let mut out = Vec::new();
    for &g in tracker.config().granularity_list() {
        for metric in metrics {
            let series = tracker
                .values(metric, from, to, g, Blanks::Skip)
                .await
                .expect("values");
            out.push(format!("{metric} {g}: {series:?}"));
        }
        let system = tracker
            .system_values(from, to, g, Blanks::Skip)
            .await
            .expect("system");
        out.push(format!("system {g}: {system:?}"));
    }
    out
}

async fn run(seed: u64, ops: &[Op], events: usize) {
    let mut rng = Rng::new(seed);
    let direct = Tracker::new(Arc::new(AtomicsStore::new()), config());
    let store: Arc<dyn MetricStore> = Arc::new(AtomicsStore::new());
    let buffered = BufferedTracker::with(store.clone(), config(), settings()).expect("tracker");
    let metrics: Vec<String> = (0..3)
        .map(|i| stats_core::testkit::unique(&format!("m{i}")))
        .collect();
    let base: Timestamp = "2026-03-29T00:30:00Z".parse().expect("time"); // a DST change in Berlin
    let mut last = base;
    for _ in 0..events {
        let op = *rng.pick(ops);
        let metric = rng.pick(&metrics).clone();
        // Mostly a few minutes, sometimes anywhere in four hours.
        let minute = if rng.below(4) == 0 {
            rng.below(240)
        } else {
            rng.below(3)
        } as i64;
        let at =
            base + stats_core::jiff::SignedDuration::from_secs(minute * 60 + rng.below(60) as i64);
        last = last.max(at);
        let mut values = Values::new();
        values
            .insert("count", Number::Int(rng.below(9) as i64 - 2))
            .expect("field");
        if rng.below(2) == 0 {
            values
                .insert("amount", Number::Float(rng.below(400) as f64 / 4.0))
                .expect("field");
        }
        if rng.below(3) == 0 {
            let mut by = Values::new();
            by.insert(*rng.pick(&["eu", "us"]), Number::Int(rng.below(5) as i64))
                .expect("field");
            values.insert("by", by).expect("field");
        }
        write(&direct, op, &metric, at, &values).await;
        match op {
            Op::Inc => buffered.track(&metric, at, &values).await,
            Op::Set => buffered.assert(&metric, at, &values).await,
            Op::Max => buffered.track_max(&metric, at, &values).await,
            Op::Min => buffered.track_min(&metric, at, &values).await,
        }
        .expect("the buffered tracker takes it");
        if rng.below(50) == 0 {
            buffered.flush().await.expect("flush");
        }
    }
    let to = last + stats_core::jiff::SignedDuration::from_secs(3600);
    let reader_before = {
        // Through the buffer: pending events included.
        let mut out = Vec::new();
        for &g in buffered.config().granularity_list() {
            for metric in &metrics {
                let series = buffered
                    .values(metric, base, to, g, Blanks::Skip)
                    .await
                    .expect("values");
                out.push(format!("{metric} {g}: {series:?}"));
            }
            let system = buffered
                .system_values(base, to, g, Blanks::Skip)
                .await
                .expect("system");
            out.push(format!("system {g}: {system:?}"));
        }
        out
    };
    let want = everything(&direct, &metrics, base, to).await;
    let pending = buffered.stats().pending;
    assert_eq!(
        reader_before, want,
        "seed {seed}: reads through the buffer ({pending} pending)"
    );
    assert!(
        buffered.shutdown().await.is_empty(),
        "seed {seed}: everything written"
    );
    let stored = everything(&Tracker::new(store, config()), &metrics, base, to).await;
    assert_eq!(
        stored, want,
        "seed {seed}: what the buffered tracker stored"
    );
}

#[tokio::test]
async fn increments_equal_the_unbuffered_tracker() {
    for seed in 1..=20 {
        run(seed, &[Op::Inc], 300).await;
    }
}

#[tokio::test]
async fn every_operation_equals_the_unbuffered_tracker() {
    for seed in 1..=30 {
        run(seed, &[Op::Inc, Op::Inc, Op::Set, Op::Max, Op::Min], 300).await;
    }
}

/// Shutdown writes everything: 8 tasks x 100,000 events, then exact totals in the store.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_of_100_000_events_are_all_written_by_shutdown() {
    use stats_core::Fields;
    let store: Arc<dyn MetricStore> = Arc::new(AtomicsStore::new());
    let tracker = Arc::new(BufferedTracker::new(store.clone(), Config::new()).expect("tracker"));
    let base: Timestamp = "2026-11-29T09:00:00Z".parse().expect("time");
    let fields =
        Fields::from_values(&stats_core::values!({"count": 1, "amount": 3})).expect("fields");
    let tasks: Vec<_> = (0..8u64)
        .map(|task| {
            let (tracker, fields) = (tracker.clone(), fields.clone());
            tokio::spawn(async move {
                let mut rng = Rng::new(task + 1);
                for _ in 0..100_000 {
                    let key = format!("k{}", rng.below(10));
                    let at =
                        base + stats_core::jiff::SignedDuration::from_secs(rng.below(7200) as i64);
                    tracker
                        .write(Op::Inc, &key, at, &fields)
                        .await
                        .expect("write");
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
    assert!(tracker.shutdown().await.is_empty());
    let reader = Tracker::new(store, Config::new());
    let to = base + stats_core::jiff::SignedDuration::from_secs(7200);
    for g in ["1m", "1h", "1d", "1w", "1mo", "1q", "1y"] {
        let mut count = 0i64;
        let mut amount = 0i64;
        for k in 0..10 {
            let series = reader
                .values(
                    &format!("k{k}"),
                    base,
                    to,
                    g.parse().expect("granularity"),
                    Blanks::Skip,
                )
                .await
                .expect("values");
            count += series
                .total("count")
                .expect("total")
                .and_then(|n| n.as_i64())
                .unwrap_or(0);
            amount += series
                .total("amount")
                .expect("total")
                .and_then(|n| n.as_i64())
                .unwrap_or(0);
        }
        assert_eq!((count, amount), (800_000, 2_400_000), "{g}");
    }
    assert_eq!(tracker.stats().tracked, 800_000 * 2 * 7);
}

/// Hostile input through the buffered tracker: a typed error naming it and nothing kept, or
/// an exact round trip.
#[tokio::test]
async fn hostile_events_are_refused_or_round_trip() {
    let store: Arc<dyn MetricStore> = Arc::new(AtomicsStore::new());
    let tracker = BufferedTracker::new(store.clone(), Config::new()).expect("tracker");
    let at: Timestamp = "2026-11-29T10:00:00Z".parse().expect("time");
    let one = Values::from_flat([("n", Number::Int(1))]).expect("values");
    for bad in [
        "",
        "a::b",
        "tab\there",
        "__system__key__",
        &"x".repeat(10_000),
    ] {
        let err = tracker.track(bad, at, &one).await.unwrap_err();
        assert!(
            matches!(err, stats_core::Error::InvalidName { .. }),
            "{bad:?}: {err}"
        );
    }
    // The first and last instants jiff knows: bucketed, or refused with a typed error.
    for extreme in [Timestamp::MIN, Timestamp::MAX] {
        if let Err(err) = tracker.track("edge", extreme, &one).await {
            assert!(!err.to_string().is_empty());
        }
    }
    // Nothing to write: no error, nothing kept.
    tracker
        .track("empty", at, &Values::new())
        .await
        .expect("empty");
    // Numbers at their edges round trip exactly.
    let edges = Values::from_flat([
        ("max", Number::Int(i64::MAX)),
        ("min", Number::Int(i64::MIN)),
        ("big", Number::Int(1 << 53)),
        ("f", Number::Float(f64::MAX)),
    ])
    .expect("values");
    tracker.assert("edges", at, &edges).await.expect("assert");
    assert!(tracker.shutdown().await.is_empty());
    let reader = Tracker::new(store, Config::new());
    let series = reader
        .values("edges", at, at, "1h".parse().expect("g"), Blanks::Keep)
        .await
        .expect("values");
    assert_eq!(series.values[0], edges);
    assert!(
        reader
            .values("empty", at, at, "1h".parse().expect("g"), Blanks::Skip)
            .await
            .expect("values")
            .is_empty()
    );
}

/// A set and a later increment of one bucket cannot be folded (the sum would overflow), so
/// they reach the store as two writes of one batch, which the store refuses. Only the
/// increment is refused, as writing them one by one would: the set stays (it once took the
/// increment's refusal with it, leaving the hour, day, ... buckets empty).
#[tokio::test]
async fn a_refused_write_does_not_take_an_earlier_write_of_its_bucket_with_it() {
    let store = Arc::new(AtomicsStore::new());
    let refused = Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = refused.clone();
    let tracker = BufferedTracker::with(
        store.clone(),
        Config::new(),
        settings().on_refused(move |batch, error| {
            seen.lock()
                .unwrap()
                .push((batch.sorted_keys().len(), error.to_string()));
        }),
    )
    .unwrap();
    let ten: Timestamp = "2026-12-07T10:00:00Z".parse().unwrap();
    let five_past: Timestamp = "2026-12-07T10:05:00Z".parse().unwrap();
    tracker
        .assert("g", ten, &stats_core::values!({"n": i64::MAX}))
        .await
        .unwrap();
    tracker
        .track("g", five_past, &stats_core::values!({"n": 1}))
        .await
        .unwrap();
    tracker.flush().await.unwrap();
    let plain = Tracker::new(store, Config::new());
    let at = |g: &str, t: Timestamp| {
        let plain = &plain;
        let g = g.parse().unwrap();
        async move { plain.total("g", t, t, g, "n").await.unwrap() }
    };
    assert_eq!(at("1m", ten).await, Some(Number::Int(i64::MAX)));
    assert_eq!(at("1m", five_past).await, Some(Number::Int(1)));
    for g in ["1h", "1d", "1w", "1mo", "1q", "1y"] {
        assert_eq!(at(g, ten).await, Some(Number::Int(i64::MAX)), "{g}");
    }
    // The increment of the six coarser buckets, refused (in one batch of its own or several).
    let refused = refused.lock().unwrap().clone();
    assert_eq!(
        refused.iter().map(|(n, _)| n).sum::<usize>(),
        6,
        "{refused:?}"
    );
    assert!(
        refused.iter().all(|(_, e)| e.contains("overflow")),
        "{refused:?}"
    );
    assert!(tracker.shutdown().await.is_empty());
}
