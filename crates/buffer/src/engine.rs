//! The flushing engine shared by [`Buffered`](crate::Buffered) and
//! [`BufferedTracker`](crate::BufferedTracker): partitions holding a coalescing window each, a
//! task per partition that turns the window into batches with ids and sends them in order,
//! retrying a batch with its id until it is written.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};

use parking_lot::Mutex;
use stats_core::{Batch, BatchId, Error, Key, MetricStore, Result};
use tokio::sync::{Notify, RwLock, RwLockReadGuard, mpsc, oneshot};
use tokio::time::Instant;

use crate::coalescing::Coalescing;
use crate::{BufferError, BufferStats, Options, Overflow};

/// What a coalescing window must offer the engine.
pub(crate) trait Window: Default + Send + 'static {
    /// Whether nothing is pending.
    fn is_empty(&self) -> bool;
    /// Everything pending, as batches in the order they must be applied.
    fn drain(self, sink: &mut BatchSink) -> Result<()>;
}

/// Collects batches of at most `max` leaf updates (a document is never split).
pub(crate) struct BatchSink {
    max: usize,
    current: Batch,
    pub(crate) done: Vec<Batch>,
}

impl BatchSink {
    pub(crate) fn new(max: usize) -> Self {
        BatchSink {
            max,
            current: Batch::new(),
            done: Vec::new(),
        }
    }

    /// The batch to append a document of about `len` leaf updates to.
    pub(crate) fn batch_for(&mut self, len: usize) -> &mut Batch {
        if !self.current.is_empty() && self.current.len() + len > self.max {
            self.done.push(std::mem::take(&mut self.current));
        }
        &mut self.current
    }

    fn finish(mut self) -> Vec<Batch> {
        if !self.current.is_empty() {
            self.done.push(self.current);
        }
        self.done
    }
}

struct Slot<W> {
    state: Mutex<State<W>>,
    /// Held for writing from taking the window until its batches are written (released while
    /// waiting for a retry), for reading by reads that merge pending writes: a read sees each
    /// write either in the store or pending, never both, never neither.
    gate: RwLock<()>,
}

pub(crate) struct State<W> {
    pub(crate) window: W,
    units: usize,
    closed: bool,
    flush_requested: bool,
}

struct Inner<W> {
    store: Arc<dyn MetricStore>,
    settings: Coalescing,
    slots: Vec<Slot<W>>,
    pending: AtomicUsize,
    room: Notify,
    closed: AtomicBool,
    tracked: AtomicU64,
    flushed: AtomicU64,
    batches: AtomicU64,
    retried: AtomicU64,
    failed: AtomicU64,
    refused: AtomicU64,
    rejected: AtomicU64,
}

enum Command {
    Flush,
    FlushAll(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Vec<Batch>>),
}

/// The outcome of planning a write into a window.
pub(crate) enum Planned {
    /// Committed.
    Done,
    /// Not committed: it needs more room than the bound leaves.
    NeedRoom,
}

enum Attempt {
    /// Committed; these partitions reached `max_size`.
    Done(Vec<usize>),
    NeedRoom,
    Closed,
}

pub(crate) struct Engine<W> {
    inner: Arc<Inner<W>>,
    senders: Vec<mpsc::UnboundedSender<Command>>,
    hasher: RandomState,
    shutting_down: tokio::sync::Mutex<()>,
}

impl<W> fmt::Debug for Engine<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.inner.store.name())
            .field("partitions", &self.inner.slots.len())
            .field("pending", &self.inner.pending.load(Ordering::Relaxed))
            .finish()
    }
}

