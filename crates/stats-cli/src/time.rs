//! Instants and durations as a user types them.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Span, Timestamp, Zoned};

use crate::error::{CliError, CliResult};

/// Parses an instant: `now`; a time relative to now (`-2h`, `now-7d`, `-1 week`: calendar units
/// follow the zone's calendar); unix seconds (`1733572800`, `1733572800.25`); RFC 3339 with an
/// offset (`2026-12-07T10:00:00Z`, `...+01:00`); or a date or date-time without an offset
/// (`2026-12-07`, `2026-12-07T10:00`, `2026-12-07 10:00:00`), read as wall-clock time in `zone`.
///
/// ```
/// use stats_cli::time::parse_instant;
/// use jiff::{tz::TimeZone, Timestamp};
/// let now: Timestamp = "2026-12-07T12:00:00Z".parse()?;
/// let berlin = TimeZone::get("Europe/Berlin")?;
/// let at = |s| parse_instant(s, &berlin, now).unwrap().to_string();
/// assert_eq!(at("1733572800"), "2024-12-07T12:00:00Z");
/// assert_eq!(at("2026-12-07"), "2026-12-06T23:00:00Z"); // midnight in Berlin
/// assert_eq!(at("-2h"), "2026-12-07T10:00:00Z");
/// assert!(parse_instant("yesterday-ish", &berlin, now).is_err());
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// # Errors
/// [`CliError::Input`] naming the text, for anything else or an instant outside the years
/// -9999 to 9999.
pub fn parse_instant(text: &str, zone: &TimeZone, now: Timestamp) -> CliResult<Timestamp> {
    let text = text.trim();
    let bad = |why: &str| {
        CliError::input(format!(
            "invalid time {text:?}: {why} (use unix seconds, RFC 3339 such as \
             2026-12-07T10:00:00Z, a date such as 2026-12-07, now, or -2h)"
        ))
    };
    if text.is_empty() {
        return Err(bad("empty"));
    }
    if text.eq_ignore_ascii_case("now") {
        return Ok(now);
    }
    let relative = text
        .strip_prefix("now-")
        .or_else(|| text.strip_prefix("now -"))
        .or_else(|| text.strip_prefix('-').filter(|rest| !looks_numeric(rest)));
    if let Some(rest) = relative {
        let span: Span = rest
            .trim()
            .parse()
            .map_err(|e| bad(&format!("not a span ({e})")))?;
        return now
            .to_zoned(zone.clone())
            .checked_sub(span)
            .map(|z| z.timestamp())
            .map_err(|e| bad(&e.to_string()));
    }
    if looks_numeric(text) {
        return unix_seconds_text(text).map_err(|why| bad(&why));
    }
    if let Ok(ts) = text.parse::<Timestamp>() {
        return Ok(ts);
    }
    if let Ok(zoned) = text.parse::<Zoned>() {
        return Ok(zoned.timestamp());
    }
    if let Ok(civil) = text.parse::<DateTime>() {
        return civil
            .to_zoned(zone.clone())
            .map(|z| z.timestamp())
            .map_err(|e| bad(&e.to_string()));
    }
    if let Ok(date) = text.parse::<jiff::civil::Date>() {
        return date
            .to_zoned(zone.clone())
            .map(|z| z.timestamp())
            .map_err(|e| bad(&e.to_string()));
    }
    Err(bad("not a time"))
}

fn looks_numeric(text: &str) -> bool {
    let digits = text.strip_prefix('-').unwrap_or(text);
    !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit() || b == b'.')
}

fn unix_seconds_text(text: &str) -> Result<Timestamp, String> {
    if let Ok(whole) = text.parse::<i64>() {
        return unix_seconds(whole);
    }
    match text.parse::<f64>() {
        Ok(seconds) => unix_seconds_f64(seconds),
        Err(_) => Err("not a number of seconds".into()),
    }
}

