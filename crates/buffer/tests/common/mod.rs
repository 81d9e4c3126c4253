//! The coalescing property: random writes through `Buffered`, then flushed, give what applying
//! them one by one gives, and every write one-by-one application refuses is reported.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeSet, HashMap};
use std::sync::{Arc, Mutex};

use stats_buffer::{Buffered, Coalescing, Options};
use stats_core::{Batch, Error, Key, MetricStore, Number, Op, Values};

/// A small deterministic generator (xorshift64*), so that a failure names its seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

fn number(rng: &mut Rng, floats: bool) -> Number {
    const EDGES: [i64; 8] = [
        i64::MAX,
        i64::MIN,
        i64::MAX - 1,
        i64::MIN + 1,
        1 << 53,
        -(1 << 53),
        i64::MAX / 2,
        0,
    ];
    match rng.below(if floats { 20 } else { 16 }) {
        0..=11 => Number::Int(rng.below(21) as i64 - 10),
        12 => Number::Int(*rng.pick(&EDGES)),
        13 => Number::Int(rng.next() as i64),
        14 | 15 => Number::Int(-(rng.below(1000) as i64)),
        16 | 17 => Number::Float((rng.below(2001) as f64 - 1000.0) / 8.0),
        18 => Number::Float(*rng.pick(&[-0.0, 0.5, 1e300, -1e300, 9_007_199_254_740_993.0, 0.1])),
        _ => Number::Float(
            f64::from_bits(rng.next() >> 2) * if rng.below(2) == 0 { 1.0 } else { -1.0 },
        ),
    }
}

/// One write of the sequence: an operation of one number at one path of one key.
#[derive(Debug, Clone)]
pub struct Step {
    pub op: Op,
    pub key: usize,
    pub path: &'static str,
    pub number: Number,
    /// Flush the buffer before this step.
    pub flush_before: bool,
}

const PATHS: [&str; 5] = ["a", "b", "m.x", "m.y", "m"];

pub fn sequence(rng: &mut Rng, len: usize, keys: usize, floats: bool) -> Vec<Step> {
    (0..len)
        .map(|_| Step {
            op: *rng.pick(&[Op::Inc, Op::Inc, Op::Inc, Op::Set, Op::Max, Op::Min]),
            key: rng.below(keys as u64) as usize,
            // "m" both as a number and as a map: rarely, so most sequences have no conflict.
            path: PATHS[if rng.below(100) == 0 {
                4
            } else {
                rng.below(4) as usize
            }],
            number: number(rng, floats),
            flush_before: rng.below(25) == 0,
        })
        .collect()
}

fn values_of(path: &str, n: Number) -> Values {
    Values::from_flat([(path, n)]).expect("a valid path")
}

fn close(a: Number, b: Number, scale: f64) -> bool {
    match (a, b) {
        (Number::Int(x), Number::Int(y)) => x == y,
        (Number::Float(x), Number::Float(y)) => {
            // Zeros keep their sign; other floats may differ by the rounding of a sum.
            (x == y && x.is_sign_negative() == y.is_sign_negative())
                || (x != y && (x - y).abs() <= 1e-12 * scale.max(x.abs()).max(y.abs()))
        }
        _ => false,
    }
}

