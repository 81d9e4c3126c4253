//! `cargo xtask it <backend>`: the integration suites, one function per backend.
//!
//! Adding a backend means a variant in [`Backend`], an entry in [`Backend::EACH`], an arm in
//! [`run`] and a function next to [`atomics`] that provides its server and runs its suites.

use clap::ValueEnum;

use crate::{Result, workspace};

/// A store backend whose suites `cargo xtask it` can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// The in-process lock-free atomics backend (needs no server).
    Atomics,
    /// Every backend listed here, one after the other.
    All,
}

impl Backend {
    /// Every concrete backend, in the order `all` runs them.
    const EACH: &[Backend] = &[Backend::Atomics];

    /// The name used on the command line.
    fn name(self) -> String {
        self.to_possible_value()
            .map_or_else(|| format!("{self:?}"), |value| value.get_name().to_owned())
    }
}

/// Runs the suites of `backend`; for [`Backend::All`] runs every backend, even after one fails,
/// and fails naming the backends that failed.
pub(crate) fn run(backend: Backend) -> Result {
    match backend {
        Backend::Atomics => atomics(),
        Backend::All => {
            let mut failed = Vec::new();
            for &each in Backend::EACH {
                println!("--> it {}", each.name());
                if let Err(err) = run(each) {
                    eprintln!("it {}: {err}", each.name());
                    failed.push(each.name());
                }
            }
            if failed.is_empty() {
                Ok(())
            } else {
                Err(format!("integration suites failed for: {}", failed.join(", ")).into())
            }
        }
    }
}

/// The atomics backend runs in-process, so its suites need no server.
fn atomics() -> Result {
    cargo_test("stats-backend-atomics")?;
    cargo_test("stats-tests")
}

/// `cargo test -p <package> --all-features` with backtraces on.
fn cargo_test(package: &str) -> Result {
    workspace::run(
        workspace::cargo(["test", "-p", package, "--all-features"]).env("RUST_BACKTRACE", "1"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_runs_every_concrete_backend() {
        let concrete: Vec<_> = Backend::value_variants()
            .iter()
            .copied()
            .filter(|backend| *backend != Backend::All)
            .collect();
        assert_eq!(concrete, Backend::EACH);
    }

    #[test]
    fn backends_are_named_in_kebab_case() {
        assert_eq!(Backend::Atomics.name(), "atomics");
        assert_eq!(Backend::from_str("all", false), Ok(Backend::All));
    }
}
