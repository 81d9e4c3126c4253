//! Histogram bucket bounds: checked lists, and their spelling as field names.

use std::sync::Arc;

use stats_core::{Error, Result};

/// Most bounds one histogram may have (each is one field per time bucket in the store).
pub const MAX_BOUNDS: usize = 64;

/// The bounds used when none are configured: the Prometheus client libraries' defaults, in
/// seconds (for request latencies).
pub const DEFAULT_BOUNDS: [f64; 11] = [
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// A checked list of histogram upper bounds: finite, strictly increasing, 1 to [`MAX_BOUNDS`]
/// of them, with the field name each is stored under.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Bounds {
    pub(crate) values: Arc<[f64]>,
    /// `le.<bound>` for each bound, then `le.+Inf`.
    pub(crate) fields: Arc<[String]>,
}

impl Bounds {
    pub(crate) fn new(what: &str, bounds: &[f64]) -> Result<Self> {
        if bounds.is_empty() {
            return Err(Error::InvalidInput(format!(
                "histogram bounds for {what}: the list is empty (give at least one upper bound)"
            )));
        }
        if bounds.len() > MAX_BOUNDS {
            return Err(Error::InvalidInput(format!(
                "histogram bounds for {what}: {} bounds, at most {MAX_BOUNDS}",
                bounds.len()
            )));
        }
        for (i, &b) in bounds.iter().enumerate() {
            if !b.is_finite() {
                return Err(Error::InvalidInput(format!(
                    "histogram bounds for {what}: bound {i} is {b}, bounds must be finite (the +Inf bucket is always there)"
                )));
            }
            if i > 0 && b <= bounds[i - 1] {
                return Err(Error::InvalidInput(format!(
                    "histogram bounds for {what}: bound {i} ({b:?}) is not above bound {} ({:?}); bounds must be strictly increasing",
                    i - 1,
                    bounds[i - 1]
                )));
            }
        }
        // -0.0 and 0.0 are one bound: keep one spelling.
        let values: Arc<[f64]> = bounds.iter().map(|&b| b + 0.0).collect();
        let fields = values
            .iter()
            .map(|&b| format!("le.{}", bound_name(b)))
            .chain(std::iter::once("le.+Inf".to_owned()))
            .collect();
        Ok(Bounds { values, fields })
    }

    /// The index of the bucket `value` falls in (`values.len()` for the +Inf bucket).
    #[inline]
    pub(crate) fn index(&self, value: f64) -> usize {
        self.values.partition_point(|&b| b < value)
    }
}

/// Spells a finite bound as a field name without `.` (the path separator): the shortest
/// decimal digits that read back as the same `f64`, as an integer mantissa and a power of ten.
/// `0.005` -> `5e-3`, `0.025` -> `25e-3`, `2.5` -> `25e-1`, `1` -> `1`, `10` -> `10`,
/// `1e21` -> `1e21` (whole numbers of up to 21 digits are written out). Every spelling parses back with `str::parse::<f64>()` to the bound.
///
/// ```
/// use stats_metrics::bound_name;
///
/// assert_eq!(bound_name(0.005), "5e-3");
/// assert_eq!(bound_name(2.5), "25e-1");
/// assert_eq!(bound_name(10.0), "10");
/// assert_eq!(bound_name(-0.5), "-5e-1");
/// assert_eq!(bound_name(1e300).parse::<f64>().unwrap(), 1e300);
/// ```
pub fn bound_name(bound: f64) -> String {
    if bound == 0.0 {
        return "0".to_owned();
    }
    // `{:e}` is the shortest round-trip form: `d[.ddd]e<exp>`.
    let text = format!("{bound:e}");
    let (mantissa, exponent) = text.split_once('e').expect("`{:e}` always has an exponent");
    let mut exponent: i32 = exponent.parse().expect("`{:e}` exponent is an integer");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(m) => ("-", m),
        None => ("", mantissa),
    };
    let digits = match mantissa.split_once('.') {
        Some((int, frac)) => {
            exponent -= i32::try_from(frac.len()).expect("a short fraction");
            format!("{int}{frac}")
        }
        None => mantissa.to_owned(),
    };
    let digits = digits.trim_start_matches('0');
    // Whole numbers up to 21 digits are written out (as JSON and Prometheus would).
    if exponent >= 0 && digits.len() + exponent as usize <= 21 {
        format!("{sign}{digits}{}", "0".repeat(exponent as usize))
    } else {
        format!("{sign}{digits}e{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for (b, name) in [
            (0.005, "5e-3"),
            (0.01, "1e-2"),
            (0.025, "25e-3"),
            (0.1, "1e-1"),
            (1.0, "1"),
            (2.5, "25e-1"),
            (10.0, "10"),
            (100.0, "100"),
            (1e20, "100000000000000000000"),
            (1e21, "1e21"),
            (1e22, "1e22"),
            (-0.0, "0"),
            (-2.5, "-25e-1"),
            (f64::MAX, "17976931348623157e292"),
            (f64::MIN_POSITIVE, "22250738585072014e-324"),
            (5e-324, "5e-324"),
            (9007199254740993.0, "9007199254740992"),
        ] {
            assert_eq!(bound_name(b), name, "{b:?}");
            assert_eq!(name.parse::<f64>().unwrap(), b + 0.0, "{name}");
            assert!(!name.contains('.'));
        }
    }

    #[test]
    fn bounds_checked() {
        assert!(Bounds::new("h", &[]).is_err());
        assert!(Bounds::new("h", &[1.0, 1.0]).is_err());
        assert!(Bounds::new("h", &[2.0, 1.0]).is_err());
        assert!(Bounds::new("h", &[f64::NAN]).is_err());
        assert!(Bounds::new("h", &[1.0, f64::INFINITY]).is_err());
        assert!(Bounds::new("h", &[0.0; MAX_BOUNDS + 1]).is_err());
        let err = Bounds::new("latency", &[0.5, 0.1]).unwrap_err().to_string();
        assert!(err.contains("latency") && err.contains("bound 1"), "{err}");
        let b = Bounds::new("h", &[-0.0, 1.0]).unwrap();
        assert_eq!(&*b.fields, ["le.0", "le.1", "le.+Inf"]);
        assert_eq!(b.index(-1.0), 0);
        assert_eq!(b.index(0.0), 0);
        assert_eq!(b.index(0.5), 1);
        assert_eq!(b.index(1.0), 1);
        assert_eq!(b.index(1.5), 2);
        assert_eq!(b.index(f64::INFINITY), 2);
    }
}
