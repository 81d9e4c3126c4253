//! Conformance checks of hostile input, exact round trips at the edges, whole-metric removal
//! and purging, on every store.

use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;

use super::unique;
use crate::store::MAX_TTL;
use crate::tracker::{Blanks, Config, SYSTEM_KEY, Tracker};
use crate::{
    Batch, Error, Fields, Granularity, Key, MetricStore, NameKind, Number, Op, ThrottleStore,
    Values, name, try_values, values,
};

fn g(s: &str) -> Granularity {
    s.parse().expect("granularity")
}

fn ok<T>(store: &str, what: &str, r: crate::Result<T>) -> T {
    r.unwrap_or_else(|e| panic!("{store}: {what} failed: {e}"))
}

/// Every leaf of `doc` with its number, bit for bit (floats by their bits, so `-0.0` and
/// `0.0` differ).
fn bits(doc: &Values) -> Vec<(String, &'static str, u64)> {
    doc.flatten()
        .into_iter()
        .map(|(p, n)| match n {
            Number::Int(i) => (p, "int", i as u64),
            Number::Float(f) => (p, "float", f.to_bits()),
        })
        .collect()
}

/// Valid names at the edges of the rule and numbers at the edges of their kinds are stored and
/// read back exactly (floats bit for bit); `-0.0` reads back as `0.0` on every store.
pub async fn metric_edge_values_round_trip(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let metric = unique("edge'\"\\%_é ");
    let key = Key::bucket(&metric, g("1h"), 1_700_002_800).expect("metric");
    let long_field = "f".repeat(name::MAX_FIELD_LEN);
    let deep: Vec<String> = (0..name::MAX_DEPTH).map(|i| format!("d{i}")).collect();
    let edges: Vec<(String, Number)> = vec![
        ("imax".into(), Number::Int(i64::MAX)),
        ("imin".into(), Number::Int(i64::MIN)),
        ("two53".into(), Number::Int(1 << 53)),
        ("two53p1".into(), Number::Int((1 << 53) + 1)),
        ("neg53p1".into(), Number::Int(-(1 << 53) - 1)),
        ("zero".into(), Number::Int(0)),
        ("fmax".into(), Number::Float(f64::MAX)),
        ("fmin".into(), Number::Float(f64::MIN)),
        ("tiny".into(), Number::Float(f64::MIN_POSITIVE)),
        ("subnormal".into(), Number::Float(5e-324)),
        ("tenth".into(), Number::Float(0.1)),
        ("third".into(), Number::Float(1.0 / 3.0)),
        ("f2p63".into(), Number::Float(9_223_372_036_854_775_808.0)),
        ("whole".into(), Number::Float(3.0)),
        ("negzero".into(), Number::Float(-0.0)),
        (long_field.clone(), Number::Int(1)),
        (deep.join("."), Number::Int(2)),
        ("quote'\"`; DROP TABLE x; --".into(), Number::Int(3)),
        ("json{}[]:,".into(), Number::Int(4)),
        ("back\\slash".into(), Number::Int(5)),
        ("percent%_".into(), Number::Int(6)),
        ("ümlaut 🎉".into(), Number::Int(7)),
        ("x:y::z".into(), Number::Int(8)),
        ("p.".to_string() + "q", Number::Int(9)),
    ];
    let fields = Fields::from_pairs(edges.clone()).expect("edge fields are valid");
    let mut batch = Batch::new();
    batch.push_flat(Op::Set, [key.clone()], fields);
    ok(name, "apply edges", store.apply(&batch).await);
    let got = ok(name, "read", store.read(std::slice::from_ref(&key)).await).remove(0);
    let expected = Values::from_flat(edges.into_iter().map(|(p, n)| {
        (
            p,
            if p_is_negzero(n) {
                Number::Float(0.0)
            } else {
                n
            },
        )
    }))
    .expect("edges");
    assert_eq!(
        bits(&got),
        bits(&expected),
        "{name}: edge values must round-trip exactly (floats bit for bit, -0.0 as 0.0)"
    );
    // The same through an increment of a missing leaf, and -0.0 as an increment.
    let mut batch = Batch::new();
    batch
        .inc(
            [key.clone()],
            &values!({"zero": 0, "inc": {"negzero": 0.0}}),
        )
        .expect("batch");
    batch.push_flat(
        Op::Inc,
        [key.clone()],
        Fields::from_pairs([("inc.neg", Number::Float(-0.0))]).expect("fields"),
    );
    ok(name, "apply increments", store.apply(&batch).await);
    let got = ok(name, "read", store.read(std::slice::from_ref(&key)).await).remove(0);
    assert_eq!(
        got.number_at("inc.neg").map(|n| n.as_f64().to_bits()),
        Some(0.0_f64.to_bits()),
        "{name}: an increment by -0.0 stores 0.0"
    );
    assert_eq!(got.number_at("imax"), Some(Number::Int(i64::MAX)), "{name}");
    ok(name, "remove", store.remove(&[key]).await);
}

