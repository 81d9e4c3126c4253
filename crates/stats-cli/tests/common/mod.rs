//! What the end-to-end suites share: the `stats` binary run as a process against one store,
//! isolated from other tests by its own directory and name prefix.
#![allow(dead_code, unreachable_pub)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The binary under test.
pub const BIN: &str = env!("CARGO_BIN_EXE_stats");

/// A fresh name for tables, keys and collections ([`stats_core::testkit::unique`] with `_` for
/// `-`): lower-case letters, digits and `_`, so that every store takes it as a prefix.
pub fn unique(label: &str) -> String {
    stats_core::testkit::unique(label).replace('-', "_")
}

/// One store for one test: the URL, a prefix, and a working directory of its own.
pub struct Env {
    /// `--store`.
    pub store: String,
    /// `--prefix` (None for `memory:` and the default SQLite file).
    pub prefix: Option<String>,
    dir: tempfile::TempDir,
}

/// What a run printed and how it ended.
#[derive(Debug)]
pub struct Run {
    /// The exit code (None when killed by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Run {
    /// Asserts exit code 0; returns standard output.
    #[track_caller]
    pub fn ok(&self) -> &str {
        assert_eq!(self.code, Some(0), "expected success: {self:#?}");
        &self.stdout
    }

    /// Asserts exit code `code` and a message on standard error containing `needle`.
    #[track_caller]
    pub fn fails(&self, code: i32, needle: &str) -> &str {
        assert_eq!(
            self.code,
            Some(code),
            "expected exit code {code}: {self:#?}"
        );
        assert!(
            self.stderr.contains(needle),
            "expected {needle:?} on stderr: {self:#?}"
        );
        &self.stderr
    }
}

impl From<Output> for Run {
    fn from(out: Output) -> Self {
        Run {
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Env {
    /// A SQLite file in a fresh directory (the default store's kind).
    pub fn sqlite() -> Env {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let store = format!("sqlite://{}", dir.path().join("stats.db").display());
        Env {
            store,
            prefix: None,
            dir,
        }
    }

    /// The default store: no `--store` at all, so `sqlite://stats.db` in the working
    /// directory (a fresh one).
    pub fn default_store() -> Env {
        let dir = tempfile::tempdir().expect("a temporary directory");
        Env {
            store: String::new(),
            prefix: None,
            dir,
        }
    }

    /// The Redis of `STATS_TEST_REDIS_URL` (set by `cargo xtask it redis`), under a fresh key
    /// prefix.
    pub fn redis() -> Env {
        let url = std::env::var("STATS_TEST_REDIS_URL").expect(
            "STATS_TEST_REDIS_URL is not set: run this suite with `cargo xtask it redis`, which \
             starts a redis-server",
        );
        Env::url(&url, Some(unique("cli")))
    }

    /// Any store URL, with an optional prefix.
    pub fn url(url: &str, prefix: Option<String>) -> Env {
        Env {
            store: url.to_owned(),
            prefix,
            dir: tempfile::tempdir().expect("a temporary directory"),
        }
    }

    /// The working directory of every run.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A file path in the working directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The command with this store: no `STATS_*` variable from the caller's environment, the
    /// working directory of this store, standard input closed.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(BIN);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("STATS_") {
                cmd.env_remove(name);
            }
        }
        if !self.store.is_empty() {
            cmd.env("STATS_STORE", &self.store);
        }
        if let Some(prefix) = &self.prefix {
            cmd.env("STATS_PREFIX", prefix);
        }
        cmd.current_dir(self.dir.path())
            .stdin(Stdio::null())
            .env("COLUMNS", "100");
        cmd
    }

    /// Runs `stats <args>` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        self.command()
            .args(args)
            .output()
            .expect("the stats binary runs")
            .into()
    }

    /// Runs `stats <args>` with `input` on standard input.
    pub fn run_with_input(&self, args: &[&str], input: &[u8]) -> Run {
        use std::io::Write;
        let mut child = self.spawn(args);
        let mut stdin = child.stdin.take().expect("stdin is piped");
        let input = input.to_vec();
        let writer = std::thread::spawn(move || {
            // The command may stop reading early (a fatal bad line): a broken pipe is fine.
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("the stats binary runs");
        writer.join().expect("the writer thread");
        out.into()
    }

    /// Starts `stats <args>` with standard input, output and error piped.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the stats binary starts")
    }

    /// `stats values KEY ... --format json`, parsed.
    pub fn values_json(&self, key: &str, extra: &[&str]) -> serde_json::Value {
        let mut args = vec!["values", key, "--format", "json"];
        args.extend_from_slice(extra);
        let run = self.run(&args);
        serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:#?}"))
    }
}
