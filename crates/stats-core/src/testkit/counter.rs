//! Conformance checks of [`CounterStore`].

use std::sync::Arc;

use super::{Load, unique};
use crate::{CasOutcome, CounterStore, Error, NameKind};

macro_rules! ok {
    ($store:expr, $call:expr) => {
        $call
            .await
            .unwrap_or_else(|e| panic!("{}: {} failed: {e}", $store.name(), stringify!($call)))
    };
}

/// `inc` starts a missing counter at `default`, adds `step` and returns the new value.
pub async fn counter_inc_with_step_and_default(store: Arc<dyn CounterStore>) {
    let ns = unique("inc");
    assert_eq!(
        ok!(store, store.inc(&ns, "a", 5, 10)),
        15,
        "{}: first inc is default + step",
        store.name()
    );
    assert_eq!(
        ok!(store, store.inc(&ns, "a", 5, 1000)),
        20,
        "{}: default only applies to a missing counter",
        store.name()
    );
    assert_eq!(
        ok!(store, store.inc(&ns, "a", -25, 0)),
        -5,
        "{}: negative steps",
        store.name()
    );
    assert_eq!(ok!(store, store.inc(&ns, "b", 1, 0)), 1);
    assert_eq!(
        ok!(store, store.inc(&ns, "c", 0, 7)),
        7,
        "{}: a zero step creates the counter at default",
        store.name()
    );
    assert_eq!(ok!(store, store.get(&ns, "c")), Some(7));
}

/// `get` gives `None` for a missing counter; `get_all` lists a namespace sorted by key.
pub async fn counter_get_and_get_all(store: Arc<dyn CounterStore>) {
    let ns = unique("get");
    assert_eq!(
        ok!(store, store.get(&ns, "missing")),
        None,
        "{}: missing counter",
        store.name()
    );
    assert!(
        ok!(store, store.get_all(&ns)).is_empty(),
        "{}: unknown namespace",
        store.name()
    );
    for (k, v) in [("b", 2), ("a", 1), ("c.d", 3), ("é", 4), ("user:7", 5)] {
        ok!(store, store.set(&ns, k, v));
    }
    let other = unique("get");
    ok!(store, store.set(&other, "zzz", 9));
    assert_eq!(
        ok!(store, store.get_all(&ns)),
        vec![
            ("a".to_owned(), 1),
            ("b".to_owned(), 2),
            ("c.d".to_owned(), 3),
            ("user:7".to_owned(), 5),
            ("é".to_owned(), 4),
        ],
        "{}: get_all must list exactly the namespace, sorted by key",
        store.name()
    );
    assert_eq!(ok!(store, store.get(&ns, "b")), Some(2));
}

/// `set` and `reset` create or overwrite.
pub async fn counter_set_and_reset(store: Arc<dyn CounterStore>) {
    let ns = unique("set");
    ok!(store, store.set(&ns, "a", 42));
    assert_eq!(ok!(store, store.get(&ns, "a")), Some(42));
    ok!(store, store.set(&ns, "a", i64::MIN));
    assert_eq!(
        ok!(store, store.get(&ns, "a")),
        Some(i64::MIN),
        "{}: the full i64 range",
        store.name()
    );
    ok!(store, store.reset(&ns, "a", 3));
    assert_eq!(ok!(store, store.get(&ns, "a")), Some(3));
    ok!(store, store.reset(&ns, "fresh", 0));
    assert_eq!(
        ok!(store, store.get(&ns, "fresh")),
        Some(0),
        "{}: reset creates",
        store.name()
    );
    assert_eq!(ok!(store, store.inc(&ns, "a", 1, 100)), 4);
}

