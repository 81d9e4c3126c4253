//! The one portable name rule.
//!
//! Every store accepts exactly the names this module accepts, so that data can move between
//! stores and no store sees a name that would break its layout. The rule is checked before
//! anything is written: a call with one bad name writes nothing.
//!
//! Every name:
//! - is not empty and at most its kind's length in bytes ([`MAX_SEGMENT_LEN`] for metric keys,
//!   namespaces, counter and throttle keys; [`MAX_FIELD_LEN`] for field names);
//! - has no control characters (this includes NUL, tab and newline);
//! - does not start with `$` (document databases such as MongoDB reserve it for operators).
//!
//! A field name (one level of a [`Values`](crate::Values) map) also has no `.` (the path
//! separator of the flattened form) and is not `*` (the wildcard of series paths). A flattened path is at most [`MAX_PATH_LEN`] bytes and
//! [`MAX_DEPTH`] levels deep.
//!
//! A segment (metric key, namespace, counter key, throttle key) also has no `::` (the key
//! separator of the joined form), does not start or end with `:` (so that joining segments
//! with `::` can be split again), and has no `{` or `}` (Redis Cluster hash tags).

use crate::error::{Error, NameKind, Result};

/// Longest metric key, namespace, counter key or throttle key, in bytes.
pub const MAX_SEGMENT_LEN: usize = 200;
/// Longest field name (one level of a value map), in bytes.
pub const MAX_FIELD_LEN: usize = 200;
/// Longest flattened value path, in bytes.
pub const MAX_PATH_LEN: usize = 400;
/// Deepest nesting of a value map.
pub const MAX_DEPTH: usize = 16;
/// The separator of flattened value paths.
pub const PATH_SEPARATOR: char = '.';
/// The separator of joined keys (`prefix::metric::granularity::start`).
pub const KEY_SEPARATOR: &str = "::";

/// The "too long" error, with the limit and the actual length.
pub(crate) fn too_long(kind: NameKind, name: &str, max: usize) -> Error {
    Error::invalid_name(
        kind,
        name,
        format!("is too long: {} bytes, at most {max}", name.len()),
    )
}

fn common(kind: NameKind, name: &str, max: usize) -> Result<()> {
    if name.is_empty() {
        return Err(Error::invalid_name(kind, name, "must not be empty"));
    }
    if name.len() > max {
        return Err(too_long(kind, name, max));
    }
    if name.chars().any(char::is_control) {
        return Err(Error::invalid_name(
            kind,
            name,
            "must not contain control characters",
        ));
    }
    if name.starts_with('$') {
        return Err(Error::invalid_name(kind, name, "must not start with '$'"));
    }
    Ok(())
}

/// Checks one field name of a value map.
///
/// # Errors
/// [`Error::InvalidName`] with [`NameKind::Field`] naming the offender.
pub fn check_field(name: &str) -> Result<()> {
    common(NameKind::Field, name, MAX_FIELD_LEN)?;
    if name.contains(PATH_SEPARATOR) {
        return Err(Error::invalid_name(
            NameKind::Field,
            name,
            "must not contain '.' (the path separator)",
        ));
    }
    if name == "*" {
        return Err(Error::invalid_name(
            NameKind::Field,
            name,
            "must not be '*' (the wildcard of series paths)",
        ));
    }
    Ok(())
}

/// Checks a flattened value path such as `a.b.c`: every segment is a valid field name, the
/// whole is at most [`MAX_PATH_LEN`] bytes and [`MAX_DEPTH`] levels.
///
/// # Errors
/// [`Error::InvalidName`] naming the path or the offending segment.
pub fn check_path(path: &str) -> Result<()> {
    if path.len() > MAX_PATH_LEN {
        return Err(too_long(NameKind::Path, path, MAX_PATH_LEN));
    }
    let mut depth = 0;
    for segment in path.split(PATH_SEPARATOR) {
        depth += 1;
        if depth > MAX_DEPTH {
            return Err(Error::invalid_name(
                NameKind::Path,
                path,
                format!("is nested too deeply: at most {MAX_DEPTH} levels"),
            ));
        }
        check_field(segment).map_err(|e| match e {
            // Name the whole path, and which segment breaks the rule.
            Error::InvalidName { reason, name, .. } => {
                Error::invalid_name(NameKind::Path, path, format!("segment {name:?} {reason}"))
            }
            other => other,
        })?;
    }
    Ok(())
}

/// Checks a metric key, namespace, counter key or throttle key.
///
/// # Errors
/// [`Error::InvalidName`] with the given kind, naming the offender.
pub fn check_segment(kind: NameKind, name: &str) -> Result<()> {
    common(kind, name, MAX_SEGMENT_LEN)?;
    if name.contains(KEY_SEPARATOR) {
        return Err(Error::invalid_name(
            kind,
            name,
            "must not contain '::' (the key separator)",
        ));
    }
    if name.starts_with(':') || name.ends_with(':') {
        return Err(Error::invalid_name(
            kind,
            name,
            "must not start or end with ':'",
        ));
    }
    if name.contains(['{', '}']) {
        return Err(Error::invalid_name(
            kind,
            name,
            "must not contain '{' or '}'",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields() {
        for good in [
            "a",
            "count",
            "ümlaut",
            "with space",
            "a-b_c",
            "'quote\"",
            "x:y",
            "{",
        ] {
            check_field(good).unwrap();
        }
        for (bad, reason) in [
            ("", "empty"),
            ("a.b", "'.'"),
            ("$set", "'$'"),
            ("nul\0", "control"),
            ("tab\t", "control"),
            ("*", "wildcard"),
        ] {
            let err = check_field(bad).unwrap_err().to_string();
            assert!(err.contains(reason), "{bad:?}: {err}");
        }
        check_field(&"x".repeat(MAX_FIELD_LEN)).unwrap();
        assert!(check_field(&"x".repeat(MAX_FIELD_LEN + 1)).is_err());
    }

    #[test]
    fn paths() {
        check_path("a.b.c").unwrap();
        assert!(check_path("a..b").is_err());
        assert!(check_path(".a").is_err());
        assert!(check_path("a.$b").is_err());
        let deep = vec!["a"; MAX_DEPTH].join(".");
        check_path(&deep).unwrap();
        assert!(check_path(&format!("{deep}.a")).is_err());
    }

    #[test]
    fn segments() {
        for good in ["orders", "user:1", "a.b", "événement", "a b"] {
            check_segment(NameKind::Metric, good).unwrap();
        }
        for bad in ["", "a::b", ":a", "a:", "{tag}", "$x", "a\nb"] {
            let err = check_segment(NameKind::Namespace, bad).unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidName {
                        kind: NameKind::Namespace,
                        ..
                    }
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn long_names_are_truncated_in_errors_on_char_boundaries() {
        let long = "é".repeat(300);
        let err = check_segment(NameKind::Metric, &long)
            .unwrap_err()
            .to_string();
        assert!(err.contains("..."));
        assert!(err.len() < 200);
    }
}
