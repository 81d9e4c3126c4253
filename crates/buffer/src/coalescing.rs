//! [`Coalescing`]: the settings of the coalescing buffers.

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use stats_core::{Batch, Error, Result};

use crate::Options;

/// Called with what the store refused for good, and why.
pub(crate) type RefusedHandler = Arc<dyn Fn(Batch, &Error) + Send + Sync>;

/// The default memory bound of the coalescing buffers, in pending leaf updates (see
/// [`Coalescing`]): a pending entry takes about 100 to 150 bytes, and a tracker's entry counts
/// once per granularity, so this is a few hundred megabytes at the most. A thousand metrics
/// tracked over the last hour with 3 fields and the 7 default granularities hold about
/// 1.3 million.
pub const DEFAULT_MAX_PENDING: usize = 4_000_000;

/// The default number of leaf updates per batch sent to the store.
pub const DEFAULT_MAX_BATCH: usize = 10_000;

/// The settings of the coalescing buffers, [`Buffered`](crate::Buffered) and
/// [`BufferedTracker`](crate::BufferedTracker).
///
/// [`options`](Coalescing::options) are the [`Options`] of [`KeyedBuffer`](crate::KeyedBuffer),
/// read this way:
///
/// - `partitions`: windows with their own lock and flush task (a metric always goes to the
///   same one);
/// - `interval`, `jitter`: how often each partition flushes (default here: 1 s); a write that
///   finds the memory bound reached makes every partition flush at once;
/// - `max_size`: the pending leaf updates (counted as for `max_pending`, below) that make a
///   partition flush at once (default here: a quarter of `max_pending`);
/// - `max_pending`, `overflow`: the memory bound over everything pending, in leaf updates: a
///   pending entry of a [`Buffered`](crate::Buffered) counts one, one of a
///   [`BufferedTracker`](crate::BufferedTracker) once per granularity (what it becomes when
///   written), and a batch not yet written its leaf updates. A write reserves what it adds
///   before it is kept, so concurrent writes never pass the bound together; at the bound a
///   write that needs a new entry waits or fails with a typed error (writes that fold into
///   existing entries never wait). A single write larger than the bound goes through when
///   nothing else is pending. One more case may pass the bound, at a flush: an integer leaf
///   whose pending increments have both signs is sent as up to three increments (so that an
///   overflow is refused exactly as one by one), counted as one entry until then;
/// - `retry_delay`, `retry_delay_max`, `retry_max`: retries of a batch within one flush. A
///   batch still failing after them stays pending (with its id) and is tried again on the next
///   interval, before anything newer of its partition.
///
/// ```
/// use std::time::Duration;
///
/// use stats_buffer::{Coalescing, Options, Overflow};
///
/// let settings = Coalescing::new()
///     .options(
///         Options::new()
///             .interval(Duration::from_millis(200))?
///             .max_pending(100_000)?
///             .overflow(Overflow::Reject),
///     )
///     .max_batch(5_000)?
///     .on_refused(|batch, error| eprintln!("not written: {} updates: {error}", batch.len()));
/// assert_eq!(settings.get_max_batch(), 5_000);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct Coalescing {
    pub(crate) options: Options,
    pub(crate) spill: Option<PathBuf>,
    pub(crate) max_batch: usize,
    pub(crate) on_refused: RefusedHandler,
}

impl fmt::Debug for Coalescing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Coalescing")
            .field("options", &self.options)
            .field("max_batch", &self.max_batch)
            .field("spill", &self.spill)
            .finish_non_exhaustive()
    }
}

impl Default for Coalescing {
    fn default() -> Self {
        Self::new()
    }
}

impl Coalescing {
    /// The defaults: [`Options::new`] with a 1 s interval, `max_pending`
    /// [`DEFAULT_MAX_PENDING`] and `max_size` a quarter of it; [`DEFAULT_MAX_BATCH`]; refusals
    /// logged.
    pub fn new() -> Self {
        let options = Options::new()
            .interval(Duration::from_secs(1))
            .and_then(|o| o.max_size(DEFAULT_MAX_PENDING / 4))
            .and_then(|o| o.max_pending(DEFAULT_MAX_PENDING));
        Coalescing {
            options: options.unwrap_or_default(),
            spill: None,
            max_batch: DEFAULT_MAX_BATCH,
            on_refused: Arc::new(|batch: Batch, error: &Error| {
                log::error!(
                    "buffered writes refused by the store, not written ({} leaf updates of {} \
                     documents): {error}",
                    batch.len(),
                    batch.sorted_keys().len()
                );
            }),
        }
    }

    /// The buffer's options (see [`Coalescing`] for how they read here).
    pub fn options(mut self, options: Options) -> Self {
        self.options = options;
        self
    }

    /// At most this many leaf updates per batch sent to the store (default
    /// [`DEFAULT_MAX_BATCH`]); the updates of one document are never split.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for 0.
    pub fn max_batch(mut self, max_batch: usize) -> Result<Self> {
        if max_batch == 0 {
            return Err(Error::InvalidInput(
                "max_batch must be at least 1 leaf update, got 0".into(),
            ));
        }
        self.max_batch = max_batch;
        Ok(self)
    }

    /// Called with what the store refused for good (an error that retrying cannot fix, such as
    /// an increment that overflows the stored value) and the error. The writer was already
    /// told `Ok`, so this (and [`BufferStats::refused`](crate::BufferStats::refused)) is where
    /// the refusal shows. The default logs it at level `error`.
    ///
    /// When the error names a document and the store's batches are atomic or idempotent, only
    /// that document's updates are refused and the rest of the batch is written; otherwise the
    /// whole batch is refused (the store may have applied part of it and must not apply that
    /// part twice).
    pub fn on_refused(mut self, handler: impl Fn(Batch, &Error) + Send + Sync + 'static) -> Self {
        self.on_refused = Arc::new(handler);
        self
    }

    /// Keeps batches that cannot be written on disk, in an append-only file at `path`, so that
    /// they survive a crash or a restart while the store is down.
    ///
    /// A batch goes to the file (appended, then synced) when it first fails after its
    /// retries; the file is emptied when every batch in it is written. When a buffer starts
    /// with a file that holds batches (the last process stopped before writing them), it
    /// writes them first, before anything newer, each with its id: on a store with
    /// idempotent batches a batch the store had already received counts once. One file per
    /// buffer: two buffers must not share one.
    ///
    /// What this does not keep: writes still folding in memory (at most one interval of them)
    /// are lost on a crash, spill file or not.
    ///
    /// ```
    /// use stats_buffer::Coalescing;
    ///
    /// let settings = Coalescing::new().spill_file("/var/lib/myapp/stats.spill");
    /// # let _ = settings;
    /// ```
    pub fn spill_file(mut self, path: impl Into<PathBuf>) -> Self {
        self.spill = Some(path.into());
        self
    }

    /// The options.
    pub fn get_options(&self) -> &Options {
        &self.options
    }

    /// The largest batch, in leaf updates.
    pub fn get_max_batch(&self) -> usize {
        self.max_batch
    }
}
