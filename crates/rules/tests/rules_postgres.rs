//! The rules suite on PostgreSQL (`STATS_TEST_POSTGRES_URL`; `cargo xtask it postgres` starts a
//! server and sets it), with tables of their own per test. See `common`.

#[macro_use]
mod common;

use std::sync::Arc;

use stats_backend_sql::{MAX_TABLE_PREFIX_LEN, SqlConfig, SqlStore};

async fn store() -> Arc<SqlStore> {
    const VAR: &str = "STATS_TEST_POSTGRES_URL";
    let url = std::env::var(VAR).unwrap_or_else(|_| {
        panic!("{VAR} is not set: run `cargo xtask it postgres`, which starts a server, or set it")
    });
    // Table prefixes are lowercase letters, digits and `_`.
    let mut prefix: String = stats_core::testkit::unique("rules")
        .chars()
        .map(|c| match c.to_ascii_lowercase() {
            c @ ('a'..='z' | '0'..='9') => c,
            _ => '_',
        })
        .collect();
    prefix.truncate(MAX_TABLE_PREFIX_LEN);
    let config = SqlConfig::from_url(&url)
        .expect("URL")
        .table_prefix(&prefix)
        .expect("prefix");
    let store = SqlStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    Arc::new(store)
}

rules_suite!(store());
