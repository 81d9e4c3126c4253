//! Values: nested maps of names to numbers, and their flattened form.

use std::collections::BTreeMap;
use std::collections::btree_map;
use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};
use crate::name::{self, PATH_SEPARATOR};
use crate::number::Number;

/// One entry of a [`Values`] map: a number or a nested map.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// A leaf.
    Number(Number),
    /// A nested map.
    Map(Values),
}

impl<T: Into<Number>> From<T> for Value {
    fn from(n: T) -> Self {
        Value::Number(n.into())
    }
}

/// A float from runtime data: checked when it goes into a map ([`Values::insert`] refuses NaN
/// and infinities with [`Error::InvalidValue`]).
impl From<f64> for Value {
    fn from(f: f64) -> Self {
        Value::Number(Number::Float(f))
    }
}

/// See `From<f64>`.
impl From<f32> for Value {
    fn from(f: f32) -> Self {
        Value::Number(Number::Float(f.into()))
    }
}

impl From<Values> for Value {
    fn from(v: Values) -> Self {
        Value::Map(v)
    }
}

/// A nested map of names to numbers (or to further maps), ordered by name: one event, or the
/// contents of one bucket.
///
/// ```
/// use stats::{Number, Values, try_values, values};
///
/// // A literal written in the code: `values!` (it panics on a bad name or number, which a
/// // literal can be checked for by reading it).
/// let event = values!({"count": 1, "duration": {"sum": 0.25, "max": 0.25}});
/// assert_eq!(event.number_at("duration.sum"), Some(Number::Float(0.25)));
///
/// // Names or numbers known only at run time: `try_values!` or `insert`, which return errors.
/// let region = "eu"; // from a request
/// let event = try_values!({"count": 1, "by_region": {region: 1}})?;
/// let mut same = Values::new();
/// same.insert("count", 1)?.insert("by_region", Values::new().with(region, 1)?)?;
/// assert_eq!(event, same);
///
/// // The flattened form stores use: one (path, number) per leaf.
/// let flat: Vec<(String, Number)> = event.flatten();
/// assert_eq!(flat[0], ("by_region.eu".to_string(), Number::Int(1)));
///
/// // JSON in and out.
/// assert_eq!(event.to_string(), r#"{"by_region":{"eu":1},"count":1}"#);
/// assert_eq!(Values::from_json(r#"{"by_region":{"eu":1},"count":1}"#)?, event);
/// # Ok::<(), stats::Error>(())
/// ```
///
/// Every name in a `Values` satisfies [`name::check_field`]: the only ways to build one
/// ([`Values::insert`], [`Values::from_flat`], deserialization, `TryFrom<serde_json::Value>`)
/// check it. Empty nested maps carry no numbers and are dropped by [`Values::flatten`], so a
/// store never keeps them.
///
/// JSON form: an object whose leaves are numbers, e.g. `{"count": 3, "duration": {"sum": 1.5}}`.
/// Integers that fit `i64` are integers; numbers with a fraction or exponent are floats.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Values {
    map: BTreeMap<String, Value>,
}

impl Values {
    /// An empty map.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether the map has no entries.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Number of entries at the top level.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Sets `name` to `value`, replacing what was there.
    ///
    /// # Errors
    /// [`Error::InvalidName`] if `name` breaks the field name rule; [`Error::InvalidValue`] for a
    /// non-finite float.
    pub fn insert(
        &mut self,
        name: impl Into<String>,
        value: impl Into<Value>,
    ) -> Result<&mut Self> {
        let name = name.into();
        name::check_field(&name)?;
        let value = match value.into() {
            Value::Number(n) => Value::Number(n.validate().map_err(|e| with_path(e, &name))?),
            map => map,
        };
        self.map.insert(name, value);
        Ok(self)
    }

    /// Builder form of [`Values::insert`].
    ///
    /// # Errors
    /// As [`Values::insert`].
    pub fn with(mut self, name: impl Into<String>, value: impl Into<Value>) -> Result<Self> {
        self.insert(name, value)?;
        Ok(self)
    }

