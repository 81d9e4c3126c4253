//! Finding the server binaries, installing their Debian packages where they are missing and
//! the rights allow, and the unprivileged account PostgreSQL runs as.

use std::{
    env, fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
    sync::atomic::{AtomicBool, Ordering},
};

use crate::{Result, workspace};

/// Directories searched after `PATH`: a CI environment's `PATH` may lack the `sbin` ones,
/// where Debian puts `mariadbd`.
const EXTRA_DIRS: &[&str] = &[
    "/usr/local/sbin",
    "/usr/local/bin",
    "/usr/sbin",
    "/usr/bin",
    "/sbin",
    "/bin",
];

/// Where Debian's `postgresql-<version>` packages put their binaries, one directory per version.
const POSTGRES_LIB_DIR: &str = "/usr/lib/postgresql";

/// The first of `names` found as an executable file on `PATH` or in [`EXTRA_DIRS`].
pub(crate) fn find(names: &[&str]) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    let dirs: Vec<PathBuf> = env::split_paths(&path)
        .chain(EXTRA_DIRS.iter().map(PathBuf::from))
        .collect();
    names.iter().find_map(|name| {
        dirs.iter()
            .map(|dir| dir.join(name))
            .find(|p| executable(p))
    })
}

/// The first of `names` found (see [`find`]); where none is, installs the Debian `package`
/// (as root) and looks again, or fails naming the package.
pub(crate) fn require(names: &[&str], package: &str) -> Result<PathBuf> {
    if let Some(found) = find(names) {
        return Ok(found);
    }
    install(package, &names.join(" or "))?;
    find(names).ok_or_else(|| {
        format!(
            "`{}` is still missing after installing the Debian package `{package}`",
            names.join("` or `")
        )
        .into()
    })
}

/// The directory holding PostgreSQL's server binaries (`initdb`, `postgres`, `pg_isready`,
/// `createdb`): the highest version under `/usr/lib/postgresql/*/bin`, else the directory of
/// the `initdb` found on `PATH` (following symlinks); installs `postgresql` where neither is.
pub(crate) fn postgres_bin_dir() -> Result<PathBuf> {
    /// The directory if PostgreSQL is found.
    fn found() -> Option<PathBuf> {
        let versions = fs::read_dir(POSTGRES_LIB_DIR)
            .into_iter()
            .flatten()
            .flatten()
            .map(|entry| entry.path().join("bin"));
        let debian = highest_version(versions.filter(|dir| is_postgres_bin_dir(dir)).collect());
        debian.or_else(|| {
            let initdb = fs::canonicalize(find(&["initdb"])?).ok()?;
            let dir = initdb.parent()?.to_path_buf();
            is_postgres_bin_dir(&dir).then_some(dir)
        })
    }
    if let Some(dir) = found() {
        return Ok(dir);
    }
    install("postgresql", "initdb and postgres")?;
    found().ok_or_else(|| {
        format!(
            "PostgreSQL's binaries are still missing after installing the Debian package \
             `postgresql` (looked in {POSTGRES_LIB_DIR}/*/bin and on PATH)"
        )
        .into()
    })
}

/// Whether `dir` has every PostgreSQL binary the fixture runs, and `pg_ctl`, which the
/// buffer's outage test runs.
fn is_postgres_bin_dir(dir: &Path) -> bool {
    ["initdb", "postgres", "pg_isready", "createdb", "pg_ctl"]
        .iter()
        .all(|name| executable(&dir.join(name)))
}

/// The directory among `dirs` (`.../<version>/bin`) with the highest version.
fn highest_version(dirs: Vec<PathBuf>) -> Option<PathBuf> {
    /// The version of `.../<version>/bin` as numbers, `15` or `9.6`.
    fn version(dir: &Path) -> Vec<u64> {
        let name = dir
            .parent()
            .and_then(Path::file_name)
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default();
        name.split('.')
            .map(|part| part.parse().unwrap_or(0))
            .collect()
    }
    dirs.into_iter().max_by_key(|dir| version(dir))
}

/// Whether `path` is a file with an execute bit set.
fn executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
}

