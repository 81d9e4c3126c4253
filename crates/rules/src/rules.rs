//! A built rule set: checked once, applied many times.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::sync::Arc;

use stats_core::jiff::Timestamp;
use stats_core::name::check_segment;
use stats_core::series::Series;
use stats_core::store::check_throttle;
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{
    Batch, Error, Granularity, Key, MetricStore, MetricStoreExt, NameKind, Number, Op, Result,
    ThrottleStore, Values,
};

use crate::entity::{Context, Entity, FieldValue};
use crate::record::{RecordKey, is_identifier};
use crate::rule::{GuardCall, GuardKind, KeySource, Registry, Rule, Strategy, StrategyCall};

type Clock = Arc<dyn Fn() -> Timestamp + Send + Sync>;

/// Collects rules, a [`Registry`] and a clock, and checks them all at once in
/// [`RulesBuilder::build`].
#[derive(Default)]
pub struct RulesBuilder {
    rules: Vec<Rule>,
    registry: Registry,
    clock: Option<Clock>,
    history: Option<Config>,
}

impl fmt::Debug for RulesBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RulesBuilder")
            .field("rules", &self.rules)
            .field("registry", &self.registry)
            .field("clock", &self.clock.is_some())
            .field("history", &self.history)
            .finish()
    }
}

impl RulesBuilder {
    /// Adds a rule.
    pub fn rule(mut self, rule: Rule) -> Self {
        self.rules.push(rule);
        self
    }

    /// The custom strategies and guards the rules name.
    pub fn registry(mut self, registry: Registry) -> Self {
        self.registry = registry;
        self
    }

    /// The clock time limits compare against (default: the system clock), so that tests and
    /// replays can set the time.
    pub fn clock(mut self, clock: impl Fn() -> Timestamp + Send + Sync + 'static) -> Self {
        self.clock = Some(Arc::new(clock));
        self
    }

    /// The tracker configuration of rules that keep a [history](Rule::history): its time zone,
    /// week start and metric prefix (each rule's own granularities replace the config's).
    /// Default: [`Config::new`] (UTC).
    pub fn history_config(mut self, config: Config) -> Self {
        self.history = Some(config);
        self
    }

    /// Checks the rules and binds them to a metric store (records) and a throttle store
    /// (throttle guards); one store implementing both is passed twice.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the offender for: a name that is not ASCII letters,
    /// digits and `_`; two rules for one entity type and stat; a key field declared twice;
    /// a custom strategy or guard not in the registry; a throttle period under 1 ms or over
    /// 100 years; a touch whose entity type has no rule for the stat; a cycle of touches
    /// (the message lists it, `test -> course -> test`). [`Error::InvalidGranularity`] or
    /// [`Error::InvalidInput`] for a bad history granularity list.
    pub fn build(
        self,
        metrics: Arc<dyn MetricStore>,
        throttles: Arc<dyn ThrottleStore>,
    ) -> Result<Rules> {
        let mut by_type: BTreeMap<(String, String), Arc<Rule>> = BTreeMap::new();
        for rule in self.rules {
            check_rule(&rule, &self.registry)?;
            let id = (rule.entity_type.clone(), rule.stat.clone());
            if by_type.contains_key(&id) {
                return Err(Error::InvalidInput(format!(
                    "two rules for stat `{}` of entity type `{}`",
                    id.1, id.0
                )));
            }
            by_type.insert(id, Arc::new(rule));
        }
        for rule in by_type.values() {
            for touch in &rule.touch {
                if !by_type.contains_key(&(touch.entity_type.clone(), rule.stat.clone())) {
                    return Err(Error::InvalidInput(format!(
                        "rule {}.{} touches `{}` (entity type `{}`), which has no rule for stat `{}`",
                        rule.entity_type,
                        rule.stat,
                        touch.association,
                        touch.entity_type,
                        rule.stat
                    )));
                }
            }
        }
        check_cycles(&by_type)?;
        let mut trackers = BTreeMap::new();
        for (id, rule) in &by_type {
            if let Some(granularities) = &rule.history {
                let config = self.history.clone().unwrap_or_default();
                let config = config.granularities(granularities)?;
                trackers.insert(id.clone(), Tracker::new(Arc::clone(&metrics), config));
            }
        }
        Ok(Rules {
            by_type,
            trackers,
            registry: self.registry,
            clock: self.clock.unwrap_or_else(|| Arc::new(Timestamp::now)),
            metrics,
            throttles,
        })
    }
}

