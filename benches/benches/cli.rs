//! The `stats` command beside the library it is made of, in the same run.
//!
//! Needs `STATS_BENCH_REDIS_URL` and the release `stats` binary: `cargo xtask bench cli`
//! starts a throwaway redis-server, builds `cargo build -p stats-cli --release` and passes the
//! binary as `STATS_BENCH_STATS_BIN`. Without that variable the bench looks for `stats` beside
//! its own target directory (`<target>/release/stats`) and stops, saying how to build it, when
//! there is none.
//!
//! Workload (fixed seed): 1,000,000 events (`STATS_BENCH_CLI_EVENTS` sets another number: a
//! SQLite import of 1,000,000 lines takes about two minutes here, so ten samples of each side
//! take most of an hour) over one day (2026-11-28, UTC), 50 metric keys
//! (45 counted with `inc`, 5 gauges written with `max`), each event one of 64 documents of
//! 2 to 4 values (integers and floats, one nested map); `at` as unix seconds for three events
//! in four, RFC 3339 for the fourth. The CLI's tracker configuration: the 7 default
//! granularities and the system index.
//!
//! - group `cli/import`, cases `sqlite` and `redis`: ours is `stats import FILE --progress
//!   never --on-error fail`, the release binary run as a process (start, parse, write through
//!   the buffer, flush, exit), the 1,000,000 lines as a JSON-lines file, into a fresh SQLite
//!   file or under a fresh Redis key prefix each iteration; raw is the library's
//!   `BufferedTracker` (default settings) writing the same events, parsed beforehand, from one
//!   task into a fresh store of the same kind, then `shutdown()`. The first import of each
//!   store is checked: `stats metrics` counts 1,000,000 events.
//! - group `cli/http`, cases `memory-day` (the events' instants, spread over a day, as a
//!   backfill sends them) and `memory-live` (no `at`: counted at the receiver's now, as a
//!   service tracking events as they happen sends them): ours is `POST /v1/track` of batches of 1,000 events (a
//!   JSON array, serialised beforehand) from 8 concurrent keep-alive connections against a
//!   running `stats --store memory: serve`, 200 batches (200,000 events) per iteration; raw is
//!   the `BufferedTracker` in this process on the in-process store, the same events parsed
//!   beforehand, written from 8 tasks (a `flush()` after each round, outside the measured
//!   time: the server answers once the events are in its buffer too). Target: 200,000
//!   events/s. The first round is checked: `GET /v1/metrics` counts its 200,000 events.
//! - figures: each case's ours/raw ratio of medians.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use criterion::{
    BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group, criterion_main,
};
use stats_backend_atomics::AtomicsStore;
use stats_backend_redis::{RedisConfig, RedisStore};
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_benches::figure;
use stats_buffer::BufferedTracker;
use stats_core::jiff::Timestamp;
use stats_core::tracker::Config;
use stats_core::{Fields, MetricStore, Op, Values};
use tokio::runtime::Runtime;

/// Events per import, unless `STATS_BENCH_CLI_EVENTS` says otherwise.
const EVENTS: usize = 1_000_000;
/// Metric keys.
const KEYS: usize = 50;
/// Keys counted with `max` (the last ones).
const GAUGES: usize = 5;
/// Distinct documents.
const DOCS: usize = 64;
/// Events per `POST /v1/track`.
const BATCH: usize = 1_000;
/// Concurrent HTTP connections.
const CONNECTIONS: usize = 8;
/// Batches per measured HTTP round.
const HTTP_BATCHES: usize = 200;

/// One event, by index into the workload's keys and documents.
#[derive(Clone, Copy)]
struct Event {
    key: u8,
    doc: u8,
    at: Timestamp,
    rfc3339: bool,
}

/// The events, their documents, and the JSON-lines file of them.
struct Workload {
    keys: Vec<String>,
    docs: Vec<Values>,
    fields: Vec<Fields>,
    events: Vec<Event>,
    file: PathBuf,
    _dir: tempfile::TempDir,
}

/// xorshift64*: deterministic and cheap.
fn next(state: &mut u64) -> u64 {
    *state ^= *state >> 12;
    *state ^= *state << 25;
    *state ^= *state >> 27;
    state.wrapping_mul(0x2545_f491_4f6c_dd1d)
}

