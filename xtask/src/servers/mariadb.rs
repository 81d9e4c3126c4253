//! Throwaway MariaDB: `mariadb-install-db` into a temporary directory, `mariadbd` on a free
//! loopback port, the test database made by an init file before the first connection, with
//! TLS on (a self-signed certificate authority made for it).

use std::{
    ffi::OsString,
    fs,
    io::Read,
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::Path,
    process::Command,
    time::Duration,
};

use crate::{
    Result,
    servers::{
        DATABASE, binaries,
        process::{ServerProcess, TempDir, free_ports, retry_port_clash, run_logged, wait_for},
        tls::TlsFiles,
    },
};

/// InnoDB options for speed over durability, for the bootstrap and the server: no fsync at
/// all (`nosync`, a testing-only method; it makes `mariadb-install-db` take about 0.7 s rather
/// than 3 to 5 s here) and no doublewrite buffer.
const NO_SYNC: [&str; 2] = ["--innodb-flush-method=nosync", "--innodb-doublewrite=0"];

/// How long `mariadb-install-db` may take.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(120);

/// The character set and collation of the server and of the test database: full UTF-8, and
/// binary comparison so that keys differing only in case or accents stay distinct (as they
/// do in PostgreSQL with `--locale=C` and in SQLite). MariaDB's built-in default is latin1.
const CHARSET: &str = "utf8mb4";

/// See [`CHARSET`].
const COLLATION: &str = "utf8mb4_bin";

/// The URL of the test database on a loopback port: `root` without a password, TLS left to
/// the URL's user (`ssl-mode` not set).
pub(crate) fn tls_url(port: u16) -> String {
    format!("mysql://root@127.0.0.1:{port}/{DATABASE}")
}

/// The URL of the test database without TLS (`ssl-mode=DISABLED`), so that the plain suites
/// measure what they always did although the server offers TLS.
pub(crate) fn url(port: u16) -> String {
    format!("{}?ssl-mode=DISABLED", tls_url(port))
}

/// A MariaDB server in a temporary directory with database `stats_test`, on a free loopback
/// port, reading no option files, without binary log and without syncing anything to disk,
/// with TLS on (a certificate for `127.0.0.1` and `localhost` signed by a certificate authority
/// made for it); stopped and the directory removed on drop.
#[derive(Debug)]
pub(crate) struct MariaDbServer {
    /// The server (dropped first: stopped before its directory is removed).
    _process: ServerProcess,
    /// Its port.
    port: u16,
    /// Its certificates, in its directory.
    tls: TlsFiles,
    /// Its directory: `data/`, the socket, the init file, the logs.
    _dir: TempDir,
}

impl MariaDbServer {
    /// Runs `mariadb-install-db`, starts `mariadbd` (which creates `stats_test` from its init
    /// file before it accepts connections) and waits for its handshake on the port.
    pub(crate) fn start() -> Result<Self> {
        let mariadbd = binaries::require(&["mariadbd", "mysqld"], "mariadb-server")?;
        let install_db = binaries::require(
            &["mariadb-install-db", "mysql_install_db"],
            "mariadb-server",
        )?;
        // mariadbd refuses to run as root unless told to with --user=root.
        let as_root = binaries::is_root().then_some("--user=root");
        let dir = TempDir::new("mariadb")?;
        let data = dir.path().join("data");

        let mut install = Command::new(install_db);
        install
            .args(["--no-defaults", "--auth-root-authentication-method=normal"])
            .args(["--skip-test-db", "--skip-name-resolve"])
            .arg(option("--datadir=", &data))
            .args(NO_SYNC)
            .args(as_root)
            .current_dir(dir.path());
        run_logged(install, &dir.path().join("install-db.log"), INSTALL_TIMEOUT)?;

        let tls = TlsFiles::create(dir.path(), None)?;
        let init_file = dir.path().join("init.sql");
        fs::write(&init_file, init_sql())
            .map_err(|err| format!("cannot write {}: {err}", init_file.display()))?;

        let (process, port) = retry_port_clash(|| {
            let port = free_ports(1, None)?[0];
            let mut cmd = ServerProcess::command(&mariadbd);
            // --no-defaults must come first.
            cmd.arg("--no-defaults")
                .arg(option("--datadir=", &data))
                .arg(format!("--port={port}"))
                .arg("--bind-address=127.0.0.1")
                .arg(option("--socket=", &dir.path().join("mysql.sock")))
                .arg(option("--pid-file=", &dir.path().join("mariadbd.pid")))
                .arg(option("--init-file=", &init_file))
                .arg(option("--ssl-cert=", &tls.cert))
                .arg(option("--ssl-key=", &tls.key))
                .arg(option("--ssl-ca=", &tls.ca))
                .args(["--skip-name-resolve", "--skip-log-bin"])
                .args([
                    "--innodb-flush-log-at-trx-commit=0",
                    "--innodb-buffer-pool-size=64M",
                ])
                .args(NO_SYNC)
                .arg(format!("--character-set-server={CHARSET}"))
                .arg(format!("--collation-server={COLLATION}"))
                .args(as_root)
                .current_dir(dir.path());
            let log = dir.path().join(format!("mariadbd-{port}.log"));
            let name = format!("mariadbd on port {port}");
            let mut process = ServerProcess::spawn(name, cmd, &log, "TERM")?;
            let what = format!("mariadbd on port {port} to greet a connection");
            wait_for(&what, &mut [&mut process], || handshake(port))?;
            Ok((process, port))
        })?;
        Ok(Self {
            _process: process,
            port,
            tls,
            _dir: dir,
        })
    }

