//! Mapping of driver errors into [`stats_core::Error`].
//!
//! | driver error | core error | retryable |
//! |---|---|---|
//! | pool timed out | [`Error::Timeout`] | yes |
//! | I/O, pool closed, worker crashed; PostgreSQL `57P01`-`57P03`, `53300`, class `08`; MySQL 1040, 1053 | [`Error::Unavailable`] | yes |
//! | TLS: the server's certificate not trusted or not naming the host, TLS required but not offered, a bad root certificate | [`Error::Backend`] | no |
//! | PostgreSQL `40001` (serialization failure), `40P01` (deadlock), `55P03` (lock not available); MySQL 1213 (deadlock), 1205 (lock wait timeout); SQLite `BUSY`, `LOCKED` | [`Error::Backend`] | yes |
//! | bigint or double out of range: PostgreSQL `22003`, MySQL 1690, SQLite "integer overflow" | [`Error::Overflow`] (with the key and path, see the crate docs) | no |
//! | our CHECK constraint (a map written as a number or the reverse) | [`Error::PathConflict`] | no |
//! | bad URL or options | [`Error::InvalidInput`] | no |
//! | everything else, constraint violations included | [`Error::Backend`] | no |

use std::time::Duration;

use sqlx::error::{DatabaseError, ErrorKind};
use stats_core::Error;

use crate::store::STORE_NAME;

/// What a failed statement means for the caller.
#[derive(Debug)]
pub(crate) enum Failure {
    /// An integer or float left its range; the transaction is rolled back.
    Overflow(String),
    /// A path is a map in one place and a number in another; the transaction is rolled back.
    Conflict(String),
    /// A deadlock or serialization failure: the transaction was rolled back whole and running
    /// it again may succeed.
    Rerun(sqlx::Error),
    /// Anything else, already mapped.
    Other(Error),
}

/// The class of a database error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(not(any(feature = "postgres", feature = "mysql")), allow(dead_code))]
enum Class {
    Overflow,
    Conflict,
    /// Rolled back whole; worth running again at once.
    Rerun,
    /// Retryable, but it already waited (lock wait timeout, busy timeout).
    Busy,
    Unavailable,
    Other,
}

fn class(db: &dyn DatabaseError) -> Class {
    if db.kind() == ErrorKind::CheckViolation {
        // The only CHECK constraint in our tables is the one a path conflict trips.
        return Class::Conflict;
    }
    #[cfg(feature = "postgres")]
    if let Some(pg) = db.try_downcast_ref::<sqlx::postgres::PgDatabaseError>() {
        let code = pg.code();
        return match code {
            "22003" => Class::Overflow,
            "40001" | "40P01" => Class::Rerun,
            "55P03" => Class::Busy,
            "57P01" | "57P02" | "57P03" | "53300" => Class::Unavailable,
            _ if code.starts_with("08") => Class::Unavailable,
            _ => Class::Other,
        };
    }
    #[cfg(feature = "mysql")]
    if let Some(my) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return match my.number() {
            1690 => Class::Overflow,
            1213 => Class::Rerun,
            1205 => Class::Busy,
            1040 | 1053 => Class::Unavailable,
            _ => Class::Other,
        };
    }
    #[cfg(feature = "sqlite")]
    if db.try_downcast_ref::<sqlx::sqlite::SqliteError>().is_some() {
        let code: i32 = db.code().and_then(|c| c.parse().ok()).unwrap_or(0);
        return match code & 0xff {
            // SQLITE_BUSY, SQLITE_LOCKED (the busy timeout has already been waited).
            5 | 6 => Class::Busy,
            _ if db.message() == "integer overflow" => Class::Overflow,
            _ => Class::Other,
        };
    }
    Class::Other
}

/// Classifies a failed statement of a metric batch.
pub(crate) fn classify(e: sqlx::Error, acquire_timeout: Duration) -> Failure {
    if let sqlx::Error::Database(db) = &e {
        match class(db.as_ref()) {
            Class::Overflow => return Failure::Overflow(db.message().to_owned()),
            Class::Conflict => return Failure::Conflict(db.message().to_owned()),
            Class::Rerun => return Failure::Rerun(e),
            _ => {}
        }
    }
    Failure::Other(map(e, acquire_timeout))
}

/// Whether `e` is a TLS failure: the driver's own TLS error, or an I/O error of the TLS stream
/// that carries rustls's error (an untrusted certificate, a wrong host name, a refused
/// handshake). Repeating the call fails the same way.
fn is_tls_failure(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Tls(_) => true,
        #[cfg(feature = "tls")]
        sqlx::Error::Io(io) => io
            .get_ref()
            .is_some_and(|inner| inner.downcast_ref::<rustls::Error>().is_some()),
        _ => false,
    }
}

/// A failed first connection, with the database it was to (its URL, password hidden): the
/// driver's own message often names neither the host nor the file.
#[derive(Debug)]
struct ConnectFailure {
    target: String,
    source: sqlx::Error,
}

