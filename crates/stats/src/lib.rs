//! # stats
//!
//! Application statistics on the database a team already runs: every event counted into
//! every time bucket at once, plain counters with namespaces and compare-and-swap, and
//! throttles, on one set of store traits with one conformance suite.
//!
//! This umbrella crate re-exports the core ([`Values`], [`Key`], [`Batch`], the store traits)
//! and, behind one feature each, the stores:
//!
//! | feature | store | crate |
//! |---|---|---|
//! | `atomics` (default) | in-process, lock-free | `stats-backend-atomics` |
//! | `redis` | Redis and Redis Cluster | `stats-backend-redis` |
//! | `postgres`, `mysql`, `sqlite` | PostgreSQL, MySQL/MariaDB, SQLite (one store type, `sql::SqlStore`, for the databases enabled) | `stats-backend-sql` |
//!
//! The default build pulls no database driver.
//!
//! ```
//! # #[cfg(feature = "atomics")] {
//! use stats::{Batch, Key, MetricStore, atomics::AtomicsStore, values};
//! # tokio_test();
//! # fn tokio_test() {
//! # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
//! # rt.block_on(async {
//! let store = AtomicsStore::new();
//! let key = Key::bucket("orders", "1h".parse()?, 1_700_002_800)?;
//! let mut batch = Batch::new();
//! batch.inc([key.clone()], &values!({"count": 1, "amount": 12.5}))?;
//! store.apply(&batch).await?;
//! assert_eq!(store.read(&[key]).await?[0], values!({"count": 1, "amount": 12.5}));
//! # Ok::<(), stats::Error>(())
//! # }).unwrap();
//! # }
//! # }
//! ```

#[doc(inline)]
pub use stats_core::series::Series;
#[doc(inline)]
pub use stats_core::time::Calendar;
#[doc(inline)]
pub use stats_core::tracker::{Blanks, Config, Status, Tracker};
#[doc(inline)]
pub use stats_core::{
    Batch, Capabilities, CasOutcome, CounterInfo, CounterStore, Error, Granularity, Key,
    MetricStore, MetricStoreExt, NameKind, NamespaceInfo, Number, Op, Result, Slot, Store,
    ThrottleStore, Unit, Value, Values, Write, name, values,
};
#[doc(inline)]
pub use stats_core::{jiff, series, time, tracker};

/// The Redis and Redis Cluster store (feature `redis`).
#[cfg(feature = "redis")]
pub mod redis {
    #[doc(inline)]
    pub use stats_backend_redis::*;
}

/// The SQL store on PostgreSQL, MySQL/MariaDB and SQLite (features `postgres`, `mysql`,
/// `sqlite`; each compiles in its database's driver).
#[cfg(any(feature = "postgres", feature = "mysql", feature = "sqlite"))]
pub mod sql {
    #[doc(inline)]
    pub use stats_backend_sql::*;
}

/// The in-process store (feature `atomics`).
#[cfg(feature = "atomics")]
pub mod atomics {
    #[doc(inline)]
    pub use stats_backend_atomics::*;
}

/// The README's examples, compiled as doc tests so that they stay true.
#[cfg(all(doctest, feature = "atomics", feature = "redis", feature = "postgres"))]
#[doc = include_str!("../../../README.md")]
pub struct ReadmeDoctests;
