//! Eight threads hammer the macros while the drain task runs every 5 ms: after they join and
//! the handle flushes, the totals summed over every bucket are exact.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{atomics_store, buffered};
use metrics::{counter, gauge, histogram};
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Granularity, Number};
use stats_metrics::StatsRecorder;

const THREADS: u64 = 8;
const ROUNDS: u64 = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_threads_and_a_drain_task_lose_nothing() {
    let store = atomics_store();
    let tracker = buffered(&store);
    let recorder = Arc::new(
        StatsRecorder::builder()
            .history(tracker.clone())
            .interval(Duration::from_millis(5))
            .unwrap()
            .buckets(&[0.5, 1.0])
            .unwrap()
            .build()
            .unwrap(),
    );
    let handle = recorder.handle();
    let from = Timestamp::now() - SignedDuration::from_mins(1);

    // Half way, every thread waits until a drain has written some of it: the drain task
    // really runs while the threads hammer.
    let drained = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = (0..THREADS)
        .map(|thread| {
            let (recorder, drained) = (recorder.clone(), drained.clone());
            tokio::task::spawn_blocking(move || {
                metrics::with_local_recorder(&*recorder, || {
                    let parity = (thread % 2).to_string();
                    for i in 0..ROUNDS {
                        if i == ROUNDS / 2 {
                            while !drained.load(Ordering::SeqCst) {
                                std::thread::sleep(Duration::from_millis(1));
                            }
                        }
                        counter!("c").increment(1);
                        counter!("cl", "parity" => parity.clone()).increment(2);
                        gauge!("level").increment(1.0);
                        gauge!("up").increment(0.25);
                        histogram!("hist").record((i % 8) as f64 * 0.25);
                        gauge!("level").decrement(1.0);
                    }
                });
            })
        })
        .collect();
    let day: Granularity = "1d".parse().unwrap();
    let mut polls = 0;
    loop {
        let seen = tracker
            .total("c", from, Timestamp::now(), day, "count")
            .await
            .unwrap();
        if seen.is_some_and(|n| n.as_f64() > 0.0) {
            break;
        }
        polls += 1;
        assert!(polls < 30_000, "no drain wrote anything in 30 s");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    drained.store(true, Ordering::SeqCst);
    for w in workers {
        w.await.unwrap();
    }
    handle.flush().await.unwrap();
    let to = Timestamp::now() + SignedDuration::from_mins(1);
    assert_eq!(handle.refusals().total(), 0, "{:?}", handle.refusals());

    // Summed over the day buckets the run touched, on the store itself.
    let plain = Tracker::new(store.clone(), Config::new());
    let total = |metric: &'static str, path: &'static str| {
        let plain = &plain;
        async move {
            plain
                .total(metric, from, to, day, path)
                .await
                .unwrap()
                .unwrap_or_else(|| panic!("{metric} {path}: nothing stored"))
        }
    };
    let n = THREADS * ROUNDS;
    assert_eq!(total("c", "count").await, Number::Int(n as i64));
    assert_eq!(total("cl", "parity=0.count").await, Number::Int(n as i64));
    assert_eq!(total("cl", "parity=1.count").await, Number::Int(n as i64));
    assert_eq!(total("hist", "count").await, Number::Int(n as i64));
    assert_eq!(total("hist", "le.+Inf").await, Number::Int(n as i64));
    // Per eight rounds: 0, 0.25, 0.5 are <= 0.5; two more are <= 1; the sum is 7.
    assert_eq!(
        total("hist", "le.5e-1").await,
        Number::Int((n / 8 * 3) as i64)
    );
    assert_eq!(total("hist", "le.1").await, Number::Int((n / 8 * 5) as i64));
    assert_eq!(total("hist", "sum").await.as_f64(), (n / 8 * 7) as f64);

    // The gauges' final values are in the last minute bucket written; the extremes held.
    let series = plain
        .values("level", from, to, "1m".parse().unwrap(), Blanks::Skip)
        .await
        .unwrap();
    let last = series.values.last().expect("a minute bucket of level");
    assert_eq!(
        last.number_at("last").map(Number::as_f64),
        Some(0.0),
        "{last:?}"
    );
    let days = plain
        .values("level", from, to, day, Blanks::Skip)
        .await
        .unwrap();
    for doc in &days.values {
        let max = doc.number_at("max").unwrap().as_f64();
        let min = doc.number_at("min").unwrap().as_f64();
        assert!((0.0..=THREADS as f64).contains(&max), "{doc:?}");
        assert!((0.0..=THREADS as f64).contains(&min), "{doc:?}");
    }
    let up = plain
        .values("up", from, to, "1m".parse().unwrap(), Blanks::Skip)
        .await
        .unwrap();
    let last = up.values.last().expect("a minute bucket of up");
    assert_eq!(
        last.number_at("last").map(Number::as_f64),
        Some(n as f64 * 0.25),
        "{last:?}"
    );
    assert_eq!(
        plain
            .values("hist", from, to, day, Blanks::Skip)
            .await
            .unwrap()
            .max("max", 1)
            .unwrap()[0]
            .map(Number::as_f64),
        Some(1.75)
    );

    let text = handle.render();
    for line in [
        format!("c {n}\n"),
        format!("cl{{parity=\"1\"}} {n}\n"),
        "level 0.0\n".to_owned(),
        format!("hist_count {n}\n"),
    ] {
        assert!(text.contains(&line), "missing {line:?} in\n{text}");
    }
    assert!(handle.shutdown().await.is_empty());
}
