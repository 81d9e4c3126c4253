//! Series analytics over the result of a tracker `values` call: aggregators, formatters,
//! transponders and designators, each open to user registration.
//!
//! - [`Path`]: value paths with `*` wildcards (`by.*`, `*.sum`); a path that ends at a map
//!   reaches every leaf below it.
//! - Aggregators ([`Series::sum`], [`Series::mean`], [`Series::min`], [`Series::max`]): one
//!   result per slice of the series.
//! - Formatters ([`Series::timeline`], [`Series::category`]): chart-ready shapes, serializable
//!   to JSON.
//! - Transponders ([`ExpressionTransponder`] and the named ones built on it): compute a value per
//!   bucket from other values of the bucket, with a real [`Expression`] parser.
//! - Designators ([`Designator`]): histogram bucket labels.
//! - [`Registry`]: every built-in under its name, plus whatever the application adds.
//!
//! # Slices
//!
//! Aggregators and formatters take `slices >= 1`: the series is cut into `slices` consecutive
//! slices of `len / slices` buckets each, and each slice gives one result. When the length is
//! not divisible, the *oldest* `len % slices` buckets are dropped, so the newest data always
//! counts. An empty series gives no slices (an empty result). `slices == 0`, or
//! fewer buckets than slices, is an [`Error::InvalidInput`].
//!
//! # Missing values
//!
//! A bucket without a number at a path contributes nothing: it is not a zero. A slice in which
//! a path matches no number gives `None` (an aggregator result, a category total, a timeline
//! point), which serializes as JSON `null`.

use std::ops::Range;

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::number::Number;
use crate::values::Values;

pub mod aggregate;
pub mod designate;
pub mod expression;
pub mod format;
pub(crate) mod numeric;
pub mod path;
pub mod registry;
pub mod transpond;

#[doc(inline)]
pub use aggregate::{Aggregator, slices_of};
#[doc(inline)]
pub use designate::{Custom, Designator, Geometric, Linear};
#[doc(inline)]
pub use expression::Expression;
#[doc(inline)]
pub use format::{Category, Formatted, Formatter, Point, Timeline};
#[doc(inline)]
pub use path::{Path, Segment};
#[doc(inline)]
pub use registry::Registry;
#[doc(inline)]
pub use transpond::{ExpressionTransponder, Transponder, TransponderFactory};

/// A time series: bucket starts and the document of each bucket, aligned (`at[i]` is the start
/// of the bucket whose document is `values[i]`). A blank bucket has an empty document.
///
/// This is what [`Tracker::values`](crate::tracker::Tracker::values) returns and what the
/// analytics in this module work on. Bucket starts are instants; [`Series::at_zoned`] shows
/// them on a zone's wall clock.
///
/// ```
/// use stats::{Number, Series, TimeZone, values};
///
/// // Four hourly buckets, as a tracker's `values` would return them.
/// let at = vec![
///     "2024-05-01T08:00:00Z".parse()?,
///     "2024-05-01T09:00:00Z".parse()?,
///     "2024-05-01T10:00:00Z".parse()?,
///     "2024-05-01T11:00:00Z".parse()?,
/// ];
/// let docs = vec![
///     values!({"count": 1, "ms": 120.0}),
///     values!({}), // nothing happened from 09:00 to 10:00
///     values!({"count": 3, "ms": 90.0, "by_region": {"eu": 2, "us": 1}}),
///     values!({"count": 2, "ms": 60.0, "by_region": {"eu": 2}}),
/// ];
/// let series = Series::new(at, docs)?;
///
/// assert_eq!(series.total("count")?, Some(Number::Int(6)));
/// // Cut into two slices of two hours: one sum per slice.
/// assert_eq!(series.sum("count", 2)?, vec![Some(Number::Int(1)), Some(Number::Int(5))]);
/// // A blank bucket is no number, not a zero: the mean is over the three buckets with data.
/// assert_eq!(series.mean("ms", 1)?, vec![Some(Number::Float(90.0))]);
/// // `*` matches every key of a map.
/// assert_eq!(series.total("by_region.*")?, Some(Number::Int(5)));
///
/// let berlin = TimeZone::get("Europe/Berlin")?;
/// assert_eq!(series.at_zoned(&berlin)[0].to_string(), "2024-05-01T10:00:00+02:00[Europe/Berlin]");
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Bucket starts, ascending.
    pub at: Vec<Timestamp>,
    /// One document per bucket start.
    pub values: Vec<Values>,
}

