//! Conformance checks of [`MetricStore`].

use std::sync::Arc;

use super::{Load, unique};
use crate::{Batch, BatchId, Error, Granularity, Key, MetricStore, Number, Op, Values, values};

fn hour() -> Granularity {
    "1h".parse().expect("1h parses")
}

fn day() -> Granularity {
    "1d".parse().expect("1d parses")
}

fn key(metric: &str, start: i64) -> Key {
    Key::bucket(metric, hour(), start).expect("test metric names are valid")
}

async fn apply(store: &dyn MetricStore, batch: &Batch) {
    store
        .apply(batch)
        .await
        .unwrap_or_else(|e| panic!("{}: apply failed: {e}", store.name()));
}

async fn get(store: &dyn MetricStore, keys: &[Key]) -> Vec<Values> {
    let docs = store
        .read(keys)
        .await
        .unwrap_or_else(|e| panic!("{}: read failed: {e}", store.name()));
    assert_eq!(
        docs.len(),
        keys.len(),
        "{}: get must return one document per key",
        store.name()
    );
    docs
}

async fn get_one(store: &dyn MetricStore, key: &Key) -> Values {
    get(store, std::slice::from_ref(key)).await.remove(0)
}

fn batch(op: Op, keys: &[Key], values: &Values) -> Batch {
    let mut b = Batch::new();
    b.push(op, keys.iter().cloned(), values)
        .expect("test batch is valid");
    b
}

/// Increments of nested integer values sum per leaf; a first increment creates the leaf.
pub async fn metric_inc_and_get(store: Arc<dyn MetricStore>) {
    let m = unique("inc");
    let (k1, k2) = (key(&m, 0), key(&m, 3600));
    apply(
        &*store,
        &batch(
            Op::Inc,
            &[k1.clone(), k2.clone()],
            &values!({"count": 1, "by": {"a": 2, "b": {"c": 3}}}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k1),
            &values!({"count": 4, "by": {"b": {"c": -5, "d": 7}}}),
        ),
    )
    .await;
    assert_eq!(
        get_one(&*store, &k1).await,
        values!({"count": 5, "by": {"a": 2, "b": {"c": -2, "d": 7}}}),
        "{}: nested increments must sum per leaf, and a new nested leaf must keep its first write",
        store.name()
    );
    assert_eq!(
        get_one(&*store, &k2).await,
        values!({"count": 1, "by": {"a": 2, "b": {"c": 3}}}),
        "{}: one write at two keys must reach both",
        store.name()
    );
}

/// `get` answers in key order, repeats repeated keys, and gives empty values for missing keys.
pub async fn metric_get_is_ordered_and_blank_for_missing(store: Arc<dyn MetricStore>) {
    let m = unique("order");
    let keys: Vec<Key> = (0..5).map(|i| key(&m, i * 3600)).collect();
    for (i, k) in keys.iter().enumerate() {
        if i % 2 == 0 {
            apply(
                &*store,
                &batch(Op::Inc, std::slice::from_ref(k), &values!({"i": i})),
            )
            .await;
        }
    }
    let asked = vec![
        keys[4].clone(),
        keys[1].clone(),
        keys[0].clone(),
        keys[4].clone(),
        key(&unique("none"), 0),
    ];
    let docs = get(&*store, &asked).await;
    assert_eq!(
        docs,
        vec![
            values!({"i": 4}),
            Values::new(),
            values!({"i": 0}),
            values!({"i": 4}),
            Values::new()
        ],
        "{}: get must answer in the order asked, with empty values for missing keys",
        store.name()
    );
    assert!(get(&*store, &[]).await.is_empty());
}

/// `set` replaces the leaves it names and leaves the others.
pub async fn metric_set_overwrites_only_named_leaves(store: Arc<dyn MetricStore>) {
    let k = key(&unique("set"), 0);
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k),
            &values!({"a": 5, "b": {"c": 1, "d": 2}}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Set,
            std::slice::from_ref(&k),
            &values!({"a": 1, "b": {"c": 9}, "e": 3}),
        ),
    )
    .await;
    assert_eq!(
        get_one(&*store, &k).await,
        values!({"a": 1, "b": {"c": 9, "d": 2}, "e": 3}),
        "{}: set must replace exactly the named leaves",
        store.name()
    );
}

