//! The coalescing property on the in-process store (see `common`).

mod common;

use stats_backend_atomics::AtomicsStore;

#[tokio::test]
async fn coalescing_is_exact_on_atomics() {
    common::property("ints", 300, 60, false, || async { AtomicsStore::new() }).await;
    common::property("floats", 300, 60, true, || async { AtomicsStore::new() }).await;
}