/// `delete` removes one counter and says whether it existed.
pub async fn counter_delete(store: Arc<dyn CounterStore>) {
    let ns = unique("delete");
    ok!(store, store.set(&ns, "a", 5));
    ok!(store, store.set(&ns, "b", 6));
    assert!(
        ok!(store, store.delete(&ns, "a")),
        "{}: delete of an existing counter returns true",
        store.name()
    );
    assert!(
        !ok!(store, store.delete(&ns, "a")),
        "{}: delete of a missing counter returns false",
        store.name()
    );
    assert_eq!(ok!(store, store.get(&ns, "a")), None);
    assert_eq!(ok!(store, store.get(&ns, "b")), Some(6));
    assert_eq!(
        ok!(store, store.inc(&ns, "a", 1, 10)),
        11,
        "{}: inc after delete starts from default",
        store.name()
    );
}

/// `delete_namespace` removes one namespace whole and nothing else.
pub async fn counter_delete_namespace_is_isolated(store: Arc<dyn CounterStore>) {
    let ns = unique("dns");
    let longer = format!("{ns}x");
    let child = format!("{ns}:child");
    for k in ["a", "b", "c"] {
        ok!(store, store.inc(&ns, k, 1, 0));
        ok!(store, store.inc(&longer, k, 1, 0));
        ok!(store, store.inc(&child, k, 1, 0));
    }
    assert_eq!(
        ok!(store, store.delete_namespace(&ns)),
        3,
        "{}: delete_namespace returns the count",
        store.name()
    );
    assert!(ok!(store, store.get_all(&ns)).is_empty());
    assert_eq!(ok!(store, store.get(&ns, "a")), None);
    assert_eq!(
        ok!(store, store.get_all(&longer)).len(),
        3,
        "{}: a namespace sharing a prefix must survive",
        store.name()
    );
    assert_eq!(
        ok!(store, store.get_all(&child)).len(),
        3,
        "{}: a namespace sharing a prefix must survive",
        store.name()
    );
    assert_eq!(ok!(store, store.delete_namespace(&ns)), 0);
    assert_eq!(
        ok!(store, store.inc(&ns, "a", 1, 0)),
        1,
        "{}: a deleted namespace can be used again",
        store.name()
    );
}

/// `compare_and_swap` swaps only on a match and reports the current value otherwise.
pub async fn counter_compare_and_swap(store: Arc<dyn CounterStore>) {
    let ns = unique("cas");
    assert_eq!(
        ok!(store, store.compare_and_swap(&ns, "a", 1, 5)),
        CasOutcome::Mismatch(0),
        "{}: a missing counter counts as 0",
        store.name()
    );
    assert_eq!(
        ok!(store, store.get(&ns, "a")),
        None,
        "{}: a mismatch must not create the counter",
        store.name()
    );
    assert_eq!(
        ok!(store, store.compare_and_swap(&ns, "a", 0, 5)),
        CasOutcome::Swapped(5),
        "{}: expected 0 creates",
        store.name()
    );
    assert_eq!(
        ok!(store, store.compare_and_swap(&ns, "a", 4, 9)),
        CasOutcome::Mismatch(5)
    );
    assert_eq!(ok!(store, store.get(&ns, "a")), Some(5));
    assert_eq!(
        ok!(store, store.compare_and_swap(&ns, "a", 5, i64::MIN)),
        CasOutcome::Swapped(i64::MIN)
    );
    assert_eq!(
        ok!(store, store.compare_and_swap(&ns, "a", i64::MIN, 0)),
        CasOutcome::Swapped(0)
    );
    assert_eq!(ok!(store, store.get(&ns, "a")), Some(0));
}

