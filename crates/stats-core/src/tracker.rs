//! The tracker: one call counts an event into every configured time bucket.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Weekday;

use crate::batch::{Batch, Op};
use crate::error::{Error, NameKind, Result};
use crate::granularity::Granularity;
use crate::key::Key;
use crate::name;
use crate::number::Number;
use crate::series::Series;
use crate::store::MetricStore;
use crate::time::Calendar;
use crate::values::{Value, Values};

/// The metric key of the system index (see [`Config::system_index`]).
pub const SYSTEM_KEY: &str = "__system__key__";

/// Tracker configuration: a plain value, no global state.
///
/// Defaults: granularities `1m 1h 1d 1w 1mo 1q 1y`, UTC, weeks from Monday, no system index,
/// no metric prefix.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    granularities: Vec<Granularity>,
    calendar: Calendar,
    system_index: bool,
    prefix: Option<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            granularities: Granularity::defaults(),
            calendar: Calendar::default(),
            system_index: false,
            prefix: None,
        }
    }
}

impl Config {
    /// The default configuration.
    pub fn new() -> Self {
        Self::default()
    }

    /// The granularities every write goes to, from strings such as `"15m"`.
    ///
    /// # Errors
    /// [`Error::InvalidGranularity`] for a bad string; [`Error::InvalidInput`] for an empty
    /// list or one granularity given twice.
    pub fn granularities<S: AsRef<str>>(
        mut self,
        granularities: impl IntoIterator<Item = S>,
    ) -> Result<Self> {
        let parsed = granularities
            .into_iter()
            .map(|g| g.as_ref().parse())
            .collect::<Result<Vec<Granularity>>>()?;
        if parsed.is_empty() {
            return Err(Error::InvalidInput(
                "a tracker needs at least one granularity".into(),
            ));
        }
        for (i, g) in parsed.iter().enumerate() {
            if parsed[..i].contains(g) {
                return Err(Error::InvalidInput(format!(
                    "granularity {g} is given twice"
                )));
            }
        }
        self.granularities = parsed;
        Ok(self)
    }

    /// The IANA time zone buckets are floored in (the bundled database is used where the
    /// system has none).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown zone.
    pub fn time_zone(mut self, zone: &str) -> Result<Self> {
        self.calendar = Calendar::named(zone, self.calendar.week_start())?;
        Ok(self)
    }

    /// The first day of a week for `w` granularities.
    pub fn week_start(mut self, day: Weekday) -> Self {
        self.calendar = Calendar::new(self.calendar.time_zone().clone(), day);
        self
    }

    /// Whether every write also counts, per bucket, one write and one write per metric key
    /// under the metric [`SYSTEM_KEY`] (with the prefix, if any): `{count: n, keys: {<metric>:
    /// n}}`. Metric keys are stored as field names with `%`, `.` and a leading `$`
    /// percent-escaped (see [`escape_field`]); one whose escaped form is longer than a field
    /// name may be is refused with [`Error::InvalidName`] while the index is on.
    pub fn system_index(mut self, on: bool) -> Self {
        self.system_index = on;
        self
    }

    /// A prefix joined to every metric key with `separator` (`prefix("shop", ":")` stores
    /// `orders` as `shop:orders`), so several applications can share one store.
    ///
    /// # Errors
    /// [`Error::InvalidName`] when the joined form breaks the segment rule (a separator of
    /// `::`, a prefix with `{`, ...).
    pub fn prefix(mut self, prefix: &str, separator: &str) -> Result<Self> {
        let joined = format!("{prefix}{separator}");
        name::check_segment(NameKind::Metric, &format!("{joined}x"))?;
        name::check_segment(NameKind::Metric, prefix)?;
        self.prefix = Some(joined);
        Ok(self)
    }

    /// The configured granularities, in the order given.
    pub fn granularity_list(&self) -> &[Granularity] {
        &self.granularities
    }

    /// The zone and week start.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The stored metric key for a caller's key (with the prefix, if any).
    pub fn metric(&self, key: &str) -> String {
        match &self.prefix {
            Some(p) => format!("{p}{key}"),
            None => key.to_owned(),
        }
    }
}

/// Whether [`Tracker::values`] keeps buckets without data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Blanks {
    /// Every bucket of the range, with an empty document where nothing was written.
    #[default]
    Keep,
    /// Only buckets with data.
    Skip,
}

