//! How the coalescing buffers behave when the store fails: retries with the batch's id,
//! batches kept in order until the store is back, refusals narrowed to the document named,
//! the memory bound, and shutdown.

use std::io::Write as _;
use std::sync::atomic::{AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stats_backend_atomics::AtomicsStore;
use stats_buffer::{Buffered, Coalescing, Options, Overflow};
use stats_core::{
    Batch, BatchId, Capabilities, Error, Granularity, Key, MetricStore, MetricStoreExt, Result,
    Store, Values, values,
};

const UP: u8 = 0;
/// Fails before applying.
const DOWN: u8 = 1;
/// Applies, then fails as if the reply was lost.
const LOSE_REPLY: u8 = 2;

/// An in-process store that can be taken down or made to lose replies.
#[derive(Debug, Default)]
struct Flaky {
    inner: AtomicsStore,
    mode: AtomicU8,
    applies: AtomicUsize,
    ids: Mutex<Vec<Option<BatchId>>>,
}

impl Flaky {
    fn set(&self, mode: u8) {
        self.mode.store(mode, Ordering::SeqCst);
    }
    fn unavailable() -> Error {
        Error::Unavailable {
            store: "flaky",
            source: "connection lost".into(),
        }
    }
}

impl Store for Flaky {
    fn name(&self) -> &'static str {
        "flaky"
    }
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }
}

#[async_trait]
impl MetricStore for Flaky {
    async fn apply(&self, batch: &Batch) -> Result<()> {
        self.applies.fetch_add(1, Ordering::SeqCst);
        self.ids.lock().unwrap().push(batch.id());
        match self.mode.load(Ordering::SeqCst) {
            DOWN => Err(Self::unavailable()),
            LOSE_REPLY => {
                self.inner.apply(batch).await?;
                Err(Self::unavailable())
            }
            _ => self.inner.apply(batch).await,
        }
    }
    async fn read(&self, keys: &[Key]) -> Result<Vec<Values>> {
        self.inner.read(keys).await
    }
    async fn range(&self, metric: &str, g: Granularity, starts: &[i64]) -> Result<Vec<Values>> {
        self.inner.range(metric, g, starts).await
    }
    async fn remove(&self, keys: &[Key]) -> Result<()> {
        self.inner.remove(keys).await
    }
    async fn remove_metric(&self, metric: &str) -> Result<u64> {
        self.inner.remove_metric(metric).await
    }
    async fn purge(&self, g: Granularity, before: i64) -> Result<u64> {
        self.inner.purge(g, before).await
    }
}

fn key(metric: &str) -> Key {
    Key::bucket(metric, "1h".parse().unwrap(), 0).unwrap()
}

fn quick(retry_max: u32) -> Options {
    Options::new()
        .interval(Duration::from_secs(3600))
        .unwrap()
        .retry_delay(Duration::from_millis(1))
        .unwrap()
        .retry_max(retry_max)
}

#[tokio::test]
async fn a_retry_after_a_lost_reply_keeps_the_id_and_counts_once() {
    let store = Buffered::with(Flaky::default(), Coalescing::new().options(quick(3))).unwrap();
    for _ in 0..100 {
        store.inc_at(&[key("a")], &values!({"n": 1})).await.unwrap();
    }
    store.inner().set(LOSE_REPLY);
    let failed = store.flush().await.unwrap_err();
    assert!(failed.is_retryable(), "{failed}");
    // Applied four times (first attempt and three retries), all with one id.
    let ids = store.inner().ids.lock().unwrap().clone();
    assert_eq!(ids.len(), 4);
    assert!(
        ids[0].is_some() && ids.iter().all(|id| *id == ids[0]),
        "{ids:?}"
    );
    store.inner().set(UP);
    store.flush().await.unwrap();
    assert_eq!(
        store.inner().ids.lock().unwrap()[4],
        ids[0],
        "the stalled batch, same id"
    );
    assert_eq!(
        store.read_one(&key("a")).await.unwrap(),
        values!({"n": 100})
    );
    assert_eq!(
        store.inner().inner.read_one(&key("a")).await.unwrap(),
        values!({"n": 100})
    );
    let stats = store.stats();
    assert_eq!(
        (stats.retried, stats.failed, stats.flushed, stats.pending),
        (3, 1, 1, 0)
    );
}

