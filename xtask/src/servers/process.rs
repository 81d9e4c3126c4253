//! What every throwaway server is made of: a private temporary directory, free loopback
//! ports, a spawned server process that is stopped on drop, and polling with a deadline.

use std::{
    env,
    fs::{self, DirBuilder, File, OpenOptions},
    io,
    net::TcpListener,
    os::unix::{fs::DirBuilderExt, process::CommandExt},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{
        OnceLock,
        atomic::{AtomicU32, Ordering},
    },
    thread,
    time::{Duration, Instant},
};

use crate::{Result, interrupt, servers::binaries, workspace};

/// How long a server may take to answer after it was started.
pub(crate) const READY_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a server may take to exit after its stop signal before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(10);

/// How many lines of a server's log an error shows.
const LOG_TAIL_LINES: usize = 30;

/// What the log of a server that lost the race for its port says, in every server we run.
const PORT_CLASH: &str = "Address already in use";

/// How often a server is started on fresh ports when it lost the race for its port.
const PORT_ATTEMPTS: u32 = 3;

/// A directory of its own under the system temporary directory (`$TMPDIR` or `/tmp`),
/// `stats-xtask-<kind>-<pid>-<n>`, readable only by its owner, removed with its contents on drop.
#[derive(Debug)]
pub(crate) struct TempDir {
    /// The directory.
    path: PathBuf,
}

impl TempDir {
    /// Creates a fresh directory whose name tells what it is for.
    pub(crate) fn new(kind: &str) -> Result<Self> {
        /// Tells apart the directories of one process.
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let base = env::temp_dir();
        for _ in 0..1000 {
            let n = NEXT.fetch_add(1, Ordering::Relaxed);
            let path = base.join(format!("stats-xtask-{kind}-{}-{n}", std::process::id()));
            match DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(Self { path }),
                // Left behind by an earlier process with the same id: take the next name.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(
                        format!("cannot create a directory in {}: {err}", base.display()).into(),
                    );
                }
            }
        }
        Err(format!("cannot find a free directory name in {}", base.display()).into())
    }

    /// The directory.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        match fs::remove_dir_all(&self.path) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => eprintln!("warning: cannot remove {}: {err}", self.path.display()),
        }
    }
}

/// Picks `count` distinct free loopback ports, each with `port + offset` free as well when an
/// offset is given (Redis Cluster's bus port). The ports are bound together on 127.0.0.1 while
/// they are chosen and released when this returns, for the servers to bind.
pub(crate) fn free_ports(count: usize, offset: Option<u16>) -> Result<Vec<u16>> {
    let mut held = Vec::new();
    let mut ports = Vec::with_capacity(count);
    let mut tries = 0;
    while ports.len() < count {
        tries += 1;
        if tries > 1000 {
            return Err("cannot find free loopback ports".into());
        }
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .map_err(|err| format!("cannot bind a loopback port: {err}"))?;
        let port = listener.local_addr()?.port();
        match offset {
            None => held.push(listener),
            Some(offset) => {
                let Some(second) = port.checked_add(offset) else {
                    continue;
                };
                let Ok(second) = TcpListener::bind(("127.0.0.1", second)) else {
                    continue;
                };
                held.extend([listener, second]);
            }
        }
        ports.push(port);
    }
    Ok(ports)
}

/// Runs `start` with fresh ports until it does not fail for a port another process took
/// between [`free_ports`] and the server binding it (at most [`PORT_ATTEMPTS`] times).
pub(crate) fn retry_port_clash<T>(mut start: impl FnMut() -> Result<T>) -> Result<T> {
    let mut attempt = 1;
    loop {
        match start() {
            Err(err) if attempt < PORT_ATTEMPTS && err.to_string().contains(PORT_CLASH) => {
                eprintln!("note: a port was taken meanwhile, trying other ports ({err})");
                attempt += 1;
            }
            result => return result,
        }
    }
}

