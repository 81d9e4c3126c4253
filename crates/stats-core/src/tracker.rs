//! The tracker: one call counts an event into every configured time bucket.

use std::sync::Arc;

use jiff::Timestamp;
use jiff::civil::Weekday;

use crate::batch::{Batch, Fields, Op};
use crate::error::{Error, NameKind, Result};
use crate::granularity::Granularity;
use crate::key::Key;
use crate::name;
use crate::number::Number;
use crate::series::Series;
use crate::store::MetricStore;
use crate::time::Calendar;
use crate::values::{Value, Values};

/// The metric key of the system index (see [`Config::system_index`]). Reserved: the tracker
/// refuses it as a caller's key ([`Error::InvalidName`]), so that no user metric can mix its
/// data with the index.
pub const SYSTEM_KEY: &str = "__system__key__";

/// Checks a caller's metric key: the segment rule, and not the reserved [`SYSTEM_KEY`].
/// Checks a metric key as the tracker does: the segment rule, and not [`SYSTEM_KEY`].
///
/// ```
/// use stats_core::tracker::{SYSTEM_KEY, check_user_key};
///
/// assert!(check_user_key("orders").is_ok());
/// assert!(check_user_key(SYSTEM_KEY).is_err());
/// assert!(check_user_key("a::b").is_err());
/// ```
///
/// # Errors
/// [`Error::InvalidName`] naming the key.
pub fn check_user_key(key: &str) -> Result<()> {
    name::check_segment(NameKind::Metric, key)?;
    if key == SYSTEM_KEY {
        return Err(Error::invalid_name(
            NameKind::Metric,
            key,
            "is reserved for the tracker's system index",
        ));
    }
    Ok(())
}