/// `max` and `min` keep the extreme numerically, across integers and floats.
pub async fn metric_max_min(store: Arc<dyn MetricStore>) {
    let k = key(&unique("maxmin"), 0);
    if !store.capabilities().max_min {
        let err = store.apply(&batch(Op::Max, &[k], &values!({"a": 1}))).await;
        assert!(
            matches!(err, Err(Error::Unsupported { .. })),
            "{}: max without the capability must be Unsupported",
            store.name()
        );
        return;
    }
    let floats = store.capabilities().floats;
    apply(
        &*store,
        &batch(
            Op::Max,
            std::slice::from_ref(&k),
            &values!({"hi": 5, "lo": 5}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(Op::Min, std::slice::from_ref(&k), &values!({"lo": 3})),
    )
    .await;
    apply(
        &*store,
        &batch(Op::Max, std::slice::from_ref(&k), &values!({"hi": 4})),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Min,
            std::slice::from_ref(&k),
            &values!({"lo": 4, "new": -1}),
        ),
    )
    .await;
    assert_eq!(
        get_one(&*store, &k).await,
        values!({"hi": 5, "lo": 3, "new": -1}),
        "{}: max/min must keep the extreme and take the value on a missing leaf",
        store.name()
    );
    apply(
        &*store,
        &batch(
            Op::Max,
            std::slice::from_ref(&k),
            &values!({"big": i64::MAX - 1}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Max,
            std::slice::from_ref(&k),
            &values!({"big": i64::MAX}),
        ),
    )
    .await;
    assert_eq!(
        get_one(&*store, &k).await.number_at("big"),
        Some(Number::Int(i64::MAX)),
        "{}: max must compare large integers exactly",
        store.name()
    );
    if floats {
        apply(
            &*store,
            &batch(Op::Max, std::slice::from_ref(&k), &values!({"hi": 5.5})),
        )
        .await;
        apply(
            &*store,
            &batch(Op::Min, std::slice::from_ref(&k), &values!({"lo": 3.5})),
        )
        .await;
        let doc = get_one(&*store, &k).await;
        assert_eq!(
            doc.number_at("hi"),
            Some(Number::Float(5.5)),
            "{}: max of int 5 and 5.5",
            store.name()
        );
        assert_eq!(
            doc.number_at("lo"),
            Some(Number::Int(3)),
            "{}: min of int 3 and 3.5",
            store.name()
        );
    }
}

/// Floats are stored exactly; an integer plus a float is a float; a float plus an integer
/// stays a float.
pub async fn metric_floats(store: Arc<dyn MetricStore>) {
    let k = key(&unique("floats"), 0);
    if !store.capabilities().floats {
        let err = store
            .apply(&batch(Op::Inc, &[k], &values!({"a": 0.5})))
            .await;
        assert!(
            matches!(err, Err(Error::Unsupported { .. })),
            "{}: floats without the capability must be Unsupported",
            store.name()
        );
        return;
    }
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k),
            &values!({"f": 0.5, "i": 2, "g": 1.0}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k),
            &values!({"f": 0.25, "i": 0.5, "g": 2}),
        ),
    )
    .await;
    let doc = get_one(&*store, &k).await;
    assert_eq!(
        doc.number_at("f"),
        Some(Number::Float(0.75)),
        "{}: float + float",
        store.name()
    );
    assert_eq!(
        doc.number_at("i"),
        Some(Number::Float(2.5)),
        "{}: int + float must become a float",
        store.name()
    );
    assert_eq!(
        doc.number_at("g"),
        Some(Number::Float(3.0)),
        "{}: float + int must stay a float",
        store.name()
    );
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k),
            &values!({"tiny": 1e-300, "neg": -123.456}),
        ),
    )
    .await;
    let doc = get_one(&*store, &k).await;
    assert_eq!(
        doc.number_at("tiny"),
        Some(Number::Float(1e-300)),
        "{}: floats must round-trip exactly",
        store.name()
    );
    assert_eq!(
        doc.number_at("neg"),
        Some(Number::Float(-123.456)),
        "{}: floats must round-trip exactly",
        store.name()
    );
    // A set can turn a float leaf back into an integer.
    apply(
        &*store,
        &batch(Op::Set, std::slice::from_ref(&k), &values!({"f": 7})),
    )
    .await;
    apply(
        &*store,
        &batch(Op::Inc, std::slice::from_ref(&k), &values!({"f": 1})),
    )
    .await;
    assert_eq!(
        get_one(&*store, &k).await.number_at("f"),
        Some(Number::Int(8)),
        "{}: set of an int on a float leaf",
        store.name()
    );
}

