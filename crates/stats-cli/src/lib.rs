//! The `stats` command: application statistics from the shell and over HTTP, on any store by
//! URL, with an embedded SQLite file as the default (no server needed).
//!
//! ```text
//! stats demo                                   # a week of a shop's orders, as a chart
//! stats track orders --values '{"count": 1, "amount": 49.9}'
//! stats values orders --granularity 1d --format json
//! stats --store redis://127.0.0.1 serve --token s3cret
//! ```
//!
//! The library part holds what the binary is made of, so that it can be tested and reused:
//! [`store`] (stores by URL), [`contract`] (the JSON contract of import lines, series and the
//! HTTP API), [`time`] (instants and durations as typed), [`chart`], [`output`], and the
//! commands.

pub mod chart;
pub mod cli;
pub mod commands;
pub mod contract;
pub mod demo;
pub mod error;
pub mod import;
pub mod output;
pub mod serve;
pub mod store;
pub mod time;

pub use error::{CliError, CliResult};

use cli::{Cli, Command};

/// Runs one parsed command line; returns what to print on standard output.
///
/// # Errors
/// The command's [`CliError`].
pub async fn run(cli: Cli) -> CliResult<String> {
    // Options are checked before the store is opened: a bad zone or granularity is reported
    // without waiting for a server.
    cli.global.config()?;
    let cx = cli.global.context().await?;
    let result = match &cli.command {
        Command::Setup => commands::setup(&cx).await,
        Command::Track(args) => commands::track(&cx, args).await,
        Command::Assert(args) => commands::assert(&cx, args).await,
        Command::Values(args) => commands::values(&cx, args).await,
        Command::Metrics(args) => commands::metrics(&cx, args).await,
        Command::Counter(command) => commands::counter(&cx, command).await,
        Command::Throttle(command) => commands::throttle(&cx, command).await,
        Command::Import(args) => import::run(&cx, args).await,
        Command::Demo(args) => demo::run(&cx, args).await,
        Command::Serve(args) => serve::run(&cx, args).await,
    };
    result.map_err(|e| hint_setup(&cx, e))
}

/// A missing table on a store that `stats setup` sets up gets the hint to run it.
fn hint_setup(cx: &cli::Context, error: CliError) -> CliError {
    match error {
        CliError::Failed(message)
            if !cx.stores.kind().sets_up_on_open()
                && (message.contains("does not exist") || message.contains("doesn't exist")) =>
        {
            CliError::Failed(format!(
                "{message} (run `stats setup` once to create the tables)"
            ))
        }
        other => other,
    }
}