/// What a [`Tracker`] writes: which granularities, in which time zone, under which names.
///
/// A plain value, no global state. Defaults: granularities `1m 1h 1d 1w 1mo 1q 1y`, UTC, weeks
/// starting on Monday, no system index, no metric prefix.
///
/// ```
/// use stats::{Config, Weekday};
///
/// let config = Config::new()
///     .granularities(["15m", "1h", "1d", "1w"])? // every event goes to these four buckets
///     .time_zone("America/New_York")? // days start at midnight New York time
///     .week_start(Weekday::Sunday)
///     .metric_prefix("shop", ":")?; // "orders" is stored as "shop:orders"
/// assert_eq!(config.granularity_list().len(), 4);
/// assert_eq!(config.metric("orders"), "shop:orders");
///
/// // Mistakes are refused when the configuration is built, not at the first write.
/// assert!(Config::new().granularities(["1x"]).is_err());
/// assert!(Config::new().time_zone("Mars/Olympus_Mons").is_err());
/// # Ok::<(), stats::Error>(())
/// ```
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

    /// The IANA time zone (`"Europe/Berlin"`, `"UTC"`) whose wall clock buckets follow: a `1d`
    /// bucket starts at midnight there, a `1h` bucket on the full hour (the bundled zone
    /// database is used where the system has none).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown zone.
    pub fn time_zone(mut self, zone: &str) -> Result<Self> {
        self.calendar = Calendar::named(zone, self.calendar.week_start())?;
        Ok(self)
    }

    /// The first day of a week for `w` granularities (default Monday).
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

    /// A metric prefix joined to every metric key with `separator`
    /// (`metric_prefix("shop", ":")` stores `orders` as `shop:orders`), so that several
    /// applications can share one store. Not to be confused with a store's key prefix (the
    /// Redis `key_prefix`, the SQL `table_prefix`), which the store puts in front of
    /// everything it writes.
    ///
    /// ```
    /// use stats_core::tracker::Config;
    /// let config = Config::new().metric_prefix("shop", ":")?;
    /// assert_eq!(config.metric("orders"), "shop:orders");
    /// assert!(Config::new().metric_prefix("shop", "::").is_err()); // '::' separates key parts
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`] (kind [`NameKind::MetricPrefix`]) naming the prefix and separator
    /// when the prefix breaks the segment rule or the joined form would (a separator with `::`,
    /// a prefix with `{`, ...).
    pub fn metric_prefix(mut self, prefix: &str, separator: &str) -> Result<Self> {
        let joined = format!("{prefix}{separator}");
        let as_prefix = |e: Error| match e {
            Error::InvalidName { reason, .. } => Error::invalid_name(
                NameKind::MetricPrefix,
                &joined,
                format!("(prefix {prefix:?} with separator {separator:?}) {reason}"),
            ),
            other => other,
        };
        name::check_segment(NameKind::MetricPrefix, prefix).map_err(as_prefix)?;
        name::check_segment(NameKind::MetricPrefix, &format!("{joined}x")).map_err(as_prefix)?;
        self.prefix = Some(joined);
        Ok(self)
    }

    /// Whether the system index is on (see [`Config::system_index`]).
    pub fn system_index_enabled(&self) -> bool {
        self.system_index
    }

    /// Whether metric keys get a prefix (see [`Config::metric_prefix`]).
    pub fn has_metric_prefix(&self) -> bool {
        self.prefix.is_some()
    }

    /// The configured granularities, in the order given.
    pub fn granularity_list(&self) -> &[Granularity] {
        &self.granularities
    }

    /// The zone and week start.
    pub fn calendar(&self) -> &Calendar {
        &self.calendar
    }

    /// The stored metric key for a caller's key (with the metric prefix, if any).
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

/// Counts events into time buckets on any [`MetricStore`], and reads them back.
///
/// An event is a metric key (`"orders"`) and a map of numbers ([`Values`]). [`Tracker::track`]
/// adds the numbers into the bucket of every configured granularity that holds the event's
/// time, in one write to the store; [`Tracker::values`] reads one granularity's buckets over a
/// range of time, both ends included, as a [`Series`]; [`Tracker::total`] sums one number over
/// such a range. A tracker can be cloned and shared between tasks.
///
/// ```
/// use std::sync::Arc;
///
/// use stats::atomics::AtomicsStore;
/// use stats::{Blanks, Config, Number, Timestamp, Tracker, values};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// // Hour and day buckets only (no minute buckets to accumulate in memory).
/// let config = Config::new().granularities(["1h", "1d"])?;
/// let tracker = Tracker::new(Arc::new(AtomicsStore::new()), config);
///
/// let at: Timestamp = "2024-05-01T09:12:00Z".parse()?;
/// tracker.track("orders", at, &values!({"count": 1, "amount": 12.5})).await?;
/// tracker.track("orders", at, &values!({"count": 2, "amount": 20.0})).await?;
/// tracker.track_max("orders", at, &values!({"largest": 20.0})).await?;
///
/// let day = tracker.values("orders", at, at, "1d".parse()?, Blanks::Keep).await?;
/// assert_eq!(day.values, vec![values!({"count": 3, "amount": 32.5, "largest": 20.0})]);
///
/// // From 08:00 to 10:00, both included: three hourly buckets, one of them with data.
/// let (from, to) = ("2024-05-01T08:00:00Z".parse()?, "2024-05-01T10:00:00Z".parse()?);
/// let hours = tracker.values("orders", from, to, "1h".parse()?, Blanks::Keep).await?;
/// assert_eq!(hours.len(), 3);
/// let count = tracker.total("orders", from, to, "1h".parse()?, "count").await?;
/// assert_eq!(count, Some(Number::Int(3)));
/// # Ok(()) }
/// ```
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
        check_user_key(key)?;
        let fields = Fields::from_values(values)?;
        let metric = self.config.metric(key);
        let keys = self.bucket_keys(&metric, at)?;
        // Everything that can fail is done: from here on nothing fails, so a failure above
        // added nothing to the batch.
        let system = if self.config.system_index {
            let system_metric = Key::status(&self.config.metric(SYSTEM_KEY))?;
            let system_keys: Vec<Key> = keys
                .iter()
                .filter_map(|k| Some(system_metric.with_bucket(k.granularity()?, k.start()?)))
                .collect();
            let counted = Fields::from_pairs([
                ("count".to_owned(), Number::Int(1)),
                (format!("keys.{}", escape_field(&metric)), Number::Int(1)),
            ])?;
            Some((system_keys, counted))
        } else {
            None
        };
        batch.push_flat(op, keys, fields);
        if let Some((keys, counted)) = system {
            batch.push_flat(Op::Inc, keys, counted);
        }
        Ok(())
    }

    /// Counts many events in one store batch (one round trip for a network store): each
    /// `(key, at, values)` is incremented as [`Tracker::track`] would.
    ///
    /// ```
    /// # use std::sync::Arc;
    /// # use stats::{atomics::AtomicsStore, Config, Number, Timestamp, Tracker, values};
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let tracker = Tracker::new(Arc::new(AtomicsStore::new()), Config::new().granularities(["1d"])?);
    /// let at: Timestamp = "2024-05-01T12:00:00Z".parse()?;
    /// let (a, b) = (values!({"count": 1}), values!({"count": 1, "ms": 12.5}));
    /// tracker.track_many([("logins", at, &a), ("orders", at, &b), ("orders", at, &b)]).await?;
    /// let orders = tracker.total("orders", at, at, "1d".parse()?, "count").await?;
    /// assert_eq!(orders, Some(Number::Int(2)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// As [`Tracker::track`]; a bad event refuses the whole call before anything is written.
    pub async fn track_many<'v, K: AsRef<str>>(
        &self,
        events: impl IntoIterator<Item = (K, Timestamp, &'v Values)>,
    ) -> Result<()> {
        let mut batch = Batch::new();
        for (key, at, values) in events {
            self.add_to_batch(&mut batch, Op::Inc, key.as_ref(), at, values)?;
        }
        self.apply(&batch).await
    }

    /// Applies a batch built with [`Tracker::add_to_batch`] (or by hand) to the tracker's
    /// store, without importing the store traits.
    ///
    /// # Errors
    /// As [`MetricStore::apply`].
    pub async fn apply(&self, batch: &Batch) -> Result<()> {
        self.store.apply(batch).await
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

    /// [`Tracker::track`] at the current time ([`Timestamp::now`]).
    ///
    /// # Errors
    /// As [`Tracker::track`].
    pub async fn track_now(&self, key: &str, values: &Values) -> Result<()> {
        self.track(key, Timestamp::now(), values).await
    }

    /// [`Tracker::assert`] at the current time.
    ///
    /// # Errors
    /// As [`Tracker::track`].
    pub async fn assert_now(&self, key: &str, values: &Values) -> Result<()> {
        self.assert(key, Timestamp::now(), values).await
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

    /// The series of `key` at `granularity` from `from` to `to`, **both inclusive**: every
    /// bucket that a write at an instant from `from` to `to` would land in, read with one range
    /// read. `from` and `to` need not be bucket starts: the first bucket is the one holding
    /// `from`, the last the one holding `to` (so `from == to` gives one bucket). Blank buckets are
    /// empty documents, or left out with [`Blanks::Skip`]. The granularity need not be
    /// configured (unconfigured ones read blank).
    ///
    /// The bucket starts are instants ([`Series::at`]); [`Series::at_zoned`] shows them in the
    /// tracker's zone (`tracker.config().calendar().time_zone()`).
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key, [`Error::InvalidInput`] when `from` is after `to`
    /// or the range has more than [`MAX_TIMELINE`](crate::time::MAX_TIMELINE) buckets, and the
    /// store's errors.
    pub async fn values(
        &self,
        key: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        blanks: Blanks,
    ) -> Result<Series> {
        check_user_key(key)?;
        self.read_series(&self.config.metric(key), from, to, granularity, blanks)
            .await
    }

    /// The sum of the leaf at `path` over the buckets [`Tracker::values`] would return, `from`
    /// and `to` both inclusive (`None` when no bucket has it): "how many orders this week" in
    /// one call.
    ///
    /// # Errors
    /// As [`Tracker::values`]; [`Error::InvalidName`] for a bad path; [`Error::Overflow`] when
    /// the integer sum leaves the `i64` range.
    pub async fn total(
        &self,
        key: &str,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
        path: &str,
    ) -> Result<Option<Number>> {
        self.values(key, from, to, granularity, Blanks::Skip)
            .await?
            .total(path)
    }

    /// Removes every bucket and the status of `key`, in every granularity; returns how many
    /// documents were removed. The system index keeps its counts.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a bad key, and the store's errors.
    pub async fn remove(&self, key: &str) -> Result<u64> {
        check_user_key(key)?;
        self.store.remove_metric(&self.config.metric(key)).await
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
        if from > to {
            return Err(Error::InvalidInput(format!(
                "the range starts after it ends: from {from} to {to}"
            )));
        }
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
        Series::new(at, values)
    }

    /// Records the latest status values of `key`, kept apart from its time series. A beam sets
    /// the leaves it names (older leaves it does not name stay) and the time.
    ///
    /// # Errors
    /// As [`Tracker::track`].
    pub async fn beam(&self, key: &str, at: Timestamp, values: &Values) -> Result<()> {
        check_user_key(key)?;
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
        check_user_key(key)?;
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

/// A metric key as a field name of the system index: `%`, `.` and a leading `$` escaped (and
/// a key that is just `*`, the series wildcard).
pub fn escape_field(metric: &str) -> String {
    let mut out = String::with_capacity(metric.len());
    for (i, c) in metric.char_indices() {
        match c {
            '%' => out.push_str("%25"),
            '.' => out.push_str("%2E"),
            '$' if i == 0 => out.push_str("%24"),
            // A field may not be the series wildcard.
            '*' if metric == "*" => out.push_str("%2A"),
            c => out.push(c),
        }
    }
    out
}

/// The inverse of [`escape_field`]: decodes `%25`, `%2E`, `%24` and `%2A`; any other `%` stays.
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
            Some("%2A") => Some('*'),
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
            "orders", "a.b", "$x", "a$b", "100%", "%2E", "%252E.$", "é.é", "*", "a*",
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
        assert!(Config::new().metric_prefix("app", "::").is_err());
        let err = Config::new().metric_prefix("{app}", ":").unwrap_err();
        assert!(
            matches!(
                &err,
                Error::InvalidName {
                    kind: NameKind::MetricPrefix,
                    name,
                    ..
                } if name == "{app}:"
            ),
            "{err}"
        );
        assert!(err.to_string().contains("metric prefix"), "{err}");
        let c = Config::new().metric_prefix("app", ":").unwrap();
        assert_eq!(c.metric("orders"), "app:orders");
        let c = Config::new()
            .granularities(["15m", "1d"])
            .unwrap()
            .week_start(Weekday::Sunday);
        assert_eq!(c.granularity_list().len(), 2);
        assert_eq!(c.calendar().week_start(), Weekday::Sunday);
    }
}
