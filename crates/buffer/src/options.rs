//! The options of a [`KeyedBuffer`](crate::KeyedBuffer), each checked when set.

use std::time::Duration;

use crate::BufferError;

/// What [`KeyedBuffer::insert`](crate::KeyedBuffer::insert) does when
/// [`Options::max_pending`] items are already pending. Neither policy drops an item silently.
///
/// ```
/// use stats_buffer::{Options, Overflow};
///
/// let options = Options::new().max_pending(10_000)?.overflow(Overflow::Reject);
/// assert_eq!(options.get_overflow(), Overflow::Reject);
/// # Ok::<(), stats_buffer::BufferError>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// `insert` waits until flushes make room (the default). Callers slow down to the rate
    /// at which the handler keeps up.
    #[default]
    Backpressure,
    /// `insert` returns [`BufferError::Full`] at once and counts the item as rejected.
    Reject,
}

/// The settings of a [`KeyedBuffer`](crate::KeyedBuffer): a builder whose every setter checks
/// its value and returns [`BufferError::InvalidOption`] naming the setting.
///
/// | setting | default | meaning |
/// |---|---|---|
/// | [`partitions`](Options::partitions) | number of cores | independent partitions; a key always lands in the same one |
/// | [`interval`](Options::interval) | 5 s | how often a partition flushes all its keys |
/// | [`jitter`](Options::jitter) | 1 s | a random extra delay in `[0, jitter]` added to each partition's every interval, so partitions' timers spread |
/// | [`max_size`](Options::max_size) | 5,000 | items of one key that trigger that key's flush at once |
/// | [`max_pending`](Options::max_pending) | 1,000,000 | the memory bound: items inserted and not yet flushed or handed to `on_error` |
/// | [`overflow`](Options::overflow) | [`Overflow::Backpressure`] | what `insert` does at the bound |
/// | [`retry_delay`](Options::retry_delay) | 1 s | the delay before the first retry of a failed flush; doubled for each further retry |
/// | [`retry_delay_max`](Options::retry_delay_max) | 30 s | the cap of the doubled delay |
/// | [`retry_max`](Options::retry_max) | 3 | retries after the first attempt before `on_error` |
///
/// ```
/// use std::time::Duration;
///
/// use stats_buffer::{BufferError, Options};
///
/// let options = Options::new()
///     .partitions(4)?
///     .interval(Duration::from_secs(1))?
///     .jitter(Duration::from_millis(200))?
///     .max_size(1_000)?
///     .retry_max(5);
/// assert_eq!(options.get_partitions(), 4);
///
/// // A bad value is refused by its setter, naming it.
/// let err = Options::new().interval(Duration::ZERO).unwrap_err();
/// assert!(matches!(err, BufferError::InvalidOption { option: "interval", .. }));
/// # Ok::<(), BufferError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Options {
    partitions: usize,
    interval: Duration,
    jitter: Duration,
    max_size: usize,
    max_pending: usize,
    overflow: Overflow,
    retry_delay: Duration,
    retry_delay_max: Duration,
    retry_max: u32,
}

/// More partitions than this would only cost tasks and timers.
const MAX_PARTITIONS: usize = 4096;

impl Default for Options {
    fn default() -> Self {
        Self::new()
    }
}

impl Options {
    /// The defaults listed on [`Options`].
    pub fn new() -> Self {
        Options {
            partitions: std::thread::available_parallelism().map_or(1, |n| n.get()),
            interval: Duration::from_secs(5),
            jitter: Duration::from_secs(1),
            max_size: 5_000,
            max_pending: 1_000_000,
            overflow: Overflow::Backpressure,
            retry_delay: Duration::from_secs(1),
            retry_delay_max: Duration::from_secs(30),
            retry_max: 3,
        }
    }

    /// The number of partitions, from 1 to 4096. Each partition owns its keys (its own lock,
    /// its own flush task and timer); flushes within a partition run one after another.
    pub fn partitions(mut self, partitions: usize) -> Result<Self, BufferError> {
        if !(1..=MAX_PARTITIONS).contains(&partitions) {
            return Err(BufferError::option(
                "partitions",
                format!("must be from 1 to {MAX_PARTITIONS}, got {partitions}"),
            ));
        }
        self.partitions = partitions;
        Ok(self)
    }

    /// How often each partition flushes all its keys; at least 1 ms.
    pub fn interval(mut self, interval: Duration) -> Result<Self, BufferError> {
        if interval < Duration::from_millis(1) {
            return Err(BufferError::at_least(
                "interval",
                Duration::from_millis(1),
                interval,
            ));
        }
        self.interval = interval;
        Ok(self)
    }

