//! Throwaway MongoDB-wire server: mongoeco (PyPI `mongoeco[wire]`), an in-memory server in
//! Python, since MongoDB itself cannot be installed here.
//!
//! The launcher `xtask/mongo/mongoeco_server.py` is embedded in the xtask and written into
//! the server's temporary directory, so the xtask works from any directory. It adapts three
//! details of mongoeco's wire layer that the Rust driver cannot take (its docstring says which
//! and why) and prints `READY <url>` once it listens on the port the system gave it.
//!
//! The interpreter: a CPython >= 3.13 ([`python`] says where it is looked for). When it cannot
//! import `mongoeco[wire]==4.11.0`, the package goes into a virtualenv this xtask owns,
//! `<target dir>/mongoeco-venv`, made once and reused; no system or pyenv interpreter is
//! installed into.

use std::{
    env, fs, io,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::{
    Result,
    servers::{
        MONGO_PYTHON, binaries,
        process::{ServerProcess, TempDir, run_logged, tail, wait_for},
    },
    workspace,
};

/// The launcher, embedded so that it is found whatever the current directory.
const LAUNCHER: &str = include_str!("../../mongo/mongoeco_server.py");

/// The launcher's file name in the server's directory.
const LAUNCHER_NAME: &str = "mongoeco_server.py";

/// The package the server comes from, with the version the launcher's patches were made for.
const MONGOECO: &str = "mongoeco[wire]==4.11.0";

/// The version of [`MONGOECO`].
const MONGOECO_VERSION: &str = "4.11.0";

/// The oldest Python mongoeco supports.
const MIN_PYTHON: (u32, u32) = (3, 13);

/// The interpreters looked for on `PATH`, in this order.
const PATH_PYTHONS: &[&str] = &["python3.13", "python3"];

/// The virtualenv this xtask installs mongoeco into, under the target directory.
const VENV_DIR: &str = "mongoeco-venv";

/// How long `python -m venv` and the pip install may take (the install takes about 10 s when
/// PyPI answers quickly).
const INSTALL_TIMEOUT: Duration = Duration::from_secs(600);

/// What the URL of a started server gets appended: the server is one Python event loop that
/// answers no heartbeat while it runs a long command, and with the driver's default of 10 s
/// a large batch would make the driver abort it ("interrupted due to server monitor timeout").
const CONNECT_TIMEOUT: &str = "connectTimeoutMS=300000";

/// What the launcher prints once it listens, before the URL.
const READY: &str = "READY ";

/// Prints what an interpreter is (six lines: implementation, major and minor version,
/// `sys.executable`, the interpreter file underneath (a virtualenv's base, symlinks resolved),
/// and the mongoeco version or why it cannot be imported). `bson` and `pymongo` come with the
/// `wire` extra and are imported too: mongoeco imports them only when a wire message is
/// encoded.
const PROBE: &str = r#"
import os, sys
base = os.path.realpath(getattr(sys, "_base_executable", None) or sys.executable)
print(sys.implementation.name, *sys.version_info[:2], sys.executable, base, sep="\n")
if sys.version_info >= (3, 13):
    try:
        import importlib.metadata, bson, pymongo, mongoeco.wire
        print(importlib.metadata.version("mongoeco"))
    except Exception as error:
        print("cannot be imported:", repr(error).replace("\n", " "))
else:
    print("not tried")
"#;

/// A Python interpreter as [`probe`] found it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Python {
    /// Its `sys.executable`: an absolute path that works from any directory (a virtualenv's
    /// own `bin/python3`, not the interpreter it links to).
    pub(crate) executable: PathBuf,
    /// `sys.implementation.name`, `cpython` for CPython.
    implementation: String,
    /// Its major and minor version.
    version: (u32, u32),
    /// The interpreter file underneath: the same for a virtualenv and the interpreter it was
    /// made from, and for `python3` and `python3.13` of one installation.
    base: PathBuf,
    /// The installed mongoeco version (`4.11.0`), or why mongoeco cannot be imported.
    mongoeco: String,
}