fn op_of(key: u8) -> Op {
    if usize::from(key) >= KEYS - GAUGES {
        Op::Max
    } else {
        Op::Inc
    }
}

impl Event {
    /// The event as a line of the contract.
    fn line(&self, work: &Workload) -> String {
        self.line_at(work, false)
    }

    /// The event as a line of the contract; `live`: without `at` (counted at the receiver's
    /// now, as a service tracking events as they happen sends them).
    fn line_at(&self, work: &Workload, live: bool) -> String {
        let op = match op_of(self.key) {
            Op::Max => "max",
            _ => "inc",
        };
        if live {
            return format!(
                r#"{{"key":"{}","values":{},"op":"{op}"}}"#,
                work.keys[usize::from(self.key)],
                work.docs[usize::from(self.doc)]
            );
        }
        let at = if self.rfc3339 {
            format!("\"{}\"", self.at)
        } else {
            self.at.as_second().to_string()
        };
        format!(
            r#"{{"key":"{}","at":{at},"values":{},"op":"{op}"}}"#,
            work.keys[usize::from(self.key)],
            work.docs[usize::from(self.doc)]
        )
    }
}

impl Workload {
    fn new(count: usize) -> Self {
        let families = [
            "shop.orders",
            "shop.carts",
            "api.requests",
            "api.errors",
            "mail.sent",
            "jobs.done",
            "auth.logins",
            "search.queries",
            "cdn.hits",
            "db.queries",
        ];
        let keys: Vec<String> = (0..KEYS)
            .map(|i| {
                if i >= KEYS - GAUGES {
                    format!("gauge.queue_{}", i - (KEYS - GAUGES))
                } else {
                    format!("{}.{}", families[i % families.len()], i / families.len())
                }
            })
            .collect();
        let docs: Vec<Values> = (0..DOCS as i64)
            .map(|d| {
                let text = match d % 4 {
                    0 => format!(r#"{{"count":1,"amount":{}.{:02}}}"#, 5 + d, d % 100),
                    1 => format!(
                        r#"{{"count":1,"items":{},"amount":{}}}"#,
                        1 + d % 5,
                        100 + d * 7
                    ),
                    2 => format!(
                        r#"{{"count":1,"latency":{{"ms":{}.5,"slow":{}}}}}"#,
                        d * 3,
                        d % 2
                    ),
                    _ => format!(
                        r#"{{"count":1,"bytes":{},"ok":1,"retries":{}}}"#,
                        d * 1_000,
                        d % 3
                    ),
                };
                Values::from_json(&text).expect("document")
            })
            .collect();
        let fields = docs
            .iter()
            .map(|v| Fields::from_values(v).expect("fields"))
            .collect();
        let day: Timestamp = "2026-11-28T00:00:00Z".parse().expect("instant");
        let mut state = 0x9e37_79b9_7f4a_7c15_u64;
        let events = (0..count)
            .map(|_| {
                let r = next(&mut state);
                let second = (r >> 20) % 86_400;
                Event {
                    key: (r % KEYS as u64) as u8,
                    doc: ((r >> 8) % DOCS as u64) as u8,
                    at: Timestamp::from_second(day.as_second() + second as i64).expect("instant"),
                    rfc3339: (r >> 40).is_multiple_of(4),
                }
            })
            .collect();
        let dir = tempfile::tempdir().expect("a temporary directory");
        let file = dir.path().join("events.jsonl");
        let mut work = Workload {
            keys,
            docs,
            fields,
            events,
            file,
            _dir: dir,
        };
        let mut out = std::io::BufWriter::new(std::fs::File::create(&work.file).expect("file"));
        for e in &work.events {
            writeln!(out, "{}", e.line(&work)).expect("write");
        }
        out.flush().expect("flush");
        drop(out);
        work.events.shrink_to_fit();
        work
    }

    /// The events of HTTP batch `i` (going round the events when there are fewer).
    fn batch(&self, i: usize) -> &[Event] {
        let chunks = self.events.len() / BATCH;
        let start = (i % chunks) * BATCH;
        &self.events[start..start + BATCH]
    }

    /// `BATCH`-event JSON arrays of the events, `count` of them.
    fn bodies(&self, count: usize, live: bool) -> Vec<String> {
        (0..count)
            .map(|i| {
                let chunk = self.batch(i);
                let lines: Vec<String> = chunk.iter().map(|e| e.line_at(self, live)).collect();
                format!("[{}]", lines.join(","))
            })
            .collect()
    }
}

/// The tracker configuration of the `stats` command (its defaults).
fn cli_config() -> Config {
    Config::new().system_index(true)
}

/// The release `stats` binary.
fn stats_bin() -> PathBuf {
    if let Some(bin) = std::env::var_os("STATS_BENCH_STATS_BIN") {
        return PathBuf::from(bin);
    }
    // <target>/release/deps/cli-<hash> -> <target>/release/stats
    let exe = std::env::current_exe().expect("the bench's path");
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .map(|dir| dir.join(format!("stats{}", std::env::consts::EXE_SUFFIX)))
        .expect("a target directory");
    assert!(
        bin.is_file(),
        "no stats binary at {}: run `cargo xtask bench cli` (which builds it), or build it with \
         `cargo build -p stats-cli --release`, or set STATS_BENCH_STATS_BIN",
        bin.display()
    );
    bin
}

/// `stats` with a store, no `STATS_*` variable from the environment.
fn stats(bin: &Path, store: &str, prefix: Option<&str>) -> Command {
    let mut cmd = Command::new(bin);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("STATS_") {
            cmd.env_remove(name);
        }
    }
    cmd.arg("--store").arg(store);
    if let Some(prefix) = prefix {
        cmd.arg("--prefix").arg(prefix);
    }
    cmd.stdin(Stdio::null());
    cmd
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().expect("stats runs");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The events `stats metrics` counts over the workload's day.
fn metric_events(bin: &Path, store: &str, prefix: Option<&str>) -> i64 {
    let out = run_ok(stats(bin, store, prefix).args([
        "metrics",
        "--from",
        "2026-11-28",
        "--to",
        "2026-11-28T23:59:59Z",
        "-f",
        "json",
    ]));
    let doc: serde_json::Value = serde_json::from_str(&out).expect("metrics JSON");
    doc["metrics"]
        .as_object()
        .expect("metrics")
        .values()
        .map(|n| n.as_i64().expect("a count"))
        .sum()
}

/// One store kind of `cli/import`: how to make a fresh one for each side.
trait ImportStore {
    /// The case name.
    fn case(&self) -> &'static str;
    /// A fresh store for the CLI: URL and prefix.
    fn fresh_url(&mut self) -> (String, Option<String>);
    /// A fresh store of the same kind for the library.
    fn fresh_store(&mut self, rt: &Runtime) -> Arc<dyn MetricStore>;
    /// Drops what the last fresh stores hold (outside the measured time).
    fn clean(&mut self, rt: &Runtime);
}

struct Sqlite {
    dir: tempfile::TempDir,
    n: usize,
}

impl ImportStore for Sqlite {
    fn case(&self) -> &'static str {
        "sqlite"
    }