impl Series {
    /// A series from aligned vectors: `values[i]` is the document of the bucket starting at
    /// `at[i]`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the two vectors differ in length.
    pub fn new(at: Vec<Timestamp>, values: Vec<Values>) -> Result<Self> {
        let series = Series { at, values };
        series.check()?;
        Ok(series)
    }

    /// The bucket starts as wall-clock times in `zone` (for display: a tracker's zone is
    /// `tracker.config().calendar().time_zone()`).
    pub fn at_zoned(&self, zone: &jiff::tz::TimeZone) -> Vec<jiff::Zoned> {
        self.at.iter().map(|t| t.to_zoned(zone.clone())).collect()
    }

    /// The sum of the leaf at `path` over the whole series (`None` when no bucket has it);
    /// `path` may hold `*` wildcards (see [`Path`]). The same as `sum(path, 1)[0]`.
    ///
    /// ```
    /// use stats_core::{series::Series, values};
    /// let at = vec!["2024-05-01T00:00Z".parse()?, "2024-05-01T01:00Z".parse()?];
    /// let series = Series::new(at, vec![values!({"count": 2}), values!({"count": 3})])?;
    /// assert_eq!(series.total("count")?, Some(5.into()));
    /// assert_eq!(series.total("missing")?, None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad path; [`Error::Overflow`] when an integer sum leaves
    /// the `i64` range.
    pub fn total(&self, path: &str) -> Result<Option<Number>> {
        if self.is_empty() {
            Path::parse(path)?;
            return Ok(None);
        }
        Ok(self.sum(path, 1)?.pop().flatten())
    }

    /// Number of buckets.
    pub fn len(&self) -> usize {
        self.at.len()
    }

    /// Whether the series has no bucket.
    pub fn is_empty(&self) -> bool {
        self.at.is_empty()
    }

