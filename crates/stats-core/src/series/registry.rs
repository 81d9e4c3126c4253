//! A registry of aggregators, formatters and transponders by name.
//!
//! No global state: a [`Registry`] is a value. `Registry::default()` holds the built-ins under
//! the names listed on [`Registry`]; an application adds its own (or replaces a built-in) with the
//! `register_*` methods and passes the registry wherever names are resolved (a CLI, an HTTP
//! handler). Cloning is cheap: entries are shared.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use crate::error::{Error, Result};
use crate::number::Number;

use super::Series;
use super::aggregate::{self, Aggregator};
use super::format::{CategoryFormatter, Formatted, Formatter, TimelineFormatter};
use super::transpond::{self, Transponder, TransponderFactory};

/// Named aggregators, formatters and transponder factories.
///
/// Built-ins in `Registry::default()`:
/// - aggregators `sum`, `mean`, `avg` (another name for `mean`), `min`, `max`;
/// - formatters `timeline`, `category`;
/// - transponders `expression`, `add`, `subtract`, `multiply`, `divide`, `sum`, `mean`, `min`,
///   `max`, `ratio`, `average`, `standard_deviation` (see the [`transpond` module](super::transpond) for
///   their parameters).
///
/// ```
/// use stats_core::series::{Aggregator, Registry, Series, slices_of};
/// use stats_core::{Number, Result, values};
///
/// struct Count;
/// impl Aggregator for Count {
///     fn aggregate(&self, s: &Series, path: &str, slices: usize) -> Result<Vec<Option<Number>>> {
///         slices_of(s, path, slices, |n| Ok(Some(Number::Int(n.len() as i64))))
///     }
/// }
///
/// let mut registry = Registry::default();
/// registry.register_aggregator("count", Count);
/// let series = Series::new(
///     vec![jiff::Timestamp::from_second(0).unwrap()],
///     vec![values!({"a": 5})],
///).unwrap();
/// assert_eq!(registry.aggregate("count", &series, "a", 1).unwrap(), [Some(Number::Int(1))]);
/// assert_eq!(registry.aggregate("sum", &series, "a", 1).unwrap(), [Some(Number::Int(5))]);
/// ```
#[derive(Clone)]
pub struct Registry {
    aggregators: BTreeMap<String, Arc<dyn Aggregator>>,
    formatters: BTreeMap<String, Arc<dyn Formatter>>,
    transponders: BTreeMap<String, Arc<dyn TransponderFactory>>,
}

impl Default for Registry {
    /// A registry holding the built-ins.
    fn default() -> Self {
        let mut r = Registry::empty();
        r.register_aggregator("sum", aggregate::Sum);
        r.register_aggregator("mean", aggregate::Mean);
        r.register_aggregator("avg", aggregate::Mean);
        r.register_aggregator("min", aggregate::Min);
        r.register_aggregator("max", aggregate::Max);
        r.register_formatter("timeline", TimelineFormatter);
        r.register_formatter("category", CategoryFormatter);
        for (name, factory) in transpond::builtins() {
            r.transponders.insert(name.to_owned(), Arc::from(factory));
        }
        r
    }
}

impl Registry {
    /// A registry with no entries at all (not even the built-ins).
    pub fn empty() -> Self {
        Registry {
            aggregators: BTreeMap::new(),
            formatters: BTreeMap::new(),
            transponders: BTreeMap::new(),
        }
    }

    /// Registers an aggregator under `name`, returning the one it replaces, if any.
    pub fn register_aggregator(
        &mut self,
        name: impl Into<String>,
        aggregator: impl Aggregator + 'static,
    ) -> Option<Arc<dyn Aggregator>> {
        self.aggregators.insert(name.into(), Arc::new(aggregator))
    }

    /// Registers a formatter under `name`, returning the one it replaces, if any.
    pub fn register_formatter(
        &mut self,
        name: impl Into<String>,
        formatter: impl Formatter + 'static,
    ) -> Option<Arc<dyn Formatter>> {
        self.formatters.insert(name.into(), Arc::new(formatter))
    }

