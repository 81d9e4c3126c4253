//! What the MongoDB suites share: the server's URL and fresh stores.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use stats_backend_mongo::{IdMode, MongoConfig, MongoStore};

/// The variable that holds the test server's URL.
pub const VAR: &str = "STATS_TEST_MONGO_URL";

/// The database the suites write to.
pub const DATABASE: &str = "stats_test";

/// The test server's URL.
pub fn url() -> String {
    std::env::var(VAR).unwrap_or_else(|_| {
        panic!(
            "{VAR} is not set. These tests need a real MongoDB-wire server: run `cargo xtask it \
             mongo`, which starts one, or set {VAR} to a server's URL."
        )
    })
}

/// A collection name no other store of this run or another run uses (the test server checks
/// unique indexes by scanning, so every test gets a small collection of its own).
pub fn unique_collection(label: &str) -> String {
    // `tk<pid>x<n>x<nanos>-<label>`: letters, digits, `x` and `-`, a valid collection name.
    stats_core::testkit::unique(label)
}

/// A configuration of a fresh collection in `mode`.
pub fn config(mode: IdMode) -> MongoConfig {
    MongoConfig::from_url(&url())
        .expect("URL")
        .database(DATABASE)
        .expect("database")
        .collection(&unique_collection(mode.as_str()))
        .expect("collection")
        .mode(mode)
        // The conformance suite checks exactly-once batches where the store offers them.
        .record_batch_ids(true)
}

/// A set-up store of a fresh collection in `mode`.
pub async fn store(mode: IdMode) -> Arc<MongoStore> {
    store_with(config(mode)).await
}

/// A set-up store of `config`.
pub async fn store_with(config: MongoConfig) -> Arc<MongoStore> {
    let store = MongoStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    Arc::new(store)
}
