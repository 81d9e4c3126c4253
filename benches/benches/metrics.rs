//! The `metrics` recorder (`stats-metrics`) beside `metrics-exporter-prometheus`'s recorder and
//! a raw `AtomicU64`, in the same run (issue 13). Target: a call through our recorder costs at
//! most 1.5x what it costs through the Prometheus recorder.
//!
//! Ours is a [`StatsRecorder`] with a history (a [`BufferedTracker`] over the in-process
//! [`AtomicsStore`], default settings) and the default 1 s interval, so its drain task runs
//! during the measurement as in production, on a tokio runtime of one worker thread. The
//! Prometheus side is `PrometheusBuilder::new().build_recorder()`. Each recorder is set per
//! thread with [`metrics::with_local_recorder`] (no global recorder). The convention of
//! `cargo xtask bench` pairs `ours` with one `raw` per group, so each baseline has groups of
//! its own and ours is measured in both:
//!
//! - groups `metrics/prometheus-no-labels` and `metrics/prometheus-2-labels`: raw is the
//!   Prometheus recorder; groups `metrics/atomic-no-labels` and `metrics/atomic-2-labels`: raw
//!   is `fetch_add(1)` on an `AtomicU64` (shared by the threads, as one counter is).
//! - cases `1-thread` and `2-threads`: every call is the macro, `counter!(name).increment(1)`
//!   or `counter!(name, "route" => "/orders", "status" => "200").increment(1)`, so it looks
//!   the series up (registers) each time, as a call site does. On 2 threads both threads
//!   (started together, scoped) make the same number of calls to the same counter; the time is
//!   the slower thread's, the throughput counts both threads' calls.
//! - case `handle` (no-labels groups): `let c = counter!(name)` once, then `c.increment(1)`
//!   per call, on 1 thread: what a registered handle costs to call again.
//!
//! Figures, printed and (under `cargo xtask bench`) added to the summary: each case's cost per
//! call of ours over Prometheus (target at most 1.5) and of ours over the raw atomic, from the
//! medians of this run's samples of at least 1 ms (nanoseconds per call on each thread). After
//! the groups the bench checks that every call was counted: our exposition and Prometheus's
//! show the totals made, the drain task wrote into the buffer during the run, and the history
//! holds the same totals once flushed.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use metrics::{Recorder, counter, with_local_recorder};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusRecorder};
use stats_backend_atomics::AtomicsStore;
use stats_benches::{figure, on_threads};
use stats_buffer::BufferedTracker;
use stats_core::jiff::{Timestamp, ToSpan};
use stats_core::tracker::Config;
use stats_metrics::{MetricsHandle, StatsRecorder};
use tokio::runtime::Runtime;

/// The counter every unlabelled macro call increments.
const PLAIN: &str = "bench_calls_total";
/// The counter every labelled macro call increments (with [`LABELS`]).
const LABELLED: &str = "bench_labelled_calls_total";
/// The counter of the cached-handle case.
const HANDLE: &str = "bench_handle_calls_total";
/// The labels of [`LABELLED`], as our store path and as the Prometheus exposition writes them.
const LABELS_PATH: &str = "route=/orders.status=200.";
const LABELS_TEXT: &str = "{route=\"/orders\",status=\"200\"}";
/// Samples shorter than this are left out of the ratio figures (the timer's own cost).
const MIN_SAMPLE: Duration = Duration::from_millis(1);

/// What a case measures.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Call {
    /// `counter!(PLAIN).increment(1)`.
    Plain,
    /// `counter!(LABELLED, "route" => "/orders", "status" => "200").increment(1)`.
    Labelled,
    /// `c.increment(1)` on a handle registered once (`HANDLE`).
    Handle,
}

impl Call {
    /// The counter's name and the labels of its series, as the Prometheus text writes them.
    fn series(self) -> (&'static str, &'static str) {
        match self {
            Call::Plain => (PLAIN, ""),
            Call::Labelled => (LABELLED, LABELS_TEXT),
            Call::Handle => (HANDLE, ""),
        }
    }
}

