//! `stats import` end to end: the binary run as a process on SQLite and on Redis
//! (`STATS_TEST_REDIS_URL`), reading files and standard input, with good and hostile lines.

mod common;

use std::fmt::Write as _;
use std::path::PathBuf;

use common::Env;
use serde_json::{Value, json};

/// 2026-12-01T10:00:00Z.
const TEN: i64 = 1_796_119_200;

fn file(env: &Env, name: &str, bytes: &[u8]) -> PathBuf {
    let path = env.path(name);
    std::fs::write(&path, bytes).expect("the test file is written");
    path
}

fn import(env: &Env, path: &std::path::Path, extra: &[&str]) -> common::Run {
    let path = path.to_str().expect("a UTF-8 path");
    let mut args = vec!["import", path];
    args.extend_from_slice(extra);
    env.run(&args)
}

/// The `values` of a series from `from` to `to` at `granularity`.
fn series(env: &Env, key: &str, granularity: &str, from: &str, to: &str) -> Value {
    env.values_json(key, &["-g", granularity, "--from", from, "--to", to])["values"].clone()
}

/// The `count` of the 1d buckets of `key` around 2026-12-01, summed.
fn day_count(env: &Env, key: &str, path: &str) -> i64 {
    series(env, key, "1d", "2026-11-30", "2026-12-02")
        .as_array()
        .expect("an array")
        .iter()
        .filter_map(|doc| doc.get(path).and_then(Value::as_i64))
        .sum()
}

const KNOWN: &str = concat!(
    r#"{"key":"orders","at":"2026-12-01T10:15:00Z","values":{"count":1,"total":10.5,"ship":{"eu":1}}}"#,
    "\n\n",
    r#"{"key":"orders","at":1796121000,"values":{"count":2,"total":4,"ship":{"us":3}},"op":"inc"}"#,
    "\n   \t \n",
    r#"{"key":"orders","at":"2026-12-01T11:05:00+01:00","values":{"count":1}}"#,
    "\r\n",
    r#"{"key":"stock","at":1796119200.5,"values":{"units":140},"op":"set"}"#,
    "\n",
    r#"{"key":"stock","at":"2026-12-01T10:40:00Z","values":{"units":120},"op":"set"}"#,
    "\n",
    r#"{"key":"peak","at":"2026-12-01T10:10:00Z","values":{"rps":5},"op":"max"}"#,
    "\n",
    r#"{"key":"peak","at":"2026-12-01T10:50:00Z","values":{"rps":9},"op":"max"}"#,
    "\n",
    r#"{"key":"peak","at":"2026-12-01T11:10:00Z","values":{"rps":2},"op":"max"}"#,
    "\n",
    r#"{"key":"low","at":"2026-12-01T10:10:00Z","values":{"ms":7},"op":"min"}"#,
    "\n",
    r#"{"key":"low","at":"2026-12-01T10:20:00Z","values":{"ms":3},"op":"min"}"#,
    "\n",
    r#"{"key":"low","at":"2026-12-01T11:20:00Z","values":{"ms":4},"op":"min"}"#,
);

fn check_known(env: &Env) {
    let (ten, eleven) = ("2026-12-01T10:00:00Z", "2026-12-01T11:00:00Z");
    assert_eq!(
        series(env, "orders", "1h", ten, eleven),
        json!([{"count": 4, "total": 14.5, "ship": {"eu": 1, "us": 3}}, {}])
    );
    assert_eq!(
        series(env, "stock", "1h", ten, eleven),
        json!([{"units": 120}, {}])
    );
    assert_eq!(
        series(env, "stock", "1m", ten, ten),
        json!([{"units": 140}])
    );
    assert_eq!(
        series(env, "peak", "1h", ten, eleven),
        json!([{"rps": 9}, {"rps": 2}])
    );
    assert_eq!(
        series(env, "low", "1h", ten, eleven),
        json!([{"ms": 3}, {"ms": 4}])
    );
    assert_eq!(series(env, "low", "1d", ten, ten), json!([{"ms": 3}]));
    assert_eq!(series(env, "peak", "1d", ten, ten), json!([{"rps": 9}]));
}

fn known_events_give_exact_series(make: fn() -> Env) {
    let env = &make();
    let path = file(env, "known.jsonl", KNOWN.as_bytes());
    let run = import(env, &path, &[]);
    assert_eq!(run.ok(), "", "standard output stays empty");
    assert!(
        run.stderr.contains("imported 11 events from 13 lines in ")
            && run.stderr.contains("0 bad lines skipped"),
        "{run:#?}"
    );
    check_known(env);
}

