//! The rules suite on the in-process store. See `common`.

#[macro_use]
mod common;

use std::sync::Arc;

use stats_backend_atomics::AtomicsStore;

async fn store() -> Arc<AtomicsStore> {
    Arc::new(AtomicsStore::new())
}

rules_suite!(store());
