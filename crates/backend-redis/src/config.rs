//! Connection and layout settings.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Duration;

use stats_core::retention::Retention;
use stats_core::{Error, Granularity, NameKind, Result, name};

/// Default connection timeout.
pub const DEFAULT_CONNECTION_TIMEOUT: Duration = Duration::from_secs(2);
/// Default response timeout: a call to a server that stopped answering fails after this long
/// with a retryable [`Error::Timeout`] instead of hanging.
pub const DEFAULT_RESPONSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Default key prefix (see [`RedisConfig::key_prefix`]).
pub const DEFAULT_KEY_PREFIX: &str = "stats";
/// The default key prefix of the [`Layout::Trifle`] layout: Trifle's own default (`trfl`).
pub const TRIFLE_KEY_PREFIX: &str = "trfl";

/// How metric buckets are laid out on the server (see the crate docs, "Layout" and "The
/// Trifle layout"). Counters, throttles and batch ids are laid out the same in both.
///
/// ```
/// use stats_backend_redis::{Layout, RedisConfig, TRIFLE_KEY_PREFIX};
///
/// let config = RedisConfig::from_url("redis://127.0.0.1:6379/")?.layout(Layout::Trifle);
/// assert_eq!(config.layout_value(), Layout::Trifle);
/// assert_eq!(config.key_prefix_value(), TRIFLE_KEY_PREFIX); // Trifle's `trfl`
/// assert_eq!(RedisConfig::from_url("redis://127.0.0.1/")?.layout_value(), Layout::Stats);
/// # Ok::<(), stats_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Layout {
    /// This store's own layout (the default): hash-tagged bucket keys, numbers that keep
    /// their kind, map markers.
    #[default]
    Stats,
    /// Exactly what Trifle 2.6's Redis driver (`Trifle::Stats::Driver::Redis`) reads and
    /// writes: a hash per `<prefix>::<metric>::<granularity>::<start>` with dot-packed
    /// fields, so that a Trifle application and this store share buckets.
    Trifle,
}

/// Where the server is.
#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    /// One server (`redis://host:port/db` or `rediss://...`).
    Single(String),
    /// A Redis Cluster, by any of its nodes (`redis://host:port` each).
    Cluster(Vec<String>),
}

/// Settings of a [`RedisStore`](crate::RedisStore).
///
/// `Debug` hides passwords in URLs.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisConfig {
    pub(crate) target: Target,
    pub(crate) prefix: String,
    /// Whether [`RedisConfig::key_prefix`] was called (else the layout picks the prefix).
    pub(crate) prefix_set: bool,
    pub(crate) layout: Layout,
    pub(crate) expiry: BTreeMap<Granularity, Duration>,
    pub(crate) connection_timeout: Duration,
    pub(crate) response_timeout: Duration,
    pub(crate) tls_root: Option<TlsRoot>,
}

/// A root certificate (or several) that server certificates are checked against, in PEM, and
/// where it came from (for `Debug` and errors).
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct TlsRoot {
    pub(crate) pem: Vec<u8>,
    pub(crate) source: String,
}

/// The message of the error a TLS setting or a `rediss://` URL gets in a build without TLS.
pub(crate) const TLS_NOT_COMPILED: &str = "TLS (rediss:// URLs, TLS root certificates) in this \
     build: enable the `redis-tls` feature of `stats` (the `tls` feature of `stats-backend-redis`)";

/// Whether `url` asks for TLS (`rediss://`, in any case).
pub(crate) fn is_tls_url(url: &str) -> bool {
    url.get(..9)
        .is_some_and(|scheme| scheme.eq_ignore_ascii_case("rediss://"))
}

/// Refuses a TLS URL in a build without TLS (`compiled` says whether this build has it).
fn check_tls_compiled(url: &str, compiled: bool) -> Result<()> {
    if is_tls_url(url) && !compiled {
        return Err(Error::Unsupported {
            store: crate::STORE_NAME,
            operation: TLS_NOT_COMPILED,
        });
    }
    Ok(())
}

impl RedisConfig {
    /// One server by URL: `redis://[user:password@]host:port[/db]`, or
    /// `rediss://[user:password@]host:port[/db]` for TLS (with the `tls` feature, `redis-tls` of
    /// `stats`; see [`RedisConfig::tls_root_certificate_file`] for servers whose certificate is
    /// not signed by a root the system trusts). A `rediss://` URL in a build without TLS fails
    /// in [`RedisStore::connect`](crate::RedisStore::connect) with [`Error::Unsupported`].
    pub fn single(url: impl Into<String>) -> Self {
        Self::with_target(Target::Single(url.into()))
    }

