//! Ctrl-C, SIGTERM and SIGHUP while throwaway servers run.
//!
//! The servers run in process groups of their own, so a Ctrl-C at the terminal reaches the
//! xtask and the cargo it runs but not them: the xtask has to stop them itself. After
//! [`install`], the first such signal only sets a flag: the child that was running (which got
//! the Ctrl-C too) ends, the waits in [`crate::servers`] and the loops of `it all` and `ci`
//! see [`requested`] and give up, and the servers are stopped on drop as after any failure.
//! A second signal ends the xtask at once (exit code 1), leaving cleanup to the servers'
//! parent-death signal (see [`crate::servers`]).

use std::sync::{
    Arc, OnceLock,
    atomic::{AtomicBool, Ordering},
};

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};

use crate::Result;

/// Set by the first signal after [`install`].
static FLAG: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Turns SIGINT, SIGTERM and SIGHUP into a flag (a second one exits at once). Idempotent.
pub(crate) fn install() -> Result {
    if FLAG.get().is_some() {
        return Ok(());
    }
    let flag = FLAG.get_or_init(|| Arc::new(AtomicBool::new(false)));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // Registered first, so a signal arriving while the flag is already set exits.
        signal_hook::flag::register_conditional_shutdown(signal, 1, Arc::clone(flag))
            .map_err(|err| format!("cannot handle signal {signal}: {err}"))?;
        signal_hook::flag::register(signal, Arc::clone(flag))
            .map_err(|err| format!("cannot handle signal {signal}: {err}"))?;
    }
    Ok(())
}

/// Whether a stop was requested by a signal since [`install`].
pub(crate) fn requested() -> bool {
    FLAG.get().is_some_and(|flag| flag.load(Ordering::Relaxed))
}

/// An error if a stop was requested, to end a sequence of steps early.
pub(crate) fn check() -> Result {
    if requested() {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}