impl Python {
    /// Whether mongoeco can run on it: CPython >= 3.13.
    fn suitable(&self) -> bool {
        self.implementation == "cpython" && self.version >= MIN_PYTHON
    }

    /// Whether it imports the mongoeco version the launcher was written for.
    fn has_mongoeco(&self) -> bool {
        self.mongoeco == MONGOECO_VERSION
    }

    /// What it is, for messages: `cpython 3.11`.
    fn describe(&self) -> String {
        format!(
            "{} {}.{}",
            self.implementation, self.version.0, self.version.1
        )
    }
}

/// Runs `program` (a path, or a name looked up on `PATH`) with [`PROBE`].
fn probe(program: &Path) -> Result<Python, String> {
    let output = Command::new(program)
        .args(["-c", PROBE])
        .stdin(Stdio::null())
        .output()
        .map_err(|err| format!("cannot be run: {err}"))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        let first = stderr.lines().find(|line| !line.trim().is_empty());
        return Err(format!(
            "failed ({}){}",
            output.status,
            first
                .map(|line| format!(": {}", line.trim()))
                .unwrap_or_default()
        ));
    }
    parse_probe(&String::from_utf8_lossy(&output.stdout))
}

/// The interpreter described by [`PROBE`]'s output.
fn parse_probe(output: &str) -> Result<Python, String> {
    let lines: Vec<&str> = output.lines().map(str::trim).collect();
    let [implementation, major, minor, executable, base, mongoeco] = lines[..] else {
        return Err(format!("printed something unexpected: {output:?}"));
    };
    let number = |text: &str| {
        text.parse::<u32>()
            .map_err(|_| format!("printed the version {major}.{minor}"))
    };
    for path in [executable, base] {
        if !Path::new(path).is_absolute() {
            return Err(format!(
                "does not know its own path (sys.executable is {executable:?})"
            ));
        }
    }
    Ok(Python {
        executable: executable.into(),
        implementation: implementation.to_owned(),
        version: (number(major)?, number(minor)?),
        base: base.into(),
        mongoeco: mongoeco.to_owned(),
    })
}

/// The interpreter that runs the server, with `mongoeco[wire]==4.11.0` importable.
///
/// It is found as follows: `$STATS_MONGO_PYTHON` when set (it must be CPython >= 3.13);
/// else `python3.13` or `python3` on `PATH` when it is CPython >= 3.13; else the newest
/// `<pyenv root>/versions/3.<13 or later>*/bin/python3`, the pyenv root being what `pyenv
/// root` says, `$PYENV_ROOT` or `~/.pyenv`. When it cannot import mongoeco 4.11.0, the
/// virtualenv `<target dir>/mongoeco-venv` made from it (with mongoeco installed by pip, the
/// first time) is used instead.
pub(crate) fn python() -> Result<Python> {
    let base = find_python()?;
    if base.has_mongoeco() {
        return Ok(base);
    }
    venv_with_mongoeco(&base, &workspace::target_dir().join(VENV_DIR))
}

