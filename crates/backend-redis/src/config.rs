//! Connection and layout settings.

use std::collections::BTreeMap;
use std::fmt;
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
    pub(crate) expiry: BTreeMap<Granularity, Duration>,
    pub(crate) connection_timeout: Duration,
    pub(crate) response_timeout: Duration,
}

impl RedisConfig {
    /// One server by URL: `redis://[user:password@]host:port[/db]` (or `rediss://` with TLS,
    /// where the `redis` crate is built with a TLS feature).
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
    /// or `redis+cluster://`.
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
            expiry: BTreeMap::new(),
            connection_timeout: DEFAULT_CONNECTION_TIMEOUT,
            response_timeout: DEFAULT_RESPONSE_TIMEOUT,
        }
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
        Ok(self)
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
    pub fn connection_timeout(mut self, timeout: Duration) -> Self {
        self.connection_timeout = timeout;
        self
    }

    /// How long to wait for a reply (default 5 s); then the call fails with a retryable
    /// [`Error::Timeout`]. Whether a timed-out write was applied is unknown.
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
            .field("expiry", &self.expiry)
            .field("connection_timeout", &self.connection_timeout)
            .field("response_timeout", &self.response_timeout)
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