/// The latest status values of a metric, as [`Tracker::beam`] left them.
#[derive(Debug, Clone, PartialEq)]
pub struct Status {
    /// When the latest beam said the values were true.
    pub at: Timestamp,
    /// The values.
    pub values: Values,
}

/// Tracks events into time buckets on any [`MetricStore`].
///
/// The `stats` crate's docs and README show it at work on the in-process store; every store's
/// tests run the tracker checks of the conformance suite (`tracker_tests!`).
#[derive(Debug, Clone)]
pub struct Tracker {
    store: Arc<dyn MetricStore>,
    config: Config,
}

impl Tracker {
    /// A tracker writing to `store`.
    pub fn new(store: Arc<dyn MetricStore>, config: Config) -> Self {
        Tracker { store, config }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn MetricStore> {
        &self.store
    }

    /// Adds to `batch` the writes of one event: `op` of `values` in the bucket of every
    /// configured granularity holding `at`, plus the system index when it is on. This is what
    /// [`Tracker::track`] and friends send, exposed so that callers can put many events into
    /// one batch.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key or value name (nothing is added);
    /// [`Error::InvalidInput`] for an instant outside the supported years.
    pub fn add_to_batch(
        &self,
        batch: &mut Batch,
        op: Op,
        key: &str,
        at: Timestamp,
        values: &Values,
    ) -> Result<()> {
        let metric = self.config.metric(key);
        let keys = self.bucket_keys(&metric, at)?;
        let system = if self.config.system_index {
            let system_metric = Key::status(&self.config.metric(SYSTEM_KEY))?;
            let system_keys: Vec<Key> = keys
                .iter()
                .filter_map(|k| Some(system_metric.with_bucket(k.granularity()?, k.start()?)))
                .collect();
            let mut counted = Values::new();
            counted.insert("count", 1)?;
            counted.insert("keys", Values::new().with(escape_field(&metric), 1)?)?;
            Some((system_keys, counted))
        } else {
            None
        };
        // Build into a scratch batch first so that a failure adds nothing.
        let mut scratch = Batch::new();
        scratch.push(op, keys, values)?;
        if let Some((keys, counted)) = system {
            scratch.inc(keys, &counted)?;
        }
        for write in scratch.writes() {
            batch.push_flat(write.op(), write.keys().to_vec(), write.fields().into())?;
        }
        Ok(())
    }

    fn bucket_keys(&self, metric: &str, at: Timestamp) -> Result<Vec<Key>> {
        let calendar = &self.config.calendar;
        let mut keys = Vec::with_capacity(self.config.granularities.len());
        for &g in &self.config.granularities {
            let start = calendar.floor(at, g)?.as_second();
            keys.push(match keys.first() {
                Some(first) => Key::with_bucket(first, g, start),
                None => Key::bucket(metric, g, start)?,
            });
        }
        Ok(keys)
    }

    async fn write(&self, op: Op, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        let mut batch = Batch::new();
        self.add_to_batch(&mut batch, op, key, at, values)?;
        self.store.apply(&batch).await
    }

    /// Increments `values` in every configured granularity's bucket holding `at`, in one
    /// store batch.
    ///
    /// # Errors
    /// As [`Tracker::add_to_batch`] and [`MetricStore::apply`].
    pub async fn track(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Inc, key, at, values).await
    }

