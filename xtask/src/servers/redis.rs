//! Throwaway Redis: one `redis-server`, or a Redis Cluster of three masters.

use std::{
    io::{BufRead, BufReader, Write},
    net::{Ipv4Addr, SocketAddr, TcpStream},
    path::{Path, PathBuf},
    process::Command,
    time::Duration,
};

use crate::{
    Result,
    servers::{
        binaries,
        process::{
            ServerProcess, TempDir, free_ports, retry_port_clash, run_logged, tail, wait_for,
        },
        tls::TlsFiles,
    },
};

/// How many masters the cluster has (the least `redis-cli --cluster create` accepts).
const CLUSTER_MASTERS: usize = 3;

/// The distance from a node's port to its cluster bus port (Redis's default).
const CLUSTER_BUS_OFFSET: u16 = 10_000;

/// How long `redis-cli --cluster create` may take.
const CLUSTER_CREATE_TIMEOUT: Duration = Duration::from_secs(60);

/// The `redis-server` binary: found, else installed from the Debian package `redis-server`.
pub(crate) fn server_binary() -> Result<PathBuf> {
    binaries::require(&["redis-server"], "redis-server")
}

/// The URL of a Redis server on a loopback port.
pub(crate) fn url(port: u16) -> String {
    format!("redis://127.0.0.1:{port}/")
}

/// A `redis-server` on a free loopback port, without persistence, in a temporary directory;
/// stopped (and the directory removed) on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    /// The server (dropped first: stopped before its directory is removed).
    _process: ServerProcess,
    /// Its port.
    port: u16,
    /// Its directory (log, and nothing else as nothing is saved).
    _dir: TempDir,
}

impl RedisServer {
    /// Starts `redis-server` (the binary at `bin`) and waits until it answers PING.
    pub(crate) fn start(bin: &Path) -> Result<Self> {
        let dir = TempDir::new("redis")?;
        let (process, port) = retry_port_clash(|| {
            let port = free_ports(1, None)?[0];
            let mut process = spawn_node(bin, dir.path(), port, &[])?;
            wait_for_ping(&mut process, port)?;
            Ok((process, port))
        })?;
        Ok(Self {
            _process: process,
            port,
            _dir: dir,
        })
    }

    /// Its URL, `redis://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        url(self.port)
    }
}

/// A `redis-server` that speaks only TLS (no plain port) on a free loopback port, with a
/// self-signed certificate authority made for it, not asking clients for certificates;
/// stopped (and the directory, certificates included, removed) on drop.
#[derive(Debug)]
pub(crate) struct RedisTlsServer {
    /// The server (dropped first: stopped before its directory is removed).
    _process: ServerProcess,
    /// Its TLS port.
    port: u16,
    /// Its certificates, in its directory.
    tls: TlsFiles,
    /// Its directory.
    _dir: TempDir,
}

impl RedisTlsServer {
    /// Makes the certificates, starts `redis-server --port 0 --tls-port <port>` and waits until
    /// its log says it accepts connections.
    pub(crate) fn start(bin: &Path) -> Result<Self> {
        let dir = TempDir::new("redis-tls")?;
        let tls = TlsFiles::create(dir.path(), None)?;
        let (process, port) = retry_port_clash(|| {
            let port = free_ports(1, None)?[0];
            let log = dir.path().join(format!("redis-tls-{port}.log"));
            let mut cmd = ServerProcess::command(bin);
            cmd.args(["--port", "0", "--tls-port"])
                .arg(port.to_string())
                .arg("--tls-cert-file")
                .arg(&tls.cert)
                .arg("--tls-key-file")
                .arg(&tls.key)
                .arg("--tls-ca-cert-file")
                .arg(&tls.ca)
                .args(["--tls-auth-clients", "no"])
                .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                .arg("--dir")
                .arg(dir.path())
                .args(["--daemonize", "no", "--logfile"])
                .arg(&log)
                .current_dir(dir.path());
            let name = format!("redis-server (TLS) on port {port}");
            let mut process = ServerProcess::spawn(name, cmd, &log, "TERM")?;
            let what = format!("redis-server (TLS) on port {port} to accept connections");
            // A plain PING cannot reach a TLS-only port: its log says when it is ready.
            wait_for(&what, &mut [&mut process], || {
                if tail(&log, 200).contains("Ready to accept connections") {
                    Ok(())
                } else {
                    Err("its log does not say \"Ready to accept connections\" yet".to_owned())
                }
            })?;
            Ok((process, port))
        })?;
        Ok(Self {
            _process: process,
            port,
            tls,
            _dir: dir,
        })
    }

