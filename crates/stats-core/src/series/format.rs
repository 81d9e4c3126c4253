//! Formatters: chart-ready shapes of a series.
//!
//! Built in: `timeline` ([`Series::timeline`], [`TimelineFormatter`]) and `category`
//! ([`Series::category`], [`CategoryFormatter`]). Both resolve their path to concrete leaf paths
//! over the whole series first (see [`Path::concrete_paths`]): a `*` segment fans out to every
//! key seen at that level in any bucket, and a path that ends at a map expands to every leaf
//! below it. Every slice reports every concrete path, so slices line up.

use std::collections::{BTreeMap, BTreeSet};

use jiff::Timestamp;
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::number::Number;

use super::numeric::Accumulator;
use super::path::Path;
use super::{Series, slice_ranges};

/// Turns a series into a presentable shape.
///
/// Implement this to register your own formatter in a [`Registry`](super::Registry); a custom
/// formatter returns [`Formatted::Json`] unless it produces one of the built-in shapes.
pub trait Formatter: Send + Sync {
    /// Formats `path` of `series` cut into `slices` (see [slices](super#slices)).
    ///
    /// # Errors
    /// Implementations return [`Error::InvalidName`] for a bad path,
    /// [`Error::InvalidInput`] for bad `slices`, and whatever their
    /// arithmetic can raise.
    fn format(&self, series: &Series, path: &str, slices: usize) -> Result<Formatted>;
}

impl<T: Formatter + ?Sized> Formatter for Box<T> {
    fn format(&self, series: &Series, path: &str, slices: usize) -> Result<Formatted> {
        (**self).format(series, path, slices)
    }
}

impl<T: Formatter + ?Sized> Formatter for std::sync::Arc<T> {
    fn format(&self, series: &Series, path: &str, slices: usize) -> Result<Formatted> {
        (**self).format(series, path, slices)
    }
}

/// What a [`Formatter`] returns. Serializes as the inner value.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
#[non_exhaustive]
pub enum Formatted {
    /// From `timeline`.
    Timeline(Timeline),
    /// From `category`.
    Category(Category),
    /// From a user-defined formatter.
    Json(serde_json::Value),
}

/// One bucket of a timeline: its start and the number at the path, `None` when the bucket has
/// none.
///
/// Serializes as the pair `[at, value]`, `at` in RFC 3339 and a missing value
/// as `null`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The bucket start.
    pub at: Timestamp,
    /// The number at the concrete path in this bucket.
    pub value: Option<Number>,
}

impl Serialize for Point {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut pair = s.serialize_tuple(2)?;
        pair.serialize_element(&self.at)?;
        pair.serialize_element(&self.value)?;
        pair.end()
    }
}

/// The result of `timeline`: for each concrete path, the points of every bucket, per slice.
///
/// JSON form, ready for a chart: an object from concrete path to its points; with one slice the points
/// are one array, `{"count": [["2023-01-01T10:00:00Z", 10], ...]}`; with more slices, an array
/// of one array per slice. An empty series gives `{}`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Timeline {
    /// The number of slices asked for.
    pub slices: usize,
    /// Concrete path to the points of each slice, oldest first.
    pub lines: BTreeMap<String, Vec<Vec<Point>>>,
}

impl Timeline {
    /// The points of one concrete path across all slices, oldest first.
    pub fn points(&self, path: &str) -> Option<impl Iterator<Item = &Point> + '_> {
        self.lines.get(path).map(|slices| slices.iter().flatten())
    }

    /// The concrete paths, in order.
    pub fn paths(&self) -> impl Iterator<Item = &str> + '_ {
        self.lines.keys().map(String::as_str)
    }
}

impl Serialize for Timeline {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.lines.len()))?;
        for (path, slices) in &self.lines {
            if self.slices == 1 {
                map.serialize_entry(path, slices.first().map_or(&[][..], Vec::as_slice))?;
            } else {
                map.serialize_entry(path, slices)?;
            }
        }
        map.end()
    }
}