/// A CPython >= 3.13 (see [`python`]), or an error listing what was tried and saying what to
/// install.
fn find_python() -> Result<Python> {
    if let Some(explicit) = env::var_os(MONGO_PYTHON).filter(|value| !value.is_empty()) {
        let shown = Path::new(&explicit).display().to_string();
        let python =
            probe(Path::new(&explicit)).map_err(|why| format!("{MONGO_PYTHON}={shown} {why}"))?;
        if !python.suitable() {
            return Err(format!(
                "{MONGO_PYTHON}={shown} is {}; the MongoDB-wire test server (mongoeco) needs \
                 CPython {}.{} or newer",
                python.describe(),
                MIN_PYTHON.0,
                MIN_PYTHON.1
            )
            .into());
        }
        return Ok(python);
    }
    let mut tried = Vec::new();
    let mut candidates = Vec::new();
    for name in PATH_PYTHONS {
        match binaries::find(&[name]) {
            Some(path) => candidates.push(path),
            None => tried.push(format!("{name}: not on PATH")),
        }
    }
    let roots = pyenv_roots();
    let versions = pyenv_pythons(&roots);
    if versions.is_empty() {
        let shown: Vec<String> = roots
            .iter()
            .map(|root| root.join("versions").display().to_string())
            .collect();
        tried.push(format!(
            "pyenv: no CPython {}.{} or newer in {}",
            MIN_PYTHON.0,
            MIN_PYTHON.1,
            if shown.is_empty() {
                "(no pyenv root)".to_owned()
            } else {
                shown.join(", ")
            }
        ));
    }
    candidates.extend(versions);
    for candidate in candidates {
        match probe(&candidate) {
            Ok(python) if python.suitable() => return Ok(python),
            Ok(python) => tried.push(format!("{}: {}", candidate.display(), python.describe())),
            Err(why) => tried.push(format!("{}: {why}", candidate.display())),
        }
    }
    Err(format!(
        "no CPython {major}.{minor} or newer found for the MongoDB-wire test server \
         (mongoeco); tried {}. Install CPython {major}.{minor} or newer (e.g. `pyenv install \
         {major}.{minor}`, or Debian's `python{major}.{minor}` and `python{major}.{minor}-venv`) \
         or set {MONGO_PYTHON} to one; mongoeco itself is then installed into \
         <target dir>/{VENV_DIR} when missing",
        tried.join("; "),
        major = MIN_PYTHON.0,
        minor = MIN_PYTHON.1,
    )
    .into())
}

/// The pyenv roots that exist: what `pyenv root` says (when pyenv is on `PATH`),
/// `$PYENV_ROOT`, and `~/.pyenv`, without repeats.
fn pyenv_roots() -> Vec<PathBuf> {
    let mut roots = Vec::new();
    if let Some(pyenv) = binaries::find(&["pyenv"]) {
        let said = Command::new(pyenv)
            .arg("root")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|output| output.status.success());
        if let Some(output) = said {
            let root = String::from_utf8_lossy(&output.stdout).trim().to_owned();
            if !root.is_empty() {
                roots.push(PathBuf::from(root));
            }
        }
    }
    roots.extend(
        env::var_os("PYENV_ROOT")
            .filter(|root| !root.is_empty())
            .map(PathBuf::from),
    );
    roots.extend(
        env::var_os("HOME")
            .filter(|home| !home.is_empty())
            .map(|home| PathBuf::from(home).join(".pyenv")),
    );
    let mut unique: Vec<PathBuf> = Vec::new();
    for root in roots {
        let same = fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
        if root.is_dir()
            && !unique
                .iter()
                .any(|seen| fs::canonicalize(seen).unwrap_or_else(|_| seen.clone()) == same)
        {
            unique.push(root);
        }
    }
    unique
}

/// The `bin/python3` of every CPython >= 3.13 installed under the pyenv `roots`, newest first.
fn pyenv_pythons(roots: &[PathBuf]) -> Vec<PathBuf> {
    let mut found: Vec<((u32, u32, u32), PathBuf)> = Vec::new();
    for root in roots {
        let Ok(entries) = fs::read_dir(root.join("versions")) else {
            continue;
        };
        for entry in entries.flatten() {
            let name = entry.file_name();
            let Some(version) = name.to_str().and_then(cpython_version) else {
                continue;
            };
            let python = entry.path().join("bin").join("python3");
            if (version.0, version.1) >= MIN_PYTHON && python.is_file() {
                found.push((version, python));
            }
        }
    }
    found.sort_by_key(|(version, _)| std::cmp::Reverse(*version));
    found.into_iter().map(|(_, python)| python).collect()
}

