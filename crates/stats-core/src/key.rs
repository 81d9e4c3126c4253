//! Keys: where a [`Values`](crate::Values) document lives in a metric store.

use std::fmt;
use std::sync::Arc;

use crate::error::{NameKind, Result};
use crate::granularity::Granularity;
use crate::name::{self, KEY_SEPARATOR};

/// The address of one stored document: a metric key plus either one time bucket
/// (granularity and bucket start) or the metric's status slot (see the tracker's `beam`).
///
/// The metric key is checked against the segment rule when the key is built, so a store never
/// sees a bad one. Cloning is cheap (the metric name is shared).
///
/// Keys order by metric, then status before buckets, then granularity, then start: sorting a
/// batch's keys gives every store the same lock order.
#[derive(Debug, Clone)]
pub struct Key {
    metric: Arc<str>,
    slot: Slot,
}

impl Key {
    /// Compares the metric names, skipping the byte comparison when both keys share one name
    /// (the keys of one event in every granularity do): the hot path of batching.
    fn cmp_metric(&self, other: &Self) -> std::cmp::Ordering {
        if Arc::ptr_eq(&self.metric, &other.metric) {
            std::cmp::Ordering::Equal
        } else {
            self.metric.cmp(&other.metric)
        }
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Self) -> bool {
        self.slot == other.slot
            && (Arc::ptr_eq(&self.metric, &other.metric) || self.metric == other.metric)
    }
}

impl Eq for Key {}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        // Consistent with `eq`: equal keys have equal names and slots.
        self.metric.hash(state);
        self.slot.hash(state);
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.cmp_metric(other)
            .then_with(|| self.slot.cmp(&other.slot))
    }
}

/// Which document of a metric a [`Key`] addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Slot {
    /// The latest status values of the metric, outside any time series.
    Status,
    /// One time bucket.
    Bucket {
        /// The bucket width.
        granularity: Granularity,
        /// The bucket start in unix seconds (the absolute instant, whatever the time zone).
        start: i64,
    },
}

/// The literal that stands for the status slot in joined keys.
pub const STATUS_SEGMENT: &str = "status";

impl Key {
    /// The key of one time bucket.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) for a bad metric key.
    pub fn bucket(metric: &str, granularity: Granularity, start: i64) -> Result<Self> {
        Ok(Key {
            metric: checked_metric(metric)?,
            slot: Slot::Bucket { granularity, start },
        })
    }

    /// The key of a metric's status slot.
    ///
    /// # Errors
    /// [`Error::InvalidName`](crate::Error::InvalidName) for a bad metric key.
    pub fn status(metric: &str) -> Result<Self> {
        Ok(Key {
            metric: checked_metric(metric)?,
            slot: Slot::Status,
        })
    }

    /// Another bucket of the same metric, sharing its name without checking it again.
    pub fn with_bucket(&self, granularity: Granularity, start: i64) -> Self {
        Key {
            metric: Arc::clone(&self.metric),
            slot: Slot::Bucket { granularity, start },
        }
    }

    /// The metric key.
    pub fn metric(&self) -> &str {
        &self.metric
    }

    /// Which document of the metric this is.
    pub fn slot(&self) -> Slot {
        self.slot
    }

    /// The granularity, for a bucket key.
    pub fn granularity(&self) -> Option<Granularity> {
        match self.slot {
            Slot::Bucket { granularity, .. } => Some(granularity),
            Slot::Status => None,
        }
    }

    /// The bucket start in unix seconds, for a bucket key.
    pub fn start(&self) -> Option<i64> {
        match self.slot {
            Slot::Bucket { start, .. } => Some(start),
            Slot::Status => None,
        }
    }

    /// The joined form stores use as one string: `prefix::metric::granularity::start`, or
    /// `prefix::metric::status`; without the prefix part when `prefix` is empty.
    ///
    /// The segment rule keeps `::` out of metric keys (and a prefix is checked with the same
    /// rule by the stores that take one), so the joined form can always be split back.
    pub fn joined(&self, prefix: &str) -> String {
        let mut out = String::with_capacity(prefix.len() + self.metric.len() + 24);
        if !prefix.is_empty() {
            out.push_str(prefix);
            out.push_str(KEY_SEPARATOR);
        }
        out.push_str(&self.metric);
        out.push_str(KEY_SEPARATOR);
        match self.slot {
            Slot::Status => out.push_str(STATUS_SEGMENT),
            Slot::Bucket { granularity, start } => {
                use std::fmt::Write;
                let _ = write!(out, "{granularity}{KEY_SEPARATOR}{start}");
            }
        }
        out
    }
}

fn checked_metric(metric: &str) -> Result<Arc<str>> {
    name::check_segment(NameKind::Metric, metric)?;
    Ok(Arc::from(metric))
}

/// For messages: the metric, the granularity and the bucket start as a UTC time
/// (`orders::1h::2024-11-03T05:00:00Z`), or `orders::status`. A start outside the years a
/// time can show is printed as unix seconds. Stores use [`Key::joined`], never this.
impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.slot {
            Slot::Status => write!(f, "{}{KEY_SEPARATOR}{STATUS_SEGMENT}", self.metric),
            Slot::Bucket { granularity, start } => {
                write!(
                    f,
                    "{}{KEY_SEPARATOR}{granularity}{KEY_SEPARATOR}",
                    self.metric
                )?;
                match jiff::Timestamp::from_second(start) {
                    Ok(t) => write!(f, "{t}"),
                    Err(_) => write!(f, "{start}"),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_forms() {
        let g = "1h".parse().unwrap();
        let k = Key::bucket("orders", g, 1_700_000_000).unwrap();
        assert_eq!(k.joined("app"), "app::orders::1h::1700000000");
        assert_eq!(k.to_string(), "orders::1h::2023-11-14T22:13:20Z");
        assert_eq!(
            k.with_bucket(g, i64::MIN).to_string(),
            format!("orders::1h::{}", i64::MIN)
        );
        assert_eq!(
            Key::status("orders").unwrap().joined("p"),
            "p::orders::status"
        );
        assert_eq!(k.with_bucket(g, -60).start(), Some(-60));
    }

    #[test]
    fn bad_metric_refused() {
        let g = "1h".parse().unwrap();
        assert!(Key::bucket("a::b", g, 0).is_err());
        assert!(Key::status("").is_err());
    }

    #[test]
    fn order_is_metric_then_slot() {
        let h = "1h".parse().unwrap();
        let mut keys = [
            Key::bucket("b", h, 0).unwrap(),
            Key::bucket("a", h, 60).unwrap(),
            Key::status("a").unwrap(),
            Key::bucket("a", h, 0).unwrap(),
        ];
        keys.sort();
        let shown: Vec<String> = keys.iter().map(|k| k.joined("")).collect();
        assert_eq!(shown, ["a::status", "a::1h::0", "a::1h::60", "b::1h::0"]);
    }
}