fn p_is_negzero(n: Number) -> bool {
    matches!(n, Number::Float(f) if f == 0.0 && f.is_sign_negative())
}

/// Every public way to name something refuses bad names and non-finite numbers with a typed
/// error naming the input, and the store sees nothing.
pub async fn metric_hostile_input_is_refused_before_the_store(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let metric = unique("hostile");
    let key = Key::bucket(&metric, g("1h"), 0).expect("metric");
    let too_long_field = "f".repeat(name::MAX_FIELD_LEN + 1);
    let too_long_path = vec!["p".repeat(100); 5].join(".");
    let too_deep = vec!["d"; name::MAX_DEPTH + 1].join(".");
    for bad in [
        "",
        ".a",
        "a.",
        "a..b",
        "$set",
        "a.$b",
        "*",
        "a.*",
        "nul\0",
        "tab\t",
        "new\nline",
        "del\u{7f}",
        &too_long_field,
        &too_long_path,
        &too_deep,
    ] {
        let err = Fields::from_pairs([(bad, Number::Int(1))])
            .expect_err(&format!("path {bad:?} must be refused"));
        assert!(
            matches!(err, Error::InvalidName { .. }),
            "{bad:?}: expected InvalidName, got {err}"
        );
        let shown: String = bad
            .chars()
            .take(20)
            .collect::<String>()
            .escape_debug()
            .to_string();
        assert!(
            bad.is_empty() || err.to_string().contains(&shown),
            "the error must name {bad:?}: {err}"
        );
        if !bad.contains('.') {
            assert!(
                Values::new().insert(bad, 1).is_err(),
                "field {bad:?} must be refused by Values::insert"
            );
        }
    }
    for bad in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
        assert!(
            matches!(
                Fields::from_pairs([("a", Number::Float(bad))]),
                Err(Error::InvalidValue { .. })
            ),
            "{bad} must be refused"
        );
        assert!(matches!(
            Values::new().insert("a", bad),
            Err(Error::InvalidValue { path: Some(ref p), .. }) if p == "a"
        ));
        assert!(matches!(
            try_values!({"a": {"b": bad}}),
            Err(Error::InvalidValue { .. })
        ));
    }
    assert!(matches!(
        Fields::from_pairs([("a", Number::Int(1)), ("a.b", Number::Int(1))]),
        Err(Error::PathConflict { .. })
    ));
    assert!(matches!(
        Fields::from_pairs([("a", Number::Int(1)), ("a", Number::Int(2))]),
        Err(Error::InvalidValue { .. })
    ));
    for bad in [
        "",
        "a::b",
        ":a",
        "a:",
        "{tag}",
        "$x",
        "nul\0",
        "tab\t",
        &"m".repeat(201),
    ] {
        let err = Key::bucket(bad, g("1h"), 0).expect_err("bad metric");
        assert!(
            matches!(
                err,
                Error::InvalidName {
                    kind: NameKind::Metric,
                    ..
                }
            ),
            "{bad:?}: {err}"
        );
        assert!(
            matches!(
                store.range(bad, g("1h"), &[0]).await,
                Err(Error::InvalidName { .. })
            ),
            "{name}: range must refuse metric {bad:?}"
        );
        assert!(
            matches!(
                store.remove_metric(bad).await,
                Err(Error::InvalidName { .. })
            ),
            "{name}: remove_metric must refuse metric {bad:?}"
        );
    }
    let err = Key::bucket(&"m".repeat(201), g("1h"), 0).expect_err("long");
    assert!(
        err.to_string().contains("201 bytes, at most 200"),
        "a length error gives the length and the limit: {err}"
    );
    for json in [
        r#"{"a": -9223372036854775809}"#,
        r#"{"a": 9223372036854775808}"#,
        r#"{"a": {"b": 18446744073709551616}}"#,
        r#"{"a": 1e999}"#,
        r#"{"a": null}"#,
        r#"{"a.b": 1}"#,
    ] {
        assert!(Values::from_json(json).is_err(), "{json} must be refused");
    }
    let docs = ok(name, "read", store.read(std::slice::from_ref(&key)).await);
    assert!(docs[0].is_empty(), "{name}: nothing may reach the store");
}