#[tokio::test]
async fn a_stalled_batch_goes_first_when_the_store_is_back() {
    let store = Buffered::with(Flaky::default(), Coalescing::new().options(quick(1))).unwrap();
    store.inner().set(DOWN);
    store.inc_at(&[key("a")], &values!({"n": 5})).await.unwrap();
    assert!(store.flush().await.is_err());
    // Written while the first batch waits: a set, which must land after the increment.
    store.set_at(&[key("a")], &values!({"n": 1})).await.unwrap();
    store.inc_at(&[key("a")], &values!({"n": 2})).await.unwrap();
    // Reads while the store is down for writes see what is pending in the window (the
    // stalled batch's outcome is unknown to the buffer, and the set made it moot here).
    assert_eq!(store.read_one(&key("a")).await.unwrap(), values!({"n": 3}));
    assert!(store.flush().await.is_err());
    assert_eq!(
        store.stats().pending,
        2,
        "one stalled batch, one window entry"
    );
    store.inner().set(UP);
    store.flush().await.unwrap();
    assert_eq!(
        store.inner().inner.read_one(&key("a")).await.unwrap(),
        values!({"n": 3})
    );
}

#[tokio::test]
async fn a_refusal_takes_out_only_the_document_it_names() {
    let refused: Arc<Mutex<Vec<(Batch, String)>>> = Arc::default();
    let seen = refused.clone();
    let store = Buffered::with(
        Flaky::default(),
        Coalescing::new()
            .options(quick(0))
            .on_refused(move |batch, error| seen.lock().unwrap().push((batch, error.to_string()))),
    )
    .unwrap();
    store
        .inner()
        .inner
        .inc_at(&[key("full")], &values!({"n": i64::MAX}))
        .await
        .unwrap();
    store
        .inc_at(&[key("ok"), key("full")], &values!({"n": 1}))
        .await
        .unwrap();
    store
        .inc_at(&[key("ok")], &values!({"m": 2}))
        .await
        .unwrap();
    store.flush().await.unwrap();
    let refused = refused.lock().unwrap().clone();
    assert_eq!(refused.len(), 1);
    assert_eq!(refused[0].0.sorted_keys(), vec![&key("full")]);
    assert!(refused[0].1.contains("overflow"), "{}", refused[0].1);
    assert_eq!(
        store.inner().inner.read_one(&key("ok")).await.unwrap(),
        values!({"n": 1, "m": 2})
    );
    assert_eq!(
        store.inner().inner.read_one(&key("full")).await.unwrap(),
        values!({"n": i64::MAX})
    );
    assert_eq!(store.stats().refused, 1);
}

#[tokio::test]
async fn a_write_that_cannot_fold_adds_nothing() {
    let store = Buffered::new(AtomicsStore::new()).unwrap();
    store
        .set_at(&[key("a")], &values!({"n": i64::MAX}))
        .await
        .unwrap();
    let mut batch = Batch::new();
    batch.inc([key("b")], &values!({"x": 1})).unwrap();
    batch.inc([key("a")], &values!({"n": 1})).unwrap();
    let err = store.apply(&batch).await.unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err}");
    let mut conflict = Batch::new();
    conflict.inc([key("b")], &values!({"y": 1})).unwrap();
    conflict
        .inc([key("a")], &values!({"n": {"deeper": 1}}))
        .unwrap();
    let err = store.apply(&conflict).await.unwrap_err();
    assert!(matches!(err, Error::PathConflict { .. }), "{err}");
    assert_eq!(
        store.read(&[key("a"), key("b")]).await.unwrap(),
        vec![values!({"n": i64::MAX}), Values::new()]
    );
    assert_eq!(store.stats().pending, 1);
}