    /// Registers a transponder factory under `name`, returning the one it replaces, if any.
    /// A closure `Fn(&serde_json::Value) -> Result<Box<dyn Transponder>>` is a factory.
    pub fn register_transponder(
        &mut self,
        name: impl Into<String>,
        factory: impl TransponderFactory + 'static,
    ) -> Option<Arc<dyn TransponderFactory>> {
        self.transponders.insert(name.into(), Arc::new(factory))
    }

    /// The aggregator registered under `name`.
    pub fn aggregator(&self, name: &str) -> Option<Arc<dyn Aggregator>> {
        self.aggregators.get(name).cloned()
    }

    /// The formatter registered under `name`.
    pub fn formatter(&self, name: &str) -> Option<Arc<dyn Formatter>> {
        self.formatters.get(name).cloned()
    }

    /// The transponder factory registered under `name`.
    pub fn transponder_factory(&self, name: &str) -> Option<Arc<dyn TransponderFactory>> {
        self.transponders.get(name).cloned()
    }

    /// Runs the aggregator registered under `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] (listing the known names) for an unknown name; otherwise what the
    /// aggregator returns.
    pub fn aggregate(
        &self,
        name: &str,
        series: &Series,
        path: &str,
        slices: usize,
    ) -> Result<Vec<Option<Number>>> {
        lookup("aggregator", &self.aggregators, name)?.aggregate(series, path, slices)
    }

    /// Runs the formatter registered under `name`.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown name; otherwise what the formatter returns.
    pub fn format(
        &self,
        name: &str,
        series: &Series,
        path: &str,
        slices: usize,
    ) -> Result<Formatted> {
        lookup("formatter", &self.formatters, name)?.format(series, path, slices)
    }

    /// Builds the transponder registered under `name` from its JSON parameters.
    ///
    /// # Errors
    /// [`Error::NotFound`] for an unknown name; otherwise what the factory returns (for
    /// example [`Error::InvalidExpression`]).
    pub fn transponder(
        &self,
        name: &str,
        params: &serde_json::Value,
    ) -> Result<Box<dyn Transponder>> {
        lookup("transponder", &self.transponders, name)?.build(params)
    }

    /// The registered aggregator names, sorted.
    pub fn aggregator_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.aggregators.keys().map(String::as_str)
    }

    /// The registered formatter names, sorted.
    pub fn formatter_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.formatters.keys().map(String::as_str)
    }

    /// The registered transponder names, sorted.
    pub fn transponder_names(&self) -> impl Iterator<Item = &str> + '_ {
        self.transponders.keys().map(String::as_str)
    }
}

fn lookup<'r, T: ?Sized>(
    kind: &str,
    map: &'r BTreeMap<String, Arc<T>>,
    name: &str,
) -> Result<&'r Arc<T>> {
    map.get(name).ok_or_else(|| {
        let known: Vec<&str> = map.keys().map(String::as_str).collect();
        Error::NotFound(format!(
            "{kind} {name:?}; registered: {}",
            if known.is_empty() {
                "none".to_owned()
            } else {
                known.join(", ")
            }
        ))
    })
}

