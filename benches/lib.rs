//! Helpers shared by the benchmarks in `benches/`.
//!
//! Every benchmark follows one convention so that `cargo xtask bench` can pair figures: in a
//! criterion group, each case is measured twice, as `BenchmarkId::new("ours", case)` and
//! `BenchmarkId::new("raw", case)`, in the same run, with the group's throughput in elements.

use std::fs::OpenOptions;
use std::io::Write;
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

/// The variable naming the file where `cargo xtask bench` collects the figures of a run that
/// are not throughputs (see [`figure`]).
pub const FIGURES_VAR: &str = "STATS_BENCH_FIGURES";

/// One figure as a line of the figures file: name, value, unit and detail separated by tabs
/// (tabs and line breaks inside them become spaces).
pub fn figure_line(name: &str, value: f64, unit: &str, detail: &str) -> String {
    let clean = |s: &str| s.replace(['\t', '\n', '\r'], " ");
    format!(
        "{}\t{value}\t{}\t{}\n",
        clean(name),
        clean(unit),
        clean(detail)
    )
}

/// Reports a figure that is not a throughput beside a baseline (a ratio, a maximum): prints
/// it, and under `cargo xtask bench` (which sets [`FIGURES_VAR`]) appends it to the run's
/// figures file, so that the summary shows it too.
///
/// # Panics
/// When the figures file cannot be written.
pub fn figure(name: &str, value: f64, unit: &str, detail: &str) {
    println!("figure: {name}: {value:.1} {unit} ({detail})");
    if let Some(path) = std::env::var_os(FIGURES_VAR) {
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
        file.write_all(figure_line(name, value, unit, detail).as_bytes())
            .unwrap_or_else(|e| panic!("cannot write {}: {e}", path.display()));
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn figure_lines_have_four_tab_separated_fields() {
        let line = super::figure_line("a\tb", 2.5, "x", "one\ntwo");
        assert_eq!(line, "a b\t2.5\tx\tone two\n");
    }

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
