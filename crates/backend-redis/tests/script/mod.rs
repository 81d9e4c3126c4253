//! The apply script's own arithmetic against the core's, on one Redis server (part of the
//! `single` suite): max/min across kinds on random pairs near the edges of exact `f64`
//! representation, kinds inside one batch, keys of different shapes, and errors that name the
//! right key in a batch of many keys.

use std::cmp::Ordering;

use stats_core::testkit::{EDGE_FLOATS, EDGE_INTS, same_number};
use stats_core::{Batch, Error, Granularity, Key, MetricStore, Number, Values, values};

use super::store;

fn hour() -> Granularity {
    "1h".parse().unwrap()
}

/// SplitMix64: a small deterministic generator, seeded per run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len() as u64) as usize]
    }

    /// An integer within a few thousand of an edge (2^53, 2^63, i64::MIN, 0, ...).
    fn int(&mut self) -> i64 {
        let base = self.pick(&EDGE_INTS);
        let offset = self.below(4097) as i64 - 2048;
        base.saturating_add(offset)
    }

    /// A float within a few ulps of an edge, or an edge plus a small whole number and a
    /// fraction.
    fn float(&mut self) -> f64 {
        let base = self.pick(&EDGE_FLOATS);
        let x = match self.below(3) {
            0 => {
                let steps = self.below(9) as i64 - 4;
                // Step the magnitude, keeping the sign (never across zero).
                let magnitude = (base.abs().to_bits() as i64 + steps).max(0) as u64;
                f64::from_bits(magnitude).copysign(base)
            }
            1 => base + (self.below(4097) as f64 - 2048.0),
            _ => base + self.pick(&[0.25, 0.5, -0.5, -0.75, 1.5]),
        };
        if x.is_finite() { x } else { base }
    }

    /// A float within two ulps of the float nearest to `i`.
    fn float_near(&mut self, i: i64) -> f64 {
        let base = i as f64;
        let steps = self.below(5) as i64 - 2;
        let magnitude = (base.abs().to_bits() as i64 + steps).max(0) as u64;
        f64::from_bits(magnitude).copysign(base)
    }

    /// An integer within two of the integral part of `f`, when that is an `i64`.
    fn int_near(&mut self, f: f64) -> i64 {
        (f.trunc() as i64).saturating_add(self.below(5) as i64 - 2)
    }

    fn number(&mut self) -> Number {
        if self.below(2) == 0 {
            Number::Int(self.int())
        } else {
            Number::Float(self.float())
        }
    }
}

fn doc(leaves: impl IntoIterator<Item = (String, Number)>) -> Values {
    let mut values = Values::new();
    for (name, n) in leaves {
        values.insert(name, n).unwrap();
    }
    values
}

/// A few thousand pairs near the edges, mostly mixed kinds: the script's max and min (the
/// first number stored, the second applied) keep exactly what `Number::cmp_value` says.
#[tokio::test]
async fn max_and_min_agree_with_number_on_random_pairs_near_the_edges() {
    let s = store().await;
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let mut rng = Rng(seed);
    let pairs: Vec<(Number, Number)> = (0..3000)
        .map(|i| match i % 6 {
            0 => (Number::Int(rng.int()), Number::Float(rng.float())),
            1 => (Number::Float(rng.float()), Number::Int(rng.int())),
            2 => {
                let int = rng.int();
                let pair = (Number::Int(int), Number::Float(rng.float_near(int)));
                if rng.below(2) == 0 {
                    pair
                } else {
                    (pair.1, pair.0)
                }
            }
            3 => {
                let float = rng.float();
                let pair = (Number::Float(float), Number::Int(rng.int_near(float)));
                if rng.below(2) == 0 {
                    pair
                } else {
                    (pair.1, pair.0)
                }
            }
            _ => (rng.number(), rng.number()),
        })
        .collect();
    for (name, max) in [("max", true), ("min", false)] {
        let key = Key::bucket(&format!("random-{name}"), hour(), 0).unwrap();
        let mut first = Batch::new();
        first
            .set(
                [key.clone()],
                &doc(pairs
                    .iter()
                    .enumerate()
                    .map(|(i, p)| (format!("p{i}"), p.0))),
            )
            .unwrap();
        s.apply(&first).await.unwrap();
        let seconds = doc(pairs
            .iter()
            .enumerate()
            .map(|(i, p)| (format!("p{i}"), p.1)));
        let mut second = Batch::new();
        if max {
            second.max([key.clone()], &seconds).unwrap();
        } else {
            second.min([key.clone()], &seconds).unwrap();
        }
        s.apply(&second).await.unwrap();
        let got = s.read(std::slice::from_ref(&key)).await.unwrap().remove(0);
        let mut wrong = Vec::new();
        for (i, &(stored, given)) in pairs.iter().enumerate() {
            let wins = if max {
                Ordering::Greater
            } else {
                Ordering::Less
            };
            let want = if given.cmp_value(stored) == wins {
                given
            } else {
                stored
            };
            let have = got.number_at(&format!("p{i}"));
            if !have.is_some_and(|h| same_number(h, want)) {
                wrong.push(format!(
                    "{name}({stored:?} stored, {given:?}) = {have:?}, expected {want:?}"
                ));
            }
        }
        assert!(
            wrong.is_empty(),
            "seed {seed}: {} of {} results differ:\n{}",
            wrong.len(),
            pairs.len(),
            wrong.join("\n")
        );
    }
}

