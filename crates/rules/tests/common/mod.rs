//! The rules suite, written once for any store that is both a metric and a throttle store;
//! each target instantiates it with `rules_suite!(store())`, one fresh store (or key prefix,
//! or database file) per test. Every test asserts the same records on every store.

#![allow(dead_code)]

use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use stats_core::jiff::Timestamp;
use stats_core::{Batch, Error, MetricStore, Number, ThrottleStore, Values};
use stats_rules::{
    Context, CustomGuard, CustomStrategy, Entity, EntityFn, FieldValue, Guard, GuardCall,
    RecordKey, Registry, Rule, Rules, Strategy, StrategyCall,
};

/// Instantiates every test of the suite with `$store` (an expression giving a future of an
/// `Arc` of the store), evaluated once per test.
macro_rules! rules_suite {
    ($store:expr) => {
        rules_suite!(@each $store;
            strategies, key_fields_from_entity_and_context, missing_key_field,
            time_limit_guard, throttle_guard, throttle_not_consumed_when_an_earlier_guard_blocks,
            custom_guard, cascade_three_levels, cascade_is_one_batch, bad_rules_are_refused,
            throttle_under_contention, history_per_day);
    };
    (@each $store:expr; $($name:ident),*) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $name() {
            common::$name($store.await).await;
        }
    )*};
}

pub(crate) trait Both: MetricStore + ThrottleStore {}
impl<T: MetricStore + ThrottleStore> Both for T {}

/// A clock the test sets, in unix seconds.
#[derive(Clone)]
struct Clock(Arc<AtomicI64>);

impl Clock {
    fn at(seconds: i64) -> Self {
        Clock(Arc::new(AtomicI64::new(seconds)))
    }
    fn set(&self, seconds: i64) {
        self.0.store(seconds, Ordering::SeqCst);
    }
    fn reader(&self) -> impl Fn() -> Timestamp + Send + Sync + 'static {
        let now = Arc::clone(&self.0);
        move || Timestamp::from_second(now.load(Ordering::SeqCst)).expect("clock")
    }
}

/// Counts calls of an `on_trigger` and remembers the entity types it was given.
#[derive(Clone, Default)]
struct Triggers(Arc<Mutex<Vec<String>>>);

impl Triggers {
    fn callback(&self) -> impl Fn(&dyn Entity) + Send + Sync + 'static {
        let seen = Arc::clone(&self.0);
        move |entity| seen.lock().unwrap().push(entity.entity_type().to_owned())
    }
    fn seen(&self) -> Vec<String> {
        self.0.lock().unwrap().clone()
    }
}

/// Stores twice the applied value.
struct Double;

#[async_trait]
impl CustomStrategy for Double {
    async fn plan(&self, call: StrategyCall<'_>) -> stats_core::Result<Batch> {
        let doubled = call.value.checked_add(call.value)?;
        let mut batch = Batch::new();
        batch.set([call.key.clone()], &Values::new().with(call.stat, doubled)?)?;
        Ok(batch)
    }
}

/// Lets values up to the metadata's `max` through.
struct AtMost;

#[async_trait]
impl CustomGuard for AtMost {
    async fn allows(&self, call: &GuardCall<'_>) -> stats_core::Result<bool> {
        let max = call.metadata["max"].as_i64().expect("max in the metadata");
        Ok(call.value.as_f64() <= max as f64)
    }
}

/// The stat_trek example's entities as application types.
struct Session {
    id: i64,
}

struct Course {
    id: i64,
    session: Arc<Session>,
}

struct Test {
    id: i64,
    slug: String,
    course: Arc<Course>,
}

impl Entity for Session {
    fn entity_type(&self) -> &str {
        "session"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        (name == "id").then_some(FieldValue::Int(self.id))
    }
    fn parents(&self, _: &str) -> Vec<Arc<dyn Entity>> {
        Vec::new()
    }
}

impl Entity for Course {
    fn entity_type(&self) -> &str {
        "course"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        (name == "id").then_some(FieldValue::Int(self.id))
    }
    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>> {
        match association {
            "session" => vec![self.session.clone()],
            _ => Vec::new(),
        }
    }
}

