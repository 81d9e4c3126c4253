//! One series (a metric name with one label set): its names in the store and in the
//! exposition, and the atomics the macros' handles update.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use metrics::{CounterFn, GaugeFn, HistogramFn, Key};
use parking_lot::Mutex;
use stats_core::name::{self, check_field};
use stats_core::tracker::check_user_key;

use crate::bounds::Bounds;

/// The label every series past a metric's cardinality limit is folded into.
pub const OVERFLOW_LABEL: &str = "stats_overflow";

/// How one series is named.
#[derive(Debug)]
pub(crate) struct Meta {
    /// The metric name as the macros gave it (the store's metric key).
    pub(crate) name: Arc<str>,
    /// The labels: names in their Prometheus form, values exactly; sorted by name, empty
    /// values dropped.
    pub(crate) labels: Vec<(String, String)>,
    /// The path prefix of this series' leaves in the metric's document (`""` without
    /// labels, `method=GET.route=/a.` with them), or why the history refuses it.
    pub(crate) history: Result<String, String>,
}

/// Why a series or a value is not recorded somewhere; the reasons counted by
/// [`Refusals`](crate::Refusals).
///
/// ```
/// use stats_metrics::Reason;
///
/// // The `reason` label of `stats_metrics_refused_total` in the exposition.
/// let labels: Vec<&str> = Reason::ALL.iter().map(|r| r.as_str()).collect();
/// assert_eq!(labels, ["name", "labels", "kind", "exposition", "value", "write"]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Reason {
    /// The metric name or a label breaks the store's name rule: the series is exposed to
    /// Prometheus but not written to the store.
    Name,
    /// Two labels of one series have the same name (after the Prometheus form): the series is
    /// recorded nowhere.
    Labels,
    /// The metric name is already used by another kind (a counter and a gauge of one name):
    /// the later registration is recorded nowhere.
    Kind,
    /// Two metric names have the same Prometheus form (`http.requests` and `http_requests`):
    /// the later one is written to the store but left out of the exposition.
    Exposition,
    /// A value the store cannot hold (a gauge set to NaN, an infinite observation, a
    /// counter delta beyond `i64::MAX`): that value is not written to the store.
    Value,
    /// The buffer refused a drain's write (a shut-down buffer, a check of the write itself):
    /// that drain's values of the metric are not written. A full buffer
    /// (`Overflow::Reject`) is not a refusal: the values wait for the next drain. What the
    /// store itself refuses later (an `i64` sum overflowing in a year bucket) is reported by the
    /// buffer ([`Coalescing::on_refused`](stats_buffer::Coalescing::on_refused)).
    Write,
}

impl Reason {
    /// Every reason, in the order of the exposition.
    pub const ALL: [Reason; 6] = [
        Reason::Name,
        Reason::Labels,
        Reason::Kind,
        Reason::Exposition,
        Reason::Value,
        Reason::Write,
    ];

    /// The reason as the `reason` label of `stats_metrics_refused_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Name => "name",
            Reason::Labels => "labels",
            Reason::Kind => "kind",
            Reason::Exposition => "exposition",
            Reason::Value => "value",
            Reason::Write => "write",
        }
    }
}

/// A metric or label name in the Prometheus form `[a-zA-Z_:][a-zA-Z0-9_:]*` (labels without
/// `:`): every other character becomes `_`, and a leading digit gets a `_` before it.
///
/// ```
/// use stats_metrics::prometheus_name;
///
/// assert_eq!(prometheus_name("http.requests", true), "http_requests");
/// assert_eq!(prometheus_name("a:b", true), "a:b");
/// assert_eq!(prometheus_name("a:b", false), "a_b");
/// assert_eq!(prometheus_name("5xx", false), "_5xx");
/// ```
pub fn prometheus_name(name: &str, metric: bool) -> String {
    let mut out = String::with_capacity(name.len() + 1);
    for (i, c) in name.chars().enumerate() {
        if i == 0 && c.is_ascii_digit() {
            out.push('_');
        }
        let ok = c.is_ascii_alphanumeric() || c == '_' || (metric && c == ':');
        out.push(if ok { c } else { '_' });
    }
    if out.is_empty() {
        out.push('_');
    }
    out
}

