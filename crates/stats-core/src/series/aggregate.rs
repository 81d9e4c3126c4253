//! Aggregators: one number per slice of a series.
//!
//! Built in: [`Sum`], [`Mean`], [`Min`], [`Max`], registered in a default
//! [`Registry`](super::Registry) as `sum`, `mean` (also as `avg`), `min` and
//! `max`. Every aggregator works on all the numbers a [`Path`] matches in the buckets of a slice:
//! for a plain path to a number that is one number per bucket; a wildcard or a path to a map
//! contributes every matched leaf.

use crate::error::Result;
use crate::number::Number;

use super::path::Path;
use super::{Series, numeric, slice_ranges};

/// Reduces a series to one result per slice.
///
/// Implement this to register your own aggregator in a [`Registry`](super::Registry).
///
/// ```
/// use stats_core::series::{Aggregator, Series, slices_of};
/// use stats_core::{Number, Result};
///
/// /// Counts the buckets that have a number at the path.
/// struct Count;
///
/// impl Aggregator for Count {
///     fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
///         slices_of(series, path, slices, |numbers| Ok(Some(Number::Int(numbers.len() as i64))))
///     }
/// }
/// ```
pub trait Aggregator: Send + Sync {
    /// One result per slice (see [slices](super#slices)); `None` for a slice without values.
    ///
    /// # Errors
    /// Implementations return [`Error::InvalidName`](crate::Error::InvalidName) for a bad path,
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for bad `slices`, and whatever their
    /// arithmetic can raise.
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>>;
}

impl<T: Aggregator + ?Sized> Aggregator for Box<T> {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        (**self).aggregate(series, path, slices)
    }
}

impl<T: Aggregator + ?Sized> Aggregator for std::sync::Arc<T> {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        (**self).aggregate(series, path, slices)
    }
}

/// The building block of aggregators: parses `path`, cuts the series into slices and calls
/// `reduce` with the numbers `path` matches in each slice, oldest bucket first (and, within a
/// bucket, in path order).
///
/// # Errors
/// [`Error::InvalidName`](crate::Error::InvalidName) for a bad path,
/// [`Error::InvalidInput`](crate::Error::InvalidInput) for bad `slices` or a misaligned series,
/// and whatever `reduce` returns.
pub fn slices_of<T>(
    series: &Series,
    path: &str,
    slices: usize,
    mut reduce: impl FnMut(&[Number]) -> Result<T>,
) -> Result<Vec<T>> {
    let path = Path::parse(path)?;
    series.check()?;
    let mut numbers = Vec::new();
    slice_ranges(series.len(), slices)?
        .into_iter()
        .map(|range| {
            numbers.clear();
            for doc in &series.values[range] {
                numbers.extend(path.numbers(doc));
            }
            reduce(&numbers)
        })
        .collect()
}

/// `sum`: integers sum exactly with checked arithmetic; a float anywhere in a slice makes its
/// sum a float, and from that float on the sum is compensated (Kahan-Babuska, as Ruby's
/// `Array#sum`, which Trifle's `sum` uses), so that small terms next to large ones count:
/// `1e20, 1, -1e20, 3` sums to `4.0`.
///
/// Integers before the first float of a slice are summed exactly, then taken over as a float
/// (with their rounding error kept in the compensation); integers after it are added as
/// floats, compensated. An all-integer slice sums to an exact integer.
///
/// # Errors
/// Besides the path and slice errors, [`Error::Overflow`](crate::Error::Overflow) when an
/// integer sum leaves the `i64` range or a float sum becomes infinite. The error's key is the
/// start of the bucket whose value overflowed and its path is the aggregated path.
#[derive(Debug, Clone, Copy, Default)]
pub struct Sum;

impl Aggregator for Sum {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        let parsed = Path::parse(path)?;
        series.check()?;
        slice_ranges(series.len(), slices)?
            .into_iter()
            .map(|range| {
                let mut total = numeric::Accumulator::default();
                for (at, doc) in series.at[range.clone()].iter().zip(&series.values[range]) {
                    for n in parsed.numbers(doc) {
                        total.add_at(n, at, path)?;
                    }
                }
                Ok(total.total())
            })
            .collect()
    }
}

/// `mean`: the arithmetic mean, always a float (`[1, 2]` gives `1.5`). Integers are summed
/// exactly before the one division, so there is no overflow; with a float in the slice the sum
/// is compensated as in [`Sum`].
///
/// Trifle 2.6's `mean` differs on integers and on empty slices: it divides an integer sum by
/// the count with Ruby's integer division (`[1, 2]` gives `1`) and gives `0` for a slice
/// without values, where this gives `1.5` and `None`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Mean;

impl Aggregator for Mean {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        slices_of(series, path, slices, |numbers| Ok(numeric::mean(numbers)))
    }
}

