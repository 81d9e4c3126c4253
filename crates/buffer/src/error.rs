//! The buffer's own errors, and how they map into [`stats_core::Error`].

use std::time::Duration;

/// Everything a [`KeyedBuffer`](crate::KeyedBuffer) or its [`Options`](crate::Options) can
/// refuse.
///
/// The buffer is generic (it knows nothing of metrics), so it has its own small error type;
/// `From<BufferError> for stats_core::Error` lets the layers above use `?`:
///
/// | `BufferError` | `stats_core::Error` | retryable |
/// |---|---|---|
/// | [`InvalidOption`](BufferError::InvalidOption) | `InvalidInput` | no |
/// | [`NoRuntime`](BufferError::NoRuntime) | `InvalidInput` | no |
/// | [`Full`](BufferError::Full) | `Backend { store: "buffer", retryable: true }` | yes |
/// | [`ShutDown`](BufferError::ShutDown) | `Backend { store: "buffer", retryable: false }` | no |
///
/// ```
/// use stats_buffer::{BufferError, Options};
///
/// let err = Options::new().max_size(0).unwrap_err();
/// assert!(matches!(err, BufferError::InvalidOption { option: "max_size", .. }));
/// assert_eq!(err.to_string(), "invalid buffer option max_size: must be at least 1");
///
/// let core: stats_core::Error = BufferError::Full { max_pending: 10 }.into();
/// assert!(core.is_retryable());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BufferError {
    /// An option is out of its domain; `option` names the setting.
    #[error("invalid buffer option {option}: {reason}")]
    InvalidOption {
        /// The setting, as its builder method is called (`partitions`, `max_size`, ...).
        option: &'static str,
        /// What is wrong with the value given.
        reason: String,
    },

    /// The buffer was built outside a tokio runtime (it spawns one flush task per partition).
    #[error("a keyed buffer must be created inside a tokio runtime")]
    NoRuntime,

    /// The memory bound is reached and the policy is [`Overflow::Reject`](crate::Overflow::Reject):
    /// the item was not inserted (nothing else was dropped). Inserting later may succeed.
    #[error("buffer full: {max_pending} items are pending")]
    Full {
        /// The bound ([`Options::max_pending`](crate::Options::max_pending)).
        max_pending: usize,
    },

    /// [`KeyedBuffer::shutdown`](crate::KeyedBuffer::shutdown) was called: the item was not
    /// inserted.
    #[error("buffer is shut down")]
    ShutDown,
}

impl BufferError {
    pub(crate) fn option(option: &'static str, reason: impl Into<String>) -> Self {
        BufferError::InvalidOption {
            option,
            reason: reason.into(),
        }
    }

    pub(crate) fn at_least(option: &'static str, min: Duration, given: Duration) -> Self {
        Self::option(option, format!("must be at least {min:?}, got {given:?}"))
    }
}

impl From<BufferError> for stats_core::Error {
    fn from(err: BufferError) -> Self {
        match err {
            BufferError::InvalidOption { .. } | BufferError::NoRuntime => {
                stats_core::Error::InvalidInput(err.to_string())
            }
            BufferError::Full { .. } => stats_core::Error::backend("buffer", true, err),
            BufferError::ShutDown => stats_core::Error::backend("buffer", false, err),
        }
    }
}