    /// The entry at one name.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.map.get(name)
    }

    /// The number at a dotted path such as `a.b`, if there is one.
    pub fn number_at(&self, path: &str) -> Option<Number> {
        let mut current = self;
        let mut parts = path.split(PATH_SEPARATOR).peekable();
        while let Some(part) = parts.next() {
            match (current.map.get(part)?, parts.peek()) {
                (Value::Number(n), None) => return Some(*n),
                (Value::Map(m), Some(_)) => current = m,
                _ => return None,
            }
        }
        None
    }

    /// Removes one top-level entry.
    pub fn remove(&mut self, name: &str) -> Option<Value> {
        self.map.remove(name)
    }

    /// The top-level entries in name order.
    pub fn iter(&self) -> btree_map::Iter<'_, String, Value> {
        self.map.iter()
    }

    /// The flattened form: every leaf as `(path, number)`, in path order.
    ///
    /// `{a: 1, b: {c: 2}}` gives `[("a", 1), ("b.c", 2)]`. Empty nested maps give nothing.
    pub fn flatten(&self) -> Vec<(String, Number)> {
        let mut out = Vec::new();
        self.flatten_into(&mut String::new(), &mut out);
        out
    }

    fn flatten_into(&self, prefix: &mut String, out: &mut Vec<(String, Number)>) {
        for (name, value) in &self.map {
            let len = prefix.len();
            if !prefix.is_empty() {
                prefix.push(PATH_SEPARATOR);
            }
            prefix.push_str(name);
            match value {
                Value::Number(n) => out.push((prefix.clone(), *n)),
                Value::Map(m) => m.flatten_into(prefix, out),
            }
            prefix.truncate(len);
        }
    }

    /// The flattened form, checking every path against [`name::check_path`] (length and depth).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a path that is too long or too deep.
    pub fn flatten_checked(&self) -> Result<Vec<(String, Number)>> {
        let flat = self.flatten();
        for (path, _) in &flat {
            name::check_path(path)?;
        }
        Ok(flat)
    }

    /// Builds a map from flattened `(path, number)` pairs: the inverse of [`Values::flatten`].
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad path; [`Error::InvalidValue`] for a non-finite float or a
    /// path given twice; [`Error::PathConflict`] when one path is a number and another goes
    /// below it (`a` and `a.b`).
    pub fn from_flat<P: AsRef<str>>(pairs: impl IntoIterator<Item = (P, Number)>) -> Result<Self> {
        let mut root = Values::new();
        for (path, number) in pairs {
            let path = path.as_ref();
            name::check_path(path)?;
            let number = number.validate().map_err(|e| with_path(e, path))?;
            root.set_path(path, number)?;
        }
        Ok(root)
    }

    /// Sets the number at a dotted path, creating maps on the way.
    fn set_path(&mut self, path: &str, number: Number) -> Result<()> {
        let conflict = |detail| Error::PathConflict {
            key: String::new(),
            path: path.to_owned(),
            detail,
        };
        let mut current = self;
        let mut parts = path.split(PATH_SEPARATOR).peekable();
        while let Some(part) = parts.next() {
            if parts.peek().is_none() {
                return match current.map.entry(part.to_owned()) {
                    btree_map::Entry::Vacant(v) => {
                        v.insert(Value::Number(number));
                        Ok(())
                    }
                    btree_map::Entry::Occupied(o) => match o.get() {
                        Value::Number(_) => Err(Error::InvalidValue {
                            path: Some(path.to_owned()),
                            reason: "path given twice".into(),
                        }),
                        Value::Map(_) => Err(conflict("is a map in another pair")),
                    },
                };
            }
            let entry = current
                .map
                .entry(part.to_owned())
                .or_insert_with(|| Value::Map(Values::new()));
            current = match entry {
                Value::Map(m) => m,
                Value::Number(_) => return Err(conflict("goes below a number in another pair")),
            };
        }
        Ok(())
    }
}

fn with_path(err: Error, path: &str) -> Error {
    match err {
        Error::InvalidValue { reason, .. } => Error::InvalidValue {
            path: Some(path.to_owned()),
            reason,
        },
        other => other,
    }
}