    /// Sets `values` in every configured granularity's bucket holding `at` (other leaves of
    /// those buckets stay).
    ///
    /// # Errors
    /// As [`Tracker::track`].
    pub async fn assert(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Set, key, at, values).await
    }

    /// Keeps, per bucket and leaf, the largest value seen.
    ///
    /// # Errors
    /// As [`Tracker::track`]; [`Error::Unsupported`] on a store without max/min.
    pub async fn track_max(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Max, key, at, values).await
    }

    /// Keeps, per bucket and leaf, the smallest value seen.
    ///
    /// # Errors
    /// As [`Tracker::track_max`].
    pub async fn track_min(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        self.write(Op::Min, key, at, values).await
    }

    /// The series of `key` at `granularity` for the buckets that writes in `[from, to]` produce,
    /// read with one range read. Blank buckets are empty documents, or left out with
    /// [`Blanks::Skip`]. The granularity need not be configured (unconfigured ones read blank).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key, [`Error::InvalidInput`] for a range of more than
    /// [`MAX_TIMELINE`](crate::time::MAX_TIMELINE) buckets, and the store's errors.
    pub async fn values(
        &self,
        key: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        self.read_series(&self.config.metric(key), from, to, granularity, blanks)
            .await
    }

    /// The system index's series (see [`Config::system_index`]).
    ///
    /// # Errors
    /// As [`Tracker::values`].
    pub async fn system_values(
        &self,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        self.read_series(
            &self.config.metric(SYSTEM_KEY),
            from,
            to,
            granularity,
            blanks,
        )
        .await
    }

    async fn read_series(
        &self,
        metric: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        name::check_segment(NameKind::Metric, metric)?;
        let at = self.config.calendar.timeline(from, to, granularity)?;
        let starts: Vec<i64> = at.iter().map(|t| t.as_second()).collect();
        let docs = self.store.range(metric, granularity, &starts).await?;
        let (at, values) = match blanks {
            Blanks::Keep => (at, docs),
            Blanks::Skip => at
                .into_iter()
                .zip(docs)
                .filter(|(_, d)| !d.is_empty())
                .unzip(),
        };
        Ok(Series::new(at, values))
    }

    /// Records the latest status values of `key`, kept apart from its time series. A beam sets
    /// the leaves it names (older leaves it does not name stay) and the time.
    ///
    /// # Errors
    /// As [`Tracker::track`].
    pub async fn beam(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        let status = Key::status(&self.config.metric(key))?;
        let mut doc = Values::new();
        doc.insert("at", at.as_second())?;
        doc.insert("data", values.clone())?;
        let mut batch = Batch::new();
        batch.set([status], &doc)?;
        self.store.apply(&batch).await
    }

    /// The status values of `key`, or `None` if it was never beamed.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key, and the store's errors.
    pub async fn scan(&self, key: &str) -> Result<Option<Status>> {
        let status = Key::status(&self.config.metric(key))?;
        let mut doc = self.store.read(&[status]).await?.pop().unwrap_or_default();
        let Some(Number::Int(at)) = doc.number_at("at") else {
            return Ok(None);
        };
        let at = Timestamp::from_second(at).map_err(|e| Error::InvalidValue {
            path: Some("at".into()),
            reason: format!("stored status time is out of range: {e}"),
        })?;
        let values = match doc.remove("data") {
            Some(Value::Map(m)) => m,
            _ => Values::new(),
        };
        Ok(Some(Status { at, values }))
    }
}

/// A metric key as a field name of the system index: `%`, `.` and a leading `$` escaped.
pub fn escape_field(metric: &str) -> String {
    let mut out = String::with_capacity(metric.len());
    for (i, c) in metric.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' if i == 0 => out.push_str("%24"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape_field`]: decodes `%25`, `%2E` and `%24`; any other `%` stays.
pub fn unescape_field(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut rest = field;
    while let Some(i) = rest.find('%') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        let decoded = match tail.get(..3) {
            Some("%25") => Some('%'),
            Some("%2E") => Some('.'),
            Some("%24") => Some('$'),
            _ => None,
        };
        match decoded {
            Some(c) => {
                out.push(c);
                rest = &tail[3..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_round_trips() {
        for metric in [
            "orders", "a.b", "$x", "a$b", "100%", "%2E", "%252E.$", "é.é",
        ] {
            let escaped = escape_field(metric);
            name::check_field(&escaped).unwrap();
            assert_eq!(unescape_field(&escaped), metric, "{metric}");
        }
        assert_eq!(escape_field("a.b"), "a%2Eb");
    }

    #[test]
    fn config_validation() {
        assert!(Config::new().granularities(Vec::<&str>::new()).is_err());
        assert!(Config::new().granularities(["1h", "1h"]).is_err());
        assert!(matches!(
            Config::new().granularities(["1x"]),
            Err(Error::InvalidGranularity { .. })
        ));
        assert!(Config::new().time_zone("Nowhere/Land").is_err());
        assert!(Config::new().prefix("app", "::").is_err());
        assert!(Config::new().prefix("{app}", ":").is_err());
        let c = Config::new().prefix("app", ":").unwrap();
        assert_eq!(c.metric("orders"), "app:orders");
        let c = Config::new()
            .granularities(["15m", "1d"])
            .unwrap()
            .week_start(Weekday::Sunday);
        assert_eq!(c.granularity_list().len(), 2);
        assert_eq!(c.calendar().week_start(), Weekday::Sunday);
    }
}
