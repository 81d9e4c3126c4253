//! Throwaway servers for the integration suites, and `cargo xtask servers <backend>`.
//!
//! Each server runs from the installed binaries (installed with apt-get where missing and
//! this is root; the MongoDB-wire server is Python, see [`mongo`]) on a free loopback port, in
//! a fresh directory under the system temporary directory, never on the standard ports and
//! never touching a server already running there.
//! Dropping a fixture stops exactly the processes it started (their process groups) and
//! removes its directory, after a failure or a panic too; see [`process::ServerProcess`].
//!
//! [`provide`] is what a backend's suites get: the environment variables that point them at
//! their servers (from this process's environment when set there, else started here), and the
//! servers behind them.

mod binaries;
mod mariadb;
mod mongo;
mod postgres;
mod process;
mod redis;
mod tls;

use std::{
    any::Any,
    env,
    io::{self, Write},
    sync::mpsc,
    thread,
    time::{Duration, Instant},
};

use crate::{Result, interrupt, it::Backend};

pub(crate) use self::{
    mariadb::MariaDbServer,
    mongo::{Launcher as MongoLauncher, MongoServer},
    postgres::PostgresServer,
    process::TempDir,
    redis::{RedisCluster, RedisServer, RedisTlsServer},
};

/// The database each SQL server run gets.
pub(crate) const DATABASE: &str = "stats_test";

/// The URL of a single Redis server.
pub(crate) const REDIS_URL: &str = "STATS_TEST_REDIS_URL";

/// The `rediss://` URL of a TLS-only Redis server whose certificate is signed by the
/// authority in [`REDIS_TLS_CA`].
pub(crate) const REDIS_TLS_URL: &str = "STATS_TEST_REDIS_TLS_URL";

/// The certificate authority (a PEM file) of the server at [`REDIS_TLS_URL`].
pub(crate) const REDIS_TLS_CA: &str = "STATS_TEST_REDIS_TLS_CA";

/// The comma-separated URLs of the nodes of a Redis Cluster.
pub(crate) const REDIS_CLUSTER_URLS: &str = "STATS_TEST_REDIS_CLUSTER_URLS";

/// The `redis-server` binary, for tests that start and stop a server of their own.
pub(crate) const REDIS_SERVER_BIN: &str = "STATS_REDIS_SERVER_BIN";

/// The directory of PostgreSQL's server binaries (`initdb`, `pg_ctl`, `postgres`), for tests
/// that start, stop and restart a PostgreSQL of their own (the buffer's outage test).
pub(crate) const POSTGRES_BIN_DIR: &str = "STATS_POSTGRES_BIN_DIR";

/// `<uid>:<gid>` of the unprivileged account such tests run PostgreSQL's binaries as; set only
/// when this is root (PostgreSQL refuses to run as root).
pub(crate) const POSTGRES_RUN_AS: &str = "STATS_POSTGRES_RUN_AS";

/// The URL of a PostgreSQL database.
pub(crate) const POSTGRES_URL: &str = "STATS_TEST_POSTGRES_URL";

/// The URL (without `sslmode`) of a PostgreSQL database whose server offers TLS with a
/// certificate for the URL's host signed by the authority in [`POSTGRES_TLS_CA`].
pub(crate) const POSTGRES_TLS_URL: &str = "STATS_TEST_POSTGRES_TLS_URL";

/// The certificate authority (a PEM file) of the server at [`POSTGRES_TLS_URL`].
pub(crate) const POSTGRES_TLS_CA: &str = "STATS_TEST_POSTGRES_TLS_CA";

/// The URL of a MySQL or MariaDB database.
pub(crate) const MYSQL_URL: &str = "STATS_TEST_MYSQL_URL";

/// The URL (without `ssl-mode`) of a MySQL or MariaDB database whose server offers TLS with a
/// certificate for the URL's host signed by the authority in [`MYSQL_TLS_CA`].
pub(crate) const MYSQL_TLS_URL: &str = "STATS_TEST_MYSQL_TLS_URL";

/// The certificate authority (a PEM file) of the server at [`MYSQL_TLS_URL`].
pub(crate) const MYSQL_TLS_CA: &str = "STATS_TEST_MYSQL_TLS_CA";

/// A directory the SQLite tests may create their database files in.
pub(crate) const SQLITE_DIR: &str = "STATS_TEST_SQLITE_DIR";

/// The URL of a MongoDB (or MongoDB-wire) server; a started one's has
/// `directConnection=true&connectTimeoutMS=300000`.
pub(crate) const MONGO_URL: &str = "STATS_TEST_MONGO_URL";

