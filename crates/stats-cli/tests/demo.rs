//! `stats demo` end to end: the binary run as a process in a fresh directory with the default
//! store (a SQLite file `stats.db` created there), and on Redis.

mod common;

use std::collections::BTreeMap;

use common::Env;
use serde_json::Value;

/// The rows of the demo's day table: day (`YYYY-MM-DD`) to (orders, revenue text, items), and
/// the total row.
/// One row of the day table: orders, revenue as printed, items.
type Row = (i64, String, i64);

fn day_rows(out: &str) -> (BTreeMap<String, Row>, Row) {
    let mut days = BTreeMap::new();
    let mut total = None;
    for line in out.lines() {
        let cells: Vec<&str> = line
            .split(['│', '┆'])
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .collect();
        if cells.len() != 4 {
            continue;
        }
        let (Ok(orders), Ok(items)) = (cells[1].parse::<i64>(), cells[3].parse::<i64>()) else {
            continue;
        };
        let row = (orders, cells[2].to_owned(), items);
        if cells[0] == "total" {
            total = Some(row);
        } else {
            let day = cells[0].split(' ').next().unwrap_or_default().to_owned();
            days.insert(day, row);
        }
    }
    (days, total.expect("a total row"))
}

/// The number after `Wrote ` in the demo's report.
fn wrote(out: &str) -> i64 {
    let rest = out
        .split("Wrote ")
        .nth(1)
        .expect("the report says what it wrote");
    rest.split(' ').next().unwrap().parse().expect("a count")
}

fn demo_writes_what_it_shows(env: &Env) {
    let run = env.run(&["demo"]);
    let out = run.ok().to_owned();
    assert!(
        out.contains("shop.orders: orders per hour, last 7 days") && out.contains('█'),
        "a chart: {out}"
    );
    assert!(out.contains("shop.orders per day"), "a table: {out}");
    assert!(out.contains(" values shop.orders -g 1d"), "{out}");
    assert!(out.contains("serve"), "{out}");
    let (days, total) = day_rows(&out);
    assert!((7..=9).contains(&days.len()), "{days:?}");
    assert_eq!(
        total.0,
        wrote(&out),
        "the table holds what was written: {out}"
    );
    assert!(
        (1_500..6_000).contains(&(total.0 / 7)),
        "a few thousand orders a day: {total:?}"
    );
    let (sum_orders, sum_items): (i64, i64) = days
        .values()
        .fold((0, 0), |(o, i), row| (o + row.0, i + row.2));
    assert_eq!((sum_orders, sum_items), (total.0, total.2));

    // What `stats values` reads afterwards is what the demo printed, day by day.
    let doc = env.values_json("shop.orders", &["-g", "1d", "--from", "-9d"]);
    let at = doc["at"].as_array().unwrap();
    let values = doc["values"].as_array().unwrap();
    let mut seen = 0;
    for (at, v) in at.iter().zip(values) {
        let Some(count) = v.get("count").and_then(Value::as_i64) else {
            continue;
        };
        let day = &at.as_str().unwrap()[..10];
        let row = days
            .get(day)
            .unwrap_or_else(|| panic!("{day} is not in the table: {out}"));
        let revenue = v["revenue"].as_f64().unwrap();
        assert_eq!(
            (count, format!("{revenue:.2}"), v["items"].as_i64().unwrap()),
            row.clone(),
            "{day}"
        );
        let channels: i64 = v["channel"]
            .as_object()
            .unwrap()
            .values()
            .map(|n| n.as_i64().unwrap())
            .sum();
        assert_eq!(channels, count, "one channel per order on {day}");
        seen += count;
    }
    assert_eq!(seen, total.0);

    let stock = env.values_json("shop.inventory", &["-g", "1h", "--from", "-3h"]);
    assert!(
        stock["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v.get("units").and_then(Value::as_i64).is_some()),
        "{stock}"
    );
    let counter = env.run(&["counter", "get", "shop", "orders_total"]);
    assert_eq!(counter.ok().trim(), total.0.to_string());

    // Again: another set of orders, and it says so.
    let run = env.run(&["demo", "--days", "2", "--seed", "7"]);
    let again = run.ok();
    assert!(again.contains("already held"), "{again}");
    assert!(again.contains("last 2 days"), "{again}");
    let counter = env.run(&["counter", "get", "shop", "orders_total"]);
    assert_eq!(
        counter.ok().trim(),
        (total.0 + wrote(again)).to_string(),
        "the counter adds up both runs"
    );
}

#[test]
fn default_store_in_a_fresh_directory() {
    let env = Env::default_store();
    assert!(!env.path("stats.db").exists());
    demo_writes_what_it_shows(&env);
    assert!(
        env.path("stats.db").exists(),
        "the default store is ./stats.db"
    );
}

#[test]
fn redis() {
    demo_writes_what_it_shows(&Env::redis());
}

#[test]
fn bad_options() {
    let env = Env::default_store();
    env.run(&["demo", "--days", "0"]).fails(2, "--days");
    env.run(&["demo", "--days", "400"]).fails(2, "--days");
    env.run(&["--granularities", "1m,1d", "demo"])
        .fails(2, "include 1h and 1d");
    let doc = env.values_json("shop.orders", &["-g", "1d", "--from", "-9d"]);
    assert!(
        doc["values"]
            .as_array()
            .unwrap()
            .iter()
            .all(|v| v == &serde_json::json!({})),
        "nothing written: {doc}"
    );
}