impl Entity for Test {
    fn entity_type(&self) -> &str {
        "test"
    }
    fn field(&self, name: &str) -> Option<FieldValue> {
        match name {
            "id" => Some(FieldValue::Int(self.id)),
            "slug" => Some(FieldValue::Text(self.slug.clone())),
            _ => None,
        }
    }
    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>> {
        match association {
            "course" => vec![self.course.clone()],
            _ => Vec::new(),
        }
    }
}

fn test_entity(id: i64, slug: &str) -> Test {
    let session = Arc::new(Session { id: 100 });
    let course = Arc::new(Course { id: 10, session });
    Test {
        id,
        slug: slug.to_owned(),
        course,
    }
}

fn invalid_input(result: stats_core::Result<impl std::fmt::Debug>) -> String {
    match result {
        Err(Error::InvalidInput(message)) => message,
        other => panic!("expected InvalidInput, got {other:?}"),
    }
}

/// `rules.apply(entity, "score", value, context)`, which must succeed.
async fn apply(
    rules: &Rules,
    entity: &dyn Entity,
    value: impl Into<Number>,
    context: &Context,
) -> stats_rules::Outcome {
    rules.apply(entity, "score", value, context).await.unwrap()
}

fn int(n: i64) -> Option<Number> {
    Some(Number::Int(n))
}

pub(crate) async fn strategies<S: Both>(store: Arc<S>) {
    let registry = Registry::new().strategy("double", Double);
    let mut builder = Rules::builder().registry(registry);
    for (stat, strategy) in [
        ("last", Strategy::Override),
        ("total", Strategy::Sum),
        ("best", Strategy::Max),
        ("worst", Strategy::Min),
        ("doubled", Strategy::Custom("double".into())),
    ] {
        builder = builder.rule(Rule::new("test", stat).strategy(strategy));
    }
    let rules = builder.build(store.clone(), store).unwrap();
    let test = test_entity(7, "t");
    let none = Context::new();
    for value in [5, 3, 8, 4] {
        for stat in ["last", "total", "best", "worst", "doubled"] {
            let outcome = rules.apply(&test, stat, value, &none).await.unwrap();
            assert!(outcome.was_updated("test") && outcome.blocked.is_empty());
        }
    }
    let keys = Context::new().with("test_id", 7);
    let read = |stat: &'static str| {
        let rules = &rules;
        let keys = &keys;
        async move { rules.record("test", stat, keys).await.unwrap() }
    };
    assert_eq!(read("last").await, int(4));
    assert_eq!(read("total").await, int(20));
    assert_eq!(read("best").await, int(8));
    assert_eq!(read("worst").await, int(3));
    assert_eq!(read("doubled").await, int(8));
    // All five stats are fields of one record: the default name and key `test_id <- id`.
    let record = RecordKey::new("test_statistic", [("test_id", "7")]);
    let doc = rules.read(&record).await.unwrap();
    assert_eq!(doc.len(), 5, "{doc:?}");
    // Floats stay floats, and a non-finite one is refused before anything is written.
    rules
        .apply(&test, "total", Number::float(0.5).unwrap(), &none)
        .await
        .unwrap();
    assert_eq!(read("total").await, Some(Number::Float(20.5)));
    assert!(matches!(
        rules
            .apply(&test, "total", Number::Float(f64::NAN), &none)
            .await,
        Err(Error::InvalidValue { .. })
    ));
    // A stat without a rule is a typed error naming it.
    let message = invalid_input(rules.apply(&test, "nope", 1, &none).await);
    assert!(message.contains("`nope`"), "{message}");
}