impl<W: Window> Engine<W> {
    pub(crate) fn new(store: Arc<dyn MetricStore>, settings: Coalescing) -> Result<Self> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|_| BufferError::NoRuntime)?;
        let count = settings.options.get_partitions();
        let inner = Arc::new(Inner {
            store,
            slots: (0..count)
                .map(|_| Slot {
                    state: Mutex::new(State {
                        window: W::default(),
                        units: 0,
                        closed: false,
                        flush_requested: false,
                    }),
                    gate: RwLock::new(()),
                })
                .collect(),
            settings,
            pending: AtomicUsize::new(0),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            tracked: AtomicU64::new(0),
            flushed: AtomicU64::new(0),
            batches: AtomicU64::new(0),
            retried: AtomicU64::new(0),
            failed: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
        });
        let seeds = RandomState::new();
        let mut senders = Vec::with_capacity(count);
        for index in 0..count {
            let (tx, rx) = mpsc::unbounded_channel();
            senders.push(tx);
            let worker = Worker {
                inner: inner.clone(),
                index,
                rng: seeds.hash_one(index) | 1,
                outbox: VecDeque::new(),
            };
            runtime.spawn(worker.run(rx));
        }
        Ok(Engine {
            inner,
            senders,
            hasher: RandomState::new(),
            shutting_down: tokio::sync::Mutex::new(()),
        })
    }

    pub(crate) fn partition_of<T: std::hash::Hash + ?Sized>(&self, value: &T) -> usize {
        (self.hasher.hash_one(value) % self.inner.slots.len() as u64) as usize
    }

    /// Runs `write` on the windows of `partitions` (ascending, no repeats) under their locks,
    /// taken in that order. `write` gets the windows, the room left under the memory bound, and
    /// a slot per partition for the entries it adds there (negative when a `set` drops some).
    /// It commits everything and returns [`Planned::Done`], or changes nothing: an error, or
    /// [`Planned::NeedRoom`] when the entries it would add exceed the room; then this waits
    /// for room ([`Overflow::Backpressure`]) or refuses ([`Overflow::Reject`]) and tries again.
    ///
    /// `tracked` is the number of leaf updates the write stands for (for the counters).
    pub(crate) async fn write(
        &self,
        partitions: &[usize],
        tracked: usize,
        mut write: impl FnMut(&mut [&mut W], usize, &mut [isize]) -> Result<Planned>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let options = &inner.settings.options;
        let mut added = vec![0isize; partitions.len()];
        loop {
            let notified = inner.room.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if inner.closed.load(Ordering::Acquire) {
                inner.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(BufferError::ShutDown.into());
            }
            let pending = inner.pending.load(Ordering::Acquire);
            // Alone in the buffer, a write always fits (else a write larger than the bound
            // would wait forever).
            let room = if pending == 0 {
                usize::MAX
            } else {
                options.get_max_pending().saturating_sub(pending)
            };
            match self.try_write(partitions, room, &mut added, &mut write)? {
                Attempt::Done(full) => {
                    inner.tracked.fetch_add(tracked as u64, Ordering::Relaxed);
                    for index in full {
                        let _ = self.senders[index].send(Command::Flush);
                    }
                    return Ok(());
                }
                Attempt::Closed => {
                    inner.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(BufferError::ShutDown.into());
                }
                Attempt::NeedRoom => {
                    if options.get_overflow() == Overflow::Reject {
                        inner.rejected.fetch_add(1, Ordering::Relaxed);
                        return Err(BufferError::Full {
                            max_pending: options.get_max_pending(),
                        }
                        .into());
                    }
                    notified.await;
                }
            }
        }
    }

    /// One attempt of [`Engine::write`], under the partitions' locks (never across an await).
    fn try_write(
        &self,
        partitions: &[usize],
        room: usize,
        added: &mut [isize],
        write: &mut impl FnMut(&mut [&mut W], usize, &mut [isize]) -> Result<Planned>,
    ) -> Result<Attempt> {
        let inner = &*self.inner;
        let max_size = inner.settings.options.get_max_size();
        let mut guards: Vec<_> = partitions
            .iter()
            .map(|&i| inner.slots[i].state.lock())
            .collect();
        if guards.iter().any(|g| g.closed) {
            return Ok(Attempt::Closed);
        }
        added.iter_mut().for_each(|a| *a = 0);
        let planned = {
            let mut windows: Vec<&mut W> = guards.iter_mut().map(|g| &mut g.window).collect();
            write(&mut windows, room, added)?
        };
        if let Planned::NeedRoom = planned {
            return Ok(Attempt::NeedRoom);
        }
        let mut full = Vec::new();
        for ((state, &delta), &index) in guards.iter_mut().zip(added.iter()).zip(partitions) {
            state.units = state.units.saturating_add_signed(delta);
            if delta >= 0 {
                inner.pending.fetch_add(delta as usize, Ordering::AcqRel);
            } else {
                inner.release(delta.unsigned_abs());
            }
            if state.units >= max_size && !state.flush_requested {
                state.flush_requested = true;
                full.push(index);
            }
        }
        Ok(Attempt::Done(full))
    }

    /// Waits until no partition is flushing, and keeps it so while the guards live: for reads
    /// that merge pending writes with the store's documents.
    pub(crate) async fn read_gates(&self) -> Vec<RwLockReadGuard<'_, ()>> {
        let mut guards = Vec::with_capacity(self.inner.slots.len());
        for slot in &self.inner.slots {
            guards.push(slot.gate.read().await);
        }
        guards
    }

    /// Calls `f` with every partition's window, in partition order (under each one's lock).
    pub(crate) fn each_window(&self, mut f: impl FnMut(&W) -> Result<()>) -> Result<()> {
        for slot in &self.inner.slots {
            f(&slot.state.lock().window)?;
        }
        Ok(())
    }

    /// Flushes every partition now and waits for it.
    ///
    /// # Errors
    /// The first error of a partition whose batches could not all be written (they stay
    /// pending and are retried on the next interval).
    pub(crate) async fn flush_all(&self) -> Result<()> {
        let mut acks = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let (tx, rx) = oneshot::channel();
            if sender.send(Command::FlushAll(tx)).is_ok() {
                acks.push(rx);
            }
        }
        let mut first = Ok(());
        for ack in acks {
            if let Ok(Err(e)) = ack.await
                && first.is_ok()
            {
                first = Err(e);
            }
        }
        first
    }

    /// Refuses later writes, flushes everything and stops the partitions' tasks. Returns the
    /// batches that could not be written, with their ids.
    pub(crate) async fn shutdown(&self) -> Vec<Batch> {
        let _one_at_a_time = self.shutting_down.lock().await;
        self.inner.closed.store(true, Ordering::Release);
        self.inner.room.notify_waiters();
        let mut acks = Vec::with_capacity(self.senders.len());
        for sender in &self.senders {
            let (tx, rx) = oneshot::channel();
            if sender.send(Command::Shutdown(tx)).is_ok() {
                acks.push(rx);
            }
        }
        let mut left = Vec::new();
        for ack in acks {
            if let Ok(batches) = ack.await {
                left.extend(batches);
            }
        }
        left
    }

    pub(crate) fn stats(&self) -> BufferStats {
        let inner = &*self.inner;
        let mut stats = BufferStats::default();
        stats.pending = inner.pending.load(Ordering::Acquire);
        stats.keys = inner
            .slots
            .iter()
            .filter(|s| !s.state.lock().window.is_empty())
            .count();
        stats.flushed = inner.flushed.load(Ordering::Relaxed);
        stats.retried = inner.retried.load(Ordering::Relaxed);
        stats.failed = inner.failed.load(Ordering::Relaxed);
        stats.rejected = inner.rejected.load(Ordering::Relaxed);
        stats.tracked = inner.tracked.load(Ordering::Relaxed);
        stats.batches = inner.batches.load(Ordering::Relaxed);
        stats.refused = inner.refused.load(Ordering::Relaxed);
        stats
    }

    pub(crate) fn options(&self) -> &Options {
        &self.inner.settings.options
    }
}

