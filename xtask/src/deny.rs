//! `cargo xtask deny`: `cargo deny check`, with an offline advisory database when the
//! RustSec database cannot be fetched (machines without access to GitHub).
//!
//! The online check always runs first, so a machine that can fetch gets a fresh database
//! even when an older copy (or a snapshot installed earlier) is cached. Only when that check
//! fails *because the fetch failed* (or hangs past [`ONLINE_TIMEOUT`]) does
//! `cargo deny --offline check` run, against (see [`choose`]):
//!
//! 1. the database already installed where cargo-deny keeps the default one
//!    (`$CARGO_HOME/advisory-dbs/advisory-db-<hash>`: fetched by an earlier online run, or a
//!    snapshot installed by an earlier offline one), its age said from its newest commit (or,
//!    where git cannot tell, its newest file);
//! 2. else the snapshot beside the checkout (`../shared/advisory-db`, or
//!    `$STATS_ADVISORY_DB_SNAPSHOT`), installed there as a git repository; also when the
//!    snapshot is newer than the installed database, which it then replaces;
//! 3. else nothing: the check fails, saying what to provide.
//!
//! A real license, ban, source or advisory finding in the online check fails without
//! falling back.

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
            let db = workspace::cargo_home()?
                .join("advisory-dbs")
                .join(DEFAULT_DB_DIR);
            let used = prepare_offline_db(&db, find_snapshot(), &today())?;
            println!("OFFLINE advisory check: using {used}");
            workspace::run(&mut workspace::cargo(["deny", "--offline", "check"]))?;
            println!("cargo deny: ok (OFFLINE: advisories checked against {used})");
            Ok(())
        }
    }
}

/// Leaves in `db` (cargo-deny's folder for the default database) the database the offline
/// check should read, as [`choose`] decides between what `db` holds and `snapshot` (found by
/// [`find_snapshot`]), installing the snapshot when that is the choice; returns what is used,
/// with its age on `today`, for the terminal. Fails when neither is there, saying what to do.
fn prepare_offline_db(db: &Path, snapshot: Result<PathBuf, String>, today: &str) -> Result<String> {
    let installed = installed_db(db);
    let snapshot = snapshot.map(|path| {
        let date = snapshot_date(&path);
        (path, date)
    });
    let choice = choose(
        installed.as_ref().map(|found| found.date.as_str()),
        snapshot.as_ref().ok().map(|(_, date)| date.as_str()),
    );
    match (choice, installed, snapshot) {
        (Some(Choice::Installed), Some(found), _) => Ok(format!(
            "the advisory database already installed at {} ({})",
            db.display(),
            found.age(today)
        )),
        (Some(Choice::Snapshot), installed, Ok((path, date))) => {
            if let Some(found) = &installed {
                println!(
                    "{} holds an older advisory database ({}); replacing it with the snapshot",
                    db.display(),
                    found.age(today)
                );
            }
            install_snapshot(&path, &date, db)?;
            Ok(format!(
                "the offline advisory-db snapshot from {} (dated {date}, {}), installed at {}",
                path.display(),
                days_old(&date, today),
                db.display()
            ))
        }
        (_, _, snapshot) => {
            let why = snapshot.err().unwrap_or_default();
            Err(format!(
                "no advisory database is installed at {}, and {why}",
                db.display()
            )
            .into())
        }
    }
}

/// Which database the offline check reads.
#[derive(Debug, PartialEq)]
enum Choice {
    /// The one already installed, as it is.
    Installed,
    /// The snapshot, installed over whatever is there.
    Snapshot,
}

/// Chooses from the dates (`YYYY-MM-DD`) of the installed database and of the snapshot, each
/// when present: the installed database, unless the snapshot is newer; the snapshot when
/// nothing is installed; `None` when neither is there.
fn choose(installed: Option<&str>, snapshot: Option<&str>) -> Option<Choice> {
    match (installed, snapshot) {
        (Some(installed), Some(snapshot)) if snapshot > installed => Some(Choice::Snapshot),
        (Some(_), _) => Some(Choice::Installed),
        (None, Some(_)) => Some(Choice::Snapshot),
        (None, None) => None,
    }
}

/// A database cargo-deny can read offline, and how recent it is.
#[derive(Debug, PartialEq)]
struct InstalledDb {
    /// The date (`YYYY-MM-DD`) of its newest commit, else of its newest file.
    date: String,
    /// Where [`Self::date`] comes from: `last commit` or `newest file`.
    dated_by: &'static str,
}

impl InstalledDb {
    /// E.g. `last commit 2026-08-21, 100 days old`.
    fn age(&self, today: &str) -> String {
        format!(
            "{} {}, {}",
            self.dated_by,
            self.date,
            days_old(&self.date, today)
        )
    }
}