impl Meta {
    /// Names the series of `key`; `leaves` are the longest leaf names its kind writes (to
    /// check the whole path). `Err` when it can be recorded nowhere.
    pub(crate) fn new(key: &Key, leaves: &[&str]) -> Result<Meta, (Reason, String)> {
        let name: Arc<str> = key.name().into();
        let mut labels: Vec<(String, String)> = Vec::new();
        for label in key.labels() {
            if label.value().is_empty() {
                // Prometheus: an empty label value is the same as no label.
                continue;
            }
            labels.push((
                prometheus_name(label.key(), false),
                label.value().to_owned(),
            ));
        }
        labels.sort();
        if leaves.iter().any(|l| l.starts_with("le."))
            && labels.iter().any(|(label, _)| label == "le")
        {
            return Err((
                Reason::Labels,
                format!("histogram {name:?}: the label \"le\" is the bucket bound's"),
            ));
        }
        for pair in labels.windows(2) {
            if pair[0].0 == pair[1].0 {
                return Err((
                    Reason::Labels,
                    format!(
                        "metric {name:?}: two labels named {:?} (label names are compared in their Prometheus form)",
                        pair[0].0
                    ),
                ));
            }
        }
        let history = Self::history(&name, &labels, leaves);
        Ok(Meta {
            name,
            labels,
            history,
        })
    }

    /// The key of this series as the registry holds it: the metric name and the labels in
    /// their canonical form (Prometheus-form names, sorted, no empty values).
    pub(crate) fn key(&self) -> Key {
        let labels: Vec<metrics::Label> = self
            .labels
            .iter()
            .map(|(k, v)| metrics::Label::new(k.clone(), v.clone()))
            .collect();
        Key::from_parts(self.name.to_string(), labels)
    }

    /// The series every label set past the cardinality limit of `name` is folded into.
    pub(crate) fn overflow(name: Arc<str>, leaves: &[&str]) -> Meta {
        let labels = vec![(OVERFLOW_LABEL.to_owned(), "true".to_owned())];
        let history = Self::history(&name, &labels, leaves);
        Meta {
            name,
            labels,
            history,
        }
    }

    fn history(name: &str, labels: &[(String, String)], leaves: &[&str]) -> Result<String, String> {
        check_user_key(name).map_err(|e| e.to_string())?;
        let mut prefix = String::new();
        for (label, value) in labels {
            let field = format!("{label}={value}");
            check_field(&field).map_err(|e| format!("metric {name:?}, label {label}: {e}"))?;
            prefix.push_str(&field);
            prefix.push('.');
        }
        for leaf in leaves {
            name::check_path(&format!("{prefix}{leaf}"))
                .map_err(|e| format!("metric {name:?}: {e}"))?;
        }
        Ok(prefix)
    }
}

/// A value alone on its 64-byte cache line (no false sharing with its neighbours).
#[derive(Debug, Default)]
#[repr(align(64))]
pub(crate) struct Padded<T>(pub(crate) T);

impl<T> std::ops::Deref for Padded<T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// A counter: the running total (what Prometheus reads); the drain writes the difference from
/// what it wrote last.
#[derive(Debug)]
pub(crate) struct CounterSeries {
    /// On a cache line of its own: the hot path writes only this.
    pub(crate) total: Padded<AtomicU64>,
    pub(crate) meta: Meta,
    /// The total the history has (only the drain writes it, under the drain lock).
    pub(crate) drained: AtomicU64,
}

impl CounterSeries {
    pub(crate) fn new(meta: Meta) -> Self {
        CounterSeries {
            meta,
            total: Padded(AtomicU64::new(0)),
            drained: AtomicU64::new(0),
        }
    }
}

impl CounterFn for CounterSeries {
    #[inline]
    fn increment(&self, value: u64) {
        self.total.fetch_add(value, Ordering::Relaxed);
    }