impl<W> Inner<W> {
    fn release(&self, units: usize) {
        if units > 0 {
            self.pending.fetch_sub(units, Ordering::AcqRel);
            self.room.notify_waiters();
        }
    }
}

struct Worker<W> {
    inner: Arc<Inner<W>>,
    index: usize,
    rng: u64,
    /// Batches taken from the window and not yet written, oldest first. A batch keeps its id
    /// across retries, so a store with idempotent batches applies it once.
    outbox: VecDeque<Batch>,
}

impl<W: Window> Worker<W> {
    async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let options = self.inner.settings.options.clone();
        let mut tick = Instant::now() + options.next_interval(&mut self.rng);
        loop {
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Flush) => {
                        let _ = self.flush().await;
                    }
                    Some(Command::FlushAll(ack)) => {
                        let _ = ack.send(self.flush().await);
                    }
                    Some(Command::Shutdown(ack)) => {
                        let _ = ack.send(self.close().await);
                        return;
                    }
                    None => {
                        let left = self.close().await;
                        let lost: usize = left.iter().map(Batch::len).sum();
                        if lost > 0 {
                            log::error!(
                                "buffer dropped without shutdown: {lost} leaf updates of partition {} \
                                 could not be written and are lost",
                                self.index
                            );
                        }
                        return;
                    }
                },
                () = tokio::time::sleep_until(tick) => {
                    if let Err(e) = self.flush().await {
                        log::warn!("buffer flush failed, retried on the next interval: {e}");
                    }
                    tick = Instant::now() + options.next_interval(&mut self.rng);
                }
            }
        }
    }

    async fn close(&mut self) -> Vec<Batch> {
        self.inner.slots[self.index].state.lock().closed = true;
        let _ = self.flush().await;
        let left: Vec<Batch> = self.outbox.drain(..).collect();
        self.inner.release(left.iter().map(Batch::len).sum());
        left
    }

    /// Moves the window into the outbox, then writes the outbox in order.
    async fn flush(&mut self) -> Result<()> {
        let inner = &*self.inner;
        let slot = &inner.slots[self.index];
        let mut gate = slot.gate.write().await;
        let (window, units) = {
            let mut state = slot.state.lock();
            state.flush_requested = false;
            (
                std::mem::take(&mut state.window),
                std::mem::take(&mut state.units),
            )
        };
        if !window.is_empty() {
            let mut sink = BatchSink::new(inner.settings.max_batch);
            let drained = window.drain(&mut sink);
            let batches = sink.finish();
            let sent: usize = batches.iter().map(Batch::len).sum();
            inner.pending.fetch_add(sent, Ordering::AcqRel);
            inner.release(units);
            for batch in batches {
                self.outbox.push_back(batch.with_id(BatchId::new()));
            }
            if let Err(e) = drained {
                // Cannot happen with checked writes; said loudly rather than lost quietly.
                log::error!("buffered writes could not be turned into a batch: {e}");
            }
        }
        while let Some(batch) = self.outbox.front_mut() {
            let len = batch.len();
            let mut attempt = 0;
            let result = loop {
                match inner.store.apply(batch).await {
                    Ok(()) => break Ok(()),
                    Err(e) if e.is_retryable() => {
                        if attempt >= inner.settings.options.get_retry_max() {
                            break Err(e);
                        }
                        attempt += 1;
                        inner.retried.fetch_add(len as u64, Ordering::Relaxed);
                        // Reads may go on while this waits: they see the store without this
                        // batch (it may or may not be in it).
                        drop(gate);
                        tokio::time::sleep(inner.settings.options.backoff(attempt)).await;
                        gate = slot.gate.write().await;
                    }
                    Err(e) => {
                        let refused = refused_part(batch, &e, &*inner.store);
                        let count = refused.len();
                        inner.refused.fetch_add(count as u64, Ordering::Relaxed);
                        (inner.settings.on_refused)(refused, &e);
                        inner.release(count);
                        if batch.is_empty() {
                            break Ok(());
                        }
                    }
                }
            };
            match result {
                Ok(()) => {
                    let len = batch.len();
                    if len > 0 {
                        inner.flushed.fetch_add(len as u64, Ordering::Relaxed);
                        inner.batches.fetch_add(1, Ordering::Relaxed);
                    }
                    inner.release(len);
                    self.outbox.pop_front();
                }
                Err(e) => {
                    let stalled: usize = self.outbox.iter().map(Batch::len).sum();
                    inner.failed.fetch_add(len as u64, Ordering::Relaxed);
                    return Err(e.context(format_args!(
                        "{stalled} buffered leaf updates kept for the next attempt"
                    )));
                }
            }
        }
        Ok(())
    }
}