    /// Its URL, `rediss://127.0.0.1:<port>/`.
    pub(crate) fn url(&self) -> String {
        tls_url(self.port)
    }

    /// The certificate authority that signed its certificate (a PEM file).
    pub(crate) fn ca_file(&self) -> &Path {
        &self.tls.ca
    }
}

/// The URL of a TLS Redis server on a loopback port.
pub(crate) fn tls_url(port: u16) -> String {
    format!("rediss://127.0.0.1:{port}/")
}

/// A Redis Cluster of three masters without replicas on free loopback ports (each with its
/// bus port, `port + 10000`, free as well), made with `redis-cli --cluster create`; stopped
/// (and the directory removed) on drop.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    /// The nodes (dropped first: stopped before their directory is removed).
    nodes: Vec<ServerProcess>,
    /// Their ports, in the order of `nodes`.
    ports: Vec<u16>,
    /// Their directory: one log and one `nodes-<port>.conf` per node.
    dir: TempDir,
}

impl RedisCluster {
    /// Starts the nodes, joins them into a cluster and waits until every node reports
    /// `cluster_state:ok`.
    pub(crate) fn start(bin: &Path) -> Result<Self> {
        let cli = binaries::require(&["redis-cli"], "redis-tools")?;
        let dir = TempDir::new("redis-cluster")?;
        let (nodes, ports) = retry_port_clash(|| {
            let ports = free_ports(CLUSTER_MASTERS, Some(CLUSTER_BUS_OFFSET))?;
            let mut nodes = Vec::with_capacity(ports.len());
            for &port in &ports {
                let conf = format!("nodes-{port}.conf");
                let cluster_args = [
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &conf,
                    "--cluster-node-timeout",
                    "5000",
                ];
                nodes.push(spawn_node(bin, dir.path(), port, &cluster_args)?);
            }
            for (node, &port) in nodes.iter_mut().zip(&ports) {
                wait_for_ping(node, port)?;
            }
            Ok((nodes, ports))
        })?;
        let mut cluster = Self { nodes, ports, dir };
        cluster.create(&cli)?;
        Ok(cluster)
    }

    /// Assigns the slots with `redis-cli --cluster create` and waits for `cluster_state:ok`
    /// on every node.
    fn create(&mut self, cli: &Path) -> Result {
        let mut cmd = Command::new(cli);
        cmd.arg("--cluster").arg("create");
        cmd.args(self.ports.iter().map(|port| format!("127.0.0.1:{port}")));
        cmd.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let log = self.dir.path().join("cluster-create.log");
        run_logged(cmd, &log, CLUSTER_CREATE_TIMEOUT)?;
        let mut nodes: Vec<&mut ServerProcess> = self.nodes.iter_mut().collect();
        for &port in &self.ports {
            wait_for(
                &format!("the node on port {port} to report cluster_state:ok"),
                &mut nodes,
                || {
                    let info = command(port, &["CLUSTER", "INFO"])?;
                    let state = info
                        .lines()
                        .find(|line| line.starts_with("cluster_state:"))
                        .unwrap_or("no cluster_state");
                    if state.trim() == "cluster_state:ok" {
                        Ok(())
                    } else {
                        Err(state.trim().to_owned())
                    }
                },
            )?;
        }
        Ok(())
    }

    /// The URLs of its nodes, comma-separated: `redis://127.0.0.1:<p1>/,redis://...`.
    pub(crate) fn urls(&self) -> String {
        cluster_urls(&self.ports)
    }
}

/// The comma-separated URLs of cluster nodes on loopback `ports`.
fn cluster_urls(ports: &[u16]) -> String {
    let urls: Vec<String> = ports.iter().map(|&port| url(port)).collect();
    urls.join(",")
}

