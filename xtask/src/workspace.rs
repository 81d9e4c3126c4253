//! Where things are (workspace root, target directory) and how child commands run.

use std::{
    env,
    ffi::OsString,
    path::{Path, PathBuf},
    process::Command,
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{Result, interrupt};

/// The workspace root: the parent of this crate's manifest directory.
pub(crate) fn root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .expect("the xtask crate lives one level below the workspace root")
        .to_path_buf()
}

/// The cargo target directory: `CARGO_TARGET_DIR` if set (relative to the workspace root,
/// where the child cargo commands run), else `<workspace root>/target`.
pub(crate) fn target_dir() -> PathBuf {
    match env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => root().join(dir),
        _ => root().join("target"),
    }
}

/// `$CARGO_HOME`, defaulting to `~/.cargo` as cargo does.
pub(crate) fn cargo_home() -> Result<PathBuf> {
    if let Some(home) = env::var_os("CARGO_HOME").filter(|home| !home.is_empty()) {
        return Ok(root().join(home));
    }
    let home = env::var_os("HOME")
        .or_else(|| env::var_os("USERPROFILE"))
        .filter(|home| !home.is_empty())
        .ok_or("neither CARGO_HOME nor HOME is set: cannot locate the cargo home")?;
    Ok(PathBuf::from(home).join(".cargo"))
}

/// A `cargo` command (the `CARGO` the xtask was started by, else `cargo` from `PATH`) that
/// runs in the workspace root.
pub(crate) fn cargo<I, S>(args: I) -> Command
where
    I: IntoIterator<Item = S>,
    S: Into<OsString>,
{
    let program = env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
    let mut cmd = Command::new(program);
    cmd.args(args.into_iter().map(Into::into));
    cmd.current_dir(root());
    cmd
}

/// Shows a command the way a person would type it, with `cargo` for the cargo binary.
pub(crate) fn display(cmd: &Command) -> String {
    let program = Path::new(cmd.get_program()).file_stem().map_or_else(
        || cmd.get_program().to_string_lossy(),
        |s| s.to_string_lossy(),
    );
    let mut shown = program.into_owned();
    for arg in cmd.get_args() {
        shown.push(' ');
        shown.push_str(&arg.to_string_lossy());
    }
    shown
}

/// Runs `cmd` with inherited stdio; an error names the command and its exit status. After a
/// Ctrl-C (see [`interrupt`]) it fails, whatever the command did.
pub(crate) fn run(cmd: &mut Command) -> Result {
    interrupt::check()?;
    let shown = display(cmd);
    println!("$ {shown}");
    let status = cmd
        .status()
        .map_err(|err| format!("`{shown}` could not be started: {err}"))?;
    interrupt::check()?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})").into())
    }
}

/// `cargo metadata --no-deps --format-version 1`: the workspace's own packages and targets.
pub(crate) fn metadata() -> Result<Value> {
    let mut cmd = cargo(["metadata", "--no-deps", "--format-version", "1"]);
    let output = cmd
        .output()
        .map_err(|err| format!("`cargo metadata` could not be started: {err}"))?;
    if !output.status.success() {
        return Err(format!(
            "`cargo metadata` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        )
        .into());
    }
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// Formats a duration for step timings, e.g. `12.3s` or `2m05s`.
pub(crate) fn elapsed(since: Instant) -> String {
    format_duration(since.elapsed())
}

/// Formats a duration as `12.3s` below a minute and `2m05s` above.
pub(crate) fn format_duration(duration: Duration) -> String {
    let secs = duration.as_secs_f64();
    if secs < 60.0 {
        format!("{secs:.1}s")
    } else {
        let whole = duration.as_secs();
        format!("{}m{:02}s", whole / 60, whole % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn root_holds_the_workspace_manifest() {
        assert!(root().join("Cargo.toml").is_file());
        assert!(root().join("xtask").is_dir());
    }

    #[test]
    fn durations_are_short_and_readable() {
        assert_eq!(format_duration(Duration::from_millis(1234)), "1.2s");
        assert_eq!(format_duration(Duration::from_secs(125)), "2m05s");
    }

    #[test]
    fn commands_are_shown_as_typed() {
        let mut cmd = Command::new("/usr/local/bin/cargo");
        cmd.args(["fmt", "--all"]);
        assert_eq!(display(&cmd), "cargo fmt --all");
    }
}
