//! Statistics rules per entity: the model of the Ruby gem stat_trek, typed, race-free and on
//! every store.
//!
//! A [`Rule`] belongs to an entity type and a stat (`test`, `score`) and says which statistics
//! record an update goes to (its name and **key fields**, from the entity or the call's
//! [`Context`]), how the value combines with the stored one ([`Strategy`]), which [`Guard`]s can
//! block it, and which parent associations it **touches** (cascades to). [`Rules`] checks a
//! set of rules once (names, registered custom strategies and guards, no touch cycle) and
//! applies them: [`Rules::apply`] returns an [`Outcome`] listing the records updated and the
//! ones blocked, by which guard.
//!
//! Entities are the application's own types seen through the [`Entity`] trait (type name,
//! field values by name, parents by association), or the closure adapter [`EntityFn`]; no ORM
//! is assumed. Custom strategies and guards are registered by name in a [`Registry`] value.
//!
//! | piece | where it lives in the store |
//! |---|---|
//! | a record | the status slot of the metric [`RecordKey::metric`]: `<record>:<field>=<value>...`, values escaped |
//! | a stat of a record | the field named after the stat in that document (`{"score": 25}`) |
//! | a throttle window | the throttle key `rules:<record metric>:<stat>` |
//! | a record's [history](Rule::history) | the time buckets of the same metric, as the tracker writes them |
//!
//! What is atomic where is on [`Rules`].
//!
//! ```
//! use std::sync::Arc;
//! use std::time::Duration;
//!
//! use stats::atomics::AtomicsStore;
//! use stats::rules::{Context, Entity, EntityFn, Guard, Rule, Rules, Strategy};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> stats::Result<()> {
//! let store = Arc::new(AtomicsStore::new());
//! let rules = Rules::builder()
//!     .rule(
//!         Rule::new("test", "score")
//!             .key_from_context("user_id")
//!             .key_from_entity("test_slug", "slug")
//!             .strategy(Strategy::Sum)
//!             .guard(Guard::throttle(Duration::from_secs(30)))
//!             .touch("course"),
//!     )
//!     .rule(Rule::new("course", "score").key_from_context("user_id").strategy(Strategy::Max))
//!     .build(store.clone(), store)?;
//!
//! let course = Arc::new(EntityFn::new("course", |f| (f == "id").then(|| 3.into())));
//! let test = EntityFn::new("test", |f| (f == "slug").then(|| "algebra".into()))
//!     .parent("course", course);
//! let user = Context::new().with("user_id", 1);
//!
//! let outcome = rules.apply(&test, "score", 20, &user).await?;
//! assert!(outcome.was_updated("test") && outcome.was_updated("course"));
//! // Within 30 seconds, the test's record is throttled, and a blocked update is not touched
//! // through to the course either.
//! let outcome = rules.apply(&test, "score", 10, &user).await?;
//! assert_eq!(outcome.blocked_by("test"), Some("throttle"));
//! assert!(!outcome.was_updated("course"));
//! // The course's rule also runs when a course is applied to directly.
//! let course = test.parents("course").remove(0);
//! assert!(rules.apply(course.as_ref(), "score", 30, &user).await?.was_updated("course"));
//!
//! let keys = Context::new().with("user_id", 1).with("test_slug", "algebra");
//! assert_eq!(rules.record("test", "score", &keys).await?, Some(20.into()));
//! assert_eq!(rules.record("course", "score", &user).await?, Some(30.into()));
//! # Ok(()) }
//! ```

mod entity;
mod record;
mod rule;
mod rules;

pub use entity::{Context, Entity, EntityFn, FieldValue};
pub use record::RecordKey;
pub use rule::{
    CustomGuard, CustomStrategy, Guard, GuardCall, OnTrigger, Registry, Rule, Strategy,
    StrategyCall,
};
pub use rules::{Blocked, Outcome, Rules, RulesBuilder, Updated};