/// Runs `steps` one by one on `direct` and through a `Buffered` over `buffered` (two empty
/// stores of the same kind) and compares. Returns the number of steps the direct store refused.
pub async fn check<S: MetricStore>(
    direct: &dyn MetricStore,
    buffered: S,
    seed: u64,
    steps: &[Step],
    keys: &[Key],
) -> usize {
    let refused: Arc<Mutex<Vec<(Batch, String)>>> = Arc::default();
    let seen = refused.clone();
    let buffer = Buffered::with(
        buffered,
        Coalescing::new()
            .options(
                Options::new()
                    .interval(std::time::Duration::from_secs(3600))
                    .expect("interval"),
            )
            .on_refused(move |batch, error| seen.lock().unwrap().push((batch, error.to_string()))),
    )
    .expect("runtime");
    let mut direct_errors: BTreeSet<usize> = BTreeSet::new();
    let mut buffer_errors: BTreeSet<usize> = BTreeSet::new();
    // Per key and path, the sum of magnitudes written: the scale of float rounding.
    let mut scale: HashMap<(usize, String), f64> = HashMap::new();
    for step in steps {
        if step.flush_before {
            // A flush error here is a refusal, reported below.
            let _ = buffer.flush().await;
        }
        *scale.entry((step.key, step.path.to_owned())).or_default() += step.number.as_f64().abs();
        let mut batch = Batch::new();
        batch
            .push(
                step.op,
                [keys[step.key].clone()],
                &values_of(step.path, step.number),
            )
            .expect("a valid write");
        if let Err(e) = direct.apply(&batch).await {
            if std::env::var_os("STATS_DEBUG_COALESCE").is_some() {
                eprintln!("direct refused {step:?}: {e}");
            }
            direct_errors.insert(step.key);
        }
        if let Err(e) = buffer.apply(&batch).await {
            assert!(
                matches!(e, Error::Overflow { .. } | Error::PathConflict { .. }),
                "seed {seed}: unexpected error {e}"
            );
            buffer_errors.insert(step.key);
        }
    }
    let expected = direct.read(keys).await.expect("read the direct store");
    let pending = buffer.read(keys).await;
    buffer.flush().await.expect("flush");
    let got = buffer
        .inner()
        .read(keys)
        .await
        .expect("read the buffered store");
    for (batch, _) in refused.lock().unwrap().iter() {
        for key in batch.sorted_keys() {
            buffer_errors.insert(keys.iter().position(|k| k == key).expect("one of ours"));
        }
    }
    assert!(
        buffer_errors.is_subset(&direct_errors),
        "seed {seed}: the buffer refused writes of keys {buffer_errors:?}, one-by-one application \
         only of {direct_errors:?}; refusals: {:?}\n{steps:#?}",
        refused.lock().unwrap()
    );
    let compare = |what: &str, got: &[Values]| {
        for (i, (want, have)) in expected.iter().zip(got).enumerate() {
            // Where both refused something, the outcomes may differ (the buffer refuses the
            // document's pending updates together). Where only one-by-one application refused
            // a write, a later `set` made it moot: the outcome must be the same.
            if buffer_errors.contains(&i) {
                continue;
            }
            let (w, h) = (want.flatten(), have.flatten());
            let same = w.len() == h.len()
                && w.iter().zip(&h).all(|((pw, nw), (ph, nh))| {
                    let scale = scale.get(&(i, pw.clone())).copied().unwrap_or(0.0);
                    pw == ph && close(*nw, *nh, scale)
                });
            assert!(
                same,
                "seed {seed}: {what} of key {i}: want {want}, got {have}\n{steps:#?}"
            );
        }
    };
    if direct_errors.is_empty() {
        compare(
            "read before the flush",
            &pending.expect("a read through the buffer"),
        );
    }
    compare("stored", &got);
    assert!(buffer.shutdown().await.is_empty());
    direct_errors.len()
}

/// The keys of one run: two metrics, two buckets each, under a unique metric name.
pub fn keys(label: &str) -> Vec<Key> {
    let g = "1h".parse().expect("granularity");
    let a = stats_core::testkit::unique(label);
    let b = format!("{a}b");
    vec![
        Key::bucket(&a, g, 0).expect("key"),
        Key::bucket(&a, g, 3600).expect("key"),
        Key::bucket(&b, g, 0).expect("key"),
        Key::status(&b).expect("key"),
    ]
}

/// `runs` random sequences on fresh stores from `store`; checks that some runs had refusals
/// and most had none (so both branches were exercised).
pub async fn property<S, F, Fut>(label: &str, runs: u64, len: usize, floats: bool, store: F)
where
    S: MetricStore,
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = S>,
{
    let mut with_refusals = 0;
    for seed in 0..runs {
        let mut rng = Rng::new(seed + 1);
        let keys = keys(label);
        let steps = sequence(&mut rng, len, keys.len(), floats);
        let direct = store().await;
        if check(&direct, store().await, seed, &steps, &keys).await > 0 {
            with_refusals += 1;
        }
    }
    assert!(
        with_refusals > 0 && with_refusals < runs,
        "{with_refusals} of {runs} runs had refusals: the generator does not exercise both cases"
    );
}
