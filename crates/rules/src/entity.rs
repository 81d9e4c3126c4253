//! Entities: the application's own types, seen through a small trait.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use stats_core::jiff::Timestamp;

/// The value of one field of an entity or of a call's [`Context`].
///
/// Key fields are integers or text; a time-limit guard reads a time (or unix seconds as an
/// integer).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FieldValue {
    /// An integer, such as an id.
    Int(i64),
    /// Text, such as a slug.
    Text(String),
    /// An instant, such as a deadline.
    Time(Timestamp),
}

impl fmt::Display for FieldValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FieldValue::Int(n) => write!(f, "{n}"),
            FieldValue::Text(s) => write!(f, "{s:?}"),
            FieldValue::Time(t) => write!(f, "{t}"),
        }
    }
}

impl From<i64> for FieldValue {
    fn from(n: i64) -> Self {
        FieldValue::Int(n)
    }
}

impl From<i32> for FieldValue {
    fn from(n: i32) -> Self {
        FieldValue::Int(n.into())
    }
}

impl From<u32> for FieldValue {
    fn from(n: u32) -> Self {
        FieldValue::Int(n.into())
    }
}

impl From<&str> for FieldValue {
    fn from(s: &str) -> Self {
        FieldValue::Text(s.to_owned())
    }
}

impl From<String> for FieldValue {
    fn from(s: String) -> Self {
        FieldValue::Text(s)
    }
}

impl From<Timestamp> for FieldValue {
    fn from(t: Timestamp) -> Self {
        FieldValue::Time(t)
    }
}

/// An application object that rules apply to: a test, a course, a session.
///
/// No ORM is assumed: an entity says its type name (which selects its rules), the value of a
/// field by name (`None` for a field it does not have or whose value is null), and its parents
/// by association name (what a rule's `touch` follows). Types that cannot implement the trait
/// (or should not) can use the closure adapter [`EntityFn`].
///
/// ```
/// use std::sync::Arc;
/// use stats::rules::{Entity, FieldValue};
///
/// struct Course { id: i64 }
///
/// impl Entity for Course {
///     fn entity_type(&self) -> &str { "course" }
///     fn field(&self, name: &str) -> Option<FieldValue> {
///         match name {
///             "id" => Some(self.id.into()),
///             _ => None,
///         }
///     }
///     fn parents(&self, _association: &str) -> Vec<Arc<dyn Entity>> { Vec::new() }
/// }
///
/// assert_eq!(Course { id: 7 }.field("id"), Some(FieldValue::Int(7)));
/// ```
pub trait Entity: Send + Sync {
    /// The type name rules are declared for, such as `"test"`.
    fn entity_type(&self) -> &str;

    /// The value of a field, or `None` if the entity has no such field or it is null.
    fn field(&self, name: &str) -> Option<FieldValue>;

    /// The entities reached through an association (`"course"` for a test): none, one (a
    /// `belongs_to`) or several.
    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>>;
}

impl fmt::Debug for dyn Entity + '_ {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Entity({})", self.entity_type())
    }
}

type FieldFn = dyn Fn(&str) -> Option<FieldValue> + Send + Sync;

/// An [`Entity`] made of a type name, a closure for fields and a map of parents.
///
/// ```
/// use std::sync::Arc;
/// use stats::rules::{Entity, EntityFn, FieldValue};
///
/// let course = Arc::new(EntityFn::new("course", |f| (f == "id").then(|| 3.into())));
/// let test = EntityFn::new("test", |f| match f {
///     "id" => Some(FieldValue::Int(11)),
///     "slug" => Some("algebra-1".into()),
///     _ => None,
/// })
/// .parent("course", course);
///
/// assert_eq!(test.entity_type(), "test");
/// assert_eq!(test.parents("course")[0].field("id"), Some(FieldValue::Int(3)));
/// assert!(test.parents("session").is_empty());
/// ```
pub struct EntityFn {
    entity_type: String,
    fields: Box<FieldFn>,
    parents: BTreeMap<String, Vec<Arc<dyn Entity>>>,
}

impl EntityFn {
    /// An entity of `entity_type` whose fields `fields` returns, without parents.
    pub fn new(
        entity_type: impl Into<String>,
        fields: impl Fn(&str) -> Option<FieldValue> + Send + Sync + 'static,
    ) -> Self {
        EntityFn {
            entity_type: entity_type.into(),
            fields: Box::new(fields),
            parents: BTreeMap::new(),
        }
    }

    /// Adds a parent reached through `association` (call again for several).
    pub fn parent(mut self, association: impl Into<String>, parent: Arc<dyn Entity>) -> Self {
        self.parents
            .entry(association.into())
            .or_default()
            .push(parent);
        self
    }
}

impl fmt::Debug for EntityFn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EntityFn")
            .field("entity_type", &self.entity_type)
            .field("parents", &self.parents.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl Entity for EntityFn {
    fn entity_type(&self) -> &str {
        &self.entity_type
    }

    fn field(&self, name: &str) -> Option<FieldValue> {
        (self.fields)(name)
    }

    fn parents(&self, association: &str) -> Vec<Arc<dyn Entity>> {
        self.parents.get(association).cloned().unwrap_or_default()
    }
}

/// The fields a call brings that are not on the entity, such as the user: key fields declared
/// with [`Rule::key_from_context`](crate::Rule::key_from_context) are read here.
///
/// ```
/// use stats::rules::{Context, FieldValue};
/// let context = Context::new().with("user_id", 1);
/// assert_eq!(context.get("user_id"), Some(&FieldValue::Int(1)));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Context(BTreeMap<String, FieldValue>);

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// This context with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// Sets `name` to `value`.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<FieldValue>) -> &mut Self {
        self.0.insert(name.into(), value.into());
        self
    }

    /// The value of `name`, if set.
    pub fn get(&self, name: &str) -> Option<&FieldValue> {
        self.0.get(name)
    }
}
