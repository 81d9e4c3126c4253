//! [`KeyedBuffer`]: items collected per key, flushed per key through a [`Flush`] handler.

use std::collections::HashMap;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use parking_lot::Mutex;
use tokio::sync::{Notify, mpsc, oneshot};
use tokio::time::Instant;

use crate::counts::{Counts, spawn_partitions};
use crate::{BufferError, Options, Overflow};

/// What becomes of the items of a flush that failed after its last retry, as
/// [`Flush::on_error`] decides.
///
/// ```
/// use stats_buffer::OnError;
///
/// let kept: OnError<u32> = OnError::Requeue(vec![1, 2]);
/// assert!(matches!(kept, OnError::Requeue(ref items) if items == &[1, 2]));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OnError<V> {
    /// Put these items back in front of the key's pending items: they are flushed again on
    /// the partition's next interval (or by `flush_all`), and they stay pending, so the
    /// memory bound keeps counting them.
    Requeue(Vec<V>),
    /// The handler took care of the items (wrote them elsewhere, decided to drop them, ...):
    /// the buffer forgets them.
    Handled,
}

/// The handler a [`KeyedBuffer`] flushes through.
///
/// [`flush`](Flush::flush) is called with one key and its pending items, oldest first.
/// When it fails, the same items are retried after [`Options::retry_delay`], doubling up to
/// [`Options::retry_delay_max`], [`Options::retry_max`] times; after the last failure
/// [`on_error`](Flush::on_error) receives exactly those items, once, with the last error.
///
/// `flush` borrows the items because a retry needs them again (so `V` need not be `Clone`);
/// `on_error` gets them by value.
///
/// ```
/// use std::sync::Mutex;
///
/// use stats_buffer::{Flush, OnError};
///
/// /// Sums the values of each key.
/// #[derive(Default)]
/// struct Sums(Mutex<Vec<(String, u64)>>);
///
/// #[async_trait::async_trait]
/// impl Flush<String, u64> for Sums {
///     type Error = std::io::Error;
///
///     async fn flush(&self, key: &String, items: &[u64]) -> Result<(), std::io::Error> {
///         self.0.lock().unwrap().push((key.clone(), items.iter().sum()));
///         Ok(())
///     }
///     // The default `on_error` logs and requeues the items.
/// }
/// ```
#[async_trait]
pub trait Flush<K: Sync, V: Send + 'static>: Send + Sync + 'static {
    /// The error of a failed flush.
    type Error: fmt::Display + Send + 'static;

    /// Writes `items` of `key`, oldest first. An `Err` makes the buffer retry the same items.
    async fn flush(&self, key: &K, items: &[V]) -> Result<(), Self::Error>;

    /// Called after the last retry failed, with exactly the items of that flush and the last
    /// error.
    ///
    /// The default logs the error (the `log` crate, level `warn`) and returns
    /// [`OnError::Requeue`]: the items go back into the buffer and are retried on the next
    /// interval, so an outage loses nothing. They stay pending, so a long outage fills the
    /// buffer up to [`Options::max_pending`], and then callers of `insert` wait
    /// ([`Overflow::Backpressure`]) or get [`BufferError::Full`] ([`Overflow::Reject`]).
    async fn on_error(&self, _key: &K, items: Vec<V>, error: Self::Error) -> OnError<V> {
        log::warn!(
            "buffer flush of {} items failed after its last retry, requeued: {error}",
            items.len()
        );
        OnError::Requeue(items)
    }
}

