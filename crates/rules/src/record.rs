//! How a statistics record is keyed in a metric store.

use std::fmt;

use stats_core::{Error, Key, Result};

/// The address of one statistics record: the record name and the value of each key field, in
/// the order the rule declares them.
///
/// A record lives in the status slot ([`Key::status`]) of one metric whose name is
/// [`RecordKey::metric`]: the record name, then `:field=value` per key field. Values are
/// escaped so that the name passes the portable name rule of every store and can be split
/// back ([`RecordKey::parse`]): ASCII letters, digits, `-`, `_` and `.` stay, every other byte
/// of the UTF-8 text becomes `%XX`. An integer is written in decimal, so the integer `1` and
/// the text `"1"` address the same record (as a SQL key column compared with a cast would).
/// A metric name is at most 200 bytes; a longer one is refused with
/// [`Error::InvalidName`] when the record is keyed, before anything is written.
///
/// ```
/// use stats::rules::RecordKey;
/// let key = RecordKey::new("test_statistic", [("user_id", "1"), ("test_slug", "a b:c")]);
/// assert_eq!(key.metric(), "test_statistic:user_id=1:test_slug=a%20b%3Ac");
/// assert_eq!(RecordKey::parse(&key.metric())?, key);
/// # Ok::<(), stats::Error>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RecordKey {
    /// The record name, such as `test_statistic`.
    pub record: String,
    /// `(key field, value)` pairs in the rule's order; integers in decimal.
    pub fields: Vec<(String, String)>,
}

impl RecordKey {
    /// A record key from its name and `(field, value)` pairs.
    pub fn new<F: Into<String>, V: Into<String>>(
        record: impl Into<String>,
        fields: impl IntoIterator<Item = (F, V)>,
    ) -> Self {
        RecordKey {
            record: record.into(),
            fields: fields
                .into_iter()
                .map(|(f, v)| (f.into(), v.into()))
                .collect(),
        }
    }

    /// The metric name the record is stored under (see the type's documentation).
    pub fn metric(&self) -> String {
        let mut out = self.record.clone();
        for (field, value) in &self.fields {
            out.push(':');
            out.push_str(field);
            out.push('=');
            escape_into(value, &mut out);
        }
        out
    }

    /// The store key of the record: the status slot of [`RecordKey::metric`].
    ///
    /// # Errors
    /// [`Error::InvalidName`] when the metric name breaks the name rule (longer than 200 bytes).
    pub fn key(&self) -> Result<Key> {
        Key::status(&self.metric())
    }

    /// Splits a metric name made by [`RecordKey::metric`] back into its parts.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the metric when it is not of that form.
    pub fn parse(metric: &str) -> Result<Self> {
        let bad = |why: &str| Error::InvalidInput(format!("{metric:?} is not a record key: {why}"));
        let mut parts = metric.split(':');
        let record = parts.next().unwrap_or_default();
        if !is_identifier(record) {
            return Err(bad("the record name is not an identifier"));
        }
        let mut fields = Vec::new();
        for part in parts {
            let (field, value) = part
                .split_once('=')
                .ok_or_else(|| bad("a key field has no '='"))?;
            if !is_identifier(field) {
                return Err(bad("a key field name is not an identifier"));
            }
            fields.push((
                field.to_owned(),
                unescape(value).ok_or_else(|| bad("bad escape"))?,
            ));
        }
        Ok(RecordKey {
            record: record.to_owned(),
            fields,
        })
    }
}

impl fmt::Display for RecordKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.metric())
    }
}

/// Whether `name` is a non-empty run of ASCII letters, digits and `_`: the form of entity
/// types, stats, record names, key fields and guard or strategy names.
pub(crate) fn is_identifier(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

fn keeps(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.')
}

fn escape_into(value: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    for &b in value.as_bytes() {
        if keeps(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
}

fn unescape(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = value.get(i + 1..i + 3)?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b if keeps(b) => {
                out.push(b);
                i += 1;
            }
            _ => return None,
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hostile_values_round_trip_and_pass_the_name_rule() {
        for value in [
            "",
            "plain",
            "a::b",
            ":lead",
            "trail:",
            "{tag}",
            "$set",
            "nul\0tab\t",
            "%41",
            "é 😀",
            "=",
        ] {
            let key = RecordKey::new("r", [("k", value), ("j", "x")]);
            let metric = key.metric();
            Key::status(&metric).unwrap();
            assert_eq!(RecordKey::parse(&metric).unwrap(), key, "{value:?}");
        }
    }

    #[test]
    fn malformed_metrics_are_refused() {
        for bad in ["", "r:k", "r:k=%4", "r:k=%zz", "r:k=a b", "r:=1", "r r"] {
            assert!(
                matches!(RecordKey::parse(bad), Err(Error::InvalidInput(_))),
                "{bad:?}"
            );
        }
        assert_eq!(
            RecordKey::parse("r").unwrap(),
            RecordKey::new("r", [("", ""); 0])
        );
    }

    #[test]
    fn too_long_is_a_typed_error() {
        let key = RecordKey::new("r", [("k", "x".repeat(300))]);
        assert!(matches!(key.key(), Err(Error::InvalidName { .. })));
    }
}