fn identifier(what: &str, name: &str) -> Result<()> {
    if is_identifier(name) {
        Ok(())
    } else {
        Err(Error::InvalidInput(format!(
            "{what} {name:?} must be ASCII letters, digits and '_' (and not empty)"
        )))
    }
}

fn check_rule(rule: &Rule, registry: &Registry) -> Result<()> {
    identifier("entity type", &rule.entity_type)?;
    identifier("stat", &rule.stat)?;
    let at = format!("rule {}.{}", rule.entity_type, rule.stat);
    identifier(&format!("record name of {at}"), &rule.record_name())?;
    let mut seen = BTreeSet::new();
    for key in rule.key_fields() {
        identifier(&format!("key field of {at}"), &key.name)?;
        if let KeySource::Entity(field) = &key.source {
            identifier(&format!("entity field of key {} of {at}", key.name), field)?;
        }
        if !seen.insert(key.name.clone()) {
            return Err(Error::InvalidInput(format!(
                "key field `{}` is declared twice in {at}",
                key.name
            )));
        }
    }
    if let Strategy::Custom(name) = &rule.strategy
        && !registry.has_strategy(name)
    {
        return Err(Error::InvalidInput(format!(
            "{at} uses strategy `{name}`, which is not registered"
        )));
    }
    for guard in &rule.guards {
        match &guard.kind {
            GuardKind::TimeLimit { time_field } => {
                identifier(&format!("time field of {at}"), time_field)?
            }
            GuardKind::Throttle { period } => check_throttle("throttle", *period)
                .map_err(|e| Error::InvalidInput(format!("throttle of {at}: {e}")))?,
            GuardKind::Custom { name, .. } => {
                if !registry.has_guard(name) {
                    return Err(Error::InvalidInput(format!(
                        "{at} uses guard `{name}`, which is not registered"
                    )));
                }
            }
        }
    }
    for touch in &rule.touch {
        identifier(&format!("touched entity type of {at}"), &touch.entity_type)?;
        if touch.association.is_empty() {
            return Err(Error::InvalidInput(format!(
                "{at} touches an empty association"
            )));
        }
    }
    Ok(())
}

/// Refuses a cycle of touches among the rules of one stat, naming it.
fn check_cycles(by_type: &BTreeMap<(String, String), Arc<Rule>>) -> Result<()> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Open,
        Done,
    }
    fn visit(
        id: &(String, String),
        by_type: &BTreeMap<(String, String), Arc<Rule>>,
        marks: &mut BTreeMap<(String, String), Mark>,
        path: &mut Vec<String>,
    ) -> Result<()> {
        match marks.get(id) {
            Some(Mark::Done) => return Ok(()),
            Some(Mark::Open) => {
                let from = path.iter().position(|t| *t == id.0).unwrap_or(0);
                let mut cycle = path[from..].to_vec();
                cycle.push(id.0.clone());
                return Err(Error::InvalidInput(format!(
                    "touch cycle for stat `{}`: {}",
                    id.1,
                    cycle.join(" -> ")
                )));
            }
            None => {}
        }
        marks.insert(id.clone(), Mark::Open);
        path.push(id.0.clone());
        if let Some(rule) = by_type.get(id) {
            for touch in &rule.touch {
                visit(
                    &(touch.entity_type.clone(), id.1.clone()),
                    by_type,
                    marks,
                    path,
                )?;
            }
        }
        path.pop();
        marks.insert(id.clone(), Mark::Done);
        Ok(())
    }
    let mut marks = BTreeMap::new();
    for id in by_type.keys() {
        visit(id, by_type, &mut marks, &mut Vec::new())?;
    }
    Ok(())
}

/// A record a call updated.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Updated {
    /// The entity type of the level.
    pub entity_type: String,
    /// The record.
    pub record: RecordKey,
}

/// A record a guard kept a call from updating.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Blocked {
    /// The entity type of the level.
    pub entity_type: String,
    /// The record that was not updated.
    pub record: RecordKey,
    /// The guard that blocked: `time_limit`, `throttle` or a custom guard's name.
    pub guard: String,
}

