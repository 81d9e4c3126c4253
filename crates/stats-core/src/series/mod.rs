//! Series analytics over the result of a tracker `values` call: aggregators, formatters,
//! transponders and designators, each open to user registration.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::values::Values;

/// A time series: bucket starts and the document of each bucket, aligned (`at[i]` is the start
/// of the bucket whose document is `values[i]`). A blank bucket has an empty document.
///
/// This is what `Tracker::values` returns and what the analytics in this module work on.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Bucket starts, ascending.
    pub at: Vec<Timestamp>,
    /// One document per bucket start.
    pub values: Vec<Values>,
}

impl Series {
    /// A series from aligned vectors.
    ///
    /// # Panics
    /// If the two vectors differ in length (a programming error, never input).
    pub fn new(at: Vec<Timestamp>, values: Vec<Values>) -> Self {
        assert_eq!(at.len(), values.len(), "a series needs one document per bucket start");
        Series { at, values }
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether the series has no bucket.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }
}