/// `min`: the smallest number, compared exactly across integers and floats; it keeps its kind.
/// On a tie the older number wins.
#[derive(Debug, Clone, Copy, Default)]
pub struct Min;

impl Aggregator for Min {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        slices_of(series, path, slices, |numbers| {
            Ok(numbers.iter().copied().reduce(Number::min_value))
        })
    }
}

/// `max`: the largest number; see [`Min`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Max;

impl Aggregator for Max {
    fn aggregate(&self, series: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
        slices_of(series, path, slices, |numbers| {
            Ok(numbers.iter().copied().reduce(Number::max_value))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
    use crate::series::tests::hourly;
    use crate::values;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    /// Trifle's spec data: counts 10, 15, 8, 12 and nested stats.
    fn four() -> Series {
        hourly(vec![
            values!({"count": 10, "errors": 2, "stats": {"requests": 100, "responses": 95}}),
            values!({"count": 15, "errors": 3, "stats": {"requests": 150, "responses": 140}}),
            values!({"count": 8, "errors": 1, "stats": {"requests": 80, "responses": 78}}),
            values!({"count": 12, "errors": 0, "stats": {"requests": 120, "responses": 120}}),
        ])
    }

    fn ten() -> Series {
        hourly((1..=10).map(|i| values!({"count": i * 10})).collect())
    }

    fn sparse() -> Series {
        hourly(vec![
            values!({"count": 10}),
            values!({"other": 5}),
            values!({"count": 8}),
            values!({"count": 20}),
        ])
    }

    #[test]
    fn sum_whole_and_sliced() {
        let s = four();
        assert_eq!(s.sum("count", 1).unwrap(), [Some(I(45))]);
        assert_eq!(s.sum("stats.requests", 1).unwrap(), [Some(I(450))]);
        assert_eq!(s.sum("count", 2).unwrap(), [Some(I(25)), Some(I(20))]);
        assert_eq!(
            s.sum("count", 4).unwrap(),
            [Some(I(10)), Some(I(15)), Some(I(8)), Some(I(12))]
        );
        // 10 buckets in 3 slices: the oldest bucket (10) is dropped.
        assert_eq!(
            ten().sum("count", 3).unwrap(),
            [Some(I(90)), Some(I(180)), Some(I(270))]
        );
    }

    #[test]
    fn sum_skips_missing_values_and_gives_none_for_empty_slices() {
        let s = sparse();
        assert_eq!(s.sum("count", 1).unwrap(), [Some(I(38))]);
        assert_eq!(s.sum("count", 4).unwrap()[1], None);
        assert_eq!(s.sum("nonexistent", 1).unwrap(), [None]);
        assert_eq!(four().sum("stats.missing", 2).unwrap(), [None, None]);
    }

    #[test]
    fn sum_mixes_kinds_and_checks_overflow() {
        let s = hourly(vec![values!({"a": 1}), values!({"a": 0.5})]);
        assert_eq!(s.sum("a", 1).unwrap(), [Some(F(1.5))]);
        let s = hourly(vec![values!({"a": i64::MAX}), values!({"a": 1})]);
        let err = s.sum("a", 1).unwrap_err();
        assert!(matches!(err, Error::Overflow { .. }), "{err}");
        assert!(err.to_string().contains("2023-01-01T11:00:00Z"), "{err}");
        // Overflow in one slice only is still an error: no partial result.
        assert!(s.sum("a", 2).is_ok());
        let s = hourly(vec![values!({"a": 1e308}), values!({"a": 1e308})]);
        assert!(matches!(s.sum("a", 1), Err(Error::Overflow { .. })));
    }

    #[test]
    fn float_sums_keep_small_terms() {
        let s = hourly(vec![
            values!({"a": 1e20}),
            values!({"a": 1.0}),
            values!({"a": -1e20}),
            values!({"a": 3.0}),
        ]);
        // Trifle (Ruby's Array#sum) says 4.0; a naive f64 sum says 3.0.
        assert_eq!(s.sum("a", 1).unwrap(), [Some(F(4.0))]);
        assert_eq!(s.total("a").unwrap(), Some(F(4.0)));
        assert_eq!(s.mean("a", 1).unwrap(), [Some(F(1.0))]);
        assert_eq!(
            s.sum("a", 2).unwrap(),
            [Some(F(1e20)), Some(F(-1e20 + 3.0))]
        );
        // Integers mixed in: exact before the first float, compensated after it.
        let s = hourly(vec![
            values!({"a": 1, "b": {"x": 1e20, "y": 1}}),
            values!({"a": 1e20, "b": {"x": -1e20, "y": 3}}),
            values!({"a": -1e20}),
            values!({"a": 3}),
        ]);
        assert_eq!(s.sum("a", 1).unwrap(), [Some(F(4.0))]);
        assert_eq!(s.sum("b.*", 1).unwrap(), [Some(F(4.0))]);
        let tenths = hourly((0..10).map(|_| values!({"a": 0.1})).collect());
        assert_eq!(tenths.sum("a", 1).unwrap(), [Some(F(1.0))]);
        assert_eq!(tenths.mean("a", 1).unwrap(), [Some(F(0.1))]);
    }

    #[test]
    fn sum_over_wildcards_and_maps() {
        let s = hourly(vec![
            values!({"by": {"us": 5, "de": 1}}),
            values!({"by": {"us": 2, "fr": {"web": 1, "app": 2}}}),
        ]);
        assert_eq!(s.sum("by.*", 1).unwrap(), [Some(I(11))]);
        assert_eq!(s.sum("by", 1).unwrap(), [Some(I(11))]);
        assert_eq!(s.sum("by.us", 2).unwrap(), [Some(I(5)), Some(I(2))]);
        assert_eq!(s.sum("*.us", 1).unwrap(), [Some(I(7))]);
    }

    #[test]
    fn mean_is_a_float_and_ignores_missing_values() {
        let s = four();
        assert_eq!(s.mean("count", 1).unwrap(), [Some(F(11.25))]);
        assert_eq!(s.mean("errors", 1).unwrap(), [Some(F(1.5))]);
        // Trifle 2.6's mean aggregator divides the sum by the count with Ruby's `/`, which is
        // integer division for integers: it says 1 here.
        let s = hourly(vec![values!({"a": 1}), values!({"a": 2})]);
        assert_eq!(s.mean("a", 1).unwrap(), [Some(F(1.5))]);
        let s = sparse();
        assert_eq!(s.mean("count", 2).unwrap(), [Some(F(10.0)), Some(F(14.0))]);
        // Trifle 2.6 says 0 for a slice without values; here it is None, not a zero.
        assert_eq!(s.mean("nonexistent", 1).unwrap(), [None]);
        let nine = hourly((1..=9).map(|i| values!({"count": i * 10})).collect());
        assert_eq!(
            nine.mean("count", 4).unwrap(),
            [Some(F(25.0)), Some(F(45.0)), Some(F(65.0)), Some(F(85.0))]
        );
    }

    #[test]
    fn min_and_max() {
        let s = hourly(
            [100, 50, 200, 25, 150, 75, 300, 10, 250, 125]
                .into_iter()
                .map(|v| values!({"count": v}))
                .collect(),
        );
        assert_eq!(
            s.min("count", 5).unwrap(),
            [
                Some(I(50)),
                Some(I(25)),
                Some(I(75)),
                Some(I(10)),
                Some(I(125))
            ]
        );
        assert_eq!(
            s.min("count", 3).unwrap(),
            [Some(I(25)), Some(I(75)), Some(I(10))]
        );
        assert_eq!(
            s.max("count", 3).unwrap(),
            [Some(I(200)), Some(I(300)), Some(I(250))]
        );
        assert_eq!(sparse().min("count", 1).unwrap(), [Some(I(8))]);
        assert_eq!(sparse().max("count", 4).unwrap()[1], None);
        let neg = hourly(vec![
            values!({"b": 100}),
            values!({"b": -50}),
            values!({"b": 25}),
        ]);
        assert_eq!(neg.min("b", 1).unwrap(), [Some(I(-50))]);
    }

    #[test]
    fn min_and_max_compare_across_kinds_exactly() {
        let s = hourly(vec![
            values!({"a": 3}),
            values!({"a": 2.5}),
            values!({"a": 3.0}),
        ]);
        assert_eq!(s.min("a", 1).unwrap(), [Some(F(2.5))]);
        // 3 and 3.0 tie; the older one is kept.
        assert_eq!(s.max("a", 1).unwrap(), [Some(I(3))]);
        let big = hourly(vec![
            values!({"a": i64::MAX}),
            values!({"a": 9_223_372_036_854_775_807.0}),
        ]);
        // i64::MAX as f64 rounds up to 2^63, which is larger.
        assert_eq!(
            big.max("a", 1).unwrap(),
            [Some(F(9_223_372_036_854_775_808.0))]
        );
    }

    #[test]
    fn empty_series_and_bad_input() {
        let empty = Series::default();
        for slices in [1, 3] {
            assert!(empty.sum("count", slices).unwrap().is_empty());
            assert!(empty.mean("count", slices).unwrap().is_empty());
            assert!(empty.min("count", slices).unwrap().is_empty());
            assert!(empty.max("count", slices).unwrap().is_empty());
        }
        assert!(matches!(
            four().sum("count", 0),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            four().sum("count", 5),
            Err(Error::InvalidInput(_))
        ));
        assert!(matches!(
            four().mean("a..b", 1),
            Err(Error::InvalidName { .. })
        ));
    }

    #[test]
    fn slices_of_supports_custom_aggregators() {
        let counts = slices_of(&sparse(), "count", 2, |n| Ok(n.len())).unwrap();
        assert_eq!(counts, [1, 2]);
    }
}
