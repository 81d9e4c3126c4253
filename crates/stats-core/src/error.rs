//! The one error type of every store and every layer above them.

use std::borrow::Cow;
use std::fmt;

/// What kind of name a [`Error::InvalidName`] is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NameKind {
    /// A name inside a [`Values`](crate::Values) map (one segment of a value path).
    Field,
    /// A whole flattened value path such as `a.b.c`.
    Path,
    /// A metric key, the first part of a [`Key`](crate::Key).
    Metric,
    /// A counter namespace.
    Namespace,
    /// A counter key inside a namespace.
    Counter,
    /// A throttle key.
    Throttle,
    /// A store's key prefix (the Redis `key_prefix`), put before every key the store writes.
    KeyPrefix,
    /// A tracker's metric prefix ([`Config::metric_prefix`](crate::tracker::Config::metric_prefix)),
    /// joined to every metric key the tracker writes.
    MetricPrefix,
}

impl fmt::Display for NameKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            NameKind::Field => "field name",
            NameKind::Path => "value path",
            NameKind::Metric => "metric key",
            NameKind::Namespace => "namespace",
            NameKind::Counter => "counter key",
            NameKind::Throttle => "throttle key",
            NameKind::KeyPrefix => "key prefix",
            NameKind::MetricPrefix => "metric prefix",
        })
    }
}

/// A boxed error from a driver or another library.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in `stats`.
///
/// Variants carry the offending name, key or value so that the message alone says what to fix.
/// Every variant except [`Error::Backend`], [`Error::Timeout`] and [`Error::Unavailable`]
/// describes a call that will fail the same way if repeated; see [`Error::is_retryable`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A name breaks the portable name rule (see [`crate::name`]). Nothing of the call was written.
    #[error("invalid {kind} {name:?}: {reason}")]
    InvalidName {
        /// What the name was used as.
        kind: NameKind,
        /// The offending name (possibly truncated for very long input).
        name: String,
        /// Which part of the rule it breaks (with the limit and the actual size where it is
        /// about a length).
        reason: Cow<'static, str>,
    },

    /// A value is not a finite number, or a document is not a map of names to numbers.
    #[error("invalid value{}: {reason}", at_path(path))]
    InvalidValue {
        /// The flattened path of the offending value, when known.
        path: Option<String>,
        /// What is wrong with it.
        reason: String,
    },

    /// A granularity string is not `<n><unit>` with `n >= 1` and a known unit.
    #[error("invalid granularity {input:?}: {reason}")]
    InvalidGranularity {
        /// The string given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },

    /// An argument that is not a name, a value or a granularity is out of its domain
    /// (an unsorted bucket list, a zero TTL, a zero capacity, ...).
    #[error("invalid input: {0}")]
    InvalidInput(String),

    /// A series expression (see [`crate::series::Expression`]) does not parse: a syntax error,
    /// an unknown function or variable, or a function called with the wrong number of arguments.
    /// Reported when the expression is built, never while evaluating it.
    #[error("invalid expression {expression:?} at position {position}: {reason}")]
    InvalidExpression {
        /// The expression as given.
        expression: String,
        /// Byte offset into `expression` where the problem is (its length for an unexpected end).
        position: usize,
        /// What is wrong there.
        reason: String,
    },

    /// Integer arithmetic would leave the `i64` range (or a float would become infinite).
    /// Nothing of the call was written.
    #[error("overflow at {key}{}: {detail}", at_path(path))]
    Overflow {
        /// The key (metric bucket or `namespace/counter`) being written.
        key: String,
        /// The flattened value path, for metric writes.
        path: Option<String>,
        /// The operation and operands that overflowed.
        detail: String,
    },

    /// A value path is used both as a number and as a map for the same key
    /// (for example `a` is a number and the write has `a.b`). Nothing of the call was written.
    #[error("path conflict at {key}: {path:?} {detail}")]
    PathConflict {
        /// The key being written.
        key: String,
        /// The path of the write that conflicts.
        path: String,
        /// How it conflicts.
        detail: &'static str,
    },

    /// The thing asked for does not exist (for example a counter handle whose counter was deleted).
    #[error("not found: {0}")]
    NotFound(String),

    /// A bounded store is full.
    #[error("capacity exceeded in namespace {namespace:?}: at most {capacity} counters")]
    CapacityExceeded {
        /// The namespace that is full.
        namespace: String,
        /// Its capacity.
        capacity: usize,
    },

    /// The store does not support this operation; see its [`Capabilities`](crate::Capabilities).
    #[error("{store} does not support {operation}")]
    Unsupported {
        /// The store's name.
        store: &'static str,
        /// The unsupported operation.
        operation: &'static str,
    },

    /// The call did not complete within its deadline. The outcome of a write is unknown.
    #[error("{store}: timed out after {after:?} during {operation}")]
    Timeout {
        /// The store's name.
        store: &'static str,
        /// What was being done.
        operation: &'static str,
        /// The deadline that passed.
        after: std::time::Duration,
    },

    /// The store cannot be reached (connection refused or lost, server shutting down).
    #[error("{store} unavailable: {source}")]
    Unavailable {
        /// The store's name.
        store: &'static str,
        /// The driver's error.
        #[source]
        source: BoxError,
    },

    /// Any other error from a store's driver.
    #[error("{store}: {source}")]
    Backend {
        /// The store's name.
        store: &'static str,
        /// Whether repeating the same call may succeed (deadlock, serialization failure, ...).
        retryable: bool,
        /// The driver's error.
        #[source]
        source: BoxError,
    },
}

