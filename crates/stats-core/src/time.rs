//! Time buckets: flooring an instant to the start of its bucket, the next bucket start, and
//! timelines, in a configured IANA time zone and week start.
//!
//! # The rules
//!
//! A bucket is the half-open interval `[start, next start)`; the buckets of one granularity
//! partition time. Flooring works on the wall-clock time in the zone, within an anchor period:
//!
//! | unit | counted within | `floor` keeps |
//! |---|---|---|
//! | `s` | the minute | `second / n * n` |
//! | `m` | the hour | `minute / n * n` |
//! | `h` | the day | `hour / n * n` |
//! | `d` | the year, from 1 January | day of year `/ n * n` |
//! | `w` | the year, from its first week-start day | week `/ n * n`; the days before the first week start form a short week from 1 January; the last week ends on 1 January |
//! | `mo`, `q` | the year, from January | month `/ n * n` (a quarter is 3 months) |
//! | `y` | all time | `year / n * n` |
//!
//! So a count that does not divide its period gives a short last bucket (`33m` starts buckets at
//! :00 and :33; `5h` at 00, 05, 10, 15, 20; `7d` restarts every 1 January).
//!
//! The floored wall-clock time is turned back into an instant as ECMAScript Temporal's
//! `ZonedDateTime.round` does. For `s`, `m` and `h`, the original UTC offset is kept when it is
//! valid for the new wall-clock time, otherwise the time is resolved compatibly (a time in a gap
//! moves forward by the gap, an ambiguous time takes the earlier instant): during a fall-back
//! hour there are two distinct `1h` buckets. For `d` and longer, a bucket starts at the start of
//! its first day, the earliest instant of that date (the first valid instant where midnight is
//! skipped): a day of 23 or 25 hours is one `1d` bucket.
//!
//! The next bucket start is found with calendar arithmetic and flooring, never by adding a
//! fixed length: for `s`, `m` and `h` it walks the wall-clock boundaries and the zone's
//! transitions in order and takes the first whose floor is after the bucket; for `d` and longer
//! it steps the date. So a timeline holds exactly the buckets that writes in its range produce.
//!
//! The stored identity of a bucket is the absolute instant of its start (unix seconds).
//! Changing the time zone or the week start of existing data is therefore a schema change:
//! old buckets keep their old starts and new writes go to new ones.

use jiff::civil::{Date, DateTime, Time, Weekday};
use jiff::tz::{Offset, TimeZone};
use jiff::{Timestamp, ToSpan};

use crate::error::{Error, Result};
use crate::granularity::{Granularity, Unit};

/// The most buckets one timeline may hold (a guard against a range that would exhaust memory:
/// a year of minutes is 525,600).
pub const MAX_TIMELINE: usize = 2_000_000;

/// A time zone and a week start: everything flooring needs besides the granularity.
#[derive(Debug, Clone, PartialEq)]
pub struct Calendar {
    tz: TimeZone,
    week_start: Weekday,
}

impl Default for Calendar {
    /// UTC, weeks starting on Monday.
    fn default() -> Self {
        Calendar {
            tz: TimeZone::UTC,
            week_start: Weekday::Monday,
        }
    }
}

fn time_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::InvalidInput(format!("{what}: {e}"))
}

impl Calendar {
    /// A calendar in the given zone with the given week start.
    pub fn new(tz: TimeZone, week_start: Weekday) -> Self {
        Calendar { tz, week_start }
    }

    /// A calendar in the IANA zone of that name (from the bundled database when the system has
    /// none), with weeks starting on `week_start`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown zone name.
    pub fn named(zone: &str, week_start: Weekday) -> Result<Self> {
        let tz = TimeZone::get(zone)
            .map_err(|e| time_error(&format!("unknown time zone {zone:?}"), e))?;
        Ok(Calendar::new(tz, week_start))
    }

    /// The time zone.
    pub fn time_zone(&self) -> &TimeZone {
        &self.tz
    }

    /// The first day of the week.
    pub fn week_start(&self) -> Weekday {
        self.week_start
    }