/// The version of a pyenv directory that holds a plain CPython release: `3.13.0` or `3.13`.
/// Other builds (`3.13.0t` free-threaded, `3.14-dev`, `pypy3.10-7.3`, virtualenvs) are `None`:
/// mongoeco's compiled dependencies may have no wheels for them.
fn cpython_version(name: &str) -> Option<(u32, u32, u32)> {
    let mut parts = name.split('.');
    let mut number = || -> Option<Option<u32>> {
        match parts.next() {
            None => Some(None),
            Some(part) if !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()) => {
                part.parse().ok().map(Some)
            }
            Some(_) => None,
        }
    };
    let major = number()??;
    let minor = number()??;
    let patch = number()?.unwrap_or(0);
    match number()? {
        None => Some((major, minor, patch)),
        Some(_) => None,
    }
}

/// The interpreter of the virtualenv at `dir`, made from `base` and holding mongoeco: reused
/// when it is there, runs on `base`'s interpreter and imports mongoeco 4.11.0; else made anew
/// (in a directory of its own, moved into place when complete, so that an interrupted or a
/// concurrent install leaves no half-made virtualenv at `dir`).
fn venv_with_mongoeco(base: &Python, dir: &Path) -> Result<Python> {
    // One install at a time in this process: the partial directory is named by the process id,
    // so two threads (tests run in parallel) would otherwise build in the same directory.
    static INSTALL: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one = INSTALL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let why = match usable_venv(base, dir) {
        Ok(python) => return Ok(python),
        Err(why) => why,
    };
    let started = Instant::now();
    eprintln!(
        "note: {} cannot import {MONGOECO} ({}); installing it into the virtualenv {} \
         ({why}); this is done once and takes about 10 s",
        base.executable.display(),
        base.mongoeco,
        dir.display(),
    );
    let parent = dir
        .parent()
        .ok_or("the virtualenv has no parent directory")?;
    fs::create_dir_all(parent)
        .map_err(|err| format!("cannot create {}: {err}", parent.display()))?;
    remove_abandoned_installs(parent);
    let pid = std::process::id();
    let partial = PartialVenv(parent.join(format!("{VENV_DIR}{PARTIAL}{pid}")));
    let log = parent.join(format!("{VENV_DIR}{PARTIAL}{pid}.log"));
    remove_dir(&partial.0)?;
    make_venv(base, &partial.0, &log)?;
    let fresh = usable_venv(base, &partial.0).map_err(|why| {
        format!(
            "the virtualenv made in {} is not usable: {why}; see {}",
            partial.0.display(),
            log.display()
        )
    })?;
    eprintln!(
        "installed mongoeco {} in {:.1}s",
        fresh.mongoeco,
        started.elapsed().as_secs_f64()
    );
    // Another xtask may have finished the same install meanwhile: then keep that one.
    if usable_venv(base, dir).is_err() {
        remove_dir(dir)?;
        // A virtualenv may move: its interpreter finds its `pyvenv.cfg` and packages relative
        // to where it is started from (only the activate scripts name the old place).
        fs::rename(&partial.0, dir).map_err(|err| {
            format!(
                "cannot move {} to {}: {err}",
                partial.0.display(),
                dir.display()
            )
        })?;
    }
    let _ = fs::remove_file(&log);
    usable_venv(base, dir).map_err(|why| {
        format!(
            "the virtualenv {} is not usable after the install: {why}",
            dir.display()
        )
        .into()
    })
}

/// What a virtualenv being made is called after: `mongoeco-venv.partial-<pid>`.
const PARTIAL: &str = ".partial-";

/// A virtualenv being made, removed on drop (after a failure, a panic, or its move into place).
struct PartialVenv(PathBuf);

impl Drop for PartialVenv {
    fn drop(&mut self) {
        if let Err(err) = remove_dir(&self.0) {
            eprintln!("warning: {err}");
        }
    }
}