fn at_path(path: &Option<String>) -> String {
    match path {
        Some(p) => format!(" at {p:?}"),
        None => String::new(),
    }
}

impl Error {
    /// Whether the same call may succeed if repeated unchanged.
    ///
    /// True for timeouts, an unreachable store and backend errors the backend marked retryable
    /// (deadlocks, serialization failures). False for everything that is wrong with the input
    /// or the state (bad names, overflow, capacity, unsupported operations, constraint
    /// violations): repeating those fails again.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Timeout { .. } | Error::Unavailable { .. } => true,
            Error::Backend { retryable, .. } => *retryable,
            _ => false,
        }
    }

    /// A [`Error::Backend`] error.
    pub fn backend(store: &'static str, retryable: bool, source: impl Into<BoxError>) -> Self {
        Error::Backend {
            store,
            retryable,
            source: source.into(),
        }
    }

    /// An [`Error::InvalidName`], with a very long name shortened (on a character boundary) so
    /// that the message stays readable.
    pub fn invalid_name(kind: NameKind, name: &str, reason: impl Into<Cow<'static, str>>) -> Self {
        const SHOWN: usize = 80;
        let name = if name.len() > SHOWN {
            let mut end = SHOWN;
            while !name.is_char_boundary(end) {
                end -= 1;
            }
            format!("{}...", &name[..end])
        } else {
            name.to_owned()
        };
        Error::InvalidName {
            kind,
            name,
            reason: reason.into(),
        }
    }

    /// The same error with `context` (say, which server) in front of the message of an
    /// [`Error::Unavailable`] or [`Error::Backend`] source, keeping the source chain; other
    /// variants are returned unchanged.
    ///
    /// ```
    /// use stats_core::Error;
    /// let e = Error::Unavailable { store: "redis", source: "connection refused".into() };
    /// let e = e.context("cannot connect to redis://10.0.0.1:6379");
    /// assert_eq!(
    ///     e.to_string(),
    ///     "redis unavailable: cannot connect to redis://10.0.0.1:6379: connection refused"
    /// );
    /// assert!(e.is_retryable());
    /// ```
    pub fn context(self, context: impl fmt::Display) -> Self {
        let wrap = |source: BoxError| -> BoxError {
            Box::new(Context {
                context: context.to_string(),
                source,
            })
        };
        match self {
            Error::Unavailable { store, source } => Error::Unavailable {
                store,
                source: wrap(source),
            },
            Error::Backend {
                store,
                retryable,
                source,
            } => Error::Backend {
                store,
                retryable,
                source: wrap(source),
            },
            other => other,
        }
    }

    /// The [`Error::Overflow`] of a counter: every store reports it the same way,
    /// `overflow at <namespace>/<key>: <current> + <step>` (with `default` standing for the
    /// value a missing counter starts at).
    pub fn counter_overflow(namespace: &str, key: &str, current: i64, step: i64) -> Self {
        Error::Overflow {
            key: format!("{namespace}/{key}"),
            path: None,
            detail: format!("{current} + {step} leaves the i64 range"),
        }
    }
}

/// A driver error with what was being done in front of it (see [`Error::context`]).
#[derive(Debug)]
struct Context {
    context: String,
    source: BoxError,
}

impl fmt::Display for Context {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.context, self.source)
    }
}

impl std::error::Error for Context {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// The result type of `stats`.
pub type Result<T, E = Error> = std::result::Result<T, E>;