/// A batch with an id applied twice takes effect once on a store whose
/// `idempotent_batch` is true, and twice on one whose capability is false (so the capability is
/// honest). Spans two metrics (two slots on a cluster). A batch without an id, or with a new
/// id, always applies; a failing batch records nothing (its retry fails again).
pub async fn metric_batch_id_applies_once(store: Arc<dyn MetricStore>) {
    let idempotent = store.capabilities().idempotent_batch;
    let name = store.name();
    let (a, b) = (key(&unique("bid_a"), 0), key(&unique("bid_b"), 3600));
    let mut plain = Batch::new();
    plain
        .inc([a.clone(), b.clone()], &values!({"n": 1, "x": {"f": 0.5}}))
        .expect("valid");
    plain.max([b.clone()], &values!({"top": 7})).expect("valid");
    let with_id = plain.clone().with_id(BatchId::new());
    apply(&*store, &with_id).await;
    apply(&*store, &with_id).await;
    let once = if idempotent { 1 } else { 2 };
    let expect = |n: i64| {
        (
            values!({"n": n, "x": {"f": n as f64 * 0.5}}),
            values!({"n": n, "top": 7, "x": {"f": n as f64 * 0.5}}),
        )
    };
    let got = get(&*store, &[a.clone(), b.clone()]).await;
    let (want_a, want_b) = expect(once);
    assert_eq!(
        (&got[0], &got[1]),
        (&want_a, &want_b),
        "{name}: a batch applied twice with one id (idempotent_batch = {idempotent})"
    );
    // Without an id, and with a fresh id, the same writes apply again.
    apply(&*store, &plain).await;
    apply(&*store, &plain.clone().with_id(BatchId::new())).await;
    let got = get(&*store, &[a.clone(), b.clone()]).await;
    let (want_a, want_b) = expect(once + 2);
    assert_eq!(
        (&got[0], &got[1]),
        (&want_a, &want_b),
        "{name}: a batch without an id or with a new id must apply"
    );
    // A failing batch does not record its id: a retry fails the same way.
    let big = key(&unique("bid_big"), 0);
    apply(
        &*store,
        &batch(
            Op::Set,
            std::slice::from_ref(&big),
            &values!({"v": i64::MAX}),
        ),
    )
    .await;
    let failing =
        batch(Op::Inc, std::slice::from_ref(&big), &values!({"v": 1})).with_id(BatchId::new());
    for attempt in 1..=2 {
        match store.apply(&failing).await {
            Err(Error::Overflow { .. }) => {}
            other => panic!(
                "{name}: attempt {attempt} of an overflowing batch with an id gave {other:?}"
            ),
        }
    }
    assert_eq!(get_one(&*store, &big).await, values!({"v": i64::MAX}));
}

