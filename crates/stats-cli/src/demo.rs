//! `stats demo` (being built).

use crate::cli::{Context, DemoArgs};
use crate::error::{CliError, CliResult};

/// Runs `stats demo`.
///
/// # Errors
/// Always, until it is built.
pub async fn run(_cx: &Context, _args: &DemoArgs) -> CliResult<String> {
    Err(CliError::failed("stats demo is not built yet"))
}
