//! Errors of connecting, with the server named.

use redis::RedisError;
use stats_core::Error;

use crate::config::{RedisConfig, Target, redact};
use crate::store::map_connect_error;

/// Maps a driver error of [`RedisStore::connect`](crate::RedisStore::connect) as
/// [`map_error`] does, with the server(s) named in [`Error::Unavailable`] and
/// [`Error::Backend`].
pub(crate) fn connect_error(e: RedisError, config: &RedisConfig) -> Error {
    let servers = match &config.target {
        Target::Single(url) => redact(url),
        Target::Cluster(urls) => urls
            .iter()
            .map(|u| redact(u))
            .collect::<Vec<_>>()
            .join(", "),
    };
    map_connect_error(e, config.connection_timeout).context(format!("cannot connect to {servers}"))
}