impl<'a> IntoIterator for &'a Values {
    type Item = (&'a String, &'a Value);
    type IntoIter = btree_map::Iter<'a, String, Value>;
    fn into_iter(self) -> Self::IntoIter {
        self.map.iter()
    }
}

impl TryFrom<serde_json::Value> for Values {
    type Error = Error;

    /// Converts a JSON object whose leaves are numbers.
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for anything but objects and numbers (strings, booleans, null,
    /// arrays), a number outside `i64`/finite `f64`, or maps nested deeper than
    /// [`MAX_DEPTH`](crate::name::MAX_DEPTH); [`Error::InvalidName`] for a bad name.
    fn try_from(json: serde_json::Value) -> Result<Self> {
        fn convert(json: serde_json::Value, path: &mut String, depth: usize) -> Result<Values> {
            if depth > name::MAX_DEPTH {
                // Refused before going deeper: a value built in code has no nesting limit.
                return Err(Error::InvalidValue {
                    path: Some(path.clone()),
                    reason: format!("is nested too deeply: at most {} levels", name::MAX_DEPTH),
                });
            }
            let serde_json::Value::Object(object) = json else {
                return Err(Error::InvalidValue {
                    path: (!path.is_empty()).then(|| path.clone()),
                    reason: format!(
                        "expected a map of names to numbers, found {}",
                        kind_of(&json)
                    ),
                });
            };
            let mut values = Values::new();
            for (name, value) in object {
                name::check_field(&name)?;
                let len = path.len();
                if !path.is_empty() {
                    path.push(PATH_SEPARATOR);
                }
                path.push_str(&name);
                let value = match value {
                    serde_json::Value::Number(n) => {
                        Value::Number(Number::try_from(&n).map_err(|e| with_path(e, path))?)
                    }
                    serde_json::Value::Object(_) => Value::Map(convert(value, path, depth + 1)?),
                    other => {
                        return Err(Error::InvalidValue {
                            path: Some(path.clone()),
                            reason: format!(
                                "expected a number or a map, found {}",
                                kind_of(&other)
                            ),
                        });
                    }
                };
                path.truncate(len);
                values.map.insert(name, value);
            }
            Ok(values)
        }
        convert(json, &mut String::new(), 1)
    }
}

fn kind_of(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "a map",
    }
}

impl From<&Values> for serde_json::Value {
    fn from(values: &Values) -> Self {
        serde_json::Value::Object(
            values
                .map
                .iter()
                .map(|(k, v)| {
                    let v = match v {
                        Value::Number(n) => (*n).into(),
                        Value::Map(m) => m.into(),
                    };
                    (k.clone(), v)
                })
                .collect(),
        )
    }
}