pub(crate) async fn key_fields_from_entity_and_context<S: Both>(store: Arc<S>) {
    let rules = Rules::builder()
        .rule(
            Rule::new("test", "score")
                .record("test_statistic")
                .key_from_context("user_id")
                .key_from_entity("test_slug", "slug")
                .strategy(Strategy::Sum),
        )
        .rule(
            Rule::new("course", "score")
                .record("course_totals")
                .key_from_context("user_id"),
        )
        .build(store.clone(), store)
        .unwrap();
    let algebra = test_entity(1, "algebra");
    // A slug that is hostile to key layouts addresses its own record and round-trips.
    let hostile = test_entity(2, "a::b {x} $y:");
    let ada = Context::new().with("user_id", 1);
    let bob = Context::new().with("user_id", "bob");
    let outcome = rules.apply(&algebra, "score", 20, &ada).await.unwrap();
    assert_eq!(
        outcome.updated[0].record,
        RecordKey::new(
            "test_statistic",
            [("user_id", "1"), ("test_slug", "algebra")]
        )
    );
    rules.apply(&algebra, "score", 5, &ada).await.unwrap();
    rules.apply(&algebra, "score", 7, &bob).await.unwrap();
    let outcome = rules.apply(&hostile, "score", 9, &ada).await.unwrap();
    let record = &outcome.updated[0].record;
    assert_eq!(RecordKey::parse(&record.metric()).unwrap(), *record);
    assert_eq!(record.fields[1].1, "a::b {x} $y:");

    let keys =
        |user: FieldValue, slug: &str| Context::new().with("user_id", user).with("test_slug", slug);
    let score = |keys: Context| {
        let rules = &rules;
        async move { rules.record("test", "score", &keys).await.unwrap() }
    };
    assert_eq!(score(keys(1.into(), "algebra")).await, int(25));
    assert_eq!(score(keys("bob".into(), "algebra")).await, int(7));
    assert_eq!(score(keys(1.into(), "a::b {x} $y:")).await, int(9));
    assert_eq!(score(keys(2.into(), "algebra")).await, None);
    // The record name given is used.
    let course = Course {
        id: 3,
        session: Arc::new(Session { id: 4 }),
    };
    let outcome = rules.apply(&course, "score", 1, &ada).await.unwrap();
    assert_eq!(outcome.updated[0].record.record, "course_totals");
    // The key of an entity, computed without applying.
    assert_eq!(
        rules.record_key(&algebra, "score", &ada).unwrap().metric(),
        "test_statistic:user_id=1:test_slug=algebra"
    );
}

pub(crate) async fn missing_key_field<S: Both>(store: Arc<S>) {
    let triggers = Triggers::default();
    let rules = Rules::builder()
        .rule(
            Rule::new("test", "score")
                .key_from_context("user_id")
                .key_from_entity("test_slug", "slug")
                .strategy(Strategy::Sum)
                .guard(Guard::throttle(Duration::from_secs(60)).on_trigger(triggers.callback()))
                .touch("course"),
        )
        .rule(
            Rule::new("course", "score")
                .key_from_context("user_id")
                .key_from_context("term"),
        )
        .build(store.clone(), store)
        .unwrap();
    let test = test_entity(1, "algebra");
    // Missing from the context: the error names the key field.
    let message = invalid_input(rules.apply(&test, "score", 1, &Context::new()).await);
    assert!(message.contains("`user_id`"), "{message}");
    // Missing from the entity: the error names the key field and the entity's field.
    let no_slug = EntityFn::new("test", |_| None);
    let ada = Context::new().with("user_id", 1);
    let message = invalid_input(rules.apply(&no_slug, "score", 1, &ada).await);
    assert!(
        message.contains("`test_slug`") && message.contains("`slug`"),
        "{message}"
    );
    // Missing only at the parent level (`term`): nothing is written and the test's throttle
    // window is not consumed (every level's keys are resolved before any guard runs).
    let message = invalid_input(rules.apply(&test, "score", 1, &ada).await);
    assert!(message.contains("`term`"), "{message}");
    let keys = Context::new()
        .with("user_id", 1)
        .with("test_slug", "algebra");
    assert_eq!(rules.record("test", "score", &keys).await.unwrap(), None);
    let full = ada.clone().with("term", "fall");
    let outcome = rules.apply(&test, "score", 1, &full).await.unwrap();
    assert!(outcome.was_updated("test") && outcome.was_updated("course"));
    assert_eq!(rules.record("test", "score", &keys).await.unwrap(), int(1));
    assert!(triggers.seen().is_empty());
    // Reading needs every key field too.
    let message = invalid_input(rules.record("test", "score", &ada).await);
    assert!(message.contains("`test_slug`"), "{message}");
    // A time is not a key.
    let at = Context::new().with("user_id", Timestamp::UNIX_EPOCH);
    let message = invalid_input(rules.apply(&test, "score", 1, &at).await);
    assert!(message.contains("is a time"), "{message}");
}