    /// The start of the bucket of `granularity` that holds `t`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an instant whose bucket lies outside the supported range of
    /// years (-9999 to 9999).
    pub fn floor(&self, t: Timestamp, granularity: Granularity) -> Result<Timestamp> {
        let offset = self.tz.to_offset(t);
        let wall = offset.to_datetime(t);
        let n = i64::from(granularity.count());
        let clock = |h: i64, m: i64, s: i64| -> Result<Timestamp> {
            let time =
                Time::new(h as i8, m as i8, s as i8, 0).map_err(|e| time_error("floor", e))?;
            self.resolve_prefer(wall.date().to_datetime(time), offset)
        };
        let (h, m, s) = (
            i64::from(wall.hour()),
            i64::from(wall.minute()),
            i64::from(wall.second()),
        );
        match granularity.unit() {
            Unit::Second => clock(h, m, s / n * n),
            Unit::Minute => clock(h, m / n * n, 0),
            Unit::Hour => clock(h / n * n, 0, 0),
            _ => self.start_of_day(self.floor_date(wall.date(), granularity)?),
        }
    }

    /// The start of the bucket after the one that starts at `start`.
    ///
    /// `start` should be a bucket start ([`Calendar::floor`]); any other instant gives the start
    /// of the bucket after the one holding it.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] past the supported range of years.
    pub fn next(&self, start: Timestamp, granularity: Granularity) -> Result<Timestamp> {
        let start = self.floor(start, granularity)?;
        match granularity.unit() {
            Unit::Second | Unit::Minute | Unit::Hour => self.next_on_clock(start, granularity),
            _ => {
                let date = self.tz.to_offset(start).to_datetime(start).date();
                self.start_of_day(self.next_date(date, granularity)?)
            }
        }
    }

    /// The bucket starts of `granularity` that writes at instants in `[from, to]` produce, in
    /// order: `floor(from)`, then each next start up to `to`. Empty when `from > to`.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the timeline would hold more than [`MAX_TIMELINE`] buckets,
    /// or past the supported range of years.
    pub fn timeline(
        &self,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
    ) -> Result<Vec<Timestamp>> {
        let mut out = Vec::new();
        if from > to {
            return Ok(out);
        }
        let mut start = self.floor(from, granularity)?;
        while start <= to {
            if out.len() == MAX_TIMELINE {
                return Err(Error::InvalidInput(format!(
                    "the range {from} to {to} holds more than {MAX_TIMELINE} buckets of {granularity}"
                )));
            }
            out.push(start);
            start = self.next(start, granularity)?;
        }
        Ok(out)
    }

    /// Interprets a wall-clock time, keeping `offset` if it is valid for it, else compatibly.
    fn resolve_prefer(&self, dt: DateTime, offset: Offset) -> Result<Timestamp> {
        if let Ok(ts) = offset.to_timestamp(dt)
            && self.tz.to_offset(ts) == offset
        {
            return Ok(ts);
        }
        self.tz
            .to_ambiguous_timestamp(dt)
            .compatible()
            .map_err(|e| time_error("resolving a bucket start", e))
    }

    /// The earliest instant of a date (the first valid one where midnight is skipped).
    fn start_of_day(&self, date: Date) -> Result<Timestamp> {
        let midnight = date.to_datetime(Time::midnight());
        let ambiguous = self.tz.to_ambiguous_timestamp(midnight);
        // Compatible: a gap moves forward to its end, a fold takes the earlier instant.
        ambiguous
            .compatible()
            .map_err(|e| time_error("start of day", e))
    }

    /// The first day of the year's first full week.
    fn first_week_start(&self, year: i16) -> Result<Date> {
        let jan1 = Date::new(year, 1, 1).map_err(|e| time_error("week", e))?;
        let ahead = (self.week_start.to_monday_zero_offset()
            - jan1.weekday().to_monday_zero_offset())
        .rem_euclid(7);
        jan1.checked_add(i64::from(ahead).days())
            .map_err(|e| time_error("week", e))
    }