    /// A Redis Cluster by the URLs of some of its nodes.
    pub fn cluster<S: Into<String>>(urls: impl IntoIterator<Item = S>) -> Self {
        Self::with_target(Target::Cluster(urls.into_iter().map(Into::into).collect()))
    }

    /// From one string: one URL is a single server; several, separated by commas, are the
    /// nodes of a cluster; a `redis+cluster://` scheme forces cluster mode with one node.
    ///
    /// # Errors
    /// [`Error::InvalidInput`] for an empty string or a URL that is not `redis://`, `rediss://`
    /// or `redis+cluster://`; [`Error::Unsupported`] for a `rediss://` URL in a build without
    /// the `tls` feature (`redis-tls` of `stats`).
    pub fn from_url(urls: &str) -> Result<Self> {
        let parts: Vec<&str> = urls
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .collect();
        if parts.is_empty() {
            return Err(Error::InvalidInput("an empty Redis URL".into()));
        }
        let mut forced = false;
        let mut out = Vec::new();
        for part in &parts {
            check_tls_compiled(part, cfg!(feature = "tls"))?;
            let url = if let Some(rest) = part.strip_prefix("redis+cluster://") {
                forced = true;
                format!("redis://{rest}")
            } else if part.starts_with("redis://") || part.starts_with("rediss://") {
                (*part).to_owned()
            } else {
                return Err(Error::InvalidInput(format!(
                    "{:?} is not a redis://, rediss:// or redis+cluster:// URL",
                    redact(part)
                )));
            };
            out.push(url);
        }
        Ok(if out.len() == 1 && !forced {
            Self::single(out.remove(0))
        } else {
            Self::cluster(out)
        })
    }