/// Whether this process runs as root (the owner of `/proc/self` is the effective user).
pub(crate) fn is_root() -> bool {
    /// `id -u` where `/proc` is missing.
    fn id_u() -> Option<String> {
        let output = Command::new("id").arg("-u").output().ok()?;
        Some(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    }
    match fs::metadata("/proc/self") {
        Ok(meta) => meta.uid() == 0,
        Err(_) => id_u().is_some_and(|uid| uid == "0"),
    }
}

/// Installs the Debian `package` that provides `what` with apt-get (after one `apt-get
/// update` per run), or fails with a message naming the package when this is not root or
/// apt-get is missing or fails.
fn install(package: &str, what: &str) -> Result {
    /// Whether `apt-get update` ran in this process.
    static UPDATED: AtomicBool = AtomicBool::new(false);
    let missing = format!("`{what}` was not found (install the Debian package `{package}`)");
    if !is_root() {
        return Err(format!("{missing}; not installing it: this is not root").into());
    }
    let Some(apt_get) = find(&["apt-get"]) else {
        return Err(format!("{missing}; not installing it: apt-get is not available").into());
    };
    eprintln!("note: {missing}; installing it with apt-get");
    let apt = |args: &[&str]| {
        let mut cmd = Command::new(&apt_get);
        cmd.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        workspace::run(&mut cmd).map_err(|err| format!("{missing}; installing it failed: {err}"))
    };
    if !UPDATED.swap(true, Ordering::Relaxed) {
        apt(&["update"])?;
    }
    apt(&["install", "-y", "--no-install-recommends", package])?;
    Ok(())
}

/// A local account a server runs as.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Account {
    /// The login name.
    pub(crate) name: String,
    /// Its user id.
    pub(crate) uid: u32,
    /// Its primary group id.
    pub(crate) gid: u32,
}

/// The account PostgreSQL runs as, which refuses to run as root: `None` (the current user)
/// unless this is root; else the `postgres` system user (made by Debian's package) if it
/// exists, else a system user `stats-test` created now.
pub(crate) fn postgres_account() -> Result<Option<Account>> {
    if !is_root() {
        return Ok(None);
    }
    for name in ["postgres", "stats-test"] {
        if let Some(account) = account(name)? {
            return Ok(Some(account));
        }
    }
    let useradd = find(&["useradd"])
        .ok_or("PostgreSQL cannot run as root and `useradd` is missing to create a user for it")?;
    let mut cmd = Command::new(useradd);
    cmd.args([
        "--system",
        "--no-create-home",
        "--user-group",
        "--shell",
        "/usr/sbin/nologin",
        "stats-test",
    ]);
    workspace::run(&mut cmd)
        .map_err(|err| format!("cannot create the user PostgreSQL runs as: {err}"))?;
    match account("stats-test")? {
        Some(account) => Ok(Some(account)),
        None => Err("the user `stats-test` was created but is not found".into()),
    }
}

/// The account called `name`, from `getent passwd`, if it exists.
fn account(name: &str) -> Result<Option<Account>> {
    let output = Command::new("getent")
        .args(["passwd", name])
        .output()
        .map_err(|err| format!("`getent passwd {name}` could not be started: {err}"))?;
    // getent exits 2 for a name it does not know.
    if !output.status.success() {
        return Ok(None);
    }
    Ok(parse_passwd(&String::from_utf8_lossy(&output.stdout)))
}

/// The account on a `passwd` line (`name:x:uid:gid:gecos:home:shell`).
fn parse_passwd(line: &str) -> Option<Account> {
    let mut fields = line.trim().split(':');
    let name = fields.next()?.to_owned();
    let _password = fields.next()?;
    let uid = fields.next()?.parse().ok()?;
    let gid = fields.next()?.parse().ok()?;
    Some(Account { name, uid, gid })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_postgres_version_wins() {
        let dirs = ["9.6", "15", "13", "16"]
            .iter()
            .map(|version| Path::new(POSTGRES_LIB_DIR).join(version).join("bin"))
            .collect();
        assert_eq!(
            highest_version(dirs),
            Some(PathBuf::from("/usr/lib/postgresql/16/bin"))
        );
        assert_eq!(highest_version(Vec::new()), None);
    }

    #[test]
    fn passwd_lines_are_parsed() {
        assert_eq!(
            parse_passwd(
                "postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n"
            ),
            Some(Account {
                name: "postgres".into(),
                uid: 101,
                gid: 104
            })
        );
        assert_eq!(parse_passwd("broken:x:abc"), None);
        assert_eq!(parse_passwd(""), None);
    }

    #[test]
    fn binaries_are_found_on_path_and_in_the_standard_dirs() {
        assert!(find(&["sh"]).is_some());
        assert_eq!(find(&["no-such-binary-here"]), None);
        assert_eq!(find(&["no-such-binary-here", "sh"]), find(&["sh"]));
    }

    #[test]
    fn root_is_told_from_the_process_owner() {
        let uid = Command::new("id").arg("-u").output().unwrap();
        assert_eq!(
            is_root(),
            String::from_utf8_lossy(&uid.stdout).trim() == "0"
        );
    }
}