    fn fresh_url(&mut self) -> (String, Option<String>) {
        self.n += 1;
        let path = self.dir.path().join(format!("ours-{}.db", self.n));
        (format!("sqlite://{}", path.display()), None)
    }

    fn fresh_store(&mut self, rt: &Runtime) -> Arc<dyn MetricStore> {
        self.n += 1;
        let path = self.dir.path().join(format!("raw-{}.db", self.n));
        let url = format!("sqlite://{}", path.display());
        rt.block_on(async {
            let store = SqlStore::connect(SqlConfig::from_url(&url).expect("url"))
                .await
                .expect("connect");
            store.setup().await.expect("setup");
            Arc::new(store) as Arc<dyn MetricStore>
        })
    }

    fn clean(&mut self, _rt: &Runtime) {
        for entry in std::fs::read_dir(self.dir.path()).expect("dir") {
            let path = entry.expect("entry").path();
            let _ = std::fs::remove_file(path);
        }
    }
}

struct Redis {
    url: String,
    n: usize,
    prefixes: Vec<String>,
}

impl Redis {
    fn prefix(&mut self, side: &str) -> String {
        self.n += 1;
        let prefix = format!("clibench_{side}_{}_{}", std::process::id(), self.n);
        self.prefixes.push(prefix.clone());
        prefix
    }
}

