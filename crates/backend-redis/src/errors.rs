//! Errors of connecting, with the server named.

use std::fmt;

use redis::RedisError;
use stats_core::Error;
use stats_core::error::BoxError;

use crate::config::{RedisConfig, Target, redact};
use crate::store::map_error;

/// A failure to connect, naming the server(s) tried (passwords hidden), so that a typo in a
/// host name shows in the message and not only the resolver's words.
#[derive(Debug)]
struct ConnectError {
    servers: String,
    source: BoxError,
}

impl fmt::Display for ConnectError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot connect to {}: {}", self.servers, self.source)
    }
}

impl std::error::Error for ConnectError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

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
    match map_error(e, config.connection_timeout) {
        Error::Unavailable { store, source } => Error::Unavailable {
            store,
            source: Box::new(ConnectError { servers, source }),
        },
        Error::Backend {
            store,
            retryable,
            source,
        } => Error::Backend {
            store,
            retryable,
            source: Box::new(ConnectError { servers, source }),
        },
        other => other,
    }
}