    /// The largest random delay added to every interval of every partition (zero: all
    /// partitions tick together). At most one hour.
    pub fn jitter(mut self, jitter: Duration) -> Result<Self, BufferError> {
        if jitter > Duration::from_secs(3600) {
            return Err(BufferError::option(
                "jitter",
                format!("must be at most 1h, got {jitter:?}"),
            ));
        }
        self.jitter = jitter;
        Ok(self)
    }

    /// The number of pending items of one key that flushes that key at once; at least 1.
    pub fn max_size(mut self, max_size: usize) -> Result<Self, BufferError> {
        if max_size == 0 {
            return Err(BufferError::option("max_size", "must be at least 1"));
        }
        self.max_size = max_size;
        Ok(self)
    }

    /// The memory bound: how many items may be pending (inserted, not yet flushed nor handed
    /// to `on_error`) across all keys and partitions; at least 1. At the bound, `insert`
    /// follows [`Options::overflow`].
    pub fn max_pending(mut self, max_pending: usize) -> Result<Self, BufferError> {
        if max_pending == 0 {
            return Err(BufferError::option("max_pending", "must be at least 1"));
        }
        self.max_pending = max_pending;
        Ok(self)
    }

    /// What `insert` does at the memory bound.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// The delay before the first retry of a failed flush, at least 1 ms; each further retry
    /// waits twice as long as the one before, up to [`Options::retry_delay_max`]. Setting it
    /// above the cap raises the cap to it.
    pub fn retry_delay(mut self, retry_delay: Duration) -> Result<Self, BufferError> {
        if retry_delay < Duration::from_millis(1) {
            return Err(BufferError::at_least(
                "retry_delay",
                Duration::from_millis(1),
                retry_delay,
            ));
        }
        self.retry_delay = retry_delay;
        self.retry_delay_max = self.retry_delay_max.max(retry_delay);
        Ok(self)
    }

    /// The cap of the doubling retry delay; at least [`Options::retry_delay`].
    pub fn retry_delay_max(mut self, retry_delay_max: Duration) -> Result<Self, BufferError> {
        if retry_delay_max < self.retry_delay {
            return Err(BufferError::option(
                "retry_delay_max",
                format!(
                    "must be at least retry_delay ({:?}), got {retry_delay_max:?}",
                    self.retry_delay
                ),
            ));
        }
        self.retry_delay_max = retry_delay_max;
        Ok(self)
    }

    /// How many times a failed flush is retried before its items go to
    /// [`Flush::on_error`](crate::Flush::on_error); 0 hands them over after the first failure.
    pub fn retry_max(mut self, retry_max: u32) -> Self {
        self.retry_max = retry_max;
        self
    }

    /// The number of partitions.
    pub fn get_partitions(&self) -> usize {
        self.partitions
    }

    /// The flush interval.
    pub fn get_interval(&self) -> Duration {
        self.interval
    }

    /// The jitter added to each interval.
    pub fn get_jitter(&self) -> Duration {
        self.jitter
    }

    /// The per-key size that triggers a flush.
    pub fn get_max_size(&self) -> usize {
        self.max_size
    }

    /// The memory bound on pending items.
    pub fn get_max_pending(&self) -> usize {
        self.max_pending
    }

    /// The policy at the memory bound.
    pub fn get_overflow(&self) -> Overflow {
        self.overflow
    }

    /// The delay before the first retry.
    pub fn get_retry_delay(&self) -> Duration {
        self.retry_delay
    }

    /// The cap of the retry delay.
    pub fn get_retry_delay_max(&self) -> Duration {
        self.retry_delay_max
    }

    /// The number of retries before `on_error`.
    pub fn get_retry_max(&self) -> u32 {
        self.retry_max
    }

    /// The delay before retry number `retry` (1-based): `retry_delay * 2^(retry-1)`, capped.
    /// `interval` plus a random part of `jitter`, drawn from `rng` (xorshift: no cryptographic
    /// need here; `rng` must not be 0).
    pub(crate) fn next_interval(&self, rng: &mut u64) -> Duration {
        let jitter = self.jitter.as_nanos() as u64;
        if jitter == 0 {
            return self.interval;
        }
        *rng ^= *rng << 13;
        *rng ^= *rng >> 7;
        *rng ^= *rng << 17;
        self.interval + Duration::from_nanos(*rng % (jitter + 1))
    }

    pub(crate) fn backoff(&self, retry: u32) -> Duration {
        let factor = 1u32
            .checked_shl(retry.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.retry_delay
            .checked_mul(factor)
            .map_or(self.retry_delay_max, |d| d.min(self.retry_delay_max))
    }
}