    fn with_target(target: Target) -> Self {
        RedisConfig {
            target,
            prefix: DEFAULT_KEY_PREFIX.to_owned(),
            prefix_set: false,
            layout: Layout::Stats,
            expiry: BTreeMap::new(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
            tls_root: None,
        }
    }

    /// Checks `rediss://` servers' certificates against the root certificate(s) in the PEM
    /// file at `path` instead of the system's trusted roots: for a private certificate
    /// authority or a self-signed server certificate. The file is read now. The server's
    /// certificate must still name the host of the URL (a DNS name or an IP address).
    ///
    /// With the `tls` feature (`redis-tls` of `stats`):
    ///
    /// ```no_run
    /// # async fn demo() -> stats_core::Result<()> {
    /// use stats_backend_redis::{RedisConfig, RedisStore};
    ///
    /// let config = RedisConfig::single("rediss://:secret@cache.internal:6380/0")
    ///     .tls_root_certificate_file("/etc/stats/redis-ca.pem")?;
    /// let store = RedisStore::connect(config).await?;
    /// # Ok(()) }
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the path when the file cannot be read or holds no valid
    /// PEM certificate; [`Error::Unsupported`] in a build without the `tls` feature.
    /// [`RedisStore::connect`](crate::RedisStore::connect) refuses a root certificate for a
    /// `redis://` (not TLS) URL with [`Error::InvalidInput`].
    pub fn tls_root_certificate_file(self, path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let source = format!("the file {}", path.display());
        if !cfg!(feature = "tls") {
            return Err(Error::Unsupported {
                store: crate::STORE_NAME,
                operation: TLS_NOT_COMPILED,
            });
        }
        let pem = std::fs::read(path).map_err(|e| {
            Error::InvalidInput(format!(
                "cannot read the TLS root certificate {}: {e}",
                path.display()
            ))
        })?;
        self.with_tls_root(pem, source)
    }

    /// As [`RedisConfig::tls_root_certificate_file`], with the PEM text itself (one or more
    /// `-----BEGIN CERTIFICATE-----` blocks).
    ///
    /// # Errors
    /// [`Error::InvalidInput`] when `pem` holds no valid PEM certificate;
    /// [`Error::Unsupported`] in a build without the `tls` feature.
    pub fn tls_root_certificate_pem(self, pem: impl Into<Vec<u8>>) -> Result<Self> {
        if !cfg!(feature = "tls") {
            return Err(Error::Unsupported {
                store: crate::STORE_NAME,
                operation: TLS_NOT_COMPILED,
            });
        }
        self.with_tls_root(pem.into(), "PEM given in memory".to_owned())
    }

    fn with_tls_root(mut self, pem: Vec<u8>, source: String) -> Result<Self> {
        check_root_pem(&pem).map_err(|why| {
            Error::InvalidInput(format!("the TLS root certificate ({source}) {why}"))
        })?;
        self.tls_root = Some(TlsRoot { pem, source });
        Ok(self)
    }

    /// The prefix of every key this store writes (default `stats`), so that several
    /// applications, or test runs, can share a server. Not to be confused with the tracker's
    /// [`Config::metric_prefix`](stats_core::tracker::Config::metric_prefix), which becomes
    /// part of each metric's name: this one only separates this store's keys from others on the
    /// same server.
    ///
    /// ```
    /// use stats_backend_redis::RedisConfig;
    /// let config = RedisConfig::single("redis://127.0.0.1:6379/").key_prefix("myapp")?;
    /// assert!(RedisConfig::single("redis://127.0.0.1:6379/").key_prefix("my::app").is_err());
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidName`] of kind [`NameKind::KeyPrefix`] when the prefix breaks the
    /// segment rule (empty, too long, `::`, `{`, `}`, control characters, ...).
    pub fn key_prefix(mut self, prefix: &str) -> Result<Self> {
        name::check_segment(NameKind::KeyPrefix, prefix)?;
        self.prefix = prefix.to_owned();
        self.prefix_set = true;
        Ok(self)
    }

    /// The layout of metric buckets (default [`Layout::Stats`]). [`Layout::Trifle`] reads and
    /// writes exactly what Trifle 2.6's Redis driver does, so that a Trifle application and
    /// this store share one server's buckets; its key prefix is Trifle's default `trfl`
    /// unless [`RedisConfig::key_prefix`] sets another (in either order). See the crate docs,
    /// "The Trifle layout", for what the layout keeps of this store's guarantees.
    ///
    /// ```
    /// use stats_backend_redis::{Layout, RedisConfig};
    /// let config = RedisConfig::single("redis://127.0.0.1:6379/").layout(Layout::Trifle);
    /// assert_eq!(config.key_prefix_value(), "trfl");
    /// let mine = RedisConfig::single("redis://127.0.0.1:6379/")
    ///     .key_prefix("myapp")?
    ///     .layout(Layout::Trifle);
    /// assert_eq!(mine.key_prefix_value(), "myapp");
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    ///
    /// On a cluster, Trifle's keys carry no hash tag, so the buckets of one metric lie in many
    /// slots: a batch runs as one atomic script per bucket instead of per metric.
    pub fn layout(mut self, layout: Layout) -> Self {
        self.layout = layout;
        if !self.prefix_set {
            self.prefix = match layout {
                Layout::Stats => DEFAULT_KEY_PREFIX,
                Layout::Trifle => TRIFLE_KEY_PREFIX,
            }
            .to_owned();
        }
        self
    }

    /// The key prefix this configuration uses (see [`RedisConfig::key_prefix`] and
    /// [`RedisConfig::layout`]).
    pub fn key_prefix_value(&self) -> &str {
        &self.prefix
    }

    /// The layout of metric buckets (see [`RedisConfig::layout`]).
    pub fn layout_value(&self) -> Layout {
        self.layout
    }

    /// Keep buckets of `granularity` for `keep` after their start: every write of such a
    /// bucket sets the key to expire at `start + keep`, in the same script as the write,
    /// so no bucket key ever exists without its expiry, and Redis removes expired buckets by
    /// itself (no sweep to run). A write to a bucket older than its retention is applied and
    /// expires at once. Replaces an earlier setting for the same granularity.
    ///
    /// ```
    /// use std::time::Duration;
    /// use stats_backend_redis::RedisConfig;
    /// let config = RedisConfig::single("redis://127.0.0.1:6379/")
    ///     .expire("1m".parse()?, Duration::from_secs(2 * 86_400))?; // minute buckets: 2 days
    /// assert!(config.clone().expire("1h".parse()?, Duration::MAX).is_err());
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    ///
    /// # Errors
    /// [`Error::InvalidInput`] naming the granularity for a period under one second or over
    /// [`MAX_TTL`](stats_core::store::MAX_TTL) (as [`Retention::keep`]).
    pub fn expire(mut self, granularity: Granularity, keep: Duration) -> Result<Self> {
        let checked = Retention::new().keep(granularity, keep)?;
        self.expiry.extend(checked.iter());
        Ok(self)
    }

    /// Keep buckets as `retention` says (the same setting every store takes): each granularity
    /// in it as with [`RedisConfig::expire`]; granularities it does not name are kept forever.
    /// Replaces every earlier expiry setting.
    ///
    /// Redis applies retention itself, through the expiry each write sets; buckets written
    /// before a retention was configured have no expiry: remove them with
    /// [`Retention::purge_expired`] or [`MetricStore::purge`](stats_core::MetricStore::purge)
    /// (which scan the key space, see [`RedisStore`](crate::RedisStore)).
    ///
    /// ```
    /// use std::time::Duration;
    /// use stats_backend_redis::RedisConfig;
    /// use stats_core::retention::Retention;
    /// let retention = Retention::new()
    ///     .keep("1m".parse()?, Duration::from_secs(2 * 86_400))?
    ///     .keep("1h".parse()?, Duration::from_secs(90 * 86_400))?;
    /// let config = RedisConfig::single("redis://127.0.0.1:6379/").retention(retention);
    /// # Ok::<(), stats_core::Error>(())
    /// ```
    pub fn retention(mut self, retention: Retention) -> Self {
        self.expiry = retention.iter().collect();
        self
    }

    /// How long to wait for a connection (default 2 s).
    ///
    /// From 1 ms to one day ([`MAX_TIMEOUT`](stats_core::store::MAX_TIMEOUT)), checked by
    /// [`RedisStore::connect`](crate::RedisStore::connect).
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for a reply (default 5 s); then the call fails with a retryable
    /// [`Error::Timeout`]. Whether a timed-out write was applied is unknown.
    ///
    /// From 1 ms to one day ([`MAX_TIMEOUT`](stats_core::store::MAX_TIMEOUT)), checked by
    /// [`RedisStore::connect`](crate::RedisStore::connect).
    pub fn response_timeout(mut self, timeout: Duration) -> Self {
        self.response_timeout = timeout;
        self
    }

    /// Whether this is a cluster configuration.
    pub fn is_cluster(&self) -> bool {
        matches!(self.target, Target::Cluster(_))
    }
}

/// A URL with any password replaced by `***`.
pub(crate) use stats_core::support::redact_url as redact;

/// Checks that `pem` holds at least one certificate usable as a trust anchor, and nothing
/// that fails to parse; the error says what is wrong.
#[cfg(feature = "tls")]
fn check_root_pem(pem: &[u8]) -> std::result::Result<(), String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject;

    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("is not valid PEM: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("holds a certificate that cannot be a root: {e}"))?;
    }
    if roots.is_empty() {
        return Err("holds no PEM certificate (-----BEGIN CERTIFICATE-----)".to_owned());
    }
    Ok(())
}

