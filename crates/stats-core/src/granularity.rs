//! Granularities: the width of a time bucket, written `<n><unit>`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// The unit of a [`Granularity`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Unit {
    /// `s`: seconds, counted within the minute.
    Second,
    /// `m`: minutes, counted within the hour.
    Minute,
    /// `h`: hours, counted within the day.
    Hour,
    /// `d`: days, counted from 1 January.
    Day,
    /// `w`: weeks, counted from the first week start of the year.
    Week,
    /// `mo`: months, counted from January.
    Month,
    /// `q`: quarters (3 months), counted from January.
    Quarter,
    /// `y`: years, counted from year 0.
    Year,
}

impl Unit {
    /// The unit's suffix in a granularity string.
    pub fn suffix(self) -> &'static str {
        match self {
            Unit::Second => "s",
            Unit::Minute => "m",
            Unit::Hour => "h",
            Unit::Day => "d",
            Unit::Week => "w",
            Unit::Month => "mo",
            Unit::Quarter => "q",
            Unit::Year => "y",
        }
    }

    /// The largest `n` that means something for this unit: the number of units in the period
    /// it is counted within (60 seconds in a minute, 366 days in a year, ...). Years have no
    /// enclosing period; they are bounded at 1000.
    pub fn max_count(self) -> u32 {
        match self {
            Unit::Second | Unit::Minute => 60,
            Unit::Hour => 24,
            Unit::Day => 366,
            Unit::Week => 53,
            Unit::Month => 12,
            Unit::Quarter => 4,
            Unit::Year => 1000,
        }
    }

    fn from_suffix(s: &str) -> Option<Unit> {
        Some(match s {
            "s" => Unit::Second,
            "m" => Unit::Minute,
            "h" => Unit::Hour,
            "d" => Unit::Day,
            "w" => Unit::Week,
            "mo" => Unit::Month,
            "q" => Unit::Quarter,
            "y" => Unit::Year,
            _ => return None,
        })
    }
}

/// The width of a time bucket: `n` units, written `<n><unit>` (`1m`, `15m`, `1h`, `1d`, `1w`,
/// `1mo`, `1q`, `1y`, `33m`, ...).
///
/// `n` is at least 1 and at most [`Unit::max_count`]. Buckets follow the calendar, not a fixed
/// length: a `1mo` bucket is a calendar month, a `1d` bucket a calendar day in the tracker's
/// zone. A count that does not divide its period gives a short last bucket in each period
/// (`33m` gives buckets at :00 and :33 of every hour).
///
/// ```
/// use stats::{Granularity, Unit};
///
/// let quarter_hour: Granularity = "15m".parse()?;
/// assert_eq!((quarter_hour.count(), quarter_hour.unit()), (15, Unit::Minute));
/// assert_eq!(quarter_hour.to_string(), "15m");
/// assert_eq!(Granularity::new(1, Unit::Month)?, "1mo".parse()?);
///
/// // What a tracker writes by default.
/// let defaults: Vec<String> = Granularity::defaults().iter().map(|g| g.to_string()).collect();
/// assert_eq!(defaults, ["1m", "1h", "1d", "1w", "1mo", "1q", "1y"]);
///
/// // Refused: no count, an unknown unit, more hours than a day has.
/// for bad in ["m", "1x", "25h", "0d", " 1d"] {
///     assert!(bad.parse::<Granularity>().is_err(), "{bad}");
/// }
/// # Ok::<(), stats::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Granularity {
    unit: Unit,
    count: u32,
}

impl Granularity {
    /// A granularity of `count` units.
    ///
    /// # Errors
    /// [`Error::InvalidGranularity`] when `count` is 0 or above [`Unit::max_count`].
    pub fn new(count: u32, unit: Unit) -> Result<Self> {
        let input = || format!("{count}{}", unit.suffix());
        if count == 0 {
            return Err(Error::InvalidGranularity {
                input: input(),
                reason: "the count must be at least 1",
            });
        }
        if count > unit.max_count() {
            return Err(Error::InvalidGranularity {
                input: input(),
                reason: "the count is larger than the period the unit is counted within",
            });
        }
        Ok(Granularity { unit, count })
    }

    /// The unit.
    pub fn unit(self) -> Unit {
        self.unit
    }

    /// The count of units.
    pub fn count(self) -> u32 {
        self.count
    }

    /// The default set: `1m 1h 1d 1w 1mo 1q 1y`.
    pub fn defaults() -> Vec<Granularity> {
        [
            Unit::Minute,
            Unit::Hour,
            Unit::Day,
            Unit::Week,
            Unit::Month,
            Unit::Quarter,
            Unit::Year,
        ]
        .into_iter()
        .map(|unit| Granularity { unit, count: 1 })
        .collect()
    }
}

impl fmt::Display for Granularity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.count, self.unit.suffix())
    }
}

impl FromStr for Granularity {
    type Err = Error;

    /// Parses `<n><unit>`: digits, then one of `s m h d w mo q y`, nothing else (no spaces,
    /// no sign, no leading zero).
    fn from_str(input: &str) -> Result<Self> {
        let bad = |reason| Error::InvalidGranularity {
            input: input.to_owned(),
            reason,
        };
        let split = input
            .find(|c: char| !c.is_ascii_digit())
            .ok_or_else(|| bad("missing unit (one of s m h d w mo q y)"))?;
        let (digits, suffix) = input.split_at(split);
        if digits.is_empty() {
            return Err(bad("must start with a count, as in 15m"));
        }
        if digits.starts_with('0') {
            return Err(bad("the count must be at least 1, without leading zeros"));
        }
        let unit = Unit::from_suffix(suffix)
            .ok_or_else(|| bad("unknown unit (one of s m h d w mo q y)"))?;
        let count: u32 = digits.parse().map_err(|_| bad("the count is too large"))?;
        Granularity::new(count, unit)
            .map_err(|_| bad("the count is larger than the period the unit is counted within"))
    }
}

impl Serialize for Granularity {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Granularity {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_displays() {
        for s in [
            "1s", "15m", "33m", "1h", "5h", "1d", "7d", "1w", "2w", "1mo", "1q", "5y", "60m",
            "366d",
        ] {
            let g: Granularity = s.parse().unwrap();
            assert_eq!(g.to_string(), s);
        }
        let g: Granularity = "1mo".parse().unwrap();
        assert_eq!((g.count(), g.unit()), (1, Unit::Month));
    }

    #[test]
    fn refuses_bad_strings() {
        for s in [
            "",
            "m",
            "0m",
            "01m",
            "-1m",
            "1",
            "1x",
            "1 m",
            " 1m",
            "1M",
            "1mon",
            "61m",
            "25h",
            "5q",
            "99999999999m",
            "1.5h",
        ] {
            let err = s.parse::<Granularity>().unwrap_err();
            assert!(matches!(err, Error::InvalidGranularity { .. }), "{s:?}");
            assert!(err.to_string().contains(&format!("{s:?}")), "{err}");
        }
    }

    #[test]
    fn defaults_are_the_seven() {
        let names: Vec<String> = Granularity::defaults()
            .iter()
            .map(|g| g.to_string())
            .collect();
        assert_eq!(names, ["1m", "1h", "1d", "1w", "1mo", "1q", "1y"]);
    }
}
