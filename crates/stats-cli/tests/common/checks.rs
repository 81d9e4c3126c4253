//! The end-to-end checks every store must pass: the `stats` binary run as a process against
//! the store of an [`Env`]. `cli_sqlite.rs` and `cli_redis.rs` run each of them on a fresh
//! store (`checks!`).
#![allow(dead_code, unreachable_pub)]

use serde_json::{Value, json};

use crate::common::{Env, Run};

/// The instant most checks write at: a Thursday, 2026-01-15 10:20:30 UTC.
pub const T: &str = "2026-01-15T10:20:30Z";
/// [`T`] in unix seconds.
pub const T_UNIX: &str = "1768472430";

/// Generates one `#[test]` per check, each on a fresh store made by `$make`.
#[macro_export]
macro_rules! checks {
    ($make:expr; $($name:ident),+ $(,)?) => {
        $(
            #[test]
            fn $name() {
                let env = $make;
                $crate::checks::$name(&env);
            }
        )+
    };
}

/// `stats values KEY --from FROM --to TO -g G -f json` with extra global options, parsed.
pub fn series(env: &Env, globals: &[&str], key: &str, g: &str, from: &str, to: &str) -> Value {
    let mut args: Vec<&str> = globals.to_vec();
    args.extend([
        "values", key, "-g", g, "--from", from, "--to", to, "--format", "json",
    ]);
    let run = env.run(&args);
    serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
}

/// The values of the single 1h bucket holding [`T`] (UTC), `{}` when it is empty.
pub fn at_t(env: &Env, key: &str) -> Value {
    let doc = series(
        env,
        &[],
        key,
        "1h",
        "2026-01-15T10:00:00Z",
        "2026-01-15T10:59:59Z",
    );
    assert_eq!(doc["at"], json!(["2026-01-15T10:00:00+00:00"]), "{doc}");
    doc["values"][0].clone()
}

/// Asserts a refused input: exit code 2, `needle` on stderr, nothing on stdout.
#[track_caller]
pub fn refused(run: &Run, needle: &str) {
    run.fails(2, needle);
    assert!(run.stdout.is_empty(), "nothing printed: {run:#?}");
    assert!(
        run.stderr.starts_with("error: "),
        "a message on stderr: {run:#?}"
    );
}

/// The metric keys `stats metrics` lists around [`T`].
pub fn metric_keys(env: &Env) -> Value {
    let run = env.run(&[
        "metrics",
        "--from",
        "2026-01-01",
        "--to",
        "2026-02-01",
        "-f",
        "json",
    ]);
    let doc: Value = serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:#?}"));
    doc["metrics"].clone()
}

fn track(env: &Env, key: &str, values: &str, extra: &[&str]) -> Run {
    let mut args = vec!["track", key, "--values", values];
    args.extend_from_slice(extra);
    env.run(&args)
}

// ---- the commands -------------------------------------------------------------------------

