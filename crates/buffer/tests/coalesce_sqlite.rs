//! The coalescing property on SQLite: database files in `STATS_TEST_SQLITE_DIR` (`cargo xtask
//! it sqlite` sets it), else in the system's temporary directory. See `common`.

mod common;

use stats_backend_sql::{SqlConfig, SqlStore};

async fn store() -> SqlStore {
    let dir = std::env::var_os("STATS_TEST_SQLITE_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(std::env::temp_dir);
    let file = dir.join(format!("{}.db", stats_core::testkit::unique("buffer")));
    let config = SqlConfig::from_url(&format!("sqlite://{}", file.display())).expect("URL");
    let store = SqlStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    store
}

#[tokio::test]
async fn coalescing_is_exact_on_sqlite() {
    common::property("ints", 40, 60, false, store).await;
    common::property("floats", 40, 60, true, store).await;
}
