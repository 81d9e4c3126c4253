//! `cargo xtask deny`: `cargo deny check`, with an offline advisory database when the
//! RustSec database cannot be fetched (machines without access to GitHub).
//!
//! The online check always runs first, so a machine that can fetch gets a fresh database
//! even when an older copy (or a snapshot installed earlier) is cached. Only when that check
//! fails *because the fetch failed* (or hangs past [`ONLINE_TIMEOUT`]) is a snapshot folder
//! installed as a git repository where cargo-deny keeps the default database, and
//! `cargo deny --offline check` run against it. A real license, ban, source or advisory
//! finding in the online check fails without falling back.

use std::{
    env,
    ffi::OsStr,
    fs,
    io::{Read, Write},
    path::{Path, PathBuf},
    process::{Command, Stdio},
    sync::{Arc, Mutex, mpsc},
    thread,
    time::{Duration, Instant},
};

use crate::{Result, workspace};

/// The folder cargo-deny clones the default database (<https://github.com/RustSec/advisory-db>)
/// into, below `$CARGO_HOME/advisory-dbs`: the repository name and an xxhash of the URL.
const DEFAULT_DB_DIR: &str = "advisory-db-3157b0e258782691";

/// The URL of the default database, set as `origin` of an installed snapshot so that a later
/// online check can fetch into it.
const DEFAULT_DB_URL: &str = "https://github.com/RustSec/advisory-db";

/// Environment variable naming a snapshot folder to use instead of `../shared/advisory-db`.
const SNAPSHOT_ENV: &str = "STATS_ADVISORY_DB_SNAPSHOT";

/// The snapshot's date when its SNAPSHOT.md does not name one.
const DEFAULT_SNAPSHOT_DATE: &str = "2026-08-21";

/// How long the online check may run before it is treated as a failed fetch, unless
/// [`TIMEOUT_ENV`] says otherwise. A fetch that cannot resolve github.com fails within about a
/// second; this guards against a network that swallows packets (git then waits up to 5 min).
const ONLINE_TIMEOUT: Duration = Duration::from_secs(90);

/// Environment variable overriding [`ONLINE_TIMEOUT`], in seconds.
const TIMEOUT_ENV: &str = "STATS_DENY_ONLINE_TIMEOUT_SECS";

/// Text cargo-deny (0.14 through 0.20) prints when it cannot clone or fetch a database.
const FETCH_FAILURE: &str = "failed to fetch advisory database";

/// Runs `cargo deny check` (installing cargo-deny first if needed), falling back to
/// `cargo deny --offline check` with a snapshot of the advisory database when the database
/// cannot be fetched.
///
/// Fails on any finding, and when the fetch fails and no snapshot is available.
pub(crate) fn check() -> Result {
    ensure_installed()?;
    match online_check()? {
        Online::Passed => Ok(()),
        Online::Failed => Err("`cargo deny check` reported errors (see above)".into()),
        Online::FetchFailed(why) => {
            eprintln!("\nThe advisory database could not be fetched ({why}).");
            let snapshot = find_snapshot()?;
            let db = workspace::cargo_home()?
                .join("advisory-dbs")
                .join(DEFAULT_DB_DIR);
            let used = match install_snapshot(&snapshot, &db)? {
                Installed::Snapshot => format!(
                    "the offline advisory-db snapshot from {} (dated {}), installed at {}",
                    snapshot.display(),
                    snapshot_date(&snapshot),
                    db.display()
                ),
                Installed::Kept { last_commit } => format!(
                    "the advisory database already at {} (last commit {last_commit}), \
                     which is not older than the snapshot at {}",
                    db.display(),
                    snapshot.display()
                ),
            };
            println!("OFFLINE advisory check: using {used}");
            workspace::run(&mut workspace::cargo(["deny", "--offline", "check"]))?;
            println!("cargo deny: ok (OFFLINE: advisories checked against {used})");
            Ok(())
        }
    }
}