/// Writes of one batch take effect in order.
pub async fn metric_ops_apply_in_batch_order(store: Arc<dyn MetricStore>) {
    let k = key(&unique("order"), 0);
    let mut b = Batch::new();
    b.inc([k.clone()], &values!({"a": 5})).expect("valid");
    b.set([k.clone()], &values!({"a": 1})).expect("valid");
    b.inc([k.clone()], &values!({"a": 2})).expect("valid");
    b.set([k.clone()], &values!({"b": 10})).expect("valid");
    b.inc([k.clone()], &values!({"b": -3})).expect("valid");
    apply(&*store, &b).await;
    assert_eq!(
        get_one(&*store, &k).await,
        values!({"a": 3, "b": 7}),
        "{}: the writes of a batch must take effect in order",
        store.name()
    );
}

/// An increment past `i64` is an overflow error; nothing of the batch is written at that key
/// and the stored number does not wrap.
pub async fn metric_overflow_writes_nothing_at_the_key(store: Arc<dyn MetricStore>) {
    let k = key(&unique("overflow"), 0);
    apply(
        &*store,
        &batch(
            Op::Set,
            std::slice::from_ref(&k),
            &values!({"big": i64::MAX, "small": i64::MIN, "other": 1}),
        ),
    )
    .await;
    for bad in [
        values!({"a": 1, "big": 1, "z": 1}),
        values!({"a": 1, "small": -1, "z": 1}),
    ] {
        let result = store
            .apply(&batch(Op::Inc, std::slice::from_ref(&k), &bad))
            .await;
        assert!(
            matches!(result, Err(Error::Overflow { .. })),
            "{}: an increment past i64 must be an Overflow error, got {result:?}",
            store.name()
        );
        assert_eq!(
            get_one(&*store, &k).await,
            values!({"big": i64::MAX, "small": i64::MIN, "other": 1}),
            "{}: an overflowing batch must write nothing at its key and must not wrap",
            store.name()
        );
    }
    // Overflow from an earlier write of the same batch.
    let mut b = Batch::new();
    b.inc([k.clone()], &values!({"other": 5})).expect("valid");
    b.inc([k.clone()], &values!({"other": i64::MAX}))
        .expect("valid");
    let result = store.apply(&b).await;
    assert!(
        matches!(result, Err(Error::Overflow { .. })),
        "{}: overflow within a batch, got {result:?}",
        store.name()
    );
    assert_eq!(
        get_one(&*store, &k).await.number_at("other"),
        Some(Number::Int(1)),
        "{}: nothing of the batch written",
        store.name()
    );
    if store.capabilities().floats {
        let k2 = key(&unique("overflow"), 0);
        apply(
            &*store,
            &batch(
                Op::Set,
                std::slice::from_ref(&k2),
                &values!({"f": f64::MAX}),
            ),
        )
        .await;
        let result = store
            .apply(&batch(
                Op::Inc,
                std::slice::from_ref(&k2),
                &values!({"f": f64::MAX}),
            ))
            .await;
        assert!(
            matches!(result, Err(Error::Overflow { .. })),
            "{}: a float sum to infinity must be an Overflow, got {result:?}",
            store.name()
        );
        assert_eq!(
            get_one(&*store, &k2).await.number_at("f"),
            Some(Number::Float(f64::MAX)),
            "{}: float overflow writes nothing",
            store.name()
        );
    }
}

