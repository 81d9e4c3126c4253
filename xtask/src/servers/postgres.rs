//! Throwaway PostgreSQL: `initdb` into a temporary directory, `postgres` on a free loopback
//! port, run as an unprivileged user when this is root (PostgreSQL refuses to run as root),
//! with TLS on (a self-signed certificate authority made for it).

use std::{
    ffi::OsString,
    os::unix::{fs::chown, process::CommandExt},
    path::Path,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{
    Result,
    servers::{
        DATABASE,
        binaries::{self, Account},
        process::{ServerProcess, TempDir, free_ports, retry_port_clash, run_logged, wait_for},
        tls::TlsFiles,
    },
};

/// How long `initdb` and `createdb` may take.
const SETUP_TIMEOUT: Duration = Duration::from_secs(120);

/// The URL of the test database on a loopback port: superuser `postgres`, trust auth, TLS
/// left to the URL's user (`sslmode` not set).
pub(crate) fn tls_url(port: u16) -> String {
    format!("postgres://postgres@127.0.0.1:{port}/{DATABASE}")
}

/// The URL of the test database without TLS (`sslmode=disable`), so that the plain suites and
/// benches measure what they always did although the server offers TLS.
pub(crate) fn url(port: u16) -> String {
    format!("{}?sslmode=disable", tls_url(port))
}

/// A PostgreSQL cluster in a temporary directory with database `stats_test`, served on a free
/// loopback port without durability (`fsync`, `synchronous_commit` and `full_page_writes`
/// off) and with TLS on (`ssl=on`, a certificate for `127.0.0.1` and `localhost` signed by a
/// certificate authority made for it); stopped (immediate shutdown) and the directory removed
/// on drop.
#[derive(Debug)]
pub(crate) struct PostgresServer {
    /// The postmaster (dropped first: stopped before its directory is removed).
    _process: ServerProcess,
    /// Its port.
    port: u16,
    /// Its certificates, in its directory.
    tls: TlsFiles,
    /// Its directory: `data/`, the socket, the certificates, the logs.
    _dir: TempDir,
}

impl PostgresServer {
    /// Runs `initdb`, starts `postgres`, waits until `pg_isready` says it accepts
    /// connections and creates the database `stats_test`.
    pub(crate) fn start() -> Result<Self> {
        let bin = binaries::postgres_bin_dir()?;
        let account = binaries::postgres_account()?;
        let dir = TempDir::new("postgres")?;
        if let Some(account) = &account {
            chown(dir.path(), Some(account.uid), Some(account.gid)).map_err(|err| {
                format!(
                    "cannot give {} to the user {}: {err}",
                    dir.path().display(),
                    account.name
                )
            })?;
        }
        let data = dir.path().join("data");
        let mut initdb = Command::new(bin.join("initdb"));
        initdb
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8"])
            .args(["--locale=C", "--no-sync"]);
        as_account(&mut initdb, account.as_ref(), dir.path());
        run_logged(initdb, &dir.path().join("initdb.log"), SETUP_TIMEOUT)?;
        let tls = TlsFiles::create(dir.path(), account.as_ref())?;

        let (process, port) = retry_port_clash(|| {
            let port = free_ports(1, None)?[0];
            let mut cmd = ServerProcess::command(&bin.join("postgres"));
            cmd.arg("-D")
                .arg(&data)
                .arg("-p")
                .arg(port.to_string())
                .arg("-k")
                .arg(dir.path())
                .args(["-c", "listen_addresses=127.0.0.1"])
                .args(["-c", "fsync=off"])
                .args(["-c", "synchronous_commit=off"])
                .args(["-c", "full_page_writes=off"])
                .args(["-c", "ssl=on", "-c"])
                .arg(setting("ssl_cert_file=", &tls.cert))
                .arg("-c")
                .arg(setting("ssl_key_file=", &tls.key));
            as_account(&mut cmd, account.as_ref(), dir.path());
            let log = dir.path().join(format!("postgres-{port}.log"));
            // SIGQUIT: immediate shutdown, the data is thrown away anyway.
            let name = format!("postgres on port {port}");
            let mut process = ServerProcess::spawn(name, cmd, &log, "QUIT")?;
            let what = format!("postgres on port {port} to accept connections");
            wait_for(&what, &mut [&mut process], || is_ready(&bin, port))?;
            Ok((process, port))
        })?;

        let mut createdb = Command::new(bin.join("createdb"));
        createdb
            .args(["-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
            .arg(DATABASE);
        run_logged(createdb, &dir.path().join("createdb.log"), SETUP_TIMEOUT)?;
        Ok(Self {
            _process: process,
            port,
            tls,
            _dir: dir,
        })
    }

    /// Its URL without TLS, `postgres://postgres@127.0.0.1:<port>/stats_test?sslmode=disable`.
    pub(crate) fn url(&self) -> String {
        url(self.port)
    }

    /// Its URL with TLS up to the user, `postgres://postgres@127.0.0.1:<port>/stats_test`
    /// (add `?sslmode=verify-full&sslrootcert=<`[`Self::ca_file`]`>`).
    pub(crate) fn tls_url(&self) -> String {
        tls_url(self.port)
    }

    /// The certificate authority that signed its certificate (a PEM file).
    pub(crate) fn ca_file(&self) -> &Path {
        &self.tls.ca
    }
}

/// `name` followed by `path`, whatever bytes the path holds: one `-c` setting.
fn setting(name: &str, path: &Path) -> OsString {
    let mut setting = OsString::from(name);
    setting.push(path);
    setting
}

/// Makes `cmd` run as `account` (when given) in `dir`, with that account's name in the
/// environment, so nothing of root's is used.
fn as_account(cmd: &mut Command, account: Option<&Account>, dir: &Path) {
    cmd.current_dir(dir);
    if let Some(account) = account {
        cmd.uid(account.uid)
            .gid(account.gid)
            .env("HOME", dir)
            .env("USER", &account.name)
            .env("LOGNAME", &account.name);
    }
}

/// Whether the server on `port` accepts connections, by `pg_isready`.
fn is_ready(bin: &Path, port: u16) -> Result<(), String> {
    let status = Command::new(bin.join("pg_isready"))
        .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-U", "postgres", "-d", "postgres", "-t", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .map_err(|err| format!("pg_isready could not be started: {err}"))?;
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => Err("pg_isready: rejecting connections (starting up)".into()),
        Some(2) => Err("pg_isready: no response".into()),
        _ => Err(format!("pg_isready: {status}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_test_database() {
        assert_eq!(
            url(5544),
            "postgres://postgres@127.0.0.1:5544/stats_test?sslmode=disable"
        );
        assert_eq!(
            tls_url(5544),
            "postgres://postgres@127.0.0.1:5544/stats_test"
        );
    }
}
