//! The Prometheus text exposition, parsed back with `prometheus-parse`, equals the recorded
//! values. That parser splits labels on `,` and `=` and does not unescape, so label values
//! with quotes, backslashes and newlines are checked by hand on the raw text.

use std::collections::HashMap;

use metrics::{counter, describe_counter, describe_histogram, gauge, histogram};
use prometheus_parse::{Scrape, Value};
use stats_metrics::{CONTENT_TYPE, StatsRecorder};

fn parse(text: &str) -> Scrape {
    Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).expect("the exposition parses")
}

/// Samples by metric name and sorted `k=v` labels.
fn index(scrape: &Scrape) -> HashMap<(String, String), Value> {
    scrape
        .samples
        .iter()
        .map(|s| {
            let mut labels: Vec<String> =
                s.labels.iter().map(|(k, v)| format!("{k}={v}")).collect();
            labels.sort();
            ((s.metric.clone(), labels.join(",")), s.value.clone())
        })
        .collect()
}

#[test]
fn the_exposition_parses_back_to_the_recorded_values() {
    let recorder = StatsRecorder::builder()
        .manual()
        .buckets(&[0.25, 1.0, 2.5])
        .unwrap()
        .build()
        .unwrap();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe_counter!("http_requests", "Requests served, by route and status.");
        describe_histogram!("latency", "Time to answer.\nIn seconds, \\ included.");
        counter!("http_requests", "route" => "/a", "status" => "200").increment(41);
        counter!("http_requests", "status" => "200", "route" => "/a").increment(1);
        counter!("http_requests", "route" => "/b", "status" => "500").increment(3);
        counter!("big").absolute(u64::MAX);
        gauge!("temperature", "room" => "lab").set(-12.75);
        gauge!("temperature", "room" => "hall").set(21.5);
        gauge!("zero").set(-0.0);
        gauge!("huge").set(9007199254740993.0);
        for v in [0.25, 0.5, 1.0, 2.75, 0.0] {
            histogram!("latency", "op" => "read").record(v);
        }
        histogram!("latency", "op" => "write").record(10.0);
        // Metric names in their Prometheus form.
        counter!("dotted.name").increment(2);
    });
    let text = handle.render();
    assert!(CONTENT_TYPE.starts_with("text/plain; version=0.0.4"));
    let scrape = parse(&text);
    let samples = index(&scrape);
    let get = |metric: &str, labels: &str| {
        samples
            .get(&(metric.to_owned(), labels.to_owned()))
            .cloned()
            .unwrap_or_else(|| panic!("no {metric}{{{labels}}} in\n{text}"))
    };

    assert_eq!(
        get("http_requests", "route=/a,status=200"),
        Value::Counter(42.0)
    );
    assert_eq!(
        get("http_requests", "route=/b,status=500"),
        Value::Counter(3.0)
    );
    assert_eq!(get("dotted_name", ""), Value::Counter(2.0));
    assert_eq!(get("temperature", "room=lab"), Value::Gauge(-12.75));
    assert_eq!(get("temperature", "room=hall"), Value::Gauge(21.5));
    assert_eq!(get("zero", ""), Value::Gauge(0.0));
    // Counters are u64: the exact total is in the text (the parser reads f64).
    assert!(text.contains(&format!("\nbig {}\n", u64::MAX)), "{text}");
    assert!(text.contains("\nhuge 9007199254740992.0\n"), "{text}");
    match get("latency", "op=read") {
        Value::Histogram(buckets) => {
            let pairs: Vec<(f64, f64)> = buckets.iter().map(|b| (b.less_than, b.count)).collect();
            assert_eq!(
                pairs,
                [(0.25, 2.0), (1.0, 4.0), (2.5, 4.0), (f64::INFINITY, 5.0)]
            );
        }
        other => panic!("latency is {other:?}"),
    }
    match get("latency", "op=write") {
        Value::Histogram(buckets) => {
            let counts: Vec<f64> = buckets.iter().map(|b| b.count).collect();
            assert_eq!(counts, [0.0, 0.0, 0.0, 1.0]);
        }
        other => panic!("latency is {other:?}"),
    }
    assert_eq!(get("latency_sum", "op=read"), Value::Untyped(4.5));
    assert_eq!(get("latency_count", "op=read"), Value::Untyped(5.0));
    assert_eq!(get("latency_sum", "op=write"), Value::Untyped(10.0));
    for reason in ["name", "labels", "kind", "exposition", "value", "write"] {
        assert_eq!(
            get("stats_metrics_refused_total", &format!("reason={reason}")),
            Value::Counter(0.0)
        );
    }
    assert_eq!(
        get("stats_metrics_overflowed_total", ""),
        Value::Counter(0.0)
    );
    // One sample per series: nothing else was exposed.
    assert_eq!(scrape.samples.len(), 21, "{:?}", scrape.samples);

    // HELP text from describe_*!, escaped.
    assert_eq!(
        scrape.docs.get("http_requests").map(String::as_str),
        Some("Requests served, by route and status.")
    );
    assert!(
        text.contains("# HELP latency Time to answer.\\nIn seconds, \\\\ included.\n# TYPE latency histogram\n"),
        "{text}"
    );
    assert!(text.contains("# TYPE http_requests counter\n"), "{text}");
    assert!(text.contains("# TYPE temperature gauge\n"), "{text}");
}