/// Removes what installs by processes that no longer run left in `parent` (killed before they
/// could clean up): their `mongoeco-venv.partial-<pid>` directories and logs.
fn remove_abandoned_installs(parent: &Path) {
    let prefix = format!("{VENV_DIR}{PARTIAL}");
    for entry in fs::read_dir(parent).into_iter().flatten().flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(&prefix))
            .map(|rest| rest.trim_end_matches(".log"))
            .and_then(|pid| pid.parse::<u32>().ok())
        else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let path = entry.path();
            let removed = if path.is_dir() {
                remove_dir(&path)
            } else {
                fs::remove_file(&path).map_err(Into::into)
            };
            if let Err(err) = removed {
                eprintln!("warning: cannot remove {}: {err}", path.display());
            }
        }
    }
}

/// Creates a virtualenv at `dir` from `base` and installs [`MONGOECO`] into it; the output of
/// both steps goes to `log`.
fn make_venv(base: &Python, dir: &Path, log: &Path) -> Result {
    let mut venv = Command::new(&base.executable);
    venv.args(["-m", "venv"]).arg(dir);
    eprintln!("$ {} -m venv {}", base.executable.display(), dir.display());
    run_logged(venv, log, INSTALL_TIMEOUT).map_err(|err| {
        format!(
            "cannot create a virtualenv with {} ({err}); on Debian, install the package \
             python3-venv (or python{}.{}-venv)",
            base.executable.display(),
            base.version.0,
            base.version.1
        )
    })?;
    let python = venv_python(dir);
    let mut pip = Command::new(&python);
    pip.args([
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        MONGOECO,
    ]);
    eprintln!(
        "$ {} -m pip install '{MONGOECO}' (output in {})",
        python.display(),
        log.display()
    );
    run_logged(pip, log, INSTALL_TIMEOUT)
        .map_err(|err| format!("cannot install {MONGOECO} with pip: {err}").into())
}

/// The virtualenv at `dir` when it runs on `base`'s interpreter and imports mongoeco 4.11.0,
/// else why not.
fn usable_venv(base: &Python, dir: &Path) -> Result<Python, String> {
    if !dir.exists() {
        return Err("it does not exist yet".to_owned());
    }
    let python = probe(&venv_python(dir)).map_err(|why| format!("its python {why}"))?;
    if python.base != base.base {
        Err(format!("it runs on {}", python.base.display()))
    } else if !python.has_mongoeco() {
        Err(format!("mongoeco there: {}", python.mongoeco))
    } else {
        Ok(python)
    }
}

/// The interpreter of the virtualenv at `dir`.
fn venv_python(dir: &Path) -> PathBuf {
    dir.join("bin").join("python3")
}

/// Removes the directory `path` with its contents, if it exists.
fn remove_dir(path: &Path) -> Result {
    match fs::remove_dir_all(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(format!("cannot remove {}: {err}", path.display()).into()),
    }
}

/// The launcher written to disk, in a temporary directory of its own (removed on drop).
#[derive(Debug)]
pub(crate) struct Launcher {
    /// The script.
    path: PathBuf,
    /// Its directory, which also holds the log of a server started from it.
    dir: TempDir,
}

impl Launcher {
    /// Writes the embedded launcher into a fresh temporary directory.
    pub(crate) fn write() -> Result<Self> {
        let dir = TempDir::new("mongo")?;
        let path = dir.path().join(LAUNCHER_NAME);
        fs::write(&path, LAUNCHER)
            .map_err(|err| format!("cannot write {}: {err}", path.display()))?;
        Ok(Self { path, dir })
    }

    /// The script's absolute path.
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }
}

/// A MongoDB-wire server (mongoeco with the launcher's patches) on a free loopback port picked
/// by the system, in memory, its launcher and log in a temporary directory; stopped (and the
/// directory removed) on drop.
#[derive(Debug)]
pub(crate) struct MongoServer {
    /// The server (dropped first: stopped before its directory is removed).
    _process: ServerProcess,
    /// The URL it printed when ready, with [`CONNECT_TIMEOUT`].
    url: String,
    /// Its launcher and directory.
    launcher: Launcher,
}