/// The database in `dir` if cargo-deny can read it offline there: a git repository (it reads
/// the HEAD commit's time) holding the advisories (`crates/`).
fn installed_db(dir: &Path) -> Option<InstalledDb> {
    if !dir.join(".git").exists() || !dir.join("crates").is_dir() {
        return None;
    }
    if let Some(date) = head_commit_date(dir) {
        return Some(InstalledDb {
            date,
            dated_by: "last commit",
        });
    }
    Some(InstalledDb {
        date: civil_date(newest_mtime(&dir.join("crates"))?),
        dated_by: "newest file",
    })
}

/// The latest modification time (Unix seconds) of the files below `dir`.
fn newest_mtime(dir: &Path) -> Option<i64> {
    let mut newest = None;
    for entry in fs::read_dir(dir).ok()?.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        let time = if kind.is_dir() {
            newest_mtime(&entry.path())
        } else {
            entry
                .metadata()
                .and_then(|meta| meta.modified())
                .ok()
                .and_then(|time| time.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|since| i64::try_from(since.as_secs()).ok())
        };
        newest = newest.max(time);
    }
    newest
}

/// Today's date (UTC), `YYYY-MM-DD`.
fn today() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    civil_date(i64::try_from(now).unwrap_or(i64::MAX))
}

/// The UTC date (`YYYY-MM-DD`) of a Unix time in seconds.
fn civil_date(unix_secs: i64) -> String {
    // Days since 1970-01-01 to a proleptic Gregorian date, by 400-year eras of 146,097 days
    // counted from 0000-03-01 (so that the leap day ends a year).
    let days = unix_secs.div_euclid(86_400) + 719_468;
    let era = days.div_euclid(146_097);
    let day_of_era = days.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!("{year:04}-{month:02}-{day:02}")
}

/// Days from 1970-01-01 to the date `YYYY-MM-DD`, or `None` if it is not such a date.
fn days_from_civil(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-').map(str::parse::<i64>);
    let (year, month, day) = (
        parts.next()?.ok()?,
        parts.next()?.ok()?,
        parts.next()?.ok()?,
    );
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    let year = year - i64::from(month <= 2);
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let day_of_year = (153 * ((month + 9) % 12) + 2) / 5 + day - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    Some(era * 146_097 + day_of_era - 719_468)
}

