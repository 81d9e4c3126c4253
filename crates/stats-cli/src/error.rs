//! The command's errors and exit codes.

use std::fmt;
use std::process::ExitCode;

/// What went wrong, with the exit code it maps to.
///
/// | code | meaning |
/// |---|---|
/// | 0 | done |
/// | 1 | the store or the machine failed (unreachable server, I/O error, a refused write) |
/// | 2 | bad input: a bad option, key, value, time, URL or JSON line (nothing was written) |
/// | 3 | a negative answer: a throttle already held, a compare-and-swap that did not swap, a counter that does not exist |
///
/// ```
/// use stats_cli::CliError;
/// // A store error the library raised before writing anything is bad input.
/// let refused: CliError = stats::Error::InvalidInput("bad".into()).into();
/// assert_eq!(refused.code(), 2);
/// assert_eq!(CliError::Negative("held".into()).code(), 3);
/// assert_eq!(CliError::failed("cannot reach redis").code(), 1);
/// ```
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The input was refused before anything was written.
    #[error("{0}")]
    Input(String),
    /// A store or I/O failure.
    #[error("{0}")]
    Failed(String),
    /// A negative answer (the message says which).
    #[error("{0}")]
    Negative(String),
}

impl CliError {
    /// Bad input, naming it.
    pub fn input(message: impl fmt::Display) -> Self {
        CliError::Input(message.to_string())
    }

    /// A failure, with what was being done.
    pub fn failed(message: impl fmt::Display) -> Self {
        CliError::Failed(message.to_string())
    }

    /// The process exit code (see the table above).
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code())
    }

    /// The exit code as a number.
    pub fn code(&self) -> u8 {
        match self {
            CliError::Failed(_) => 1,
            CliError::Input(_) => 2,
            CliError::Negative(_) => 3,
        }
    }
}

impl From<stats::Error> for CliError {
    /// A store error: bad input when the library refused the input (nothing written), a
    /// failure otherwise.
    fn from(error: stats::Error) -> Self {
        use stats::Error as E;
        match error {
            E::InvalidName { .. }
            | E::InvalidValue { .. }
            | E::InvalidGranularity { .. }
            | E::InvalidInput(_)
            | E::InvalidExpression { .. }
            | E::PathConflict { .. }
            | E::Overflow { .. } => CliError::Input(error.to_string()),
            E::NotFound(_) => CliError::Negative(error.to_string()),
            other => CliError::Failed(other.to_string()),
        }
    }
}

impl From<std::io::Error> for CliError {
    fn from(error: std::io::Error) -> Self {
        CliError::Failed(error.to_string())
    }
}

/// The result of a command.
pub type CliResult<T = ()> = Result<T, CliError>;
