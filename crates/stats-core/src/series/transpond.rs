//! Transponders: compute a new value in every bucket from other values of the same bucket.
//!
//! The one engine is [`ExpressionTransponder`]: bound paths (`a`..`z`), an [`Expression`] and
//! a response path. The simpler named transponders are expressions too, built by the
//! associated functions of [`ExpressionTransponder`] and registered under these names
//! in a default [`Registry`](super::Registry):
//!
//! | name | parameters (JSON) | expression | default response |
//! |---|---|---|---|
//! | `expression` | `paths`, `expression`, `response` | as given | (required) |
//! | `add` | `left`, `right`, `response` | `a + b` | `add` |
//! | `subtract` | `left`, `right`, `response` | `a - b` | `subtract` |
//! | `multiply` | `left`, `right`, `response` | `a * b` | `multiply` |
//! | `divide` | `left`, `right`, `response` | `a / b` | `divide` |
//! | `sum` | `paths`, `response` | `sum(a, b, ..)` | `sum` |
//! | `mean` | `paths`, `response` | `mean(a, b, ..)` | `mean` |
//! | `min` | `paths`, `response` | `min(a, b, ..)` | `min` |
//! | `max` | `paths`, `response` | `max(a, b, ..)` | `max` |
//! | `ratio` | `sample`, `total`, `response` | `a * 100 / b` (percent) | `ratio` |
//! | `average` | `sum`, `count`, `response` | `a / b` | `average` |
//! | `standard_deviation` | `sum`, `count`, `square`, `response` | `sqrt((b * c - a * a) / (b * (b - 1)))` | `sd` |
//!
//! # Null results
//!
//! Documents hold only numbers, so a *null* result (a missing input, division by zero, `sqrt`
//! of a negative number, a non-finite float; see [`Expression`]) is an **absent response
//! leaf**: nothing is written, and a number already at the response path is removed, so that a
//! stale value never passes for a result.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::error::{Error, Result};
use crate::number::Number;
use crate::values::{Value, Values};

use super::Series;
use super::expression::{Expression, letter};
use super::path::Path;

/// Rewrites the documents of a series.
///
/// Implement this (and a [`TransponderFactory`] that builds it from JSON parameters) to
/// register your own transponder in a [`Registry`](super::Registry).
pub trait Transponder: Send + Sync {
    /// Applies the transformation to every bucket of `series`.
    ///
    /// # Errors
    /// Implementation-defined; the built-in transponders return
    /// [`Error::InvalidInput`] for a misaligned series and [`Error::PathConflict`] when the
    /// response path cannot be written in some bucket, and then leave the series unchanged.
    fn transpond(&self, series: &mut Series) -> Result<()>;
}

impl<T: Transponder + ?Sized> Transponder for Box<T> {
    fn transpond(&self, series: &mut Series) -> Result<()> {
        (**self).transpond(series)
    }
}

impl<T: Transponder + ?Sized> Transponder for std::sync::Arc<T> {
    fn transpond(&self, series: &mut Series) -> Result<()> {
        (**self).transpond(series)
    }
}

/// Builds a configured [`Transponder`] from JSON parameters (as a CLI or an HTTP request gives
/// them). Any `Fn(&serde_json::Value) -> Result<Box<dyn Transponder>>` is one.
pub trait TransponderFactory: Send + Sync {
    /// Builds the transponder; everything that can be checked without data (paths, the
    /// expression) is checked here.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for malformed parameters, and whatever building the transponder
    /// returns (for example [`Error::InvalidExpression`]).
    fn build(&self, params: &serde_json::Value) -> Result<Box<dyn Transponder>>;
}

impl<F> TransponderFactory for F
where
    F: Fn(&serde_json::Value) -> Result<Box<dyn Transponder>> + Send + Sync,
{
    fn build(&self, params: &serde_json::Value) -> Result<Box<dyn Transponder>> {
        self(params)
    }
}

