//! Value paths with `*` wildcards, resolved against documents.

use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;

use crate::error::{Error, NameKind, Result};
use crate::name::{self, MAX_DEPTH, MAX_PATH_LEN, PATH_SEPARATOR};
use crate::number::Number;
use crate::values::{Value, Values};

/// The segment that matches every key at its level.
pub const WILDCARD: &str = "*";

/// One level of a [`Path`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Segment {
    /// Exactly this key.
    Key(String),
    /// `*`: every key at this level.
    Any,
}

/// A dotted value path such as `count`, `by.country`, `by.*` or `*.sum`.
///
/// A segment that is exactly `*` matches every key at its level; any other segment (including
/// one that merely contains `*`, such as `a*`) is a literal key. A key literally named `*`
/// therefore cannot be addressed on its own.
///
/// Resolving a path against a document gives the numbers it matches: where a path (or one of
/// its wildcard expansions) ends at a nested map, every leaf below that map matches, so `by`
/// behaves like `by.*` for a flat map and also reaches deeper leaves.
///
/// ```
/// use stats_core::series::Path;
/// let doc = stats_core::values!({"by": {"us": 5, "de": {"web": 2, "app": 1}}, "count": 8});
/// let path: Path = "by.*".parse().unwrap();
/// let found: Vec<String> = path.resolve(&doc).into_iter().map(|(p, _)| p).collect();
/// assert_eq!(found, ["by.de.app", "by.de.web", "by.us"]);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Path {
    text: String,
    segments: Vec<Segment>,
}

impl Path {
    /// Parses a path.
    ///
    /// # Errors
    /// [`Error::InvalidName`] (kind [`NameKind::Path`]) when the path is empty, longer than
    /// [`MAX_PATH_LEN`] bytes, deeper than [`MAX_DEPTH`] levels, or has a segment that is
    /// neither `*` nor a valid field name (see [`name::check_field`]): for example `a..b`.
    pub fn parse(text: &str) -> Result<Self> {
        if text.is_empty() {
            return Err(Error::invalid_name(
                NameKind::Path,
                text,
                "must not be empty",
            ));
        }
        if text.len() > MAX_PATH_LEN {
            return Err(name::too_long(NameKind::Path, text, MAX_PATH_LEN));
        }
        let mut segments = Vec::new();
        for part in text.split(PATH_SEPARATOR) {
            if part == WILDCARD {
                segments.push(Segment::Any);
                continue;
            }
            if let Err(err) = name::check_field(part) {
                let reason = match err {
                    Error::InvalidName { reason, .. } => format!("segment {part:?} {reason}"),
                    _ => format!("segment {part:?} is invalid"),
                };
                return Err(Error::invalid_name(NameKind::Path, text, reason));
            }
            segments.push(Segment::Key(part.to_owned()));
        }
        if segments.len() > MAX_DEPTH {
            return Err(Error::invalid_name(
                NameKind::Path,
                text,
                format!("is nested too deeply: at most {MAX_DEPTH} levels"),
            ));
        }
        Ok(Path {
            text: text.to_owned(),
            segments,
        })
    }

    /// The path as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The segments, outermost first.
    pub fn segments(&self) -> &[Segment] {
        &self.segments
    }

    /// Whether any segment is `*`.
    pub fn has_wildcard(&self) -> bool {
        self.segments.contains(&Segment::Any)
    }

    /// Every number this path matches in `doc`, with its concrete path (no `*`), in path order.
    ///
    /// A match that is a nested map contributes all its leaves. A path that runs into a number
    /// before its last segment (`count.x` where `count` is a number) matches nothing there.
    pub fn resolve(&self, doc: &Values) -> Vec<(String, Number)> {
        let mut out = Vec::new();
        resolve_into(doc, &self.segments, &mut String::new(), &mut out);
        out
    }

    /// Every number this path matches in `doc`, without the paths.
    pub(crate) fn numbers<'a>(&self, doc: &'a Values) -> impl Iterator<Item = Number> + 'a {
        // Cheap for the common case of a plain path to a number; wildcards walk the map.
        let found = match self.plain_leaf(doc) {
            Some(n) => vec![n],
            None => self.resolve(doc).into_iter().map(|(_, n)| n).collect(),
        };
        found.into_iter()
    }

    /// For a path without wildcards that ends at a number, that number.
    fn plain_leaf(&self, doc: &Values) -> Option<Number> {
        if self.has_wildcard() {
            return None;
        }
        doc.number_at(&self.text)
    }

    /// The concrete leaf paths this path matches in any of `docs`, sorted and deduplicated.
    ///
    /// When nothing matches and the path has no wildcard, the path itself is the one concrete
    /// path (so a formatter still reports it, with no values).
    pub fn concrete_paths<'a>(&self, docs: impl IntoIterator<Item = &'a Values>) -> Vec<String> {
        let mut found = BTreeSet::new();
        for doc in docs {
            if let Some(_n) = self.plain_leaf(doc) {
                found.insert(self.text.clone());
                continue;
            }
            found.extend(self.resolve(doc).into_iter().map(|(p, _)| p));
        }
        if found.is_empty() && !self.has_wildcard() {
            found.insert(self.text.clone());
        }
        found.into_iter().collect()
    }
}

