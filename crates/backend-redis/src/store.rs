//! The store: connections, key layout and error mapping.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use stats_core::{Capabilities, Error, Granularity, Key, Slot, Store};

use crate::config::{RedisConfig, Target, redact};
use crate::errors::connect_error;

/// The name this store reports in errors and [`Store::name`].
pub const STORE_NAME: &str = "redis";

/// A connection to one server (reconnecting on its own) or to a cluster. Both are cheap
/// handles onto one multiplexed connection per server; clone one per concurrent call.
#[derive(Clone)]
pub(crate) enum Conn {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

impl ConnectionLike for Conn {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        match self {
            Conn::Single(c) => c.req_packed_command(cmd),
            Conn::Cluster(c) => c.req_packed_command(cmd),
        }
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        cmd: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        match self {
            Conn::Single(c) => c.req_packed_commands(cmd, offset, count),
            Conn::Cluster(c) => c.req_packed_commands(cmd, offset, count),
        }
    }

    fn get_db(&self) -> i64 {
        match self {
            Conn::Single(c) => c.get_db(),
            Conn::Cluster(c) => c.get_db(),
        }
    }
}

/// A store on Redis or Redis Cluster. See the crate docs for the layout and what is atomic.
#[derive(Clone)]
pub struct RedisStore {
    pub(crate) conn: Conn,
    pub(crate) config: RedisConfig,
}

impl fmt::Debug for RedisStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisStore")
            .field("config", &self.config)
            .finish()
    }
}

impl RedisStore {
    /// Connects. A single server gets a managed connection that reconnects after the server
    /// restarts; a cluster connection follows slot moves and reconnects to its nodes.
    ///
    /// # Errors
    /// [`Error::Unavailable`] naming the server(s) when they cannot be reached (refused,
    /// unknown host) within the connection timeout, [`Error::InvalidInput`] for a bad URL.
    pub async fn connect(config: RedisConfig) -> stats_core::Result<Self> {
        let conn = match &config.target {
            Target::Single(url) => {
                let client = redis::Client::open(url.as_str()).map_err(|e| {
                    Error::InvalidInput(format!("bad Redis URL {}: {e}", redact(url)))
                })?;
                let manager_config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(config.connection_timeout))
                    .set_response_timeout(Some(config.response_timeout))
                    .set_number_of_retries(1)
                    .set_max_delay(Duration::from_millis(500));
                let manager = ConnectionManager::new_with_config(client, manager_config)
                    .await
                    .map_err(|e| connect_error(e, &config))?;
                Conn::Single(manager)
            }
            Target::Cluster(urls) => {
                let client = ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(2)
                    .build()
                    .map_err(|e| {
                        Error::InvalidInput(format!("bad Redis Cluster configuration: {e}"))
                    })?;
                let conn = client
                    .get_async_connection()
                    .await
                    .map_err(|e| connect_error(e, &config))?;
                Conn::Cluster(conn)
            }
        };
        Ok(RedisStore { conn, config })
    }

    /// Maps a driver error of a call on this store.
    pub(crate) fn error(&self, e: RedisError) -> Error {
        map_error(e, self.config.response_timeout)
    }

    /// The prefix of every key this store writes (see [`RedisConfig::key_prefix`]).
    pub fn key_prefix(&self) -> &str {
        &self.config.prefix
    }

    /// The settings this store was built with.
    pub fn config(&self) -> &RedisConfig {
        &self.config
    }

    /// The hash of one bucket (or of a metric's status): `<prefix>::m::{<metric>}::<g>::<start>`.
    /// The metric is the hash tag, so all buckets of a metric live in one cluster slot.
    pub fn bucket_key(&self, key: &Key) -> String {
        let prefix = &self.config.prefix;
        let metric = key.metric();
        match key.slot() {
            Slot::Status => format!("{prefix}::m::{{{metric}}}::status"),
            Slot::Bucket { granularity, start } => {
                format!("{prefix}::m::{{{metric}}}::{granularity}::{start}")
            }
        }
    }

    pub(crate) fn range_key(&self, metric: &str, granularity: Granularity, start: i64) -> String {
        format!(
            "{}::m::{{{metric}}}::{granularity}::{start}",
            self.config.prefix
        )
    }

    /// The hash of one counter namespace: `<prefix>::c::{<namespace>}`.
    pub fn namespace_key(&self, namespace: &str) -> String {
        format!("{}::c::{{{namespace}}}", self.config.prefix)
    }

    /// The set of namespaces that ever held a counter: `<prefix>::c::namespaces`.
    pub(crate) fn namespaces_key(&self) -> String {
        format!("{}::c::namespaces", self.config.prefix)
    }

    /// The key of one throttle: `<prefix>::t::{<key>}`.
    pub fn throttle_key(&self, key: &str) -> String {
        format!("{}::t::{{{key}}}", self.config.prefix)
    }
}

impl Store for RedisStore {
    fn name(&self) -> &'static str {
        STORE_NAME
    }

    fn capabilities(&self) -> Capabilities {
        let mut caps = Capabilities::default();
        caps.floats = true;
        caps.max_min = true;
        caps.ttl = true;
        caps.persistent = true;
        caps.cluster = self.config.is_cluster();
        // One server runs a whole batch in one script; a cluster runs one script per metric.
        caps.atomic_batch = !self.config.is_cluster();
        caps
    }
}

/// Maps a driver error: timeouts and lost or refused connections are retryable, as are the
/// server's transient refusals (cluster reconfiguring, loading, busy script); the rest is not.
pub(crate) fn map_error(e: RedisError, after: Duration) -> Error {
    if e.is_timeout() {
        return Error::Timeout {
            store: STORE_NAME,
            operation: "a Redis call",
            after,
        };
    }
    if e.is_io_error()
        || e.is_connection_dropped()
        || e.is_connection_refusal()
        || e.kind() == ErrorKind::ClusterConnectionNotFound
    {
        return Error::Unavailable {
            store: STORE_NAME,
            source: Box::new(e),
        };
    }
    let retryable = matches!(
        e.kind(),
        ErrorKind::Server(
            ServerErrorKind::TryAgain
                | ServerErrorKind::ClusterDown
                | ServerErrorKind::BusyLoading
                | ServerErrorKind::MasterDown
                | ServerErrorKind::Moved
                | ServerErrorKind::Ask
        )
    ) || matches!(
        e.code(),
        Some("BUSY" | "LOADING" | "MASTERDOWN" | "TRYAGAIN" | "CLUSTERDOWN")
    );
    Error::backend(STORE_NAME, retryable, e)
}