/// The `expression` transponder: for every bucket, evaluates an [`Expression`] whose variables
/// `a`, `b`, ... are the numbers at the bound paths, and writes the result at the response path
/// (creating intermediate maps). See the [module docs](self) for null results.
///
/// ```
/// use stats_core::series::{ExpressionTransponder, Series};
/// use stats_core::{values, Number};
///
/// let mut series = Series::new(
///     vec![jiff::Timestamp::from_second(0).unwrap()],
///     vec![values!({"duration": {"sum": 3, "count": 2}})],
///).unwrap();
/// let average = ExpressionTransponder::new(
///     ["duration.sum", "duration.count"], "a / b", "duration.average",
/// ).unwrap();
/// series.transpond(&average).unwrap();
/// assert_eq!(series.values[0].number_at("duration.average"), Some(Number::Float(1.5)));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct ExpressionTransponder {
    paths: Vec<String>,
    expression: Expression,
    response: String,
    response_segments: Vec<String>,
}

impl ExpressionTransponder {
    /// Binds `paths` to `a`, `b`, ... in order, parses `expression` and checks `response`.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad path or response path; [`Error::InvalidInput`] for a
    /// path or response with a `*` wildcard (each must name one leaf) or more than 26
    /// paths; [`Error::InvalidExpression`] when the expression does not parse.
    pub fn new<P: AsRef<str>>(
        paths: impl IntoIterator<Item = P>,
        expression: &str,
        response: &str,
    ) -> Result<Self> {
        let paths = paths
            .into_iter()
            .map(|p| concrete(p.as_ref(), "path"))
            .collect::<Result<Vec<_>>>()?;
        let expression = Expression::parse(expression, paths.len())?;
        let response_path = concrete(response, "response path")?;
        let response_segments = response_path.split('.').map(str::to_owned).collect();
        Ok(ExpressionTransponder {
            paths,
            expression,
            response: response_path,
            response_segments,
        })
    }

    /// `add`: `left + right`.
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn add(left: &str, right: &str, response: &str) -> Result<Self> {
        Self::new([left, right], "a + b", response)
    }

    /// `subtract`: `left - right`.
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn subtract(left: &str, right: &str, response: &str) -> Result<Self> {
        Self::new([left, right], "a - b", response)
    }

    /// `multiply`: `left * right`.
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn multiply(left: &str, right: &str, response: &str) -> Result<Self> {
        Self::new([left, right], "a * b", response)
    }

    /// `divide`: `left / right` (exact integer when divisible, else a float; null for zero).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn divide(left: &str, right: &str, response: &str) -> Result<Self> {
        Self::new([left, right], "a / b", response)
    }

    /// `sum`: the sum of the values at `paths` (null if any is missing).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`]; also [`Error::InvalidInput`] for no paths.
    pub fn sum<P: AsRef<str>>(paths: impl IntoIterator<Item = P>, response: &str) -> Result<Self> {
        Self::function("sum", paths, response)
    }

    /// `mean`: the mean of the values at `paths`, a float (null if any is missing).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::sum`].
    pub fn mean<P: AsRef<str>>(paths: impl IntoIterator<Item = P>, response: &str) -> Result<Self> {
        Self::function("mean", paths, response)
    }

    /// `min`: the smallest value at `paths` (null if any is missing).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::sum`].
    pub fn min<P: AsRef<str>>(paths: impl IntoIterator<Item = P>, response: &str) -> Result<Self> {
        Self::function("min", paths, response)
    }

    /// `max`: the largest value at `paths` (null if any is missing).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::sum`].
    pub fn max<P: AsRef<str>>(paths: impl IntoIterator<Item = P>, response: &str) -> Result<Self> {
        Self::function("max", paths, response)
    }

    /// `ratio`: `sample` as a percentage of `total`, `sample * 100 / total` (an exact integer
    /// when it is one; null when `total` is zero).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn ratio(sample: &str, total: &str, response: &str) -> Result<Self> {
        Self::new([sample, total], "a * 100 / b", response)
    }

    /// `average`: `sum / count` (null when `count` is zero).
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn average(sum: &str, count: &str, response: &str) -> Result<Self> {
        Self::new([sum, count], "a / b", response)
    }

    /// `standard_deviation`: the sample standard deviation from the running `sum`, `count` and
    /// sum of squares `square` of a measurement,
    /// `sqrt((count * square - sum * sum) / (count * (count - 1)))`; null when `count` is 0
    /// or 1, or when rounding makes the variance negative.
    ///
    /// # Errors
    /// As [`ExpressionTransponder::new`].
    pub fn standard_deviation(
        sum: &str,
        count: &str,
        square: &str,
        response: &str,
    ) -> Result<Self> {
        Self::new(
            [sum, count, square],
            "sqrt((b * c - a * a) / (b * (b - 1)))",
            response,
        )
    }

    fn function<P: AsRef<str>>(
        name: &str,
        paths: impl IntoIterator<Item = P>,
        response: &str,
    ) -> Result<Self> {
        let paths: Vec<P> = paths.into_iter().collect();
        if paths.is_empty() {
            return Err(Error::InvalidInput(format!(
                "the {name} transponder needs at least one path"
            )));
        }
        let args: Vec<String> = (0..paths.len()).map(|i| letter(i).to_string()).collect();
        Self::new(paths, &format!("{name}({})", args.join(", ")), response)
    }

    /// The bound paths; the first is `a`.
    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// The parsed expression.
    pub fn expression(&self) -> &Expression {
        &self.expression
    }

    /// Where the result is written.
    pub fn response(&self) -> &str {
        &self.response
    }

    /// The result for one document, `None` for null.
    pub fn evaluate(&self, doc: &Values) -> Option<Number> {
        let inputs: Vec<Option<Number>> = self.paths.iter().map(|p| doc.number_at(p)).collect();
        self.expression.evaluate(&inputs)
    }
}

