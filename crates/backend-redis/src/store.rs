//! The store: connections, key layout and error mapping.

use std::fmt;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, ErrorKind, Pipeline, RedisError, RedisFuture, ServerErrorKind, Value};
use stats_core::{Capabilities, Error, Granularity, Key, Slot, Store};

use crate::config::{Layout, RedisConfig, TLS_NOT_COMPILED, Target, is_tls_url, redact};
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
    /// A `rediss://` URL connects over TLS (with the `tls` feature, `redis-tls` of `stats`),
    /// checking the server's certificate against the system's trusted roots, or the root set
    /// with [`RedisConfig::tls_root_certificate_file`]. TLS uses rustls with its ring crypto
    /// provider: when the process has no default rustls provider yet, the first TLS connection
    /// installs ring as the default (an application that wants another one installs it first).
    ///
    /// # Errors
    /// [`Error::Unavailable`] naming the server(s) when they cannot be reached (refused,
    /// unknown host) within the connection timeout, [`Error::InvalidInput`] for a bad URL or a
    /// TLS root certificate with a `redis://` URL, [`Error::Unsupported`] for a `rediss://` URL
    /// in a build without TLS, a non-retryable [`Error::Backend`] when the server's certificate
    /// is not trusted (or does not name the host) or the TLS handshake fails.
    pub async fn connect(config: RedisConfig) -> stats_core::Result<Self> {
        stats_core::store::check_timeout("connection_timeout", config.connection_timeout)?;
        stats_core::store::check_timeout("response_timeout", config.response_timeout)?;
        let urls: Vec<&str> = match &config.target {
            Target::Single(url) => vec![url.as_str()],
            Target::Cluster(urls) => urls.iter().map(String::as_str).collect(),
        };
        let tls = urls.iter().any(|url| is_tls_url(url));
        if tls && !cfg!(feature = "tls") {
            return Err(Error::Unsupported {
                store: STORE_NAME,
                operation: TLS_NOT_COMPILED,
            });
        }
        if tls && urls.iter().any(|url| !is_tls_url(url)) {
            return Err(Error::InvalidInput(format!(
                "the Redis Cluster URLs mix rediss:// and redis://: {}",
                urls.iter()
                    .map(|u| redact(u))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let (Some(root), false) = (&config.tls_root, tls) {
            return Err(Error::InvalidInput(format!(
                "a TLS root certificate ({}) was given for {}, which is not a rediss:// URL",
                root.source,
                redact(urls.first().copied().unwrap_or_default())
            )));
        }
        #[cfg(feature = "tls")]
        if tls {
            ensure_crypto_provider();
        }
        let conn = match &config.target {
            Target::Single(url) => {
                let client = open_client(url, &config)?;
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
                let builder = ClusterClientBuilder::new(urls.clone())
                    .connection_timeout(config.connection_timeout)
                    .response_timeout(config.response_timeout)
                    .retries(2);
                #[cfg(feature = "tls")]
                let builder = match &config.tls_root {
                    Some(root) => builder.certs(certificates(root)),
                    None => builder,
                };
                let client = builder.build().map_err(|e| {
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

    /// The hash of one bucket (or of a metric's status): `<prefix>::m::{<metric>}::<g>::<start>`
    /// (the metric is the hash tag, so all buckets of a metric live in one cluster slot); in
    /// the Trifle layout `<prefix>::<metric>::<g>::<start>` (Trifle's) and
    /// `<prefix>::<metric>::status`.
    pub fn bucket_key(&self, key: &Key) -> String {
        match key.slot() {
            Slot::Status => match self.config.layout {
                Layout::Stats => format!("{}::m::{{{}}}::status", self.config.prefix, key.metric()),
                Layout::Trifle => format!("{}::{}::status", self.config.prefix, key.metric()),
            },
            Slot::Bucket { granularity, start } => self.range_key(key.metric(), granularity, start),
        }
    }

    pub(crate) fn range_key(&self, metric: &str, granularity: Granularity, start: i64) -> String {
        let prefix = &self.config.prefix;
        match self.config.layout {
            Layout::Stats => format!("{prefix}::m::{{{metric}}}::{granularity}::{start}"),
            Layout::Trifle => format!("{prefix}::{metric}::{granularity}::{start}"),
        }
    }

    /// The layout of metric buckets (see [`RedisConfig::layout`]).
    pub fn layout(&self) -> Layout {
        self.config.layout
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
        // One server runs a whole batch in one script; a cluster runs one script per metric
        // (per bucket in the Trifle layout).
        caps.atomic_batch = !self.config.is_cluster();
        // The apply script records a batch's id with its writes (per metric on a cluster).
        caps.idempotent_batch = true;
        caps
    }
}

/// The client of one server, with the configured TLS root when there is one.
fn open_client(url: &str, config: &RedisConfig) -> stats_core::Result<redis::Client> {
    let bad_url =
        |e: RedisError| Error::InvalidInput(format!("bad Redis URL {}: {e}", redact(url)));
    #[cfg(feature = "tls")]
    if let Some(root) = &config.tls_root {
        return redis::Client::build_with_tls(url, certificates(root)).map_err(bad_url);
    }
    let _ = config;
    redis::Client::open(url).map_err(bad_url)
}

/// The driver's form of a configured TLS root.
#[cfg(feature = "tls")]
fn certificates(root: &crate::config::TlsRoot) -> redis::TlsCertificates {
    redis::TlsCertificates {
        client_tls: None,
        root_cert: Some(root.pem.clone()),
    }
}

/// Makes rustls's ring provider the process default when there is none, so that the driver's
/// `ClientConfig::builder()` finds one whatever other rustls features the application enabled
/// (with both ring and aws-lc-rs compiled in and no default, rustls would panic there).
#[cfg(feature = "tls")]
fn ensure_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: that one is used, as wanted.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Maps an error of connecting: a TLS failure (untrusted certificate, wrong host name,
/// handshake refused) is not retryable and says it is TLS; the rest as [`map_error`].
pub(crate) fn map_connect_error(e: RedisError, after: Duration) -> Error {
    #[cfg(feature = "tls")]
    if let Some(tls) = tls_error(&e) {
        return Error::backend(STORE_NAME, false, format!("TLS handshake failed: {tls}"));
    }
    map_error(e, after)
}

/// The rustls error behind a driver error, when there is one. The driver keeps an I/O error
/// as an `Arc<dyn Error>`, and the TLS stream puts rustls's error inside an I/O error.
#[cfg(feature = "tls")]
fn tls_error(e: &RedisError) -> Option<String> {
    use std::error::Error as StdError;
    use std::sync::Arc;

    fn find<'a>(err: &'a (dyn StdError + 'static)) -> Option<&'a rustls::Error> {
        if let Some(tls) = err.downcast_ref::<rustls::Error>() {
            return Some(tls);
        }
        if let Some(shared) = err.downcast_ref::<Arc<dyn StdError + Send + Sync>>() {
            return find(&**shared);
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>() {
            return io.get_ref().and_then(|inner| find(inner));
        }
        None
    }

    let mut source: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = source {
        if let Some(tls) = find(err) {
            return Some(tls.to_string());
        }
        source = err.source();
    }
    None
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