impl ImportStore for Redis {
    fn case(&self) -> &'static str {
        "redis"
    }

    fn fresh_url(&mut self) -> (String, Option<String>) {
        let prefix = self.prefix("ours");
        (self.url.clone(), Some(prefix))
    }

    fn fresh_store(&mut self, rt: &Runtime) -> Arc<dyn MetricStore> {
        let prefix = self.prefix("raw");
        let config = RedisConfig::from_url(&self.url)
            .expect("url")
            .key_prefix(&prefix)
            .expect("prefix");
        Arc::new(rt.block_on(RedisStore::connect(config)).expect("connect"))
    }

    fn clean(&mut self, rt: &Runtime) {
        let client = redis::Client::open(self.url.as_str()).expect("redis URL");
        rt.block_on(async {
            let mut conn = client
                .get_multiplexed_async_connection()
                .await
                .expect("redis connection");
            for prefix in self.prefixes.drain(..) {
                let pattern = format!("{prefix}::*");
                let mut cursor: u64 = 0;
                loop {
                    let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                        .arg(cursor)
                        .arg("MATCH")
                        .arg(&pattern)
                        .arg("COUNT")
                        .arg(10_000)
                        .query_async(&mut conn)
                        .await
                        .expect("SCAN");
                    if !keys.is_empty() {
                        let _: i64 = redis::cmd("UNLINK")
                            .arg(&keys)
                            .query_async(&mut conn)
                            .await
                            .expect("UNLINK");
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
        });
    }
}

/// The library side: the events through a buffered tracker from one task, then shutdown.
async fn raw_import(store: Arc<dyn MetricStore>, work: &Workload) -> Duration {
    let start = Instant::now();
    let tracker = BufferedTracker::new(store, cli_config()).expect("tracker");
    for e in &work.events {
        tracker
            .write(
                op_of(e.key),
                &work.keys[usize::from(e.key)],
                e.at,
                &work.fields[usize::from(e.doc)],
            )
            .await
            .expect("write");
    }
    let unwritten = tracker.shutdown().await;
    let elapsed = start.elapsed();
    assert!(unwritten.is_empty(), "everything written");
    elapsed
}

/// Medians (seconds per iteration) kept for the ratio figures.
#[derive(Default)]
struct Times(BTreeMap<String, Vec<f64>>);

impl Times {
    fn add(&mut self, name: String, d: Duration) {
        self.0.entry(name).or_default().push(d.as_secs_f64());
    }

    fn median(&self, name: &str) -> Option<f64> {
        let mut all = self.0.get(name)?.clone();
        all.sort_by(f64::total_cmp);
        all.get(all.len() / 2).copied()
    }

    fn ratio(&self, group: &str, case: &str, target: &str) {
        if let (Some(ours), Some(raw)) = (
            self.median(&format!("{group}/ours/{case}")),
            self.median(&format!("{group}/raw/{case}")),
        ) {
            figure(
                &format!("{group} {case} ours/raw"),
                raw / ours,
                "x the library's rate",
                &format!(
                    "medians of this run's iterations: ours {ours:.2} s, raw {raw:.2} s per \
                     iteration; {target}"
                ),
            );
        }
    }
}

fn import_group(
    c: &mut Criterion,
    rt: &Runtime,
    bin: &Path,
    work: &Workload,
    stores: &mut [&mut dyn ImportStore],
    times: &mut Times,
) {
    let mut group = c.benchmark_group("cli/import");
    group.sampling_mode(SamplingMode::Flat);
    let events = work.events.len();
    group.throughput(Throughput::Elements(events as u64));
    for store in stores.iter_mut() {
        let case = store.case();
        // Once, outside the measurements: the import writes every event.
        let (url, prefix) = store.fresh_url();
        run_ok(
            stats(bin, &url, prefix.as_deref())
                .arg("import")
                .arg(&work.file)
                .args(["--progress", "never", "--on-error", "fail"]),
        );
        let counted = metric_events(bin, &url, prefix.as_deref());
        assert_eq!(
            counted, events as i64,
            "{case}: stats metrics after the import"
        );
        store.clean(rt);

        group.bench_function(BenchmarkId::new("ours", case), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let (url, prefix) = store.fresh_url();
                    let mut cmd = stats(bin, &url, prefix.as_deref());
                    cmd.arg("import").arg(&work.file).args([
                        "--progress",
                        "never",
                        "--on-error",
                        "fail",
                    ]);
                    let start = Instant::now();
                    run_ok(&mut cmd);
                    let elapsed = start.elapsed();
                    eprintln!("cli/import/ours/{case}: {events} events in {elapsed:.2?}");
                    times.add(format!("cli/import/ours/{case}"), elapsed);
                    total += elapsed;
                    store.clean(rt);
                }
                total
            })
        });
        group.bench_function(BenchmarkId::new("raw", case), |b| {
            b.iter_custom(|iters| {
                let mut total = Duration::ZERO;
                for _ in 0..iters {
                    let fresh = store.fresh_store(rt);
                    let elapsed = rt.block_on(raw_import(fresh, work));
                    eprintln!("cli/import/raw/{case}: {events} events in {elapsed:.2?}");
                    times.add(format!("cli/import/raw/{case}"), elapsed);
                    total += elapsed;
                    store.clean(rt);
                }
                total
            })
        });
        times.ratio("cli/import", case, "target at least 0.5x");
    }
    group.finish();
}