/// Installs cargo-deny with `cargo install cargo-deny --locked` unless `cargo deny` runs.
fn ensure_installed() -> Result {
    let installed = |cmd: &mut Command| {
        cmd.stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    if installed(&mut workspace::cargo(["deny", "--version"])) {
        return Ok(());
    }
    println!("cargo-deny is not installed; installing it (this takes a few minutes)");
    workspace::run(&mut workspace::cargo(["install", "cargo-deny", "--locked"]))?;
    if installed(&mut workspace::cargo(["deny", "--version"])) {
        Ok(())
    } else {
        Err(
            "cargo-deny was installed but `cargo deny --version` still fails; \
             is the cargo bin directory on PATH?"
                .into(),
        )
    }
}

/// How the online `cargo deny check` ended.
#[derive(Debug, PartialEq)]
enum Online {
    /// Every check passed.
    Passed,
    /// A check found a problem (or cargo-deny failed for a reason other than the fetch).
    Failed,
    /// The advisory database could not be fetched; the reason, for the terminal.
    FetchFailed(String),
}

/// Runs `cargo deny check`, echoing its stderr while keeping a copy to tell a failed
/// fetch from a finding.
fn online_check() -> Result<Online> {
    let mut cmd = workspace::cargo(["deny", "check"]);
    // A credential prompt for github.com would hang a CI job; fail the fetch instead.
    cmd.env("GIT_TERMINAL_PROMPT", "0").stderr(Stdio::piped());
    println!("$ {}", workspace::display(&cmd));
    let mut child = cmd
        .spawn()
        .map_err(|err| format!("`cargo deny check` could not be started: {err}"))?;

    let stderr = child
        .stderr
        .take()
        .ok_or("cargo deny's stderr was not piped")?;
    let captured = Arc::new(Mutex::new(Vec::new()));
    let (done_tx, done_rx) = mpsc::channel();
    let sink = Arc::clone(&captured);
    thread::spawn(move || {
        tee_stderr(stderr, &sink);
        let _ = done_tx.send(());
    });

    let timeout = env::var(TIMEOUT_ENV)
        .ok()
        .and_then(|secs| secs.trim().parse().ok())
        .map_or(ONLINE_TIMEOUT, Duration::from_secs);
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if started.elapsed() > timeout {
            // Find the git processes cargo-deny started before they lose their parent.
            let descendants = descendants(child.id());
            let _ = child.kill();
            let _ = child.wait();
            kill_all(&descendants);
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // After a kill a grandchild (git) may still hold the pipe open: wait only briefly.
    let _ = match status {
        Some(_) => done_rx.recv().map_err(|_| ()),
        None => done_rx.recv_timeout(Duration::from_secs(5)).map_err(|_| ()),
    };
    let text =
        String::from_utf8_lossy(&captured.lock().unwrap_or_else(|e| e.into_inner())).into_owned();

    Ok(match status {
        Some(status) if status.success() => Online::Passed,
        Some(_) => classify_failure(&text),
        None => Online::FetchFailed(format!(
            "`cargo deny check` did not finish within {}s (set {TIMEOUT_ENV} to wait longer)",
            timeout.as_secs()
        )),
    })
}

/// The processes below `pid` (children, their children, ...), read from `/proc`; empty where
/// there is no `/proc` (then only the direct child is stopped on a timeout).
fn descendants(pid: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // `pid (comm) state ppid ...`; comm may hold spaces and parentheses.
            let ppid = stat.rsplit_once(')')?.1.split_whitespace().nth(1)?;
            Some((pid, ppid.parse().ok()?))
        })
        .collect();
    let mut found = vec![pid];
    let mut next = 0;
    while next < found.len() {
        let parent = found[next];
        found.extend(
            parents
                .iter()
                .filter(|(_, p)| *p == parent)
                .map(|(c, _)| *c),
        );
        next += 1;
    }
    found.split_off(1)
}