fn standard_input(make: fn() -> Env) {
    let env = &make();
    let run = env.run_with_input(&["import", "-"], KNOWN.as_bytes());
    run.ok();
    assert!(run.stderr.contains("imported 11 events"), "{run:#?}");
    check_known(env);
}

/// Good lines (counts 1, 2 and 4) among hostile ones, each refused with its line number and
/// the field it is about.
fn hostile_lines() -> (Vec<u8>, Vec<(u64, &'static str)>) {
    let good = |n: i64| format!(r#"{{"key":"orders","at":{TEN},"values":{{"count":{n}}}}}"#);
    let mut text: Vec<u8> = Vec::new();
    let mut push = |line: &[u8]| {
        text.extend_from_slice(line);
        text.push(b'\n');
    };
    push(good(1).as_bytes()); // 1
    push(br#"{"key":"orders","#); // 2
    push(br#"{"key":"orders","values":{"count":1},"when":5}"#); // 3
    push(br#"{"key":"orders::x","values":{"count":1}}"#); // 4
    push(br#"{"key":"orders","values":{"count":9223372036854775808}}"#); // 5
    push(br#"{"key":"orders","values":{"count":1},"op":"add"}"#); // 6
    push(br#"{"key":"orders","values":{"count":1},"at":"yesterday"}"#); // 7
    push(b"{\"key\":\"orders\",\"values\":{\"c\xff\":1}}"); // 8
    let long = format!(
        r#"{{"key":"orders","values":{{"count":1}},"note":"{}"}}"#,
        "x".repeat(3 << 20)
    );
    push(long.as_bytes()); // 9
    push(good(2).as_bytes()); // 10
    push(br#"{"key":"orders","values":[1]}"#); // 11
    push(format!(r#"{{"key":"orders","at":{TEN},"values":{{}}}}"#).as_bytes()); // 12: nothing to write
    push(br#"{"key":"orders","values":{"count":-9223372036854775809}}"#); // 13
    push(br#"{"key":"orders","values":{"count":1},"at":1e300}"#); // 14
    push(br#"{"key":"orders","values":{"count":NaN}}"#); // 15
    push(br#"{"key":"orders","values":{"a":{"b":1},"a.b":2}}"#); // 16
    push(good(4).as_bytes()); // 17
    let bad = vec![
        (2, "not an event"),
        (3, "when"),
        (4, "\"key\""),
        (5, "9223372036854775808"),
        (6, "\"add\""),
        (7, "\"at\""),
        (8, "not UTF-8"),
        (9, "longer than the longest line"),
        (11, "\"values\""),
        (13, "-9223372036854775809"),
        (14, "\"at\""),
        (15, "not an event"),
        (16, "\"values\""),
    ];
    (text, bad)
}

fn bad_lines_are_skipped(make: fn() -> Env) {
    let env = &make();
    let (text, bad) = hostile_lines();
    let path = file(env, "hostile.jsonl", &text);
    let run = import(env, &path, &[]);
    assert_eq!(run.code, Some(2), "{run:#?}");
    for (line, needle) in &bad {
        let reported = run
            .stderr
            .lines()
            .find(|l| l.starts_with(&format!("line {line}: ")))
            .unwrap_or_else(|| panic!("line {line} is not reported: {}", run.stderr));
        assert!(reported.contains(needle), "line {line}: {reported}");
    }
    for good in [1, 10, 12, 17] {
        assert!(
            !run.stderr.contains(&format!("line {good}: ")),
            "line {good} is good: {}",
            run.stderr
        );
    }
    assert!(
        run.stderr.contains("imported 4 events from 17 lines")
            && run.stderr.contains("13 bad lines skipped")
            && run.stderr.contains("the first: line 2"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.len() < 20_000,
        "the over-long line is not echoed"
    );
    assert_eq!(
        day_count(env, "orders", "count"),
        7,
        "the good lines, exactly"
    );
}

fn bad_line_is_fatal_with_on_error_fail(make: fn() -> Env) {
    let env = &make();
    let text = format!(
        "{}\n{}\n{}\n{}\n",
        format_args!(r#"{{"key":"orders","at":{TEN},"values":{{"count":1}}}}"#),
        format_args!(r#"{{"key":"orders","at":{TEN},"values":{{"count":2}}}}"#),
        r#"{"key":"orders","values":{"count":"3"}}"#,
        format_args!(r#"{{"key":"orders","at":{TEN},"values":{{"count":4}}}}"#),
    );
    let path = file(env, "fail.jsonl", text.as_bytes());
    let run = import(env, &path, &["--on-error", "fail"]);
    let stderr = run.fails(2, "line 3: \"values\"");
    assert!(
        stderr.contains("stopped there") && stderr.contains("the 2 events of the lines before"),
        "{stderr}"
    );
    assert!(stderr.contains("stopped at bad line 3"), "{stderr}");
    assert_eq!(day_count(env, "orders", "count"), 3, "lines 1 and 2 only");
}

/// Many chunks: the order of the lines is kept (the last `set` wins), line numbers stay
/// exact far into the file, and `--on-error fail` writes nothing after the bad line although
/// later chunks were already read.
fn many_lines_keep_their_order_and_numbers(make: fn() -> Env) {
    let env = &make();
    let mut text = String::new();
    for i in 1..=60_000_i64 {
        if i == 45_678 {
            text.push_str("{\"key\":\"gauge\",\"values\":{\"v\":1},\"op\":\"sett\"}\n");
            continue;
        }
        let _ = writeln!(
            text,
            r#"{{"key":"gauge","at":{},"values":{{"v":{i}}},"op":"set"}}"#,
            TEN + 5
        );
        let _ = writeln!(
            text,
            r#"{{"key":"hits","at":{},"values":{{"n":1}}}}"#,
            TEN + i % 3600
        );
    }
    // Line numbers: two lines per i, one for the bad i.
    let bad_line = 2 * 45_677 + 1;
    let path = file(env, "many.jsonl", text.as_bytes());
    let run = import(env, &path, &[]);
    run.fails(2, &format!("line {bad_line}: \"op\": \"sett\""));
    assert!(
        run.stderr
            .contains("imported 119998 events from 119999 lines"),
        "{}",
        run.stderr
    );
    assert_eq!(
        series(
            env,
            "gauge",
            "1d",
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00Z"
        ),
        json!([{"v": 60_000}])
    );
    assert_eq!(day_count(env, "hits", "n"), 59_999);

    let other = make();
    let run = import(&other, &path, &["--on-error", "fail"]);
    run.fails(2, &format!("line {bad_line}: "));
    assert_eq!(
        day_count(&other, "hits", "n"),
        45_677,
        "nothing after the bad line"
    );
    assert_eq!(
        series(
            &other,
            "gauge",
            "1d",
            "2026-12-01T10:00:00Z",
            "2026-12-01T10:00:00Z"
        ),
        json!([{"v": 45_677}])
    );
}

/// An increment past `i64::MAX`: within one import (one bucket) the buffer finds it while
/// folding and it is a bad line; against a value stored by an earlier import the store
/// refuses it at flush, which cannot be pinned to a line: exit code 1 and the store's words.
fn overflow(make: fn() -> Env) {
    let env = &make();
    let set_max =
        format!(r#"{{"key":"big","at":{TEN},"values":{{"n":9223372036854775807}},"op":"set"}}"#);
    let inc = format!(r#"{{"key":"big","at":{},"values":{{"n":1}}}}"#, TEN + 30);
    let run = env.run_with_input(&["import", "-"], format!("{set_max}\n{inc}\n").as_bytes());
    let stderr = run.fails(2, "line 2: ");
    assert!(
        stderr.contains("overflow") && stderr.contains("\"n\""),
        "{stderr}"
    );
    let max = json!([{"n": i64::MAX}]);
    let ten = "2026-12-01T10:00:00Z";
    assert_eq!(series(env, "big", "1h", ten, ten), max);

    let other = format!(r#"{{"key":"fine","at":{TEN},"values":{{"n":1}}}}"#);
    let run = env.run_with_input(&["import", "-"], format!("{inc}\n{other}\n").as_bytes());
    let stderr = run.fails(1, "the store refused");
    assert!(stderr.contains("overflow"), "{stderr}");
    assert!(
        stderr.contains("imported 2 events from 2 lines"),
        "{stderr}"
    );
    assert_eq!(series(env, "big", "1h", ten, ten), max, "unchanged");
    assert_eq!(series(env, "big", "1m", ten, ten), max, "unchanged");
    assert_eq!(series(env, "fine", "1h", ten, ten), json!([{"n": 1}]));
}

fn progress(make: fn() -> Env) {
    let env = &make();
    let path = file(env, "one.jsonl", KNOWN.as_bytes());
    let run = import(env, &path, &[]);
    run.ok();
    assert!(
        !run.stderr.contains('\r') && !run.stderr.contains('\x1b'),
        "no progress bar when standard error is a pipe: {:?}",
        run.stderr
    );
    assert_eq!(
        run.stderr.lines().count(),
        1,
        "the summary only: {:?}",
        run.stderr
    );
    let run = import(env, &path, &["--progress", "always"]);
    run.ok();
    assert!(
        run.stderr.contains("\x1b[2K") && run.stderr.contains("events"),
        "a bar with --progress always: {:?}",
        run.stderr
    );
    let run = env.run_with_input(&["import", "-", "--progress", "always"], KNOWN.as_bytes());
    run.ok();
    assert!(
        run.stderr.contains(" read, "),
        "a spinner: {:?}",
        run.stderr
    );
    let run = import(env, &path, &["--progress", "never"]);
    assert!(!run.stderr.contains('\x1b'), "{:?}", run.stderr);
}

fn missing_file(make: fn() -> Env) {
    let env = &make();
    let run = env.run(&["import", "no-such-file.jsonl"]);
    run.fails(1, "cannot open no-such-file.jsonl");
    let run = env.run(&["import", "."]);
    run.fails(2, "is a directory");
}

macro_rules! on_both {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[test] fn $name() { super::$name(super::Env::sqlite); })*
        }
        mod redis {
            $(#[test] fn $name() { super::$name(super::Env::redis); })*
        }
    };
}

on_both!(
    known_events_give_exact_series,
    standard_input,
    bad_lines_are_skipped,
    bad_line_is_fatal_with_on_error_fail,
    many_lines_keep_their_order_and_numbers,
    overflow,
    progress,
    missing_file,
);

#[test]
fn unreachable_store() {
    let env = Env::url("redis://127.0.0.1:1", Some(common::unique("down")));
    let path = file(&env, "one.jsonl", KNOWN.as_bytes());
    let run = import(&env, &path, &[]);
    run.fails(1, "cannot open the store redis://127.0.0.1:1");
}

/// A slow producer on standard input (`tail -f ... | stats import -`): its lines are written
/// as they come, not when the input ends.
#[test]
fn a_slow_producer_is_written_as_it_goes() {
    use std::io::Write;
    let env = Env::sqlite();
    let mut child = env.spawn(&["import", "-"]);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    writeln!(stdin, r#"{{"key":"live","at":{TEN},"values":{{"n":1}}}}"#).unwrap();
    stdin.flush().unwrap();
    let ten = "2026-12-01T10:00:00Z";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        if series(&env, "live", "1h", ten, ten) == json!([{"n": 1}]) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the first line is still not written while the input is open"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    writeln!(stdin, r#"{{"key":"live","at":{TEN},"values":{{"n":2}}}}"#).unwrap();
    drop(stdin);
    let run: common::Run = child.wait_with_output().unwrap().into();
    run.ok();
    assert_eq!(series(&env, "live", "1h", ten, ten), json!([{"n": 3}]));
}

/// Ctrl-C (SIGINT): the import stops, writes what it has read and says so.
#[test]
fn interrupted() {
    use std::io::Write;
    let env = Env::sqlite();
    let mut child = env.spawn(&["import", "-"]);
    let mut stdin = child.stdin.take().expect("stdin is piped");
    writeln!(stdin, r#"{{"key":"cut","at":{TEN},"values":{{"n":1}}}}"#).unwrap();
    stdin.flush().unwrap();
    let ten = "2026-12-01T10:00:00Z";
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while series(&env, "cut", "1h", ten, ten) != json!([{"n": 1}]) {
        assert!(
            std::time::Instant::now() < deadline,
            "the line is not written"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let killed = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let run: common::Run = child.wait_with_output().unwrap().into();
    drop(stdin);
    run.fails(1, "interrupted after line 1 of standard input");
    assert!(
        run.stderr.contains("imported 1 events from 1 lines"),
        "{run:#?}"
    );
    assert_eq!(series(&env, "cut", "1h", ten, ten), json!([{"n": 1}]));
}