    #[inline]
    fn absolute(&self, value: u64) {
        self.total.fetch_max(value, Ordering::Relaxed);
    }
}

/// A gauge: its value, and the highest and lowest values it held since the last drain.
#[derive(Debug)]
pub(crate) struct GaugeSeries {
    pub(crate) meta: Meta,
    pub(crate) value: AtomicU64,
    pub(crate) max: AtomicU64,
    pub(crate) min: AtomicU64,
    /// Changed since the last drain.
    pub(crate) touched: AtomicBool,
    /// The drain's bucket epoch when this gauge was last written (0: never).
    pub(crate) written: AtomicU64,
}

impl GaugeSeries {
    pub(crate) fn new(meta: Meta) -> Self {
        GaugeSeries {
            meta,
            value: AtomicU64::new(0f64.to_bits()),
            // NaN: no value held yet (the first value replaces it).
            max: AtomicU64::new(f64::NAN.to_bits()),
            min: AtomicU64::new(f64::NAN.to_bits()),
            touched: AtomicBool::new(false),
            written: AtomicU64::new(0),
        }
    }

    #[inline]
    fn held(&self, value: f64) {
        fetch_float(&self.max, |m| value > m || m.is_nan(), value);
        fetch_float(&self.min, |m| value < m || m.is_nan(), value);
        if !self.touched.load(Ordering::Relaxed) {
            self.touched.store(true, Ordering::Relaxed);
        }
    }

    #[inline]
    fn add(&self, delta: f64) {
        let mut current = self.value.load(Ordering::Relaxed);
        loop {
            let next = (f64::from_bits(current) + delta).to_bits();
            match self.value.compare_exchange_weak(
                current,
                next,
                Ordering::Relaxed,
                Ordering::Relaxed,
            ) {
                Ok(_) => return self.held(f64::from_bits(next)),
                Err(seen) => current = seen,
            }
        }
    }
}

impl GaugeFn for GaugeSeries {
    #[inline]
    fn increment(&self, value: f64) {
        self.add(value);
    }

    #[inline]
    fn decrement(&self, value: f64) {
        self.add(-value);
    }

    #[inline]
    fn set(&self, value: f64) {
        self.value.store(value.to_bits(), Ordering::Relaxed);
        self.held(value);
    }
}

