//! The `stats` binary end to end on Redis (`STATS_TEST_REDIS_URL`, set by
//! `cargo xtask it redis`; a missing variable fails the suite, it never skips).
//!
//! `STATS_TEST_REDIS_URL=redis://127.0.0.1:6379 cargo test -p stats-cli --test cli_redis`

#[path = "common/checks.rs"]
mod checks;
mod common;

use common::Env;

checks!(Env::redis();
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

/// Two prefixes on one server do not see each other's data.
#[test]
fn redis_prefixes_are_separate() {
    let a = Env::redis();
    let b = Env::redis();
    a.run(&["counter", "set", "ns", "c", "1"]).ok();
    b.run(&["counter", "set", "ns", "c", "2"]).ok();
    assert_eq!(a.run(&["counter", "get", "ns", "c"]).ok().trim(), "1");
    assert_eq!(b.run(&["counter", "get", "ns", "c"]).ok().trim(), "2");
    a.run(&["track", "k", "--values", r#"{"n": 1}"#, "--at", checks::T])
        .ok();
    assert_eq!(checks::at_t(&b, "k"), serde_json::json!({}));
    assert_eq!(checks::metric_keys(&b), serde_json::json!({}));
}