/// `remove_metric` deletes every bucket and the status of one metric, and nothing of metrics
/// whose names share its prefix or would match it as a pattern.
pub async fn metric_remove_metric(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let base = unique("rm");
    let metric = format!("{base}*?[x]\\");
    let neighbours = [
        base.clone(),
        format!("{base}*?[x]\\2"),
        format!("{base}a?[x]\\"),
        format!("{base}*?x\\"),
    ];
    let keys = |m: &str| {
        let k = Key::bucket(m, g("1h"), 3600).expect("metric");
        vec![
            k.clone(),
            k.with_bucket(g("1h"), 7200),
            k.with_bucket(g("1d"), 0),
            Key::status(m).expect("metric"),
        ]
    };
    let mut batch = Batch::new();
    for m in std::iter::once(&metric).chain(&neighbours) {
        batch.inc(keys(m), &values!({"n": 1})).expect("batch");
    }
    ok(name, "apply", store.apply(&batch).await);
    assert_eq!(
        ok(name, "remove_metric", store.remove_metric(&metric).await),
        4,
        "{name}: remove_metric counts the documents it removed"
    );
    let gone = ok(name, "read", store.read(&keys(&metric)).await);
    assert!(gone.iter().all(Values::is_empty), "{name}: {gone:?}");
    for m in &neighbours {
        let kept = ok(name, "read", store.read(&keys(m)).await);
        assert!(
            kept.iter().all(|d| *d == values!({"n": 1})),
            "{name}: removing {metric:?} touched {m:?}: {kept:?}"
        );
        ok(name, "cleanup", store.remove_metric(m).await);
    }
    assert_eq!(ok(name, "again", store.remove_metric(&metric).await), 0);
}

/// `purge` deletes the buckets of one granularity that start before a time, of every metric,
/// and nothing else (not other granularities, not status slots, not later buckets).
pub async fn metric_purge(store: Arc<dyn MetricStore>) {
    let name = store.name();
    // A granularity and a time no other check uses: purge reaches every metric in the store.
    let seventeen = g("17s");
    let base = -4_000_000_000_i64;
    let (a, b) = (unique("purge-a"), unique("purge-b"));
    let at = |m: &str, start: i64| Key::bucket(m, seventeen, base + start).expect("metric");
    let mut batch = Batch::new();
    for m in [&a, &b] {
        batch
            .inc(
                [
                    at(m, 0),
                    at(m, 17),
                    at(m, 34),
                    at(m, 0).with_bucket(g("1h"), base),
                    Key::status(m).expect("metric"),
                ],
                &values!({"n": 1}),
            )
            .expect("batch");
    }
    ok(name, "apply", store.apply(&batch).await);
    let purged = ok(name, "purge", store.purge(seventeen, base + 34).await);
    assert_eq!(purged, 4, "{name}: two buckets of each of two metrics");
    for m in [&a, &b] {
        let docs = ok(
            name,
            "read",
            store
                .read(&[
                    at(m, 0),
                    at(m, 17),
                    at(m, 34),
                    at(m, 0).with_bucket(g("1h"), base),
                    Key::status(m).expect("metric"),
                ])
                .await,
        );
        let present: Vec<bool> = docs.iter().map(|d| !d.is_empty()).collect();
        assert_eq!(present, [false, false, true, true, true], "{name}: {m}");
        ok(name, "cleanup", store.remove_metric(m).await);
    }
}

