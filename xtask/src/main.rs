//! Project automation, run as `cargo xtask <command>` (an alias in `.cargo/config.toml`).
//!
//! - `cargo xtask ci`: everything CI checks, in order, stopping at the first failure; the
//!   tests compile once (`cargo test --workspace --all-features`) and run once, against every
//!   backend's servers.
//! - `cargo xtask it <backend|all>`: the integration suites against one backend, or every
//!   test of the workspace against all of them, on throwaway servers unless the environment
//!   names servers to use; built with the same features as CI, so nothing recompiles.
//! - `cargo xtask servers <backend|all>`: starts throwaway servers, prints `export` lines
//!   pointing at them, and stops them when the standard input ends or on Ctrl-C.
//! - `cargo xtask bench <name|all> [-- <criterion args>]`: criterion benches (`atomics`,
//!   `tracker`, `redis`, `sql`, `mongo`, `buffer`) plus a report of each figure against its raw
//!   baseline measured in the same run; `redis`, `sql`, `mongo` and `buffer` run against a
//!   fresh server of their own.
//! - `cargo xtask deny`: `cargo deny check`, falling back to an offline advisory database
//!   snapshot when the database cannot be fetched.

mod bench;
mod ci;
mod deny;
mod interrupt;
mod it;
mod servers;
mod workspace;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// The error type of every task: a message meant for the person reading the terminal.
type Error = Box<dyn std::error::Error + Send + Sync>;

/// The result type of every task.
type Result<T = (), E = Error> = std::result::Result<T, E>;

/// Command line of `cargo xtask`.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    about = "Project automation for the stats workspace"
)]
struct Cli {
    /// The task to run.
    #[command(subcommand)]
    command: Command,
}

/// The tasks `cargo xtask` knows.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run what CI runs: fmt, clippy, every test (unit, integration, doc) once against every
    /// backend's servers, cargo deny.
    Ci,
    /// Run the integration suites of a backend against its servers; `all` runs every test of
    /// the workspace against every backend's servers.
    It {
        /// The backend whose suites to run.
        #[arg(value_enum)]
        backend: it::Backend,
    },
    /// Start throwaway servers for a backend (or all), print `export` lines for them, and stop
    /// them when the standard input ends (Ctrl-D) or on Ctrl-C.
    Servers {
        /// The backend whose servers to start.
        #[arg(value_enum)]
        backend: it::Backend,
    },
    /// Run a criterion bench of the `stats-benches` package and report ours vs raw.
    Bench {
        /// The bench target (a `[[bench]]` of benches/Cargo.toml: atomics, tracker, redis,
        /// sql, mongo, buffer), or `all`. redis, sql, mongo and buffer (Redis) start a fresh
        /// server of their own.
        name: String,
        /// Print the report from the criterion results already in the target directory
        /// instead of running the bench first.
        #[arg(long)]
        no_run: bool,
        /// Extra arguments passed to criterion (after `--`).
        #[arg(last = true)]
        criterion_args: Vec<String>,
    },
    /// Run `cargo deny check`, using the offline advisory-db snapshot if fetching fails.
    Deny,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // These commands start servers, which must be stopped even on Ctrl-C (a bench that is
    // run, not only reported, may start one).
    let starts_servers = matches!(
        cli.command,
        Command::Ci
            | Command::It { .. }
            | Command::Servers { .. }
            | Command::Bench { no_run: false, .. }
    );
    if let Err(err) = starts_servers.then(interrupt::install).transpose() {
        eprintln!("error: {err}");
        return ExitCode::FAILURE;
    }
    let result = match cli.command {
        Command::Ci => {
            return if ci::run() {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            };
        }
        Command::It { backend } => it::run(backend),
        Command::Servers { backend } => servers::serve(backend),
        Command::Bench {
            name,
            no_run,
            criterion_args,
        } => bench::run(&name, no_run, &criterion_args),
        Command::Deny => deny::check(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn servers_takes_a_backend() {
        let cli = Cli::parse_from(["xtask", "servers", "redis-cluster"]);
        assert!(matches!(
            cli.command,
            Command::Servers {
                backend: it::Backend::RedisCluster
            }
        ));
    }

    #[test]
    fn bench_passes_trailing_args_through() {
        let cli = Cli::parse_from(["xtask", "bench", "atomics", "--", "--warm-up-time", "1"]);
        match cli.command {
            Command::Bench {
                name,
                no_run,
                criterion_args,
            } => {
                assert_eq!(name, "atomics");
                assert!(!no_run);
                assert_eq!(criterion_args, ["--warm-up-time", "1"]);
            }
            other => panic!("parsed as {other:?}"),
        }
    }
}
