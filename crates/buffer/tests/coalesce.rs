//! The coalescing property on the in-process store (see `common`).

mod common;

use stats_backend_atomics::AtomicsStore;

#[tokio::test]
async fn coalescing_is_exact_on_atomics() {
    common::property("ints", 300, 60, false, || async { AtomicsStore::new() }).await;
    common::property("floats", 300, 60, true, || async { AtomicsStore::new() }).await;
}

/// Edges a random sequence rarely meets, one by one vs through the buffer.
#[tokio::test]
async fn edge_sequences_are_exact() {
    use common::Step;
    use stats_core::{Number, Op};
    let step = |op, path, number| Step {
        op,
        key: 0,
        path,
        number,
        flush_before: false,
    };
    let f = Number::Float;
    let i = Number::Int;
    let cases: Vec<Vec<Step>> = vec![
        // Negative zero, folded as one by one.
        vec![step(Op::Inc, "a", f(-0.0)), step(Op::Inc, "a", f(-0.0))],
        vec![step(Op::Set, "a", f(-0.0)), step(Op::Inc, "a", f(-0.0))],
        // Increments that sum to 0 still create the leaf.
        vec![step(Op::Inc, "a", i(5)), step(Op::Inc, "a", i(-5))],
        // An intermediate overflow is refused as one by one, then the leaf goes on.
        vec![
            step(Op::Inc, "a", i(i64::MAX)),
            step(Op::Inc, "a", i(1)),
            step(Op::Inc, "a", i(-1)),
        ],
        // Increments beyond i64 in total, coming back within it.
        vec![
            step(Op::Inc, "a", i(i64::MIN)),
            step(Op::Inc, "a", i(i64::MAX)),
            step(Op::Inc, "a", i(i64::MAX)),
        ],
        // A set absorbs what follows; a float after a set stays exact.
        vec![
            step(Op::Set, "a", i(1 << 53)),
            step(Op::Inc, "a", f(1.0)),
            step(Op::Max, "a", i(3)),
        ],
        // Float sums that overflow are refused, not folded into infinity.
        vec![step(Op::Inc, "a", f(1e308)), step(Op::Inc, "a", f(1e308))],
        // Ties of an integer and an equal float: the first wins.
        vec![step(Op::Max, "a", i(5)), step(Op::Max, "a", f(5.0))],
        vec![step(Op::Min, "a", f(5.0)), step(Op::Min, "a", i(5))],
    ];
    for (n, steps) in cases.iter().enumerate() {
        let keys = common::keys("edge");
        common::check(
            &AtomicsStore::new(),
            AtomicsStore::new(),
            n as u64,
            steps,
            &keys,
        )
        .await;
    }
}
