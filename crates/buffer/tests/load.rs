//! Many tasks inserting at once, then shutdown: every item reaches the handler exactly once,
//! in insertion order per task and key.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use stats_buffer::{Flush, KeyedBuffer, Options, Overflow};

const TASKS: u64 = 8;
const PER_TASK: u64 = 100_000;
const KEYS: u64 = 1_000;
const MAX_PENDING: usize = 20_000;

/// An item: which task inserted it and its sequence number in that task.
#[derive(Debug)]
struct Item {
    task: u64,
    seq: u64,
}

#[derive(Default)]
struct Checker {
    /// The last sequence number seen per (key, task): must only grow.
    last: Mutex<HashMap<(u64, u64), u64>>,
    items: AtomicU64,
    batches: AtomicU64,
    out_of_order: AtomicU64,
    /// A flaky destination: every 50th flush call fails, so retries are part of the run.
    calls: AtomicUsize,
}

#[async_trait::async_trait]
impl Flush<u64, Item> for Checker {
    type Error = String;

    async fn flush(&self, key: &u64, items: &[Item]) -> Result<(), String> {
        if self.calls.fetch_add(1, Ordering::Relaxed) % 50 == 49 {
            return Err("flaky".into());
        }
        let mut last = self.last.lock().unwrap();
        for item in items {
            assert_eq!(item.seq % KEYS, *key);
            let previous = last.insert((*key, item.task), item.seq);
            if previous.is_some_and(|p| p >= item.seq) {
                self.out_of_order.fetch_add(1, Ordering::Relaxed);
            }
        }
        self.items.fetch_add(items.len() as u64, Ordering::Relaxed);
        self.batches.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eight_tasks_of_100_000_inserts_then_shutdown_give_exact_totals() {
    let checker = Arc::new(Checker::default());
    let options = Options::new()
        .partitions(4)
        .unwrap()
        .interval(Duration::from_millis(20))
        .unwrap()
        .jitter(Duration::from_millis(5))
        .unwrap()
        .max_size(500)
        .unwrap()
        .max_pending(MAX_PENDING)
        .unwrap()
        .overflow(Overflow::Backpressure)
        .retry_delay(Duration::from_millis(1))
        .unwrap()
        .retry_max(3);
    let buffer = KeyedBuffer::new(options, checker.clone()).unwrap();
    let started = std::time::Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let buffer = buffer.clone();
        tasks.push(tokio::spawn(async move {
            let mut most_pending = 0;
            for seq in 0..PER_TASK {
                buffer.insert(seq % KEYS, Item { task, seq }).await.unwrap();
                if seq % 1_000 == 0 {
                    most_pending = most_pending.max(buffer.stats().pending);
                }
            }
            most_pending
        }));
    }
    let mut most_pending = 0;
    for task in tasks {
        most_pending = most_pending.max(task.await.unwrap());
    }
    let inserted = started.elapsed();
    assert!(buffer.shutdown().await.is_empty());
    let total = TASKS * PER_TASK;
    let stats = buffer.stats();
    eprintln!(
        "{total} inserts by {TASKS} tasks in {inserted:?} ({:.0}/s), {} batches, {stats:?}, \
         most pending seen {most_pending}",
        total as f64 / inserted.as_secs_f64(),
        checker.batches.load(Ordering::Relaxed),
    );
    assert_eq!(checker.items.load(Ordering::Relaxed), total);
    assert_eq!(checker.out_of_order.load(Ordering::Relaxed), 0);
    let last = checker.last.lock().unwrap();
    assert_eq!(last.len() as u64, KEYS * TASKS);
    for task in 0..TASKS {
        for key in 0..KEYS {
            // The last item of each (task, key) arrived: the highest seq with that remainder.
            let expected = (PER_TASK - KEYS) + key;
            assert_eq!(last[&(key, task)], expected);
        }
    }
    assert_eq!(stats.flushed, total);
    assert_eq!(
        (stats.pending, stats.keys, stats.failed, stats.rejected),
        (0, 0, 0, 0)
    );
    assert!(stats.retried > 0, "the flaky flushes were retried");
    assert!(most_pending <= MAX_PENDING);
}

/// Counts what it is given.
#[derive(Default)]
struct Count(AtomicU64);

#[async_trait::async_trait]
impl Flush<u64, u64> for Count {
    type Error = String;

    async fn flush(&self, _key: &u64, items: &[u64]) -> Result<(), String> {
        self.0.fetch_add(items.len() as u64, Ordering::Relaxed);
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_racing_shutdown_are_either_flushed_or_refused() {
    for round in 0..20 {
        let count = Arc::new(Count::default());
        let options = Options::new()
            .partitions(3)
            .unwrap()
            .interval(Duration::from_millis(5))
            .unwrap()
            .max_size(7)
            .unwrap();
        let buffer = KeyedBuffer::new(options, count.clone()).unwrap();
        // Inserts accepted so far, so that shutdown comes after some (on a loaded machine the
        // tasks may not have run at all within a few milliseconds).
        let inserted = Arc::new(AtomicU64::new(0));
        let mut tasks = Vec::new();
        for task in 0..4u64 {
            let buffer = buffer.clone();
            let inserted = inserted.clone();
            tasks.push(tokio::spawn(async move {
                let mut accepted = 0u64;
                for seq in 0.. {
                    match buffer.insert((task * 31 + seq) % 50, seq).await {
                        Ok(()) => {
                            accepted += 1;
                            inserted.fetch_add(1, Ordering::Relaxed);
                        }
                        Err(stats_buffer::BufferError::ShutDown) => return accepted,
                        Err(other) => panic!("{other}"),
                    }
                    if seq % 64 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
                unreachable!()
            }));
        }
        while inserted.load(Ordering::Relaxed) == 0 {
            tokio::task::yield_now().await;
        }
        tokio::time::sleep(Duration::from_millis(1 + round % 5)).await;
        assert!(buffer.shutdown().await.is_empty());
        let mut accepted = 0;
        for task in tasks {
            accepted += task.await.unwrap();
        }
        assert!(accepted > 0);
        assert_eq!(count.0.load(Ordering::Relaxed), accepted, "round {round}");
        let stats = buffer.stats();
        assert_eq!((stats.pending, stats.flushed), (0, accepted));
        assert_eq!(stats.rejected, 4, "one refused insert per task");
    }
}
