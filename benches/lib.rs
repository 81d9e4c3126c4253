//! Helpers shared by the benchmarks in `benches/`.
//!
//! Every benchmark follows one convention so that `cargo xtask bench` can pair figures: in a
//! criterion group, each case is measured twice, as `BenchmarkId::new("ours", case)` and
//! `BenchmarkId::new("raw", case)`, in the same run, with the group's throughput in elements.

use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::Criterion;

/// Criterion settings for this noisy 2-core machine: short, but enough samples for a median.
pub fn criterion() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

/// `n` distinct keys of exactly 32 bytes, `key-` then 28 digits with the given tag.
pub fn keys_32(tag: u32, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| {
            let key = format!("key-{tag:04}{i:024}");
            debug_assert_eq!(key.len(), 32);
            key
        })
        .collect()
}

/// Runs `work(thread, iters)` on `threads` threads started together and returns the slowest
/// thread's time: the wall time of `threads * iters` operations.
pub fn on_threads<F>(threads: usize, iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                scope.spawn(move || {
                    barrier.wait();
                    let start = Instant::now();
                    work(t, iters);
                    start.elapsed()
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("bench thread"))
            .max()
            .unwrap_or_default()
    })
}

/// The server URL a bench reads from `var`, which `cargo xtask bench <bench>` sets after
/// starting a throwaway server.
///
/// # Panics
/// When `var` is not set, saying which command sets it.
pub fn server_url(var: &str, bench: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run `cargo xtask bench {bench}`, which starts a server")
    })
}

/// The tokio runtime of the benches that talk to a server: two worker threads, as many as
/// the machine has cores.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

#[cfg(test)]
mod tests {
    #[test]
    fn keys_are_32_bytes_and_distinct() {
        let keys = super::keys_32(7, 1000);
        assert!(keys.iter().all(|k| k.len() == 32));
        let mut sorted = keys.clone();
        sorted.sort();
        sorted.dedup();
        assert_eq!(sorted.len(), 1000);
    }
}
