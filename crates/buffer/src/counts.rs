//! What every buffer shares: its counters and the spawning of its partitions' tasks.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use crate::BufferStats;

/// Counters of items (or leaf updates) by what became of them; see [`BufferStats`].
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub(crate) flushed: AtomicU64,
    pub(crate) batches: AtomicU64,
    pub(crate) retried: AtomicU64,
    pub(crate) failed: AtomicU64,
    pub(crate) refused: AtomicU64,
    pub(crate) rejected: AtomicU64,
}

impl Counts {
    /// The snapshot, with what the buffer counts itself.
    pub(crate) fn stats(&self, pending: usize, keys: usize, tracked: u64) -> BufferStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BufferStats {
            pending,
            keys,
            flushed: get(&self.flushed),
            retried: get(&self.retried),
            failed: get(&self.failed),
            rejected: get(&self.rejected),
            tracked,
            batches: get(&self.batches),
            refused: get(&self.refused),
        }
    }
}

/// Spawns `count` partition tasks on `runtime`: `task(index, rng seed, commands)` for each
/// (the seed, never 0, spreads their timers' jitter). Returns the senders of their commands.
pub(crate) fn spawn_partitions<C, F>(
    runtime: &tokio::runtime::Handle,
    count: usize,
    mut task: impl FnMut(usize, u64, mpsc::UnboundedReceiver<C>) -> F,
) -> Vec<mpsc::UnboundedSender<C>>
where
    F: Future<Output = ()> + Send + 'static,
{
    let seeds = RandomState::new();
    (0..count)
        .map(|index| {
            let (tx, rx) = mpsc::unbounded_channel();
            runtime.spawn(task(index, seeds.hash_one(index) | 1, rx));
            tx
        })
        .collect()
}