/// `iters` calls on this thread through `recorder`; the time they took.
fn calls(recorder: &dyn Recorder, call: Call, iters: u64) -> Duration {
    with_local_recorder(recorder, || match call {
        Call::Plain => {
            let start = Instant::now();
            for _ in 0..iters {
                counter!("bench_calls_total").increment(1);
            }
            start.elapsed()
        }
        Call::Labelled => {
            let start = Instant::now();
            for _ in 0..iters {
                counter!("bench_labelled_calls_total", "route" => "/orders", "status" => "200")
                    .increment(1);
            }
            start.elapsed()
        }
        Call::Handle => {
            let handle = counter!("bench_handle_calls_total");
            let start = Instant::now();
            for _ in 0..iters {
                handle.increment(1);
            }
            start.elapsed()
        }
    })
}

/// `iters` raw increments of `atomic` on this thread; the time they took.
fn raw_calls(atomic: &AtomicU64, iters: u64) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        black_box(atomic).fetch_add(1, Ordering::Relaxed);
    }
    start.elapsed()
}

/// The sides of a case.
enum Side<'a> {
    Recorder(&'a (dyn Recorder + Sync)),
    Atomic(&'a AtomicU64),
}

/// Per-call times of every sample, and the calls made through each recorder.
#[derive(Default)]
struct Run {
    /// `group/function/case` -> nanoseconds per call on each thread, one per sample.
    times: BTreeMap<String, Vec<f64>>,
    /// (`ours` or `prometheus`, counter name) -> calls made.
    made: BTreeMap<(&'static str, &'static str), u64>,
}

impl Run {
    fn median(&self, id: &str) -> Option<f64> {
        let mut all = self.times.get(id)?.clone();
        all.sort_by(f64::total_cmp);
        all.get(all.len() / 2).copied()
    }
}

/// The recorders under test, the runtime our drain task runs on, and the raw atomics.
struct Subjects {
    runtime: Runtime,
    tracker: Arc<BufferedTracker>,
    ours: StatsRecorder,
    handle: MetricsHandle,
    prometheus: PrometheusRecorder,
    started: Timestamp,
}

impl Subjects {
    fn new() -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("runtime");
        // The buffer's flush task and the recorder's drain task start on this runtime.
        let _inside = runtime.enter();
        let tracker = Arc::new(
            BufferedTracker::new(Arc::new(AtomicsStore::default()), Config::new())
                .expect("tracker"),
        );
        let ours = StatsRecorder::builder()
            .history(tracker.clone())
            .build()
            .expect("recorder");
        let handle = ours.handle();
        drop(_inside);
        Subjects {
            runtime,
            tracker,
            ours,
            handle,
            prometheus: PrometheusBuilder::new().build_recorder(),
            started: Timestamp::now(),
        }
    }

    /// Every call made was counted: by both expositions, and (once flushed) in the history,
    /// which the drain task wrote into during the run.
    fn check(&self, run: &Run) {
        let drained = self.tracker.stats().tracked;
        assert!(
            drained > 0,
            "the drain task wrote nothing into the buffer during the run"
        );
        let ours = self.handle.render();
        let prometheus = self.prometheus.handle().render();
        for call in [Call::Plain, Call::Labelled, Call::Handle] {
            let (name, labels) = call.series();
            for (side, text) in [("ours", &ours), ("prometheus", &prometheus)] {
                // A series no call reached (its cases filtered out) is not exposed.
                let made = run.made.get(&(side, name)).copied();
                assert_eq!(exposed(text, name, labels), made, "{side} {name}{labels}");
            }
        }
        let refusals = self.handle.refusals();
        assert_eq!(refusals.total(), 0, "{refusals:?}");
        self.runtime.block_on(async {
            self.handle.flush().await.expect("flush");
            let from = self.started - 1.minute();
            let to = Timestamp::now();
            let hour = "1h".parse().expect("granularity");
            for (name, path) in [
                (PLAIN, "count".to_owned()),
                (LABELLED, format!("{LABELS_PATH}count")),
                (HANDLE, "count".to_owned()),
            ] {
                let made = run.made.get(&("ours", name)).copied().unwrap_or(0);
                let total = self
                    .tracker
                    .total(name, from, to, hour, &path)
                    .await
                    .expect("total")
                    .and_then(|n| n.as_i64());
                let expected = (made > 0).then(|| i64::try_from(made).expect("fits"));
                assert_eq!(total, expected, "history of {name} {path}");
            }
            assert!(self.handle.shutdown().await.is_empty(), "all written");
        });
    }
}

