//! Flooring, next and timeline: table-driven cases and properties.

use jiff::Timestamp;
use jiff::civil::Weekday;
use jiff::tz::TimeZone;
use proptest::prelude::*;

use super::*;

fn cal(zone: &str) -> Calendar {
    Calendar::named(zone, Weekday::Monday).expect("zone")
}

fn g(s: &str) -> Granularity {
    s.parse().expect("granularity")
}

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap_or_else(|e| panic!("{s}: {e}"))
}

fn shown(c: &Calendar, t: Timestamp) -> String {
    t.to_zoned(c.time_zone().clone())
        .strftime("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// (zone, granularity, instant, expected floor, expected next start), instants with offsets.
const CASES: &[(&str, &str, &str, &str, &str)] = &[
    // New York, spring forward 2024-03-10 02:00 EST -> 03:00 EDT.
    (
        "America/New_York",
        "1h",
        "2024-03-10T01:59:59-05:00",
        "2024-03-10T01:00:00-05:00",
        "2024-03-10T03:00:00-04:00",
    ),
    (
        "America/New_York",
        "1h",
        "2024-03-10T03:30:00-04:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T04:00:00-04:00",
    ),
    (
        "America/New_York",
        "2h",
        "2024-03-10T03:30:00-04:00",
        "2024-03-10T03:00:00-04:00",
        "2024-03-10T04:00:00-04:00",
    ),
    (
        "America/New_York",
        "2h",
        "2024-03-10T01:30:00-05:00",
        "2024-03-10T00:00:00-05:00",
        "2024-03-10T03:00:00-04:00",
    ),
    (
        "America/New_York",
        "1d",
        "2024-03-10T23:00:00-04:00",
        "2024-03-10T00:00:00-05:00",
        "2024-03-11T00:00:00-04:00",
    ),
    // New York, fall back 2024-11-03 02:00 EDT -> 01:00 EST: both 01:xx hours are buckets.
    (
        "America/New_York",
        "1h",
        "2024-11-03T00:59:59-04:00",
        "2024-11-03T00:00:00-04:00",
        "2024-11-03T01:00:00-04:00",
    ),
    (
        "America/New_York",
        "1h",
        "2024-11-03T01:30:00-04:00",
        "2024-11-03T01:00:00-04:00",
        "2024-11-03T01:00:00-05:00",
    ),
    (
        "America/New_York",
        "1h",
        "2024-11-03T01:30:00-05:00",
        "2024-11-03T01:00:00-05:00",
        "2024-11-03T02:00:00-05:00",
    ),
    (
        "America/New_York",
        "15m",
        "2024-11-03T01:50:00-05:00",
        "2024-11-03T01:45:00-05:00",
        "2024-11-03T02:00:00-05:00",
    ),
    (
        "America/New_York",
        "2h",
        "2024-11-03T01:30:00-05:00",
        "2024-11-03T00:00:00-04:00",
        "2024-11-03T02:00:00-05:00",
    ),
    (
        "America/New_York",
        "1d",
        "2024-11-03T23:59:59-05:00",
        "2024-11-03T00:00:00-04:00",
        "2024-11-04T00:00:00-05:00",
    ),
    // London: 2024-03-31 01:00 GMT -> 02:00 BST; 2024-10-27 02:00 BST -> 01:00 GMT.
    (
        "Europe/London",
        "1h",
        "2024-03-31T02:30:00+01:00",
        "2024-03-31T02:00:00+01:00",
        "2024-03-31T03:00:00+01:00",
    ),
    (
        "Europe/London",
        "1h",
        "2024-03-31T00:30:00+00:00",
        "2024-03-31T00:00:00+00:00",
        "2024-03-31T02:00:00+01:00",
    ),
    (
        "Europe/London",
        "1h",
        "2024-10-27T01:30:00+01:00",
        "2024-10-27T01:00:00+01:00",
        "2024-10-27T01:00:00+00:00",
    ),
    (
        "Europe/London",
        "1d",
        "2024-10-27T12:00:00+00:00",
        "2024-10-27T00:00:00+01:00",
        "2024-10-28T00:00:00+00:00",
    ),
    // Lord Howe: 30-minute DST. 2024-04-07 02:00 +11 -> 01:30 +10:30; 2024-10-06 02:00 +10:30 -> 02:30 +11.
    (
        "Australia/Lord_Howe",
        "1h",
        "2024-04-07T01:45:00+10:30",
        "2024-04-07T01:00:00+11:00",
        "2024-04-07T02:00:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "1h",
        "2024-04-07T01:15:00+11:00",
        "2024-04-07T01:00:00+11:00",
        "2024-04-07T02:00:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "30m",
        "2024-04-07T01:45:00+11:00",
        "2024-04-07T01:30:00+11:00",
        "2024-04-07T01:30:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "30m",
        "2024-04-07T01:45:00+10:30",
        "2024-04-07T01:30:00+10:30",
        "2024-04-07T02:00:00+10:30",
    ),
    (
        "Australia/Lord_Howe",
        "1h",
        "2024-10-06T02:45:00+11:00",
        "2024-10-06T02:30:00+11:00",
        "2024-10-06T03:00:00+11:00",
    ),
    (
        "Australia/Lord_Howe",
        "1h",
        "2024-10-06T01:59:00+10:30",
        "2024-10-06T01:00:00+10:30",
        "2024-10-06T02:30:00+11:00",
    ),
    (
        "Australia/Lord_Howe",
        "1d",
        "2024-10-06T12:00:00+11:00",
        "2024-10-06T00:00:00+10:30",
        "2024-10-07T00:00:00+11:00",
    ),
    // Kathmandu, +05:45 all year.
    (
        "Asia/Kathmandu",
        "1h",
        "2024-06-01T10:50:00+05:45",
        "2024-06-01T10:00:00+05:45",
        "2024-06-01T11:00:00+05:45",
    ),
    (
        "Asia/Kathmandu",
        "15m",
        "2024-06-01T10:50:00+05:45",
        "2024-06-01T10:45:00+05:45",
        "2024-06-01T11:00:00+05:45",
    ),
    (
        "Asia/Kathmandu",
        "1d",
        "2024-06-01T03:00:00+05:45",
        "2024-06-01T00:00:00+05:45",
        "2024-06-02T00:00:00+05:45",
    ),
    // Havana skips midnight: 2024-03-10 00:00 CST -> 01:00 CDT, so the day starts at 01:00.
    (
        "America/Havana",
        "1d",
        "2024-03-10T12:00:00-04:00",
        "2024-03-10T01:00:00-04:00",
        "2024-03-11T00:00:00-04:00",
    ),
    (
        "America/Havana",
        "1d",
        "2024-03-09T23:59:59-05:00",
        "2024-03-09T00:00:00-05:00",
        "2024-03-10T01:00:00-04:00",
    ),
    (
        "America/Havana",
        "1h",
        "2024-03-10T01:30:00-04:00",
        "2024-03-10T01:00:00-04:00",
        "2024-03-10T02:00:00-04:00",
    ),
    (
        "America/Havana",
        "1h",
        "2024-03-09T23:30:00-05:00",
        "2024-03-09T23:00:00-05:00",
        "2024-03-10T01:00:00-04:00",
    ),
    // Clipped periods and multi-unit counts, in UTC.
    (
        "UTC",
        "33m",
        "2024-05-01T10:40:00+00:00",
        "2024-05-01T10:33:00+00:00",
        "2024-05-01T11:00:00+00:00",
    ),
    (
        "UTC",
        "33m",
        "2024-05-01T10:32:59+00:00",
        "2024-05-01T10:00:00+00:00",
        "2024-05-01T10:33:00+00:00",
    ),
    (
        "UTC",
        "7s",
        "2024-05-01T10:00:59+00:00",
        "2024-05-01T10:00:56+00:00",
        "2024-05-01T10:01:00+00:00",
    ),
    (
        "UTC",
        "5h",
        "2024-05-01T23:00:00+00:00",
        "2024-05-01T20:00:00+00:00",
        "2024-05-02T00:00:00+00:00",
    ),
    (
        "UTC",
        "5h",
        "2024-05-01T04:59:59+00:00",
        "2024-05-01T00:00:00+00:00",
        "2024-05-01T05:00:00+00:00",
    ),
    (
        "UTC",
        "7d",
        "2024-12-31T12:00:00+00:00",
        "2024-12-30T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "7d",
        "2023-12-31T12:00:00+00:00",
        "2023-12-31T00:00:00+00:00",
        "2024-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "7d",
        "2025-01-09T00:00:00+00:00",
        "2025-01-08T00:00:00+00:00",
        "2025-01-15T00:00:00+00:00",
    ),
    // Weeks starting Monday across New Year: 2024 starts on a Monday; 2025 on a Wednesday.
    (
        "UTC",
        "1w",
        "2024-12-31T12:00:00+00:00",
        "2024-12-30T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "1w",
        "2025-01-03T12:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
        "2025-01-06T00:00:00+00:00",
    ),
    (
        "UTC",
        "1w",
        "2025-01-06T00:00:00+00:00",
        "2025-01-06T00:00:00+00:00",
        "2025-01-13T00:00:00+00:00",
    ),
    (
        "UTC",
        "2w",
        "2024-12-23T00:00:00+00:00",
        "2024-12-16T00:00:00+00:00",
        "2024-12-30T00:00:00+00:00",
    ),
    (
        "UTC",
        "2w",
        "2024-12-31T00:00:00+00:00",
        "2024-12-30T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "2w",
        "2025-01-20T00:00:00+00:00",
        "2025-01-20T00:00:00+00:00",
        "2025-02-03T00:00:00+00:00",
    ),
    (
        "UTC",
        "1q",
        "2024-05-15T00:00:00+00:00",
        "2024-04-01T00:00:00+00:00",
        "2024-07-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "1q",
        "2024-12-31T23:59:59+00:00",
        "2024-10-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "5mo",
        "2024-12-01T00:00:00+00:00",
        "2024-11-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "1y",
        "2024-07-01T00:00:00+00:00",
        "2024-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "5y",
        "2024-07-01T00:00:00+00:00",
        "2020-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
    ),
    (
        "UTC",
        "5y",
        "2025-01-01T00:00:00+00:00",
        "2025-01-01T00:00:00+00:00",
        "2030-01-01T00:00:00+00:00",
    ),
    (
        "America/New_York",
        "1mo",
        "2024-11-30T23:00:00-05:00",
        "2024-11-01T00:00:00-04:00",
        "2024-12-01T00:00:00-05:00",
    ),
];

#[test]
fn table() {
    let mut failures = Vec::new();
    for &(zone, gran, at, floor, next) in CASES {
        let c = cal(zone);
        let f = c.floor(ts(at), g(gran)).expect("floor");
        let n = c.next(f, g(gran)).expect("next");
        if shown(&c, f) != floor || shown(&c, n) != next {
            failures.push(format!(
                "{zone} {gran} {at}: floor {} next {} (expected {floor} and {next})",
                shown(&c, f),
                shown(&c, n)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn week_start_sunday_across_new_year() {
    let c = Calendar::named("UTC", Weekday::Sunday).unwrap();
    let cases = [
        // 2024's first Sunday is 7 January; 2025's is 5 January.
        (
            "2024-12-31T00:00:00Z",
            "2024-12-29T00:00:00+00:00",
            "2025-01-01T00:00:00+00:00",
        ),
        (
            "2025-01-04T00:00:00Z",
            "2025-01-01T00:00:00+00:00",
            "2025-01-05T00:00:00+00:00",
        ),
        (
            "2025-01-05T00:00:00Z",
            "2025-01-05T00:00:00+00:00",
            "2025-01-12T00:00:00+00:00",
        ),
        (
            "2024-01-06T00:00:00Z",
            "2024-01-01T00:00:00+00:00",
            "2024-01-07T00:00:00+00:00",
        ),
    ];
    for (at, floor, next) in cases {
        let f = c.floor(ts(at), g("1w")).unwrap();
        assert_eq!(shown(&c, f), floor, "{at}");
        assert_eq!(shown(&c, c.next(f, g("1w")).unwrap()), next, "{at}");
    }
}

#[test]
fn fall_back_timeline_has_both_one_oclock_hours() {
    let c = cal("America/New_York");
    let line = c
        .timeline(
            ts("2024-11-03T00:10:00-04:00"),
            ts("2024-11-03T03:05:00-05:00"),
            g("1h"),
        )
        .unwrap();
    let shown: Vec<String> = line.iter().map(|t| shown(&c, *t)).collect();
    assert_eq!(
        shown,
        [
            "2024-11-03T00:00:00-04:00",
            "2024-11-03T01:00:00-04:00",
            "2024-11-03T01:00:00-05:00",
            "2024-11-03T02:00:00-05:00",
            "2024-11-03T03:00:00-05:00"
        ]
    );
}

#[test]
fn timeline_bounds() {
    let c = Calendar::default();
    assert!(
        c.timeline(
            ts("2024-01-02T00:00:00Z"),
            ts("2024-01-01T00:00:00Z"),
            g("1h")
        )
        .unwrap()
        .is_empty()
    );
    let one = c
        .timeline(
            ts("2024-01-01T00:30:00Z"),
            ts("2024-01-01T00:30:00Z"),
            g("1h"),
        )
        .unwrap();
    assert_eq!(one, vec![ts("2024-01-01T00:00:00Z")]);
    let err = c
        .timeline(
            ts("1970-01-01T00:00:00Z"),
            ts("2030-01-01T00:00:00Z"),
            g("1s"),
        )
        .unwrap_err();
    assert!(matches!(err, Error::InvalidInput(_)), "{err}");
}

#[test]
fn unknown_zone_is_an_error() {
    let err = Calendar::named("Mars/Olympus_Mons", Weekday::Monday).unwrap_err();
    assert!(err.to_string().contains("Mars/Olympus_Mons"), "{err}");
}

const ZONES: &[&str] = &[
    "UTC",
    "America/New_York",
    "Europe/London",
    "Australia/Lord_Howe",
    "Asia/Kathmandu",
    "America/Havana",
    "America/Sao_Paulo",
    "Pacific/Chatham",
    "America/St_Johns",
    "Asia/Tehran",
    "Africa/Casablanca",
    "Pacific/Apia",
];

const GRANULARITIES: &[(&str, i64)] = &[
    // (granularity, sampling step in seconds: no bucket of it is shorter than the step)
    ("1s", 1),
    ("7s", 1),
    ("1m", 60),
    ("15m", 60),
    ("33m", 60),
    ("1h", 60),
    ("5h", 60),
    ("1d", 3600),
    ("7d", 3600),
    ("1w", 3600),
    ("2w", 3600),
    ("1mo", 3600),
    ("1q", 3600),
    ("1y", 3600),
];

/// How long a stretch to sample for a granularity: a few buckets' worth.
fn span_for(gran: &str) -> i64 {
    match g(gran).unit() {
        Unit::Second => 300,
        Unit::Minute => 4 * 3600,
        Unit::Hour => 3 * 86_400,
        Unit::Day | Unit::Week => 70 * 86_400,
        Unit::Month | Unit::Quarter | Unit::Year => 800 * 86_400,
    }
}

fn instant() -> impl Strategy<Value = Timestamp> {
    // 1990 to 2037, where every zone here has whole-minute offsets.
    (631_152_000_i64..2_114_380_800).prop_map(|s| Timestamp::from_second(s).expect("in range"))
}

fn setup() -> impl Strategy<Value = (Calendar, &'static str, i64)> {
    (
        prop::sample::select(ZONES),
        prop::sample::select(GRANULARITIES),
        prop::sample::select(&[Weekday::Monday, Weekday::Sunday, Weekday::Saturday][..]),
    )
        .prop_map(|(zone, (gran, step), week)| {
            (
                Calendar::new(TimeZone::get(zone).expect("zone"), week),
                gran,
                step,
            )
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn floor_contains_and_is_idempotent((c, gran, _) in setup(), t in instant()) {
        let gr = g(gran);
        let f = c.floor(t, gr).unwrap();
        let n = c.next(f, gr).unwrap();
        prop_assert!(f <= t, "{gran}: floor {f} > t {t}");
        prop_assert!(t < n, "{gran}: next {n} <= t {t} (floor {f})");
        prop_assert_eq!(c.floor(f, gr).unwrap(), f);
        prop_assert!(c.next(n, gr).unwrap() > n);
        prop_assert_eq!(c.floor(n, gr).unwrap(), n, "{} next start is not a bucket start", gran);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn timeline_is_the_set_of_floors((c, gran, step) in setup(), a in instant(), frac in 0.0_f64..1.0) {
        let gr = g(gran);
        let b = a.checked_add(jiff::SignedDuration::from_secs((frac * span_for(gran) as f64) as i64)).unwrap();
        let line = c.timeline(a, b, gr).unwrap();
        prop_assert!(line.windows(2).all(|w| w[0] < w[1]), "timeline not strictly increasing");
        let mut floors = Vec::new();
        let mut t = a;
        while t <= b {
            let f = c.floor(t, gr).unwrap();
            if floors.last() != Some(&f) {
                prop_assert!(floors.last().is_none_or(|last| *last < f), "floor went backwards at {t}");
                floors.push(f);
            }
            t = t.checked_add(jiff::SignedDuration::from_secs(step)).unwrap();
        }
        let last = c.floor(b, gr).unwrap();
        if floors.last() != Some(&last) {
            floors.push(last);
        }
        prop_assert_eq!(line, floors);
    }
}
