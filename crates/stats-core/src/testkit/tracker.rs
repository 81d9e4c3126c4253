//! Conformance checks of the [`Tracker`] on a store.

use std::sync::Arc;

use jiff::Timestamp;

use super::unique;
use crate::tracker::{Blanks, Config, Tracker};
use crate::{Error, Granularity, MetricStore, Number, Values, values};

fn at(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn g(s: &str) -> Granularity {
    s.parse().expect("granularity")
}

/// A tracker isolated from other runs by a unique metric prefix.
fn tracker(store: Arc<dyn MetricStore>, config: Config) -> Tracker {
    let config = config
        .metric_prefix(&unique("trk"), ":")
        .expect("metric prefix");
    Tracker::new(store, config)
}

fn ok<T>(store: &str, what: &str, r: crate::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{store}: {what} failed: {e}"))
}

/// `track` increments nested integer and float values in every configured granularity.
pub async fn tracker_track_fans_out(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(
        store,
        Config::new()
            .granularities(["1m", "1h", "1d"])
            .expect("config"),
    );
    ok(
        name,
        "track",
        t.track(
            "orders",
            at("2024-05-01T10:15:30Z"),
            &values!({"count": 1, "amount": 2.5, "by": {"eu": 1}}),
        )
        .await,
    );
    ok(
        name,
        "track",
        t.track(
            "orders",
            at("2024-05-01T10:15:59Z"),
            &values!({"count": 2, "amount": 1, "by": {"us": 2}}),
        )
        .await,
    );
    ok(
        name,
        "track",
        t.track("orders", at("2024-05-01T11:00:00Z"), &values!({"count": 4}))
            .await,
    );
    let both = values!({"count": 3, "amount": 3.5, "by": {"eu": 1, "us": 2}});
    let minute = ok(
        name,
        "values",
        t.values(
            "orders",
            at("2024-05-01T10:15:00Z"),
            at("2024-05-01T10:15:00Z"),
            g("1m"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(minute.values, vec![both.clone()], "{name}: minute bucket");
    let hours = ok(
        name,
        "values",
        t.values(
            "orders",
            at("2024-05-01T10:00:00Z"),
            at("2024-05-01T11:59:59Z"),
            g("1h"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        hours.at,
        vec![at("2024-05-01T10:00:00Z"), at("2024-05-01T11:00:00Z")]
    );
    assert_eq!(
        hours.values,
        vec![both, values!({"count": 4})],
        "{name}: hour buckets"
    );
    let day = ok(
        name,
        "values",
        t.values(
            "orders",
            at("2024-05-01T00:00:00Z"),
            at("2024-05-01T00:00:00Z"),
            g("1d"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        day.values[0].number_at("count"),
        Some(Number::Int(7)),
        "{name}: day bucket"
    );
    assert_eq!(
        day.values[0].number_at("amount"),
        Some(Number::Float(3.5)),
        "{name}: int + float in the day bucket"
    );
    let unconfigured = ok(
        name,
        "values",
        t.values(
            "orders",
            at("2024-05-01T00:00:00Z"),
            at("2024-05-01T00:00:00Z"),
            g("1w"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        unconfigured.values,
        vec![Values::new()],
        "{name}: an unconfigured granularity reads blank"
    );
}

/// `assert` sets the named leaves in every bucket, leaving the others.
pub async fn tracker_assert_overwrites(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(
        store,
        Config::new().granularities(["1h", "1d"]).expect("config"),
    );
    let when = at("2024-05-01T10:15:00Z");
    ok(
        name,
        "track",
        t.track("gauge", when, &values!({"level": 5, "other": 1}))
            .await,
    );
    ok(
        name,
        "assert",
        t.assert("gauge", when, &values!({"level": 2})).await,
    );
    for gran in ["1h", "1d"] {
        let s = ok(
            name,
            "values",
            t.values("gauge", when, when, g(gran), Blanks::Keep).await,
        );
        assert_eq!(
            s.values,
            vec![values!({"level": 2, "other": 1})],
            "{name}: assert at {gran}"
        );
    }
}

/// `track_max` and `track_min` keep per-bucket extremes.
pub async fn tracker_max_min(store: Arc<dyn MetricStore>) {
    let name = store.name();
    if !store.capabilities().max_min {
        let t = tracker(store, Config::new());
        let r = t
            .track_max("peak", at("2024-05-01T10:00:00Z"), &values!({"v": 1}))
            .await;
        assert!(
            matches!(r, Err(Error::Unsupported { .. })),
            "{name}: max without the capability"
        );
        return;
    }
    let t = tracker(
        store,
        Config::new().granularities(["1h", "1d"]).expect("config"),
    );
    for (time, v) in [
        ("2024-05-01T10:05:00Z", 5),
        ("2024-05-01T10:25:00Z", 9),
        ("2024-05-01T11:05:00Z", 3),
    ] {
        ok(
            name,
            "track_max",
            t.track_max("latency", at(time), &values!({"max": v})).await,
        );
        ok(
            name,
            "track_min",
            t.track_min("latency", at(time), &values!({"min": v})).await,
        );
    }
    let hours = ok(
        name,
        "values",
        t.values(
            "latency",
            at("2024-05-01T10:00:00Z"),
            at("2024-05-01T11:00:00Z"),
            g("1h"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        hours.values,
        vec![values!({"max": 9, "min": 5}), values!({"max": 3, "min": 3})],
        "{name}: hourly extremes"
    );
    let day = ok(
        name,
        "values",
        t.values(
            "latency",
            at("2024-05-01T00:00:00Z"),
            at("2024-05-01T00:00:00Z"),
            g("1d"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        day.values,
        vec![values!({"max": 9, "min": 3})],
        "{name}: daily extremes"
    );
}

/// Blank buckets are empty documents, or left out on request.
pub async fn tracker_blanks(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(store, Config::new().granularities(["1h"]).expect("config"));
    ok(
        name,
        "track",
        t.track("sparse", at("2024-05-01T10:30:00Z"), &values!({"n": 1}))
            .await,
    );
    ok(
        name,
        "track",
        t.track("sparse", at("2024-05-01T13:30:00Z"), &values!({"n": 2}))
            .await,
    );
    let (from, to) = (at("2024-05-01T09:00:00Z"), at("2024-05-01T14:00:00Z"));
    let kept = ok(
        name,
        "values",
        t.values("sparse", from, to, g("1h"), Blanks::Keep).await,
    );
    assert_eq!(kept.at.len(), 6);
    assert_eq!(
        kept.values,
        vec![
            Values::new(),
            values!({"n": 1}),
            Values::new(),
            Values::new(),
            values!({"n": 2}),
            Values::new()
        ],
        "{name}: blanks kept"
    );
    let skipped = ok(
        name,
        "values",
        t.values("sparse", from, to, g("1h"), Blanks::Skip).await,
    );
    assert_eq!(
        skipped.at,
        vec![at("2024-05-01T10:00:00Z"), at("2024-05-01T13:00:00Z")],
        "{name}: blanks skipped"
    );
    assert_eq!(skipped.values, vec![values!({"n": 1}), values!({"n": 2})]);
}

/// The system index counts writes per bucket and per metric key.
pub async fn tracker_system_index(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(
        store,
        Config::new()
            .granularities(["1h"])
            .expect("config")
            .system_index(true),
    );
    let when = at("2024-05-01T10:15:00Z");
    ok(
        name,
        "track",
        t.track("a.b", when, &values!({"n": 1})).await,
    );
    ok(
        name,
        "track",
        t.track("a.b", when, &values!({"n": 1})).await,
    );
    ok(
        name,
        "assert",
        t.assert("c", when, &values!({"n": 1})).await,
    );
    let sys = ok(
        name,
        "system_values",
        t.system_values(when, when, g("1h"), Blanks::Keep).await,
    );
    let doc = &sys.values[0];
    assert_eq!(
        doc.number_at("count"),
        Some(Number::Int(3)),
        "{name}: system count"
    );
    let metric_ab = crate::tracker::escape_field(&t.config().metric("a.b"));
    let metric_c = crate::tracker::escape_field(&t.config().metric("c"));
    let Some(crate::Value::Map(keys)) = doc.get("keys") else {
        panic!("{name}: no keys map in {doc}")
    };
    assert_eq!(
        keys.get(&metric_ab),
        Some(&crate::Value::Number(Number::Int(2))),
        "{name}: per-key count of a.b in {doc}"
    );
    assert_eq!(
        keys.get(&metric_c),
        Some(&crate::Value::Number(Number::Int(1))),
        "{name}: per-key count of c in {doc}"
    );
}

/// `beam` keeps the latest status apart from the series; `scan` reads it.
pub async fn tracker_beam_and_scan(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(store, Config::new().granularities(["1h"]).expect("config"));
    assert_eq!(
        ok(name, "scan", t.scan("queue").await),
        None,
        "{name}: never beamed"
    );
    ok(
        name,
        "beam",
        t.beam(
            "queue",
            at("2024-05-01T10:00:00Z"),
            &values!({"depth": 5, "workers": {"busy": 2}}),
        )
        .await,
    );
    ok(
        name,
        "beam",
        t.beam("queue", at("2024-05-01T10:05:00Z"), &values!({"depth": 3}))
            .await,
    );
    let status = ok(name, "scan", t.scan("queue").await).expect("beamed");
    assert_eq!(
        status.at,
        at("2024-05-01T10:05:00Z"),
        "{name}: latest beam time"
    );
    assert_eq!(
        status.values,
        values!({"depth": 3, "workers": {"busy": 2}}),
        "{name}: latest status values"
    );
    let series = ok(
        name,
        "values",
        t.values(
            "queue",
            at("2024-05-01T10:00:00Z"),
            at("2024-05-01T10:00:00Z"),
            g("1h"),
            Blanks::Skip,
        )
        .await,
    );
    assert!(
        series.is_empty(),
        "{name}: a beam must not write the time series"
    );
}

/// A `values` call across a fall-back hour returns both 01:00 buckets, and a 25-hour day is
/// one day bucket.
pub async fn tracker_values_across_dst(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(
        store,
        Config::new()
            .granularities(["1h", "1d"])
            .expect("config")
            .time_zone("America/New_York")
            .expect("zone"),
    );
    for time in [
        "2024-11-03T00:30:00-04:00",
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:30:00-05:00",
        "2024-11-03T01:45:00-05:00",
        "2024-11-03T02:30:00-05:00",
    ] {
        ok(
            name,
            "track",
            t.track("dst", at(time), &values!({"n": 1})).await,
        );
    }
    let hours = ok(
        name,
        "values",
        t.values(
            "dst",
            at("2024-11-03T00:00:00-04:00"),
            at("2024-11-03T03:00:00-05:00"),
            g("1h"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(
        hours.at,
        vec![
            at("2024-11-03T00:00:00-04:00"),
            at("2024-11-03T01:00:00-04:00"),
            at("2024-11-03T01:00:00-05:00"),
            at("2024-11-03T02:00:00-05:00"),
            at("2024-11-03T03:00:00-05:00"),
        ],
        "{name}: the fall-back timeline"
    );
    let counts: Vec<Option<Number>> = hours.values.iter().map(|v| v.number_at("n")).collect();
    assert_eq!(
        counts,
        vec![
            Some(Number::Int(1)),
            Some(Number::Int(1)),
            Some(Number::Int(2)),
            Some(Number::Int(1)),
            None
        ],
        "{name}: per-hour counts"
    );
    let day = ok(
        name,
        "values",
        t.values(
            "dst",
            at("2024-11-03T12:00:00-05:00"),
            at("2024-11-03T12:00:00-05:00"),
            g("1d"),
            Blanks::Keep,
        )
        .await,
    );
    assert_eq!(day.at, vec![at("2024-11-03T00:00:00-04:00")]);
    assert_eq!(
        day.values,
        vec![values!({"n": 5})],
        "{name}: the 25-hour day is one bucket"
    );
}

/// A bad metric key or value name writes nothing.
pub async fn tracker_bad_input_writes_nothing(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let t = tracker(
        store,
        Config::new()
            .granularities(["1h"])
            .expect("config")
            .system_index(true),
    );
    let when = at("2024-05-01T10:00:00Z");
    assert!(matches!(
        t.track("bad::key", when, &values!({"n": 1})).await,
        Err(Error::InvalidName { .. })
    ));
    assert!(matches!(
        t.track("", when, &values!({"n": 1})).await,
        Err(Error::InvalidName { .. })
    ));
    let sys = ok(
        name,
        "system_values",
        t.system_values(when, when, g("1h"), Blanks::Skip).await,
    );
    assert!(
        sys.is_empty(),
        "{name}: a refused track must not count in the system index"
    );
}
