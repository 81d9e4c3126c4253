//! Every macro kind through the recorder gives exact series values in every granularity, on
//! the in-process store and on Redis (`STATS_TEST_REDIS_URL`; `cargo xtask it redis` starts a
//! server and sets it). Drains at fixed instants (a manual recorder); each bucket is read
//! through the buffered tracker and by a fresh unbuffered tracker on the same store.

mod common;

use std::sync::Arc;

use common::{N, assert_bucket, atomics_store, buffered, redis_store, t};
use metrics::{counter, gauge, histogram};
use stats_core::MetricStore;
use stats_metrics::{Reason, StatsRecorder};

use N::{F, I};

async fn every_kind(store: Arc<dyn MetricStore>) {
    let tracker = buffered(&store);
    let recorder = StatsRecorder::builder()
        .history(tracker.clone())
        .manual()
        .buckets(&[0.25, 0.5, 1.0])
        .unwrap()
        .buckets_for("lat", &[0.5, 2.5, 10.0])
        .unwrap()
        .build()
        .unwrap();
    let handle = recorder.handle();
    // Minute A and B in one hour, C in the next hour of that day, D on the next day.
    let a = t("2025-03-10T10:15:10Z");
    let b = t("2025-03-10T10:16:59.999Z");
    let c = t("2025-03-10T11:05:00Z");
    let d = t("2025-03-11T00:00:00Z");

    metrics::with_local_recorder(&recorder, || {
        counter!("req").increment(3);
        counter!("req").increment(2);
        counter!("req", "route" => "/a", "method" => "GET").increment(4);
        counter!("abs").absolute(10);
        let g = gauge!("g");
        g.set(5.0);
        g.increment(2.5);
        g.decrement(10.0);
        g.set(1.25);
        gauge!("idle").set(3.0);
        for v in [0.25, 0.5, 0.75, 1.5, 3.0] {
            histogram!("h").record(v);
        }
        for v in [0.5, 2.5, 12.25] {
            histogram!("lat").record(v);
        }
    });
    handle.drain(a).await.unwrap();

    metrics::with_local_recorder(&recorder, || {
        counter!("req").increment(7);
        counter!("abs").absolute(15);
        // Lower than the counter's value: no change.
        counter!("abs").absolute(12);
        let g = gauge!("g");
        g.increment(0.5);
        g.set(-4.0);
        g.set(2.0);
        histogram!("h").record(0.5);
    });
    handle.drain(b).await.unwrap();
    // A second drain in the same buckets with nothing new writes nothing more.
    handle.drain(b).await.unwrap();

    metrics::with_local_recorder(&recorder, || {
        counter!("req").increment(1);
        histogram!("h").record(0.25);
    });
    handle.drain(c).await.unwrap();

    metrics::with_local_recorder(&recorder, || {
        counter!("req").increment(100);
    });
    handle.drain(d).await.unwrap();
    tracker.flush().await.unwrap();
    assert_eq!(handle.refusals().total(), 0, "{:?}", handle.refusals());

    let check =
        |metric: &'static str, at, granularity: &'static str, expected: Vec<(&'static str, N)>| {
            let (tracker, store) = (tracker.clone(), store.clone());
            async move { assert_bucket(&tracker, &store, metric, at, granularity, &expected).await }
        };

    // Counters: increments per bucket; labels sorted by name into path levels.
    check(
        "req",
        a,
        "1m",
        vec![("count", I(5)), ("method=GET.route=/a.count", I(4))],
    )
    .await;
    check("req", b, "1m", vec![("count", I(7))]).await;
    check(
        "req",
        a,
        "1h",
        vec![("count", I(12)), ("method=GET.route=/a.count", I(4))],
    )
    .await;
    check("req", c, "1m", vec![("count", I(1))]).await;
    check("req", c, "1h", vec![("count", I(1))]).await;
    check(
        "req",
        a,
        "1d",
        vec![("count", I(13)), ("method=GET.route=/a.count", I(4))],
    )
    .await;
    check("req", d, "1d", vec![("count", I(100))]).await;
    check(
        "req",
        a,
        "1mo",
        vec![("count", I(113)), ("method=GET.route=/a.count", I(4))],
    )
    .await;
    check("abs", a, "1m", vec![("count", I(10))]).await;
    check("abs", b, "1m", vec![("count", I(5))]).await;
    check("abs", a, "1d", vec![("count", I(15))]).await;

    // Gauges: last, and the extremes held in each bucket (a new bucket starts at the value).
    check(
        "g",
        a,
        "1m",
        vec![("last", F(1.25)), ("max", F(7.5)), ("min", F(-2.5))],
    )
    .await;
    check(
        "g",
        b,
        "1m",
        vec![("last", F(2.0)), ("max", F(2.0)), ("min", F(-4.0))],
    )
    .await;
    check(
        "g",
        a,
        "1h",
        vec![("last", F(2.0)), ("max", F(7.5)), ("min", F(-4.0))],
    )
    .await;
    // Untouched through new buckets: written there with its value.
    check(
        "g",
        c,
        "1m",
        vec![("last", F(2.0)), ("max", F(2.0)), ("min", F(2.0))],
    )
    .await;
    check(
        "g",
        c,
        "1h",
        vec![("last", F(2.0)), ("max", F(2.0)), ("min", F(2.0))],
    )
    .await;
    check(
        "g",
        d,
        "1d",
        vec![("last", F(2.0)), ("max", F(2.0)), ("min", F(2.0))],
    )
    .await;
    check(
        "g",
        a,
        "1d",
        vec![("last", F(2.0)), ("max", F(7.5)), ("min", F(-4.0))],
    )
    .await;
    for at in [a, b, c, d] {
        check(
            "idle",
            at,
            "1m",
            vec![("last", F(3.0)), ("max", F(3.0)), ("min", F(3.0))],
        )
        .await;
    }

    // Histograms: count, sum, extremes and cumulative buckets; le.+Inf is the count.
    check(
        "h",
        a,
        "1m",
        vec![
            ("count", I(5)),
            ("sum", F(6.0)),
            ("min", F(0.25)),
            ("max", F(3.0)),
            ("le.25e-2", I(1)),
            ("le.5e-1", I(2)),
            ("le.1", I(3)),
            ("le.+Inf", I(5)),
        ],
    )
    .await;
    check(
        "h",
        b,
        "1m",
        vec![
            ("count", I(1)),
            ("sum", F(0.5)),
            ("min", F(0.5)),
            ("max", F(0.5)),
            ("le.25e-2", I(0)),
            ("le.5e-1", I(1)),
            ("le.1", I(1)),
            ("le.+Inf", I(1)),
        ],
    )
    .await;
    check(
        "h",
        a,
        "1h",
        vec![
            ("count", I(6)),
            ("sum", F(6.5)),
            ("min", F(0.25)),
            ("max", F(3.0)),
            ("le.25e-2", I(1)),
            ("le.5e-1", I(3)),
            ("le.1", I(4)),
            ("le.+Inf", I(6)),
        ],
    )
    .await;
    check(
        "h",
        c,
        "1h",
        vec![
            ("count", I(1)),
            ("sum", F(0.25)),
            ("min", F(0.25)),
            ("max", F(0.25)),
            ("le.25e-2", I(1)),
            ("le.5e-1", I(1)),
            ("le.1", I(1)),
            ("le.+Inf", I(1)),
        ],
    )
    .await;
    check(
        "h",
        a,
        "1d",
        vec![
            ("count", I(7)),
            ("sum", F(6.75)),
            ("min", F(0.25)),
            ("max", F(3.0)),
            ("le.25e-2", I(2)),
            ("le.5e-1", I(4)),
            ("le.1", I(5)),
            ("le.+Inf", I(7)),
        ],
    )
    .await;
    check("h", d, "1d", vec![]).await;
    // Custom buckets of one histogram.
    check(
        "lat",
        a,
        "1d",
        vec![
            ("count", I(3)),
            ("sum", F(15.25)),
            ("min", F(0.5)),
            ("max", F(12.25)),
            ("le.5e-1", I(1)),
            ("le.25e-1", I(2)),
            ("le.10", I(2)),
            ("le.+Inf", I(3)),
        ],
    )
    .await;

    // The exposition agrees with the totals.
    let text = handle.render();
    for line in [
        "req 113\n",
        "req{method=\"GET\",route=\"/a\"} 4\n",
        "abs 15\n",
        "g 2.0\n",
        "h_bucket{le=\"0.25\"} 2\n",
        "h_bucket{le=\"+Inf\"} 7\n",
        "h_sum 6.75\n",
        "h_count 7\n",
        "lat_bucket{le=\"10.0\"} 2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }

    // A value the store cannot hold is refused and writes nothing (the rest still does).
    metrics::with_local_recorder(&recorder, || {
        gauge!("g").set(f64::NAN);
        histogram!("h").record(f64::INFINITY);
        histogram!("h").record(f64::NAN);
        histogram!("h").record(-0.0);
    });
    let e = t("2025-03-12T08:00:00Z");
    handle.drain(e).await.unwrap();
    tracker.flush().await.unwrap();
    let refusals = handle.refusals();
    // The gauge's NaN value (its extremes stay those of the finite values it held), and
    // the two non-finite observations.
    assert_eq!(refusals.count(Reason::Value), 3, "{refusals:?}");
    assert!(
        refusals.last[&Reason::Value].contains("\"h\""),
        "{refusals:?}"
    );
    check(
        "h",
        e,
        "1m",
        vec![
            ("count", I(1)),
            ("sum", F(0.0)),
            ("min", F(0.0)),
            ("max", F(0.0)),
            ("le.25e-2", I(1)),
            ("le.5e-1", I(1)),
            ("le.1", I(1)),
            ("le.+Inf", I(1)),
        ],
    )
    .await;
    check("g", e, "1m", vec![("max", F(2.0)), ("min", F(2.0))]).await;
    assert!(handle.render().contains("\ng NaN\n"));
    assert!(handle.shutdown().await.is_empty());
}

#[tokio::test]
async fn every_kind_is_exact_on_atomics() {
    every_kind(atomics_store()).await;
}

#[tokio::test]
async fn every_kind_is_exact_on_redis() {
    every_kind(redis_store().await).await;
}