/// A leaf created in a batch by a set (or max/min) takes the kind of the value given, so a
/// later increment in the same batch adds as the core does.
#[tokio::test]
async fn a_new_leaf_keeps_its_kind_for_later_updates_in_the_batch() {
    let s = store().await;
    let key = Key::bucket("kinds", hour(), 0).unwrap();
    let mut batch = Batch::new();
    batch
        .set([key.clone()], &values!({"s": 2.5}))
        .unwrap()
        .max([key.clone()], &values!({"x": 1.5}))
        .unwrap()
        .min([key.clone()], &values!({"n": 7}))
        .unwrap()
        .inc([key.clone()], &values!({"s": 1, "x": 1, "n": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    let got = s.read(std::slice::from_ref(&key)).await.unwrap().remove(0);
    for (leaf, want) in [
        ("s", Number::Float(3.5)),
        ("x", Number::Float(2.5)),
        ("n", Number::Int(8)),
    ] {
        let have = got.number_at(leaf);
        assert!(
            have.is_some_and(|h| same_number(h, want)),
            "{leaf}: {have:?}, expected {want:?}"
        );
    }
}

/// In a batch over many keys, a conflict at one of the last keys is reported with that key
/// and path, in either order of leaf and map within the batch, and nothing is written.
#[tokio::test]
async fn a_conflict_late_in_a_large_batch_names_its_key_and_writes_nothing() {
    let s = store().await;
    let keys: Vec<Key> = (0..40)
        .map(|i| Key::bucket("many", hour(), i * 3600).unwrap())
        .collect();
    let mut setup = Batch::new();
    setup
        .inc([keys[30].clone()], &values!({"a": 1, "m": {"x": 1}}))
        .unwrap();
    s.apply(&setup).await.unwrap();
    let before = s.read(&keys).await.unwrap();

    let mut below = Batch::new();
    below
        .inc(keys.clone(), &values!({"z": 1, "a": {"b": 1}}))
        .unwrap();
    match s.apply(&below).await {
        Err(Error::PathConflict { key, path, .. }) => {
            assert_eq!(key, keys[30].to_string());
            assert_eq!(path, "a.b");
        }
        other => panic!("expected a path conflict at {}, got {other:?}", keys[30]),
    }

    let mut over_map = Batch::new();
    over_map
        .inc(keys.clone(), &values!({"z": 1}))
        .unwrap()
        .set([keys[35].clone()], &values!({"q": {"r": 1}}))
        .unwrap()
        .inc([keys[35].clone()], &values!({"q": 1}))
        .unwrap();
    match s.apply(&over_map).await {
        Err(Error::PathConflict { key, path, detail }) => {
            assert_eq!(key, keys[35].to_string());
            assert_eq!(path, "q");
            assert!(detail.contains("is a map"), "{detail}");
        }
        other => panic!("expected a path conflict at {}, got {other:?}", keys[35]),
    }

    let mut leaf_then_map = Batch::new();
    leaf_then_map
        .inc(keys.clone(), &values!({"z": 1}))
        .unwrap()
        .inc([keys[39].clone()], &values!({"w": 1}))
        .unwrap()
        .inc([keys[39].clone()], &values!({"w": {"v": 1}}))
        .unwrap();
    match s.apply(&leaf_then_map).await {
        Err(Error::PathConflict { key, path, detail }) => {
            assert_eq!(key, keys[39].to_string());
            assert_eq!(path, "w.v");
            assert!(detail.contains("below a number"), "{detail}");
        }
        other => panic!("expected a path conflict at {}, got {other:?}", keys[39]),
    }
    assert_eq!(
        s.read(&keys).await.unwrap(),
        before,
        "a failing batch writes nothing"
    );
}

/// New leaves below new maps across many keys: markers are written once per map, and a
/// later batch sees them.
#[tokio::test]
async fn new_nested_leaves_in_a_large_batch_get_their_markers() {
    let s = store().await;
    let keys: Vec<Key> = (0..20)
        .map(|i| Key::bucket("nested", hour(), i * 3600).unwrap())
        .collect();
    let mut doc = Values::new();
    for i in 0..50 {
        doc.insert(format!("g{}", i % 5), values!({"a": {"b": i}, "c": i}))
            .unwrap();
    }
    let mut batch = Batch::new();
    batch.inc(keys.clone(), &doc).unwrap();
    s.apply(&batch).await.unwrap();
    assert_eq!(s.read(&keys).await.unwrap(), vec![doc.clone(); keys.len()]);
    let mut bad = Batch::new();
    bad.inc([keys[19].clone()], &values!({"g4": {"a": 1}}))
        .unwrap();
    assert!(matches!(
        s.apply(&bad).await,
        Err(Error::PathConflict { .. })
    ));
}

/// Keys written at different paths, in different orders, by several writes of one batch:
/// every key gets exactly its own updates, in batch order.
#[tokio::test]
async fn writes_over_keys_of_different_shapes_apply_in_order() {
    let s = store().await;
    let (k1, k2, k3) = (
        Key::bucket("shapes", hour(), 0).unwrap(),
        Key::bucket("shapes", hour(), 3600).unwrap(),
        Key::bucket("shapes", hour(), 7200).unwrap(),
    );
    let mut batch = Batch::new();
    batch
        .inc([k1.clone()], &values!({"a": 1}))
        .unwrap()
        .inc([k2.clone(), k1.clone()], &values!({"b": 1, "a": 2}))
        .unwrap()
        .max([k3.clone(), k2.clone(), k1.clone()], &values!({"c": 5}))
        .unwrap()
        .set([k2.clone()], &values!({"b": 0.5}))
        .unwrap()
        .inc([k2.clone(), k3.clone()], &values!({"b": 1}))
        .unwrap();
    s.apply(&batch).await.unwrap();
    assert_eq!(
        s.read(&[k1, k2, k3]).await.unwrap(),
        vec![
            values!({"a": 3, "b": 1, "c": 5}),
            values!({"a": 2, "b": 1.5, "c": 5}),
            values!({"b": 1, "c": 5}),
        ]
    );
}