/// A server process this xtask spawned: stopped on drop, with the process group it leads.
///
/// The server runs in a process group of its own whose id is its pid, so the whole group
/// (PostgreSQL's backends, for one) can be killed without touching any other process: the pid
/// stays ours until [`ServerProcess::stop`] reaps the server, and the group is killed before.
/// Where `setpriv` exists the server also gets SIGKILL as its parent-death signal, so it dies
/// with the xtask even when the xtask is killed outright and cannot stop it (its directory is
/// then left behind). The signal fires when the *thread* that spawned the server ends: spawn
/// servers from a thread that outlives them (the main thread does).
#[derive(Debug)]
pub(crate) struct ServerProcess {
    /// What it is, for messages: `redis-server on port 40123`.
    name: String,
    /// The spawned server (its pid is also its process group id).
    child: Child,
    /// The file its stdout and stderr go to.
    log: PathBuf,
    /// The signal that asks it to stop quickly (`TERM`, or `QUIT` for PostgreSQL).
    stop_signal: &'static str,
    /// How long it may take to exit after its stop signal before it is killed.
    grace: Duration,
    /// Whether `child` was reaped: then its pid and group id may belong to others.
    reaped: bool,
}

impl ServerProcess {
    /// A command running `program`, under `setpriv --pdeathsig KILL` where that exists.
    pub(crate) fn command(program: &Path) -> Command {
        match setpriv() {
            Some(setpriv) => {
                let mut cmd = Command::new(setpriv);
                cmd.args(["--pdeathsig", "KILL", "--"]).arg(program);
                cmd
            }
            None => Command::new(program),
        }
    }

