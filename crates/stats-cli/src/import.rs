//! `stats import` (being built).

use crate::cli::{Context, ImportArgs};
use crate::error::{CliError, CliResult};

/// Runs `stats import`.
///
/// # Errors
/// Always, until it is built.
pub async fn run(_cx: &Context, _args: &ImportArgs) -> CliResult<String> {
    Err(CliError::failed("stats import is not built yet"))
}