impl std::fmt::Display for ConnectFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let verb = if self.target.starts_with("sqlite:") {
            "open"
        } else {
            "connect to"
        };
        write!(f, "cannot {verb} {}: {}", self.target, self.source)
    }
}

impl std::error::Error for ConnectFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.source)
    }
}

/// Maps the error of [`SqlStore::connect`](crate::SqlStore::connect)'s first connection to
/// `target` (a redacted URL): as [`map`], with the target named in the message.
pub(crate) fn map_connect(e: sqlx::Error, target: String, acquire_timeout: Duration) -> Error {
    if is_tls_failure(&e) {
        // Not retryable, and said to be about TLS (the driver's words name the certificate).
        return map(e, acquire_timeout);
    }
    match e {
        sqlx::Error::PoolTimedOut => Error::Timeout {
            store: STORE_NAME,
            operation: "opening the first connection",
            after: acquire_timeout,
        },
        sqlx::Error::Configuration(source) => {
            Error::InvalidInput(format!("bad database configuration for {target}: {source}"))
        }
        e => {
            let retryable = map_ref_retryable(&e);
            let unavailable = is_unavailable(&e);
            let source = Box::new(ConnectFailure { target, source: e });
            if unavailable {
                Error::Unavailable {
                    store: STORE_NAME,
                    source,
                }
            } else {
                Error::backend(STORE_NAME, retryable, source)
            }
        }
    }
}

/// Whether `e` means the database cannot be reached ([`Error::Unavailable`] in [`map`]).
fn is_unavailable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => class(db.as_ref()) == Class::Unavailable,
        _ => false,
    }
}

/// Whether a [`Error::Backend`] made of `e` by [`map`] is retryable.
fn map_ref_retryable(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Database(db) => matches!(class(db.as_ref()), Class::Rerun | Class::Busy),
        _ => false,
    }
}

/// Maps a driver error that carries no meaning for the call (see the module docs).
pub(crate) fn map(e: sqlx::Error, acquire_timeout: Duration) -> Error {
    if is_tls_failure(&e) {
        return Error::backend(STORE_NAME, false, TlsFailure(e));
    }
    match e {
        sqlx::Error::PoolTimedOut => Error::Timeout {
            store: STORE_NAME,
            operation: "waiting for a pooled connection",
            after: acquire_timeout,
        },
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => Error::Unavailable {
            store: STORE_NAME,
            source: Box::new(e),
        },
        sqlx::Error::Configuration(source) => {
            Error::InvalidInput(format!("bad database configuration: {source}"))
        }
        sqlx::Error::Database(db) => {
            let class = class(db.as_ref());
            let e = sqlx::Error::Database(db);
            match class {
                Class::Unavailable => Error::Unavailable {
                    store: STORE_NAME,
                    source: Box::new(e),
                },
                Class::Rerun | Class::Busy => Error::backend(STORE_NAME, true, e),
                _ => Error::backend(STORE_NAME, false, e),
            }
        }
        other => Error::backend(STORE_NAME, false, other),
    }
}

/// A TLS failure of the driver, shown as one.
#[derive(Debug)]
struct TlsFailure(sqlx::Error);

impl std::fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TLS failed: {}", self.0)
    }
}

impl std::error::Error for TlsFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pool_and_io_errors() {
        let t = Duration::from_secs(3);
        let e = map(sqlx::Error::PoolTimedOut, t);
        assert!(matches!(e, Error::Timeout { after, .. } if after == t));
        assert!(e.is_retryable());
        let e = map(
            sqlx::Error::Io(std::io::ErrorKind::ConnectionRefused.into()),
            t,
        );
        assert!(matches!(e, Error::Unavailable { .. }) && e.is_retryable());
        let e = map(sqlx::Error::PoolClosed, t);
        assert!(e.is_retryable());
        let e = map(sqlx::Error::RowNotFound, t);
        assert!(matches!(e, Error::Backend { .. }) && !e.is_retryable());
        let e = map(sqlx::Error::Configuration("bad".into()), t);
        assert!(matches!(e, Error::InvalidInput(_)));
        let e = map(sqlx::Error::Tls("server does not support TLS".into()), t);
        assert!(
            matches!(e, Error::Backend { .. }) && !e.is_retryable(),
            "{e}"
        );
        assert!(e.to_string().contains("TLS failed"), "{e}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn certificate_failures_are_not_retryable() {
        let io = std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            rustls::Error::InvalidCertificate(rustls::CertificateError::UnknownIssuer),
        );
        let e = map(sqlx::Error::Io(io), Duration::from_secs(1));
        assert!(
            matches!(e, Error::Backend { .. }) && !e.is_retryable(),
            "{e}"
        );
        assert!(e.to_string().contains("UnknownIssuer"), "{e}");
    }
}