/// A batch over many keys that fails at one key (an overflow, a path conflict) returns that
/// key's error, naming key and path, and writes nothing at that key. With
/// [`Capabilities::atomic_batch`](crate::Capabilities::atomic_batch) it writes nothing at any
/// key, whichever key fails; without, every other key has all of its writes or none.
pub async fn metric_failing_batch_follows_the_contract(store: Arc<dyn MetricStore>) {
    let atomic = store.capabilities().atomic_batch;
    let m = unique("atomic");
    let keys: Vec<Key> = (0..6).map(|i| key(&m, i * 3600)).collect();
    let full = &keys[3];
    apply(
        &*store,
        &batch(
            Op::Set,
            std::slice::from_ref(full),
            &values!({"n": i64::MAX}),
        ),
    )
    .await;
    let mut b = Batch::new();
    b.inc(keys.iter().cloned(), &values!({"n": 1, "m": 1}))
        .expect("valid");
    let result = store.apply(&b).await;
    assert!(
        matches!(&result, Err(Error::Overflow { key, path: Some(p), .. }) if *key == full.to_string() && p == "n"),
        "{}: an overflow naming {full} and \"n\" expected, got {result:?}",
        store.name()
    );
    let got = get(&*store, &keys).await;
    assert_eq!(
        got[3],
        values!({"n": i64::MAX}),
        "{}: nothing written at the failing key",
        store.name()
    );
    for (i, doc) in got.iter().enumerate().filter(|(i, _)| *i != 3) {
        if atomic {
            assert_eq!(
                *doc,
                Values::new(),
                "{}: a store with atomic batches must write nothing of a failing batch",
                store.name()
            );
        } else {
            assert!(
                doc.is_empty() || *doc == values!({"n": 1, "m": 1}),
                "{}: key {i} of a failing batch must have all of its writes or none, got {doc:?}",
                store.name()
            );
        }
    }

    // A path conflict at one key of many.
    let m = unique("conflict-batch");
    let keys: Vec<Key> = (0..5).map(|i| key(&m, i * 3600)).collect();
    let mapped = &keys[2];
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(mapped),
            &values!({"x": {"y": 1}}),
        ),
    )
    .await;
    let mut b = Batch::new();
    b.set(keys.iter().cloned(), &values!({"x": 5, "z": 1}))
        .expect("valid");
    let result = store.apply(&b).await;
    assert!(
        matches!(&result, Err(Error::PathConflict { key, path, .. }) if *key == mapped.to_string() && path == "x"),
        "{}: a path conflict naming {mapped} and \"x\" expected, got {result:?}",
        store.name()
    );
    let got = get(&*store, &keys).await;
    assert_eq!(
        got[2],
        values!({"x": {"y": 1}}),
        "{}: nothing written at the failing key",
        store.name()
    );
    for (i, doc) in got.iter().enumerate().filter(|(i, _)| *i != 2) {
        assert!(
            (!atomic && *doc == values!({"x": 5, "z": 1})) || doc.is_empty(),
            "{}: key {i} of a failing batch (atomic: {atomic}) got {doc:?}",
            store.name()
        );
    }

    if !atomic {
        return;
    }
    // A batch of other metrics around the failing one.
    let other = key(&unique("atomic"), 0);
    let mut b = Batch::new();
    b.inc([other.clone()], &values!({"n": 1})).expect("valid");
    b.inc([full.clone()], &values!({"n": 1})).expect("valid");
    b.inc([other.clone()], &values!({"n": 1})).expect("valid");
    assert!(
        store.apply(&b).await.is_err(),
        "{}: overflow expected",
        store.name()
    );
    assert_eq!(
        get_one(&*store, &other).await,
        Values::new(),
        "{}: atomic batch half written",
        store.name()
    );
}

/// A leaf that is a number cannot become a map (or the reverse) by a write; nothing of the
/// failing batch is written at that key.
pub async fn metric_path_conflicts_write_nothing(store: Arc<dyn MetricStore>) {
    let k = key(&unique("conflict"), 0);
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&k),
            &values!({"a": 1, "m": {"x": 1}}),
        ),
    )
    .await;
    for bad in [
        values!({"z": 1, "a": {"b": 1}}),
        values!({"z": 1, "m": 2}),
        values!({"z": 1, "m": {"x": {"y": 1}}}),
    ] {
        let result = store
            .apply(&batch(Op::Inc, std::slice::from_ref(&k), &bad))
            .await;
        assert!(
            matches!(result, Err(Error::PathConflict { .. })),
            "{}: writing {bad} over {{a: 1, m: {{x: 1}}}} must be a PathConflict, got {result:?}",
            store.name()
        );
    }
    let mut b = Batch::new();
    b.inc([k.clone()], &values!({"z": 1, "n": 1}))
        .expect("valid");
    b.set([k.clone()], &values!({"n": {"deep": 1}}))
        .expect("valid");
    let result = store.apply(&b).await;
    assert!(
        matches!(result, Err(Error::PathConflict { .. })),
        "{}: conflict within one batch, got {result:?}",
        store.name()
    );
    assert_eq!(
        get_one(&*store, &k).await,
        values!({"a": 1, "m": {"x": 1}}),
        "{}: a conflicting batch must write nothing at its key",
        store.name()
    );
}