/// An increment past `i64` is an overflow error and leaves the counter unchanged.
pub async fn counter_overflow_is_an_error(store: Arc<dyn CounterStore>) {
    let ns = unique("overflow");
    ok!(store, store.set(&ns, "max", i64::MAX));
    ok!(store, store.set(&ns, "min", i64::MIN));
    for (k, step, expected) in [
        ("max", 1, i64::MAX),
        ("min", -1, i64::MIN),
        ("max", i64::MAX, i64::MAX),
    ] {
        let result = store.inc(&ns, k, step, 0).await;
        assert!(
            matches!(result, Err(Error::Overflow { .. })),
            "{}: inc({k}, {step}) past i64 must be Overflow, got {result:?}",
            store.name()
        );
        // Every store says it the same way, with the stored value.
        assert_eq!(
            result.map_err(|e| e.to_string()),
            Err(Error::counter_overflow(&ns, k, expected, step).to_string()),
            "{}",
            store.name()
        );
        assert_eq!(
            ok!(store, store.get(&ns, k)),
            Some(expected),
            "{}: overflow must leave the counter unchanged",
            store.name()
        );
    }
    let result = store.inc(&ns, "new", 1, i64::MAX).await;
    assert!(
        matches!(result, Err(Error::Overflow { .. })),
        "{}: default + step past i64, got {result:?}",
        store.name()
    );
    assert_eq!(
        result.map_err(|e| e.to_string()),
        Err(Error::counter_overflow(&ns, "new", i64::MAX, 1).to_string()),
        "{}: a missing counter overflows from its default",
        store.name()
    );
    assert_eq!(
        ok!(store, store.get(&ns, "new")),
        None,
        "{}: an overflowing first inc must not create the counter",
        store.name()
    );
    assert_eq!(ok!(store, store.inc(&ns, "max", -1, 0)), i64::MAX - 1);
}

/// Bad namespaces and keys are refused by name and nothing is written.
pub async fn counter_bad_names_write_nothing(store: Arc<dyn CounterStore>) {
    let ns = unique("names");
    for (bad_ns, bad_key, kind) in [
        ("", "k", NameKind::Namespace),
        ("a::b", "k", NameKind::Namespace),
        ("$x", "k", NameKind::Namespace),
        (ns.as_str(), "", NameKind::Counter),
        (ns.as_str(), "a::b", NameKind::Counter),
        (ns.as_str(), "nl\n", NameKind::Counter),
        (ns.as_str(), "{tag}", NameKind::Counter),
    ] {
        let checks = [
            store.inc(bad_ns, bad_key, 1, 0).await.err(),
            store.set(bad_ns, bad_key, 1).await.err(),
            store.compare_and_swap(bad_ns, bad_key, 0, 1).await.err(),
            store.get(bad_ns, bad_key).await.err(),
            store.delete(bad_ns, bad_key).await.err(),
        ];
        for err in checks {
            assert!(
                matches!(&err, Some(Error::InvalidName { kind: k, .. }) if *k == kind),
                "{}: ({bad_ns:?}, {bad_key:?}) must be refused as an invalid {kind}, got {err:?}",
                store.name()
            );
        }
    }
    assert!(
        ok!(store, store.get_all(&ns)).is_empty(),
        "{}: nothing written",
        store.name()
    );
    assert!(store.get_all("a::b").await.is_err());
    assert!(store.delete_namespace("").await.is_err());
}

/// `info` counts this run's namespaces and counters.
pub async fn counter_info(store: Arc<dyn CounterStore>) {
    let ns = unique("info");
    for k in ["a", "b"] {
        ok!(store, store.inc(&ns, k, 1, 0));
    }
    let info = ok!(store, store.info());
    assert_eq!(info.store, store.name());
    let mine = info.namespaces.iter().find(|n| n.namespace == ns);
    assert_eq!(
        mine.map(|n| n.counters),
        Some(2),
        "{}: info must count the namespace's counters",
        store.name()
    );
    assert!(info.counters >= 2);
    assert!(
        info.namespaces
            .windows(2)
            .all(|w| w[0].namespace < w[1].namespace),
        "{}: namespaces sorted",
        store.name()
    );
    assert_eq!(info.capacity, store.capabilities().counter_capacity);
}