#[tokio::test]
async fn at_the_bound_writes_are_refused_or_wait() {
    let options = quick(0).max_pending(3).unwrap().overflow(Overflow::Reject);
    let store = Buffered::with(Flaky::default(), Coalescing::new().options(options)).unwrap();
    store.inner().set(DOWN);
    for i in 0..3 {
        store
            .inc_at(&[key(&format!("k{i}"))], &values!({"n": 1}))
            .await
            .unwrap();
    }
    let err = store
        .inc_at(&[key("k3")], &values!({"n": 1}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("buffer full"), "{err}");
    assert!(err.is_retryable());
    // Folding into what is pending needs no room.
    store
        .inc_at(&[key("k0")], &values!({"n": 1}))
        .await
        .unwrap();
    assert_eq!(store.stats().rejected, 1);

    let options = quick(0).max_pending(3).unwrap();
    let store =
        Arc::new(Buffered::with(Flaky::default(), Coalescing::new().options(options)).unwrap());
    store.inner().set(DOWN);
    for i in 0..3 {
        store
            .inc_at(&[key(&format!("k{i}"))], &values!({"n": 1}))
            .await
            .unwrap();
    }
    let waiting = tokio::spawn({
        let store = store.clone();
        async move { store.inc_at(&[key("k3")], &values!({"n": 1})).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    assert!(!waiting.is_finished(), "waits at the bound");
    store.inner().set(UP);
    store.flush().await.unwrap();
    waiting.await.unwrap().unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        store.inner().inner.read_one(&key("k3")).await.unwrap(),
        values!({"n": 1})
    );
}

#[tokio::test]
async fn shutdown_returns_what_it_could_not_write_and_refuses_later_writes() {
    let store = Buffered::with(Flaky::default(), Coalescing::new().options(quick(1))).unwrap();
    store.inc_at(&[key("a")], &values!({"n": 7})).await.unwrap();
    store.inner().set(LOSE_REPLY);
    let left = store.shutdown().await.batches;
    assert_eq!(left.len(), 1);
    assert!(left[0].id().is_some());
    let err = store
        .inc_at(&[key("a")], &values!({"n": 1}))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("shut down"), "{err}");
    assert_eq!(store.stats().pending, 0, "the caller holds them now");
    // Applied later with its id: the store already has it (the reply was lost), so it counts
    // once.
    store.inner().inner.apply(&left[0]).await.unwrap();
    assert_eq!(
        store.inner().inner.read_one(&key("a")).await.unwrap(),
        values!({"n": 7})
    );
    assert!(store.shutdown().await.is_empty());
}

#[tokio::test]
async fn counter_increments_later_are_seen_by_every_counter_call() {
    use stats_core::{CasOutcome, CounterStore};
    let store =
        Arc::new(Buffered::with(AtomicsStore::new(), Coalescing::new().options(quick(0))).unwrap());
    let tasks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..1_000 {
                    store.inc_later("views", "home", 1).await.unwrap();
                }
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
    assert_eq!(store.get("views", "home").await.unwrap(), Some(8_000));
    store.inc_later("views", "home", 5).await.unwrap();
    assert_eq!(
        store
            .compare_and_swap("views", "home", 8_005, 1)
            .await
            .unwrap(),
        CasOutcome::Swapped(1)
    );
    store.inc_later("views", "home", 2).await.unwrap();
    store.set("views", "home", 10).await.unwrap();
    store.flush().await.unwrap();
    assert_eq!(
        store.inner().get("views", "home").await.unwrap(),
        Some(10),
        "the set came last"
    );
    store.inc_later("views", "other", 3).await.unwrap();
    assert_eq!(
        store.get_all("views").await.unwrap(),
        vec![("home".into(), 10), ("other".into(), 3)]
    );
    store.inc_later("views", "new", 4).await.unwrap();
    assert_eq!(
        store.inc("views", "new", 1, 100).await.unwrap(),
        5,
        "pending first, then the call"
    );
    store.inc_later("views", "gone", 4).await.unwrap();
    assert_eq!(store.delete_namespace("views").await.unwrap(), 4);
    store.flush().await.unwrap();
    assert!(store.inner().get_all("views").await.unwrap().is_empty());
    // Bad names are refused at once, naming what is wrong.
    let err = store.inc_later("", "k", 1).await.unwrap_err();
    assert!(matches!(err, Error::InvalidName { .. }), "{err}");
    let err = store.inc_later("ns", "a::b", 1).await.unwrap_err();
    assert!(err.to_string().contains("a::b"), "{err}");
    // Increments near the bounds add up beyond i64 and back.
    store.inc_later("edge", "k", i64::MAX).await.unwrap();
    store.inc_later("edge", "k", i64::MAX).await.unwrap();
    store.inc_later("edge", "k", i64::MIN).await.unwrap();
    store.inc_later("edge", "k", i64::MIN).await.unwrap();
    assert_eq!(store.get("edge", "k").await.unwrap(), Some(-2));
    assert!(store.shutdown().await.is_empty());
}

#[tokio::test]
async fn a_spill_file_keeps_unwritten_batches_for_the_next_start() {
    let dir = std::env::temp_dir().join(stats_core::testkit::unique("spill"));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("stats.spill");
    let flaky = Arc::new(Flaky::default());
    // One partition: the batches are the same on every run.
    let settings = || {
        Coalescing::new()
            .options(quick(1).partitions(1).unwrap())
            .spill_file(&path)
    };
    {
        let store = Buffered::with(flaky.clone(), settings()).unwrap();
        store.inc_at(&[key("a")], &values!({"n": 3})).await.unwrap();
        store
            .set_at(&[key("b")], &values!({"f": 0.5}))
            .await
            .unwrap();
        // The reply is lost: the store has the batch, the buffer does not know it.
        flaky.set(LOSE_REPLY);
        assert!(store.flush().await.is_err());
        flaky.set(DOWN);
        store.inc_at(&[key("a")], &values!({"n": 4})).await.unwrap();
        assert!(store.flush().await.is_err());
        let lines = std::fs::read_to_string(&path).unwrap();
        assert_eq!(lines.lines().count(), 2, "{lines}");
        // The process ends with the store down (as a crash would, minus the memory).
        assert_eq!(store.shutdown().await.batches.len(), 2);
    }
    // A cut-short last line (a crash while appending) is skipped.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(b"{\"id\":\"00")
        .unwrap();
    flaky.set(UP);
    let store = Buffered::with(flaky.clone(), settings()).unwrap();
    assert_eq!(store.stats().pending, 3, "replayed batches are pending");
    store
        .inc_at(&[key("a")], &values!({"n": 100}))
        .await
        .unwrap();
    store.flush().await.unwrap();
    // The first batch counts once (its id was recorded), the second once, then the new one.
    assert_eq!(
        flaky.inner.read_one(&key("a")).await.unwrap(),
        values!({"n": 107})
    );
    assert_eq!(
        flaky.inner.read_one(&key("b")).await.unwrap(),
        values!({"f": 0.5})
    );
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        "",
        "emptied once written"
    );
    assert!(store.shutdown().await.is_empty());
    // A spill file that is not one is refused, naming the file and line.
    std::fs::write(&path, "garbage\n{}\n").unwrap();
    let err = Buffered::with(AtomicsStore::new(), settings()).unwrap_err();
    assert!(err.to_string().contains("line 1"), "{err}");
    std::fs::remove_dir_all(&dir).unwrap();
}
