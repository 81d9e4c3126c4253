//! The flushing engine shared by [`Buffered`](crate::Buffered) and
//! [`BufferedTracker`](crate::BufferedTracker): partitions holding a coalescing window each, a
//! task per partition that turns the window into batches with ids and sends them in order,
//! retrying a batch with its id until it is written.

use std::collections::VecDeque;
use std::collections::hash_map::RandomState;
use std::fmt;
use std::hash::BuildHasher;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use parking_lot::Mutex;
use stats_core::{Batch, BatchId, Error, Key, MetricStore, Result};
use tokio::sync::{Notify, RwLock, RwLockReadGuard, RwLockWriteGuard, mpsc, oneshot};
use tokio::time::Instant;

use crate::coalescing::Coalescing;
use crate::counts::{Counts, spawn_partitions};
use crate::spill::Spill;
use crate::{BufferError, BufferStats, Options, Overflow};

/// What a coalescing window must offer the engine.
pub(crate) trait Window: Default + Send + 'static {
    /// Whether nothing is pending.
    fn is_empty(&self) -> bool;
    /// The pending documents.
    fn documents(&self) -> usize;
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
    tracked: u64,
    closed: bool,
    flush_requested: bool,
}

struct Inner<W> {
    store: Arc<dyn MetricStore>,
    settings: Coalescing,
    spill: Option<Spill>,
    /// Batches read from the spill file at start, written before anything else.
    replay: tokio::sync::Mutex<VecDeque<Batch>>,
    slots: Vec<Slot<W>>,
    pending: AtomicUsize,
    room: Notify,
    closed: AtomicBool,
    counts: Counts,
}

enum Command {
    Flush,
    FlushAll(oneshot::Sender<Result<()>>),
    Shutdown(oneshot::Sender<Vec<Batch>>),
}

/// The memory bound, as a write sees it: it reserves what it adds before committing it.
pub(crate) struct Room<'a> {
    pending: &'a AtomicUsize,
    max: usize,
}