impl MongoServer {
    /// Writes the launcher, starts it with `python` (which must import mongoeco, see
    /// [`python`]) on 127.0.0.1 with port 0, and waits for its `READY` line; the server's
    /// output is in the error when it exits or stays silent too long.
    pub(crate) fn start(python: &Python) -> Result<Self> {
        let launcher = Launcher::write()?;
        let dir = launcher.dir.path();
        let log = dir.join("mongoeco.log");
        let mut cmd = ServerProcess::command(&python.executable);
        // Port 0: the server binds a free port itself, so no other process can take it
        // between the choice and the bind, and it is never MongoDB's 27017.
        cmd.arg(launcher.path())
            .args(["--host", "127.0.0.1", "--port", "0"])
            // Unbuffered: the READY line and any error reach the log at once.
            .env("PYTHONUNBUFFERED", "1")
            .current_dir(dir);
        let name = "the MongoDB-wire server (mongoeco)".to_owned();
        let mut process = ServerProcess::spawn(name, cmd, &log, "TERM")?;
        let ready = wait_for("its READY line", &mut [&mut process], || {
            ready_url(&tail(&log, 200)).ok_or_else(|| "not printed yet".to_owned())
        })?;
        Ok(Self {
            _process: process,
            url: with_connect_timeout(&ready),
            launcher,
        })
    }

    /// Its URL: `mongodb://127.0.0.1:<port>/?directConnection=true&connectTimeoutMS=300000`.
    pub(crate) fn url(&self) -> &str {
        &self.url
    }

    /// The launcher it was started from (a test may start more servers with it).
    pub(crate) fn launcher(&self) -> &Path {
        self.launcher.path()
    }
}

/// The URL in the launcher's `READY mongodb://...` line, if `log` has one.
fn ready_url(log: &str) -> Option<String> {
    log.lines()
        .filter_map(|line| line.trim().strip_prefix(READY))
        .find(|url| url.starts_with("mongodb://"))
        .map(str::to_owned)
}

