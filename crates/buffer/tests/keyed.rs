//! DataBuffer semantics of `KeyedBuffer`, on tokio's paused clock where timing matters.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::time::Duration;

use stats_buffer::{BufferError, Flush, KeyedBuffer, OnError, Options, Overflow};
use tokio::time::{Instant, sleep};

/// One call of `flush`.
#[derive(Debug, Clone)]
struct Attempt {
    key: String,
    items: Vec<u64>,
    at: Instant,
    ok: bool,
}

type FailRule = Box<dyn Fn(&str, usize) -> bool + Send + Sync>;

/// Records every attempt; fails by rule; `on_error` keeps the items (`Handled`) unless
/// `requeue` is set.
struct Recorder {
    attempts: Mutex<Vec<Attempt>>,
    errors: Mutex<Vec<(String, Vec<u64>, String)>>,
    /// Fails the `n`th attempt (0-based, counted per key) when it returns true.
    fail: FailRule,
    /// A key whose flush takes this long.
    slow: Option<(String, Duration)>,
    /// A key whose flush panics.
    panics: Option<String>,
}

impl Recorder {
    fn new(fail: impl Fn(&str, usize) -> bool + Send + Sync + 'static) -> Arc<Self> {
        Arc::new(Recorder {
            attempts: Mutex::default(),
            errors: Mutex::default(),
            fail: Box::new(fail),
            slow: None,
            panics: None,
        })
    }

    fn ok() -> Arc<Self> {
        Self::new(|_, _| false)
    }

    fn attempts(&self) -> Vec<Attempt> {
        self.attempts.lock().unwrap().clone()
    }

    fn of(&self, key: &str) -> Vec<Attempt> {
        self.attempts()
            .into_iter()
            .filter(|a| a.key == key)
            .collect()
    }
}

#[async_trait::async_trait]
impl Flush<String, u64> for Recorder {
    type Error = String;

    async fn flush(&self, key: &String, items: &[u64]) -> Result<(), String> {
        if let Some((slow, delay)) = &self.slow
            && slow == key
        {
            sleep(*delay).await;
        }
        assert!(
            self.panics.as_ref() != Some(key),
            "the handler panics on {key}"
        );
        let mut attempts = self.attempts.lock().unwrap();
        let n = attempts.iter().filter(|a| &a.key == key).count();
        let ok = !(self.fail)(key, n);
        attempts.push(Attempt {
            key: key.clone(),
            items: items.to_vec(),
            at: Instant::now(),
            ok,
        });
        if ok {
            Ok(())
        } else {
            Err(format!("attempt {n} of {key} refused"))
        }
    }

    async fn on_error(&self, key: &String, items: Vec<u64>, error: String) -> OnError<u64> {
        self.errors
            .lock()
            .unwrap()
            .push((key.clone(), items, error));
        OnError::Handled
    }
}

/// Fails by rule, with the default `on_error` (log and requeue).
struct Requeuing(Arc<Recorder>);

#[async_trait::async_trait]
impl Flush<String, u64> for Requeuing {
    type Error = String;

    async fn flush(&self, key: &String, items: &[u64]) -> Result<(), String> {
        self.0.flush(key, items).await
    }
}

fn options() -> Options {
    Options::new()
        .partitions(2)
        .unwrap()
        .interval(Duration::from_secs(1))
        .unwrap()
        .jitter(Duration::ZERO)
        .unwrap()
        .max_size(1_000)
        .unwrap()
        .retry_delay(Duration::from_millis(100))
        .unwrap()
        .retry_delay_max(Duration::from_millis(300))
        .unwrap()
}

fn key(k: &str) -> String {
    k.to_owned()
}

/// Two keys that land in different partitions of `buffer`.
fn keys_apart<V>(buffer: &KeyedBuffer<String, V>) -> (String, String)
where
    V: Send + Sync + 'static,
{
    let first = key("k0");
    let other = (1..1000)
        .map(|i| format!("k{i}"))
        .find(|k| buffer.partition_of(k) != buffer.partition_of(&first))
        .expect("two partitions get keys");
    (first, other)
}

