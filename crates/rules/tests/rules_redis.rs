//! The rules suite on Redis (`STATS_TEST_REDIS_URL`; `cargo xtask it redis` starts a server and
//! sets it), one key prefix per test. See `common`.

#[macro_use]
mod common;

use std::sync::Arc;

use stats_backend_redis::{RedisConfig, RedisStore};

async fn store() -> Arc<RedisStore> {
    const VAR: &str = "STATS_TEST_REDIS_URL";
    let url = std::env::var(VAR).unwrap_or_else(|_| {
        panic!("{VAR} is not set: run `cargo xtask it redis`, which starts a server, or set it")
    });
    let config = RedisConfig::from_url(&url)
        .expect("URL")
        .key_prefix(&stats_core::testkit::unique("rules"))
        .expect("prefix");
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}

rules_suite!(store());