impl Transponder for ExpressionTransponder {
    /// Writes the result of every bucket at the response path, or removes the number there for
    /// a null result.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a misaligned series; [`Error::PathConflict`] (keyed by the
    /// bucket start) when, in a bucket with a result, the response path is a map or goes
    /// below a number. On error the series is unchanged.
    fn transpond(&self, series: &mut Series) -> Result<()> {
        series.check()?;
        let results: Vec<Option<Number>> = series.values.iter().map(|d| self.evaluate(d)).collect();
        for ((at, doc), result) in series.iter().zip(&results) {
            if result.is_some() {
                writable(doc, &self.response_segments).map_err(|detail| Error::PathConflict {
                    key: at.to_string(),
                    path: self.response.clone(),
                    detail,
                })?;
            }
        }
        for (doc, result) in series.values.iter_mut().zip(results) {
            match result {
                Some(n) => set_leaf(doc, &self.response_segments, n)?,
                None => remove_leaf(doc, &self.response_segments)?,
            }
        }
        Ok(())
    }
}

/// Parses a path that must not have wildcards.
fn concrete(path: &str, what: &str) -> Result<String> {
    let parsed = Path::parse(path)?;
    if parsed.has_wildcard() {
        return Err(Error::InvalidInput(format!(
            "transponders do not support wildcards: {what} {path:?}"
        )));
    }
    Ok(parsed.as_str().to_owned())
}

/// Whether a number can be written at `segments` without replacing a map or going below a
/// number.
fn writable(doc: &Values, segments: &[String]) -> Result<(), &'static str> {
    let mut current = doc;
    for (i, segment) in segments.iter().enumerate() {
        let last = i + 1 == segments.len();
        match (current.get(segment), last) {
            (None, _) | (Some(Value::Number(_)), true) => return Ok(()),
            (Some(Value::Map(_)), true) => return Err("is a map in this bucket"),
            (Some(Value::Number(_)), false) => {
                return Err("goes below a number in this bucket");
            }
            (Some(Value::Map(m)), false) => current = m,
        }
    }
    Ok(())
}

fn set_leaf(doc: &mut Values, segments: &[String], n: Number) -> Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    if rest.is_empty() {
        doc.insert(first.clone(), n)?;
        return Ok(());
    }
    let mut child = match doc.remove(first) {
        Some(Value::Map(m)) => m,
        None => Values::new(),
        Some(number @ Value::Number(_)) => {
            // `writable` rules this out; restore and refuse rather than lose data.
            doc.insert(first.clone(), number)?;
            return Err(Error::PathConflict {
                key: String::new(),
                path: segments.join("."),
                detail: "goes below a number in this bucket",
            });
        }
    };
    let written = set_leaf(&mut child, rest, n);
    doc.insert(first.clone(), child)?;
    written
}