#[tokio::test(start_paused = true)]
async fn flushes_on_the_interval() {
    let recorder = Recorder::ok();
    let buffer = KeyedBuffer::new(options(), recorder.clone()).unwrap();
    let start = Instant::now();
    buffer.insert(key("a"), 1).await.unwrap();
    buffer.insert(key("a"), 2).await.unwrap();
    buffer.insert(key("b"), 3).await.unwrap();

    sleep(Duration::from_millis(999)).await;
    assert!(
        recorder.attempts().is_empty(),
        "nothing before the interval"
    );
    sleep(Duration::from_millis(501)).await;
    let a = recorder.of("a");
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].items, vec![1, 2]);
    assert_eq!(a[0].at - start, Duration::from_secs(1));
    assert_eq!(recorder.of("b")[0].items, vec![3]);
    assert_eq!(recorder.of("b")[0].at - start, Duration::from_secs(1));

    // The next interval flushes what came since.
    buffer.insert(key("a"), 4).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    let a = recorder.of("a");
    assert_eq!(a.len(), 2);
    assert_eq!(a[1].items, vec![4]);
    assert_eq!(a[1].at - start, Duration::from_secs(2));
    let stats = buffer.stats();
    assert_eq!((stats.flushed, stats.pending, stats.keys), (4, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn jitter_spreads_partition_timers_within_the_bound() {
    let recorder = Recorder::ok();
    let options = options()
        .partitions(8)
        .unwrap()
        .jitter(Duration::from_millis(500))
        .unwrap();
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    let start = Instant::now();
    for i in 0..200 {
        buffer.insert(format!("k{i}"), i).await.unwrap();
    }
    sleep(Duration::from_secs(2)).await;
    let mut by_partition: HashMap<usize, Duration> = HashMap::new();
    for attempt in recorder.attempts() {
        let after = attempt.at - start;
        assert!(
            after >= Duration::from_secs(1) && after <= Duration::from_millis(1500),
            "{after:?}"
        );
        let previous = by_partition.insert(buffer.partition_of(&attempt.key), after);
        assert!(
            previous.is_none_or(|p| p == after),
            "one tick per partition"
        );
    }
    assert_eq!(by_partition.len(), 8);
    let mut ticks: Vec<_> = by_partition.values().collect();
    ticks.sort();
    ticks.dedup();
    assert!(
        ticks.len() > 1,
        "partitions tick at different times: {ticks:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_key_reaching_max_size_flushes_at_once() {
    let recorder = Recorder::ok();
    let options = options()
        .interval(Duration::from_secs(3600))
        .unwrap()
        .max_size(3)
        .unwrap();
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    let start = Instant::now();
    for v in 1..=5 {
        buffer.insert(key("a"), v).await.unwrap();
    }
    buffer.insert(key("b"), 9).await.unwrap();
    sleep(Duration::from_millis(1)).await;
    let attempts = recorder.attempts();
    assert_eq!(attempts.len(), 1, "{attempts:?}");
    assert_eq!(attempts[0].key, "a");
    assert_eq!(attempts[0].items, vec![1, 2, 3]);
    assert_eq!(attempts[0].at, start);
    let stats = buffer.stats();
    assert_eq!((stats.flushed, stats.pending, stats.keys), (3, 3, 2));

    // One more reaches the size again.
    buffer.insert(key("a"), 6).await.unwrap();
    sleep(Duration::from_millis(1)).await;
    assert_eq!(recorder.of("a")[1].items, vec![4, 5, 6]);

    // max_size 1 flushes every item on its own.
    let single = Recorder::ok();
    let buffer = KeyedBuffer::new(options_with_max_size(1), single.clone()).unwrap();
    buffer.insert(key("x"), 1).await.unwrap();
    buffer.insert(key("x"), 2).await.unwrap();
    sleep(Duration::from_millis(1)).await;
    let items: Vec<_> = single.attempts().into_iter().map(|a| a.items).collect();
    assert_eq!(items, vec![vec![1], vec![2]]);
}

fn options_with_max_size(max_size: usize) -> Options {
    options()
        .interval(Duration::from_secs(3600))
        .unwrap()
        .max_size(max_size)
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_slow_key_does_not_hold_another_partition() {
    let recorder = Arc::new(Recorder {
        attempts: Mutex::default(),
        errors: Mutex::default(),
        fail: Box::new(|_, _| false),
        slow: Some((key("k0"), Duration::from_secs(3600))),
        panics: None,
    });
    let buffer = KeyedBuffer::new(options(), recorder.clone()).unwrap();
    let (slow, fast) = keys_apart(&buffer);
    assert_eq!(slow, "k0");
    let start = Instant::now();
    buffer.insert(slow.clone(), 1).await.unwrap();
    buffer.insert(fast.clone(), 1).await.unwrap();
    sleep(Duration::from_millis(1500)).await;
    buffer.insert(fast.clone(), 2).await.unwrap();
    sleep(Duration::from_secs(1)).await;
    let flushed: Vec<_> = recorder
        .of(&fast)
        .iter()
        .map(|a| (a.items.clone(), a.at - start))
        .collect();
    assert_eq!(
        flushed,
        vec![
            (vec![1], Duration::from_secs(1)),
            (vec![2], Duration::from_secs(2))
        ]
    );
    assert!(recorder.of(&slow).is_empty(), "still in its slow flush");
    assert_eq!(buffer.stats().pending, 1);
}

#[tokio::test(start_paused = true)]
async fn a_failing_key_does_not_hold_another_partition() {
    let recorder = Recorder::new(|k, _| k == "k0");
    let options = options()
        .retry_delay(Duration::from_secs(10))
        .unwrap()
        .retry_max(100);
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    let (failing, healthy) = keys_apart(&buffer);
    let start = Instant::now();
    buffer.insert(failing.clone(), 1).await.unwrap();
    // Inserts between the ticks, so that each tick flushes one item.
    sleep(Duration::from_millis(500)).await;
    for v in 0..3 {
        buffer.insert(healthy.clone(), v).await.unwrap();
        sleep(Duration::from_secs(1)).await;
    }
    sleep(Duration::from_millis(1)).await;
    let flushed: Vec<_> = recorder
        .of(&healthy)
        .iter()
        .map(|a| (a.items.clone(), (a.at - start).as_secs()))
        .collect();
    assert_eq!(flushed, vec![(vec![0], 1), (vec![1], 2), (vec![2], 3)]);
    assert_eq!(
        recorder.of(&failing).len(),
        1,
        "waiting for its first retry"
    );
}

#[tokio::test(start_paused = true)]
async fn retries_are_counted_with_doubling_capped_delays() {
    // Fails four times, then succeeds: retry_max 4 is just enough.
    let recorder = Recorder::new(|_, n| n < 4);
    let buffer = KeyedBuffer::new(options().retry_max(4), recorder.clone()).unwrap();
    for v in [7, 8, 9] {
        buffer.insert(key("a"), v).await.unwrap();
    }
    sleep(Duration::from_secs(3)).await;
    let attempts = recorder.of("a");
    assert_eq!(attempts.len(), 5);
    assert!(attempts.iter().all(|a| a.items == vec![7, 8, 9]));
    assert_eq!(
        attempts.iter().map(|a| a.ok).collect::<Vec<_>>(),
        vec![false, false, false, false, true]
    );
    let delays: Vec<_> = attempts.windows(2).map(|w| w[1].at - w[0].at).collect();
    let ms = Duration::from_millis;
    assert_eq!(delays, vec![ms(100), ms(200), ms(300), ms(300)]);
    let stats = buffer.stats();
    assert_eq!(stats.retried, 4 * 3);
    assert_eq!((stats.flushed, stats.failed, stats.pending), (3, 0, 0));
    assert!(recorder.errors.lock().unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn on_error_receives_exactly_the_items_after_retry_max() {
    let recorder = Recorder::new(|k, _| k == "bad");
    let buffer = KeyedBuffer::new(options().retry_max(2), recorder.clone()).unwrap();
    for v in 1..=4 {
        buffer.insert(key("bad"), v).await.unwrap();
        buffer.insert(key("good"), v).await.unwrap();
    }
    sleep(Duration::from_secs(2)).await;
    assert_eq!(recorder.of("bad").len(), 3, "the attempt and two retries");
    let errors = recorder.errors.lock().unwrap().clone();
    assert_eq!(
        errors,
        vec![(
            key("bad"),
            vec![1, 2, 3, 4],
            "attempt 2 of bad refused".into()
        )]
    );
    let stats = buffer.stats();
    assert_eq!(stats.failed, 4);
    assert_eq!(stats.retried, 8);
    assert_eq!(stats.flushed, 4);
    assert_eq!((stats.pending, stats.keys), (0, 0));
    // Handled: not retried later.
    sleep(Duration::from_secs(5)).await;
    assert_eq!(recorder.of("bad").len(), 3);
}

#[tokio::test(start_paused = true)]
async fn default_on_error_requeues_in_front_and_the_next_interval_flushes_once() {
    // The first round (attempt and two retries) fails; the next interval succeeds.
    let recorder = Recorder::new(|_, n| n < 3);
    let buffer = KeyedBuffer::new(
        options().retry_max(2),
        Arc::new(Requeuing(recorder.clone())),
    )
    .unwrap();
    let start = Instant::now();
    for v in 1..=3 {
        buffer.insert(key("a"), v).await.unwrap();
    }
    sleep(Duration::from_millis(1200)).await; // inside the retries (1.0, 1.1, 1.3 s)
    buffer.insert(key("a"), 4).await.unwrap();
    sleep(Duration::from_millis(200)).await; // requeued at 1.3 s
    let stats = buffer.stats();
    assert_eq!((stats.failed, stats.pending, stats.keys), (3, 4, 1));
    sleep(Duration::from_secs(2)).await;
    let attempts = recorder.of("a");
    assert_eq!(attempts.len(), 4);
    assert_eq!(attempts[3].items, vec![1, 2, 3, 4], "requeued items first");
    assert!(attempts[3].ok);
    assert_eq!(attempts[3].at - start, Duration::from_millis(2300));
    let stats = buffer.stats();
    assert_eq!((stats.flushed, stats.pending, stats.keys), (4, 0, 0));
}

#[tokio::test(start_paused = true)]
async fn dead_keys_are_removed_after_a_flush() {
    let recorder = Recorder::ok();
    let buffer = KeyedBuffer::new(options(), recorder.clone()).unwrap();
    for i in 0..1_000 {
        buffer.insert(format!("one-off-{i}"), i).await.unwrap();
    }
    assert_eq!(buffer.stats().keys, 1_000);
    buffer.flush_all().await;
    let stats = buffer.stats();
    assert_eq!((stats.keys, stats.pending, stats.flushed), (0, 0, 1_000));
    assert_eq!(recorder.attempts().len(), 1_000);

    // A key whose flush keeps failing (requeued) is kept, the others go.
    let recorder = Recorder::new(|k, _| k == "down");
    let buffer = KeyedBuffer::new(
        options().retry_max(0),
        Arc::new(Requeuing(recorder.clone())),
    )
    .unwrap();
    buffer.insert(key("down"), 1).await.unwrap();
    buffer.insert(key("up"), 1).await.unwrap();
    buffer.flush_all().await;
    let stats = buffer.stats();
    assert_eq!((stats.keys, stats.pending, stats.flushed), (1, 1, 1));
}

#[tokio::test(start_paused = true)]
async fn shutdown_flushes_everything_and_refuses_later_inserts() {
    let recorder = Recorder::ok();
    let buffer = KeyedBuffer::new(options(), recorder.clone()).unwrap();
    let other = buffer.clone();
    for v in 0..10 {
        buffer.insert(format!("k{}", v % 3), v).await.unwrap();
    }
    let start = Instant::now();
    assert!(buffer.shutdown().await.is_empty());
    assert_eq!(Instant::now(), start, "flushed now, not on the interval");
    let mut seen: Vec<u64> = recorder
        .attempts()
        .into_iter()
        .flat_map(|a| a.items)
        .collect();
    seen.sort();
    assert_eq!(seen, (0..10).collect::<Vec<_>>());

    assert_eq!(other.insert(key("k0"), 1).await, Err(BufferError::ShutDown));
    assert_eq!(
        buffer.insert(key("k1"), 1).await,
        Err(BufferError::ShutDown)
    );
    let stats = buffer.stats();
    assert_eq!((stats.rejected, stats.pending, stats.flushed), (2, 0, 10));
    assert!(
        buffer.shutdown().await.is_empty(),
        "a second call is harmless"
    );
    buffer.flush_all().await; // returns at once
}

#[tokio::test(start_paused = true)]
async fn shutdown_returns_what_could_not_be_flushed() {
    let recorder = Recorder::new(|k, _| k == "down");
    let buffer = KeyedBuffer::new(
        options().retry_max(1),
        Arc::new(Requeuing(recorder.clone())),
    )
    .unwrap();
    for v in 1..=3 {
        buffer.insert(key("down"), v).await.unwrap();
        buffer.insert(key("up"), v).await.unwrap();
    }
    let left = buffer.shutdown().await;
    assert_eq!(left, vec![(key("down"), vec![1, 2, 3])]);
    let stats = buffer.stats();
    assert_eq!((stats.pending, stats.flushed, stats.failed), (0, 3, 3));
    assert_eq!(recorder.of("down").len(), 2);
    assert_eq!(recorder.of("up")[0].items, vec![1, 2, 3]);
}

#[tokio::test(start_paused = true)]
async fn backpressure_waits_for_room_at_the_bound() {
    let recorder = Recorder::ok();
    let options = options()
        .partitions(1)
        .unwrap()
        .max_pending(3)
        .unwrap()
        .overflow(Overflow::Backpressure);
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    let start = Instant::now();
    for v in 0..3 {
        buffer.insert(key("a"), v).await.unwrap();
    }
    let waiting = {
        let buffer = buffer.clone();
        tokio::spawn(async move {
            buffer.insert(key("a"), 3).await.unwrap();
            Instant::now()
        })
    };
    sleep(Duration::from_millis(900)).await;
    assert!(!waiting.is_finished(), "the fourth insert waits");
    assert_eq!(buffer.stats().pending, 3);
    let inserted_at = waiting.await.unwrap();
    assert_eq!(
        inserted_at - start,
        Duration::from_secs(1),
        "room made by the flush"
    );
    let stats = buffer.stats();
    assert_eq!((stats.pending, stats.flushed, stats.rejected), (1, 3, 0));

    // A caller waiting for room when the buffer shuts down is refused, not left waiting.
    for v in 0..2 {
        buffer.insert(key("b"), v).await.unwrap();
    }
    let waiting = {
        let buffer = buffer.clone();
        tokio::spawn(async move { buffer.insert(key("c"), 0).await })
    };
    sleep(Duration::from_millis(10)).await;
    assert!(!waiting.is_finished());
    assert!(buffer.shutdown().await.is_empty());
    assert_eq!(waiting.await.unwrap(), Err(BufferError::ShutDown));
    assert_eq!(buffer.stats().flushed, 6);
}

#[tokio::test(start_paused = true)]
async fn reject_refuses_at_the_bound_with_a_typed_error() {
    let recorder = Recorder::ok();
    let options = options().max_pending(3).unwrap().overflow(Overflow::Reject);
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    for v in 0..3 {
        buffer.insert(format!("k{v}"), v).await.unwrap();
    }
    let err = buffer.insert(key("k9"), 9).await.unwrap_err();
    assert_eq!(err, BufferError::Full { max_pending: 3 });
    assert!(stats_core::Error::from(err).is_retryable());
    assert_eq!(buffer.stats().rejected, 1);
    assert_eq!(buffer.stats().pending, 3);
    buffer.flush_all().await;
    buffer.insert(key("k9"), 9).await.unwrap();
    let seen: usize = recorder.attempts().iter().map(|a| a.items.len()).sum();
    assert_eq!(seen, 3, "the refused item was not buffered");
}

#[test]
fn options_name_the_bad_setting() {
    let option = |r: Result<Options, BufferError>| match r.unwrap_err() {
        BufferError::InvalidOption { option, .. } => option,
        other => panic!("{other:?}"),
    };
    assert_eq!(option(Options::new().partitions(0)), "partitions");
    assert_eq!(option(Options::new().partitions(5_000)), "partitions");
    assert_eq!(option(Options::new().interval(Duration::ZERO)), "interval");
    assert_eq!(
        option(Options::new().jitter(Duration::from_secs(7200))),
        "jitter"
    );
    assert_eq!(option(Options::new().max_size(0)), "max_size");
    assert_eq!(option(Options::new().max_pending(0)), "max_pending");
    assert_eq!(
        option(Options::new().retry_delay(Duration::ZERO)),
        "retry_delay"
    );
    assert_eq!(
        option(Options::new().retry_delay_max(Duration::from_millis(10))),
        "retry_delay_max"
    );
    let defaults = Options::new();
    assert_eq!(defaults.get_overflow(), Overflow::Backpressure);
    assert_eq!(
        defaults.get_partitions(),
        std::thread::available_parallelism().unwrap().get()
    );
    // Raising retry_delay above the cap raises the cap.
    let raised = Options::new().retry_delay(Duration::from_secs(60)).unwrap();
    assert_eq!(raised.get_retry_delay_max(), Duration::from_secs(60));
}

#[test]
fn new_outside_a_runtime_is_a_typed_error() {
    let err = KeyedBuffer::<String, u64>::new(Options::new(), Recorder::ok()).unwrap_err();
    assert_eq!(err, BufferError::NoRuntime);
}

#[tokio::test(start_paused = true)]
async fn a_panicking_handler_ends_its_partition_and_shutdown_returns_what_it_still_held() {
    let recorder = Arc::new(Recorder {
        attempts: Mutex::default(),
        errors: Mutex::default(),
        fail: Box::new(|_, _| false),
        slow: None,
        panics: Some(key("boom")),
    });
    let options = options().partitions(1).unwrap().max_size(2).unwrap();
    let buffer = KeyedBuffer::new(options, recorder.clone()).unwrap();
    buffer.insert(key("boom"), 1).await.unwrap();
    sleep(Duration::from_millis(1500)).await; // the task panicked at 1 s
    buffer.insert(key("later"), 2).await.unwrap();
    buffer.insert(key("later"), 3).await.unwrap(); // max_size: the task is gone, kept
    buffer.insert(key("last"), 4).await.unwrap();
    sleep(Duration::from_secs(2)).await;
    assert!(recorder.attempts().is_empty());
    let mut left = buffer.shutdown().await;
    left.sort();
    assert_eq!(
        left,
        vec![(key("last"), vec![4]), (key("later"), vec![2, 3])]
    );
    assert_eq!(buffer.insert(key("x"), 5).await, Err(BufferError::ShutDown));
    // The panicking batch stays counted: it was lost, not flushed.
    assert_eq!(buffer.stats().pending, 1);
}