/// What [`Rules::apply`] did: every level of the cascade that was reached appears once, updated
/// or blocked, in the order the cascade reached it (the entity first, then its parents breadth
/// first). The parents of a blocked level are not reached.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Outcome {
    /// The records written.
    pub updated: Vec<Updated>,
    /// The records a guard blocked.
    pub blocked: Vec<Blocked>,
}

impl Outcome {
    /// Whether the record of `entity_type` was updated.
    pub fn was_updated(&self, entity_type: &str) -> bool {
        self.updated.iter().any(|u| u.entity_type == entity_type)
    }

    /// The guard that blocked the record of `entity_type`, if one did.
    pub fn blocked_by(&self, entity_type: &str) -> Option<&str> {
        self.blocked
            .iter()
            .find(|b| b.entity_type == entity_type)
            .map(|b| b.guard.as_str())
    }
}

/// A checked set of [`Rule`]s bound to its stores: apply a stat to an entity, read records.
///
/// # What is atomic where
///
/// - Each guard is atomic with respect to the write it guards where it matters: a throttle is
///   one [`ThrottleStore::try_acquire`], so of many concurrent calls on one record exactly one
///   per period is let through, also across processes on a shared store.
/// - Every level of a cascade goes to the store in **one** [`Batch`], applied with one
///   [`MetricStore::apply`]. On a store whose
///   [`Capabilities::atomic_batch`](stats_core::Capabilities::atomic_batch) is true (in-process,
///   SQL, single-node Redis) the cascade is all or nothing. Elsewhere (Redis Cluster, MongoDB) a
///   failing batch may leave other levels' records written, never part of one record's write;
///   the error is returned and the [`Outcome`] is not.
/// - Sum, max and min are applied by the store (increments and comparisons in place), so
///   concurrent updates never lose one another. Override is a set: the last write wins.
/// - Guards run before the batch is sent: a throttle window acquired for a call whose batch then
///   fails (or whose later level's custom guard or strategy fails) stays consumed until its
///   period ends. Key fields of every level are resolved before any guard runs, so a missing
///   key field consumes nothing.
/// - A level blocked by a guard stops the levels above it (a touch follows an update).
/// - A rule's [history](Rule::history) buckets go into the same batch as its record.
///
/// ```
/// use std::sync::Arc;
/// use stats::atomics::AtomicsStore;
/// use stats::rules::{Context, EntityFn, Rule, Rules, Strategy};
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> stats::Result<()> {
/// let store = Arc::new(AtomicsStore::new());
/// let rules = Rules::builder()
///     .rule(Rule::new("test", "score").key_from_context("user_id").strategy(Strategy::Sum))
///     .build(store.clone(), store)?;
///
/// let test = EntityFn::new("test", |_| None);
/// let user = Context::new().with("user_id", 1);
/// rules.apply(&test, "score", 20, &user).await?;
/// let outcome = rules.apply(&test, "score", 5, &user).await?;
/// assert!(outcome.was_updated("test"));
/// assert_eq!(rules.record("test", "score", &user).await?, Some(25.into()));
/// # Ok(()) }
/// ```
pub struct Rules {
    by_type: BTreeMap<(String, String), Arc<Rule>>,
    trackers: BTreeMap<(String, String), Tracker>,
    registry: Registry,
    clock: Clock,
    metrics: Arc<dyn MetricStore>,
    throttles: Arc<dyn ThrottleStore>,
}

impl fmt::Debug for Rules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Rules")
            .field("rules", &self.by_type.values().collect::<Vec<_>>())
            .field("registry", &self.registry)
            .field("metrics", &self.metrics.name())
            .field("throttles", &self.throttles.name())
            .finish_non_exhaustive()
    }
}

/// An entity at one level of a cascade: the caller's, or a parent found on the way.
enum Held<'a> {
    Borrowed(&'a dyn Entity),
    Owned(Arc<dyn Entity>),
}

impl Held<'_> {
    fn get(&self) -> &dyn Entity {
        match self {
            Held::Borrowed(e) => *e,
            Held::Owned(e) => e.as_ref(),
        }
    }
}

struct Level<'a> {
    entity: Held<'a>,
    /// The index of the level that touched this one (`None` for the caller's entity).
    child: Option<usize>,
    rule: Arc<Rule>,
    record: RecordKey,
    key: Key,
    /// The throttle key of the record and stat, checked before any guard runs.
    throttle_key: String,
}