fn resolve_into(
    map: &Values,
    segments: &[Segment],
    prefix: &mut String,
    out: &mut Vec<(String, Number)>,
) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    let mut visit = |key: &str, value: &Value, prefix: &mut String| {
        let len = prefix.len();
        if !prefix.is_empty() {
            prefix.push(PATH_SEPARATOR);
        }
        prefix.push_str(key);
        match value {
            Value::Number(n) if rest.is_empty() => out.push((prefix.clone(), *n)),
            Value::Number(_) => {}
            Value::Map(m) if rest.is_empty() => {
                out.extend(m.flatten().into_iter().map(|(p, n)| {
                    let mut full = prefix.clone();
                    full.push(PATH_SEPARATOR);
                    full.push_str(&p);
                    (full, n)
                }));
            }
            Value::Map(m) => resolve_into(m, rest, prefix, out),
        }
        prefix.truncate(len);
    };
    match first {
        Segment::Key(key) => {
            if let Some(value) = map.get(key) {
                visit(key, value, prefix);
            }
        }
        Segment::Any => {
            for (key, value) in map {
                visit(key, value, prefix);
            }
        }
    }
}

impl FromStr for Path {
    type Err = Error;

    /// As [`Path::parse`].
    fn from_str(s: &str) -> Result<Self> {
        Path::parse(s)
    }
}

impl TryFrom<&str> for Path {
    type Error = Error;

    /// As [`Path::parse`].
    fn try_from(s: &str) -> Result<Self> {
        Path::parse(s)
    }
}

impl fmt::Display for Path {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::values;

    fn paths(path: &str, doc: &Values) -> Vec<(String, Number)> {
        Path::parse(path).unwrap().resolve(doc)
    }

    #[test]
    fn plain_paths() {
        let doc = values!({"count": 3, "by": {"us": 5, "de": 2.5}});
        assert_eq!(paths("count", &doc), vec![("count".into(), Number::Int(3))]);
        assert_eq!(
            paths("by.de", &doc),
            vec![("by.de".into(), Number::Float(2.5))]
        );
        assert!(paths("missing", &doc).is_empty());
        assert!(paths("count.below", &doc).is_empty());
        assert!(paths("by.fr", &doc).is_empty());
    }

    #[test]
    fn wildcards_match_every_key_at_their_level() {
        let doc = values!({
            "get": {"sum": 1, "count": 2},
            "post": {"sum": 3},
            "flat": 7
        });
        assert_eq!(
            paths("*.sum", &doc),
            vec![
                ("get.sum".into(), Number::Int(1)),
                ("post.sum".into(), Number::Int(3))
            ]
        );
        assert_eq!(
            paths("get.*", &doc),
            vec![
                ("get.count".into(), Number::Int(2)),
                ("get.sum".into(), Number::Int(1))
            ]
        );
        assert_eq!(paths("*", &doc).len(), 4);
        assert_eq!(paths("*.*", &doc).len(), 3, "flat is a number, not a map");
    }

    #[test]
    fn maps_expand_to_their_leaves() {
        let doc = values!({"by": {"us": 5, "de": {"web": 2, "app": 1}}});
        assert_eq!(
            paths("by", &doc),
            vec![
                ("by.de.app".into(), Number::Int(1)),
                ("by.de.web".into(), Number::Int(2)),
                ("by.us".into(), Number::Int(5))
            ]
        );
        assert_eq!(paths("by.*", &doc), paths("by", &doc));
    }

    #[test]
    fn concrete_paths_are_the_union_over_documents() {
        let docs = [
            values!({"by": {"us": 5}}),
            values!({"other": 1}),
            values!({"by": {"de": 2, "us": 1}}),
        ];
        let by: Path = "by.*".parse().unwrap();
        assert_eq!(by.concrete_paths(&docs), ["by.de", "by.us"]);
        let missing: Path = "nowhere".parse().unwrap();
        assert_eq!(missing.concrete_paths(&docs), ["nowhere"]);
        let missing_wild: Path = "nowhere.*".parse().unwrap();
        assert!(missing_wild.concrete_paths(&docs).is_empty());
    }

    #[test]
    fn bad_paths_are_refused() {
        for bad in ["", "a..b", ".a", "a.", "$x", "a.$b", "a\nb"] {
            let err = Path::parse(bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidName {
                        kind: NameKind::Path,
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
        }
        let deep = vec!["a"; MAX_DEPTH + 1].join(".");
        assert!(Path::parse(&deep).is_err());
        assert!(Path::parse(&"a".repeat(MAX_PATH_LEN + 1)).is_err());
        let literal = Path::parse("a*.b").unwrap();
        assert!(!literal.has_wildcard());
        assert_eq!(literal.to_string(), "a*.b");
    }
}