pub(crate) async fn time_limit_guard<S: Both>(store: Arc<S>) {
    let clock = Clock::at(1_000);
    let triggers = Triggers::default();
    let rules = Rules::builder()
        .clock(clock.reader())
        .rule(
            Rule::new("quiz", "score")
                .strategy(Strategy::Sum)
                .guard(Guard::time_limit("deadline").on_trigger(triggers.callback())),
        )
        .build(store.clone(), store)
        .unwrap();
    let quiz = |id: i64, deadline: Option<FieldValue>| {
        EntityFn::new("quiz", move |f| match f {
            "id" => Some(FieldValue::Int(id)),
            "deadline" => deadline.clone(),
            _ => None,
        })
    };
    let deadline = Timestamp::from_second(2_000).unwrap();
    let timed = quiz(1, Some(deadline.into()));
    let none = Context::new();
    // Before and at the deadline: let through.
    assert!(apply(&rules, &timed, 1, &none).await.was_updated("quiz"));
    clock.set(2_000);
    assert!(apply(&rules, &timed, 1, &none).await.was_updated("quiz"));
    // After: blocked, on_trigger once per block.
    clock.set(2_001);
    for round in 1..=3 {
        let outcome = rules.apply(&timed, "score", 1, &none).await.unwrap();
        assert_eq!(outcome.blocked_by("quiz"), Some("time_limit"));
        assert!(outcome.updated.is_empty());
        assert_eq!(triggers.seen().len(), round);
    }
    assert_eq!(triggers.seen(), ["quiz"; 3]);
    let keys = Context::new().with("quiz_id", 1);
    assert_eq!(rules.record("quiz", "score", &keys).await.unwrap(), int(2));
    // A deadline in unix seconds, a null deadline (none), a text deadline (an error).
    let seconds = quiz(2, Some(FieldValue::Int(2_000)));
    assert_eq!(
        apply(&rules, &seconds, 1, &none).await.blocked_by("quiz"),
        Some("time_limit")
    );
    let open = quiz(3, None);
    assert!(apply(&rules, &open, 1, &none).await.was_updated("quiz"));
    let text = quiz(4, Some("tomorrow".into()));
    let message = invalid_input(rules.apply(&text, "score", 1, &none).await);
    assert!(message.contains("`deadline`"), "{message}");
    assert_eq!(triggers.seen().len(), 4);
}

pub(crate) async fn throttle_guard<S: Both>(store: Arc<S>) {
    let triggers = Triggers::default();
    let period = Duration::from_millis(700);
    let rules = Rules::builder()
        .rule(
            Rule::new("test", "score")
                .key_from_context("user_id")
                .strategy(Strategy::Sum)
                .guard(Guard::throttle(period).on_trigger(triggers.callback())),
        )
        .build(store.clone(), store)
        .unwrap();
    let test = test_entity(1, "t");
    let ada = Context::new().with("user_id", 1);
    let bob = Context::new().with("user_id", 2);
    assert!(apply(&rules, &test, 1, &ada).await.was_updated("test"));
    let outcome = rules.apply(&test, "score", 1, &ada).await.unwrap();
    assert_eq!(outcome.blocked_by("test"), Some("throttle"));
    assert_eq!(triggers.seen(), ["test"]);
    // Per record: another user's record has its own window.
    assert!(apply(&rules, &test, 1, &bob).await.was_updated("test"));
    // After the period, let through again.
    tokio::time::sleep(period + Duration::from_millis(300)).await;
    assert!(apply(&rules, &test, 1, &ada).await.was_updated("test"));
    assert_eq!(rules.record("test", "score", &ada).await.unwrap(), int(2));
    assert_eq!(rules.record("test", "score", &bob).await.unwrap(), int(1));
    assert_eq!(triggers.seen().len(), 1);
}

