//! The counters every buffer keeps, and the snapshot they give.

use std::sync::atomic::{AtomicU64, Ordering};

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