    /// The buckets as `(start, document)` pairs, oldest first.
    pub fn iter(&self) -> impl Iterator<Item = (Timestamp, &Values)> + '_ {
        self.at.iter().copied().zip(&self.values)
    }

    /// Sum of the numbers `path` matches, per slice (see the [module docs](self) for slices and
    /// missing values). Integers sum exactly; any float in a slice makes its sum a float,
    /// summed with compensation as Ruby's `Array#sum` (and so Trifle) does: `1e20, 1, -1e20, 3`
    /// sums to `4.0`, not `3.0`. See [`aggregate::Sum`].
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad path; [`Error::InvalidInput`] for bad `slices` or a
    /// series whose vectors differ in length; [`Error::Overflow`] when an integer sum leaves
    /// the `i64` range or a float sum becomes infinite.
    pub fn sum(&self, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        aggregate::Sum.aggregate(self, path, slices)
    }

    /// Arithmetic mean of the numbers `path` matches, per slice; always a float.
    ///
    /// # Errors
    /// As [`Series::sum`], without overflow.
    pub fn mean(&self, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        aggregate::Mean.aggregate(self, path, slices)
    }

    /// Smallest number `path` matches, per slice, compared exactly across integers and floats;
    /// the number keeps its kind.
    ///
    /// # Errors
    /// As [`Series::mean`].
    pub fn min(&self, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        aggregate::Min.aggregate(self, path, slices)
    }

    /// Largest number `path` matches, per slice; see [`Series::min`].
    ///
    /// # Errors
    /// As [`Series::mean`].
    pub fn max(&self, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        aggregate::Max.aggregate(self, path, slices)
    }

    /// One timeline per concrete path `path` matches: the `(at, value)` point of every bucket,
    /// cut into slices. See [`Timeline`].
    ///
    /// # Errors
    /// As [`Series::mean`].
    pub fn timeline(&self, path: &str, slices: usize) -> Result<Timeline> {
        format::timeline(self, path, slices)
    }

    /// Per slice, the sum over its buckets of every concrete path `path` matches
    /// (`by.*` gives `{"by.us": 5, "by.de": 3}`). See [`Category`].
    ///
    /// # Errors
    /// As [`Series::sum`].
    pub fn category(&self, path: &str, slices: usize) -> Result<Category> {
        format::category(self, path, slices)
    }

    /// [`Series::timeline`] with every point's value passed through
    /// `transform(concrete path, bucket start, value)`, like the block of Trifle's timeline
    /// formatter: the value is `None` where the bucket has no number, and the returned value
    /// (`None` for none) is the point's.
    ///
    /// ```
    /// use stats_core::{Number, series::Series, values};
    ///
    /// let at = vec!["2024-05-01T00:00Z".parse()?, "2024-05-01T01:00Z".parse()?];
    /// let series = Series::new(at, vec![values!({"ms": 1500}), values!({})])?;
    /// // Milliseconds to seconds, and a gap as zero (Trifle's `to_f` of nil).
    /// let seconds = series.timeline_with("ms", 1, |_path, _at, value| {
    ///     let ms = value.map_or(0.0, Number::as_f64);
    ///     Number::float(ms / 1000.0).ok()
    /// })?;
    /// let values: Vec<_> = seconds.points("ms").unwrap().map(|p| p.value).collect();
    /// assert_eq!(values, [Some(Number::Float(1.5)), Some(Number::Float(0.0))]);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Series::timeline`]; [`Error::InvalidValue`] when `transform` returns a float that
    /// is not finite.
    pub fn timeline_with<F>(&self, path: &str, slices: usize, transform: F) -> Result<Timeline>
    where
        F: FnMut(&str, Timestamp, Option<Number>) -> Option<Number>,
    {
        format::timeline_with(self, path, slices, transform)
    }

    /// [`Series::category`] with every `(concrete path, value)` of every bucket passed through
    /// `transform`, like the block of Trifle's category formatter: it returns the key to total
    /// the value under (the concrete path unchanged, or a new name; several paths may share
    /// one) and the value to add (`None` adds nothing). The value passed is `None` where the
    /// bucket has no number at the path. Totals are summed as in [`Series::sum`]; every slice
    /// reports every key that any slice produced (`None` where nothing was added).
    ///
    /// ```
    /// use stats_core::{Number, series::Series, values};
    ///
    /// let at = vec!["2024-05-01T00:00Z".parse()?, "2024-05-01T01:00Z".parse()?];
    /// let series = Series::new(at, vec![
    ///     values!({"by": {"us": 5, "de": 2}}),
    ///     values!({"by": {"us": 2, "fr": 1}}),
    /// ])?;
    /// // Countries into regions, each event counted ten times.
    /// let regions = series.category_with("by.*", 1, |path, value| {
    ///     let region = if path == "by.us" { "america" } else { "europe" };
    ///     (region.to_string(), value.map(|n| Number::Int(n.as_i64().unwrap_or(0) * 10)))
    /// })?;
    /// assert_eq!(regions.total(0, "america"), Some(Number::Int(70)));
    /// assert_eq!(regions.total(0, "europe"), Some(Number::Int(30)));
    /// assert_eq!(regions.total(0, "by.us"), None);
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    ///
    /// # Errors
    /// As [`Series::category`]; [`Error::InvalidValue`] when `transform` returns a float that
    /// is not finite.
    pub fn category_with<F>(&self, path: &str, slices: usize, transform: F) -> Result<Category>
    where
        F: FnMut(&str, Option<Number>) -> (String, Option<Number>),
    {
        format::category_with(self, path, slices, transform)
    }

    /// Applies a transponder to every bucket, returning `self` for chaining.
    ///
    /// # Errors
    /// Whatever the transponder returns; the built-in ones leave the series unchanged when
    /// they fail.
    pub fn transpond<T: Transponder + ?Sized>(&mut self, transponder: &T) -> Result<&mut Self> {
        transponder.transpond(self)?;
        Ok(self)
    }

    /// Checks that the two vectors are aligned (a deserialized series may not be).
    pub(crate) fn check(&self) -> Result<()> {
        if self.at.len() == self.values.len() {
            Ok(())
        } else {
            Err(Error::InvalidInput(format!(
                "a series needs one document per bucket start: {} starts, {} documents",
                self.at.len(),
                self.values.len()
            )))
        }
    }
}

