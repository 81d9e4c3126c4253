//! Rules, declared once per entity type and stat: key fields, strategy, guards, touch.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use stats_core::jiff::Timestamp;
use stats_core::{Batch, Key, MetricStore, Number, Result};

use crate::entity::{Context, Entity};
use crate::record::RecordKey;

/// How a rule combines the applied value with the record's stored one.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Strategy {
    /// Replaces the stored value (the default).
    #[default]
    Override,
    /// Adds to the stored value, race-free (an increment in the store; integers exact).
    Sum,
    /// Keeps the larger value (in the store, race-free; needs `Capabilities::max_min`).
    Max,
    /// Keeps the smaller value (in the store, race-free; needs `Capabilities::max_min`).
    Min,
    /// A strategy registered by this name in the [`Registry`].
    Custom(String),
}

/// What a custom strategy is asked to plan.
#[derive(Debug)]
#[non_exhaustive]
pub struct StrategyCall<'a> {
    /// The store, to read the record (or anything else) before planning.
    pub store: &'a dyn MetricStore,
    /// The record's key fields.
    pub record: &'a RecordKey,
    /// The record's store key (its status slot).
    pub key: &'a Key,
    /// The stat, the field of the record document.
    pub stat: &'a str,
    /// The applied value.
    pub value: Number,
}

/// A strategy registered by name: it plans the writes of one record update.
///
/// The writes it returns go into the cascade's one batch (see [`Rules::apply`](crate::Rules::apply)),
/// so they are applied with the other levels' writes. A strategy that reads the store and then
/// writes is not atomic with respect to other writers of the record; prefer writes whose effect
/// does not depend on a read (increments, maxima).
///
/// ```
/// use async_trait::async_trait;
/// use stats::rules::{CustomStrategy, StrategyCall};
/// use stats::{Batch, Values};
///
/// /// Stores twice the applied value.
/// struct Double;
///
/// #[async_trait]
/// impl CustomStrategy for Double {
///     async fn plan(&self, call: StrategyCall<'_>) -> stats::Result<Batch> {
///         let doubled = call.value.checked_add(call.value)?;
///         let mut batch = Batch::new();
///         batch.set([call.key.clone()], &Values::new().with(call.stat, doubled)?)?;
///         Ok(batch)
///     }
/// }
/// ```
#[async_trait]
pub trait CustomStrategy: Send + Sync + 'static {
    /// The writes of one update.
    ///
    /// # Errors
    /// Any; the cascade writes nothing when a strategy fails.
    async fn plan(&self, call: StrategyCall<'_>) -> Result<Batch>;
}

/// What a custom guard is asked to decide.
#[derive(Debug)]
#[non_exhaustive]
pub struct GuardCall<'a> {
    /// The entity of this level of the cascade.
    pub entity: &'a dyn Entity,
    /// The call's context.
    pub context: &'a Context,
    /// The record the update would write.
    pub record: &'a RecordKey,
    /// The stat.
    pub stat: &'a str,
    /// The applied value.
    pub value: Number,
    /// The metadata the rule gave this guard.
    pub metadata: &'a serde_json::Value,
    /// The store, to read before deciding.
    pub store: &'a dyn MetricStore,
    /// The rules' clock at the time of the call.
    pub now: Timestamp,
}

/// A guard registered by name: it lets an update through or blocks it.
///
/// ```
/// use async_trait::async_trait;
/// use stats::rules::{CustomGuard, GuardCall};
///
/// /// Lets through values up to the metadata's `"max"`.
/// struct AtMost;
///
/// #[async_trait]
/// impl CustomGuard for AtMost {
///     async fn allows(&self, call: &GuardCall<'_>) -> stats::Result<bool> {
///         let max = call.metadata["max"].as_f64().unwrap_or(f64::INFINITY);
///         Ok(call.value.as_f64() <= max)
///     }
/// }
/// ```
#[async_trait]
pub trait CustomGuard: Send + Sync + 'static {
    /// Whether the update may go through.
    ///
    /// # Errors
    /// Any; the cascade writes nothing when a guard fails.
    async fn allows(&self, call: &GuardCall<'_>) -> Result<bool>;
}

/// Custom strategies and guards by name: a value handed to
/// [`RulesBuilder::registry`](crate::RulesBuilder::registry), not global state.
///
/// ```
/// # use async_trait::async_trait;
/// # use stats::rules::{CustomGuard, GuardCall, Registry};
/// # struct Weekdays;
/// # #[async_trait]
/// # impl CustomGuard for Weekdays {
/// #     async fn allows(&self, _: &GuardCall<'_>) -> stats::Result<bool> { Ok(true) }
/// # }
/// let registry = Registry::new().guard("weekdays", Weekdays);
/// assert!(registry.has_guard("weekdays"));
/// ```
#[derive(Clone, Default)]
pub struct Registry {
    pub(crate) strategies: BTreeMap<String, Arc<dyn CustomStrategy>>,
    pub(crate) guards: BTreeMap<String, Arc<dyn CustomGuard>>,
}

