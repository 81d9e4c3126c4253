//! Prometheus text exposition (format 0.0.4) of the recorder's current values.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use crate::recorder::Shared;
use crate::series::{CounterSeries, GaugeSeries, HistogramSeries, Meta, Reason};

/// The content type of [`MetricsHandle::render`](crate::MetricsHandle::render)'s text, for an
/// HTTP response.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

enum Family {
    Counter(Vec<Arc<CounterSeries>>),
    Gauge(Vec<Arc<GaugeSeries>>),
    Histogram(Vec<Arc<HistogramSeries>>),
}

pub(crate) fn render(shared: &Shared) -> String {
    let mut families: BTreeMap<String, (Arc<str>, Family)> = BTreeMap::new();
    let exposed = shared.exposed_names();
    let mut family = |meta: &Meta, empty: fn() -> Family| -> Option<String> {
        let prom = exposed.get(&*meta.name)?.clone();
        families
            .entry(prom.clone())
            .or_insert_with(|| (meta.name.clone(), empty()));
        Some(prom)
    };
    let storage = shared.registry.storage();
    let counters = storage.counters();
    let gauges = storage.gauges();
    let histograms = storage.histograms();
    let mut placed: Vec<(String, usize, usize)> = Vec::new();
    for (i, s) in counters.iter().enumerate() {
        if let Some(p) = family(&s.meta, || Family::Counter(Vec::new())) {
            placed.push((p, 0, i));
        }
    }
    for (i, s) in gauges.iter().enumerate() {
        if let Some(p) = family(&s.meta, || Family::Gauge(Vec::new())) {
            placed.push((p, 1, i));
        }
    }
    for (i, s) in histograms.iter().enumerate() {
        if let Some(p) = family(&s.meta, || Family::Histogram(Vec::new())) {
            placed.push((p, 2, i));
        }
    }
    for (prom, kind, i) in placed {
        let (_, family) = families.get_mut(&prom).expect("placed above");
        match (family, kind) {
            (Family::Counter(v), 0) => v.push(counters[i].clone()),
            (Family::Gauge(v), 1) => v.push(gauges[i].clone()),
            (Family::Histogram(v), 2) => v.push(histograms[i].clone()),
            // A name has one kind (the recorder refuses a second); nothing to place.
            _ => {}
        }
    }

    let descriptions = shared.descriptions.lock().clone();
    let mut out = String::new();
    for (prom, (name, family)) in &mut families {
        if let Some(help) = descriptions.get(&**name) {
            let _ = writeln!(out, "# HELP {prom} {}", escape_help(help));
        }
        match family {
            Family::Counter(series) => {
                let _ = writeln!(out, "# TYPE {prom} counter");
                series.sort_by(|a, b| a.meta.labels.cmp(&b.meta.labels));
                for s in series.iter() {
                    let total = s.total.load(Ordering::Relaxed);
                    let _ = writeln!(out, "{prom}{} {total}", labels(&s.meta.labels, None));
                }
            }
            Family::Gauge(series) => {
                let _ = writeln!(out, "# TYPE {prom} gauge");
                series.sort_by(|a, b| a.meta.labels.cmp(&b.meta.labels));
                for s in series.iter() {
                    let value = f64::from_bits(s.value.load(Ordering::Relaxed));
                    let _ = writeln!(
                        out,
                        "{prom}{} {}",
                        labels(&s.meta.labels, None),
                        float(value)
                    );
                }
            }
            Family::Histogram(series) => {
                let _ = writeln!(out, "# TYPE {prom} histogram");
                series.sort_by(|a, b| a.meta.labels.cmp(&b.meta.labels));
                for s in series.iter() {
                    let mut cumulative = 0u64;
                    for (i, bucket) in s.buckets.iter().enumerate() {
                        cumulative += bucket.load(Ordering::Relaxed);
                        let le = match s.bounds.values.get(i) {
                            Some(b) => float(*b),
                            None => "+Inf".to_owned(),
                        };
                        let _ = writeln!(
                            out,
                            "{prom}_bucket{} {cumulative}",
                            labels(&s.meta.labels, Some(&le))
                        );
                    }
                    let sum = f64::from_bits(s.total_sum.load(Ordering::Relaxed));
                    let l = labels(&s.meta.labels, None);
                    let _ = writeln!(out, "{prom}_sum{l} {}", float(sum));
                    let _ = writeln!(out, "{prom}_count{l} {cumulative}");
                }
            }
        }
    }

    // The recorder's own counts.
    let refusals = shared.refusals();
    let _ = writeln!(
        out,
        "# HELP stats_metrics_refused_total Series or values the stats recorder did not record, by reason (see stats_metrics::Reason).\n# TYPE stats_metrics_refused_total counter"
    );
    for reason in Reason::ALL {
        let _ = writeln!(
            out,
            "stats_metrics_refused_total{{reason=\"{}\"}} {}",
            reason.as_str(),
            refusals.count(reason)
        );
    }
    let _ = writeln!(
        out,
        "# HELP stats_metrics_overflowed_total Registrations of label sets past a metric's cardinality limit, recorded in its stats_overflow=\"true\" series.\n# TYPE stats_metrics_overflowed_total counter\nstats_metrics_overflowed_total {}",
        refusals.overflowed
    );
    out
}

/// `{a="1",b="2"}` (with `le` last for histogram buckets), or nothing without labels.
fn labels(labels: &[(String, String)], le: Option<&str>) -> String {
    if labels.is_empty() && le.is_none() {
        return String::new();
    }
    let mut out = String::from("{");
    for (i, (name, value)) in labels.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{name}=\"{}\"", escape_value(value));
    }
    if let Some(le) = le {
        if !labels.is_empty() {
            out.push(',');
        }
        let _ = write!(out, "le=\"{le}\"");
    }
    out.push('}');
    out
}

/// A label value: `\`, `"` and newline escaped.
fn escape_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

/// A HELP text: `\` and newline escaped.
fn escape_help(text: &str) -> String {
    text.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus reads it: `NaN`, `+Inf`, `-Inf`, or the shortest round trip.
pub(crate) fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value:?}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes() {
        assert_eq!(escape_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("a\\b\nc\""), "a\\\\b\\nc\"");
        assert_eq!(float(1.0), "1.0");
        assert_eq!(float(0.005), "0.005");
        assert_eq!(float(-0.0), "-0.0");
        assert_eq!(float(1e300), "1e300");
        assert_eq!(float(f64::NEG_INFINITY), "-Inf");
        assert_eq!(
            labels(&[("a".into(), "x\"y".into())], Some("+Inf")),
            "{a=\"x\\\"y\",le=\"+Inf\"}"
        );
        assert_eq!(labels(&[], None), "");
        assert_eq!(labels(&[], Some("1.0")), "{le=\"1.0\"}");
    }
}