/// A snapshot of a [`KeyedBuffer`]'s counters ([`KeyedBuffer::stats`]). All counts are items.
///
/// ```
/// use stats_buffer::BufferStats;
///
/// let stats = BufferStats::default();
/// assert_eq!((stats.pending, stats.flushed, stats.rejected), (0, 0, 0));
/// ```
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BufferStats {
    /// Items inserted and not yet flushed nor handled by `on_error`: buffered, being flushed,
    /// waiting for a retry, or requeued. The memory bound applies to this number.
    pub pending: usize,
    /// Keys holding buffered items (keys whose items are all flushed are removed). For the
    /// coalescing buffers: pending documents (a [`BufferedTracker`](crate::BufferedTracker)'s
    /// are per metric and set of bucket starts).
    pub keys: usize,
    /// Items written by a successful `flush`.
    pub flushed: u64,
    /// Items sent again by a retry (an item retried three times counts three).
    pub retried: u64,
    /// Items handed to `on_error` after the last retry (requeued items count again if they
    /// fail again).
    pub failed: u64,
    /// Inserts refused: at the memory bound with [`Overflow::Reject`], or after shutdown.
    pub rejected: u64,
    /// Items accepted. For the coalescing buffers ([`Buffered`](crate::Buffered),
    /// [`BufferedTracker`](crate::BufferedTracker)): the leaf updates written to them, before
    /// coalescing (a tracked event counts its fields times the granularities).
    pub tracked: u64,
    /// Store round trips of successful flushes (for [`KeyedBuffer`]: successful `flush` calls).
    pub batches: u64,
    /// Items the destination refused for good (for the coalescing buffers: leaf updates the store
    /// refused with an error that retrying cannot fix, such as an overflow against the stored
    /// value; they go to the `on_refused` handler). Always 0 for [`KeyedBuffer`], whose
    /// `on_error` decides.
    pub refused: u64,
}

/// Items collected per key and flushed per key: on an interval, when a key reaches
/// [`Options::max_size`], on [`flush_all`](KeyedBuffer::flush_all) and on
/// [`shutdown`](KeyedBuffer::shutdown).
///
/// Keys are spread by hash over [`Options::partitions`]. Each partition has its own lock (held
/// only to push or take items, never across a flush) and its own task that flushes its keys one
/// after another, so a slow or failing key holds up only its own partition. The memory bound
/// ([`Options::max_pending`]) is one atomic count over all partitions.
///
/// Every item inserted is, exactly once, either written by a successful
/// [`Flush::flush`], handed to [`Flush::on_error`], or returned by `shutdown`; the items of one
/// key reach the handler in insertion order (requeued items go back in front).
///
/// A panic in [`Flush::flush`] or [`Flush::on_error`] ends its partition's task: the items it
/// had taken to flush and the batches queued behind them are lost (and stay counted as
/// pending), the partition's other items and later inserts stay
/// pending (so the memory bound still applies) until `shutdown` returns them. Handlers should
/// return errors, not panic.
///
/// Cloning gives another handle to the same buffer. When the last handle is dropped without
/// `shutdown`, the partition tasks flush what is pending in the background (as long as the
/// runtime runs); items still failing then are logged and lost, so call `shutdown` and
/// wait for it.
///
/// ```
/// use std::sync::Mutex;
/// use std::time::Duration;
///
/// use stats_buffer::{Flush, KeyedBuffer, Options};
///
/// #[derive(Default)]
/// struct Sums(Mutex<Vec<(&'static str, u64)>>);
///
/// #[async_trait::async_trait]
/// impl Flush<&'static str, u64> for Sums {
///     type Error = std::io::Error;
///     async fn flush(&self, key: &&'static str, items: &[u64]) -> Result<(), Self::Error> {
///         self.0.lock().unwrap().push((*key, items.iter().sum()));
///         Ok(())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let sums = std::sync::Arc::new(Sums::default());
/// let options = Options::new().interval(Duration::from_secs(1))?.max_size(100)?;
/// let buffer = KeyedBuffer::new(options, sums.clone())?;
///
/// buffer.insert("orders", 3).await?;
/// buffer.insert("orders", 4).await?;
/// buffer.flush_all().await; // or wait for the interval
/// assert_eq!(*sums.0.lock().unwrap(), vec![("orders", 7)]);
///
/// assert!(buffer.shutdown().await.is_empty()); // nothing left unflushed
/// assert!(buffer.insert("orders", 1).await.is_err()); // refused after shutdown
/// # Ok(()) }
/// ```
pub struct KeyedBuffer<K, V> {
    handle: Arc<Handle<K, V>>,
}

impl<K, V> Clone for KeyedBuffer<K, V> {
    fn clone(&self) -> Self {
        KeyedBuffer {
            handle: self.handle.clone(),
        }
    }
}

