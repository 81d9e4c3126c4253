//! The `stats` binary end to end on SQLite: every command, bad input, bad store URLs.
//!
//! `cargo test -p stats-cli --test cli_sqlite` (no server needed).

#[path = "common/checks.rs"]
mod checks;
mod common;

use common::Env;
use serde_json::json;

checks!(Env::sqlite();
    track_ops,
    at_forms,
    values_formats,
    dst_berlin,
    granularities_and_week_start,
    metrics,
    counters,
    throttles,
    bad_values,
    bad_keys,
    bad_options,
    bad_prefix,
);

/// No `--store`: `stats.db` appears in the working directory and holds the data.
#[test]
fn default_store_is_a_file_in_the_working_directory() {
    let env = Env::default_store();
    assert!(!env.path("stats.db").exists());
    env.run(&["track", "k", "--values", r#"{"n": 1}"#, "--at", checks::T])
        .ok();
    assert!(env.path("stats.db").is_file(), "stats.db was created");
    assert_eq!(checks::at_t(&env, "k"), json!({"n": 1}));
    // The same file through an explicit URL.
    let url = format!("sqlite://{}", env.path("stats.db").display());
    let explicit = Env::url(&url, None);
    assert_eq!(checks::at_t(&explicit, "k"), json!({"n": 1}));
    // The checks pass on it too.
    checks::counters(&env);
}

/// A prefix is a set of tables of its own in the same file.
#[test]
fn sqlite_prefixes_are_separate() {
    let a = Env::sqlite();
    let url = a.store.clone();
    let b = Env::url(&url, Some("other_app".into()));
    a.run(&["counter", "set", "ns", "c", "1"]).ok();
    b.run(&["counter", "set", "ns", "c", "2"]).ok();
    assert_eq!(a.run(&["counter", "get", "ns", "c"]).ok().trim(), "1");
    assert_eq!(b.run(&["counter", "get", "ns", "c"]).ok().trim(), "2");
}

/// Store URLs: an unknown scheme is bad input (2), an unreachable server a failure (1), each
/// naming the store with its password hidden, before anything else happens.
#[test]
fn bad_and_unreachable_stores() {
    let run = Env::url("ftp://x", None).run(&["setup"]);
    run.fails(2, "store URL \"ftp://x\" has no known scheme");
    let run = Env::url("ftp://u:secret@x", None).run(&["counter", "get", "a", "b"]);
    run.fails(2, "has no known scheme");
    assert!(!run.stderr.contains("secret"), "{run:#?}");
    for (url, shown) in [
        ("redis://127.0.0.1:1", "redis://127.0.0.1:1"),
        ("redis://u:secret@127.0.0.1:1", "redis://u:***@127.0.0.1:1"),
        ("postgres://127.0.0.1:1/x", "postgres://127.0.0.1:1/x"),
        (
            "postgres://u:secret@127.0.0.1:1/x",
            "postgres://u:***@127.0.0.1:1/x",
        ),
        (
            "mysql://127.0.0.1:1/x?user=u&password=secret",
            "mysql://127.0.0.1:1/x?user=u&password=***",
        ),
    ] {
        let env = Env::url(url, None);
        for args in [
            &["counter", "get", "a", "b"][..],
            &["track", "k", "--values", r#"{"n": 1}"#][..],
            &["values", "k"][..],
        ] {
            let run = env.run(args);
            run.fails(1, &format!("cannot open the store {shown}"));
            assert!(!run.stderr.contains("secret"), "{run:#?}");
            assert!(run.stdout.is_empty(), "{run:#?}");
        }
    }
    // Bad input is reported before the store is tried: no wait for the server, code 2.
    let env = Env::url("redis://127.0.0.1:1", None);
    env.run(&["--tz", "Mars/Olympus", "values", "k"])
        .fails(2, "Mars/Olympus");
    env.run(&["--granularities", "1x", "values", "k"])
        .fails(2, "1x");
    // A SQLite file that cannot be created.
    let env = Env::url("sqlite:///nonexistent-dir/x/stats.db", None);
    env.run(&["counter", "get", "a", "b"])
        .fails(1, "sqlite:///nonexistent-dir/x/stats.db");
}