/// A bounded store refuses a new counter in a full namespace, keeps serving the existing ones
/// and gives the slot back on delete.
pub async fn counter_capacity(store: Arc<dyn CounterStore>) {
    let Some(capacity) = store.capabilities().counter_capacity else {
        return;
    };
    assert!(
        capacity <= 100_000,
        "{}: capacity {capacity} is too large to check",
        store.name()
    );
    let ns = unique("cap");
    for i in 0..capacity {
        ok!(store, store.inc(&ns, &format!("k{i}"), 1, 0));
    }
    let result = store.inc(&ns, "one-more", 1, 0).await;
    assert!(
        matches!(result, Err(Error::CapacityExceeded { .. })),
        "{}: full namespace, got {result:?}",
        store.name()
    );
    assert!(matches!(
        store.set(&ns, "one-more", 1).await,
        Err(Error::CapacityExceeded { .. })
    ));
    assert!(matches!(
        store.compare_and_swap(&ns, "one-more", 0, 1).await,
        Err(Error::CapacityExceeded { .. })
    ));
    assert_eq!(
        ok!(store, store.inc(&ns, "k0", 1, 0)),
        2,
        "{}: existing counters keep working",
        store.name()
    );
    ok!(store, store.inc(&unique("cap"), "elsewhere", 1, 0));
    assert!(ok!(store, store.delete(&ns, "k1")));
    assert_eq!(
        ok!(store, store.inc(&ns, "one-more", 1, 0)),
        1,
        "{}: a deleted counter's slot is reused",
        store.name()
    );
    assert_eq!(
        ok!(store, store.get(&ns, "k0")),
        Some(2),
        "{}: reuse must not touch other counters",
        store.name()
    );
}

/// Many tasks incrementing one shared counter and one counter each lose nothing; every
/// increment of the shared counter returns a distinct new value.
pub async fn counter_concurrent_increments_are_exact(store: Arc<dyn CounterStore>, load: Load) {
    let Load {
        tasks: task_count,
        increments_per_task,
    } = load;
    let ns = unique("concurrent");
    let mut tasks = Vec::new();
    for t in 0..task_count {
        let store = Arc::clone(&store);
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let own = format!("own{t}");
            let mut seen = Vec::with_capacity(increments_per_task);
            for _ in 0..increments_per_task {
                seen.push(ok!(store, store.inc(&ns, "shared", 1, 0)));
                ok!(store, store.inc(&ns, &own, 1, 0));
            }
            seen
        }));
    }
    let mut seen = Vec::new();
    for t in tasks {
        seen.extend(t.await.expect("task"));
    }
    let total = (task_count * increments_per_task) as i64;
    assert_eq!(
        ok!(store, store.get(&ns, "shared")),
        Some(total),
        "{}: lost increments on a shared counter",
        store.name()
    );
    seen.sort_unstable();
    assert!(
        seen.iter().copied().eq(1..=total),
        "{}: the new values returned by concurrent increments must be exactly 1..={total}",
        store.name()
    );
    for t in 0..task_count {
        assert_eq!(
            ok!(store, store.get(&ns, &format!("own{t}"))),
            Some(increments_per_task as i64),
            "{}: lost increments on a task's own counter",
            store.name()
        );
    }
}

/// A compare-and-swap loop increment from many tasks loses no update.
pub async fn counter_cas_loop_under_contention_loses_nothing(
    store: Arc<dyn CounterStore>,
    load: Load,
) {
    let per_task = (load.increments_per_task / 20).max(10);
    let ns = unique("casloop");
    let mut tasks = Vec::new();
    for _ in 0..load.tasks {
        let store = Arc::clone(&store);
        let ns = ns.clone();
        tasks.push(tokio::spawn(async move {
            let mut current = ok!(store, store.get(&ns, "c")).unwrap_or(0);
            let mut done = 0;
            while done < per_task {
                match ok!(
                    store,
                    store.compare_and_swap(&ns, "c", current, current + 1)
                ) {
                    CasOutcome::Swapped(new) => {
                        current = new;
                        done += 1;
                    }
                    CasOutcome::Mismatch(now) => current = now,
                }
            }
        }));
    }
    for t in tasks {
        t.await.expect("task");
    }
    assert_eq!(
        ok!(store, store.get(&ns, "c")),
        Some((load.tasks * per_task) as i64),
        "{}: a CAS loop from {} tasks lost updates",
        store.name(),
        load.tasks
    );
}