impl Rules {
    /// Starts a rule set.
    pub fn builder() -> RulesBuilder {
        RulesBuilder::default()
    }

    fn rule(&self, entity_type: &str, stat: &str) -> Result<&Arc<Rule>> {
        self.by_type
            .get(&(entity_type.to_owned(), stat.to_owned()))
            .ok_or_else(|| {
                Error::InvalidInput(format!(
                    "no rule for stat `{stat}` of entity type `{entity_type}`"
                ))
            })
    }

    /// The record key of `entity`'s rule for `stat`, from its key fields.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an unknown entity type or stat, or a missing key field
    /// (naming it and where it was looked for), or a key field that is a time;
    /// [`Error::InvalidName`] for a record key over 200 bytes.
    pub fn record_key(
        &self,
        entity: &dyn Entity,
        stat: &str,
        context: &Context,
    ) -> Result<RecordKey> {
        let rule = self.rule(entity.entity_type(), stat)?;
        keyed(rule, Some(entity), context).map(|(record, _)| record)
    }

    /// Applies `value` to `entity`'s record for `stat`, and through `touch` to its parents'.
    ///
    /// Each level resolves its own key fields (from its entity and `context`), runs its own
    /// guards in order, and plans its strategy's writes. The first guard that blocks calls its
    /// `on_trigger` with the level's entity once and stops that level **and the levels above
    /// it**: as in stat_trek, a touch follows an update, so a late or throttled test does not
    /// count towards its course either (those levels appear in neither list of the
    /// [`Outcome`]). Then every written level goes to the store in one batch (see the type's
    /// documentation for what is atomic where).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when the entity's type has no rule for `stat`, a key field is
    /// missing (naming it), a parent's type differs from the one its rule touches, or a
    /// time-limit field is text; [`Error::InvalidValue`] for a non-finite float; a custom
    /// guard's or strategy's error; the store's errors. Nothing is written on error, except
    /// on stores without atomic batches when the batch itself fails.
    pub async fn apply(
        &self,
        entity: &dyn Entity,
        stat: &str,
        value: impl Into<Number>,
        context: &Context,
    ) -> Result<Outcome> {
        let value = value.into().validate()?;
        let levels = self.levels(entity, stat, context)?;
        let now = (self.clock)();
        let mut outcome = Outcome::default();
        let mut batch = Batch::new();
        let mut written = vec![false; levels.len()];
        for (index, level) in levels.iter().enumerate() {
            if level.child.is_some_and(|child| !written[child]) {
                continue;
            }
            let entity = level.entity.get();
            if let Some(guard) = self.blocking_guard(level, context, value, now).await? {
                if let Some(callback) = &guard.on_trigger {
                    callback(entity);
                }
                outcome.blocked.push(Blocked {
                    entity_type: level.rule.entity_type.clone(),
                    record: level.record.clone(),
                    guard: guard.name().to_owned(),
                });
                continue;
            }
            self.plan(level, value, &mut batch).await?;
            self.plan_history(level, value, now, &mut batch)?;
            written[index] = true;
            outcome.updated.push(Updated {
                entity_type: level.rule.entity_type.clone(),
                record: level.record.clone(),
            });
        }
        if !batch.is_empty() {
            self.metrics.apply(&batch).await?;
        }
        Ok(outcome)
    }