/// `setup` (idempotent), `track` with every op, `assert`.
pub fn track_ops(env: &Env) {
    let out = env.run(&["setup"]).ok().to_owned();
    assert!(out.contains("set up"), "{out}");
    env.run(&["setup"]).ok();
    // inc is the default and adds; nested values; ints and floats.
    for _ in 0..2 {
        track(
            env,
            "orders",
            r#"{"count": 1, "amount": {"eur": 2.5}}"#,
            &["--at", T],
        )
        .ok();
    }
    track(
        env,
        "orders",
        r#"{"count": 3}"#,
        &["--at", T, "--op", "inc"],
    )
    .ok();
    assert_eq!(
        at_t(env, "orders"),
        json!({"count": 5, "amount": {"eur": 5.0}})
    );
    // set replaces, max and min keep the larger and smaller.
    track(env, "gauge", r#"{"v": 10}"#, &["--at", T, "--op", "set"]).ok();
    track(env, "gauge", r#"{"v": 7}"#, &["--at", T, "--op", "max"]).ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": 10}));
    track(env, "gauge", r#"{"v": 12}"#, &["--at", T, "--op", "max"]).ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": 12}));
    track(env, "gauge", r#"{"v": 20}"#, &["--at", T, "--op", "min"]).ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": 12}));
    track(env, "gauge", r#"{"v": -4}"#, &["--at", T, "--op", "min"]).ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": -4}));
    track(env, "gauge", r#"{"v": 1}"#, &["--at", T, "--op", "set"]).ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": 1}));
    // assert is a set.
    env.run(&["assert", "gauge", "--values", r#"{"v": 99}"#, "--at", T])
        .ok();
    assert_eq!(at_t(env, "gauge"), json!({"v": 99}));
    // A bad op is refused and writes nothing.
    refused(
        &track(env, "gauge", r#"{"v": 1}"#, &["--at", T, "--op", "add"]),
        "\"add\"",
    );
    assert_eq!(at_t(env, "gauge"), json!({"v": 99}));
    // Every configured granularity got the write: the day and the month.
    let day = series(
        env,
        &[],
        "orders",
        "1d",
        "2026-01-15",
        "2026-01-15T23:00:00Z",
    );
    assert_eq!(day["values"], json!([{"count": 5, "amount": {"eur": 5.0}}]));
    let month = series(env, &[], "orders", "1mo", "2026-01-01", "2026-01-31");
    assert_eq!(
        month["values"],
        json!([{"count": 5, "amount": {"eur": 5.0}}])
    );
}

/// `--at` as unix seconds, RFC 3339 (any offset), a date, a date-time in the zone, and `-2h`.
pub fn at_forms(env: &Env) {
    track(env, "unix", r#"{"n": 1}"#, &["--at", T_UNIX]).ok();
    assert_eq!(at_t(env, "unix"), json!({"n": 1}));
    track(
        env,
        "rfc",
        r#"{"n": 1}"#,
        &["--at", "2026-01-15T11:20:30+01:00"],
    )
    .ok();
    assert_eq!(at_t(env, "rfc"), json!({"n": 1}));
    track(
        env,
        "civil",
        r#"{"n": 1}"#,
        &["--at", "2026-01-15 10:20:30"],
    )
    .ok();
    assert_eq!(at_t(env, "civil"), json!({"n": 1}));
    // A date is midnight in the zone: with --tz, midnight there.
    track(env, "date", r#"{"n": 1}"#, &["--at", "2026-01-15"]).ok();
    let doc = series(
        env,
        &[],
        "date",
        "1h",
        "2026-01-14T23:00:00Z",
        "2026-01-15T00:00:00Z",
    );
    assert_eq!(doc["values"], json!([{}, {"n": 1}]), "{doc}");
    let berlin = ["--tz", "Europe/Berlin"];
    let run = env.run(&[
        "--tz",
        "Europe/Berlin",
        "track",
        "date_berlin",
        "--values",
        r#"{"n": 1}"#,
        "--at",
        "2026-01-15",
    ]);
    run.ok();
    let doc = series(
        env,
        &berlin,
        "date_berlin",
        "1h",
        "2026-01-14T23:00:00+01:00",
        "2026-01-15T00:00:00+01:00",
    );
    assert_eq!(
        doc["at"],
        json!(["2026-01-14T23:00:00+01:00", "2026-01-15T00:00:00+01:00"])
    );
    assert_eq!(doc["values"], json!([{}, {"n": 1}]), "{doc}");
    // Relative to now: the bucket two hours back (the clock may cross an hour between the
    // runs: the write is in one of the two buckets around now-2h).
    let before = jiff::Timestamp::now();
    track(env, "relative", r#"{"n": 1}"#, &["--at", "-2h"]).ok();
    let doc = series(env, &[], "relative", "1h", "now-4h", "now");
    let values = doc["values"].as_array().expect("values").clone();
    let hits: Vec<usize> = (0..values.len())
        .filter(|&i| values[i] != json!({}))
        .collect();
    assert_eq!(hits.len(), 1, "one bucket written: {doc}");
    assert_eq!(values[hits[0]], json!({"n": 1}));
    let bucket: jiff::Timestamp = doc["at"][hits[0]]
        .as_str()
        .expect("at")
        .parse()
        .expect("RFC 3339");
    let two_hours_ago = before - jiff::SignedDuration::from_hours(2);
    let distance = two_hours_ago.duration_since(bucket);
    assert!(
        distance >= jiff::SignedDuration::ZERO - jiff::SignedDuration::from_secs(5)
            && distance < jiff::SignedDuration::from_hours(1) + jiff::SignedDuration::from_secs(5),
        "the bucket {bucket} holds now-2h ({two_hours_ago}): {doc}"
    );
}

/// `values` in every format: the exact JSON document with blanks, CSV with its header and
/// blank cells, the table, the chart.
pub fn values_formats(env: &Env) {
    track(
        env,
        "visits",
        r#"{"count": 2, "ms": 0.5}"#,
        &["--at", "2026-01-15T10:05:00Z"],
    )
    .ok();
    track(
        env,
        "visits",
        r#"{"count": 1}"#,
        &["--at", "2026-01-15T12:59:59Z"],
    )
    .ok();
    // From is floored to its bucket; to is included.
    let doc = series(
        env,
        &[],
        "visits",
        "1h",
        "2026-01-15T09:30:00Z",
        "2026-01-15T13:00:00Z",
    );
    assert_eq!(
        doc,
        json!({
            "key": "visits",
            "granularity": "1h",
            "at": [
                "2026-01-15T09:00:00+00:00",
                "2026-01-15T10:00:00+00:00",
                "2026-01-15T11:00:00+00:00",
                "2026-01-15T12:00:00+00:00",
                "2026-01-15T13:00:00+00:00",
            ],
            "values": [{}, {"count": 2, "ms": 0.5}, {}, {"count": 1}, {}],
        })
    );
    // The raw text too: one line, no trailing noise.
    let range = [
        "--from",
        "2026-01-15T09:30:00Z",
        "--to",
        "2026-01-15T13:00:00Z",
    ];
    let mut args = vec!["values", "visits", "-g", "1h", "-f", "csv"];
    args.extend(range);
    let csv = env.run(&args).ok().to_owned();
    assert_eq!(
        csv,
        "at,count,ms\n\
         2026-01-15T09:00:00+00:00,,\n\
         2026-01-15T10:00:00+00:00,2,0.5\n\
         2026-01-15T11:00:00+00:00,,\n\
         2026-01-15T12:00:00+00:00,1,\n\
         2026-01-15T13:00:00+00:00,,\n"
    );
    let mut args = vec!["values", "visits", "-g", "1h"];
    args.extend(range);
    let table = env.run(&args).ok().to_owned();
    for needle in [
        "at",
        "count",
        "ms",
        "2026-01-15T09:00:00+00:00",
        "2026-01-15T13:00:00+00:00",
        "0.5",
    ] {
        assert!(table.contains(needle), "{needle:?} in the table:\n{table}");
    }
    assert_eq!(
        table.lines().filter(|l| l.contains("2026-01-15T")).count(),
        5,
        "a row per bucket:\n{table}"
    );
    let mut args = vec!["values", "visits", "-g", "1h", "-f", "chart"];
    args.extend(range);
    let chart = env.run(&args).ok().to_owned();
    assert!(chart.contains("visits count per 1h"), "{chart}");
    assert!(chart.contains('█'), "bars:\n{chart}");
    assert!(chart.contains("max 2"), "{chart}");
    // --path picks another path; a missing one charts nothing but still draws the axes.
    let mut args = vec![
        "values", "visits", "-g", "1h", "-f", "chart", "--path", "ms",
    ];
    args.extend(range);
    let chart = env.run(&args).ok().to_owned();
    assert!(chart.contains("visits ms per 1h"), "{chart}");
    assert!(chart.contains('█'), "bars:\n{chart}");
    // A key never written: every bucket blank.
    let doc = series(
        env,
        &[],
        "never",
        "1d",
        "2026-01-14T12:00:00Z",
        "2026-01-16T00:00:00Z",
    );
    assert_eq!(doc["values"], json!([{}, {}, {}]));
    assert_eq!(
        doc["at"],
        json!([
            "2026-01-14T00:00:00+00:00",
            "2026-01-15T00:00:00+00:00",
            "2026-01-16T00:00:00+00:00"
        ])
    );
}

/// `--tz Europe/Berlin` across both DST changes of 2026, in 1h and 1d buckets.
pub fn dst_berlin(env: &Env) {
    let berlin = ["--tz", "Europe/Berlin"];
    let at = |key: &str, values: &str, when: &str| {
        let run = env.run(&[
            "--tz",
            "Europe/Berlin",
            "track",
            key,
            "--values",
            values,
            "--at",
            when,
        ]);
        run.ok();
    };
    // Spring forward, 2026-03-29: 02:00 CET becomes 03:00 CEST, the day has 23 hours.
    at("spring", r#"{"n": 1}"#, "2026-03-29T00:30:00Z"); // 01:30 CET
    at("spring", r#"{"n": 2}"#, "2026-03-29T01:30:00Z"); // 03:30 CEST
    at("spring", r#"{"n": 4}"#, "2026-03-29T21:59:59Z"); // 23:59:59 CEST
    let doc = series(
        env,
        &berlin,
        "spring",
        "1h",
        "2026-03-29T00:10:00+01:00",
        "2026-03-29T04:00:00+02:00",
    );
    assert_eq!(
        doc,
        json!({
            "key": "spring",
            "granularity": "1h",
            "at": [
                "2026-03-29T00:00:00+01:00",
                "2026-03-29T01:00:00+01:00",
                "2026-03-29T03:00:00+02:00",
                "2026-03-29T04:00:00+02:00",
            ],
            "values": [{}, {"n": 1}, {"n": 2}, {}],
        })
    );
    let doc = series(env, &berlin, "spring", "1d", "2026-03-28", "2026-03-30");
    assert_eq!(
        doc["at"],
        json!([
            "2026-03-28T00:00:00+01:00",
            "2026-03-29T00:00:00+01:00",
            "2026-03-30T00:00:00+02:00"
        ])
    );
    assert_eq!(doc["values"], json!([{}, {"n": 7}, {}]));
    // Fall back, 2026-10-25: 03:00 CEST becomes 02:00 CET, 02:xx happens twice.
    at("fall", r#"{"n": 1}"#, "2026-10-25T00:30:00Z"); // 02:30 CEST
    at("fall", r#"{"n": 10}"#, "2026-10-25T01:30:00Z"); // 02:30 CET
    let doc = series(
        env,
        &berlin,
        "fall",
        "1h",
        "2026-10-25T01:00:00+02:00",
        "2026-10-25T03:00:00+01:00",
    );
    assert_eq!(
        doc["at"],
        json!([
            "2026-10-25T01:00:00+02:00",
            "2026-10-25T02:00:00+02:00",
            "2026-10-25T02:00:00+01:00",
            "2026-10-25T03:00:00+01:00",
        ])
    );
    assert_eq!(doc["values"], json!([{}, {"n": 1}, {"n": 10}, {}]));
    let doc = series(env, &berlin, "fall", "1d", "2026-10-24", "2026-10-26");
    assert_eq!(
        doc["at"],
        json!([
            "2026-10-24T00:00:00+02:00",
            "2026-10-25T00:00:00+02:00",
            "2026-10-26T00:00:00+01:00"
        ])
    );
    assert_eq!(doc["values"], json!([{}, {"n": 11}, {}]));
    // Read in UTC, the Berlin day is not a UTC day: the 1h buckets still hold the events.
    let doc = series(
        env,
        &[],
        "fall",
        "1h",
        "2026-10-25T00:00:00Z",
        "2026-10-25T01:00:00Z",
    );
    assert_eq!(doc["values"], json!([{"n": 1}, {"n": 10}]));
}

/// `--granularities 15m,1d` writes 15-minute buckets and no hours; `--week-start sunday`
/// moves the week bucket.
pub fn granularities_and_week_start(env: &Env) {
    let custom = ["--granularities", "15m,1d"];
    let run = env.run(&[
        "--granularities",
        "15m,1d",
        "track",
        "q",
        "--values",
        r#"{"n": 1}"#,
        "--at",
        T,
    ]);
    run.ok();
    let doc = series(
        env,
        &custom,
        "q",
        "15m",
        "2026-01-15T10:00:00Z",
        "2026-01-15T10:30:00Z",
    );
    assert_eq!(
        doc,
        json!({
            "key": "q",
            "granularity": "15m",
            "at": [
                "2026-01-15T10:00:00+00:00",
                "2026-01-15T10:15:00+00:00",
                "2026-01-15T10:30:00+00:00",
            ],
            "values": [{}, {"n": 1}, {}],
        })
    );
    let doc = series(env, &custom, "q", "1d", "2026-01-15", "2026-01-15");
    assert_eq!(doc["values"], json!([{"n": 1}]));
    // 1h was not written: reading it with the default granularities shows nothing.
    assert_eq!(at_t(env, "q"), json!({}));
    // And with the custom ones 1h is not tracked: refused, naming it.
    let run = env.run(&["--granularities", "15m,1d", "values", "q", "-g", "1h"]);
    refused(&run, "1h is not tracked");
    // 2026-01-14 is a Wednesday: its week starts Monday 12th, or Sunday 11th.
    let week = |key: &str, start: &str| {
        let run = env.run(&[
            "--week-start",
            start,
            "track",
            key,
            "--values",
            r#"{"n": 1}"#,
            "--at",
            "2026-01-14T12:00:00Z",
        ]);
        run.ok();
        series(
            env,
            &["--week-start", start],
            key,
            "1w",
            "2026-01-14",
            "2026-01-14",
        )
    };
    let sunday = week("wk_sun", "sunday");
    assert_eq!(
        sunday["at"],
        json!(["2026-01-11T00:00:00+00:00"]),
        "{sunday}"
    );
    assert_eq!(sunday["values"], json!([{"n": 1}]));
    let monday = week("wk_mon", "monday");
    assert_eq!(
        monday["at"],
        json!(["2026-01-12T00:00:00+00:00"]),
        "{monday}"
    );
    assert_eq!(monday["values"], json!([{"n": 1}]));
    refused(&env.run(&["--week-start", "someday", "metrics"]), "someday");
}

/// `metrics` lists the keys the system index counted, with their event counts.
pub fn metrics(env: &Env) {
    assert_eq!(metric_keys(env), json!({}));
    track(env, "alpha", r#"{"n": 1}"#, &["--at", T]).ok();
    for _ in 0..3 {
        track(env, "beta.gamma", r#"{"n": 1}"#, &["--at", T]).ok();
    }
    assert_eq!(metric_keys(env), json!({"alpha": 1, "beta.gamma": 3}));
    let table = env
        .run(&["metrics", "--from", "2026-01-01", "--to", "2026-02-01"])
        .ok()
        .to_owned();
    assert!(
        table.contains("alpha") && table.contains("beta.gamma") && table.contains('3'),
        "{table}"
    );
    // Outside the range: none.
    let run = env.run(&[
        "metrics",
        "--from",
        "2027-01-01",
        "--to",
        "2027-02-01",
        "-f",
        "json",
    ]);
    assert_eq!(run.ok().trim(), r#"{"metrics":{}}"#);
    refused(
        &env.run(&["metrics", "--from", "2026-02-01", "--to", "2026-01-01"]),
        "is after --to",
    );
}

/// Every counter command with its exit codes, i64 bounds and overflow.
pub fn counters(env: &Env) {
    let c = |args: &[&str]| {
        let mut all = vec!["counter"];
        all.extend_from_slice(args);
        env.run(&all)
    };
    // A missing counter: get and delete exit 3 naming it.
    c(&["get", "shop", "orders"]).fails(3, "\"orders\" does not exist");
    c(&["delete", "shop", "orders"]).fails(3, "\"orders\"");
    assert_eq!(c(&["inc", "shop", "orders"]).ok().trim(), "1");
    assert_eq!(c(&["inc", "shop", "orders", "--by", "5"]).ok().trim(), "6");
    assert_eq!(
        c(&["inc", "shop", "orders", "--by", "-10"]).ok().trim(),
        "-4"
    );
    assert_eq!(
        c(&["inc", "shop", "fresh", "--by", "2", "--default", "100"])
            .ok()
            .trim(),
        "102"
    );
    assert_eq!(c(&["get", "shop", "orders"]).ok().trim(), "-4");
    assert_eq!(c(&["set", "shop", "orders", "42"]).ok().trim(), "42");
    assert_eq!(c(&["get", "shop", "orders"]).ok().trim(), "42");
    // Compare and swap: swapped prints the new value; a mismatch exits 3 with the current.
    assert_eq!(c(&["cas", "shop", "orders", "42", "43"]).ok().trim(), "43");
    let run = c(&["cas", "shop", "orders", "42", "44"]);
    run.fails(3, "holds 43");
    assert!(run.stdout.is_empty(), "{run:#?}");
    assert_eq!(c(&["get", "shop", "orders"]).ok().trim(), "43");
    // A missing counter holds 0 for cas.
    assert_eq!(c(&["cas", "shop", "new", "0", "7"]).ok().trim(), "7");
    c(&["cas", "shop", "new2", "1", "7"]).fails(3, "holds 0");
    c(&["get", "shop", "new2"]).fails(3, "does not exist");
    // The bounds round trip, through set and cas.
    for bound in [i64::MIN, i64::MAX, 0, -1] {
        let text = bound.to_string();
        assert_eq!(c(&["set", "edge", "b", &text]).ok().trim(), text);
        assert_eq!(c(&["get", "edge", "b"]).ok().trim(), text);
    }
    assert_eq!(
        c(&["cas", "edge", "b", "-1", &i64::MIN.to_string()])
            .ok()
            .trim(),
        i64::MIN.to_string()
    );
    // Overflow: refused with exit 2, the value unchanged.
    c(&["set", "edge", "max", &i64::MAX.to_string()]).ok();
    refused(&c(&["inc", "edge", "max"]), "overflow");
    assert_eq!(c(&["get", "edge", "max"]).ok().trim(), i64::MAX.to_string());
    c(&["set", "edge", "min", &i64::MIN.to_string()]).ok();
    refused(&c(&["inc", "edge", "min", "--by", "-1"]), "overflow");
    assert_eq!(c(&["get", "edge", "min"]).ok().trim(), i64::MIN.to_string());
    // Literals beyond i64 are refused by the parser, naming them.
    let run = c(&["set", "edge", "max", "9223372036854775808"]);
    run.fails(2, "9223372036854775808");
    assert_eq!(c(&["get", "edge", "max"]).ok().trim(), i64::MAX.to_string());
    c(&["inc", "edge", "max", "--by", "-9223372036854775809"]).fails(2, "-9223372036854775809");
    // Bad names: refused, nothing written.
    refused(&c(&["inc", "shop", ""]), "");
    refused(&c(&["inc", "", "x"]), "");
    refused(&c(&["inc", "shop", "a\u{1}b"]), "control");
    c(&["get", "shop", "a\u{1}b"]).fails(2, "control");
    // list, info, delete, delete-namespace.
    let list: Value =
        serde_json::from_str(c(&["list", "shop", "-f", "json"]).ok()).expect("list JSON");
    assert_eq!(list, json!({"orders": 43, "fresh": 102, "new": 7}));
    let table = c(&["list", "shop"]).ok().to_owned();
    assert!(table.contains("orders") && table.contains("43"), "{table}");
    let info: Value = serde_json::from_str(c(&["info", "-f", "json"]).ok()).expect("info JSON");
    let namespaces = info["namespaces"].as_array().expect("namespaces").clone();
    assert!(
        namespaces.contains(&json!({"namespace": "shop", "counters": 3})),
        "{info}"
    );
    assert!(
        namespaces.contains(&json!({"namespace": "edge", "counters": 3})),
        "{info}"
    );
    let table = c(&["info"]).ok().to_owned();
    assert!(table.contains("shop") && table.contains("edge"), "{table}");
    assert_eq!(c(&["delete", "shop", "fresh"]).ok().trim(), "deleted");
    c(&["delete", "shop", "fresh"]).fails(3, "\"fresh\"");
    assert_eq!(c(&["delete-namespace", "shop"]).ok().trim(), "2");
    assert_eq!(c(&["delete-namespace", "shop"]).ok().trim(), "0");
    assert_eq!(c(&["list", "shop", "-f", "json"]).ok().trim(), "{}");
    c(&["get", "shop", "orders"]).fails(3, "does not exist");
    assert_eq!(c(&["get", "edge", "min"]).ok().trim(), i64::MIN.to_string());
}

/// `throttle acquire`: 0 and `acquired`, 3 and `held`, free again after the TTL; bad TTLs.
pub fn throttles(env: &Env) {
    let acquire = |key: &str, ttl: &str| env.run(&["throttle", "acquire", key, "--ttl", ttl]);
    assert_eq!(acquire("mail", "1s").ok().trim(), "acquired");
    let run = acquire("mail", "1s");
    run.fails(3, "held");
    assert!(run.stdout.is_empty(), "{run:#?}");
    // Another key is independent.
    assert_eq!(acquire("sms", "1h").ok().trim(), "acquired");
    std::thread::sleep(std::time::Duration::from_millis(1_300));
    assert_eq!(acquire("mail", "1s").ok().trim(), "acquired");
    acquire("sms", "1h").fails(3, "held");
    for bad in ["0s", "-5s", "forever", "", "1x"] {
        refused(
            &acquire("bad_ttl", bad),
            &format!("--ttl: invalid duration {bad:?}"),
        );
    }
    // Nothing was taken by the refused ones.
    assert_eq!(acquire("bad_ttl", "1h").ok().trim(), "acquired");
    refused(&acquire("a\u{7}b", "1s"), "control");
}

// ---- hostile input ------------------------------------------------------------------------

/// Bad `--values`, each refused naming it, nothing written; numbers at their edges.
pub fn bad_values(env: &Env) {
    let cases: &[(&str, &str)] = &[
        (r#"{"n": "#, "--values: invalid value: not JSON"),
        ("", "not JSON"),
        (
            "[1, 2]",
            "--values: invalid value: expected a map of names to numbers, found an array",
        ),
        ("5", "found a number"),
        (
            r#"{"n": "1"}"#,
            "at \"n\": expected a number or a map, found a string",
        ),
        (r#"{"n": true}"#, "at \"n\""),
        (r#"{"n": null}"#, "at \"n\""),
        (r#"{"n": [1]}"#, "at \"n\""),
        (
            r#"{"n": 9223372036854775808}"#,
            "integer 9223372036854775808 is outside the i64 range",
        ),
        (
            r#"{"n": -9223372036854775809}"#,
            "integer -9223372036854775809 is outside the i64 range",
        ),
        (
            r#"{"n": 1, "m": 18446744073709551616}"#,
            "18446744073709551616",
        ),
        (r#"{"n": NaN}"#, "not JSON"),
        (r#"{"n": Infinity}"#, "not JSON"),
        (r#"{"n": -Infinity}"#, "not JSON"),
        (
            r#"{"n": 1e400}"#,
            "--values: invalid value: not JSON: number out of range",
        ),
        (
            r#"{"": 1}"#,
            "--values: invalid field name \"\": must not be empty",
        ),
        (r#"{"a.b": 1}"#, "invalid field name \"a.b\""),
        (r#"{"n": {"m": 1}, "n.m": 2}"#, "\"n.m\""),
    ];
    for (values, needle) in cases {
        let run = track(env, "hostile", values, &["--at", T]);
        refused(&run, needle);
    }
    assert_eq!(at_t(env, "hostile"), json!({}), "nothing written");
    assert_eq!(metric_keys(env), json!({}), "not even the index");
    // Numbers at their edges round trip exactly.
    let edges = r#"{"max": 9223372036854775807, "min": -9223372036854775808,
        "big": 9007199254740993, "bigf": 9007199254740993.0, "f53": 9007199254740992.0,
        "negzero": -0.0, "huge": 1e308, "tiny": 5e-324, "third": 0.1}"#;
    track(env, "edges", edges, &["--at", T, "--op", "set"]).ok();
    let got = at_t(env, "edges");
    assert_eq!(
        got,
        json!({
            "max": i64::MAX,
            "min": i64::MIN,
            "big": 9_007_199_254_740_993_i64,
            // 2^53 + 1 has no f64: the nearest (ties to even) is 2^53.
            "bigf": 9_007_199_254_740_992.0,
            "f53": 9_007_199_254_740_992.0,
            // -0.0 is stored as 0.0 on every store.
            "negzero": 0.0,
            "huge": 1e308,
            "tiny": 5e-324,
            "third": 0.1,
        })
    );
    // Text too: integers stay integers, floats stay floats (the sign of zero dropped).
    let run = env.run(&[
        "values", "edges", "-g", "1h", "--from", T, "--to", T, "-f", "json",
    ]);
    let text = run.ok();
    for needle in [
        "\"big\":9007199254740993,",
        "\"bigf\":9007199254740992.0",
        "\"negzero\":0.0",
        "\"max\":9223372036854775807",
        "\"min\":-9223372036854775808",
    ] {
        assert!(text.contains(needle), "{needle} in {text}");
    }
    // An increment that would leave the i64 range (or the finite floats) is refused, the value
    // unchanged.
    refused(
        &track(env, "edges", r#"{"max": 1}"#, &["--at", T]),
        "overflow",
    );
    refused(
        &track(env, "edges", r#"{"min": -1}"#, &["--at", T]),
        "overflow",
    );
    refused(
        &track(env, "edges", r#"{"huge": 1e308}"#, &["--at", T]),
        "overflow",
    );
    assert_eq!(at_t(env, "edges"), got, "unchanged");
    // An increment of an integer by a float, and -0.0 added: still exact.
    track(env, "mix", r#"{"n": 1}"#, &["--at", T]).ok();
    track(env, "mix", r#"{"n": -0.0}"#, &["--at", T]).ok();
    let mix = at_t(env, "mix");
    assert!(
        mix == json!({"n": 1}) || mix == json!({"n": 1.0}),
        "1 + -0.0: {mix}"
    );
}

/// Bad keys, refused naming them, nothing written.
pub fn bad_keys(env: &Env) {
    let long = "k".repeat(1_000);
    let cases: Vec<(&str, &str)> = vec![
        ("a::b", "invalid metric key \"a::b\": must not contain '::'"),
        ("", "invalid metric key \"\": must not be empty"),
        (
            "a\u{1}b",
            "invalid metric key \"a\\u{1}b\": must not contain control characters",
        ),
        ("a\nb", "control"),
        ("\u{7f}", "control"),
        (&long, "too long"),
        ("__system__key__", "__system__key__"),
    ];
    for (key, needle) in &cases {
        let run = track(env, key, r#"{"n": 1}"#, &["--at", T]);
        refused(&run, needle);
        let run = env.run(&["assert", key, "--values", r#"{"n": 1}"#, "--at", T]);
        refused(&run, needle);
        let run = env.run(&["values", key, "--from", T, "--to", T]);
        refused(&run, needle);
    }
    // A long key names itself shortened, not 1,000 bytes of it.
    let run = track(env, &long, r#"{"n": 1}"#, &["--at", T]);
    assert!(run.stderr.len() < 600, "{run:#?}");
    assert_eq!(metric_keys(env), json!({}), "nothing written");
    // Keys that are fine: unicode, dots, spaces, 200 bytes.
    let ok_keys = ["café ☕", "a.b.c", "with space", &"k".repeat(200)];
    for key in ok_keys {
        track(env, key, r#"{"n": 1}"#, &["--at", T]).ok();
        assert_eq!(at_t(env, key), json!({"n": 1}), "{key}");
    }
}

/// Bad granularities, zones, times, ranges and ops: exit 2 naming the option, nothing written.
pub fn bad_options(env: &Env) {
    for (g, needle) in [
        ("1x", "--granularity: invalid granularity \"1x\""),
        ("0h", "--granularity: invalid granularity \"0h\""),
        ("61m", "--granularity: invalid granularity \"61m\""),
        ("h", "--granularity: invalid granularity \"h\""),
        ("1.5h", "--granularity: invalid granularity \"1.5h\""),
        ("1H", "--granularity"),
        ("2h", "--granularity: 2h is not tracked"),
    ] {
        refused(&env.run(&["values", "k", "-g", g]), needle);
    }
    for g in ["1x", "0h", "61m", ""] {
        let run = env.run(&[
            "--granularities",
            g,
            "track",
            "k",
            "--values",
            r#"{"n": 1}"#,
            "--at",
            T,
        ]);
        refused(&run, "--granularities");
    }
    for zone in ["Mars/Olympus", "", "Europe/Berlin/x"] {
        let run = env.run(&[
            "--tz",
            zone,
            "track",
            "k",
            "--values",
            r#"{"n": 1}"#,
            "--at",
            T,
        ]);
        refused(&run, "--tz");
        if !zone.is_empty() {
            assert!(run.stderr.contains(zone), "{run:#?}");
        }
    }
    for at in [
        "yesterday-ish",
        "9999999999999",
        "-9999999999999",
        "2026-13-01",
        "NaN",
        "1e400",
    ] {
        let run = track(env, "k", r#"{"n": 1}"#, &["--at", at]);
        refused(&run, &format!("--at: invalid time {at:?}"));
        let run = env.run(&["values", "k", "--from", at]);
        refused(&run, &format!("--from: invalid time {at:?}"));
        let run = env.run(&["values", "k", "--to", at]);
        refused(&run, &format!("--to: invalid time {at:?}"));
        let run = env.run(&["assert", "k", "--values", r#"{"n": 1}"#, "--at", at]);
        refused(&run, &format!("--at: invalid time {at:?}"));
    }
    refused(
        &env.run(&["values", "k", "--from", "2026-01-16", "--to", "2026-01-15"]),
        "--from (2026-01-16T00:00:00Z) is after --to (2026-01-15T00:00:00Z)",
    );
    assert_eq!(at_t(env, "k"), json!({}), "nothing written");
    assert_eq!(metric_keys(env), json!({}), "nothing written");
    // Clap's own refusals exit 2 too.
    env.run(&["values"]).fails(2, "KEY");
    env.run(&["track", "k"]).fails(2, "--values");
    env.run(&["values", "k", "-f", "xml"]).fails(2, "xml");
    env.run(&["frobnicate"]).fails(2, "frobnicate");
}

/// A bad `--prefix`, refused before anything is written.
pub fn bad_prefix(env: &Env) {
    for prefix in ["bad prefix!", "a:b", "\u{1}"] {
        let mut cmd = env.command();
        cmd.env("STATS_PREFIX", prefix);
        let run: Run = cmd
            .args(["track", "k", "--values", r#"{"n": 1}"#, "--at", T])
            .output()
            .expect("runs")
            .into();
        if run.code == Some(0) {
            // A store may take it (Redis takes `a:b`); it must then be a working prefix.
            continue;
        }
        refused(&run, "--prefix");
    }
    let mut cmd = env.command();
    cmd.env("STATS_PREFIX", "");
    let run: Run = cmd
        .args(["counter", "inc", "a", "b"])
        .output()
        .expect("runs")
        .into();
    refused(&run, "--prefix");
}
