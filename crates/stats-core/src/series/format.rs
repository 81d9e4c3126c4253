//! Formatters: chart-ready shapes of a series.
//!
//! Built in: `timeline` ([`Series::timeline`], [`TimelineFormatter`]) and `category`
//! ([`Series::category`], [`CategoryFormatter`]). Both resolve their path to concrete leaf paths
//! over the whole series first (see [`Path::concrete_paths`]): a `*` segment fans out to every
//! key seen at that level in any bucket, and a path that ends at a map expands to every leaf
//! below it. Every slice reports every concrete path, so slices line up.

use std::collections::BTreeMap;

use jiff::Timestamp;
use serde::ser::{SerializeMap, SerializeSeq, SerializeTuple};
use serde::{Serialize, Serializer};

use crate::error::Result;
use crate::number::Number;

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
    /// Implementations return [`Error::InvalidName`](crate::Error::InvalidName) for a bad path,
    /// [`Error::InvalidInput`](crate::Error::InvalidInput) for bad `slices`, and whatever their
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
/// Sums follow [`Series::sum`]: integers stay exact, a float makes the total a float, and a
/// path without any number in the slice totals `None`.
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
                        .map(|i| Point {
                            at: series.at[i],
                            value: series.values[i].number_at(&concrete),
                        })
                        .collect()
                })
                .collect();
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
                    let mut total: Option<Number> = None;
                    for i in range.clone() {
                        if let Some(n) = series.values[i].number_at(leaf) {
                            total = Some(match total {
                                None => n,
                                Some(t) => {
                                    t.checked_add_at(n, &series.at[i].to_string(), Some(leaf))?
                                }
                            });
                        }
                    }
                    Ok((leaf.clone(), total))
                })
                .collect::<Result<BTreeMap<_, _>>>()
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Category { slices, totals })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Error;
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
        // Deeper maps expand to their leaves (Trifle fails on them).
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