/// Spawns one `redis-server` on `port` with its log, config and data files in `dir`.
fn spawn_node(bin: &Path, dir: &Path, port: u16, extra: &[&str]) -> Result<ServerProcess> {
    let log = dir.join(format!("redis-{port}.log"));
    let mut cmd = ServerProcess::command(bin);
    cmd.arg("--port")
        .arg(port.to_string())
        .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
        .arg("--dir")
        .arg(dir)
        .args(["--daemonize", "no", "--logfile"])
        .arg(&log)
        .args(extra)
        .current_dir(dir);
    ServerProcess::spawn(format!("redis-server on port {port}"), cmd, &log, "TERM")
}

/// Waits until the server on `port` answers PING with PONG.
fn wait_for_ping(process: &mut ServerProcess, port: u16) -> Result {
    let what = format!("redis-server on port {port} to answer PING");
    wait_for(&what, &mut [process], || {
        match command(port, &["PING"])?.as_str() {
            "PONG" => Ok(()),
            other => Err(format!("PING answered {other:?}")),
        }
    })
}

/// Sends one command to the Redis server on loopback `port` and returns its reply (a simple
/// string, integer or bulk string) as text; an error reply or a failure is an `Err` saying so.
pub(crate) fn command(port: u16, args: &[&str]) -> Result<String, String> {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let timeout = Duration::from_secs(2);
    let mut stream = TcpStream::connect_timeout(&addr, timeout).map_err(|err| err.to_string())?;
    stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)))
        .and_then(|()| stream.write_all(&encode(args)))
        .map_err(|err| err.to_string())?;
    read_reply(&mut BufReader::new(stream))
}

/// A command as a RESP array of bulk strings.
fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        out.extend_from_slice(format!("${}\r\n{arg}\r\n", arg.len()).as_bytes());
    }
    out
}

/// Reads one RESP reply that is not an array.
fn read_reply(reader: &mut impl BufRead) -> Result<String, String> {
    let mut line = String::new();
    reader.read_line(&mut line).map_err(|err| err.to_string())?;
    let line = line.trim_end_matches(['\r', '\n']);
    let (kind, rest) = line
        .split_at_checked(1)
        .ok_or("the connection was closed")?;
    match kind {
        "+" | ":" => Ok(rest.to_owned()),
        "-" => Err(rest.to_owned()),
        "$" => {
            let len: usize = rest
                .parse()
                .map_err(|_| format!("bad bulk length {rest:?}"))?;
            let mut body = vec![0; len + 2];
            reader
                .read_exact(&mut body)
                .map_err(|err| err.to_string())?;
            body.truncate(len);
            String::from_utf8(body).map_err(|err| err.to_string())
        }
        _ => Err(format!("unexpected reply {line:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_the_loopback_ports() {
        assert_eq!(url(6390), "redis://127.0.0.1:6390/");
        assert_eq!(
            cluster_urls(&[7000, 7001, 7002]),
            "redis://127.0.0.1:7000/,redis://127.0.0.1:7001/,redis://127.0.0.1:7002/"
        );
    }

    #[test]
    fn tls_urls_use_the_rediss_scheme() {
        assert_eq!(tls_url(6391), "rediss://127.0.0.1:6391/");
    }

    #[test]
    fn commands_are_encoded_as_resp_arrays() {
        assert_eq!(
            encode(&["CLUSTER", "INFO"]),
            b"*2\r\n$7\r\nCLUSTER\r\n$4\r\nINFO\r\n"
        );
    }

    #[test]
    fn replies_are_decoded() {
        let read = |bytes: &[u8]| read_reply(&mut BufReader::new(bytes));
        assert_eq!(read(b"+PONG\r\n"), Ok("PONG".into()));
        assert_eq!(read(b":42\r\n"), Ok("42".into()));
        assert_eq!(
            read(b"$23\r\ncluster_state:ok\r\nfoo:1\r\n"),
            Ok("cluster_state:ok\r\nfoo:1".into())
        );
        assert_eq!(read(b"-LOADING busy\r\n"), Err("LOADING busy".into()));
        assert!(read(b"").is_err());
        assert!(read(b"*1\r\n").is_err());
    }
}