pub(crate) async fn throttle_not_consumed_when_an_earlier_guard_blocks<S: Both>(store: Arc<S>) {
    let clock = Clock::at(5_000);
    let (late, throttled) = (Triggers::default(), Triggers::default());
    let rules = Rules::builder()
        .clock(clock.reader())
        .rule(
            Rule::new("quiz", "score")
                .guard(Guard::time_limit("deadline").on_trigger(late.callback()))
                .guard(Guard::throttle(Duration::from_secs(60)).on_trigger(throttled.callback())),
        )
        .build(store.clone(), store)
        .unwrap();
    let quiz = EntityFn::new("quiz", |f| match f {
        "id" => Some(FieldValue::Int(1)),
        "deadline" => Some(FieldValue::Int(4_000)),
        _ => None,
    });
    let none = Context::new();
    for _ in 0..3 {
        let outcome = rules.apply(&quiz, "score", 1, &none).await.unwrap();
        assert_eq!(outcome.blocked_by("quiz"), Some("time_limit"));
    }
    // Back before the deadline: the throttle was never acquired, so this goes through once.
    clock.set(3_000);
    let outcome = rules.apply(&quiz, "score", 9, &none).await.unwrap();
    assert!(outcome.was_updated("quiz"), "{outcome:?}");
    let outcome = rules.apply(&quiz, "score", 10, &none).await.unwrap();
    assert_eq!(outcome.blocked_by("quiz"), Some("throttle"));
    assert_eq!((late.seen().len(), throttled.seen().len()), (3, 1));
    let keys = Context::new().with("quiz_id", 1);
    assert_eq!(rules.record("quiz", "score", &keys).await.unwrap(), int(9));
}

pub(crate) async fn custom_guard<S: Both>(store: Arc<S>) {
    let triggers = Triggers::default();
    let rules = Rules::builder()
        .registry(Registry::new().guard("at_most", AtMost))
        .rule(
            Rule::new("test", "score").strategy(Strategy::Max).guard(
                Guard::custom("at_most", serde_json::json!({"max": 10}))
                    .on_trigger(triggers.callback()),
            ),
        )
        .build(store.clone(), store)
        .unwrap();
    let test = test_entity(1, "t");
    let none = Context::new();
    assert!(apply(&rules, &test, 5, &none).await.was_updated("test"));
    let outcome = rules.apply(&test, "score", 20, &none).await.unwrap();
    assert_eq!(outcome.blocked_by("test"), Some("at_most"));
    assert_eq!(
        outcome.blocked[0].record,
        RecordKey::new("test_statistic", [("test_id", "1")])
    );
    assert!(apply(&rules, &test, 10, &none).await.was_updated("test"));
    assert_eq!(triggers.seen(), ["test"]);
    let keys = Context::new().with("test_id", 1);
    assert_eq!(rules.record("test", "score", &keys).await.unwrap(), int(10));
}

/// Session <- Course <- Test, with the stat_trek example's key fields, and a throttle at the
/// middle level.
fn cascade_rules<S: Both>(store: Arc<S>, course_triggers: &Triggers) -> Rules {
    Rules::builder()
        .rule(
            Rule::new("test", "score")
                .key_from_context("user_id")
                .key_from_entity("test_slug", "slug")
                .strategy(Strategy::Sum)
                .touch("course"),
        )
        .rule(
            Rule::new("course", "score")
                .key_from_context("user_id")
                .key_from_entity("course_id", "id")
                .strategy(Strategy::Sum)
                .guard(
                    Guard::throttle(Duration::from_secs(60)).on_trigger(course_triggers.callback()),
                )
                .touch("session"),
        )
        .rule(
            Rule::new("session", "score")
                .key_from_context("user_id")
                .key_from_entity("session_id", "id")
                .strategy(Strategy::Sum),
        )
        .build(store.clone(), store)
        .unwrap()
}