    /// The first date of the bucket of a `d`-or-longer granularity holding `date`.
    fn floor_date(&self, date: Date, granularity: Granularity) -> Result<Date> {
        let n = i64::from(granularity.count());
        let year = date.year();
        let jan1 = Date::new(year, 1, 1).map_err(|e| time_error("floor", e))?;
        let add_days = |d: Date, days: i64| {
            d.checked_add(days.days())
                .map_err(|e| time_error("floor", e))
        };
        match granularity.unit() {
            Unit::Day => add_days(jan1, (i64::from(date.day_of_year()) - 1) / n * n),
            Unit::Week => {
                let first = self.first_week_start(year)?;
                if date < first {
                    return Ok(jan1);
                }
                let weeks = i64::from((date - first).get_days()) / 7;
                add_days(first, weeks / n * n * 7)
            }
            Unit::Month | Unit::Quarter => {
                let months = if granularity.unit() == Unit::Quarter {
                    3 * n
                } else {
                    n
                };
                let month0 = (i64::from(date.month()) - 1) / months * months;
                Date::new(year, (month0 + 1) as i8, 1).map_err(|e| time_error("floor", e))
            }
            Unit::Year => {
                let y = i64::from(year).div_euclid(n) * n;
                let y = i16::try_from(y).map_err(|e| time_error("floor", e))?;
                Date::new(y, 1, 1).map_err(|e| time_error("floor", e))
            }
            Unit::Second | Unit::Minute | Unit::Hour => Ok(date),
        }
    }

    /// The first date of the bucket after the one starting on `date` (a bucket's first date).
    fn next_date(&self, date: Date, granularity: Granularity) -> Result<Date> {
        let n = i64::from(granularity.count());
        let year = date.year();
        let next_jan1 = || Date::new(year + 1, 1, 1).map_err(|e| time_error("next", e));
        let clip = |d: Date| -> Result<Date> { if d.year() > year { next_jan1() } else { Ok(d) } };
        let add_days = |days: i64| {
            date.checked_add(days.days())
                .map_err(|e| time_error("next", e))
        };
        match granularity.unit() {
            Unit::Day => clip(add_days(n)?),
            Unit::Week => {
                let first = self.first_week_start(year)?;
                if date < first {
                    Ok(first)
                } else {
                    clip(add_days(7 * n)?)
                }
            }
            Unit::Month | Unit::Quarter => {
                let months = if granularity.unit() == Unit::Quarter {
                    3 * n
                } else {
                    n
                };
                let month0 = i64::from(date.month()) - 1 + months;
                if month0 >= 12 {
                    next_jan1()
                } else {
                    Date::new(year, (month0 + 1) as i8, 1).map_err(|e| time_error("next", e))
                }
            }
            Unit::Year => {
                let y = i16::try_from(i64::from(year) + n).map_err(|e| time_error("next", e))?;
                Date::new(y, 1, 1).map_err(|e| time_error("next", e))
            }
            Unit::Second | Unit::Minute | Unit::Hour => add_days(1),
        }
    }

    /// The next bucket start for `s`, `m` and `h`: walk the events after `start` (the next
    /// wall-clock boundary at the current offset, or the zone's next transition, whichever
    /// comes first) and take the first event whose floor lies after `start`. The floor cannot
    /// change between events: the offset is constant there and the wall clock stays inside
    /// one floored step.
    fn next_on_clock(&self, start: Timestamp, granularity: Granularity) -> Result<Timestamp> {
        let mut t = start;
        loop {
            let offset = self.tz.to_offset(t);
            let boundary = offset
                .to_timestamp(self.next_wall_boundary(offset.to_datetime(t), granularity)?)
                .map_err(|e| time_error("next", e))?;
            let event = match self.tz.following(t).next() {
                Some(transition)
                    if transition.timestamp() > t && transition.timestamp() < boundary =>
                {
                    transition.timestamp()
                }
                _ => boundary,
            };
            let floored = self.floor(event, granularity)?;
            if floored > start {
                return Ok(floored);
            }
            t = event;
        }
    }

    /// The wall-clock time at which the floored step holding `wall` ends: `n` units after its
    /// floor, clipped to the end of the anchor period (minute, hour or day).
    fn next_wall_boundary(&self, wall: DateTime, granularity: Granularity) -> Result<DateTime> {
        let n = i64::from(granularity.count());
        let date = wall.date();
        let (h, m, s) = (
            i64::from(wall.hour()),
            i64::from(wall.minute()),
            i64::from(wall.second()),
        );
        // Seconds since midnight of the boundary; 86,400 means the next midnight.
        let seconds = match granularity.unit() {
            Unit::Second => h * 3600 + m * 60 + (s / n * n + n).min(60),
            Unit::Minute => h * 3600 + (m / n * n + n).min(60) * 60,
            // Only s, m and h reach here; longer units step dates (see `next_date`).
            _ => (h / n * n + n).min(24) * 3600,
        };
        date.to_datetime(Time::midnight())
            .checked_add(seconds.seconds())
            .map_err(|e| time_error("next", e))
    }
}

#[cfg(test)]
mod tests;