/// The value of series `name` + `labels` in a Prometheus text exposition.
fn exposed(text: &str, name: &str, labels: &str) -> Option<u64> {
    let prefix = format!("{name}{labels} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

/// Measures `side` under `BenchmarkId::new(function, case)` in `group`, on `threads` threads.
#[allow(clippy::too_many_arguments)]
fn measure(
    group: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    group_name: &str,
    run: &RefCell<Run>,
    function: &'static str,
    side: &Side<'_>,
    call: Call,
    threads: usize,
    case: &str,
) {
    let id = format!("{group_name}/{function}/{case}");
    let recorder_side = match side {
        Side::Recorder(_) if function == "ours" => Some("ours"),
        Side::Recorder(_) => Some("prometheus"),
        Side::Atomic(_) => None,
    };
    group.bench_function(BenchmarkId::new(function, case), |b| {
        b.iter_custom(|iters| {
            let elapsed = match side {
                Side::Recorder(recorder) if threads == 1 => calls(*recorder, call, iters),
                Side::Recorder(recorder) => on_threads(threads, iters, |_, iters| {
                    calls(*recorder, call, iters);
                }),
                Side::Atomic(atomic) if threads == 1 => raw_calls(atomic, iters),
                Side::Atomic(atomic) => on_threads(threads, iters, |_, iters| {
                    raw_calls(atomic, iters);
                }),
            };
            let mut run = run.borrow_mut();
            if let Some(side) = recorder_side {
                *run.made.entry((side, call.series().0)).or_default() += iters * threads as u64;
            }
            if elapsed >= MIN_SAMPLE {
                let ns = elapsed.as_nanos() as f64 / iters as f64;
                run.times.entry(id.clone()).or_default().push(ns);
            }
            elapsed
        })
    });
}

fn metrics(c: &mut Criterion) {
    let subjects = Subjects::new();
    let run = RefCell::new(Run::default());
    let prometheus = Side::Recorder(&subjects.prometheus);
    let ours = Side::Recorder(&subjects.ours);
    let atomic = AtomicU64::new(0);
    let raw = Side::Atomic(&atomic);
    for (baseline, raw_side) in [("prometheus", &prometheus), ("atomic", &raw)] {
        for (labels, call) in [("no-labels", Call::Plain), ("2-labels", Call::Labelled)] {
            let group_name = format!("metrics/{baseline}-{labels}");
            let mut group = c.benchmark_group(&group_name);
            let mut cases = vec![("1-thread", call, 1), ("2-threads", call, 2)];
            if call == Call::Plain {
                cases.push(("handle", Call::Handle, 1));
            }
            for (case, call, threads) in cases {
                group.throughput(Throughput::Elements(threads as u64));
                for (function, side) in [("ours", &ours), ("raw", raw_side)] {
                    measure(
                        &mut group,
                        &group_name,
                        &run,
                        function,
                        side,
                        call,
                        threads,
                        case,
                    );
                }
                let run = run.borrow();
                if let (Some(o), Some(r)) = (
                    run.median(&format!("{group_name}/ours/{case}")),
                    run.median(&format!("{group_name}/raw/{case}")),
                ) {
                    let target = if baseline == "prometheus" {
                        "; target at most 150%"
                    } else {
                        ""
                    };
                    figure(
                        &format!("metrics {labels} {case}: ours"),
                        o / r * 100.0,
                        &format!("% of {baseline}'s cost per call"),
                        &format!(
                            "ours {o:.1} ns, {baseline} {r:.1} ns per call on each thread \
                             (medians of this run's samples){target}"
                        ),
                    );
                }
            }
            group.finish();
        }
    }
    subjects.check(&run.borrow());
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion();
    targets = metrics
}
criterion_main!(benches);