/// How old a database dated `date` is on `today`: e.g. `100 days old`.
fn days_old(date: &str, today: &str) -> String {
    match (days_from_civil(date), days_from_civil(today)) {
        (Some(then), Some(now)) if now >= then => match now - then {
            0 => "from today".to_owned(),
            1 => "1 day old".to_owned(),
            days => format!("{days} days old"),
        },
        _ => format!("age unknown on {today}"),
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

/// The snapshot folder: `$STATS_ADVISORY_DB_SNAPSHOT`, else `<workspace>/../shared/advisory-db`;
/// the error says where none was found and what to do.
fn find_snapshot() -> Result<PathBuf, String> {
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
        ))
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

/// Makes `db` a git repository holding `snapshot` (dated `date`), replacing what is there.
fn install_snapshot(snapshot: &Path, date: &str, db: &Path) -> Result {
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
    Ok(())
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
    use crate::servers::TempDir;

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

    #[test]
    fn the_installed_database_wins_unless_the_snapshot_is_newer() {
        assert_eq!(
            choose(Some("2026-09-01"), Some("2026-08-21")),
            Some(Choice::Installed)
        );
        assert_eq!(
            choose(Some("2026-08-21"), Some("2026-08-21")),
            Some(Choice::Installed)
        );
        assert_eq!(choose(Some("2026-01-01"), None), Some(Choice::Installed));
        assert_eq!(
            choose(Some("2026-01-01"), Some("2026-08-21")),
            Some(Choice::Snapshot)
        );
        assert_eq!(choose(None, Some("2026-08-21")), Some(Choice::Snapshot));
        assert_eq!(choose(None, None), None);
    }

    #[test]
    fn dates_and_ages_are_computed_in_the_gregorian_calendar() {
        assert_eq!(civil_date(0), "1970-01-01");
        assert_eq!(civil_date(-86_400), "1969-12-31");
        assert_eq!(civil_date(951_782_400), "2000-02-29");
        assert_eq!(civil_date(1_787_270_400 + 86_399), "2026-08-21");
        assert_eq!(civil_date(4_107_542_400), "2100-03-01");
        for days in (-700_000..800_000).step_by(13) {
            let date = civil_date(days * 86_400);
            assert_eq!(days_from_civil(&date), Some(days), "{date}");
        }
        assert_eq!(days_old("2026-08-21", "2026-11-29"), "100 days old");
        assert_eq!(days_old("2026-11-28", "2026-11-29"), "1 day old");
        assert_eq!(days_old("2026-11-29", "2026-11-29"), "from today");
        assert_eq!(
            days_old("2026-12-01", "2026-11-29"),
            "age unknown on 2026-11-29"
        );
        assert_eq!(days_from_civil("2026-13-01"), None);
        assert_eq!(days_from_civil("yesterday"), None);
        assert_eq!(
            InstalledDb {
                date: "2026-08-21".into(),
                dated_by: "last commit"
            }
            .age("2026-08-31"),
            "last commit 2026-08-21, 10 days old"
        );
    }

    /// A snapshot folder (not a repository) dated `date` in its notes, with one advisory.
    fn snapshot_in(dir: &Path, date: &str) -> PathBuf {
        let snapshot = dir.join("snapshot");
        fs::create_dir_all(snapshot.join("crates").join("rsa")).unwrap();
        fs::write(
            snapshot
                .join("crates")
                .join("rsa")
                .join("RUSTSEC-2023-0071.md"),
            "advisory",
        )
        .unwrap();
        fs::write(
            snapshot.join("SNAPSHOT.md"),
            format!("snapshot of commit abc ({date})."),
        )
        .unwrap();
        snapshot
    }

    #[test]
    fn a_database_is_only_one_cargo_deny_can_read() {
        let dir = TempDir::new("deny-installed").unwrap();
        let db = dir.path().join("db");
        assert_eq!(installed_db(&db), None);
        // Advisories without a repository: cargo-deny fails on the HEAD timestamp.
        fs::create_dir_all(db.join("crates").join("rsa")).unwrap();
        let advisory = db.join("crates").join("rsa").join("RUSTSEC-2023-0071.md");
        fs::write(&advisory, "advisory").unwrap();
        assert_eq!(installed_db(&db), None);
        // A `.git` git cannot read: dated by the newest advisory file.
        fs::write(db.join(".git"), "gitdir: /nonexistent").unwrap();
        let file = fs::File::options().write(true).open(&advisory).unwrap();
        file.set_modified(std::time::UNIX_EPOCH + Duration::from_secs(1_787_270_400))
            .unwrap();
        assert_eq!(
            installed_db(&db),
            Some(InstalledDb {
                date: "2026-08-21".into(),
                dated_by: "newest file"
            })
        );
    }

    #[test]
    fn offline_the_installed_database_is_used_or_the_snapshot_installed() {
        let dir = TempDir::new("deny-offline").unwrap();
        let db = dir.path().join("advisory-dbs").join(DEFAULT_DB_DIR);
        let snapshot = snapshot_in(dir.path(), "2026-08-21");
        let missing = || Err("no advisory-db snapshot at /x".to_owned());

        // Nothing installed, no snapshot: fail, naming both places.
        let err = prepare_offline_db(&db, missing(), "2026-11-29")
            .unwrap_err()
            .to_string();
        assert!(err.contains(&db.display().to_string()), "{err}");
        assert!(err.contains("no advisory-db snapshot at /x"), "{err}");
        assert!(!db.exists());

        // Nothing installed: the snapshot is installed as a repository dated as the snapshot.
        let used = prepare_offline_db(&db, Ok(snapshot.clone()), "2026-11-29").unwrap();
        assert!(used.contains("snapshot"), "{used}");
        assert!(used.contains("dated 2026-08-21, 100 days old"), "{used}");
        assert_eq!(
            installed_db(&db),
            Some(InstalledDb {
                date: "2026-08-21".into(),
                dated_by: "last commit"
            })
        );

        // Installed (now without a snapshot): used as it is, its age said.
        let used = prepare_offline_db(&db, missing(), "2026-11-29").unwrap();
        assert!(used.contains("already installed"), "{used}");
        assert!(
            used.contains("last commit 2026-08-21, 100 days old"),
            "{used}"
        );

        // A newer snapshot replaces an older installed database; an older one does not.
        let newer = snapshot_in(&dir.path().join("newer"), "2026-10-01");
        let used = prepare_offline_db(&db, Ok(newer), "2026-11-29").unwrap();
        assert!(used.contains("dated 2026-10-01"), "{used}");
        let used = prepare_offline_db(&db, Ok(snapshot), "2026-11-29").unwrap();
        assert!(used.contains("last commit 2026-10-01"), "{used}");
        assert!(db.join("crates").join("rsa").is_dir());
    }
}
