//! `stats serve` (being built).

use crate::cli::{Context, ServeArgs};
use crate::error::{CliError, CliResult};

/// Runs `stats serve`.
///
/// # Errors
/// Always, until it is built.
pub async fn run(_cx: &Context, _args: &ServeArgs) -> CliResult<String> {
    Err(CliError::failed("stats serve is not built yet"))
}