pub(crate) async fn cascade_three_levels<S: Both>(store: Arc<S>) {
    let triggers = Triggers::default();
    let rules = cascade_rules(store, &triggers);
    let test = test_entity(1, "algebra");
    let ada = Context::new().with("user_id", 1);
    let outcome = rules.apply(&test, "score", 20, &ada).await.unwrap();
    let types: Vec<&str> = outcome
        .updated
        .iter()
        .map(|u| u.entity_type.as_str())
        .collect();
    assert_eq!(types, ["test", "course", "session"]);
    assert!(outcome.blocked.is_empty());
    // The middle level is throttled: the test is updated, the course blocked, and the session
    // above it not reached (a touch follows an update).
    let outcome = rules.apply(&test, "score", 5, &ada).await.unwrap();
    let types: Vec<&str> = outcome
        .updated
        .iter()
        .map(|u| u.entity_type.as_str())
        .collect();
    assert_eq!(types, ["test"]);
    assert_eq!(outcome.blocked_by("course"), Some("throttle"));
    assert_eq!(outcome.blocked.len(), 1);
    assert_eq!(
        outcome.blocked[0].record,
        RecordKey::new("course_statistic", [("user_id", "1"), ("course_id", "10")])
    );
    assert_eq!(triggers.seen(), ["course"]);
    let test_keys = ada.clone().with("test_slug", "algebra");
    let course_keys = ada.clone().with("course_id", 10);
    let session_keys = ada.clone().with("session_id", 100);
    assert_eq!(
        rules.record("test", "score", &test_keys).await.unwrap(),
        int(25)
    );
    assert_eq!(
        rules.record("course", "score", &course_keys).await.unwrap(),
        int(20)
    );
    assert_eq!(
        rules
            .record("session", "score", &session_keys)
            .await
            .unwrap(),
        int(20)
    );
    // Another user's course record has its own window: all three levels again.
    let bob = Context::new().with("user_id", 2);
    let outcome = rules.apply(&test, "score", 3, &bob).await.unwrap();
    assert_eq!(outcome.updated.len(), 3, "{outcome:?}");
    // Applying at the top level runs the top level only.
    let session = test.course.session.clone();
    let outcome = apply(&rules, session.as_ref(), 1, &ada).await;
    assert!(outcome.was_updated("session") && outcome.updated.len() == 1);
    assert_eq!(
        rules
            .record("session", "score", &session_keys)
            .await
            .unwrap(),
        int(21)
    );
    // Applying at the middle level: blocked there, so nothing above is written.
    let course = test.course.clone();
    let outcome = apply(&rules, course.as_ref(), 1, &ada).await;
    assert_eq!(outcome.blocked_by("course"), Some("throttle"));
    assert!(outcome.updated.is_empty());
    assert_eq!(
        rules
            .record("session", "score", &session_keys)
            .await
            .unwrap(),
        int(21)
    );
    assert_eq!(triggers.seen(), ["course", "course"]);
}

pub(crate) async fn cascade_is_one_batch<S: Both>(store: Arc<S>) {
    let atomic = store.capabilities().atomic_batch;
    let triggers = Triggers::default();
    let rules = cascade_rules(store, &triggers);
    let test = test_entity(1, "algebra");
    let ada = Context::new().with("user_id", 1);
    // The session's total is at the top of the range: the cascade's sum overflows there.
    let session = test.course.session.clone();
    apply(&rules, session.as_ref(), i64::MAX, &ada).await;
    let err = rules.apply(&test, "score", 1, &ada).await.unwrap_err();
    assert!(matches!(err, Error::Overflow { .. }), "{err:?}");
    let test_keys = ada.clone().with("test_slug", "algebra");
    let session_keys = ada.clone().with("session_id", 100);
    assert_eq!(
        rules
            .record("session", "score", &session_keys)
            .await
            .unwrap(),
        int(i64::MAX)
    );
    if atomic {
        // All or nothing: the test's and the course's records were not written either.
        assert_eq!(
            rules.record("test", "score", &test_keys).await.unwrap(),
            None
        );
        let course_keys = ada.clone().with("course_id", 10);
        assert_eq!(
            rules.record("course", "score", &course_keys).await.unwrap(),
            None
        );
    }
}