/// Takes out of `batch` what the store refused for good with `error`, leaving in `batch` what
/// may be applied again with the same id.
///
/// When the error names a key and the store's batches are atomic (nothing was applied) or
/// idempotent (what was applied is recorded under the id, per key or metric), only that key's
/// updates are refused. Otherwise (a store that may have applied part of the batch and would
/// apply it again) the whole batch is.
fn refused_part(batch: &mut Batch, error: &Error, store: &dyn MetricStore) -> Batch {
    let culprit = match error {
        Error::Overflow { key, .. } | Error::PathConflict { key, .. } => Some(key.as_str()),
        _ => None,
    };
    let caps = store.capabilities();
    let Some(culprit) = culprit.filter(|_| caps.atomic_batch || caps.idempotent_batch) else {
        return std::mem::take(batch);
    };
    let mut rest = Batch::new();
    rest.set_id(batch.id());
    let mut refused = Batch::new();
    for write in batch.writes() {
        let (bad, good): (Vec<Key>, Vec<Key>) = write
            .keys()
            .iter()
            .cloned()
            .partition(|k| k.to_string() == culprit);
        rest.push_flat(write.op(), good, write.fields().clone());
        refused.push_flat(write.op(), bad, write.fields().clone());
    }
    if refused.is_empty() {
        // The error does not name a key of the batch: nothing narrower to refuse.
        return std::mem::take(batch);
    }
    *batch = rest;
    refused
}