/// `range` answers one document per start, aligned, with blanks; other granularities,
/// metrics (including ones sharing a prefix) and the status slot stay out.
pub async fn metric_range_is_aligned_and_isolated(store: Arc<dyn MetricStore>) {
    let m = unique("range");
    let neighbour = format!("{m}x");
    let h = hour();
    let mut b = Batch::new();
    for i in [0_i64, 1, 3, 4, 7] {
        b.inc(
            [Key::bucket(&m, h, i * 3600).expect("valid")],
            &values!({"n": i}),
        )
        .expect("valid");
    }
    b.inc(
        [Key::bucket(&m, day(), 0).expect("valid")],
        &values!({"day": 1}),
    )
    .expect("valid");
    b.inc(
        [Key::bucket(&neighbour, h, 3600).expect("valid")],
        &values!({"other": 1}),
    )
    .expect("valid");
    b.set([Key::status(&m).expect("valid")], &values!({"status": 1}))
        .expect("valid");
    apply(&*store, &b).await;
    let starts: Vec<i64> = (-2..=8).map(|i| i * 3600).collect();
    let docs = store
        .range(&m, h, &starts)
        .await
        .unwrap_or_else(|e| panic!("{}: range failed: {e}", store.name()));
    let expected: Vec<Values> = (-2..=8_i64)
        .map(|i| {
            if [0, 1, 3, 4, 7].contains(&i) {
                values!({"n": i})
            } else {
                Values::new()
            }
        })
        .collect();
    assert_eq!(
        docs,
        expected,
        "{}: range must be aligned with the starts asked",
        store.name()
    );
    let sparse = store
        .range(&m, h, &[3600, 4 * 3600, 100 * 3600])
        .await
        .expect("range");
    assert_eq!(
        sparse,
        vec![values!({"n": 1}), values!({"n": 4}), Values::new()],
        "{}: sparse starts",
        store.name()
    );
    assert!(store.range(&m, h, &[]).await.expect("range").is_empty());
    let days = store.range(&m, day(), &[0]).await.expect("range");
    assert_eq!(
        days,
        vec![values!({"day": 1})],
        "{}: other granularity",
        store.name()
    );
}

/// `range` refuses unsorted starts and bad metric keys.
pub async fn metric_range_refuses_bad_input(store: Arc<dyn MetricStore>) {
    let m = unique("range");
    assert!(
        matches!(
            store.range(&m, hour(), &[3600, 0]).await,
            Err(Error::InvalidInput(_))
        ),
        "{}: unsorted starts must be refused",
        store.name()
    );
    assert!(
        matches!(
            store.range(&m, hour(), &[0, 0]).await,
            Err(Error::InvalidInput(_))
        ),
        "{}: repeated starts must be refused",
        store.name()
    );
    assert!(
        matches!(
            store.range("bad::name", hour(), &[0]).await,
            Err(Error::InvalidName { .. })
        ),
        "{}: a bad metric key must be refused",
        store.name()
    );
}