/// The bucket ranges of each slice: `slices` consecutive ranges of `len / slices` buckets,
/// after dropping the oldest `len % slices`. An empty series has no slices.
pub(crate) fn slice_ranges(len: usize, slices: usize) -> Result<Vec<Range<usize>>> {
    if slices == 0 {
        return Err(Error::InvalidInput("slices must be at least 1".into()));
    }
    if len == 0 {
        return Ok(Vec::new());
    }
    if len < slices {
        return Err(Error::InvalidInput(format!(
            "cannot cut a series of {len} buckets into {slices} slices"
        )));
    }
    let size = len / slices;
    let skip = len % slices;
    Ok((0..slices)
        .map(|i| skip + i * size..skip + (i + 1) * size)
        .collect())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::values;

    /// A series of hourly buckets starting at 2023-01-01T10:00:00Z.
    pub(crate) fn hourly(values: Vec<Values>) -> Series {
        let at = (0..values.len())
            .map(|i| Timestamp::from_second(1_672_567_200 + 3600 * i as i64).unwrap())
            .collect();
        Series::new(at, values).unwrap()
    }

    #[test]
    fn slices_drop_the_oldest_remainder() {
        assert_eq!(slice_ranges(4, 1).unwrap(), vec![0..4]);
        assert_eq!(slice_ranges(4, 2).unwrap(), vec![0..2, 2..4]);
        assert_eq!(slice_ranges(10, 3).unwrap(), vec![1..4, 4..7, 7..10]);
        assert_eq!(slice_ranges(6, 4).unwrap(), vec![2..3, 3..4, 4..5, 5..6]);
        assert_eq!(slice_ranges(3, 3).unwrap(), vec![0..1, 1..2, 2..3]);
        assert!(slice_ranges(0, 1).unwrap().is_empty());
        assert!(slice_ranges(0, 5).unwrap().is_empty());
    }

    #[test]
    fn bad_slices_are_refused() {
        assert!(matches!(slice_ranges(4, 0), Err(Error::InvalidInput(_))));
        assert!(matches!(slice_ranges(0, 0), Err(Error::InvalidInput(_))));
        let err = slice_ranges(2, 3).unwrap_err().to_string();
        assert!(err.contains("2 buckets into 3 slices"), "{err}");
    }

    #[test]
    fn misaligned_series_is_refused() {
        let series = Series {
            at: vec![Timestamp::from_second(0).unwrap()],
            values: vec![],
        };
        assert!(matches!(series.sum("a", 1), Err(Error::InvalidInput(_))));
        assert!(matches!(
            series.timeline("a", 1),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn series_round_trips_through_json() {
        let series = hourly(vec![values!({"a": 1}), values!({})]);
        let text = serde_json::to_string(&series).unwrap();
        assert_eq!(serde_json::from_str::<Series>(&text).unwrap(), series);
        assert_eq!(series.iter().count(), 2);
    }
}