pub(crate) async fn bad_rules_are_refused<S: Both>(store: Arc<S>) {
    let build = |rules: Vec<Rule>, registry: Registry| {
        let mut builder = Rules::builder().registry(registry);
        for rule in rules {
            builder = builder.rule(rule);
        }
        builder.build(store.clone(), store.clone())
    };
    let none = Registry::new;
    // A cycle, named.
    let message = invalid_input(build(
        vec![
            Rule::new("test", "score").touch("course"),
            Rule::new("course", "score").touch_as("parent", "session"),
            Rule::new("session", "score").touch("test"),
        ],
        none(),
    ));
    assert!(
        message.contains("course -> session -> test -> course"),
        "{message}"
    );
    let message = invalid_input(build(
        vec![Rule::new("test", "score").touch("test")],
        none(),
    ));
    assert!(message.contains("test -> test"), "{message}");
    // A touch without a rule for the stat, unregistered custom names, bad names, duplicates.
    for (rules, expected) in [
        (vec![Rule::new("test", "score").touch("course")], "`course`"),
        (
            vec![Rule::new("test", "score").strategy(Strategy::Custom("double".into()))],
            "`double`",
        ),
        (
            vec![Rule::new("test", "score").guard(Guard::custom("gone", serde_json::Value::Null))],
            "`gone`",
        ),
        (vec![Rule::new("test", "a::b")], "\"a::b\""),
        (vec![Rule::new("te st", "score")], "\"te st\""),
        (vec![Rule::new("test", "score").record("")], "record name"),
        (
            vec![
                Rule::new("test", "score")
                    .key_from_context("user_id")
                    .key_from_context("user_id"),
            ],
            "`user_id` is declared twice",
        ),
        (
            vec![Rule::new("test", "score"), Rule::new("test", "score")],
            "two rules",
        ),
        (
            vec![Rule::new("test", "score").guard(Guard::throttle(Duration::ZERO))],
            "throttle",
        ),
    ] {
        let message = invalid_input(build(rules, none()));
        assert!(message.contains(expected), "{expected}: {message}");
    }
    // Registered, the same custom names build.
    let registry = Registry::new()
        .strategy("double", Double)
        .guard("gone", AtMost);
    build(
        vec![
            Rule::new("test", "score")
                .strategy(Strategy::Custom("double".into()))
                .guard(Guard::custom("gone", serde_json::json!({"max": 1}))),
        ],
        registry,
    )
    .unwrap();
    // A parent of another type than the rule touches is refused at apply time.
    let rules = build(
        vec![
            Rule::new("test", "score").touch("course"),
            Rule::new("course", "score"),
        ],
        none(),
    )
    .unwrap();
    let wrong = EntityFn::new("test", |f| (f == "id").then_some(FieldValue::Int(1)))
        .parent("course", Arc::new(Session { id: 1 }));
    let message = invalid_input(rules.apply(&wrong, "score", 1, &Context::new()).await);
    assert!(message.contains("`session`"), "{message}");
    // A record key over the name rule's 200 bytes is a typed error, nothing written.
    let long = EntityFn::new("test", |f| {
        (f == "id").then(|| FieldValue::Text("x".repeat(300)))
    });
    assert!(matches!(
        rules.apply(&long, "score", 1, &Context::new()).await,
        Err(Error::InvalidName { .. })
    ));
}