/// Replaces the float in `cell` with `value` while `replace(current)` holds.
#[inline]
pub(crate) fn fetch_float(cell: &AtomicU64, replace: impl Fn(f64) -> bool, value: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    while replace(f64::from_bits(current)) {
        match cell.compare_exchange_weak(
            current,
            value.to_bits(),
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// Adds `value` to the float in `cell`.
#[inline]
pub(crate) fn add_float(cell: &AtomicU64, value: f64) {
    let mut current = cell.load(Ordering::Relaxed);
    loop {
        let next = (f64::from_bits(current) + value).to_bits();
        match cell.compare_exchange_weak(current, next, Ordering::Relaxed, Ordering::Relaxed) {
            Ok(_) => return,
            Err(seen) => current = seen,
        }
    }
}

/// A histogram: a count per bucket (not cumulative; running totals), the sum, minimum and
/// maximum of the observations since the last drain.
#[derive(Debug)]
pub(crate) struct HistogramSeries {
    pub(crate) meta: Meta,
    pub(crate) bounds: Bounds,
    /// One per bound, then the +Inf bucket.
    pub(crate) buckets: Box<[AtomicU64]>,
    /// Sum of the observations since the last drain (f64 bits).
    pub(crate) sum: AtomicU64,
    /// Sum of every observation (f64 bits), for the exposition.
    pub(crate) total_sum: AtomicU64,
    pub(crate) min: AtomicU64,
    pub(crate) max: AtomicU64,
    /// The buckets' totals the drain wrote.
    pub(crate) drained: Mutex<Vec<u64>>,
    /// Observations refused (not finite), counted for the exposition's refusals.
    pub(crate) refused: AtomicU64,
}

impl HistogramSeries {
    pub(crate) fn new(meta: Meta, bounds: Bounds) -> Self {
        let n = bounds.values.len() + 1;
        HistogramSeries {
            meta,
            buckets: (0..n).map(|_| AtomicU64::new(0)).collect(),
            sum: AtomicU64::new(0f64.to_bits()),
            total_sum: AtomicU64::new(0f64.to_bits()),
            min: AtomicU64::new(f64::INFINITY.to_bits()),
            max: AtomicU64::new(f64::NEG_INFINITY.to_bits()),
            drained: Mutex::new(vec![0; n]),
            refused: AtomicU64::new(0),
            bounds,
        }
    }

    #[inline]
    fn observe(&self, value: f64, times: u64) {
        if !value.is_finite() {
            self.refused.fetch_add(times, Ordering::Relaxed);
            return;
        }
        let value = value + 0.0;
        self.buckets[self.bounds.index(value)].fetch_add(times, Ordering::Relaxed);
        let added = if times == 1 {
            value
        } else {
            value * times as f64
        };
        add_float(&self.sum, added);
        add_float(&self.total_sum, added);
        fetch_float(&self.min, |m| value < m, value);
        fetch_float(&self.max, |m| value > m, value);
    }
}

impl HistogramFn for HistogramSeries {
    #[inline]
    fn record(&self, value: f64) {
        self.observe(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        if count > 0 {
            self.observe(value, count as u64);
        }
    }
}

#[cfg(test)]
mod tests {
    use metrics::Label;

    use super::*;

    fn key(name: &str, labels: &[(&str, &str)]) -> Key {
        Key::from_parts(
            name.to_owned(),
            labels
                .iter()
                .map(|(k, v)| Label::new(k.to_string(), v.to_string()))
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn labels_map_to_paths() {
        let m = Meta::new(
            &key("http", &[("route", "/a"), ("method", "GET")]),
            &["count"],
        )
        .unwrap();
        assert_eq!(m.history.as_deref(), Ok("method=GET.route=/a."));
        let m = Meta::new(
            &key("http", &[("http.method", "GET"), ("e", "")]),
            &["count"],
        )
        .unwrap();
        assert_eq!(m.history.as_deref(), Ok("http_method=GET."));
        let m = Meta::new(&key("http", &[]), &["count"]).unwrap();
        assert_eq!(m.history.as_deref(), Ok(""));
    }

    #[test]
    fn refusals() {
        // A dot in a value: exposed, not stored.
        let m = Meta::new(&key("http", &[("host", "a.example")]), &["count"]).unwrap();
        assert!(m.history.unwrap_err().contains("a.example"));
        let m = Meta::new(&key("a::b", &[]), &["count"]).unwrap();
        assert!(m.history.unwrap_err().contains("a::b"));
        let m = Meta::new(&key("h", &[("v", "x\ny")]), &["count"]).unwrap();
        assert!(m.history.unwrap_err().contains("control"));
        let long = "x".repeat(300);
        let m = Meta::new(&key("h", &[("v", &long)]), &["count"]).unwrap();
        assert!(m.history.unwrap_err().contains("too long"));
        // Two labels of one name: nowhere.
        let (reason, message) =
            Meta::new(&key("h", &[("a.b", "1"), ("a_b", "2")]), &["count"]).unwrap_err();
        assert_eq!(reason, Reason::Labels);
        assert!(message.contains("a_b"), "{message}");
    }

    #[test]
    fn keys_are_canonical() {
        let spelled = [("route", "/a"), ("http.method", "GET"), ("empty", "")];
        let a = Meta::new(&key("h", &spelled), &["count"]).unwrap().key();
        let b = Meta::new(
            &key("h", &[("http_method", "GET"), ("route", "/a")]),
            &["count"],
        )
        .unwrap()
        .key();
        assert_eq!(a, b);
        assert_eq!(a, key("h", &[("http_method", "GET"), ("route", "/a")]));
    }

    #[test]
    fn names() {
        assert_eq!(prometheus_name("", true), "_");
        assert_eq!(prometheus_name("ümlaut", false), "_mlaut");
        assert_eq!(prometheus_name("a-b c", true), "a_b_c");
    }
}