    /// Its URL without TLS, `mysql://root@127.0.0.1:<port>/stats_test?ssl-mode=DISABLED`.
    pub(crate) fn url(&self) -> String {
        url(self.port)
    }

    /// Its URL with TLS up to the user, `mysql://root@127.0.0.1:<port>/stats_test` (add
    /// `?ssl-mode=VERIFY_IDENTITY&ssl-ca=<`[`Self::ca_file`]`>`).
    pub(crate) fn tls_url(&self) -> String {
        tls_url(self.port)
    }

    /// The certificate authority that signed its certificate (a PEM file).
    pub(crate) fn ca_file(&self) -> &Path {
        &self.tls.ca
    }
}

/// What the server runs before it accepts connections.
fn init_sql() -> String {
    format!(
        "CREATE DATABASE IF NOT EXISTS {DATABASE} CHARACTER SET {CHARSET} COLLATE {COLLATION};\n"
    )
}

/// `--name=` followed by `path`, whatever bytes the path holds.
fn option(name: &str, path: &Path) -> OsString {
    let mut option = OsString::from(name);
    option.push(path);
    option
}

/// Connects to loopback `port` and reads the server's greeting: MariaDB accepts connections
/// only once its init file has run, so a greeting means it is ready. Returns the server
/// version, or why it is not ready.
fn handshake(port: u16) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream =
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(Duration::from_secs(2)))
        .map_err(|err| err.to_string())?;
    let mut header = [0u8; 4];
    stream
        .read_exact(&mut header)
        .map_err(|err| format!("no greeting: {err}"))?;
    let len = usize::from(header[0]) | usize::from(header[1]) << 8 | usize::from(header[2]) << 16;
    let mut payload = vec![0; len];
    stream
        .read_exact(&mut payload)
        .map_err(|err| format!("truncated greeting: {err}"))?;
    parse_greeting(&payload)
}

/// The server version in a greeting packet's payload, or the message of an error packet.
fn parse_greeting(payload: &[u8]) -> Result<String, String> {
    match payload.split_first() {
        // Protocol version 10, then the NUL-terminated server version.
        Some((10, rest)) => {
            let version = rest.split(|&b| b == 0).next().unwrap_or_default();
            Ok(String::from_utf8_lossy(version).into_owned())
        }
        // Error packet: 0xff, a two-byte code, the message.
        Some((0xff, rest)) => Err(format!(
            "the server refused: {}",
            String::from_utf8_lossy(rest.get(2..).unwrap_or_default())
        )),
        _ => Err(format!("unexpected greeting {payload:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_names_the_test_database() {
        assert_eq!(
            url(3399),
            "mysql://root@127.0.0.1:3399/stats_test?ssl-mode=DISABLED"
        );
        assert_eq!(tls_url(3399), "mysql://root@127.0.0.1:3399/stats_test");
    }

    #[test]
    fn the_test_database_is_utf8_with_binary_collation() {
        assert_eq!(
            init_sql(),
            "CREATE DATABASE IF NOT EXISTS stats_test CHARACTER SET utf8mb4 COLLATE utf8mb4_bin;\n"
        );
    }

    #[test]
    fn greetings_are_parsed() {
        assert_eq!(
            parse_greeting(b"\x0a10.11.19-MariaDB\0rest"),
            Ok("10.11.19-MariaDB".into())
        );
        assert_eq!(
            parse_greeting(b"\xff\x69\x04Too many connections"),
            Err("the server refused: Too many connections".into())
        );
        assert!(parse_greeting(b"").is_err());
    }

    #[test]
    fn options_carry_paths() {
        assert_eq!(
            option("--datadir=", Path::new("/tmp/x y")),
            OsString::from("--datadir=/tmp/x y")
        );
    }
}