/// The system index's metric key is reserved; `from > to` is an error; `track_many`, `total`
/// and `remove` work through the tracker.
pub async fn tracker_reserved_names_and_conveniences(store: Arc<dyn MetricStore>) {
    let name = store.name();
    let prefix = unique("conv");
    let t = Tracker::new(
        Arc::clone(&store),
        Config::new()
            .granularities(["1h", "1d"])
            .expect("config")
            .system_index(true)
            .metric_prefix(&prefix, ":")
            .expect("prefix"),
    );
    let when: Timestamp = "2024-05-01T10:30:00Z".parse().expect("time");
    let later: Timestamp = "2024-05-01T12:10:00Z".parse().expect("time");
    for call in [
        t.track(SYSTEM_KEY, when, &values!({"count": 1})).await,
        t.beam(SYSTEM_KEY, when, &values!({"count": 1})).await,
    ] {
        assert!(
            matches!(&call, Err(Error::InvalidName { kind: NameKind::Metric, reason, .. }) if reason.contains("reserved")),
            "{name}: {call:?}"
        );
    }
    assert!(matches!(
        t.values(SYSTEM_KEY, when, when, g("1h"), Blanks::Keep)
            .await,
        Err(Error::InvalidName { .. })
    ));
    let backwards = t.values("orders", later, when, g("1h"), Blanks::Keep).await;
    assert!(
        matches!(backwards, Err(Error::InvalidInput(ref m)) if m.contains("after")),
        "{name}: from after to must be refused: {backwards:?}"
    );
    let (one, two) = (values!({"count": 1, "ms": 2.5}), values!({"count": 2}));
    ok(
        name,
        "track_many",
        t.track_many([
            ("orders", when, &one),
            ("orders", later, &two),
            ("logins", when, &one),
        ])
        .await,
    );
    // A bad event refuses the whole call.
    assert!(
        t.track_many([("orders", when, &one), ("bad::key", when, &one)])
            .await
            .is_err()
    );
    let total = ok(
        name,
        "total",
        t.total("orders", when, later, g("1h"), "count").await,
    );
    assert_eq!(total, Some(Number::Int(3)), "{name}");
    let sys = ok(
        name,
        "system_values",
        t.system_values(when, when, g("1d"), Blanks::Skip).await,
    );
    assert_eq!(
        sys.values[0].number_at("count"),
        Some(Number::Int(3)),
        "{name}: three events counted in the index, the refused call none"
    );
    let removed = ok(name, "remove", t.remove("orders").await);
    assert_eq!(removed, 3, "{name}: two hour buckets and one day bucket");
    let after = ok(
        name,
        "values",
        t.values("orders", when, later, g("1h"), Blanks::Skip).await,
    );
    assert!(after.is_empty(), "{name}: {after:?}");
    let logins = ok(
        name,
        "total",
        t.total("logins", when, when, g("1d"), "ms").await,
    );
    assert_eq!(logins, Some(Number::Float(2.5)), "{name}");
    ok(name, "cleanup", t.remove("logins").await);
}

/// Throttle TTLs beyond [`MAX_TTL`] are refused before the store; `MAX_TTL` itself works.
pub async fn throttle_huge_ttls(store: Arc<dyn ThrottleStore>) {
    let name = store.name();
    for ttl in [Duration::MAX, MAX_TTL + Duration::from_millis(1)] {
        let key = unique("huge");
        let r = store.try_acquire(&key, ttl).await;
        assert!(
            matches!(&r, Err(Error::InvalidInput(m)) if m.contains("at most")),
            "{name}: TTL {ttl:?}: {r:?}"
        );
        assert!(
            ok(
                name,
                "acquire",
                store.try_acquire(&key, Duration::from_secs(5)).await
            ),
            "{name}: a refused acquire must not hold the key"
        );
    }
    let key = unique("max");
    assert!(ok(name, "acquire", store.try_acquire(&key, MAX_TTL).await));
    assert!(!ok(name, "again", store.try_acquire(&key, MAX_TTL).await));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_invariants_hold_for_every_public_constructor() {
        // A store can rely on every Write: checked paths, finite numbers, no -0.0.
        let mut batch = Batch::new();
        batch
            .push(Op::Inc, [Key::status("m").unwrap()], &values!({"a": 1}))
            .unwrap();
        for w in batch.writes() {
            for (p, n) in w.fields() {
                name::check_path(p).unwrap();
                n.validate().unwrap();
            }
        }
        let v = Values::new().with("z", -0.0).unwrap();
        assert_eq!(
            v.number_at("z").map(|n| n.as_f64().to_bits()),
            Some(0.0_f64.to_bits())
        );
    }
}