impl<K, V> fmt::Debug for KeyedBuffer<K, V> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedBuffer")
            .field("options", &self.handle.shared.options)
            .field("closed", &self.handle.shared.closed.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// The part the callers hold: dropping the last one closes the partitions' channels.
struct Handle<K, V> {
    shared: Arc<Shared<K, V>>,
    senders: Vec<mpsc::UnboundedSender<Command<K, V>>>,
    hasher: RandomState,
    shutting_down: tokio::sync::Mutex<()>,
}

/// The part the partition tasks share with the callers.
struct Shared<K, V> {
    options: Options,
    partitions: Vec<Mutex<Partition<K, V>>>,
    pending: AtomicUsize,
    /// Woken whenever pending items are released (flushed, handled) and at shutdown.
    room: Notify,
    closed: AtomicBool,
    counts: Counts,
    tracked: AtomicU64,
}

struct Partition<K, V> {
    keys: HashMap<K, Vec<V>>,
    /// Set by the partition task under this lock when it shuts down: an insert that sees it
    /// is refused, so nothing is pushed after the last drain.
    closed: bool,
}

enum Command<K, V> {
    /// A key reached `max_size`: its items, taken out of the map.
    Full(K, Vec<V>),
    FlushAll(oneshot::Sender<()>),
    Shutdown(oneshot::Sender<Vec<(K, Vec<V>)>>),
}

impl<K, V> KeyedBuffer<K, V>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
{
    /// A buffer with `options`, flushing through `handler`. Spawns one task per partition on
    /// the current tokio runtime.
    ///
    /// # Errors
    ///
    /// [`BufferError::NoRuntime`] outside a tokio runtime.
    pub fn new<H: Flush<K, V>>(options: Options, handler: Arc<H>) -> Result<Self, BufferError> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BufferError::NoRuntime)?;
        let count = options.get_partitions();
        let shared = Arc::new(Shared {
            partitions: (0..count)
                .map(|_| {
                    Mutex::new(Partition {
                        keys: HashMap::new(),
                        closed: false,
                    })
                })
                .collect(),
            options,
            pending: AtomicUsize::new(0),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            counts: Counts::default(),
            tracked: AtomicU64::new(0),
        });
        let senders = spawn_partitions(&runtime, count, |index, rng, commands| {
            Worker {
                shared: shared.clone(),
                handler: handler.clone(),
                index,
                rng,
            }
            .run(commands)
        });
        Ok(KeyedBuffer {
            handle: Arc::new(Handle {
                shared,
                senders,
                hasher: RandomState::new(),
                shutting_down: tokio::sync::Mutex::new(()),
            }),
        })
    }

    /// Adds `value` to `key`'s pending items. When the key then holds
    /// [`Options::max_size`] items, they are handed to the partition's task to flush at once.
    ///
    /// At the memory bound, [`Overflow::Backpressure`] waits here until flushes make room;
    /// [`Overflow::Reject`] returns at once.
    ///
    /// # Errors
    ///
    /// - [`BufferError::Full`] at the bound with [`Overflow::Reject`];
    /// - [`BufferError::ShutDown`] after [`shutdown`](KeyedBuffer::shutdown) was called
    ///   (also for a caller waiting for room when it is called).
    ///
    /// The value is not inserted in either case (and counted as rejected).
    pub async fn insert(&self, key: K, value: V) -> Result<(), BufferError> {
        let shared = &self.handle.shared;
        if let Err(err) = self.reserve().await {
            shared.counts.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(err);
        }
        let index = self.partition_of(&key);
        let max_size = shared.options.get_max_size();
        let mut partition = shared.partitions[index].lock();
        if partition.closed {
            drop(partition);
            shared.release(1);
            shared.counts.rejected.fetch_add(1, Ordering::Relaxed);
            return Err(BufferError::ShutDown);
        }
        shared.tracked.fetch_add(1, Ordering::Relaxed);
        let full = match partition.keys.get_mut(&key) {
            Some(items) => {
                items.push(value);
                if items.len() < max_size {
                    return Ok(());
                }
                partition
                    .keys
                    .remove_entry(&key)
                    .expect("the key is present")
            }
            None if max_size > 1 => {
                partition.keys.insert(key, vec![value]);
                return Ok(());
            }
            None => (key, vec![value]),
        };
        // Sent under the lock: the partition task closes the partition under the same lock
        // before its last drain of the channel, so it cannot miss this batch.
        if let Err(mpsc::error::SendError(command)) =
            self.handle.senders[index].send(Command::Full(full.0, full.1))
            && let Command::Full(key, items) = command
        {
            // The partition's task is gone (its handler panicked): keep the items pending, so
            // that the bound holds and `shutdown` returns them.
            partition.keys.insert(key, items);
        }
        Ok(())
    }

    /// Takes one slot of the memory bound, waiting or refusing at the bound.
    async fn reserve(&self) -> Result<(), BufferError> {
        let shared = &self.handle.shared;
        if shared.closed.load(Ordering::Acquire) {
            return Err(BufferError::ShutDown);
        }
        if shared.try_reserve() {
            return Ok(());
        }
        loop {
            let notified = shared.room.notified();
            tokio::pin!(notified);
            // Registered before the check, so a release between the check and the wait wakes us.
            notified.as_mut().enable();
            if shared.closed.load(Ordering::Acquire) {
                return Err(BufferError::ShutDown);
            }
            if shared.try_reserve() {
                return Ok(());
            }
            match shared.options.get_overflow() {
                Overflow::Reject => {
                    return Err(BufferError::Full {
                        max_pending: shared.options.get_max_pending(),
                    });
                }
                Overflow::Backpressure => notified.await,
            }
        }
    }

    /// The partition `key` belongs to (always the same one for the same key and buffer).
    pub fn partition_of(&self, key: &K) -> usize {
        (self.handle.hasher.hash_one(key) % self.handle.senders.len() as u64) as usize
    }

    /// Flushes every key of every partition now and waits until each partition has done so
    /// (including the retries, and `on_error` for keys whose last retry failed; items that
    /// `on_error` requeues stay pending). Returns at once after shutdown.
    pub async fn flush_all(&self) {
        let mut acks = Vec::with_capacity(self.handle.senders.len());
        for sender in &self.handle.senders {
            let (tx, rx) = oneshot::channel();
            if sender.send(Command::FlushAll(tx)).is_ok() {
                acks.push(rx);
            }
        }
        for ack in acks {
            let _ = ack.await;
        }
    }

    /// Refuses every later insert with [`BufferError::ShutDown`], flushes everything pending
    /// (with retries and `on_error`) and stops the partition tasks.
    ///
    /// Returns the items that are still not flushed, per key and oldest first: those
    /// `on_error` requeued during this last flush (with the default `on_error`, what could not
    /// be written because the destination is down), and what a partition whose handler
    /// panicked still held. They are no longer counted as pending: they are the caller's now.
    /// Empty when everything was flushed or handled. A second call waits for the first one to
    /// finish and returns an empty list.
    pub async fn shutdown(&self) -> Vec<(K, Vec<V>)> {
        // A second caller waits here until the first one's flush is over.
        let _one_at_a_time = self.handle.shutting_down.lock().await;
        let shared = &self.handle.shared;
        shared.closed.store(true, Ordering::Release);
        shared.room.notify_waiters();
        let mut acks = Vec::with_capacity(self.handle.senders.len());
        for sender in &self.handle.senders {
            let (tx, rx) = oneshot::channel();
            // A send fails when the task is already gone (shut down before, or panicked).
            acks.push(sender.send(Command::Shutdown(tx)).ok().map(|()| rx));
        }
        let mut left = Vec::new();
        for (index, ack) in acks.into_iter().enumerate() {
            match ack {
                Some(ack) => match ack.await {
                    Ok(items) => left.extend(items),
                    Err(_) => left.extend(self.take_orphans(index)),
                },
                None => left.extend(self.take_orphans(index)),
            }
        }
        left
    }

    /// What a partition without a task still holds (nothing, unless its handler panicked),
    /// closing it to inserts.
    fn take_orphans(&self, index: usize) -> Vec<(K, Vec<V>)> {
        let shared = &self.handle.shared;
        let mut partition = shared.partitions[index].lock();
        partition.closed = true;
        let keys = std::mem::take(&mut partition.keys);
        drop(partition);
        let left: Vec<_> = keys.into_iter().collect();
        let count = left.iter().map(|(_, items)| items.len()).sum();
        if count > 0 {
            shared.release(count);
        }
        left
    }

    /// A snapshot of the counters (each read on its own: under load they may be a moment
    /// apart).
    pub fn stats(&self) -> BufferStats {
        let shared = &self.handle.shared;
        shared.counts.stats(
            shared.pending.load(Ordering::Acquire),
            shared.partitions.iter().map(|p| p.lock().keys.len()).sum(),
            shared.tracked.load(Ordering::Relaxed),
        )
    }

    /// Takes `key`'s buffered items out of the buffer (they are no longer pending; the caller
    /// writes them), oldest first. Items a flush already took (being written, or waiting for a
    /// retry) are not among them. Empty when there are none.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use stats_buffer::{Flush, KeyedBuffer, Options};
    /// # struct Nowhere;
    /// # #[async_trait::async_trait]
    /// # impl Flush<&'static str, u64> for Nowhere {
    /// #     type Error = String;
    /// #     async fn flush(&self, _: &&'static str, _: &[u64]) -> Result<(), String> { Ok(()) }
    /// # }
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), stats_buffer::BufferError> {
    /// let buffer = KeyedBuffer::new(Options::new(), Arc::new(Nowhere))?;
    /// buffer.insert("a", 1).await?;
    /// buffer.insert("a", 2).await?;
    /// assert_eq!(buffer.take(&"a"), [1, 2]);
    /// assert!(buffer.take(&"a").is_empty());
    /// assert_eq!(buffer.stats().pending, 0);
    /// # Ok(()) }
    /// ```
    pub fn take(&self, key: &K) -> Vec<V> {
        let shared = &self.handle.shared;
        let items = shared.partitions[self.partition_of(key)]
            .lock()
            .keys
            .remove(key)
            .unwrap_or_default();
        shared.release(items.len());
        items
    }

    /// Calls `f` with every key's buffered items (not those a flush already took), partition
    /// by partition, under each partition's lock: keep `f` short.
    pub fn for_each_pending(&self, mut f: impl FnMut(&K, &[V])) {
        for partition in &self.handle.shared.partitions {
            for (key, items) in &partition.lock().keys {
                f(key, items);
            }
        }
    }

    /// The options the buffer was built with.
    pub fn options(&self) -> &Options {
        &self.handle.shared.options
    }
}