/// The result of `category`: per slice, the sum over its buckets of each concrete path.
///
/// Sums follow [`Series::sum`]: integers stay exact, a float makes the total a float (summed
/// with compensation, so `1e20, 1, -1e20, 3` totals `4.0`), and a path without any number in
/// the slice totals `None`.
///
/// JSON form, ready for a chart: with one slice an object `{"by.us": 5, "by.de": 3}`; with more slices
/// an array of such objects. An empty series gives `{}` (one slice) or `[]`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Category {
    /// The number of slices asked for.
    pub slices: usize,
    /// One map of concrete path to total per slice, oldest first.
    pub totals: Vec<BTreeMap<String, Option<Number>>>,
}

impl Category {
    /// The total of one concrete path in one slice (`None` when missing or without values).
    pub fn total(&self, slice: usize, path: &str) -> Option<Number> {
        self.totals.get(slice)?.get(path).copied().flatten()
    }
}

impl Serialize for Category {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        if self.slices == 1 {
            match self.totals.first() {
                Some(totals) => totals.serialize(s),
                None => s.serialize_map(Some(0))?.end(),
            }
        } else {
            let mut seq = s.serialize_seq(Some(self.totals.len()))?;
            for totals in &self.totals {
                seq.serialize_element(totals)?;
            }
            seq.end()
        }
    }
}

/// The `timeline` formatter; see [`Series::timeline`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TimelineFormatter;

impl Formatter for TimelineFormatter {
    fn format(&self, series: &Series, path: &str, slices: usize) -> Result<Formatted> {
        timeline(series, path, slices).map(Formatted::Timeline)
    }
}

/// The `category` formatter; see [`Series::category`].
#[derive(Debug, Clone, Copy, Default)]
pub struct CategoryFormatter;

impl Formatter for CategoryFormatter {
    fn format(&self, series: &Series, path: &str, slices: usize) -> Result<Formatted> {
        category(series, path, slices).map(Formatted::Category)
    }
}

pub(crate) fn timeline(series: &Series, path: &str, slices: usize) -> Result<Timeline> {
    timeline_with(series, path, slices, |_, _, value| value)
}

/// `timeline` with every point's value passed through `transform(concrete path, at, value)`.
pub(crate) fn timeline_with<F>(
    series: &Series,
    path: &str,
    slices: usize,
    mut transform: F,
) -> Result<Timeline>
where
    F: FnMut(&str, Timestamp, Option<Number>) -> Option<Number>,
{
    let parsed = Path::parse(path)?;
    series.check()?;
    let ranges = slice_ranges(series.len(), slices)?;
    let mut lines = BTreeMap::new();
    if !ranges.is_empty() {
        for concrete in parsed.concrete_paths(&series.values) {
            let line = ranges
                .iter()
                .map(|range| {
                    range
                        .clone()
                        .map(|i| {
                            let at = series.at[i];
                            let value =
                                transform(&concrete, at, series.values[i].number_at(&concrete))
                                    .map(|n| checked(n, &concrete))
                                    .transpose()?;
                            Ok(Point { at, value })
                        })
                        .collect::<Result<Vec<_>>>()
                })
                .collect::<Result<Vec<_>>>()?;
            lines.insert(concrete, line);
        }
    }
    Ok(Timeline { slices, lines })
}