fn remove_leaf(doc: &mut Values, segments: &[String]) -> Result<()> {
    let Some((first, rest)) = segments.split_first() else {
        return Ok(());
    };
    match (doc.get(first), rest.is_empty()) {
        (Some(Value::Number(_)), true) => {
            doc.remove(first);
        }
        (Some(Value::Map(_)), false) => {
            if let Some(Value::Map(mut child)) = doc.remove(first) {
                let removed = remove_leaf(&mut child, rest);
                doc.insert(first.clone(), child)?;
                removed?;
            }
        }
        _ => {}
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Factories of the built-in transponders, under the names of Trifle 2.x's transponders. The
// parameters are ours, and Trifle's differ between 2.x releases (in one, `sum`, `mean`, `min`
// and `max` take one `values` path to an array and `standard_deviation` takes `left`, `right`
// and `square`; in an earlier one, a `path` with `sum`, `count` and `square` keys under it).

fn params<T: DeserializeOwned>(name: &str, params: &serde_json::Value) -> Result<T> {
    T::deserialize(params)
        .map_err(|e| Error::InvalidInput(format!("parameters of the {name} transponder: {e}")))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ExpressionParams {
    paths: Vec<String>,
    expression: String,
    response: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BinaryParams {
    left: String,
    right: String,
    response: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    paths: Vec<String>,
    response: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RatioParams {
    sample: String,
    total: String,
    response: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AverageParams {
    sum: String,
    count: String,
    response: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct DeviationParams {
    sum: String,
    count: String,
    square: String,
    response: Option<String>,
}

type Built = Result<Box<dyn Transponder>>;

fn boxed(t: Result<ExpressionTransponder>) -> Built {
    t.map(|t| Box::new(t) as Box<dyn Transponder>)
}

fn binary(
    name: &'static str,
    make: fn(&str, &str, &str) -> Result<ExpressionTransponder>,
) -> impl Fn(&serde_json::Value) -> Built + Send + Sync {
    move |p| {
        let p: BinaryParams = params(name, p)?;
        boxed(make(
            &p.left,
            &p.right,
            p.response.as_deref().unwrap_or(name),
        ))
    }
}

fn list(name: &'static str) -> impl Fn(&serde_json::Value) -> Built + Send + Sync {
    move |p| {
        let p: ListParams = params(name, p)?;
        boxed(ExpressionTransponder::function(
            name,
            &p.paths,
            p.response.as_deref().unwrap_or(name),
        ))
    }
}

/// The built-in factories under their registry names.
pub(crate) fn builtins() -> Vec<(&'static str, Box<dyn TransponderFactory>)> {
    fn expression(p: &serde_json::Value) -> Built {
        let p: ExpressionParams = params("expression", p)?;
        boxed(ExpressionTransponder::new(
            &p.paths,
            &p.expression,
            &p.response,
        ))
    }
    fn ratio(p: &serde_json::Value) -> Built {
        let p: RatioParams = params("ratio", p)?;
        let response = p.response.as_deref().unwrap_or("ratio");
        boxed(ExpressionTransponder::ratio(&p.sample, &p.total, response))
    }
    fn average(p: &serde_json::Value) -> Built {
        let p: AverageParams = params("average", p)?;
        let response = p.response.as_deref().unwrap_or("average");
        boxed(ExpressionTransponder::average(&p.sum, &p.count, response))
    }
    fn standard_deviation(p: &serde_json::Value) -> Built {
        let p: DeviationParams = params("standard_deviation", p)?;
        let response = p.response.as_deref().unwrap_or("sd");
        boxed(ExpressionTransponder::standard_deviation(
            &p.sum, &p.count, &p.square, response,
        ))
    }
    vec![
        ("expression", Box::new(expression)),
        ("add", Box::new(binary("add", ExpressionTransponder::add))),
        (
            "subtract",
            Box::new(binary("subtract", ExpressionTransponder::subtract)),
        ),
        (
            "multiply",
            Box::new(binary("multiply", ExpressionTransponder::multiply)),
        ),
        (
            "divide",
            Box::new(binary("divide", ExpressionTransponder::divide)),
        ),
        ("sum", Box::new(list("sum"))),
        ("mean", Box::new(list("mean"))),
        ("min", Box::new(list("min"))),
        ("max", Box::new(list("max"))),
        ("ratio", Box::new(ratio)),
        ("average", Box::new(average)),
        ("standard_deviation", Box::new(standard_deviation)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::tests::hourly;
    use crate::values;
    use serde_json::json;

    const I: fn(i64) -> Number = Number::Int;
    const F: fn(f64) -> Number = Number::Float;

    fn metrics() -> Series {
        hourly(vec![
            values!({"metrics": {"sum": 30, "count": 3}}),
            values!({"metrics": {"sum": 20, "count": 8}}),
            values!({"metrics": {"sum": 5}}),
            values!({"metrics": {"sum": 5, "count": 0}}),
        ])
    }

    #[test]
    fn expression_writes_every_bucket() {
        let mut s = metrics();
        let t = ExpressionTransponder::new(
            ["metrics.sum", "metrics.count"],
            "a / b",
            "metrics.average",
        )
        .unwrap();
        s.transpond(&t).unwrap();
        let avg: Vec<_> = s
            .values
            .iter()
            .map(|v| v.number_at("metrics.average"))
            .collect();
        assert_eq!(avg, [Some(I(10)), Some(F(2.5)), None, None]);
        // Null means an absent leaf; other values are untouched.
        assert_eq!(s.values[2], values!({"metrics": {"sum": 5}}));
        assert_eq!(s.values[3], values!({"metrics": {"sum": 5, "count": 0}}));
        assert_eq!(s.values[0].number_at("metrics.sum"), Some(I(30)));
    }

    #[test]
    fn expression_creates_intermediate_maps() {
        let mut s = metrics();
        let t = ExpressionTransponder::new(
            ["metrics.sum", "metrics.count"],
            "a / b",
            "derived.duration.average",
        )
        .unwrap();
        s.transpond(&t).unwrap();
        assert_eq!(
            s.values[0].number_at("derived.duration.average"),
            Some(I(10))
        );
        // No map is created for a null result.
        assert!(s.values[2].get("derived").is_none());
    }

    #[test]
    fn null_removes_a_stale_response() {
        let mut s = hourly(vec![
            values!({"a": 1, "b": 0, "r": 99}),
            values!({"a": 1, "b": 2, "r": 99}),
        ]);
        let t = ExpressionTransponder::new(["a", "b"], "a / b", "r").unwrap();
        s.transpond(&t).unwrap();
        assert_eq!(s.values[0], values!({"a": 1, "b": 0}));
        assert_eq!(s.values[1], values!({"a": 1, "b": 2, "r": 0.5}));
    }

    #[test]
    fn response_conflicts_leave_the_series_unchanged() {
        let original = hourly(vec![
            values!({"a": 1, "m": {"x": 1}}),
            values!({"a": 2, "m": 5}),
        ]);
        let mut s = original.clone();
        let t = ExpressionTransponder::new(["a"], "a * 2", "m.y").unwrap();
        let err = s.transpond(&t).unwrap_err();
        assert!(
            matches!(&err, Error::PathConflict { key, .. } if key == "2023-01-01T11:00:00Z"),
            "{err}"
        );
        assert_eq!(s, original);
        let t = ExpressionTransponder::new(["a"], "a * 2", "m").unwrap();
        assert!(matches!(
            s.clone().transpond(&t),
            Err(Error::PathConflict { .. })
        ));
        // A bucket with a null result does not conflict.
        let t = ExpressionTransponder::new(["nothing"], "a * 2", "m.y").unwrap();
        s.transpond(&t).unwrap();
        assert_eq!(s, original);
    }

    #[test]
    fn expression_overwrites_a_number_at_the_response() {
        let mut s = hourly(vec![values!({"a": 3, "r": 1})]);
        s.transpond(&ExpressionTransponder::new(["a"], "a * a", "r").unwrap())
            .unwrap();
        assert_eq!(s.values[0].number_at("r"), Some(I(9)));
    }

    #[test]
    fn build_errors_come_before_any_bucket() {
        let cases = [
            ExpressionTransponder::new(["a"], "a +", "r").unwrap_err(),
            ExpressionTransponder::new(["a"], "b", "r").unwrap_err(),
            ExpressionTransponder::new(["a.*"], "a", "r").unwrap_err(),
            ExpressionTransponder::new(["a"], "a", "r.*").unwrap_err(),
            ExpressionTransponder::new(["a..b"], "a", "r").unwrap_err(),
            ExpressionTransponder::new(["a"], "a", "").unwrap_err(),
            ExpressionTransponder::new(vec!["x"; 27], "a", "r").unwrap_err(),
            ExpressionTransponder::sum(Vec::<String>::new(), "r").unwrap_err(),
        ];
        assert!(matches!(cases[0], Error::InvalidExpression { .. }));
        assert!(matches!(cases[1], Error::InvalidExpression { .. }));
        assert!(matches!(cases[2], Error::InvalidInput(_)));
        assert!(matches!(cases[3], Error::InvalidInput(_)));
        assert!(matches!(cases[4], Error::InvalidName { .. }));
        assert!(matches!(cases[5], Error::InvalidName { .. }));
        assert!(matches!(cases[6], Error::InvalidInput(_)));
        assert!(matches!(cases[7], Error::InvalidInput(_)));
    }

    #[test]
    fn constant_expression_without_paths() {
        let mut s = hourly(vec![values!({}), values!({"x": 1})]);
        let t = ExpressionTransponder::new(Vec::<&str>::new(), "2 * 21", "answer").unwrap();
        s.transpond(&t).unwrap();
        assert_eq!(s.values[0], values!({"answer": 42}));
    }

    #[test]
    fn arithmetic_transponders() {
        let mut s = hourly(vec![values!({"l": 7, "r": 2}), values!({"l": 1})]);
        for t in [
            ExpressionTransponder::add("l", "r", "add").unwrap(),
            ExpressionTransponder::subtract("l", "r", "subtract").unwrap(),
            ExpressionTransponder::multiply("l", "r", "multiply").unwrap(),
            ExpressionTransponder::divide("l", "r", "divide").unwrap(),
        ] {
            s.transpond(&t).unwrap();
        }
        assert_eq!(
            s.values[0],
            values!({"l": 7, "r": 2, "add": 9, "subtract": 5, "multiply": 14, "divide": 3.5})
        );
        assert_eq!(s.values[1], values!({"l": 1}));
    }

    #[test]
    fn list_transponders() {
        let mut s = hourly(vec![
            values!({"a": 1, "b": 2, "c": 4.5}),
            values!({"a": 1, "c": 3}),
        ]);
        let paths = ["a", "b", "c"];
        for t in [
            ExpressionTransponder::sum(paths, "sum").unwrap(),
            ExpressionTransponder::mean(paths, "mean").unwrap(),
            ExpressionTransponder::min(paths, "min").unwrap(),
            ExpressionTransponder::max(paths, "max").unwrap(),
        ] {
            s.transpond(&t).unwrap();
        }
        assert_eq!(
            s.values[0],
            values!({"a": 1, "b": 2, "c": 4.5, "sum": 7.5, "mean": 2.5, "min": 1, "max": 4.5})
        );
        // Like Trifle, a missing input skips the bucket.
        assert_eq!(s.values[1], values!({"a": 1, "c": 3}));
    }

    #[test]
    fn ratio_transponder() {
        let mut s = hourly(vec![
            values!({"m": {"sample": 25, "total": 100}}),
            values!({"m": {"sample": 1, "total": 3}}),
            values!({"m": {"sample": 50, "total": 0}}),
            values!({"m": {"sample": -10, "total": 100}}),
            values!({"m": {"sample": 30}}),
        ]);
        s.transpond(&ExpressionTransponder::ratio("m.sample", "m.total", "m.ratio").unwrap())
            .unwrap();
        let r: Vec<_> = s.values.iter().map(|v| v.number_at("m.ratio")).collect();
        assert_eq!(r[0], Some(I(25)));
        assert!((r[1].unwrap().as_f64() - 33.333).abs() < 0.001);
        assert_eq!(r[2], None, "Trifle writes Infinity here");
        assert_eq!(r[3], Some(I(-10)));
        assert_eq!(r[4], None);
    }

    #[test]
    fn average_transponder() {
        let mut s = hourly(vec![
            values!({"sum": 7, "count": 2}),
            values!({"sum": 0, "count": 0}),
        ]);
        s.transpond(&ExpressionTransponder::average("sum", "count", "avg").unwrap())
            .unwrap();
        assert_eq!(s.values[0].number_at("avg"), Some(F(3.5)), "not 3");
        assert_eq!(s.values[1].number_at("avg"), None, "Trifle writes 0 here");
    }

    #[test]
    fn standard_deviation_transponder() {
        let mut s = hourly(vec![
            values!({"m": {"sum": 30, "count": 3, "square": 310}}),
            values!({"m": {"sum": 0, "count": 3, "square": 0}}),
            values!({"m": {"sum": 30, "count": 1, "square": 900}}),
            values!({"m": {"sum": 30, "count": 0, "square": 310}}),
            values!({"m": {"sum": 21, "count": 3, "square": 155}}),
            values!({"m": {"sum": 45, "count": 5}}),
        ]);
        let t = ExpressionTransponder::standard_deviation("m.sum", "m.count", "m.square", "m.sd")
            .unwrap();
        s.transpond(&t).unwrap();
        let sd: Vec<_> = s.values.iter().map(|v| v.number_at("m.sd")).collect();
        assert_eq!(sd[0], Some(F(5.0_f64.sqrt())));
        assert_eq!(sd[1], Some(F(0.0)));
        assert_eq!(sd[2], None, "count 1: no sample deviation");
        assert_eq!(sd[3], None, "count 0");
        assert_eq!(sd[4], Some(F(2.0)));
        assert_eq!(sd[5], None, "missing square");
    }

    #[test]
    fn factories_read_trifle_parameters() {
        let factories = builtins();
        let build = |name: &str, p: serde_json::Value| {
            let (_, f) = factories.iter().find(|(n, _)| *n == name).unwrap();
            f.build(&p)
        };
        let mut s = hourly(vec![
            values!({"m": {"sample": 1, "total": 4, "sum": 6, "count": 4}}),
        ]);
        let steps = [
            ("ratio", json!({"sample": "m.sample", "total": "m.total"})),
            (
                "average",
                json!({"sum": "m.sum", "count": "m.count", "response": "m.avg"}),
            ),
            ("divide", json!({"left": "m.sum", "right": "m.count"})),
            ("max", json!({"paths": ["m.sum", "m.count"]})),
            (
                "expression",
                json!({"paths": ["m.sum"], "expression": "a - 1", "response": "e"}),
            ),
        ];
        for (name, p) in steps {
            s.transpond(&*build(name, p).unwrap()).unwrap();
        }
        assert_eq!(s.values[0].number_at("ratio"), Some(I(25)));
        assert_eq!(s.values[0].number_at("m.avg"), Some(F(1.5)));
        assert_eq!(s.values[0].number_at("divide"), Some(F(1.5)));
        assert_eq!(s.values[0].number_at("max"), Some(I(6)));
        assert_eq!(s.values[0].number_at("e"), Some(I(5)));
        let err = build("ratio", json!({"sample": "a"})).err().unwrap();
        assert!(err.to_string().contains("total"), "{err}");
        let err = build("add", json!({"left": "a", "right": "b", "extra": 1}))
            .err()
            .unwrap();
        assert!(matches!(err, Error::InvalidInput(_)), "{err}");
        let err = build(
            "expression",
            json!({"paths": ["a"], "expression": "(", "response": "r"}),
        )
        .err()
        .unwrap();
        assert!(matches!(err, Error::InvalidExpression { .. }), "{err}");
        assert_eq!(factories.len(), 12);
    }
}
