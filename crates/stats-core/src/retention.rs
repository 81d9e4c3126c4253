//! Retention: how long buckets of each granularity are kept.

use std::time::Duration;

use jiff::Timestamp;

use crate::error::{Error, Result};
use crate::granularity::Granularity;
use crate::store::{MetricStore, check_ttl_max};

/// How long the buckets of each granularity are kept, counted from the bucket's start: a
/// bucket starting at `s` expires at `s + keep`. Granularities without an entry are kept
/// forever.
///
/// Stores apply it in their own way, each documented with its config: Redis sets an expiry on
/// every bucket it writes; the in-process and SQL stores sweep expired buckets with
/// [`MetricStore::purge`] (on write or on a timer), and [`Retention::purge_expired`] runs the
/// sweep on any store.
///
/// ```
/// use std::time::Duration;
/// use stats_core::retention::Retention;
/// let retention = Retention::new()
///     .keep("1m".parse()?, Duration::from_secs(2 * 86_400))? // minute buckets: two days
///     .keep("1h".parse()?, Duration::from_secs(90 * 86_400))?; // hour buckets: 90 days
/// assert_eq!(retention.expires_at("1m".parse()?, 0), Some(172_800));
/// assert_eq!(retention.expires_at("1d".parse()?, 0), None); // kept forever
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Retention {
    keep: Vec<(Granularity, Duration)>,
}

impl Retention {
    /// Keeps everything forever.
    pub fn new() -> Self {
        Self::default()
    }

    /// Keeps the buckets of `granularity` for `keep` after their start (replacing an earlier
    /// setting for it).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a period under one second or over
    /// [`MAX_TTL`](crate::store::MAX_TTL).
    pub fn keep(mut self, granularity: Granularity, keep: Duration) -> Result<Self> {
        if keep < Duration::from_secs(1) {
            return Err(Error::InvalidInput(format!(
                "retention of {granularity} buckets must be at least 1 s, got {keep:?}"
            )));
        }
        check_ttl_max(&format!("retention of {granularity} buckets"), keep)?;
        self.keep.retain(|(g, _)| *g != granularity);
        self.keep.push((granularity, keep));
        Ok(self)
    }

    /// How long buckets of `granularity` are kept, if not forever.
    pub fn get(&self, granularity: Granularity) -> Option<Duration> {
        self.keep
            .iter()
            .find(|(g, _)| *g == granularity)
            .map(|(_, d)| *d)
    }

    /// Whether every granularity is kept forever.
    pub fn is_empty(&self) -> bool {
        self.keep.is_empty()
    }

    /// Every granularity with a retention period, in the order set.
    pub fn iter(&self) -> impl Iterator<Item = (Granularity, Duration)> + '_ {
        self.keep.iter().copied()
    }

    /// When the bucket of `granularity` starting at `start` (unix seconds) expires, if ever.
    pub fn expires_at(&self, granularity: Granularity, start: i64) -> Option<i64> {
        Some(start.saturating_add(seconds(self.get(granularity)?)))
    }

    /// For each granularity with a retention period, the start before which its buckets have
    /// expired at `now` (a bucket starting at `s` is expired once `s + keep <= now`).
    pub fn cutoffs(&self, now: Timestamp) -> Vec<(Granularity, i64)> {
        self.keep
            .iter()
            .map(|&(g, keep)| {
                (
                    g,
                    now.as_second()
                        .saturating_sub(seconds(keep))
                        .saturating_add(1),
                )
            })
            .collect()
    }

    /// Deletes, on `store`, every bucket that has expired at `now`; returns how many.
    ///
    /// # Errors
    /// The store's errors (buckets of granularities swept before the error stay deleted).
    pub async fn purge_expired(&self, store: &dyn MetricStore, now: Timestamp) -> Result<u64> {
        let mut removed = 0;
        for (granularity, before) in self.cutoffs(now) {
            removed += store.purge(granularity, before).await?;
        }
        Ok(removed)
    }
}

/// A keep period in whole seconds (bounded by `MAX_TTL`, so it always fits).
fn seconds(keep: Duration) -> i64 {
    i64::try_from(keep.as_secs()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_and_cutoffs() {
        let m: Granularity = "1m".parse().unwrap();
        assert!(Retention::new().keep(m, Duration::ZERO).is_err());
        assert!(Retention::new().keep(m, Duration::MAX).is_err());
        let r = Retention::new()
            .keep(m, Duration::from_secs(60))
            .unwrap()
            .keep(m, Duration::from_secs(120))
            .unwrap();
        assert_eq!(r.get(m), Some(Duration::from_secs(120)));
        assert_eq!(r.iter().count(), 1);
        let now = Timestamp::from_second(1_000).unwrap();
        // A bucket starting at 880 expires at 1000: purged at now = 1000.
        assert_eq!(r.cutoffs(now), vec![(m, 881)]);
        assert_eq!(r.expires_at(m, 880), Some(1_000));
    }
}
