//! Conformance checks that `max` and `min` across an integer and a float agree exactly with
//! [`Number::max_value`] / [`Number::min_value`], at the edges where a comparison through
//! `f64` goes wrong (2^53, 2^63, `i64::MAX`, `i64::MIN`).

use std::sync::Arc;

use super::unique;
use crate::{Batch, Granularity, Key, MetricStore, Number, Op, Values};

/// 2^53: above it not every integer is a float.
const TWO_53: i64 = 1 << 53;

/// Integers at the edges of exact `f64` representation and of the `i64` range.
pub const EDGE_INTS: [i64; 10] = [
    TWO_53 - 1,
    TWO_53,
    TWO_53 + 1,
    -TWO_53 - 1,
    i64::MAX,
    i64::MAX - 1,
    i64::MIN,
    i64::MIN + 1,
    0,
    -1,
];

/// Floats at the same edges (2^53, 2^63, -2^63 and their neighbours), plus fractions around
/// zero and magnitudes far outside the `i64` range.
pub const EDGE_FLOATS: [f64; 14] = [
    9_007_199_254_740_992.0,      // 2^53
    9_007_199_254_740_994.0,      // 2^53 + 2, the next float
    -9_007_199_254_740_992.0,     // -2^53
    9_223_372_036_854_775_808.0,  // 2^63
    9_223_372_036_854_774_784.0,  // the largest float below 2^63
    -9_223_372_036_854_775_808.0, // -2^63 == i64::MIN
    -9_223_372_036_854_777_856.0, // the next float below -2^63
    0.5,
    -0.5,
    0.999_999_999_999_999_9,
    -1.000_000_000_000_000_2,
    1e300,
    -1e300,
    5e-324,
];

/// Every (integer, float) pair of the edges, in both orders: `(stored, given)`.
pub fn edge_pairs() -> Vec<(Number, Number)> {
    let mut pairs = Vec::new();
    for i in EDGE_INTS {
        for f in EDGE_FLOATS {
            pairs.push((Number::Int(i), Number::Float(f)));
            pairs.push((Number::Float(f), Number::Int(i)));
        }
    }
    pairs
}

/// Kind and value equal, floats compared bit for bit.
pub fn same_number(a: Number, b: Number) -> bool {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => x == y,
        (Number::Float(x), Number::Float(y)) => x.to_bits() == y.to_bits(),
        _ => false,
    }
}

fn key(metric: &str) -> Key {
    let hour: Granularity = "1h".parse().expect("1h parses");
    Key::bucket(metric, hour, 0).expect("test metric names are valid")
}

fn doc(leaves: impl IntoIterator<Item = (String, Number)>) -> Values {
    let mut values = Values::new();
    for (name, n) in leaves {
        values.insert(name, n).expect("test leaves are valid");
    }
    values
}

/// Stores each pair's first number with `set`, then applies `op` (`Max` or `Min`) with the
/// second: once in a later batch (stored leaves `s<i>`) and once in the same batch right after
/// the `set` (leaves `b<i>`). Every leaf must then equal `Number::max_value`/`min_value` of its
/// pair, kind and value.
async fn check_mixed(store: Arc<dyn MetricStore>, op: Op) {
    let caps = store.capabilities();
    if !caps.max_min || !caps.floats {
        // `metric_max_min` and `metric_floats` check the Unsupported errors.
        return;
    }
    let pairs = edge_pairs();
    let k = key(&unique("exact"));
    let firsts = doc(pairs
        .iter()
        .enumerate()
        .flat_map(|(i, &(a, _))| [(format!("s{i}"), a), (format!("b{i}"), a)]));
    let seconds_stored = doc(pairs
        .iter()
        .enumerate()
        .map(|(i, &(_, b))| (format!("s{i}"), b)));
    let seconds_same = doc(pairs
        .iter()
        .enumerate()
        .map(|(i, &(_, b))| (format!("b{i}"), b)));
    let name = store.name();
    let mut first = Batch::new();
    first
        .set([k.clone()], &firsts)
        .expect("test batch is valid")
        .push(op, [k.clone()], &seconds_same)
        .expect("test batch is valid");
    store
        .apply(&first)
        .await
        .unwrap_or_else(|e| panic!("{name}: set then {op:?} in one batch failed: {e}"));
    let mut second = Batch::new();
    second
        .push(op, [k.clone()], &seconds_stored)
        .expect("test batch is valid");
    store
        .apply(&second)
        .await
        .unwrap_or_else(|e| panic!("{name}: {op:?} over stored leaves failed: {e}"));
    let got = store
        .read(std::slice::from_ref(&k))
        .await
        .unwrap_or_else(|e| panic!("{name}: read failed: {e}"))
        .remove(0);
    let mut wrong = Vec::new();
    for (i, &(a, b)) in pairs.iter().enumerate() {
        let want = match op {
            Op::Max => a.max_value(b),
            _ => a.min_value(b),
        };
        for (leaf, how) in [(format!("s{i}"), "stored"), (format!("b{i}"), "same batch")] {
            let have = got.number_at(&leaf);
            if !have.is_some_and(|h| same_number(h, want)) {
                wrong.push(format!(
                    "{op:?}({a:?} {how}, {b:?}) = {have:?}, expected {want:?}"
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "{name}: {} of {} mixed-kind {op:?} results differ from Number's exact comparison \
         (the first number is stored, the second applied):\n{}",
        wrong.len(),
        2 * pairs.len(),
        wrong.join("\n")
    );
}

/// `max` of an integer and a float keeps the larger exactly (no rounding through `f64`), the
/// stored number on a tie, and the kind of the one kept.
pub async fn metric_max_mixed_kinds_is_exact(store: Arc<dyn MetricStore>) {
    check_mixed(store, Op::Max).await;
}

/// `min` of an integer and a float keeps the smaller exactly (no rounding through `f64`), the
/// stored number on a tie, and the kind of the one kept.
pub async fn metric_min_mixed_kinds_is_exact(store: Arc<dyn MetricStore>) {
    check_mixed(store, Op::Min).await;
}