impl Registry {
    /// An empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers a strategy under `name` (replacing one of the same name).
    pub fn strategy(mut self, name: impl Into<String>, strategy: impl CustomStrategy) -> Self {
        self.strategies.insert(name.into(), Arc::new(strategy));
        self
    }

    /// Registers a guard under `name` (replacing one of the same name).
    pub fn guard(mut self, name: impl Into<String>, guard: impl CustomGuard) -> Self {
        self.guards.insert(name.into(), Arc::new(guard));
        self
    }

    /// Whether a strategy of this name is registered.
    pub fn has_strategy(&self, name: &str) -> bool {
        self.strategies.contains_key(name)
    }

    /// Whether a guard of this name is registered.
    pub fn has_guard(&self, name: &str) -> bool {
        self.guards.contains_key(name)
    }
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("strategies", &self.strategies.keys().collect::<Vec<_>>())
            .field("guards", &self.guards.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The callback a guard calls when it blocks an update, with the entity it blocked.
pub type OnTrigger = Arc<dyn Fn(&dyn Entity) + Send + Sync>;

#[derive(Debug, Clone)]
pub(crate) enum GuardKind {
    TimeLimit {
        time_field: String,
    },
    Throttle {
        period: Duration,
    },
    Custom {
        name: String,
        metadata: serde_json::Value,
    },
}

/// A condition that can block an update, checked in the order the rule lists its guards; the
/// first that blocks stops the others (so a throttle window is not consumed when an earlier
/// guard blocks).
///
/// - [`Guard::time_limit`]: blocked once the entity's time field (a deadline) has passed on
///   the rules' clock. A missing (null) field means no deadline; a text field is an error.
/// - [`Guard::throttle`]: at most one update per period per record and stat, through one
///   atomic [`ThrottleStore::try_acquire`](stats_core::ThrottleStore::try_acquire) (never a
///   check then a set). The window starts when an update is let through.
/// - [`Guard::custom`]: a [`CustomGuard`] registered by name, given the rule's metadata.
///
/// ```
/// use std::time::Duration;
/// use stats::rules::Guard;
/// let guard = Guard::throttle(Duration::from_secs(30)).on_trigger(|entity| {
///     eprintln!("throttled {}", entity.entity_type());
/// });
/// assert_eq!(guard.name(), "throttle");
/// ```
#[derive(Clone)]
pub struct Guard {
    pub(crate) kind: GuardKind,
    pub(crate) on_trigger: Option<OnTrigger>,
}

impl Guard {
    /// Blocks once the time in the entity's `time_field` (a time, or unix seconds) has passed.
    pub fn time_limit(time_field: impl Into<String>) -> Self {
        Guard {
            kind: GuardKind::TimeLimit {
                time_field: time_field.into(),
            },
            on_trigger: None,
        }
    }

    /// Lets one update per `period` through, per record and stat (1 ms to 100 years).
    pub fn throttle(period: Duration) -> Self {
        Guard {
            kind: GuardKind::Throttle { period },
            on_trigger: None,
        }
    }

    /// The guard registered as `name`, given `metadata` on every call.
    pub fn custom(name: impl Into<String>, metadata: serde_json::Value) -> Self {
        Guard {
            kind: GuardKind::Custom {
                name: name.into(),
                metadata,
            },
            on_trigger: None,
        }
    }

    /// Calls `callback` with the entity every time this guard blocks an update (once per block).
    pub fn on_trigger(mut self, callback: impl Fn(&dyn Entity) + Send + Sync + 'static) -> Self {
        self.on_trigger = Some(Arc::new(callback));
        self
    }

    /// The guard's name as reported in [`Blocked::guard`](crate::Blocked::guard): `time_limit`,
    /// `throttle` or the custom name.
    pub fn name(&self) -> &str {
        match &self.kind {
            GuardKind::TimeLimit { .. } => "time_limit",
            GuardKind::Throttle { .. } => "throttle",
            GuardKind::Custom { name, .. } => name,
        }
    }
}

impl fmt::Debug for Guard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guard")
            .field("kind", &self.kind)
            .field("on_trigger", &self.on_trigger.is_some())
            .finish()
    }
}