/// `url` with [`CONNECT_TIMEOUT`] added to its query.
fn with_connect_timeout(url: &str) -> String {
    let separator = if url.contains('?') { '&' } else { '?' };
    format!("{url}{separator}{CONNECT_TIMEOUT}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probe_output_is_parsed() {
        let python =
            parse_probe("cpython\n3\n13\n/v/bin/python3\n/opt/py/bin/python3.13\n4.11.0\n")
                .unwrap();
        assert_eq!(python.executable, Path::new("/v/bin/python3"));
        assert_eq!(python.base, Path::new("/opt/py/bin/python3.13"));
        assert!(python.suitable());
        assert!(python.has_mongoeco());
        let old = parse_probe("cpython\n3\n11\n/usr/bin/python3\n/p\nnot tried\n").unwrap();
        assert!(!old.suitable());
        assert!(!old.has_mongoeco());
        assert_eq!(old.describe(), "cpython 3.11");
        let pypy = parse_probe("pypy\n3\n13\n/usr/bin/pypy3\n/p\nnot tried\n").unwrap();
        assert!(!pypy.suitable());
        let other = parse_probe("cpython\n3\n14\n/p\n/p\ncannot be imported: X\n").unwrap();
        assert!(other.suitable() && !other.has_mongoeco());
        assert!(parse_probe("cpython\n3\n13\n\n/p\n4.11.0\n").is_err());
        assert!(parse_probe("cpython\n3\n13\nrelative/python\n/p\n4.11.0\n").is_err());
        assert!(parse_probe("cpython\n3\n13\n/p\n\n4.11.0\n").is_err());
        assert!(parse_probe("cpython\n3\n13\n/p\n4.11.0\n").is_err());
        assert!(parse_probe("cpython\nthree\n13\n/p\n/p\n4.11.0\n").is_err());
    }

    #[test]
    fn only_plain_cpython_releases_count_in_pyenv() {
        assert_eq!(cpython_version("3.13.0"), Some((3, 13, 0)));
        assert_eq!(cpython_version("3.14"), Some((3, 14, 0)));
        assert_eq!(cpython_version("3.13.0t"), None);
        assert_eq!(cpython_version("3.14-dev"), None);
        assert_eq!(cpython_version("pypy3.10-7.3.17"), None);
        assert_eq!(cpython_version("3.13.0.1"), None);
        assert_eq!(cpython_version("myenv"), None);
        assert_eq!(cpython_version("3"), None);
    }

    #[test]
    fn the_newest_pyenv_python_comes_first() {
        let root = TempDir::new("test").unwrap();
        for version in ["3.12.1", "3.13.0", "3.13.10", "3.14.0t", "3.9.18"] {
            let bin = root.path().join("versions").join(version).join("bin");
            fs::create_dir_all(&bin).unwrap();
            fs::write(bin.join("python3"), "").unwrap();
        }
        // A version directory without an interpreter does not count.
        fs::create_dir_all(root.path().join("versions/3.15.0")).unwrap();
        let found = pyenv_pythons(&[root.path().to_path_buf()]);
        let names: Vec<String> = found
            .iter()
            .map(|path| {
                path.strip_prefix(root.path())
                    .unwrap()
                    .display()
                    .to_string()
            })
            .collect();
        assert_eq!(
            names,
            [
                "versions/3.13.10/bin/python3",
                "versions/3.13.0/bin/python3"
            ]
        );
    }

    #[test]
    fn the_ready_line_gives_the_url() {
        let log = "warning: something\nREADY mongodb://127.0.0.1:40123/?directConnection=true\n";
        let url = ready_url(log).unwrap();
        assert_eq!(url, "mongodb://127.0.0.1:40123/?directConnection=true");
        assert_eq!(
            with_connect_timeout(&url),
            "mongodb://127.0.0.1:40123/?directConnection=true&connectTimeoutMS=300000"
        );
        assert_eq!(
            with_connect_timeout("mongodb://h:1/"),
            "mongodb://h:1/?connectTimeoutMS=300000"
        );
        assert_eq!(ready_url("Traceback...\nOSError: x\n"), None);
        assert_eq!(ready_url("READY soon\n"), None);
    }

    #[test]
    fn the_embedded_launcher_is_the_one_in_the_repository() {
        let on_disk = workspace::root().join("xtask/mongo").join(LAUNCHER_NAME);
        assert_eq!(fs::read_to_string(on_disk).unwrap(), LAUNCHER);
    }

    #[test]
    fn a_python_without_mongoeco_is_told_apart() {
        let base = python().unwrap();
        let dir = TempDir::new("test").unwrap();
        let bare = dir.path().join("bare");
        let status = Command::new(&base.executable)
            .args(["-m", "venv", "--without-pip"])
            .arg(&bare)
            .status()
            .unwrap();
        assert!(status.success());
        let python = probe(&venv_python(&bare)).unwrap();
        assert!(python.suitable());
        assert!(!python.has_mongoeco(), "{python:?}");
        assert!(
            python.mongoeco.starts_with("cannot be imported"),
            "{python:?}"
        );
        assert_eq!(python.executable, venv_python(&bare));
        // The same interpreter underneath, whatever the way to it.
        assert_eq!(python.base, base.base);
        assert_eq!(
            usable_venv(&base, &bare).unwrap_err(),
            "mongoeco there: cannot be imported: ModuleNotFoundError(\"No module named 'bson'\")"
        );
        let other = Python {
            base: "/elsewhere/python3".into(),
            ..base.clone()
        };
        assert_eq!(
            usable_venv(&other, &bare).unwrap_err(),
            format!("it runs on {}", base.base.display())
        );
        assert_eq!(
            usable_venv(&base, &dir.path().join("none")).unwrap_err(),
            "it does not exist yet"
        );
    }
}