/// Sends SIGKILL to each of `pids` (best effort, through the `kill` command).
fn kill_all(pids: &[u32]) {
    if pids.is_empty() {
        return;
    }
    let _ = Command::new("kill")
        .arg("-KILL")
        .args(pids.iter().map(u32::to_string))
        .stderr(Stdio::null())
        .status();
}

/// Copies `source` to this process's stderr while appending it to `sink`.
fn tee_stderr(mut source: impl Read, sink: &Mutex<Vec<u8>>) {
    let mut buf = [0u8; 8192];
    let mut out = std::io::stderr();
    loop {
        match source.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => {
                let _ = out.write_all(&buf[..n]);
                let _ = out.flush();
                if let Ok(mut sink) = sink.lock() {
                    sink.extend_from_slice(&buf[..n]);
                }
            }
            Err(err) if err.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => break,
        }
    }
}

/// Tells a failed online check due to the fetch from one due to a finding; for a failed
/// fetch, keeps cargo-deny's message and git's reason (`fatal: ...`) for the terminal.
fn classify_failure(stderr: &str) -> Online {
    let mut lines = stderr.lines();
    let Some(line) = lines.find(|line| line.contains(FETCH_FAILURE)) else {
        return Online::Failed;
    };
    // The line starts with a timestamp and level; the part after the URL lists git arguments.
    let message = &line[line.find(FETCH_FAILURE).unwrap_or(0)..];
    let message = message
        .split_once(" with cli")
        .map_or(message, |(head, _)| head)
        .trim();
    // git's own reason follows cargo-deny's message.
    let git_reason = lines.map(str::trim).find(|line| line.starts_with("fatal:"));
    Online::FetchFailed(match git_reason {
        Some(reason) => format!("{message}: {reason}"),
        None => message.to_owned(),
    })
}

/// The snapshot folder: `$STATS_ADVISORY_DB_SNAPSHOT`, else `<workspace>/../shared/advisory-db`.
fn find_snapshot() -> Result<PathBuf> {
    let (snapshot, source) = match env::var_os(SNAPSHOT_ENV).filter(|v| !v.is_empty()) {
        Some(path) => (workspace::root().join(path), SNAPSHOT_ENV),
        None => (
            workspace::root()
                .join("..")
                .join("shared")
                .join("advisory-db"),
            "the default location",
        ),
    };
    if snapshot.join("crates").is_dir() {
        // Canonical paths read better in the messages than `main/../shared`.
        Ok(snapshot.canonicalize().unwrap_or(snapshot))
    } else {
        Err(format!(
            "no advisory-db snapshot at {} ({source}): fetch access to github.com is needed, \
             or set {SNAPSHOT_ENV} to a copy of https://github.com/RustSec/advisory-db",
            snapshot.display()
        )
        .into())
    }
}

/// The snapshot's date (`YYYY-MM-DD`) as named in its SNAPSHOT.md, else the known date.
fn snapshot_date(snapshot: &Path) -> String {
    fs::read_to_string(snapshot.join("SNAPSHOT.md"))
        .ok()
        .and_then(|text| first_date(&text))
        .unwrap_or_else(|| DEFAULT_SNAPSHOT_DATE.to_owned())
}

/// The first `YYYY-MM-DD` in `text`.
fn first_date(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    bytes.windows(10).enumerate().find_map(|(at, w)| {
        let digits = |range: std::ops::Range<usize>| w[range].iter().all(u8::is_ascii_digit);
        let is_date = digits(0..4) && w[4] == b'-' && digits(5..7) && w[7] == b'-' && digits(8..10);
        // Not part of a longer run of digits (e.g. inside a hash).
        let bounded = at
            .checked_sub(1)
            .is_none_or(|i| !bytes[i].is_ascii_alphanumeric())
            && bytes
                .get(at + 10)
                .is_none_or(|b| !b.is_ascii_alphanumeric());
        (is_date && bounded).then(|| text[at..at + 10].to_owned())
    })
}