impl fmt::Debug for Registry {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Registry")
            .field("aggregators", &self.aggregators.keys().collect::<Vec<_>>())
            .field("formatters", &self.formatters.keys().collect::<Vec<_>>())
            .field(
                "transponders",
                &self.transponders.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::aggregate::slices_of;
    use crate::series::tests::hourly;
    use crate::values;
    use serde_json::json;

    /// Counts the buckets of each slice that have a number at the path.
    struct Count;

    impl Aggregator for Count {
        fn aggregate(
            &self,
            series: &Series,
            path: &str,
            slices: usize,
        ) -> Result<Vec<Option<Number>>> {
            slices_of(series, path, slices, |numbers| {
                Ok(Some(Number::Int(numbers.len() as i64)))
            })
        }
    }

    /// The newest value only.
    struct Last;

    impl Formatter for Last {
        fn format(&self, series: &Series, path: &str, _slices: usize) -> Result<Formatted> {
            let last = series.values.last().and_then(|v| v.number_at(path));
            Ok(Formatted::Json(json!({ "last": last })))
        }
    }

    /// Doubles a path in place.
    struct Double(String);

    impl Transponder for Double {
        fn transpond(&self, series: &mut Series) -> Result<()> {
            for doc in &mut series.values {
                if let Some(n) = doc.number_at(&self.0) {
                    doc.insert(self.0.clone(), n.checked_add(n)?)?;
                }
            }
            Ok(())
        }
    }

    fn series() -> Series {
        hourly(vec![
            values!({"a": 1}),
            values!({"b": 1}),
            values!({"a": 2}),
            values!({"a": 3}),
        ])
    }

    #[test]
    fn builtins_are_registered_under_trifle_names() {
        let r = Registry::default();
        assert_eq!(
            r.aggregator_names().collect::<Vec<_>>(),
            ["avg", "max", "mean", "min", "sum"]
        );
        assert_eq!(
            r.formatter_names().collect::<Vec<_>>(),
            ["category", "timeline"]
        );
        assert_eq!(r.transponder_names().count(), 12);
        let s = series();
        assert_eq!(
            r.aggregate("sum", &s, "a", 2).unwrap(),
            [Some(Number::Int(1)), Some(Number::Int(5))]
        );
        assert_eq!(
            r.aggregate("avg", &s, "a", 1).unwrap(),
            r.aggregate("mean", &s, "a", 1).unwrap()
        );
        assert!(matches!(
            r.format("timeline", &s, "a", 1).unwrap(),
            Formatted::Timeline(_)
        ));
        assert!(matches!(
            r.format("category", &s, "a", 1).unwrap(),
            Formatted::Category(_)
        ));
    }

    #[test]
    fn user_defined_aggregator() {
        let mut r = Registry::default();
        assert!(r.register_aggregator("count", Count).is_none());
        let s = series();
        assert_eq!(
            r.aggregate("count", &s, "a", 2).unwrap(),
            [Some(Number::Int(1)), Some(Number::Int(2))]
        );
        // Through a looked-up handle too.
        let count = r.aggregator("count").unwrap();
        assert_eq!(count.aggregate(&s, "*", 1).unwrap(), [Some(Number::Int(4))]);
        // Replacing a built-in returns it.
        assert!(r.register_aggregator("sum", Count).is_some());
        assert_eq!(
            r.aggregate("sum", &s, "a", 1).unwrap(),
            [Some(Number::Int(3))]
        );
    }

    #[test]
    fn user_defined_formatter_and_transponder() {
        let mut r = Registry::default();
        r.register_formatter("last", Last);
        r.register_transponder("double", |p: &serde_json::Value| {
            let path = p["path"]
                .as_str()
                .ok_or_else(|| Error::InvalidInput("double needs a path".into()))?;
            Ok(Box::new(Double(path.to_owned())) as Box<dyn Transponder>)
        });
        let mut s = series();
        let double = r.transponder("double", &json!({"path": "a"})).unwrap();
        s.transpond(&double).unwrap();
        let ratio = r
            .transponder(
                "expression",
                &json!({"paths": ["a"], "expression": "a / 4", "response": "q"}),
            )
            .unwrap();
        s.transpond(&ratio).unwrap();
        assert_eq!(s.values[3], values!({"a": 6, "q": 1.5}));
        assert_eq!(
            serde_json::to_value(r.format("last", &s, "q", 1).unwrap()).unwrap(),
            json!({"last": 1.5})
        );
        assert!(matches!(
            r.transponder("double", &json!({})),
            Err(Error::InvalidInput(_))
        ));
    }

    #[test]
    fn unknown_names_are_not_found() {
        let r = Registry::default();
        let s = series();
        let err = r.aggregate("median", &s, "a", 1).unwrap_err();
        assert!(matches!(err, Error::NotFound(_)));
        assert!(
            err.to_string().contains("avg, max, mean, min, sum"),
            "{err}"
        );
        assert!(matches!(
            r.format("pie", &s, "a", 1),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            r.transponder("nope", &json!({})),
            Err(Error::NotFound(_))
        ));
        let empty = Registry::empty();
        let err = empty.aggregate("sum", &s, "a", 1).unwrap_err();
        assert!(err.to_string().contains("registered: none"), "{err}");
        assert!(format!("{r:?}").contains("timeline"));
    }

    #[test]
    fn registry_is_shareable() {
        fn assert_send_sync<T: Send + Sync + Clone>() {}
        assert_send_sync::<Registry>();
    }
}