pub(crate) async fn throttle_under_contention<S: Both>(store: Arc<S>) {
    const TASKS: usize = 8;
    let triggers = Triggers::default();
    let period = Duration::from_millis(1_500);
    let rules = Arc::new(
        Rules::builder()
            .rule(
                Rule::new("test", "score")
                    .key_from_context("user_id")
                    .strategy(Strategy::Sum)
                    .guard(Guard::throttle(period).on_trigger(triggers.callback())),
            )
            .build(store.clone(), store)
            .unwrap(),
    );
    let test = Arc::new(test_entity(1, "t"));
    let ada = Context::new().with("user_id", 1);
    let updated = Arc::new(AtomicUsize::new(0));
    for round in 1..=2 {
        let barrier = Arc::new(tokio::sync::Barrier::new(TASKS));
        let tasks: Vec<_> = (0..TASKS)
            .map(|_| {
                let (rules, test, ada) = (rules.clone(), test.clone(), ada.clone());
                let (barrier, updated) = (barrier.clone(), updated.clone());
                tokio::spawn(async move {
                    barrier.wait().await;
                    let outcome = rules.apply(test.as_ref(), "score", 1, &ada).await.unwrap();
                    if outcome.was_updated("test") {
                        updated.fetch_add(1, Ordering::SeqCst);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        assert_eq!(
            updated.load(Ordering::SeqCst),
            round,
            "one update per period"
        );
        assert_eq!(triggers.seen().len(), round * (TASKS - 1));
        assert_eq!(
            rules.record("test", "score", &ada).await.unwrap(),
            int(round as i64)
        );
        tokio::time::sleep(period + Duration::from_millis(300)).await;
    }
}

pub(crate) async fn history_per_day<S: Both>(store: Arc<S>) {
    let day = 86_400;
    let clock = Clock::at(20_000 * day + 10 * 3_600);
    let rules = Rules::builder()
        .clock(clock.reader())
        .history_config(stats_core::tracker::Config::new().time_zone("UTC").unwrap())
        .rule(
            Rule::new("test", "score")
                .key_from_context("user_id")
                .strategy(Strategy::Sum)
                .guard(Guard::custom("at_most", serde_json::json!({"max": 100})))
                .history(["1d", "1h"]),
        )
        .rule(
            Rule::new("test", "best")
                .key_from_context("user_id")
                .strategy(Strategy::Max),
        )
        .registry(Registry::new().guard("at_most", AtMost))
        .build(store.clone(), store.clone())
        .unwrap();
    let test = test_entity(1, "t");
    let ada = Context::new().with("user_id", 1);
    rules.apply(&test, "score", 20, &ada).await.unwrap();
    rules.apply(&test, "score", 5, &ada).await.unwrap();
    // Blocked updates are not history either.
    let outcome = rules.apply(&test, "score", 500, &ada).await.unwrap();
    assert_eq!(outcome.blocked_by("test"), Some("at_most"));
    clock.set(20_002 * day + 3_600);
    rules.apply(&test, "score", 7, &ada).await.unwrap();
    let from = Timestamp::from_second(20_000 * day).unwrap();
    let to = Timestamp::from_second(20_002 * day).unwrap();
    let days = rules
        .history("test", "score", &ada, from, to, "1d".parse().unwrap())
        .await
        .unwrap();
    let per_day: Vec<Option<Number>> = days.values.iter().map(|v| v.number_at("score")).collect();
    assert_eq!(per_day, [int(25), None, int(7)]);
    let ten = Timestamp::from_second(20_000 * day + 10 * 3_600).unwrap();
    let hours = rules
        .history("test", "score", &ada, from, ten, "1h".parse().unwrap())
        .await
        .unwrap();
    assert_eq!(hours.len(), 11);
    assert_eq!(hours.values[10].number_at("score"), int(25));
    assert_eq!(hours.total("score").unwrap(), int(25));
    assert_eq!(rules.record("test", "score", &ada).await.unwrap(), int(32));
    // A rule without history says so.
    let message = invalid_input(
        rules
            .history("test", "best", &ada, from, to, "1d".parse().unwrap())
            .await,
    );
    assert!(message.contains("keeps no history"), "{message}");
    // A bad granularity is refused when the rules are built.
    let err = Rules::builder()
        .rule(Rule::new("test", "score").history(["1x"]))
        .build(store.clone(), store)
        .unwrap_err();
    assert!(matches!(err, Error::InvalidGranularity { .. }), "{err:?}");
}