/// A Python that imports `mongoeco[wire]==4.11.0`, for tests that start and stop a
/// MongoDB-wire server of their own with [`MONGO_LAUNCHER`]; read to choose the interpreter
/// too (see [`mongo::python`]).
pub(crate) const MONGO_PYTHON: &str = "STATS_MONGO_PYTHON";

/// The absolute path of the MongoDB-wire server's launcher script: `"$STATS_MONGO_PYTHON"
/// "$STATS_MONGO_LAUNCHER" --port 0` starts a server on a free port and prints `READY
/// mongodb://127.0.0.1:<port>/?directConnection=true` once it listens; SIGTERM stops it.
pub(crate) const MONGO_LAUNCHER: &str = "STATS_MONGO_LAUNCHER";

/// The variable naming the Chromium binary of the dashboard suite.
pub(crate) const CHROMIUM: &str = "STATS_TEST_CHROMIUM";

/// Whether [`provide`] takes a URL from this process's environment when one is set there.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Reuse {
    /// Use the environment's URL (or directory) when set; start a server only otherwise.
    Environment,
    /// Always start fresh servers.
    Never,
}

/// What a backend's suites get from outside: environment variables for the child cargo, and
/// the servers (or directories) behind them, stopped (removed) when this is dropped.
#[derive(Default)]
pub(crate) struct Provided {
    /// `(name, value)` pairs, each set only on the child processes that run the suites.
    env: Vec<(&'static str, String)>,
    /// What must live as long as the suites run, dropped in the order it was started.
    held: Vec<Box<dyn Any>>,
}

impl Provided {
    /// The environment variables to set on the child cargo.
    pub(crate) fn env(&self) -> &[(&'static str, String)] {
        &self.env
    }

    /// Sets `name` to `value`, replacing an earlier value.
    fn set(&mut self, name: &'static str, value: String) {
        self.env.retain(|(existing, _)| *existing != name);
        self.env.push((name, value));
    }

    /// Keeps `fixture` alive until this is dropped.
    fn hold(&mut self, fixture: impl Any) {
        self.held.push(Box::new(fixture));
    }

    /// Takes over everything `other` provides.
    fn extend(&mut self, other: Self) {
        for (name, value) in other.env {
            self.set(name, value);
        }
        self.held.extend(other.held);
    }
}

/// The servers and environment the suites of `backend` need (every backend's for
/// [`Backend::All`]); see [`Reuse`] for when URLs come from this process's environment.
pub(crate) fn provide(backend: Backend, reuse: Reuse) -> Result<Provided> {
    let mut provided = Provided::default();
    match backend {
        Backend::Atomics => {}
        Backend::Redis => {
            let bin = redis_server_bin()?;
            let url = match from_env(REDIS_URL, reuse) {
                Some(url) => url,
                None => {
                    let server = timed("redis-server", || RedisServer::start(&bin))?;
                    let url = server.url();
                    provided.hold(server);
                    url
                }
            };
            provided.set(REDIS_URL, url);
            let (tls_url, tls_ca) = match from_env_pair(REDIS_TLS_URL, REDIS_TLS_CA, reuse) {
                Some(pair) => pair,
                None => {
                    let server = timed("redis-server with TLS", || RedisTlsServer::start(&bin))?;
                    let pair = (server.url(), server.ca_file().display().to_string());
                    provided.hold(server);
                    pair
                }
            };
            provided.set(REDIS_TLS_URL, tls_url);
            provided.set(REDIS_TLS_CA, tls_ca);
            provided.set(REDIS_SERVER_BIN, bin.display().to_string());
            // The buffer's outage test (listed under Redis) stops and restarts a PostgreSQL too.
            for (name, value) in postgres_binaries()? {
                provided.set(name, value);
            }
        }
        Backend::RedisCluster => {
            let bin = redis_server_bin()?;
            let urls = match from_env(REDIS_CLUSTER_URLS, reuse) {
                Some(urls) => urls,
                None => {
                    let cluster =
                        timed("a Redis Cluster of 3 masters", || RedisCluster::start(&bin))?;
                    let urls = cluster.urls();
                    provided.hold(cluster);
                    urls
                }
            };
            provided.set(REDIS_CLUSTER_URLS, urls);
            provided.set(REDIS_SERVER_BIN, bin.display().to_string());
        }
        Backend::Postgres => {
            let plain = from_env(POSTGRES_URL, reuse);
            let tls = from_env_pair(POSTGRES_TLS_URL, POSTGRES_TLS_CA, reuse);
            let (url, (tls_url, tls_ca)) = match (plain, tls) {
                (Some(url), Some(tls)) => (url, tls),
                // One server (which offers TLS too) serves what the environment lacks.
                (url, tls) => {
                    let server = timed("PostgreSQL", PostgresServer::start)?;
                    let url = url.unwrap_or_else(|| server.url());
                    let tls = tls.unwrap_or_else(|| {
                        (server.tls_url(), server.ca_file().display().to_string())
                    });
                    provided.hold(server);
                    (url, tls)
                }
            };
            provided.set(POSTGRES_URL, url);
            provided.set(POSTGRES_TLS_URL, tls_url);
            provided.set(POSTGRES_TLS_CA, tls_ca);
        }
        Backend::Mysql => {
            let plain = from_env(MYSQL_URL, reuse);
            let tls = from_env_pair(MYSQL_TLS_URL, MYSQL_TLS_CA, reuse);
            let (url, (tls_url, tls_ca)) = match (plain, tls) {
                (Some(url), Some(tls)) => (url, tls),
                // One server (which offers TLS too) serves what the environment lacks.
                (url, tls) => {
                    let server = timed("MariaDB", MariaDbServer::start)?;
                    let url = url.unwrap_or_else(|| server.url());
                    let tls = tls.unwrap_or_else(|| {
                        (server.tls_url(), server.ca_file().display().to_string())
                    });
                    provided.hold(server);
                    (url, tls)
                }
            };
            provided.set(MYSQL_URL, url);
            provided.set(MYSQL_TLS_URL, tls_url);
            provided.set(MYSQL_TLS_CA, tls_ca);
        }
        Backend::Sqlite => {
            let dir = match from_env(SQLITE_DIR, reuse) {
                Some(dir) => dir,
                None => {
                    let dir = TempDir::new("sqlite")?;
                    let path = dir.path().display().to_string();
                    provided.hold(dir);
                    path
                }
            };
            provided.set(SQLITE_DIR, dir);
        }
        Backend::Mongo => {
            let python = mongo::python()?;
            let (url, launcher) = match from_env(MONGO_URL, reuse) {
                Some(url) => {
                    let launcher = MongoLauncher::write()?;
                    let path = launcher.path().display().to_string();
                    provided.hold(launcher);
                    (url, path)
                }
                None => {
                    let server = timed("the MongoDB-wire server (mongoeco)", || {
                        MongoServer::start(&python)
                    })?;
                    let started = (
                        server.url().to_owned(),
                        server.launcher().display().to_string(),
                    );
                    provided.hold(server);
                    started
                }
            };
            provided.set(MONGO_URL, url);
            provided.set(MONGO_PYTHON, python.executable.display().to_string());
            provided.set(MONGO_LAUNCHER, launcher);
        }
        Backend::Dashboard => {
            let bin = match from_env(CHROMIUM, reuse) {
                Some(bin) => bin,
                None => binaries::require(&["chromium", "chromium-browser"], "chromium")?
                    .display()
                    .to_string(),
            };
            provided.set(CHROMIUM, bin);
        }
        Backend::All => {
            for &each in Backend::EACH {
                provided.extend(provide(each, reuse)?);
            }
        }
    }
    Ok(provided)
}

/// The value of `name` in this process's environment when `reuse` allows and it is set.
fn from_env(name: &str, reuse: Reuse) -> Option<String> {
    if reuse == Reuse::Never {
        return None;
    }
    let value = env::var(name)
        .ok()
        .filter(|value| !value.trim().is_empty())?;
    eprintln!("using {name} from the environment");
    Some(value)
}

/// The values of `url` and `ca` in this process's environment when `reuse` allows and both
/// are set (a TLS server's URL is of no use without its certificate authority).
fn from_env_pair(url: &str, ca: &str, reuse: Reuse) -> Option<(String, String)> {
    if reuse == Reuse::Never || env::var_os(url).is_none() || env::var_os(ca).is_none() {
        return None;
    }
    Some((from_env(url, reuse)?, from_env(ca, reuse)?))
}

/// `redis-server`: `$STATS_REDIS_SERVER_BIN` when set, else found or installed.
fn redis_server_bin() -> Result<std::path::PathBuf> {
    match env::var_os(REDIS_SERVER_BIN).filter(|bin| !bin.is_empty()) {
        Some(bin) => Ok(bin.into()),
        None => redis::server_binary(),
    }
}

/// [`POSTGRES_BIN_DIR`] (`$STATS_POSTGRES_BIN_DIR` when set, else found or installed) and,
/// when this is root, [`POSTGRES_RUN_AS`] (`$STATS_POSTGRES_RUN_AS` when set, else the account
/// the throwaway servers run as).
fn postgres_binaries() -> Result<Vec<(&'static str, String)>> {
    let set = |name: &str| env::var(name).ok().filter(|value| !value.trim().is_empty());
    let dir = match set(POSTGRES_BIN_DIR) {
        Some(dir) => dir,
        None => binaries::postgres_bin_dir()?.display().to_string(),
    };
    let mut vars = vec![(POSTGRES_BIN_DIR, dir)];
    let run_as = match set(POSTGRES_RUN_AS) {
        Some(run_as) => Some(run_as),
        None => {
            binaries::postgres_account()?.map(|account| format!("{}:{}", account.uid, account.gid))
        }
    };
    if let Some(run_as) = run_as {
        vars.push((POSTGRES_RUN_AS, run_as));
    }
    Ok(vars)
}

/// Runs `start` and reports on stderr how long starting `what` took.
fn timed<T>(what: &str, start: impl FnOnce() -> Result<T>) -> Result<T> {
    let started = Instant::now();
    eprintln!("starting {what}...");
    let value = start().map_err(|err| format!("cannot start {what}: {err}"))?;
    eprintln!("started {what} in {:.2}s", started.elapsed().as_secs_f64());
    Ok(value)
}

/// `cargo xtask servers <backend>`: starts the servers of `backend` (all of them for `all`),
/// prints `export NAME=value` lines for a shell, and keeps them running until the standard
/// input ends (Ctrl-D) or Ctrl-C, then stops them.
pub(crate) fn serve(backend: Backend) -> Result {
    if backend == Backend::Atomics {
        return Err("the atomics backend runs in-process and needs no server".into());
    }
    let provided = provide(backend, Reuse::Never)?;
    let mut out = io::stdout().lock();
    for (name, value) in provided.env() {
        writeln!(out, "export {name}={}", shell_quote(value))?;
    }
    out.flush()?;
    drop(out);
    eprintln!("running; end the standard input (Ctrl-D) or press Ctrl-C to stop");
    wait_for_eof_or_interrupt();
    eprintln!("stopping...");
    let started = Instant::now();
    drop(provided);
    eprintln!("stopped in {:.2}s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Blocks until the standard input ends (or fails) or a stop is requested by a signal.
fn wait_for_eof_or_interrupt() {
    let (done, ended) = mpsc::channel();
    // Left blocked in its read if a signal comes first; the process ends soon after.
    thread::spawn(move || {
        let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
        let _ = done.send(());
    });
    while !interrupt::requested() {
        match ended.recv_timeout(Duration::from_millis(100)) {
            Ok(()) | Err(mpsc::RecvTimeoutError::Disconnected) => return,
            Err(mpsc::RecvTimeoutError::Timeout) => {}
        }
    }
}

/// `value` as one shell word: unchanged when it holds only characters no shell treats
/// specially, else in single quotes.
fn shell_quote(value: &str) -> String {
    let plain = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-./:,@%+=".contains(c));
    if plain {
        value.to_owned()
    } else {
        format!("'{}'", value.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_quoted_for_the_shell_only_when_needed() {
        assert_eq!(
            shell_quote("redis://127.0.0.1:1/,redis://127.0.0.1:2/"),
            "redis://127.0.0.1:1/,redis://127.0.0.1:2/"
        );
        assert_eq!(shell_quote("/tmp/a b"), "'/tmp/a b'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn later_values_replace_earlier_ones() {
        let mut provided = Provided::default();
        provided.set(REDIS_SERVER_BIN, "a".into());
        let mut other = Provided::default();
        other.set(REDIS_SERVER_BIN, "b".into());
        other.set(REDIS_URL, "u".into());
        provided.extend(other);
        assert_eq!(
            provided.env(),
            [(REDIS_SERVER_BIN, "b".into()), (REDIS_URL, "u".into())]
        );
    }

    #[test]
    fn sqlite_gets_a_fresh_directory_removed_afterwards() {
        let provided = provide(Backend::Sqlite, Reuse::Never).unwrap();
        let [(name, dir)] = provided.env() else {
            panic!("{:?}", provided.env());
        };
        assert_eq!(*name, SQLITE_DIR);
        let dir = std::path::PathBuf::from(dir);
        assert!(dir.is_dir());
        drop(provided);
        assert!(!dir.exists());
    }

    /// Run by the server's own python against the started server: an insert and a find,
    /// then what each of the launcher's patches fixes, seen from PyMongo.
    const MONGO_CHECK: &str = r#"
import sys
from bson.int64 import Int64
from pymongo import MongoClient
from pymongo.errors import OperationFailure

db = MongoClient(sys.argv[1], serverSelectionTimeoutMS=10000)["stats_xtask_check"]
db.metrics.insert_many([{"_id": i, "hits": Int64(i)} for i in range(3)])
found = db.metrics.find_one({"_id": 2})
assert found == {"_id": 2, "hits": 2}, found
assert type(found["hits"]) is Int64, type(found["hits"])
# 1: cursor ids are Int64, in the first reply and after getMore.
first = db.command("find", "metrics", batchSize=1)
assert type(first["cursor"]["id"]) is Int64 and first["cursor"]["id"] != 0, first
more = db.command("getMore", Int64(first["cursor"]["id"]), collection="metrics", batchSize=Int64(1))
assert type(more["cursor"]["id"]) is Int64, more
# 2: counts sent as Int64, as the Rust driver sends them, are taken.
one = db.command("find", "metrics", filter={}, sort={"_id": 1}, skip=Int64(1), limit=Int64(1))
assert one["cursor"]["firstBatch"] == [{"_id": 1, "hits": 1}], one
pipeline = [{"$skip": Int64(1)}, {"$limit": Int64(5)}, {"$count": "n"}]
counted = db.command("aggregate", "metrics", pipeline=pipeline, cursor={})
assert counted["cursor"]["firstBatch"] == [{"n": 2}], counted
# 3: an error mongoeco sends without a code gets one.
db.metrics.insert_one({"_id": "max", "hits": Int64(2**63 - 1)})
try:
    db.command("update", "metrics", updates=[{"q": {"_id": "max"}, "u": {"$inc": {"hits": 1}}}])
    raise AssertionError("an Int64 overflow in $inc was accepted")
except OperationFailure as error:
    assert error.code == 2 and error.details.get("codeName") == "BadValue", error.details
print("mongo check passed")
"#;

    #[test]
    fn mongo_gets_a_patched_server_that_answers_and_stops_on_drop() {
        let provided = provide(Backend::Mongo, Reuse::Never).unwrap();
        let value = |name: &str| {
            provided
                .env()
                .iter()
                .find(|(each, _)| *each == name)
                .map(|(_, value)| value.clone())
                .unwrap_or_else(|| panic!("{name} is not set: {:?}", provided.env()))
        };
        assert_eq!(provided.env().len(), 3, "{:?}", provided.env());
        let url = value(MONGO_URL);
        let python = value(MONGO_PYTHON);
        let launcher = std::path::PathBuf::from(value(MONGO_LAUNCHER));
        assert!(url.starts_with("mongodb://127.0.0.1:"), "{url}");
        assert!(
            url.ends_with("/?directConnection=true&connectTimeoutMS=300000"),
            "{url}"
        );
        assert!(launcher.is_absolute() && launcher.is_file(), "{launcher:?}");
        let port: u16 = url["mongodb://127.0.0.1:".len()..]
            .split('/')
            .next()
            .and_then(|port| port.parse().ok())
            .unwrap_or_else(|| panic!("no port in {url}"));
        assert_ne!(port, 27017);

        let output = std::process::Command::new(&python)
            .args(["-c", MONGO_CHECK, &url])
            .output()
            .unwrap();
        assert!(
            output.status.success(),
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&output.stdout),
            "mongo check passed\n"
        );

        drop(provided);
        assert!(!launcher.exists(), "the server's directory outlived it");
        assert!(
            std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
            "the server still listens on {port}"
        );
    }

    #[test]
    fn redis_tests_get_the_postgres_binaries_they_run() {
        let vars = postgres_binaries().unwrap();
        let dir = vars
            .iter()
            .find(|(name, _)| *name == POSTGRES_BIN_DIR)
            .map(|(_, dir)| std::path::PathBuf::from(dir))
            .unwrap_or_else(|| panic!("{POSTGRES_BIN_DIR} is not set: {vars:?}"));
        for binary in ["initdb", "pg_ctl", "postgres"] {
            assert!(
                dir.join(binary).is_file(),
                "no {binary} in {}",
                dir.display()
            );
        }
        let run_as = vars.iter().find(|(name, _)| *name == POSTGRES_RUN_AS);
        match run_as {
            Some((_, run_as)) => {
                let (uid, gid) = run_as.split_once(':').unwrap();
                assert!(uid.parse::<u32>().unwrap() != 0, "{run_as}");
                gid.parse::<u32>().unwrap();
            }
            None => assert!(
                !binaries::is_root(),
                "root must be told whom to run PostgreSQL as"
            ),
        }
    }

    #[test]
    fn atomics_needs_nothing() {
        assert!(
            provide(Backend::Atomics, Reuse::Never)
                .unwrap()
                .env()
                .is_empty()
        );
    }
}