/// `delete` removes whole documents; missing keys are fine; other keys stay.
pub async fn metric_delete(store: Arc<dyn MetricStore>) {
    let m = unique("delete");
    let keys: Vec<Key> = (0..3).map(|i| key(&m, i * 3600)).collect();
    apply(
        &*store,
        &batch(Op::Inc, &keys, &values!({"a": 1, "b": {"c": 2}})),
    )
    .await;
    store
        .remove(&[keys[0].clone(), keys[2].clone(), key(&unique("none"), 0)])
        .await
        .unwrap_or_else(|e| panic!("{}: remove failed: {e}", store.name()));
    assert_eq!(
        get(&*store, &keys).await,
        vec![
            Values::new(),
            values!({"a": 1, "b": {"c": 2}}),
            Values::new()
        ],
        "{}: delete must remove exactly the keys given",
        store.name()
    );
    // A deleted document starts afresh, even where a leaf becomes a map.
    apply(
        &*store,
        &batch(Op::Inc, &keys[..1], &values!({"a": {"x": 1}})),
    )
    .await;
    assert_eq!(
        get_one(&*store, &keys[0]).await,
        values!({"a": {"x": 1}}),
        "{}: write after delete",
        store.name()
    );
    store.remove(&[]).await.expect("empty delete");
}

/// The status slot of a metric is a document of its own.
pub async fn metric_status_slot_is_apart(store: Arc<dyn MetricStore>) {
    let m = unique("status");
    let status = Key::status(&m).expect("valid");
    let bucket = key(&m, 0);
    apply(
        &*store,
        &batch(
            Op::Set,
            std::slice::from_ref(&status),
            &values!({"state": 2}),
        ),
    )
    .await;
    apply(
        &*store,
        &batch(
            Op::Inc,
            std::slice::from_ref(&bucket),
            &values!({"state": 1}),
        ),
    )
    .await;
    assert_eq!(
        get(&*store, &[status, bucket]).await,
        vec![values!({"state": 2}), values!({"state": 1})],
        "{}: status slot",
        store.name()
    );
}

/// Many tasks incrementing one shared key and one key each lose no increment.
pub async fn metric_concurrent_increments_are_exact(store: Arc<dyn MetricStore>, load: Load) {
    const PER_BATCH: usize = 10;
    let Load {
        tasks: task_count,
        increments_per_task,
    } = load;
    let m = unique("concurrent");
    let shared = key(&m, 0);
    let mut tasks = Vec::new();
    for t in 0..task_count {
        let store = Arc::clone(&store);
        let shared = shared.clone();
        let own = key(&m, (t as i64 + 1) * 3600);
        tasks.push(tokio::spawn(async move {
            let one = values!({"n": 1, "nested": {"n": 1}});
            let mut b = Batch::new();
            for _ in 0..PER_BATCH {
                b.inc([shared.clone(), own.clone()], &one).expect("valid");
            }
            for _ in 0..increments_per_task.div_ceil(PER_BATCH) {
                store
                    .apply(&b)
                    .await
                    .unwrap_or_else(|e| panic!("{}: apply failed: {e}", store.name()));
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    let per_task = (increments_per_task.div_ceil(PER_BATCH) * PER_BATCH) as i64;
    let total = per_task * task_count as i64;
    assert_eq!(
        get_one(&*store, &shared).await,
        values!({"n": total, "nested": {"n": total}}),
        "{}: {task_count} tasks x {per_task} increments of a shared key lost some",
        store.name()
    );
    let owns: Vec<Key> = (0..task_count)
        .map(|t| key(&m, (t as i64 + 1) * 3600))
        .collect();
    for doc in get(&*store, &owns).await {
        assert_eq!(
            doc,
            values!({"n": per_task, "nested": {"n": per_task}}),
            "{}: a task's own key lost increments",
            store.name()
        );
    }
}

/// Every write is visible to the next read.
pub async fn metric_read_after_write(store: Arc<dyn MetricStore>) {
    let m = unique("raw");
    let k = key(&m, 0);
    for i in 1..=50_i64 {
        apply(
            &*store,
            &batch(Op::Inc, std::slice::from_ref(&k), &values!({"n": 1})),
        )
        .await;
        assert_eq!(
            get_one(&*store, &k).await.number_at("n"),
            Some(Number::Int(i)),
            "{}: read after write (get)",
            store.name()
        );
        let ranged = store.range(&m, hour(), &[0]).await.expect("range");
        assert_eq!(
            ranged[0].number_at("n"),
            Some(Number::Int(i)),
            "{}: read after write (range)",
            store.name()
        );
    }
}