impl<K, V> Shared<K, V> {
    /// Takes one slot of the memory bound if one is free.
    fn try_reserve(&self) -> bool {
        let max = self.options.get_max_pending();
        let mut current = self.pending.load(Ordering::Relaxed);
        while current < max {
            match self.pending.compare_exchange_weak(
                current,
                current + 1,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => return true,
                Err(now) => current = now,
            }
        }
        false
    }

    fn release(&self, items: usize) {
        self.pending.fetch_sub(items, Ordering::AcqRel);
        self.room.notify_waiters();
    }
}

/// One partition's task: flushes the keys its partition owns, one after another.
struct Worker<K, V, H> {
    shared: Arc<Shared<K, V>>,
    handler: Arc<H>,
    index: usize,
    rng: u64,
}

impl<K, V, H> Worker<K, V, H>
where
    K: Hash + Eq + Send + Sync + 'static,
    V: Send + Sync + 'static,
    H: Flush<K, V>,
{
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command<K, V>>) {
        let mut tick = Instant::now() + self.next_interval();
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Full(key, items)) => {
                        self.flush_key(key, items, None).await;
                    }
                    Some(Command::FlushAll(ack)) => {
                        self.flush_partition(None).await;
                        let _ = ack.send(());
                    }
                    Some(Command::Shutdown(ack)) => {
                        let left = self.close(&mut commands).await;
                        let _ = ack.send(left);
                        return;
                    }
                    None => {
                        let left = self.close(&mut commands).await;
                        let lost: usize = left.iter().map(|(_, items)| items.len()).sum();
                        if lost > 0 {
                            log::error!(
                                "buffer dropped without shutdown: {lost} items of partition {} \
                                 could not be flushed and are lost",
                                self.index
                            );
                        }
                        return;
                    }
                },
                () = tokio::time::sleep_until(tick) => {
                    self.flush_partition(None).await;
                    tick = Instant::now() + self.next_interval();
                }
            }
        }
    }

    fn next_interval(&mut self) -> Duration {
        self.shared.options.next_interval(&mut self.rng)
    }

    /// Takes every key out of the partition and flushes them one after another.
    async fn flush_partition(&self, mut left: Option<&mut Vec<(K, Vec<V>)>>) {
        let keys = std::mem::take(&mut self.shared.partitions[self.index].lock().keys);
        for (key, items) in keys {
            self.flush_key(key, items, left.as_deref_mut()).await;
        }
    }

    /// Closes the partition to inserts, then flushes what it holds and what is still queued.
    async fn close(
        &self,
        commands: &mut mpsc::UnboundedReceiver<Command<K, V>>,
    ) -> Vec<(K, Vec<V>)> {
        let mut left = Vec::new();
        let keys = {
            let mut partition = self.shared.partitions[self.index].lock();
            partition.closed = true;
            std::mem::take(&mut partition.keys)
        };
        // Full batches sent before the partition closed are older than what the map holds.
        let mut acks = Vec::new();
        while let Ok(command) = commands.try_recv() {
            match command {
                Command::Full(key, items) => self.flush_key(key, items, Some(&mut left)).await,
                Command::FlushAll(ack) => acks.push(ack),
                Command::Shutdown(ack) => {
                    let _ = ack.send(Vec::new());
                }
            }
        }
        for (key, items) in keys {
            self.flush_key(key, items, Some(&mut left)).await;
        }
        for ack in acks {
            let _ = ack.send(());
        }
        left
    }

    /// Flushes one key's items with retries; after the last failure, `on_error` decides.
    /// Requeued items go back into the partition, or into `left` when it is closing.
    async fn flush_key(&self, key: K, items: Vec<V>, left: Option<&mut Vec<(K, Vec<V>)>>) {
        let shared = &self.shared;
        let count = items.len();
        let mut result = self.handler.flush(&key, &items).await;
        let mut retry = 0;
        while result.is_err() && retry < shared.options.get_retry_max() {
            retry += 1;
            tokio::time::sleep(shared.options.backoff(retry)).await;
            shared
                .counts
                .retried
                .fetch_add(count as u64, Ordering::Relaxed);
            result = self.handler.flush(&key, &items).await;
        }
        let error = match result {
            Ok(()) => {
                shared
                    .counts
                    .flushed
                    .fetch_add(count as u64, Ordering::Relaxed);
                shared.counts.batches.fetch_add(1, Ordering::Relaxed);
                shared.release(count);
                return;
            }
            Err(error) => error,
        };
        shared
            .counts
            .failed
            .fetch_add(count as u64, Ordering::Relaxed);
        match self.handler.on_error(&key, items, error).await {
            OnError::Handled => shared.release(count),
            OnError::Requeue(mut items) => {
                // The handler may return fewer (or more) items than it got: the bound
                // follows what is actually kept.
                let kept = items.len();
                if kept < count {
                    shared.release(count - kept);
                } else if kept > count {
                    shared.pending.fetch_add(kept - count, Ordering::AcqRel);
                }
                if kept == 0 {
                    return;
                }
                if let Some(left) = left {
                    // Handed back to the caller of `shutdown`: no longer pending here.
                    shared.release(kept);
                    left.push((key, items));
                    return;
                }
                // Not closed: a closing partition flushes with `left`.
                let mut partition = shared.partitions[self.index].lock();
                let newer = partition.keys.entry(key).or_default();
                items.append(newer);
                *newer = items;
            }
        }
    }
}
