//! Labels and names at the edges of the store's name rule: what is stored exactly, what is
//! refused (counted, named, written nowhere in the store), what is still exposed; label order;
//! the cardinality limit and its overflow series.

mod common;

use std::collections::BTreeSet;

use common::{N, assert_doc, atomics_store, buffered, stored_bucket, t};
use metrics::{counter, gauge, histogram};
use stats_core::Values;
use stats_metrics::{Reason, StatsRecorder};

use N::{F, I};

/// The value of `stats_metrics_refused_total{reason="<reason>"}` in `text`.
fn refused_total(text: &str, reason: Reason) -> u64 {
    let prefix = format!(
        "stats_metrics_refused_total{{reason=\"{}\"}} ",
        reason.as_str()
    );
    let line = text
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {prefix} in\n{text}"));
    line.parse().unwrap()
}

fn paths(doc: &Values) -> BTreeSet<String> {
    doc.flatten().into_iter().map(|(p, _)| p).collect()
}

#[tokio::test]
async fn hostile_labels_and_names() {
    let store = atomics_store();
    let tracker = buffered(&store);
    let recorder = StatsRecorder::builder()
        .history(tracker.clone())
        .manual()
        .build()
        .unwrap();
    let handle = recorder.handle();
    let at = t("2025-06-01T12:00:00Z");

    let fits = format!("v={}", "x".repeat(198));
    let too_long = "x".repeat(199);
    // Two-byte characters: 2 + 99 * 2 = 200 bytes fit, 202 do not.
    let fits_unicode = "é".repeat(99);
    let too_long_unicode = "é".repeat(100);
    let stored_values: Vec<String> = vec![
        "$set".into(),
        "*".into(),
        "=".into(),
        "a=b".into(),
        "say \"hi\" \\ back".into(),
        "ünï 🙂 日本".into(),
        "x".repeat(198),
        fits_unicode.clone(),
        "{}".into(),
        " ".into(),
    ];
    assert_eq!(fits.len(), 200);
    metrics::with_local_recorder(&recorder, || {
        for (i, value) in stored_values.iter().enumerate() {
            counter!("hostile", "v" => value.clone()).increment(i as u64 + 1);
        }
        // Refused from the store by the name rule, still exposed.
        for value in [
            "a.b",
            "line\nbreak",
            "bell\u{7}",
            "tab\there",
            too_long.as_str(),
            too_long_unicode.as_str(),
        ] {
            counter!("hostile", "v" => value.to_owned()).increment(1000);
        }
        // An empty value is no label.
        counter!("hostile", "v" => "").increment(5);
        counter!("hostile").increment(6);
        // Label names in their Prometheus form; order does not matter.
        counter!("named", "http.method" => "GET", "route" => "/x").increment(2);
        counter!("named", "route" => "/x", "http.method" => "GET").increment(3);
        counter!("named", "route" => "/x", "http_method" => "GET").increment(4);
        counter!("named", "$weird name" => "1").increment(1);
        // Two labels of one Prometheus name: nowhere.
        counter!("named", "a.b" => "1", "a_b" => "2").increment(100);
        gauge!("g_collide", "x-y" => "1", "x y" => "2").set(1.0);
        // Metric names the store refuses: exposed, not stored.
        counter!("bad::name").increment(7);
        counter!("bad{name}").increment(8);
        // One name, two kinds: the second kind is recorded nowhere.
        counter!("dual").increment(1);
        gauge!("dual").set(99.0);
        histogram!("dual").record(1.0);
    });
    handle.drain(at).await.unwrap();
    handle.flush().await.unwrap();

    let refusals = handle.refusals();
    // Series refused by the name rule: six hostile values, two metric names.
    assert_eq!(refusals.count(Reason::Name), 8, "{refusals:?}");
    assert_eq!(refusals.count(Reason::Labels), 2, "{refusals:?}");
    assert_eq!(refusals.count(Reason::Kind), 2, "{refusals:?}");
    assert_eq!(refusals.count(Reason::Value), 0, "{refusals:?}");
    assert_eq!(refusals.count(Reason::Write), 0, "{refusals:?}");
    assert_eq!(refusals.count(Reason::Exposition), 0, "{refusals:?}");
    assert_eq!(refusals.overflowed, 0);
    // The last of each names the offender.
    let last = |r: Reason| refusals.last.get(&r).cloned().unwrap_or_default();
    assert!(
        last(Reason::Name).contains("bad{name}"),
        "{}",
        last(Reason::Name)
    );
    assert!(
        last(Reason::Labels).contains("g_collide") && last(Reason::Labels).contains("x_y"),
        "{}",
        last(Reason::Labels)
    );
    assert!(
        last(Reason::Kind).contains("dual") && last(Reason::Kind).contains("histogram"),
        "{}",
        last(Reason::Kind)
    );
    // The exposition's own counts match.
    let text = handle.render();
    for reason in Reason::ALL {
        assert_eq!(
            refused_total(&text, reason),
            refusals.count(reason),
            "{reason:?}\n{text}"
        );
    }
    assert!(
        text.contains("\nstats_metrics_overflowed_total 0\n"),
        "{text}"
    );

    // The store has exactly the accepted series.
    let mut expected: Vec<(String, N)> = stored_values
        .iter()
        .enumerate()
        .map(|(i, v)| (format!("v={v}.count"), I(i as i64 + 1)))
        .collect();
    expected.push(("count".into(), I(11)));
    let expected_ref: Vec<(&str, N)> = expected.iter().map(|(p, n)| (p.as_str(), *n)).collect();
    let doc = stored_bucket(&store, "hostile", at, "1m").await;
    assert_doc(&doc, &expected_ref, "hostile");
    assert!(paths(&doc).contains(&format!("{fits}.count")));
    assert!(paths(&doc).contains(&format!("v={fits_unicode}.count")));
    let named = stored_bucket(&store, "named", at, "1d").await;
    assert_doc(
        &named,
        &[
            ("http_method=GET.route=/x.count", I(9)),
            ("_weird_name=1.count", I(1)),
        ],
        "named",
    );
    let dual = stored_bucket(&store, "dual", at, "1h").await;
    assert_doc(&dual, &[("count", I(1))], "dual");
    assert!(
        stored_bucket(&store, "g_collide", at, "1m")
            .await
            .is_empty()
    );

    // Refused from the store, still exposed (values escaped); collisions and second kinds
    // nowhere.
    for line in [
        "hostile{v=\"a.b\"} 1000\n",
        "hostile{v=\"line\\nbreak\"} 1000\n",
        "hostile{v=\"bell\u{7}\"} 1000\n",
        "hostile{v=\"say \\\"hi\\\" \\\\ back\"} 5\n",
        "hostile 11\n",
        "bad::name 7\n",
        "bad_name_ 8\n",
        "named{http_method=\"GET\",route=\"/x\"} 9\n",
        "named{_weird_name=\"1\"} 1\n",
        "dual 1\n",
        "# TYPE dual counter\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("g_collide"), "{text}");
    assert!(!text.contains(" 100\n"), "{text}");
    assert!(
        !text.contains("dual_bucket") && !text.contains(" 99"),
        "{text}"
    );
    assert!(handle.shutdown().await.is_empty());
}

#[tokio::test]
async fn the_cardinality_limit_folds_further_label_sets_into_one_overflow_series() {
    let store = atomics_store();
    let tracker = buffered(&store);
    let recorder = StatsRecorder::builder()
        .history(tracker.clone())
        .manual()
        .max_label_sets(3)
        .unwrap()
        .buckets(&[1.0])
        .unwrap()
        .build()
        .unwrap();
    let handle = recorder.handle();
    let at = t("2025-06-01T12:00:00Z");
    metrics::with_local_recorder(&recorder, || {
        for i in 0..10u64 {
            counter!("card", "id" => i.to_string()).increment(i + 1);
        }
        // A label set under the limit keeps its own series.
        counter!("card", "id" => "0").increment(1000);
        // The limit is per metric name.
        for i in 0..3u64 {
            gauge!("other", "id" => i.to_string()).set(i as f64 + 0.5);
        }
        for i in 0..5u64 {
            histogram!("hcard", "id" => i.to_string()).record(0.25 * i as f64);
        }
    });
    handle.drain(at).await.unwrap();
    handle.flush().await.unwrap();
    let refusals = handle.refusals();
    // Seven counter label sets and two histogram label sets past the limit.
    assert_eq!(refusals.overflowed, 9, "{refusals:?}");
    assert_eq!(refusals.total(), 0, "{refusals:?}");
    let doc = stored_bucket(&store, "card", at, "1m").await;
    assert_doc(
        &doc,
        &[
            ("id=0.count", I(1001)),
            ("id=1.count", I(2)),
            ("id=2.count", I(3)),
            // 4 + 5 + ... + 10
            ("stats_overflow=true.count", I(49)),
        ],
        "card",
    );
    let doc = stored_bucket(&store, "other", at, "1m").await;
    assert_eq!(doc.flatten().len(), 9, "{doc:?}");
    let doc = stored_bucket(&store, "hcard", at, "1d").await;
    assert_eq!(
        doc.number_at("stats_overflow=true.sum").map(|n| n.as_f64()),
        Some(1.75),
        "{doc:?}"
    );
    assert_eq!(common::int_at(&doc, "stats_overflow=true.count"), Some(2));
    assert_eq!(common::int_at(&doc, "stats_overflow=true.le.+Inf"), Some(2));
    assert_eq!(common::int_at(&doc, "stats_overflow=true.le.1"), Some(2));
    assert_eq!(common::int_at(&doc, "stats_overflow=true.le.+Inf"), Some(2));
    assert_eq!(common::float_at(&doc, "id=2.max"), Some(0.5));
    let text = handle.render();
    for line in [
        "card{stats_overflow=\"true\"} 49\n",
        "card{id=\"0\"} 1001\n",
        "stats_metrics_overflowed_total 9\n",
        "hcard_count{stats_overflow=\"true\"} 2\n",
    ] {
        assert!(text.contains(line), "missing {line:?} in\n{text}");
    }
    assert!(!text.contains("card{id=\"3\"}"), "{text}");

    // More updates of an overflowed label set: the totals stay exact.
    metrics::with_local_recorder(&recorder, || {
        counter!("card", "id" => "9").increment(1);
    });
    handle.drain(at).await.unwrap();
    handle.flush().await.unwrap();
    let doc = stored_bucket(&store, "card", at, "1m").await;
    assert_eq!(common::int_at(&doc, "stats_overflow=true.count"), Some(50));
    let _ = F(0.0);
    assert!(handle.shutdown().await.is_empty());
}