#[cfg(not(feature = "tls"))]
fn check_root_pem(_pem: &[u8]) -> std::result::Result<(), String> {
    Err(TLS_NOT_COMPILED.to_owned())
}

impl fmt::Debug for RedisConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let target = match &self.target {
            Target::Single(url) => format!("single({})", redact(url)),
            Target::Cluster(urls) => {
                format!(
                    "cluster({})",
                    urls.iter()
                        .map(|u| redact(u))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        };
        f.debug_struct("RedisConfig")
            .field("target", &target)
            .field("key_prefix", &self.prefix)
            .field("layout", &self.layout)
            .field("expiry", &self.expiry)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
            .field(
                "tls_root_certificate",
                &self.tls_root.as_ref().map(|root| &root.source),
            )
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        assert!(
            !RedisConfig::from_url("redis://127.0.0.1:6379/0")
                .unwrap()
                .is_cluster()
        );
        assert!(
            RedisConfig::from_url("redis://a:1, redis://b:2")
                .unwrap()
                .is_cluster()
        );
        assert!(
            RedisConfig::from_url("redis+cluster://a:1")
                .unwrap()
                .is_cluster()
        );
        assert!(RedisConfig::from_url("").is_err());
        let err = RedisConfig::from_url("http://user:secret@x")
            .unwrap_err()
            .to_string();
        assert!(!err.contains("secret"), "{err}");
    }

