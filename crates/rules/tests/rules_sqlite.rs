//! The rules suite on SQLite: one database file per test in `STATS_TEST_SQLITE_DIR` (`cargo
//! xtask it sqlite` sets it), else in the system's temporary directory. See `common`.

#[macro_use]
mod common;

use std::sync::Arc;

use stats_backend_sql::{SqlConfig, SqlStore};

async fn store() -> Arc<SqlStore> {
    let dir = std::env::var_os("STATS_TEST_SQLITE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let file = dir.join(format!("{}.db", stats_core::testkit::unique("rules")));
    let config = SqlConfig::from_url(&format!("sqlite://{}", file.display())).expect("URL");
    let store = SqlStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    Arc::new(store)
}

rules_suite!(store());