/// Whole unix seconds as an instant.
///
/// # Errors
/// A message when the instant is outside the years -9999 to 9999.
pub fn unix_seconds(seconds: i64) -> Result<Timestamp, String> {
    Timestamp::from_second(seconds)
        .map_err(|_| format!("{seconds} unix seconds is outside the years -9999 to 9999"))
}

/// Unix seconds with a fraction (nanosecond precision kept where the float has it).
///
/// # Errors
/// A message for a non-finite number or an instant outside the years -9999 to 9999.
pub fn unix_seconds_f64(seconds: f64) -> Result<Timestamp, String> {
    let outside = || format!("{seconds} unix seconds is outside the years -9999 to 9999");
    if !seconds.is_finite() {
        return Err(format!("{seconds} is not a number of seconds"));
    }
    let duration = SignedDuration::try_from_secs_f64(seconds).map_err(|_| outside())?;
    Timestamp::from_duration(duration).map_err(|_| outside())
}

/// Parses a positive duration: `30s`, `1h 30m`, `2 days`, `PT30S`.
///
/// ```
/// use stats_cli::time::parse_duration;
/// assert_eq!(parse_duration("1m 30s").unwrap().as_secs(), 90);
/// assert!(parse_duration("0s").is_err());
/// assert!(parse_duration("-5s").is_err());
/// ```
///
/// # Errors
/// [`CliError::Input`] naming the text, for anything else, zero, or a negative duration.
pub fn parse_duration(text: &str) -> CliResult<std::time::Duration> {
    let bad = |why: String| {
        CliError::input(format!(
            "invalid duration {text:?}: {why} (use 30s, 5m, 1h 30m, 2d)"
        ))
    };
    let signed: SignedDuration = match text.trim().parse::<SignedDuration>() {
        Ok(d) => d,
        Err(first) => {
            // Days and weeks are not fixed durations in general; here they mean 24 h and 7 d.
            let span: Span = text.trim().parse().map_err(|_| bad(first.to_string()))?;
            span.to_duration(jiff::SpanRelativeTo::days_are_24_hours())
                .map_err(|e| bad(e.to_string()))?
        }
    };
    if signed.is_negative() || signed.is_zero() {
        return Err(bad("must be positive".into()));
    }
    std::time::Duration::try_from(signed).map_err(|e| bad(e.to_string()))
}

/// `at` in RFC 3339 with the zone's offset at that instant (`2026-12-07T00:00:00+01:00`), the
/// spelling of every instant the command prints.
pub fn rfc3339_in(at: Timestamp, zone: &TimeZone) -> String {
    let offset = zone.to_offset(at);
    at.display_with_offset(offset).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn now() -> Timestamp {
        "2026-12-07T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn edges() {
        let utc = TimeZone::UTC;
        assert_eq!(
            parse_instant("0", &utc, now()).unwrap(),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            parse_instant("-0.0", &utc, now()).unwrap(),
            Timestamp::UNIX_EPOCH
        );
        assert_eq!(
            parse_instant("-86400", &utc, now()).unwrap().to_string(),
            "1969-12-31T00:00:00Z"
        );
        assert_eq!(
            parse_instant("1.5", &utc, now()).unwrap().to_string(),
            "1970-01-01T00:00:01.5Z"
        );
        for bad in [
            "9223372036854775807",
            "-9223372036854775808",
            "1e400",
            "",
            "NaN",
            "2026-13-01",
            "now-",
            "-",
        ] {
            let err = parse_instant(bad, &utc, now()).unwrap_err();
            assert!(matches!(err, CliError::Input(_)), "{bad}: {err}");
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
        assert!(parse_duration("100000000000000000000s").is_err());
        assert_eq!(parse_duration("1d").unwrap().as_secs(), 86_400);
        assert_eq!(
            rfc3339_in(
                "2026-07-01T00:00:00Z".parse().unwrap(),
                &TimeZone::get("Europe/Berlin").unwrap()
            ),
            "2026-07-01T02:00:00+02:00"
        );
    }
}
