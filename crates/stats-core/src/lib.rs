//! Core of the `stats` toolkit: the data model, the store traits every backend implements,
//! and (behind the `testkit` feature) the conformance suite every backend passes.
//!
//! - [`Values`] and [`Number`]: nested maps of names to exact integers or finite floats.
//! - [`name`]: the one portable name rule, checked before anything is written.
//! - [`Key`], [`Granularity`]: where a document lives (metric, bucket width, bucket start).
//! - [`Batch`]: the unit of writing, one round trip for a network store.
//! - [`MetricStore`], [`CounterStore`], [`ThrottleStore`]: the store traits, with
//!   [`Capabilities`] and the one [`Error`] type.

pub mod batch;
pub mod error;
pub mod granularity;
pub mod key;
pub mod name;
pub mod number;
pub mod plan;
pub mod retention;
pub mod series;
pub mod store;
pub mod support;
#[cfg(feature = "testkit")]
pub mod testkit;
pub mod time;
pub mod tracker;
pub mod values;

#[doc(inline)]
pub use batch::{BATCH_ID_WINDOW, Batch, BatchId, Fields, Op, Write};
#[doc(inline)]
pub use error::{Error, NameKind, Result};
#[doc(inline)]
pub use granularity::{Granularity, Unit};
#[doc(inline)]
pub use key::{Key, Slot};
#[doc(inline)]
pub use number::Number;
#[doc(inline)]
pub use store::{
    Capabilities, CasOutcome, CounterInfo, CounterStore, MetricStore, MetricStoreExt,
    NamespaceInfo, Store, ThrottleStore,
};
#[doc(inline)]
pub use values::{Value, Values};

/// The time library of the public API (instants, zones, weekdays), re-exported so that callers
/// use the same version.
pub use jiff;

#[doc(hidden)]
pub mod __private {
    pub use serde_json;
}