/// What [`install_snapshot`] left in the database folder.
enum Installed {
    /// The snapshot, freshly installed.
    Snapshot,
    /// The database that was already there, at least as recent as the snapshot.
    Kept {
        /// The date of its HEAD commit.
        last_commit: String,
    },
}

/// Makes `db` a git repository holding `snapshot`, unless it already holds a repository at
/// least as recent as the snapshot (a fetched database, or this snapshot installed before).
fn install_snapshot(snapshot: &Path, db: &Path) -> Result<Installed> {
    let date = snapshot_date(snapshot);
    if let Some(head_date) = head_commit_date(db) {
        if head_date.as_str() >= date.as_str() {
            return Ok(Installed::Kept {
                last_commit: head_date,
            });
        }
        println!(
            "{} holds an older advisory database (last commit {head_date}); replacing it",
            db.display()
        );
    }

    // Build next to the destination and move it in at the end, so an interrupted install
    // never leaves a half-copied database where cargo-deny looks.
    let parent = db.parent().ok_or("the advisory db path has no parent")?;
    fs::create_dir_all(parent)
        .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
    let staging = parent.join(format!("{DEFAULT_DB_DIR}.xtask-{}", std::process::id()));
    remove_dir_if_present(&staging)?;
    println!(
        "Installing the advisory-db snapshot from {} into {}",
        snapshot.display(),
        db.display()
    );
    copy_dir(snapshot, &staging)?;
    if !staging.join(".git").exists() {
        let commit_date = format!("{date}T00:00:00Z");
        git(&staging, ["init", "--quiet", "--initial-branch=main"], None)?;
        git(&staging, ["add", "--all"], None)?;
        let message = format!(
            "RustSec advisory-db snapshot ({date}) from {}",
            snapshot.display()
        );
        git(
            &staging,
            [
                "commit",
                "--quiet",
                "--no-verify",
                "--no-gpg-sign",
                "--message",
                &message,
            ],
            Some(&commit_date),
        )?;
    }
    if git(&staging, ["remote", "get-url", "origin"], None).is_err() {
        git(&staging, ["remote", "add", "origin", DEFAULT_DB_URL], None)?;
    }
    remove_dir_if_present(db)?;
    fs::rename(&staging, db).map_err(|err| {
        format!(
            "cannot move {} to {}: {err}",
            staging.display(),
            db.display()
        )
    })?;
    Ok(Installed::Snapshot)
}

/// The date (`YYYY-MM-DD`, committer time zone) of the HEAD commit of the repository at
/// `dir`, or `None` if `dir` holds no valid repository of its own.
fn head_commit_date(dir: &Path) -> Option<String> {
    if !dir.join(".git").exists() {
        return None;
    }
    let date = git(dir, ["log", "-1", "--format=%cs", "HEAD"], None).ok()?;
    let date = date.trim();
    (date.len() == 10).then(|| date.to_owned())
}

/// Runs `git -C dir <args>` quietly with a fixed identity, optionally dating the commit;
/// returns its stdout.
fn git<'a>(
    dir: &Path,
    args: impl IntoIterator<Item = &'a str>,
    date: Option<&str>,
) -> Result<String> {
    let mut cmd = Command::new("git");
    cmd.arg("-C").arg(dir);
    cmd.args([
        "-c",
        "user.name=stats xtask",
        "-c",
        "user.email=xtask@stats.invalid",
        "-c",
        "core.autocrlf=false",
    ]);
    cmd.args(args);
    // Inherited repository settings (e.g. from a git hook) would point git elsewhere.
    for var in [
        "GIT_DIR",
        "GIT_WORK_TREE",
        "GIT_INDEX_FILE",
        "GIT_OBJECT_DIRECTORY",
        "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    ] {
        cmd.env_remove(var);
    }
    if let Some(date) = date {
        cmd.env("GIT_AUTHOR_DATE", date)
            .env("GIT_COMMITTER_DATE", date);
    }
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("git could not be started: {err}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        let shown: Vec<_> = cmd.get_args().map(OsStr::to_string_lossy).collect();
        Err(format!(
            "`git {}` failed ({}): {}",
            shown.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        )
        .into())
    }
}