impl Serialize for Values {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        let mut map = s.serialize_map(Some(self.map.len()))?;
        for (k, v) in &self.map {
            match v {
                Value::Number(n) => map.serialize_entry(k, n)?,
                Value::Map(m) => map.serialize_entry(k, m)?,
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for Values {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let json = serde_json::Value::deserialize(d)?;
        Values::try_from(json).map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for Values {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", serde_json::Value::from(self))
    }
}

impl Values {
    /// Parses the JSON form, exactly: an integer literal (no fraction, no exponent) outside the
    /// `i64` range is refused, never turned into a float. This is the entry point for JSON text
    /// from outside (files, requests); `str::parse` does the same.
    ///
    /// Through serde (`serde_json::from_str::<Values>`) the same rules hold except for that one:
    /// serde_json hands an integer literal beyond `u64` or below `i64::MIN` over as a float, and
    /// nothing after it can tell `-9223372036854775809` from `-9.223372036854775809e18`.
    ///
    /// ```
    /// use stats_core::{Number, Values};
    /// let v = Values::from_json(r#"{"count": 3, "latency": {"sum": 0.25}}"#)?;
    /// assert_eq!(v.number_at("latency.sum"), Some(Number::Float(0.25)));
    /// assert!(Values::from_json(r#"{"count": -9223372036854775809}"#).is_err());
    /// assert!(Values::from_json(r#"{"count": 1e19}"#).is_ok()); // a float, written as one
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidValue`] for text that is not JSON, an integer outside `i64` (naming it),
    /// anything but maps and numbers; [`Error::InvalidName`] for a bad name.
    pub fn from_json(text: &str) -> Result<Self> {
        check_integer_literals(text)?;
        let json: serde_json::Value =
            serde_json::from_str(text).map_err(|e| Error::InvalidValue {
                path: None,
                reason: format!("not JSON: {e}"),
            })?;
        Values::try_from(json)
    }
}

/// Refuses JSON integer literals (no `.`, `e` or `E`) that do not fit `i64`. Strings are skipped;
/// anything else is left to the JSON parser.
fn check_integer_literals(text: &str) -> Result<()> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            b'-' | b'0'..=b'9' => {
                let start = i;
                while i < bytes.len()
                    && matches!(bytes[i], b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9')
                {
                    i += 1;
                }
                let literal = &text[start..i];
                if !literal.contains(['.', 'e', 'E']) && literal.parse::<i64>().is_err() {
                    let digits = literal.trim_start_matches('-');
                    if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) {
                        return Err(Error::InvalidValue {
                            path: None,
                            reason: format!(
                                "integer {literal} is outside the i64 range \
                                 ({}..={})",
                                i64::MIN,
                                i64::MAX
                            ),
                        });
                    }
                }
            }
            _ => i += 1,
        }
    }
    Ok(())
}

impl std::str::FromStr for Values {
    type Err = Error;

    /// Parses the JSON form (see [`Values::from_json`]).
    fn from_str(s: &str) -> Result<Self> {
        Values::from_json(s)
    }
}

/// Builds a [`Values`] from a JSON literal, panicking on invalid input.
///
/// Meant for literals in tests and examples, whose names and numbers are known to be valid.
/// For anything built from runtime data (names from requests, measured floats that may be
/// NaN), use [`try_values!`](crate::try_values!), which returns the error instead.
///
/// ```
/// let v = stats_core::values!({"count": 1, "duration": {"sum": 2.5}});
/// assert_eq!(v.number_at("duration.sum"), Some(stats_core::Number::Float(2.5)));
/// ```
#[macro_export]
macro_rules! values {
    ($($json:tt)+) => {
        $crate::Values::try_from($crate::__private::serde_json::json!($($json)+))
            .expect("values! literal must be a valid Values")
    };
}

/// Builds a [`Values`] from a JSON-like literal with runtime names and numbers, returning
/// `Result<Values, Error>`: the fallible form of [`values!`](crate::values!).
///
/// Names may be any expression of a string type; numbers any integer or float. A bad name is
/// [`Error::InvalidName`]; NaN or an infinity (which JSON has no form for) is
/// [`Error::InvalidValue`]; an integer beyond `i64` is [`Error::InvalidValue`].
///
/// ```
/// use stats_core::{Error, try_values};
/// let route = "/checkout";
/// let millis = 12.5_f64;
/// let v = try_values!({ route: {"count": 1, "ms": millis} })?;
/// assert_eq!(v.number_at("/checkout.ms"), Some(stats_core::Number::Float(12.5)));
///
/// let bad = "a.b"; // '.' is the path separator
/// assert!(matches!(try_values!({ bad: 1 }), Err(Error::InvalidName { .. })));
/// assert!(matches!(try_values!({"ms": f64::NAN}), Err(Error::InvalidValue { .. })));
/// # Ok::<(), Error>(())
/// ```
#[macro_export]
macro_rules! try_values {
    ($($json:tt)+) => {
        $crate::Values::try_from($crate::__private::serde_json::json!($($json)+))
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_floats_are_read_as_the_nearest_f64() {
        // 2^53 + 1 lies halfway between two floats: the nearest (even) one is 2^53. Without
        // serde_json's `float_roundtrip` it was read as 2^53 + 2.
        let v =
            Values::from_json(r#"{"x": 9007199254740993.0, "y": 0.30000000000000004}"#).unwrap();
        assert_eq!(
            v.number_at("x"),
            Some(Number::Float(9_007_199_254_740_992.0))
        );
        assert_eq!(v.number_at("y"), Some(Number::Float(0.1 + 0.2)));
        for x in [f64::MAX, f64::MIN_POSITIVE, 5e-324, 1.0 / 3.0, -2.5e-300] {
            let text = serde_json::to_string(&json!({ "x": x })).unwrap();
            assert_eq!(
                Values::from_json(&text).unwrap().number_at("x"),
                Some(Number::Float(x)),
                "{text}"
            );
        }
    }

    #[test]
    fn flatten_round_trip() {
        let v = values!({"a": 1, "b": {"c": 2, "d": {"e": 0.5}}, "z": -3});
        let flat = v.flatten();
        assert_eq!(
            flat,
            vec![
                ("a".to_owned(), Number::Int(1)),
                ("b.c".to_owned(), Number::Int(2)),
                ("b.d.e".to_owned(), Number::Float(0.5)),
                ("z".to_owned(), Number::Int(-3)),
            ]
        );
        assert_eq!(Values::from_flat(flat).unwrap(), v);
    }

    #[test]
    fn deep_json_is_refused_without_recursing_further() {
        let mut ok = json!(1);
        for _ in 0..crate::name::MAX_DEPTH {
            ok = json!({ "a": ok });
        }
        Values::try_from(ok.clone()).unwrap();
        let err = Values::try_from(json!({ "a": ok })).unwrap_err();
        assert!(err.to_string().contains("nested too deeply"), "{err}");
        // Far deeper than the rule: refused at the first level past it.
        let mut deep = json!(1);
        for _ in 0..1_000 {
            deep = json!({ "a": deep });
        }
        assert!(Values::try_from(deep).is_err());
    }

    #[test]
    fn json_round_trip() {
        let text = r#"{"a":1,"b":{"c":2.0,"q\"uote":-7}}"#;
        let v: Values = text.parse().unwrap();
        assert_eq!(v.number_at("b.c"), Some(Number::Float(2.0)));
        assert_eq!(serde_json::to_string(&v).unwrap(), text);
        let back: Values = serde_json::from_str(&serde_json::to_string(&v).unwrap()).unwrap();
        assert_eq!(back, v);
    }

    #[test]
    fn bad_json_is_refused_with_the_path() {
        for (json, needle) in [
            (json!({"a": "x"}), "\"a\""),
            (json!({"a": {"b": null}}), "\"a.b\""),
            (json!({"a": [1]}), "array"),
            (json!([1]), "array"),
            (json!({"a.b": 1}), "'.'"),
            (json!({"$inc": 1}), "'$'"),
            (json!({"a": 18446744073709551615u64}), "i64"),
        ] {
            let err = Values::try_from(json.clone()).unwrap_err().to_string();
            assert!(err.contains(needle), "{json}: {err}");
        }
    }

    #[test]
    fn from_flat_conflicts() {
        let err = Values::from_flat([("a", Number::Int(1)), ("a.b", Number::Int(2))]).unwrap_err();
        assert!(matches!(err, Error::PathConflict { .. }), "{err}");
        let err = Values::from_flat([("a.b", Number::Int(1)), ("a", Number::Int(2))]).unwrap_err();
        assert!(matches!(err, Error::PathConflict { .. }), "{err}");
        let err = Values::from_flat([("a", Number::Int(1)), ("a", Number::Int(2))]).unwrap_err();
        assert!(matches!(err, Error::InvalidValue { .. }), "{err}");
        assert!(Values::from_flat([("a..b", Number::Int(1))]).is_err());
    }

    #[test]
    fn insert_checks_names_and_numbers() {
        let mut v = Values::new();
        assert!(v.insert("a.b", 1).is_err());
        assert!(v.insert("x", Number::Float(f64::NAN)).is_err());
        v.insert("ok", 1).unwrap();
        assert_eq!(v.len(), 1);
    }

    #[test]
    fn flatten_checked_bounds_depth() {
        let mut v = values!({"x": 1});
        for _ in 0..crate::name::MAX_DEPTH {
            v = Values::new().with("n", v).unwrap();
        }
        assert!(v.flatten_checked().is_err());
    }
}