    /// Spawns `cmd` in a process group of its own, stdin closed, stdout and stderr appended
    /// to `log`; `stop_signal` is the signal [`ServerProcess::stop`] sends first.
    pub(crate) fn spawn(
        name: String,
        mut cmd: Command,
        log: &Path,
        stop_signal: &'static str,
    ) -> Result<Self> {
        let out = append(log)?;
        let err = out.try_clone()?;
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0);
        let child = cmd.spawn().map_err(|err| {
            format!(
                "{name}: `{}` could not be started: {err}",
                workspace::display(&cmd)
            )
        })?;
        Ok(Self {
            name,
            child,
            log: log.to_path_buf(),
            stop_signal,
            grace: STOP_GRACE,
            reaped: false,
        })
    }

    /// What it is, for messages.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Whether the server has exited, without reaping it where `/proc` tells (so its pid and
    /// group id stay reserved for [`ServerProcess::stop`]).
    pub(crate) fn exited(&mut self) -> bool {
        if self.reaped {
            return true;
        }
        match fs::read_to_string(format!("/proc/{}/stat", self.child.id())) {
            Ok(stat) => is_zombie(&stat),
            Err(_) => match self.child.try_wait() {
                Ok(None) => false,
                Ok(Some(_)) | Err(_) => {
                    self.reaped = true;
                    true
                }
            },
        }
    }

    /// The last lines of its log, for error messages.
    pub(crate) fn log_tail(&self) -> String {
        format!(
            "last lines of {}:\n{}",
            self.log.display(),
            tail(&self.log, LOG_TAIL_LINES)
        )
    }

    /// Stops the server: its stop signal, up to [`STOP_GRACE`] to exit, then SIGKILL to its
    /// whole process group (whatever it left behind), then reaps it. Idempotent.
    pub(crate) fn stop(&mut self) {
        if self.reaped {
            return;
        }
        let pid = self.child.id().to_string();
        if !self.exited() {
            signal(self.stop_signal, &pid);
            let deadline = Instant::now() + self.grace;
            while !self.exited() && Instant::now() < deadline {
                thread::sleep(Duration::from_millis(10));
            }
        }
        if !self.reaped {
            // Not reaped yet, so no other process can have this pid as its id or group id.
            signal("KILL", &format!("-{pid}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.reaped = true;
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Whether a `/proc/<pid>/stat` line describes a zombie (exited, not reaped).
fn is_zombie(stat: &str) -> bool {
    stat.rsplit_once(')')
        .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z'))
}

/// Sends `signal` (a name such as `TERM`) to `target` (a pid, or `-<pgid>` for a group)
/// through the `kill` command; best effort.
fn signal(signal: &str, target: &str) {
    let _ = Command::new("kill")
        .args(["-s", signal, "--", target])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

/// `setpriv` if it exists and knows `--pdeathsig` (util-linux 2.33 and later).
fn setpriv() -> Option<&'static Path> {
    /// Looked up once.
    static SETPRIV: OnceLock<Option<PathBuf>> = OnceLock::new();
    SETPRIV
        .get_or_init(|| {
            let path = binaries::find(&["setpriv"])?;
            let help = Command::new(&path).arg("--help").output().ok()?;
            String::from_utf8_lossy(&help.stdout)
                .contains("--pdeathsig")
                .then_some(path)
        })
        .as_deref()
}

/// Opens `path` for appending, creating it.
fn append(path: &Path) -> Result<File> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|err| format!("cannot open {}: {err}", path.display()).into())
}

/// The last `lines` lines of the file at `path`, or a note saying why there are none.
pub(crate) fn tail(path: &Path, lines: usize) -> String {
    match fs::read(path) {
        Ok(bytes) if bytes.is_empty() => "(empty)".to_owned(),
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            all[all.len().saturating_sub(lines)..].join("\n")
        }
        Err(err) => format!("(cannot read it: {err})"),
    }
}

/// Polls `probe` until it gives a value, failing when any of `processes` exits, after
/// [`READY_TIMEOUT`], or on Ctrl-C. `what` names what is awaited (`redis-server on port 1 to
/// answer PING`); `probe`'s errors say why it is not there yet, and the last one is reported.
pub(crate) fn wait_for<T>(
    what: &str,
    processes: &mut [&mut ServerProcess],
    mut probe: impl FnMut() -> Result<T, String>,
) -> Result<T> {
    let started = Instant::now();
    let mut pause = Duration::from_millis(10);
    loop {
        let last = match probe() {
            Ok(value) => return Ok(value),
            Err(why) => why,
        };
        if let Some(process) = processes.iter_mut().find_map(|process| {
            let process: &mut ServerProcess = process;
            process.exited().then_some(process)
        }) {
            return Err(format!(
                "{} exited while waiting for {what} ({last}); {}",
                process.name(),
                process.log_tail()
            )
            .into());
        }
        interrupt::check()?;
        if started.elapsed() > READY_TIMEOUT {
            let logs: Vec<String> = processes.iter().map(|p| p.log_tail()).collect();
            return Err(format!(
                "timed out after {}s waiting for {what} ({last}); {}",
                READY_TIMEOUT.as_secs(),
                logs.join("\n")
            )
            .into());
        }
        thread::sleep(pause);
        pause = (pause * 2).min(Duration::from_millis(100));
    }
}

/// Runs a setup command (`initdb`, `redis-cli --cluster create`...) to completion with its
/// output in `log`, failing with that output when it fails or takes longer than `timeout`.
pub(crate) fn run_logged(mut cmd: Command, log: &Path, timeout: Duration) -> Result {
    let shown = workspace::display(&cmd);
    let out = append(log)?;
    let err = out.try_clone()?;
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|err| format!("`{shown}` could not be started: {err}"))?;
    let deadline = Instant::now() + timeout;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if Instant::now() > deadline || interrupt::requested() {
            let _ = child.kill();
            let _ = child.wait();
            let why = if interrupt::requested() {
                "was stopped by the interrupt".to_owned()
            } else {
                format!("did not finish within {}s", timeout.as_secs())
            };
            return Err(format!(
                "`{shown}` {why}; last lines of {}:\n{}",
                log.display(),
                tail(log, LOG_TAIL_LINES)
            )
            .into());
        }
        thread::sleep(Duration::from_millis(20));
    };
    if status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{shown}` failed ({status}); last lines of {}:\n{}",
            log.display(),
            tail(log, LOG_TAIL_LINES)
        )
        .into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn temp_dirs_are_fresh_private_and_removed_on_drop() {
        use std::os::unix::fs::PermissionsExt;
        let a = TempDir::new("test").unwrap();
        let b = TempDir::new("test").unwrap();
        assert_ne!(a.path(), b.path());
        let mode = fs::metadata(a.path()).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o700);
        fs::create_dir(a.path().join("sub")).unwrap();
        fs::write(a.path().join("sub/file"), "x").unwrap();
        let path = a.path().to_path_buf();
        drop(a);
        assert!(!path.exists());
    }

    #[test]
    fn free_ports_are_distinct_and_bindable() {
        let ports = free_ports(3, Some(10_000)).unwrap();
        assert_eq!(ports.len(), 3);
        for (i, port) in ports.iter().enumerate() {
            assert!(!ports[..i].contains(port));
            assert!(*port <= u16::MAX - 10_000);
            drop(TcpListener::bind(("127.0.0.1", *port)).unwrap());
            drop(TcpListener::bind(("127.0.0.1", port + 10_000)).unwrap());
        }
    }

    #[test]
    fn only_port_clashes_are_retried() {
        let mut calls = 0;
        let result: Result<()> = retry_port_clash(|| {
            calls += 1;
            Err(format!("bind: {PORT_CLASH}").into())
        });
        assert!(result.is_err());
        assert_eq!(calls, PORT_ATTEMPTS);

        let mut calls = 0;
        let result: Result<()> = retry_port_clash(|| {
            calls += 1;
            Err("something else".into())
        });
        assert!(result.is_err());
        assert_eq!(calls, 1);
    }

    #[test]
    fn zombies_are_recognised_even_with_parentheses_in_the_name() {
        assert!(is_zombie("123 (a) b) Z 1 123 123 0"));
        assert!(!is_zombie("123 (redis-server) S 1 123 123 0"));
        assert!(!is_zombie(""));
    }

    #[test]
    fn the_tail_of_a_log_is_its_last_lines() {
        let dir = TempDir::new("test").unwrap();
        let log = dir.path().join("log");
        fs::write(&log, "1\n2\n3\n4\n").unwrap();
        assert_eq!(tail(&log, 2), "3\n4");
        assert_eq!(tail(&log, 10), "1\n2\n3\n4");
        assert!(tail(&dir.path().join("missing"), 2).starts_with("(cannot read it"));
    }

    /// Whether a process with this pid exists (and is not a zombie).
    fn alive(pid: u32) -> bool {
        fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| !is_zombie(&stat))
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn stopping_kills_the_whole_group_and_nothing_else() {
        let dir = TempDir::new("test").unwrap();
        let log = dir.path().join("log");
        // A "server" that ignores its stop signal and leaves a child behind.
        let mut cmd = ServerProcess::command(Path::new("/bin/sh"));
        cmd.args([
            "-c",
            "trap '' TERM; sleep 60 & echo $! > pid; echo started; wait",
        ])
        .current_dir(dir.path());
        let mut outside = Command::new("sleep").arg("60").spawn().unwrap();
        let mut server = ServerProcess::spawn("sh".into(), cmd, &log, "TERM").unwrap();
        server.grace = Duration::from_millis(300);
        let grandchild: u32 = wait_for("the child's pid", &mut [&mut server], || {
            fs::read_to_string(dir.path().join("pid"))
                .ok()
                .and_then(|pid| pid.trim().parse().ok())
                .ok_or_else(|| "no pid yet".to_owned())
        })
        .unwrap();
        assert!(alive(grandchild));
        assert!(!server.exited());
        let started = Instant::now();
        server.stop();
        assert!(started.elapsed() >= server.grace, "the trap ignored TERM");
        assert!(server.exited());
        let deadline = Instant::now() + Duration::from_secs(5);
        while alive(grandchild) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(10));
        }
        assert!(!alive(grandchild), "the group was not killed");
        assert!(
            alive(outside.id()),
            "a process outside the group was killed"
        );
        assert_eq!(tail(&log, 1), "started");
        outside.kill().unwrap();
        outside.wait().unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_panic_stops_the_server_and_removes_its_directory() {
        let seen = std::sync::Mutex::new((0, PathBuf::new()));
        let result = std::panic::catch_unwind(|| {
            let dir = TempDir::new("test").unwrap();
            let mut cmd = ServerProcess::command(Path::new("/bin/sleep"));
            cmd.arg("60");
            let server =
                ServerProcess::spawn("sleep".into(), cmd, &dir.path().join("log"), "TERM").unwrap();
            *seen.lock().unwrap() = (server.child.id(), dir.path().to_path_buf());
            panic!("a failing run");
        });
        assert!(result.is_err());
        let (pid, path) = seen.into_inner().unwrap();
        assert!(!alive(pid), "the server outlived the panic");
        assert!(!path.exists(), "the directory outlived the panic");
    }

    #[test]
    fn a_server_that_exits_early_fails_the_wait_with_its_log() {
        let dir = TempDir::new("test").unwrap();
        let log = dir.path().join("log");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo bad config >&2; exit 3"]);
        let mut server = ServerProcess::spawn("sh".into(), cmd, &log, "TERM").unwrap();
        let err = wait_for("never", &mut [&mut server], || Err::<(), _>("no".into()))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sh exited while waiting for never (no)"),
            "{err}"
        );
        assert!(err.contains("bad config"), "{err}");
    }

    #[test]
    fn a_failing_setup_command_reports_its_output() {
        let dir = TempDir::new("test").unwrap();
        let log = dir.path().join("setup.log");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo why it failed; exit 1"]);
        let err = run_logged(cmd, &log, Duration::from_secs(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("why it failed"), "{err}");
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", "echo fine"]);
        run_logged(cmd, &log, Duration::from_secs(10)).unwrap();
    }
}
