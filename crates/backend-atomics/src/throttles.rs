//! Throttle keys with a TTL.

use std::collections::HashMap;
use std::fmt;
use std::time::{Duration, Instant};

use foldhash::fast::RandomState;
use parking_lot::Mutex;
use stats_core::Result;
use stats_core::store::check_throttle;

/// Expired keys are swept once the map has grown past this many keys since the last sweep.
const SWEEP_AFTER: usize = 1024;

struct State {
    held_until: HashMap<Box<str>, Instant, RandomState>,
    sweep_at: usize,
}

/// The throttle keys of an [`AtomicsStore`](crate::AtomicsStore), with a synchronous
/// [`Throttles::try_acquire`].
///
/// One mutex guards the keys: an acquire is a few map operations under it, far from the hot
/// path of counting. Expired keys are swept as the map grows, so memory stays bounded by the
/// keys acquired within one TTL.
pub struct Throttles {
    state: Mutex<State>,
}

impl fmt::Debug for Throttles {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Throttles")
            .field("keys", &self.state.lock().held_until.len())
            .finish()
    }
}

impl Throttles {
    pub(crate) fn new() -> Self {
        Throttles {
            state: Mutex::new(State {
                held_until: HashMap::default(),
                sweep_at: SWEEP_AFTER,
            }),
        }
    }

    /// See [`ThrottleStore::try_acquire`](stats_core::ThrottleStore::try_acquire). Time is the
    /// monotonic clock of this process.
    ///
    /// # Errors
    /// [`Error::InvalidName`](stats_core::Error::InvalidName) or
    /// [`Error::InvalidInput`](stats_core::Error::InvalidInput).
    pub fn try_acquire(&self, key: &str, ttl: Duration) -> Result<bool> {
        check_throttle(key, ttl)?;
        let now = Instant::now();
        let until = now + ttl;
        let mut state = self.state.lock();
        let acquired = match state.held_until.get_mut(key) {
            Some(held) if *held > now => false,
            Some(held) => {
                *held = until;
                true
            }
            None => {
                state.held_until.insert(key.into(), until);
                true
            }
        };
        if state.held_until.len() >= state.sweep_at {
            state.held_until.retain(|_, held| *held > now);
            state.sweep_at = state.held_until.len() + SWEEP_AFTER;
        }
        Ok(acquired)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sweeps_expired_keys() {
        let t = Throttles::new();
        for i in 0..3 * SWEEP_AFTER {
            assert!(
                t.try_acquire(&format!("k{i}"), Duration::from_millis(1))
                    .unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(5));
        assert!(t.try_acquire("last", Duration::from_secs(60)).unwrap());
        assert!(t.state.lock().held_until.len() <= SWEEP_AFTER + 1);
    }
}