/// A running `stats serve`, killed when dropped.
struct Server {
    child: Child,
    base: String,
}

impl Server {
    fn start(bin: &Path, store: &str) -> Server {
        let mut child = stats(bin, store, None)
            .args(["serve", "--listen", "127.0.0.1:0"])
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("stats serve starts");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = loop {
            let line = lines
                .next()
                .expect("stats serve prints `listening on http://ADDR`")
                .expect("stdout");
            if let Some(rest) = line.split("listening on ").nth(1) {
                break rest.trim().trim_end_matches('/').to_owned();
            }
        };
        // Keep draining its standard output so that it never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Server { child, base }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// `bodies` posted from `CONNECTIONS` clients, each taking the next body until none is left.
async fn post_all(client: &reqwest::Client, url: &str, bodies: &Arc<Vec<String>>) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (client, url, bodies, next) =
                (client.clone(), url.to_owned(), bodies.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let response = client
                        .post(&url)
                        .header("content-type", "application/json")
                        .body(body.clone())
                        .send()
                        .await
                        .expect("POST /v1/track");
                    let status = response.status();
                    let text = response.text().await.expect("response body");
                    assert!(status.is_success(), "POST /v1/track: {status}: {text}");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("client task");
    }
}

/// The library side of `cli/http`: the same batches from `CONNECTIONS` tasks into one buffered
/// tracker (as `stats serve` answers once the events are in its buffer).
async fn raw_http(tracker: &Arc<BufferedTracker>, work: &Arc<Workload>, live: bool) {
    let next = Arc::new(AtomicUsize::new(0));
    let tasks: Vec<_> = (0..CONNECTIONS)
        .map(|_| {
            let (tracker, work, next) = (tracker.clone(), work.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= HTTP_BATCHES {
                        break;
                    }
                    for e in work.batch(i) {
                        let at = if live { Timestamp::now() } else { e.at };
                        tracker
                            .write(
                                op_of(e.key),
                                &work.keys[usize::from(e.key)],
                                at,
                                &work.fields[usize::from(e.doc)],
                            )
                            .await
                            .expect("write");
                    }
                }
            })
        })
        .collect();
    for t in tasks {
        t.await.expect("task");
    }
}