    /// Every level of the cascade with its rule and record key, the entity first, then its
    /// parents breadth first. The rules were checked for cycles, so this ends.
    fn levels<'a>(
        &self,
        entity: &'a dyn Entity,
        stat: &str,
        context: &Context,
    ) -> Result<Vec<Level<'a>>> {
        let rule = Arc::clone(self.rule(entity.entity_type(), stat)?);
        let mut levels: Vec<Level<'a>> = Vec::new();
        let mut pending = std::collections::VecDeque::from([(Held::Borrowed(entity), rule, None)]);
        while let Some((held, rule, child)) = pending.pop_front() {
            let (record, key) = keyed(&rule, Some(held.get()), context)?;
            let throttle_key = format!("rules:{}:{}", record.metric(), rule.stat);
            if rule
                .guards
                .iter()
                .any(|g| matches!(g.kind, GuardKind::Throttle { .. }))
            {
                check_segment(NameKind::Throttle, &throttle_key)?;
            }
            for touch in &rule.touch {
                for parent in held.get().parents(&touch.association) {
                    if parent.entity_type() != touch.entity_type {
                        return Err(Error::InvalidInput(format!(
                            "rule {}.{} touches `{}` of entity type `{}`, but the entity there is a `{}`",
                            rule.entity_type,
                            rule.stat,
                            touch.association,
                            touch.entity_type,
                            parent.entity_type()
                        )));
                    }
                    let parent_rule = Arc::clone(self.rule(&touch.entity_type, stat)?);
                    pending.push_back((Held::Owned(parent), parent_rule, Some(levels.len())));
                }
            }
            levels.push(Level {
                entity: held,
                child,
                rule,
                record,
                key,
                throttle_key,
            });
        }
        Ok(levels)
    }

    /// The first guard of the level that blocks, if any.
    async fn blocking_guard<'r>(
        &self,
        level: &'r Level<'_>,
        context: &Context,
        value: Number,
        now: Timestamp,
    ) -> Result<Option<&'r crate::rule::Guard>> {
        let entity = level.entity.get();
        for guard in &level.rule.guards {
            let allowed = match &guard.kind {
                GuardKind::TimeLimit { time_field } => match entity.field(time_field) {
                    None => true,
                    Some(FieldValue::Time(deadline)) => now <= deadline,
                    Some(FieldValue::Int(seconds)) => now.as_second() <= seconds,
                    Some(FieldValue::Text(_)) => {
                        return Err(Error::InvalidInput(format!(
                            "time limit field `{time_field}` of {} is text, not a time",
                            entity.entity_type()
                        )));
                    }
                },
                GuardKind::Throttle { period } => {
                    self.throttles
                        .try_acquire(&level.throttle_key, *period)
                        .await?
                }
                GuardKind::Custom { name, metadata } => {
                    let custom = self.registry.guards.get(name).ok_or_else(|| {
                        Error::InvalidInput(format!("guard `{name}` is not registered"))
                    })?;
                    let call = GuardCall {
                        entity,
                        context,
                        record: &level.record,
                        stat: &level.rule.stat,
                        value,
                        metadata,
                        store: self.metrics.as_ref(),
                        now,
                    };
                    custom.allows(&call).await?
                }
            };
            if !allowed {
                return Ok(Some(guard));
            }
        }
        Ok(None)
    }

    /// Adds the level's writes to the cascade's batch.
    async fn plan(&self, level: &Level<'_>, value: Number, batch: &mut Batch) -> Result<()> {
        let stat = &level.rule.stat;
        let op = match &level.rule.strategy {
            Strategy::Override => Op::Set,
            Strategy::Sum => Op::Inc,
            Strategy::Max => Op::Max,
            Strategy::Min => Op::Min,
            Strategy::Custom(name) => {
                let custom = self.registry.strategies.get(name).ok_or_else(|| {
                    Error::InvalidInput(format!("strategy `{name}` is not registered"))
                })?;
                let call = StrategyCall {
                    store: self.metrics.as_ref(),
                    record: &level.record,
                    key: &level.key,
                    stat,
                    value,
                };
                batch.append(custom.plan(call).await?);
                return Ok(());
            }
        };
        batch.push(
            op,
            [level.key.clone()],
            &Values::new().with(stat.as_str(), value)?,
        )?;
        Ok(())
    }

    /// Adds the level's history writes, for a rule that keeps one.
    fn plan_history(
        &self,
        level: &Level<'_>,
        value: Number,
        now: Timestamp,
        batch: &mut Batch,
    ) -> Result<()> {
        let rule = &level.rule;
        let Some(tracker) = self
            .trackers
            .get(&(rule.entity_type.clone(), rule.stat.clone()))
        else {
            return Ok(());
        };
        let op = match rule.strategy {
            Strategy::Sum => Op::Inc,
            Strategy::Max => Op::Max,
            Strategy::Min => Op::Min,
            Strategy::Override | Strategy::Custom(_) => Op::Set,
        };
        let values = Values::new().with(rule.stat.as_str(), value)?;
        tracker.add_to_batch(batch, op, &level.record.metric(), now, &values)
    }

    /// The history of a record (see [`Rule::history`]): one document per `granularity` bucket
    /// from the one holding `from` to the one holding `to`, blank buckets empty. `keys` holds
    /// every key field by name, as for [`Rules::record`].
    ///
    /// ```
    /// use std::sync::Arc;
    /// use stats::atomics::AtomicsStore;
    /// use stats::rules::{Context, EntityFn, Rule, Rules, Strategy};
    /// use stats::{Number, Timestamp};
    ///
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
    /// let store = Arc::new(AtomicsStore::new());
    /// let now: Timestamp = "2026-11-02T10:00:00Z".parse()?;
    /// let rules = Rules::builder()
    ///     .clock(move || now)
    ///     .rule(Rule::new("test", "score").key_from_context("user_id").strategy(Strategy::Sum).history(["1d"]))
    ///     .build(store.clone(), store)?;
    /// let user = Context::new().with("user_id", 1);
    /// rules.apply(&EntityFn::new("test", |_| None), "score", 20, &user).await?;
    /// rules.apply(&EntityFn::new("test", |_| None), "score", 5, &user).await?;
    ///
    /// // Score per day for user 1.
    /// let days = rules.history("test", "score", &user, now, now, "1d".parse()?).await?;
    /// assert_eq!(days.total("score")?, Some(Number::Int(25)));
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for a rule without history, as [`Rules::record`] for the keys,
    /// and as [`Tracker::values`] for the range.
    pub async fn history(
        &self,
        entity_type: &str,
        stat: &str,
        keys: &Context,
        from: Timestamp,
        to: Timestamp,
        granularity: Granularity,
    ) -> Result<Series> {
        let rule = self.rule(entity_type, stat)?;
        let tracker = self
            .trackers
            .get(&(entity_type.to_owned(), stat.to_owned()))
            .ok_or_else(|| {
                Error::InvalidInput(format!("rule {entity_type}.{stat} keeps no history"))
            })?;
        let (record, _) = keyed(rule, None, keys)?;
        tracker
            .values(&record.metric(), from, to, granularity, Blanks::Keep)
            .await
    }

    /// The record of `entity_type`'s rule for `stat` whose key fields are all given in
    /// `keys` (by key field name, entity ones included, such as `test_slug`): its value of
    /// `stat`, or `None` if it was never written.
    ///
    /// # Errors
    /// As [`Rules::record_key`], and the store's errors.
    pub async fn record(
        &self,
        entity_type: &str,
        stat: &str,
        keys: &Context,
    ) -> Result<Option<Number>> {
        let rule = self.rule(entity_type, stat)?;
        let (_, key) = keyed(rule, None, keys)?;
        Ok(self.metrics.read_one(&key).await?.number_at(stat))
    }

    /// The whole document of a record: every stat written to it.
    ///
    /// # Errors
    /// [`Error::InvalidName`] for a record key over 200 bytes, and the store's errors.
    pub async fn read(&self, record: &RecordKey) -> Result<Values> {
        self.metrics.read_one(&record.key()?).await
    }
}

