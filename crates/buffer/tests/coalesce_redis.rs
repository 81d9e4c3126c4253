//! The coalescing property on Redis (`STATS_TEST_REDIS_URL`; `cargo xtask it redis` starts a
//! server and sets it). See `common`.

mod common;

use stats_backend_redis::{RedisConfig, RedisStore};

async fn store() -> RedisStore {
    const VAR: &str = "STATS_TEST_REDIS_URL";
    let url = std::env::var(VAR).unwrap_or_else(|_| {
        panic!("{VAR} is not set: run `cargo xtask it redis`, which starts a server, or set it")
    });
    let config = RedisConfig::from_url(&url)
        .expect("URL")
        .key_prefix(&stats_core::testkit::unique("buffer"))
        .expect("prefix");
    RedisStore::connect(config).await.expect("connect")
}

#[tokio::test]
async fn coalescing_is_exact_on_redis() {
    common::property("ints", 60, 60, false, store).await;
    common::property("floats", 60, 60, true, store).await;
}