impl Room<'_> {
    /// Reserves `delta` pending entries: true for `delta <= 0`, and for a positive one that
    /// fits under the bound, or when nothing is pending (a write alone always fits, else a
    /// write larger than the bound would wait forever). Atomic: concurrent writes never pass
    /// the bound together.
    pub(crate) fn reserve(&self, delta: isize) -> bool {
        let Ok(more) = usize::try_from(delta) else {
            return true;
        };
        more == 0
            || self
                .pending
                .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                    (p == 0 || p.saturating_add(more) <= self.max).then(|| p + more)
                })
                .is_ok()
    }
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
        let (spill, replay) = match &settings.spill {
            Some(path) => {
                let (spill, batches) = Spill::open(path)?;
                (Some(spill), batches)
            }
            None => (None, Vec::new()),
        };
        let replayed: usize = replay.iter().map(Batch::len).sum();
        let inner = Arc::new(Inner {
            store,
            spill,
            replay: tokio::sync::Mutex::new(replay.into()),
            slots: (0..count)
                .map(|_| Slot {
                    state: Mutex::new(State {
                        window: W::default(),
                        units: 0,
                        tracked: 0,
                        closed: false,
                        flush_requested: false,
                    }),
                    gate: RwLock::new(()),
                })
                .collect(),
            settings,
            pending: AtomicUsize::new(replayed),
            room: Notify::new(),
            closed: AtomicBool::new(false),
            counts: Counts::default(),
        });
        let senders = spawn_partitions(&runtime, count, |index, rng, commands| {
            Worker {
                inner: inner.clone(),
                index,
                rng,
                outbox: VecDeque::new(),
            }
            .run(commands)
        });
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
    /// taken in that order. `write` gets the windows, the memory bound, and a slot per
    /// partition for the entries it adds there (negative when a `set` drops some). It reserves
    /// what it adds ([`Room::reserve`]), commits everything and returns [`Planned::Done`], or
    /// changes nothing: an error, or [`Planned::NeedRoom`] when the reservation failed; then
    /// this waits for room ([`Overflow::Backpressure`]) or refuses ([`Overflow::Reject`]) and
    /// tries again.
    ///
    /// `tracked` is the number of leaf updates the write stands for (for the counters).
    pub(crate) async fn write(
        &self,
        partitions: &[usize],
        tracked: usize,
        mut write: impl FnMut(&mut [&mut W], &Room<'_>, &mut [isize]) -> Result<Planned>,
    ) -> Result<()> {
        let inner = &*self.inner;
        let options = &inner.settings.options;
        let mut one = [0isize; 1];
        let mut many = Vec::new();
        let added: &mut [isize] = if partitions.len() == 1 {
            &mut one
        } else {
            many.resize(partitions.len(), 0);
            &mut many
        };
        let mut waiting = false;
        loop {
            // Registered for wake-ups only once a write had to wait: the hot path takes no
            // shared lock besides its partition's.
            let notified = inner.room.notified();
            tokio::pin!(notified);
            if waiting {
                notified.as_mut().enable();
            }
            if inner.closed.load(Ordering::Acquire) {
                inner.counts.rejected.fetch_add(1, Ordering::Relaxed);
                return Err(BufferError::ShutDown.into());
            }
            let room = Room {
                pending: &inner.pending,
                max: options.get_max_pending(),
            };
            match self.try_write(partitions, &room, tracked, added, &mut write)? {
                Attempt::Done(full) => {
                    for index in full {
                        let _ = self.senders[index].send(Command::Flush);
                    }
                    return Ok(());
                }
                Attempt::Closed => {
                    inner.counts.rejected.fetch_add(1, Ordering::Relaxed);
                    return Err(BufferError::ShutDown.into());
                }
                Attempt::NeedRoom if !waiting => {
                    // At the bound: the partitions flush now rather than at their next
                    // interval (once each until they do), and this tries again registered, so
                    // that a release in between is not missed.
                    for (slot, sender) in inner.slots.iter().zip(&self.senders) {
                        let mut state = slot.state.lock();
                        if !state.flush_requested && !state.window.is_empty() {
                            state.flush_requested = true;
                            let _ = sender.send(Command::Flush);
                        }
                    }
                    waiting = true;
                }
                Attempt::NeedRoom => {
                    if options.get_overflow() == Overflow::Reject {
                        inner.counts.rejected.fetch_add(1, Ordering::Relaxed);
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
        room: &Room<'_>,
        tracked: usize,
        added: &mut [isize],
        write: &mut impl FnMut(&mut [&mut W], &Room<'_>, &mut [isize]) -> Result<Planned>,
    ) -> Result<Attempt> {
        let inner = &*self.inner;
        let max_size = inner.settings.options.get_max_size();
        if let [index] = *partitions {
            // One partition (every tracker event): no allocation.
            let mut state = inner.slots[index].state.lock();
            if state.closed {
                return Ok(Attempt::Closed);
            }
            added[0] = 0;
            if let Planned::NeedRoom = write(&mut [&mut state.window], room, added)? {
                return Ok(Attempt::NeedRoom);
            }
            state.tracked += tracked as u64;
            let delta = added[0];
            state.units = state.units.saturating_add_signed(delta);
            let full = state.units >= max_size && !state.flush_requested;
            state.flush_requested |= full;
            drop(state);
            // What it added was reserved by the write (`Room::reserve`).
            if delta < 0 {
                inner.release(delta.unsigned_abs());
            }
            return Ok(Attempt::Done(if full { vec![index] } else { Vec::new() }));
        }
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
        if let Some(first) = guards.first_mut() {
            // Counted per partition: no shared counter on the hot path.
            first.tracked += tracked as u64;
        }
        for ((state, &delta), &index) in guards.iter_mut().zip(added.iter()).zip(partitions) {
            state.units = state.units.saturating_add_signed(delta);
            if delta < 0 {
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
        inner.counts.stats(
            inner.pending.load(Ordering::Acquire),
            inner
                .slots
                .iter()
                .map(|s| s.state.lock().window.documents())
                .sum(),
            inner.slots.iter().map(|s| s.state.lock().tracked).sum(),
        )
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
        let mut left: Vec<Batch> = self.inner.replay.lock().await.drain(..).collect();
        left.extend(self.outbox.drain(..));
        self.inner.release(left.iter().map(Batch::len).sum());
        left
    }

    /// Moves the window into the outbox, then writes the batches replayed from the spill file
    /// (if any are left) and the outbox, in order.
    async fn flush(&mut self) -> Result<()> {
        let inner = &*self.inner;
        let slot = &inner.slots[self.index];
        let mut gate = Some(slot.gate.write().await);
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
            // One net change: the window's entries become the batches' leaf updates (never
            // more: a tracker's entries count once per granularity).
            let sent: usize = batches.iter().map(Batch::len).sum();
            match sent.checked_sub(units) {
                Some(more) => {
                    inner.pending.fetch_add(more, Ordering::AcqRel);
                }
                None => inner.release(units - sent),
            }
            for batch in batches {
                self.outbox.push_back(batch.with_id(BatchId::new()));
            }
            if let Err(e) = drained {
                // Cannot happen with checked writes; said loudly rather than lost quietly.
                log::error!("buffered writes could not be turned into a batch: {e}");
            }
        }
        // What an earlier process spilled goes before anything of this one.
        {
            let mut replay = inner.replay.lock().await;
            if !replay.is_empty() {
                write_queue(inner, slot, &mut replay, &mut gate).await?;
            }
        }
        write_queue(inner, slot, &mut self.outbox, &mut gate).await
    }
}

/// Writes `queue` in order, each batch with retries; stops at a batch that still fails (it and
/// what follows stay queued, and go to the spill file if there is one).
async fn write_queue<'s, W>(
    inner: &'s Inner<W>,
    slot: &'s Slot<W>,
    queue: &mut VecDeque<Batch>,
    gate: &mut Option<RwLockWriteGuard<'s, ()>>,
) -> Result<()> {
    while let Some(batch) = queue.front_mut() {
        let len = batch.len();
        // Later parts of this batch split off by a refusal, in order (see `refused_part`).
        let mut split: Vec<Batch> = Vec::new();
        let mut attempt = 0;
        let result = loop {
            match inner.store.apply(batch).await {
                Ok(()) => break Ok(()),
                Err(e) if e.is_retryable() => {
                    if attempt >= inner.settings.options.get_retry_max() {
                        break Err(e);
                    }
                    attempt += 1;
                    inner
                        .counts
                        .retried
                        .fetch_add(len as u64, Ordering::Relaxed);
                    // Reads may go on while this waits: they see the store without this
                    // batch (it may or may not be in it).
                    *gate = None;
                    tokio::time::sleep(inner.settings.options.backoff(attempt)).await;
                    *gate = Some(slot.gate.write().await);
                }
                Err(e) => {
                    let refused = match refused_part(batch, &e, &*inner.store) {
                        Narrowed::Refused(refused) => refused,
                        Narrowed::Split(later) => {
                            // Try the part up to the culprit's second write again; its later
                            // writes follow as a batch of their own (kept in the spill file
                            // too, if there is one: the first part is written under the
                            // original id, which marks that id done there).
                            if let Some(spill) = &inner.spill
                                && let Err(spill_error) = spill.append(&later)
                            {
                                log::error!("{spill_error}; the batch stays in memory");
                            }
                            split.push(later);
                            continue;
                        }
                    };
                    let count = refused.len();
                    inner
                        .counts
                        .refused
                        .fetch_add(count as u64, Ordering::Relaxed);
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
                    inner
                        .counts
                        .flushed
                        .fetch_add(len as u64, Ordering::Relaxed);
                    inner.counts.batches.fetch_add(1, Ordering::Relaxed);
                }
                inner.release(len);
                if let Some(spill) = &inner.spill {
                    spill.written(batch);
                }
                queue.pop_front();
                for later in split.into_iter().rev() {
                    queue.push_front(later);
                }
            }
            Err(e) => {
                for (i, later) in split.into_iter().enumerate() {
                    queue.insert(1 + i, later);
                }
                inner.counts.failed.fetch_add(len as u64, Ordering::Relaxed);
                let stalled: usize = queue.iter().map(Batch::len).sum();
                if let Some(spill) = &inner.spill {
                    for batch in queue.iter() {
                        if let Err(spill_error) = spill.append(batch) {
                            log::error!("{spill_error}; the batches stay in memory");
                            break;
                        }
                    }
                }
                return Err(e.context(format_args!(
                    "{stalled} buffered leaf updates kept for the next attempt"
                )));
            }
        }
    }
    Ok(())
}

/// What [`refused_part`] took out of a batch.
enum Narrowed {
    /// Refused for good (the rest stays in the batch, to be applied again with its id).
    Refused(Batch),
    /// Nothing refused yet: the batch now ends before the second write of the key the store
    /// refused, and this is that key's later writes, to be applied after it as a batch of its
    /// own (a new id).
    Split(Batch),
}

/// Takes out of `batch` what the store refused for good with `error`, leaving in `batch` what
/// may be applied again with the same id.
///
/// When the error names a key and the store's batches are atomic (nothing was applied) or
/// idempotent (what was applied is recorded under the id, per key or metric), only that key's
/// updates are refused. Otherwise (a store that may have applied part of the batch and would
/// apply it again) the whole batch is.
///
/// When several writes of the batch touch that key (writes that could not be folded, such as
/// a set then an increment), which of them the store refused is unknown: the batch is split
/// before the key's second write instead, so that each write of that key is tried in its turn
/// and only the ones that fail are refused, as writing them one by one would. The later part
/// holds only that key's writes, so with an idempotent store that applied the other keys
/// under the original id, nothing is applied twice; it gets an id of its own (the culprit's
/// metric recorded nothing under the original one: its writes failed together).
fn refused_part(batch: &mut Batch, error: &Error, store: &dyn MetricStore) -> Narrowed {
    let culprit = match error {
        Error::Overflow { key, .. } | Error::PathConflict { key, .. } => Some(key.as_str()),
        _ => None,
    };
    let caps = store.capabilities();
    let Some(culprit) = culprit.filter(|_| caps.atomic_batch || caps.idempotent_batch) else {
        return Narrowed::Refused(std::mem::take(batch));
    };
    let touching: Vec<usize> = batch
        .writes()
        .iter()
        .enumerate()
        .filter(|(_, w)| w.keys().iter().any(|k| k.to_string() == culprit))
        .map(|(i, _)| i)
        .collect();
    if let [_, second, ..] = touching[..] {
        let mut first = Batch::new();
        first.set_id(batch.id());
        let mut later = Batch::new();
        later.set_id(batch.id().map(|_| BatchId::new()));
        for (i, write) in batch.writes().iter().enumerate() {
            if i < second {
                first.push_flat(write.op(), write.keys().to_vec(), write.fields().clone());
                continue;
            }
            let (bad, good): (Vec<Key>, Vec<Key>) = write
                .keys()
                .iter()
                .cloned()
                .partition(|k| k.to_string() == culprit);
            first.push_flat(write.op(), good, write.fields().clone());
            later.push_flat(write.op(), bad, write.fields().clone());
        }
        *batch = first;
        return Narrowed::Split(later);
    }
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
        return Narrowed::Refused(std::mem::take(batch));
    }
    *batch = rest;
    Narrowed::Refused(refused)
}