pub(crate) fn category(series: &Series, path: &str, slices: usize) -> Result<Category> {
    let parsed = Path::parse(path)?;
    series.check()?;
    let ranges = slice_ranges(series.len(), slices)?;
    let concrete = if ranges.is_empty() {
        Vec::new()
    } else {
        parsed.concrete_paths(&series.values)
    };
    let totals = ranges
        .into_iter()
        .map(|range| {
            concrete
                .iter()
                .map(|leaf| {
                    let mut total = Accumulator::default();
                    for i in range.clone() {
                        if let Some(n) = series.values[i].number_at(leaf) {
                            total.add_at(n, &series.at[i], leaf)?;
                        }
                    }
                    Ok((leaf.clone(), total.total()))
                })
                .collect::<Result<BTreeMap<_, _>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Category { slices, totals })
}

/// `category` with every `(concrete path, value)` of every bucket passed through
/// `transform`, which returns the key to total the value under and the value.
pub(crate) fn category_with<F>(
    series: &Series,
    path: &str,
    slices: usize,
    mut transform: F,
) -> Result<Category>
where
    F: FnMut(&str, Option<Number>) -> (String, Option<Number>),
{
    let parsed = Path::parse(path)?;
    series.check()?;
    let ranges = slice_ranges(series.len(), slices)?;
    let concrete = if ranges.is_empty() {
        Vec::new()
    } else {
        parsed.concrete_paths(&series.values)
    };
    let mut sliced = Vec::with_capacity(ranges.len());
    let mut keys = BTreeSet::new();
    for range in ranges {
        let mut sums: BTreeMap<String, Accumulator> = BTreeMap::new();
        for i in range {
            for leaf in &concrete {
                let (key, value) = transform(leaf, series.values[i].number_at(leaf));
                let sum = sums.entry(key.clone()).or_default();
                if let Some(n) = value {
                    sum.add_at(checked(n, &key)?, &series.at[i], &key)?;
                }
            }
        }
        keys.extend(sums.keys().cloned());
        sliced.push(sums);
    }
    // Every slice reports every key any slice produced, so that slices line up.
    let totals = sliced
        .iter()
        .map(|sums| {
            keys.iter()
                .map(|key| (key.clone(), sums.get(key).and_then(Accumulator::total)))
                .collect()
        })
        .collect();
    Ok(Category { slices, totals })
}

/// A number a transform returned, checked to be finite (a `Number::Float` built directly may
/// not be).
fn checked(n: Number, path: &str) -> Result<Number> {
    n.validate().map_err(|e| match e {
        Error::InvalidValue { reason, .. } => Error::InvalidValue {
            path: Some(path.to_owned()),
            reason: format!("the transform returned {reason}"),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::tests::hourly;
    use crate::values;
    use serde_json::json;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    fn hour(h: i64) -> Timestamp {
        Timestamp::from_second(1_672_567_200 + 3600 * (h - 10)).unwrap()
    }

    fn four() -> Series {
        hourly(vec![
            values!({"count": 10, "stats": {"requests": 100, "responses": 95}}),
            values!({"count": 15, "stats": {"requests": 150, "responses": 140}}),
            values!({"count": 8, "stats": {"requests": 80, "responses": 78}}),
            values!({"count": 12, "stats": {"requests": 120, "responses": 120}}),
        ])
    }

    fn categories() -> Series {
        hourly(vec![
            values!({
                "categories": {"mobile": 100, "desktop": 200, "tablet": 50},
                "errors": {"timeout": 5, "network": 3}
            }),
            values!({
                "categories": {"mobile": 150, "desktop": 180, "tablet": 70},
                "errors": {"timeout": 2, "server": 1}
            }),
            values!({
                "categories": {"mobile": 80, "desktop": 220, "tablet": 30},
                "errors": {"network": 4, "server": 2}
            }),
            values!({
                "categories": {"mobile": 120, "desktop": 160, "tablet": 40},
                "errors": {"timeout": 1, "network": 1, "server": 1}
            }),
        ])
    }

    fn values_of(t: &Timeline, path: &str) -> Vec<Option<Number>> {
        t.points(path).unwrap().map(|p| p.value).collect()
    }

    #[test]
    fn timeline_of_one_path() {
        let t = four().timeline("count", 1).unwrap();
        assert_eq!(t.paths().collect::<Vec<_>>(), ["count"]);
        assert_eq!(
            t.lines["count"],
            vec![vec![
                Point {
                    at: hour(10),
                    value: Some(I(10))
                },
                Point {
                    at: hour(11),
                    value: Some(I(15))
                },
                Point {
                    at: hour(12),
                    value: Some(I(8))
                },
                Point {
                    at: hour(13),
                    value: Some(I(12))
                },
            ]]
        );
        assert_eq!(
            serde_json::to_value(&t).unwrap(),
            json!({"count": [
                ["2023-01-01T10:00:00Z", 10],
                ["2023-01-01T11:00:00Z", 15],
                ["2023-01-01T12:00:00Z", 8],
                ["2023-01-01T13:00:00Z", 12]
            ]})
        );
    }

    #[test]
    fn timeline_fans_out_wildcards_and_maps() {
        let t = four().timeline("stats.*", 1).unwrap();
        assert_eq!(
            t.paths().collect::<Vec<_>>(),
            ["stats.requests", "stats.responses"]
        );
        assert_eq!(
            values_of(&t, "stats.responses"),
            [Some(I(95)), Some(I(140)), Some(I(78)), Some(I(120))]
        );
        assert_eq!(four().timeline("stats", 1).unwrap(), t);
        // Deeper maps expand to their leaves. Trifle 2.6 expands a map path one level only and
        // then calls `to_f` on the inner map, which raises NoMethodError.
        let deep = hourly(vec![values!({"a": {"b": {"c": 1}, "d": 2}})]);
        let t = deep.timeline("a", 1).unwrap();
        assert_eq!(t.paths().collect::<Vec<_>>(), ["a.b.c", "a.d"]);
    }

    #[test]
    fn timeline_slices_drop_the_oldest_remainder() {
        let six = hourly((1..=6).map(|i| values!({"count": i * 10})).collect());
        let t = six.timeline("count", 4).unwrap();
        assert_eq!(t.lines["count"].len(), 4);
        assert_eq!(
            t.lines["count"][0],
            [Point {
                at: hour(12),
                value: Some(I(30))
            }]
        );
        assert_eq!(
            serde_json::to_value(four().timeline("count", 2).unwrap()).unwrap(),
            json!({"count": [
                [["2023-01-01T10:00:00Z", 10], ["2023-01-01T11:00:00Z", 15]],
                [["2023-01-01T12:00:00Z", 8], ["2023-01-01T13:00:00Z", 12]]
            ]})
        );
    }

    #[test]
    fn timeline_missing_values_are_none_not_zero() {
        let sparse = hourly(vec![
            values!({"count": 10}),
            values!({"other": 5}),
            values!({"count": 8.5}),
        ]);
        let t = sparse.timeline("count", 1).unwrap();
        assert_eq!(values_of(&t, "count"), [Some(I(10)), None, Some(F(8.5))]);
        assert_eq!(
            serde_json::to_value(&t).unwrap()["count"][1],
            json!(["2023-01-01T11:00:00Z", null])
        );
        let t = four().timeline("nonexistent", 1).unwrap();
        assert_eq!(values_of(&t, "nonexistent"), [None; 4]);
        assert!(four().timeline("nothing.*", 1).unwrap().lines.is_empty());
    }

    #[test]
    fn timeline_of_empty_series() {
        let t = Series::default().timeline("count", 1).unwrap();
        assert!(t.lines.is_empty());
        assert_eq!(serde_json::to_value(&t).unwrap(), json!({}));
    }

    #[test]
    fn category_of_explicit_and_implicit_paths() {
        let s = categories();
        let c = s.category("categories.mobile", 1).unwrap();
        assert_eq!(c.total(0, "categories.mobile"), Some(I(450)));
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!({"categories.mobile": 450})
        );
        assert_eq!(
            serde_json::to_value(s.category("categories", 1).unwrap()).unwrap(),
            json!({
                "categories.desktop": 760,
                "categories.mobile": 450,
                "categories.tablet": 190
            })
        );
        assert_eq!(
            serde_json::to_value(s.category("errors.*", 1).unwrap()).unwrap(),
            json!({"errors.network": 8, "errors.server": 4, "errors.timeout": 8})
        );
    }

    #[test]
    fn category_slices_line_up() {
        let c = categories().category("errors.*", 2).unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([
                {"errors.network": 3, "errors.server": 1, "errors.timeout": 7},
                {"errors.network": 5, "errors.server": 3, "errors.timeout": 1}
            ])
        );
        let sparse = hourly(vec![
            values!({"by": {"us": 1}}),
            values!({"by": {"de": 2.5}}),
        ]);
        let c = sparse.category("by.*", 2).unwrap();
        assert_eq!(c.total(0, "by.us"), Some(I(1)));
        assert_eq!(c.total(0, "by.de"), None);
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([{"by.de": null, "by.us": 1}, {"by.de": 2.5, "by.us": null}])
        );
    }

    #[test]
    fn category_missing_and_empty() {
        let c = categories().category("missing", 1).unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({"missing": null}));
        let empty = Series::default();
        assert_eq!(
            serde_json::to_value(empty.category("a.*", 1).unwrap()).unwrap(),
            json!({})
        );
        assert_eq!(
            serde_json::to_value(empty.category("a.*", 2).unwrap()).unwrap(),
            json!([])
        );
    }

    #[test]
    fn category_sums_are_exact_and_checked() {
        let s = hourly(vec![
            values!({"by": {"us": i64::MAX - 1, "de": 0.5}}),
            values!({"by": {"us": 1, "de": 1}}),
        ]);
        let c = s.category("by", 1).unwrap();
        assert_eq!(c.total(0, "by.us"), Some(I(i64::MAX)));
        assert_eq!(c.total(0, "by.de"), Some(F(1.5)));
        let s = hourly(vec![values!({"a": i64::MAX}), values!({"a": 1})]);
        assert!(matches!(s.category("a", 1), Err(Error::Overflow { .. })));
    }

    #[test]
    fn category_float_totals_are_compensated() {
        let s = hourly(vec![
            values!({"by": {"a": 1e20, "b": 1}}),
            values!({"by": {"a": 1.0, "b": 2}}),
            values!({"by": {"a": -1e20}}),
            values!({"by": {"a": 3.0}}),
        ]);
        let c = s.category("by", 1).unwrap();
        // Left to right in f64 this is 3.0.
        assert_eq!(c.total(0, "by.a"), Some(F(4.0)));
        assert_eq!(c.total(0, "by.b"), Some(I(3)));
        let c = s.category_with("by", 1, |_, v| ("all".into(), v)).unwrap();
        assert_eq!(c.total(0, "all"), Some(F(7.0)));
    }

    #[test]
    fn timeline_with_transforms_every_point() {
        let sparse = hourly(vec![
            values!({"count": 10, "by": {"us": 1}}),
            values!({"other": 5}),
            values!({"count": 8.5, "by": {"de": 2}}),
        ]);
        let mut seen = Vec::new();
        let t = sparse
            .timeline_with("count", 1, |path, at, value| {
                seen.push((path.to_owned(), at, value));
                value.map(|n| F(n.as_f64() * 2.0)).or(Some(I(0)))
            })
            .unwrap();
        assert_eq!(
            values_of(&t, "count"),
            [Some(F(20.0)), Some(I(0)), Some(F(17.0))]
        );
        assert_eq!(
            seen,
            [
                ("count".to_owned(), hour(10), Some(I(10))),
                ("count".to_owned(), hour(11), None),
                ("count".to_owned(), hour(12), Some(F(8.5))),
            ]
        );
        // The concrete path of a wildcard reaches the transform; None drops a point's value.
        let t = sparse
            .timeline_with(
                "by.*",
                3,
                |path, _, value| {
                    if path == "by.us" { None } else { value }
                },
            )
            .unwrap();
        assert_eq!(values_of(&t, "by.us"), [None, None, None]);
        assert_eq!(values_of(&t, "by.de"), [None, None, Some(I(2))]);
        // The identity transform is `timeline`.
        assert_eq!(
            four().timeline_with("stats", 2, |_, _, v| v).unwrap(),
            four().timeline("stats", 2).unwrap()
        );
    }

    #[test]
    fn transforms_returning_non_finite_floats_are_refused() {
        let err = four()
            .timeline_with("count", 1, |_, _, _| Some(F(f64::NAN)))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
        assert!(err.to_string().contains("count"), "{err}");
        let err = four()
            .category_with("count", 1, |_, _| ("x".into(), Some(F(f64::INFINITY))))
            .unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
        // -0.0 from a transform is normalised like every float.
        let c = four()
            .category_with("count", 1, |_, _| ("z".into(), Some(F(-0.0))))
            .unwrap();
        assert!(c.total(0, "z").unwrap().as_f64().is_sign_positive());
    }

    #[test]
    fn category_with_renames_merges_and_lines_up_slices() {
        let s = categories();
        // Merge two keys into one, rename the third, drop nothing.
        let c = s
            .category_with("categories", 2, |path, value| {
                let key = match path {
                    "categories.mobile" | "categories.tablet" => "handheld",
                    other => other.trim_start_matches("categories."),
                };
                (key.to_owned(), value)
            })
            .unwrap();
        assert_eq!(
            serde_json::to_value(&c).unwrap(),
            json!([
                {"desktop": 380, "handheld": 370},
                {"desktop": 380, "handheld": 270}
            ])
        );
        // The transform sees missing values as None, and a key produced in one slice only
        // is reported (as None) in the others.
        let mut missing = 0;
        let c = s
            .category_with("errors.*", 2, |path, value| {
                if value.is_none() {
                    missing += 1;
                }
                let key = if path == "errors.server" && value.is_some() {
                    "server!".to_owned()
                } else {
                    path.to_owned()
                };
                (key, value)
            })
            .unwrap();
        // Bucket 1 has no server, bucket 2 no network, bucket 3 no timeout.
        assert_eq!(missing, 3);
        assert_eq!(c.total(0, "server!"), Some(I(1)));
        assert_eq!(c.total(1, "server!"), Some(I(3)));
        assert_eq!(c.total(0, "errors.server"), None);
        assert_eq!(
            serde_json::to_value(&c).unwrap()[0],
            json!({"errors.network": 3, "errors.server": null, "errors.timeout": 7, "server!": 1})
        );
        // Overflow is still checked, under the returned key.
        let big = hourly(vec![values!({"a": i64::MAX}), values!({"a": 1})]);
        let err = big
            .category_with("a", 1, |_, v| ("k".into(), v))
            .unwrap_err();
        assert!(matches!(err, Error::Overflow { .. }), "{err}");
        assert!(err.to_string().contains('k'), "{err}");
        // Empty series and bad input as `category`.
        let c = Series::default()
            .category_with("a", 1, |p, v| (p.into(), v))
            .unwrap();
        assert_eq!(serde_json::to_value(&c).unwrap(), json!({}));
        assert!(s.category_with("a..b", 1, |p, v| (p.into(), v)).is_err());
        assert!(s.category_with("a", 0, |p, v| (p.into(), v)).is_err());
    }

    #[test]
    fn formatters_through_the_trait() {
        let s = four();
        let f = TimelineFormatter.format(&s, "count", 1).unwrap();
        assert!(matches!(f, Formatted::Timeline(_)));
        let f = CategoryFormatter.format(&s, "stats", 1).unwrap();
        assert_eq!(
            serde_json::to_value(&f).unwrap(),
            json!({"stats.requests": 450, "stats.responses": 433})
        );
        assert!(TimelineFormatter.format(&s, "count", 0).is_err());
        assert!(CategoryFormatter.format(&s, "", 1).is_err());
    }
}