/// `cli/http`, case `memory-day` (`live` false: the workload's instants, spread over one day,
/// as a backfill sends them) or `memory-live` (`live` true: no `at`, every event counted at
/// the receiver's now, as a service tracking events as they happen sends them).
fn http_group(
    c: &mut Criterion,
    rt: &Runtime,
    bin: &Path,
    work: &Arc<Workload>,
    times: &mut Times,
    live: bool,
) {
    let case = if live { "memory-live" } else { "memory-day" };
    let events = HTTP_BATCHES * BATCH;
    let bodies = Arc::new(work.bodies(HTTP_BATCHES, live));
    let checked_from = Timestamp::now();
    let server = Server::start(bin, "memory:");
    let url = format!("{}/v1/track", server.base);
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(CONNECTIONS)
        .build()
        .expect("HTTP client");
    // Once, outside the measurements: the events arrive (the system index counts them).
    rt.block_on(post_all(&client, &url, &bodies));
    let metrics_url = if live {
        format!(
            "{}/v1/metrics?from={checked_from}&to={}",
            server.base,
            Timestamp::now()
        )
    } else {
        format!(
            "{}/v1/metrics?from=2026-11-28T00:00:00Z&to=2026-11-28T23:59:59Z",
            server.base
        )
    };
    let counted: i64 = rt.block_on(async {
        let text = client
            .get(&metrics_url)
            .send()
            .await
            .expect("GET /v1/metrics")
            .text()
            .await
            .expect("body");
        let doc: serde_json::Value = serde_json::from_str(&text).expect("metrics JSON");
        doc["metrics"]
            .as_object()
            .unwrap_or_else(|| panic!("GET /v1/metrics: {text}"))
            .values()
            .map(|n| n.as_i64().expect("a count"))
            .sum()
    });
    assert_eq!(counted, events as i64, "GET /v1/metrics after one round");

    let mut group = c.benchmark_group("cli/http");
    group.sampling_mode(SamplingMode::Flat);
    group.throughput(Throughput::Elements(events as u64));
    group.bench_function(BenchmarkId::new("ours", case), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                rt.block_on(post_all(&client, &url, &bodies));
                let elapsed = start.elapsed();
                eprintln!("cli/http/ours/{case}: {events} events in {elapsed:.2?}");
                times.add(format!("cli/http/ours/{case}"), elapsed);
                total += elapsed;
            }
            total
        })
    });
    let store: Arc<dyn MetricStore> = Arc::new(AtomicsStore::new());
    let tracker = {
        let _guard = rt.enter();
        Arc::new(BufferedTracker::new(store, cli_config()).expect("tracker"))
    };
    group.bench_function(BenchmarkId::new("raw", case), |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let start = Instant::now();
                rt.block_on(raw_http(&tracker, work, live));
                let elapsed = start.elapsed();
                // As the server's buffer, written out after the measured writes.
                rt.block_on(tracker.flush()).expect("flush");
                eprintln!("cli/http/raw/{case}: {events} events in {elapsed:.2?}");
                times.add(format!("cli/http/raw/{case}"), elapsed);
                total += elapsed;
            }
            total
        })
    });
    group.finish();
    assert!(rt.block_on(tracker.shutdown()).is_empty());
    if let Some(ours) = times.median(&format!("cli/http/ours/{case}")) {
        figure(
            &format!("cli/http {case} ours"),
            events as f64 / ours,
            "events/s",
            &format!(
                "POST /v1/track, {BATCH} events per request, {CONNECTIONS} connections; \
                 target 200000 events/s"
            ),
        );
    }
    times.ratio(
        "cli/http",
        case,
        "stats serve beside the tracker in process",
    );
    drop(server);
}

fn cli(c: &mut Criterion) {
    let rt = stats_benches::runtime();
    let bin = stats_bin();
    let events = match std::env::var("STATS_BENCH_CLI_EVENTS") {
        Ok(n) => n
            .parse()
            .ok()
            .filter(|&n: &usize| n >= BATCH)
            .unwrap_or_else(|| {
                panic!("STATS_BENCH_CLI_EVENTS={n:?}: a number of events, at least {BATCH}")
            }),
        Err(_) => EVENTS,
    };
    let work = Arc::new(Workload::new(events));
    let mut times = Times::default();

    let mut sqlite = Sqlite {
        dir: tempfile::tempdir().expect("a temporary directory"),
        n: 0,
    };
    let mut redis = Redis {
        url: stats_benches::server_url("STATS_BENCH_REDIS_URL", "cli"),
        n: 0,
        prefixes: Vec::new(),
    };
    import_group(
        c,
        &rt,
        &bin,
        &work,
        &mut [&mut sqlite, &mut redis],
        &mut times,
    );
    http_group(c, &rt, &bin, &work, &mut times, false);
    http_group(c, &rt, &bin, &work, &mut times, true);
}

criterion_group! {
    name = benches;
    config = stats_benches::criterion()
        .sample_size(10)
        .warm_up_time(Duration::from_millis(100))
        .measurement_time(Duration::from_secs(10));
    targets = cli
}
criterion_main!(benches);
