//! Shared setup of the Redis test suites.
#![allow(dead_code, unreachable_pub)]

use std::sync::Arc;

use stats_backend_redis::{RedisConfig, RedisStore};

/// The server URL(s) from the environment, or a clear failure.
pub fn url(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set. These tests need a real server: run `cargo xtask it redis` or \
             `cargo xtask it redis-cluster`, which start one, or set {var} to a server's URL."
        )
    })
}

/// A store on the server named by `var`, under a prefix no other run uses.
pub async fn store(var: &str) -> Arc<RedisStore> {
    let config = RedisConfig::from_url(&url(var))
        .expect("URL")
        .prefix(&stats_core::testkit::unique("redis"))
        .expect("prefix");
    Arc::new(RedisStore::connect(config).await.expect("connect"))
}