#[test]
fn hostile_label_values_are_escaped() {
    let recorder = StatsRecorder::builder().manual().build().unwrap();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        counter!("c", "v" => "say \"hi\"").increment(1);
        counter!("c", "v" => "back\\slash").increment(2);
        counter!("c", "v" => "two\nlines").increment(3);
        counter!("c", "v" => "a,b=c}").increment(4);
        counter!("c", "v" => "\\n is not a newline").increment(5);
        counter!("c", "v" => "ünï 🙂").increment(6);
        gauge!("g", "label.name" => "1", "5xx" => "x").set(1.0);
    });
    let text = handle.render();
    // Every sample is one line; values escaped as the format says (`\\`, `\"`, `\n`).
    for line in [
        "c{v=\"say \\\"hi\\\"\"} 1\n",
        "c{v=\"back\\\\slash\"} 2\n",
        "c{v=\"two\\nlines\"} 3\n",
        "c{v=\"a,b=c}\"} 4\n",
        "c{v=\"\\\\n is not a newline\"} 5\n",
        "c{v=\"ünï 🙂\"} 6\n",
        "g{_5xx=\"x\",label_name=\"1\"} 1.0\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    // Unescaping the text gives back the values exactly (a small reader of the format).
    let values: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| l.strip_prefix("c{v=\""))
        .map(|rest| {
            let (escaped, count) = rest.rsplit_once("\"} ").unwrap();
            let mut value = String::new();
            let mut chars = escaped.chars();
            while let Some(c) = chars.next() {
                if c == '\\' {
                    match chars.next() {
                        Some('n') => value.push('\n'),
                        Some('\\') => value.push('\\'),
                        Some('"') => value.push('"'),
                        other => panic!("bad escape {other:?} in {escaped}"),
                    }
                } else {
                    value.push(c);
                }
            }
            (value, count.parse().unwrap())
        })
        .collect();
    let mut values = values;
    values.sort_by_key(|(_, n)| *n);
    assert_eq!(
        values,
        [
            ("say \"hi\"".to_owned(), 1),
            ("back\\slash".to_owned(), 2),
            ("two\nlines".to_owned(), 3),
            ("a,b=c}".to_owned(), 4),
            ("\\n is not a newline".to_owned(), 5),
            ("ünï 🙂".to_owned(), 6),
        ]
    );
    // prometheus-parse reads the other lines; its sample pattern ends the labels at the
    // first `}`, so it skips the (valid) line whose value holds one: the reader above covers it.
    let scrape = parse(&text);
    let parsed: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| s.metric == "c")
        .map(|s| match s.value {
            Value::Counter(n) => n,
            ref other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(parsed.len(), 5, "{parsed:?}");
    assert!(!parsed.contains(&4.0));
}