    #[test]
    fn debug_hides_passwords() {
        let c = RedisConfig::from_url("redis://user:hunter2@host:6379/1").unwrap();
        let shown = format!("{c:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("user:***@host"), "{shown}");
    }

    #[test]
    fn tls_urls_need_the_tls_feature() {
        for url in ["rediss://h:1/", "REDISS://h:1", "rediss://u:p@h"] {
            assert!(is_tls_url(url), "{url}");
            check_tls_compiled(url, true).unwrap();
            let err = check_tls_compiled(url, false).unwrap_err();
            assert!(matches!(err, Error::Unsupported { .. }), "{err}");
            let shown = err.to_string();
            assert!(
                shown.contains("`redis-tls` feature of `stats`") && shown.contains("rediss://"),
                "{shown}"
            );
        }
        for url in ["redis://h:1", "redis+cluster://h", "redi", ""] {
            assert!(!is_tls_url(url), "{url}");
            check_tls_compiled(url, false).unwrap();
        }
        // `from_url` applies the check of this build.
        match RedisConfig::from_url("rediss://h:1") {
            Ok(c) => assert!(cfg!(feature = "tls") && !c.is_cluster()),
            Err(e) => assert!(!cfg!(feature = "tls") && matches!(e, Error::Unsupported { .. })),
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn tls_roots_need_the_tls_feature() {
        let err = RedisConfig::single("rediss://h")
            .tls_root_certificate_pem("x")
            .unwrap_err();
        assert!(err.to_string().contains("`redis-tls`"), "{err}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn bad_tls_roots_are_refused_naming_their_source() {
        let config = RedisConfig::single("rediss://h");
        let missing = "/nonexistent/stats-test/ca.pem";
        let err = config
            .clone()
            .tls_root_certificate_file(missing)
            .unwrap_err();
        assert!(
            matches!(&err, Error::InvalidInput(m) if m.contains(missing)),
            "{err}"
        );
        for bad in [
            &b""[..],
            b"not a certificate",
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
            b"-----BEGIN CERTIFICATE-----\n!!!\n-----END CERTIFICATE-----\n",
        ] {
            let err = config.clone().tls_root_certificate_pem(bad).unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput(m) if m.contains("PEM given in memory")),
                "{:?}: {err}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn key_prefix_is_checked_and_named_as_such() {
        for bad in ["a::b", "{a}", "", "tab\t"] {
            let err = RedisConfig::single("redis://x")
                .key_prefix(bad)
                .unwrap_err();
            assert!(
                matches!(
                    err,
                    Error::InvalidName {
                        kind: NameKind::KeyPrefix,
                        ..
                    }
                ),
                "{bad:?}: {err}"
            );
            assert!(err.to_string().starts_with("invalid key prefix"), "{err}");
        }
        assert_eq!(
            RedisConfig::single("redis://x")
                .key_prefix("app")
                .unwrap()
                .prefix,
            "app"
        );
    }

    #[test]
    fn the_trifle_layout_defaults_to_trifles_prefix_unless_one_is_set() {
        let base = || RedisConfig::single("redis://x");
        assert_eq!(base().layout, Layout::Stats);
        assert_eq!(base().prefix, DEFAULT_KEY_PREFIX);
        let trifle = base().layout(Layout::Trifle);
        assert_eq!(
            (trifle.layout, trifle.prefix.as_str()),
            (Layout::Trifle, "trfl")
        );
        // Back to ours: our default again.
        assert_eq!(trifle.layout(Layout::Stats).prefix, DEFAULT_KEY_PREFIX);
        // A prefix set before or after the layout wins.
        let before = base().key_prefix("app").unwrap().layout(Layout::Trifle);
        let after = base().layout(Layout::Trifle).key_prefix("app").unwrap();
        assert_eq!(before, after);
        assert_eq!(before.prefix, "app");
        assert!(format!("{before:?}").contains("Trifle"));
    }

    #[test]
    fn expiry_is_checked_and_names_the_granularity() {
        let hour: Granularity = "1h".parse().unwrap();
        for bad in [
            Duration::MAX,
            stats_core::store::MAX_TTL + Duration::from_secs(1),
            Duration::ZERO,
            Duration::from_millis(999),
        ] {
            let err = RedisConfig::single("redis://x")
                .expire(hour, bad)
                .unwrap_err();
            assert!(
                matches!(&err, Error::InvalidInput(m) if m.contains("1h")),
                "{bad:?}: {err}"
            );
        }
        let c = RedisConfig::single("redis://x")
            .expire(hour, stats_core::store::MAX_TTL)
            .unwrap();
        assert_eq!(c.expiry.get(&hour), Some(&stats_core::store::MAX_TTL));
    }

    #[test]
    fn retention_replaces_the_expiry_settings() {
        let (m, h): (Granularity, Granularity) = ("1m".parse().unwrap(), "1h".parse().unwrap());
        let retention = Retention::new().keep(m, Duration::from_secs(60)).unwrap();
        let c = RedisConfig::single("redis://x")
            .expire(h, Duration::from_secs(7))
            .unwrap()
            .retention(retention.clone());
        assert_eq!(c.expiry.len(), 1);
        assert_eq!(c.expiry.get(&m), Some(&Duration::from_secs(60)));
        let same = RedisConfig::single("redis://x")
            .expire(m, Duration::from_secs(60))
            .unwrap();
        assert_eq!(same, c, "expire and retention have the same effect");
    }
}