/// The record key of `rule` from an entity (when given) and a context: with no entity, every
/// key field is read from the context by its own name.
fn keyed(rule: &Rule, entity: Option<&dyn Entity>, context: &Context) -> Result<(RecordKey, Key)> {
    let mut fields = Vec::new();
    for key in rule.key_fields() {
        let value = match (&key.source, entity) {
            (KeySource::Entity(field), Some(entity)) => entity.field(field).ok_or_else(|| {
                Error::InvalidInput(format!(
                    "key field `{}` of rule {}.{}: the {} has no field `{field}`",
                    key.name, rule.entity_type, rule.stat, rule.entity_type
                ))
            })?,
            (_, _) => context.get(&key.name).cloned().ok_or_else(|| {
                Error::InvalidInput(format!(
                    "key field `{}` of rule {}.{} is missing from the context",
                    key.name, rule.entity_type, rule.stat
                ))
            })?,
        };
        let text = match value {
            FieldValue::Int(n) => n.to_string(),
            FieldValue::Text(s) => s,
            FieldValue::Time(_) => {
                return Err(Error::InvalidInput(format!(
                    "key field `{}` of rule {}.{} is a time; key fields are integers or text",
                    key.name, rule.entity_type, rule.stat
                )));
            }
        };
        fields.push((key.name, text));
    }
    let record = RecordKey {
        record: rule.record_name(),
        fields,
    };
    let key = record.key()?;
    Ok((record, key))
}
