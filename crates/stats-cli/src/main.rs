//! The `stats` binary.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use stats_cli::cli::Cli;

// The import's parsers and the buffer allocate a few small values per event: glibc's malloc
// took about a third of `stats import`'s time, mimalloc much less.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(stats_cli::run(cli)) {
        Ok(text) => {
            if !text.is_empty() {
                let mut stdout = std::io::stdout().lock();
                let ended = if text.ends_with('\n') { "" } else { "\n" };
                // A closed pipe (`stats values ... | head`) is not an error.
                let _ = write!(stdout, "{text}{ended}");
            }
            ExitCode::SUCCESS
        }
        Err(e @ stats_cli::CliError::Negative(_)) => {
            eprintln!("{e}");
            e.exit_code()
        }
        Err(e) => {
            eprintln!("error: {e}");
            e.exit_code()
        }
    }
}