/// Where a key field's value comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum KeySource {
    /// The entity's field of this name.
    Entity(String),
    /// The call's context, under the key field's own name.
    Context,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct KeyField {
    pub(crate) name: String,
    pub(crate) source: KeySource,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Touch {
    pub(crate) association: String,
    pub(crate) entity_type: String,
}

/// What happens when a stat of an entity type is applied, declared once (the stat_trek
/// declaration `stat_trek :score, key_fields: [:user_id, test_slug: :slug], agg_strategy: :sum,
/// guards: {...}, touch: :course`).
///
/// - **record**: the statistics record's name, by default `<entity>_statistic`;
/// - **key fields**: each taken from the entity ([`Rule::key_from_entity`], with a mapping
///   `test_slug <- slug`) or required from the call's context ([`Rule::key_from_context`]);
///   with none declared, `<entity>_id <- id`;
/// - **strategy**: [`Strategy::Override`] by default;
/// - **guards** in order ([`Guard`]);
/// - **touch**: associations whose entities' rules for the same stat run with the same value
///   and context.
///
/// Names (entity type, stat, record, key fields, custom names) are ASCII letters, digits and
/// `_`; [`RulesBuilder::build`](crate::RulesBuilder::build) refuses anything else.
///
/// ```
/// use std::time::Duration;
/// use stats::rules::{Guard, Rule, Strategy};
///
/// let rule = Rule::new("test", "score")
///     .record("test_statistic")
///     .key_from_context("user_id")
///     .key_from_entity("test_slug", "slug")
///     .strategy(Strategy::Sum)
///     .guard(Guard::time_limit("deadline"))
///     .guard(Guard::throttle(Duration::from_secs(30)))
///     .touch("course");
/// assert_eq!(rule.record_name(), "test_statistic");
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    pub(crate) entity_type: String,
    pub(crate) stat: String,
    pub(crate) record: Option<String>,
    pub(crate) keys: Vec<KeyField>,
    pub(crate) strategy: Strategy,
    pub(crate) guards: Vec<Guard>,
    pub(crate) touch: Vec<Touch>,
    pub(crate) history: Option<Vec<String>>,
}

impl Rule {
    /// The rule for `stat` of entities of `entity_type`.
    pub fn new(entity_type: impl Into<String>, stat: impl Into<String>) -> Self {
        Rule {
            entity_type: entity_type.into(),
            stat: stat.into(),
            record: None,
            keys: Vec::new(),
            strategy: Strategy::Override,
            guards: Vec::new(),
            touch: Vec::new(),
            history: None,
        }
    }

    /// The record's name (default `<entity>_statistic`).
    pub fn record(mut self, name: impl Into<String>) -> Self {
        self.record = Some(name.into());
        self
    }

    /// A key field `name` taken from the entity's field `field` (`test_slug <- slug`).
    pub fn key_from_entity(mut self, name: impl Into<String>, field: impl Into<String>) -> Self {
        self.keys.push(KeyField {
            name: name.into(),
            source: KeySource::Entity(field.into()),
        });
        self
    }

    /// A key field `name` that every call must bring in its [`Context`].
    pub fn key_from_context(mut self, name: impl Into<String>) -> Self {
        self.keys.push(KeyField {
            name: name.into(),
            source: KeySource::Context,
        });
        self
    }

    /// The strategy.
    pub fn strategy(mut self, strategy: Strategy) -> Self {
        self.strategy = strategy;
        self
    }

    /// Appends a guard (guards run in the order added).
    pub fn guard(mut self, guard: Guard) -> Self {
        self.guards.push(guard);
        self
    }

    /// Cascades to the entities of `association`, whose type is the association's name.
    pub fn touch(self, association: impl Into<String>) -> Self {
        let association = association.into();
        let entity_type = association.clone();
        self.touch_as(association, entity_type)
    }

    /// Cascades to the entities of `association`, which are of `entity_type`.
    pub fn touch_as(
        mut self,
        association: impl Into<String>,
        entity_type: impl Into<String>,
    ) -> Self {
        self.touch.push(Touch {
            association: association.into(),
            entity_type: entity_type.into(),
        });
        self
    }

    /// Also tracks every update over time in these granularities (`"1d"`, `"1w"`): the record's
    /// metric gets a bucket per granularity beside its status slot, written in the same batch
    /// as the record, at the rules' clock's time. Sum increments the bucket, max and min keep
    /// the largest or smallest value per bucket, override and custom strategies set the last
    /// value per bucket. Read it back with [`Rules::history`](crate::Rules::history); the time
    /// zone is [`RulesBuilder::history_config`](crate::RulesBuilder::history_config)'s.
    pub fn history<S: Into<String>>(mut self, granularities: impl IntoIterator<Item = S>) -> Self {
        self.history = Some(granularities.into_iter().map(Into::into).collect());
        self
    }

    /// The entity type.
    pub fn entity_type(&self) -> &str {
        &self.entity_type
    }

    /// The stat.
    pub fn stat(&self) -> &str {
        &self.stat
    }

    /// The record's name: the one given, or `<entity>_statistic`.
    pub fn record_name(&self) -> String {
        self.record
            .clone()
            .unwrap_or_else(|| format!("{}_statistic", self.entity_type))
    }

    /// The key fields, with the default `<entity>_id <- id` when none is declared.
    pub(crate) fn key_fields(&self) -> Vec<KeyField> {
        if self.keys.is_empty() {
            vec![KeyField {
                name: format!("{}_id", self.entity_type),
                source: KeySource::Entity("id".into()),
            }]
        } else {
            self.keys.clone()
        }
    }
}
