//! A Redis outage (`STATS_TEST_REDIS_URL`; `cargo xtask it redis` starts a server and sets
//! it): the store sits behind the testkit's fault proxy, which, armed, lets every request
//! reach Redis but drops every answer and closes the connection, so each write fails for the
//! client, ambiguously. Meanwhile the macros keep working (they never touch the store), the
//! drain task keeps draining into the buffer, and flushing fails with a retryable error.
//! Once the proxy forwards again, a flush writes the exact totals: nothing lost, nothing
//! counted twice.

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::{redis_store_at, redis_url};
use metrics::{counter, gauge, histogram};
use stats_buffer::{BufferedTracker, Coalescing, Options};
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::testkit::proxy::{DropReplyProxy, upstream_of};
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{Granularity, Number};
use stats_metrics::StatsRecorder;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_loses_nothing() {
    let url = redis_url();
    let prefix = stats_core::testkit::unique("metrics-outage");
    let proxy = DropReplyProxy::start(&upstream_of(&url)).await;
    let through_proxy = redis_store_at(&proxy.url_via(&url), &prefix).await;
    let direct = redis_store_at(&url, &prefix).await;
    let options = Options::new()
        .interval(Duration::from_millis(20))
        .unwrap()
        .retry_delay(Duration::from_millis(10))
        .unwrap()
        .retry_max(1);
    let tracker = Arc::new(
        BufferedTracker::with(
            through_proxy,
            Config::new(),
            Coalescing::new().options(options),
        )
        .unwrap(),
    );
    let recorder = StatsRecorder::builder()
        .history(tracker.clone())
        .interval(Duration::from_millis(10))
        .unwrap()
        .buckets(&[0.25, 1.0])
        .unwrap()
        .build()
        .unwrap();
    let handle = recorder.handle();
    let from = Timestamp::now() - SignedDuration::from_mins(1);

    // Up: written.
    metrics::with_local_recorder(&recorder, || {
        counter!("o_req").increment(5);
        histogram!("o_lat").record(0.25);
    });
    handle.flush().await.unwrap();

    // Down: every answer lost.
    proxy.arm_until_disarmed(b"*");
    let fired = proxy.fired();
    for i in 0..1000u32 {
        metrics::with_local_recorder(&recorder, || {
            counter!("o_req").increment(1);
            counter!("o_req", "phase" => "down").increment(2);
            histogram!("o_lat").record(0.5);
            gauge!("o_level").set(f64::from(i));
        });
        if i % 100 == 0 {
            // Let the drain task and the buffer run into the outage.
            tokio::time::sleep(Duration::from_millis(15)).await;
        }
    }
    let failed = handle
        .flush()
        .await
        .expect_err("a flush while every answer is lost must fail");
    assert!(failed.is_retryable(), "{failed}");
    assert!(proxy.fired() > fired, "the outage was never hit");
    metrics::with_local_recorder(&recorder, || {
        counter!("o_req").increment(10);
    });

    // Back: everything is written, once.
    proxy.disarm();
    let mut tries = 0;
    while let Err(e) = handle.flush().await {
        tries += 1;
        assert!(tries < 100, "the store is back, flush still fails: {e}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(handle.shutdown().await.is_empty());
    assert_eq!(handle.refusals().total(), 0, "{:?}", handle.refusals());

    let to = Timestamp::now() + SignedDuration::from_mins(1);
    let plain = Tracker::new(direct, Config::new());
    let day: Granularity = "1d".parse().unwrap();
    let total = |metric: &'static str, path: &'static str| {
        let plain = &plain;
        async move { plain.total(metric, from, to, day, path).await.unwrap() }
    };
    assert_eq!(total("o_req", "count").await, Some(Number::Int(1015)));
    assert_eq!(
        total("o_req", "phase=down.count").await,
        Some(Number::Int(2000))
    );
    assert_eq!(total("o_lat", "count").await, Some(Number::Int(1001)));
    assert_eq!(total("o_lat", "le.25e-2").await, Some(Number::Int(1)));
    assert_eq!(total("o_lat", "le.1").await, Some(Number::Int(1001)));
    assert_eq!(
        total("o_lat", "sum").await.map(Number::as_f64),
        Some(500.25)
    );
    let level = plain
        .values("o_level", from, to, "1m".parse().unwrap(), Blanks::Skip)
        .await
        .unwrap();
    let last = level.values.last().expect("a bucket of o_level");
    assert_eq!(
        last.number_at("last").map(Number::as_f64),
        Some(999.0),
        "{last:?}"
    );
    let days = plain
        .values("o_level", from, to, day, Blanks::Skip)
        .await
        .unwrap();
    assert_eq!(
        days.max("max", 1).unwrap()[0].map(Number::as_f64),
        Some(999.0)
    );
    assert_eq!(
        days.min("min", 1).unwrap()[0].map(Number::as_f64),
        Some(0.0)
    );
}
