//! Conformance checks of [`ThrottleStore`].

use std::sync::Arc;
use std::time::Duration;

use super::{TASKS, unique};
use crate::{Error, ThrottleStore};

async fn acquire(store: &dyn ThrottleStore, key: &str, ttl: Duration) -> bool {
    store
        .try_acquire(key, ttl)
        .await
        .unwrap_or_else(|e| panic!("{}: try_acquire failed: {e}", store.name()))
}

/// The first acquire wins, later ones lose until the TTL runs out, keys are independent.
pub async fn throttle_acquire_and_expire(store: Arc<dyn ThrottleStore>) {
    let key = unique("throttle");
    let ttl = Duration::from_millis(300);
    assert!(
        acquire(&*store, &key, ttl).await,
        "{}: a free key must be acquired",
        store.name()
    );
    assert!(
        !acquire(&*store, &key, ttl).await,
        "{}: a held key must not be acquired",
        store.name()
    );
    assert!(
        acquire(&*store, &unique("throttle"), ttl).await,
        "{}: keys are independent",
        store.name()
    );
    tokio::time::sleep(ttl + Duration::from_millis(200)).await;
    assert!(
        acquire(&*store, &key, ttl).await,
        "{}: the key must be free after its TTL",
        store.name()
    );
    assert!(
        !acquire(&*store, &key, ttl).await,
        "{}: and held again",
        store.name()
    );
}

/// Of many tasks acquiring one free key at once, exactly one wins, window after window.
pub async fn throttle_one_winner_per_window(store: Arc<dyn ThrottleStore>) {
    const WINDOWS: usize = 3;
    let key = unique("race");
    let ttl = Duration::from_millis(250);
    for window in 0..WINDOWS {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let mut tasks = Vec::new();
        for _ in 0..TASKS {
            let (store, key, barrier) = (Arc::clone(&store), key.clone(), Arc::clone(&barrier));
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                acquire(&*store, &key, ttl).await
            }));
        }
        let mut winners = 0;
        for t in tasks {
            winners += usize::from(t.await.expect("task"));
        }
        assert_eq!(
            winners,
            1,
            "{}: window {window}: {winners} of {TASKS} concurrent acquires won",
            store.name()
        );
        tokio::time::sleep(ttl + Duration::from_millis(150)).await;
    }
}

/// A bad key or a TTL under a millisecond is refused.
pub async fn throttle_refuses_bad_input(store: Arc<dyn ThrottleStore>) {
    let r = store.try_acquire("a::b", Duration::from_secs(1)).await;
    assert!(
        matches!(r, Err(Error::InvalidName { .. })),
        "{}: bad key, got {r:?}",
        store.name()
    );
    let r = store.try_acquire(&unique("t"), Duration::ZERO).await;
    assert!(
        matches!(r, Err(Error::InvalidInput(_))),
        "{}: zero TTL, got {r:?}",
        store.name()
    );
}