/// Copies the folder `from` to `to` recursively. Files are written anew rather than copied
/// so they do not keep the snapshot's read-only permissions (git must be able to update them).
fn copy_dir(from: &Path, to: &Path) -> Result {
    fs::create_dir_all(to).map_err(|err| format!("cannot create {}: {err}", to.display()))?;
    for entry in
        fs::read_dir(from).map_err(|err| format!("cannot read {}: {err}", from.display()))?
    {
        let entry = entry?;
        let (src, dst) = (entry.path(), to.join(entry.file_name()));
        if entry.file_type()?.is_dir() {
            copy_dir(&src, &dst)?;
        } else {
            let bytes =
                fs::read(&src).map_err(|err| format!("cannot read {}: {err}", src.display()))?;
            fs::write(&dst, bytes)
                .map_err(|err| format!("cannot write {}: {err}", dst.display()))?;
        }
    }
    Ok(())
}

/// Removes a folder tree if it exists.
fn remove_dir_if_present(dir: &Path) -> Result {
    match fs::remove_dir_all(dir) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!("cannot remove {}: {err}", dir.display()).into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_fetch_is_told_from_a_finding() {
        let fetch = "2026-11-21 12:18:57 [ERROR] failed to fetch advisory database \
                     https://github.com/RustSec/advisory-db with cli: failed to clone\n\
                     fatal: unable to access 'https://github.com/RustSec/advisory-db/': \
                     Could not resolve host: github.com\n";
        assert_eq!(
            classify_failure(fetch),
            Online::FetchFailed(
                "failed to fetch advisory database https://github.com/RustSec/advisory-db: \
                 fatal: unable to access 'https://github.com/RustSec/advisory-db/': \
                 Could not resolve host: github.com"
                    .to_owned()
            )
        );
        let finding = "error[rejected]: failed to satisfy license requirements\n\
                       bans ok, licenses FAILED, sources ok\n";
        assert_eq!(classify_failure(finding), Online::Failed);
        let vulnerability = "error[vulnerability]: Use-after-free\n  ├ ID: RUSTSEC-2026-0001\n\
                             advisories FAILED, bans ok, licenses ok, sources ok\n";
        assert_eq!(classify_failure(vulnerability), Online::Failed);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_timed_out_check_stops_its_whole_process_tree() {
        let mut child = Command::new("sh")
            .args(["-c", "sleep 30 & sleep 30 & wait"])
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut found = descendants(child.id());
        while found.len() < 2 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(20));
            found = descendants(child.id());
        }
        assert_eq!(found.len(), 2, "{found:?}");
        let _ = child.kill();
        let _ = child.wait();
        kill_all(&found);
        for pid in found {
            let deadline = Instant::now() + Duration::from_secs(5);
            // A killed process disappears once reaped (by init, as the shell is gone).
            while fs::read_to_string(format!("/proc/{pid}/stat"))
                .is_ok_and(|stat| !stat.contains(") Z"))
                && Instant::now() < deadline
            {
                thread::sleep(Duration::from_millis(20));
            }
            let stat = fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
            assert!(
                stat.is_empty() || stat.contains(") Z"),
                "{pid} still runs: {stat}"
            );
        }
    }

    #[test]
    fn the_snapshot_date_is_read_from_its_notes() {
        let notes = "RustSec advisory database (data, CC0), snapshot of commit \
                     bf5c0d245a92671908518d7e765914d437954ed6\n(2026-08-21). The machines";
        assert_eq!(first_date(notes).as_deref(), Some("2026-08-21"));
        assert_eq!(first_date("no date, 12345-01-011"), None);
        assert_eq!(
            snapshot_date(Path::new("/nonexistent")),
            DEFAULT_SNAPSHOT_DATE
        );
    }
}
