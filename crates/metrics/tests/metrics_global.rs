//! The global recorder: set once per process, so this file has one test. Installed beside
//! `metrics-exporter-prometheus`'s recorder, plain macros reach both; a second install fails;
//! shutdown writes everything.

mod common;

use common::{atomics_store, buffered};
use metrics::{counter, gauge, histogram};
use metrics_exporter_prometheus::PrometheusBuilder;
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::tracker::{Config, Tracker};
use stats_core::{Granularity, Number};
use stats_metrics::StatsRecorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_beside_the_prometheus_exporter() {
    let store = atomics_store();
    let tracker = buffered(&store);
    let from = Timestamp::now() - SignedDuration::from_mins(1);
    let exporter = PrometheusBuilder::new().build_recorder();
    let exporter_handle = exporter.handle();
    let handle = StatsRecorder::builder()
        .history(tracker.clone())
        .build()
        .unwrap()
        .install_with(exporter)
        .unwrap();

    // Plain macros, no local recorder: the global one.
    counter!("global_requests", "route" => "/x").increment(3);
    counter!("global_requests", "route" => "/x").increment(4);
    gauge!("global_level").set(2.5);
    histogram!("global_latency").record(0.25);

    let ours = handle.render();
    assert!(ours.contains("global_requests{route=\"/x\"} 7\n"), "{ours}");
    assert!(ours.contains("global_level 2.5\n"), "{ours}");
    assert!(ours.contains("global_latency_count 1\n"), "{ours}");
    let theirs = exporter_handle.render();
    assert!(
        theirs.contains("global_requests{route=\"/x\"} 7"),
        "{theirs}"
    );
    assert!(theirs.contains("global_level 2.5"), "{theirs}");

    // One global recorder per process.
    let second = StatsRecorder::builder().manual().build().unwrap().install();
    let err = second.expect_err("a second install must fail").to_string();
    assert!(err.contains("already installed"), "{err}");
    let third = stats_metrics::install(buffered(&atomics_store()));
    let err = third
        .expect_err("the one-line install must fail too")
        .to_string();
    assert!(err.contains("already installed"), "{err}");
    let other = PrometheusBuilder::new().build_recorder();
    let err = StatsRecorder::builder()
        .manual()
        .build()
        .unwrap()
        .install_with(other)
        .expect_err("install_with must fail too")
        .to_string();
    assert!(err.contains("already installed"), "{err}");
    // The failed installs changed nothing.
    counter!("global_requests", "route" => "/x").increment(1);

    assert!(handle.shutdown().await.is_empty());
    let to = Timestamp::now() + SignedDuration::from_mins(1);
    let plain = Tracker::new(store.clone(), Config::new());
    let day: Granularity = "1d".parse().unwrap();
    assert_eq!(
        plain
            .total("global_requests", from, to, day, "route=/x.count")
            .await
            .unwrap(),
        Some(Number::Int(8))
    );
    assert_eq!(
        plain
            .total("global_latency", from, to, day, "le.25e-2")
            .await
            .unwrap(),
        Some(Number::Int(1))
    );
    let level = plain
        .values(
            "global_level",
            from,
            to,
            day,
            stats_core::tracker::Blanks::Skip,
        )
        .await
        .unwrap();
    assert_eq!(
        level
            .values
            .last()
            .and_then(|d| d.number_at("last"))
            .map(Number::as_f64),
        Some(2.5)
    );
    // After shutdown: still exposed (both recorders), not stored.
    counter!("global_requests", "route" => "/x").increment(100);
    assert!(
        handle
            .render()
            .contains("global_requests{route=\"/x\"} 108\n")
    );
    assert!(
        exporter_handle
            .render()
            .contains("global_requests{route=\"/x\"} 108")
    );
    assert!(handle.shutdown().await.is_empty());
    assert_eq!(
        plain
            .total("global_requests", from, to, day, "route=/x.count")
            .await
            .unwrap(),
        Some(Number::Int(8))
    );
}
