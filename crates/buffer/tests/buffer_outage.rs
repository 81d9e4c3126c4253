//! Outage under load: while 8 tasks track through a [`BufferedTracker`], the store's server is
//! stopped for several seconds and started again on the same port and data. While it is down
//! the buffer holds what it cannot write, within its memory bound (the tasks wait at the bound);
//! afterwards every total, at every granularity, is exactly what the tasks tracked: nothing lost,
//! nothing counted twice (a batch cut off by the stop is retried with its id).
//!
//! The test runs servers of its own, so it can stop them:
//!
//! - Redis: `$STATS_REDIS_SERVER_BIN` (else `redis-server` on the `PATH`), with an append-only
//!   file synced on every write, killed (SIGKILL) and started again on its data;
//! - PostgreSQL: `initdb`, `pg_ctl` from `$STATS_POSTGRES_BIN_DIR`, run as the unprivileged
//!   `$STATS_POSTGRES_RUN_AS` (`<uid>:<gid>`) when this is root (PostgreSQL refuses to run as
//!   root), stopped in `immediate` mode (no checkpoint: crash recovery at the restart).
//!
//! `cargo xtask it redis` sets all three. A missing one fails the test, naming it.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::MetadataExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use stats_backend_redis::{RedisConfig, RedisStore};
use stats_backend_sql::{SqlConfig, SqlStore};
use stats_buffer::{BufferedTracker, Coalescing, Options, Overflow};
use stats_core::jiff::{SignedDuration, Timestamp};
use stats_core::tracker::{Blanks, Config, Tracker};
use stats_core::{MetricStore, Number, Values};

/// Tasks tracking at once.
const TASKS: u64 = 8;
/// Events each task tracks.
const EVENTS_PER_TASK: u64 = 15_000;
const TOTAL_EVENTS: u64 = TASKS * EVENTS_PER_TASK;
/// A task sleeps 1 ms after this many events, so that the run lasts longer than the outage.
const EVENTS_PER_MS: u64 = 25;
/// The first instant events are tracked at.
const FROM: &str = "2026-11-29T10:30:00Z";
/// Leaves per event: `count`, `amount` and `tasks.t<task>`.
const LEAVES: u64 = 3;
/// How long the server stays down.
const OUTAGE: Duration = Duration::from_secs(4);

/// One at a time: the two stores' runs would share the machine's two cores otherwise, and the
/// outage must come while the tasks are still tracking.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// A server the test stops and starts again on the same port and data. Its methods block.
trait Server: Send + 'static {
    /// Starts it and waits until it answers.
    fn start(&mut self);
    /// Stops it and waits until it is gone.
    fn stop(&mut self);
    /// A new connection of the store over it.
    async fn connect(&self) -> Arc<dyn MetricStore>;
}

/// Whether this process runs as root (PostgreSQL refuses to).
fn is_root() -> bool {
    std::fs::metadata("/proc/self").is_ok_and(|meta| meta.uid() == 0)
}

/// A free loopback port now; the listener is dropped at once so the server can bind it, and
/// bind it again after the restart.
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fresh directory under the system's temporary directory.
fn temp_dir(label: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(stats_core::testkit::unique(label));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

struct RedisServer {
    bin: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisServer {
    fn new() -> Self {
        let bin = std::env::var("STATS_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        RedisServer {
            bin,
            port: free_port(),
            dir: temp_dir("buffer-outage-redis"),
            child: None,
        }
    }

    /// Whether it answers `PING`.
    fn answers(&self) -> bool {
        let Ok(mut stream) = TcpStream::connect(("127.0.0.1", self.port)) else {
            return false;
        };
        let timeout = Some(Duration::from_secs(1));
        let _ = stream.set_read_timeout(timeout);
        let _ = stream.set_write_timeout(timeout);
        let mut reply = [0u8; 7];
        stream.write_all(b"PING\r\n").is_ok()
            && stream.read_exact(&mut reply).is_ok()
            && &reply == b"+PONG\r\n"
    }
}

impl Server for RedisServer {
    fn start(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args([
                "--save",
                "",
                "--appendonly",
                "yes",
                "--appendfsync",
                "always",
            ])
            .args(["--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); set STATS_REDIS_SERVER_BIN to a redis-server \
                     (`cargo xtask it redis` does)",
                    self.bin
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while !self.answers() {
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not answer within 20 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().unwrap();
            child.wait().unwrap();
        }
    }

    async fn connect(&self) -> Arc<dyn MetricStore> {
        let config = RedisConfig::single(format!("redis://127.0.0.1:{}/", self.port))
            .connection_timeout(Duration::from_millis(300))
            .response_timeout(Duration::from_secs(1));
        Arc::new(RedisStore::connect(config).await.expect("connect to Redis"))
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

struct PostgresServer {
    bin: PathBuf,
    /// The user and group it runs as (when this is root).
    run_as: Option<(u32, u32)>,
    port: u16,
    /// Its directory: the socket, the log and `data/`.
    dir: PathBuf,
    data: PathBuf,
    running: bool,
}

impl PostgresServer {
    /// Makes a new cluster (`initdb`), not started yet.
    fn new() -> Self {
        let bin = std::env::var_os("STATS_POSTGRES_BIN_DIR")
            .filter(|dir| !dir.is_empty())
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                panic!(
                    "STATS_POSTGRES_BIN_DIR is not set. This test runs a PostgreSQL of its own \
                     (initdb, pg_ctl) to stop and restart it; `cargo xtask it redis` sets it to \
                     the directory of PostgreSQL's server binaries"
                )
            });
        let run_as = is_root().then(|| {
            let value = std::env::var("STATS_POSTGRES_RUN_AS").unwrap_or_default();
            value
                .split_once(':')
                .and_then(|(uid, gid)| Some((uid.parse().ok()?, gid.parse().ok()?)))
                .unwrap_or_else(|| {
                    panic!(
                        "this test runs as root, which PostgreSQL refuses: set \
                         STATS_POSTGRES_RUN_AS to `<uid>:<gid>` of an unprivileged user \
                         (`cargo xtask it redis` does), got {value:?}"
                    )
                })
        });
        let dir = temp_dir("buffer-outage-postgres");
        let server = PostgresServer {
            bin,
            run_as,
            port: free_port(),
            data: dir.join("data"),
            dir,
            running: false,
        };
        if let Some((uid, gid)) = run_as {
            std::os::unix::fs::chown(&server.dir, Some(uid), Some(gid)).unwrap();
        }
        server.run(
            "initdb",
            &[
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
                "-D",
            ],
            &[&server.data],
        );
        server
    }

    fn log(&self) -> PathBuf {
        self.dir.join("postgres.log")
    }

    /// Runs `program` of the bin dir as the server's user, and fails with its output.
    fn run(&self, program: &str, args: &[&str], paths: &[&Path]) {
        let mut cmd = Command::new(self.bin.join(program));
        cmd.args(args).args(paths).current_dir(&self.dir);
        if let Some((uid, gid)) = self.run_as {
            cmd.uid(uid).gid(gid).env("HOME", &self.dir);
        }
        let output = cmd.stdin(Stdio::null()).output().unwrap_or_else(|e| {
            panic!(
                "cannot run {} ({e}); STATS_POSTGRES_BIN_DIR must name PostgreSQL's bin dir",
                self.bin.join(program).display()
            )
        });
        assert!(
            output.status.success(),
            "{program} {args:?} failed ({}): {}{}\nserver log: {}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            std::fs::read_to_string(self.log()).unwrap_or_default()
        );
    }

    fn pg_ctl(&self, args: &[&str]) {
        let log = self.log();
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.display()
        );
        let mut all = vec![
            "-D",
            self.data.to_str().unwrap(),
            "-l",
            log.to_str().unwrap(),
        ];
        all.extend(["-o", &options]);
        all.extend(args);
        self.run("pg_ctl", &all, &[]);
    }
}

impl Server for PostgresServer {
    fn start(&mut self) {
        self.pg_ctl(&["-w", "-t", "60", "start"]);
        self.running = true;
    }

    fn stop(&mut self) {
        self.pg_ctl(&["-w", "-t", "60", "-m", "immediate", "stop"]);
        self.running = false;
    }

    async fn connect(&self) -> Arc<dyn MetricStore> {
        let url = format!(
            "postgres://postgres@127.0.0.1:{}/postgres?sslmode=disable",
            self.port
        );
        let config = SqlConfig::from_url(&url)
            .unwrap()
            // A call to a stopped server fails after this (the pool keeps trying to connect
            // until then), instead of after the default 5 s.
            .acquire_timeout(Duration::from_millis(300));
        let store = SqlStore::connect(config)
            .await
            .expect("connect to PostgreSQL");
        store.setup().await.expect("create the tables");
        Arc::new(store)
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        if self.running {
            let mut cmd = Command::new(self.bin.join("pg_ctl"));
            cmd.arg("-D")
                .arg(&self.data)
                .args(["-w", "-m", "immediate", "stop"]);
            cmd.current_dir(&self.dir)
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            if let Some((uid, gid)) = self.run_as {
                cmd.uid(uid).gid(gid);
            }
            let _ = cmd.status();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// What the tasks track: which metrics, and over how many seconds from [`FROM`]; and the
/// buffer's partitions and memory bound ([`Options::max_pending`]).
#[derive(Debug, Clone, Copy)]
struct Workload {
    metrics: u64,
    spread: i64,
    partitions: usize,
    max_pending: usize,
}

/// A few metrics over an hour (10:30 to 11:29:59, across an hour boundary): each flush sends
/// about as many leaf updates as the buffer held pending leaves, plus the coarser buckets.
const HOUR: Workload = Workload {
    metrics: 5,
    spread: 3_600,
    partitions: 4,
    max_pending: 5_000,
};

/// Many metrics in one minute, as when tracking "now": each pending leaf becomes one leaf
/// update per granularity when flushed. One partition, so that its window can hold all
/// 1,000 leaves (100 metrics, 10 leaves each), which are 7,000 leaf updates when flushed: more
/// than the bound allows.
const MINUTE: Workload = Workload {
    metrics: 100,
    spread: 60,
    partitions: 1,
    max_pending: 5_000,
};

impl Workload {
    /// The name of metric `k`.
    fn metric(&self, k: usize) -> String {
        format!("m{k}")
    }

    /// Event `i` of `task`: its metric, its second after [`FROM`] and its `amount`; spread
    /// over the metrics and seconds, the same on every run.
    fn event(&self, task: u64, i: u64) -> (usize, i64, i64) {
        let n = task * EVENTS_PER_TASK + i;
        let key = (n % self.metrics) as usize;
        let second = ((n * 7_919 + task * 104_729) % self.spread as u64) as i64;
        let amount = (n % 13) as i64 + 1;
        (key, second, amount)
    }
}

fn from() -> Timestamp {
    FROM.parse().unwrap()
}

/// What the tasks track: per metric and granularity (in the order of the configuration), per
/// bucket start, the sum of every leaf.
type Totals = HashMap<(usize, usize), BTreeMap<i64, BTreeMap<String, i64>>>;

fn expected_totals(workload: Workload, config: &Config) -> Totals {
    let granularities = config.granularity_list();
    // The bucket starts of each second of the spread, floored once.
    let starts: Vec<Vec<i64>> = (0..workload.spread)
        .map(|second| {
            let at = from() + SignedDuration::from_secs(second);
            granularities
                .iter()
                .map(|&g| config.calendar().floor(at, g).unwrap().as_second())
                .collect()
        })
        .collect();
    let mut totals = Totals::new();
    for task in 0..TASKS {
        for i in 0..EVENTS_PER_TASK {
            let (key, second, amount) = workload.event(task, i);
            for (g, &start) in starts[second as usize].iter().enumerate() {
                let leaves = totals
                    .entry((key, g))
                    .or_default()
                    .entry(start)
                    .or_default();
                *leaves.entry("count".into()).or_default() += 1;
                *leaves.entry("amount".into()).or_default() += amount;
                *leaves.entry(format!("tasks.t{task}")).or_default() += 1;
            }
        }
    }
    totals
}

/// Tracks the events of `task`, paced; counts each in `progress`. Returns the longest time
/// one `track` took (waiting at the memory bound).
async fn track_events(
    workload: Workload,
    tracker: Arc<BufferedTracker>,
    progress: Arc<AtomicU64>,
    task: u64,
) -> Duration {
    let mut longest = Duration::ZERO;
    let from = from();
    for i in 0..EVENTS_PER_TASK {
        let (key, second, amount) = workload.event(task, i);
        let values = Values::from_flat([
            ("count".to_owned(), Number::Int(1)),
            ("amount".to_owned(), Number::Int(amount)),
            (format!("tasks.t{task}"), Number::Int(1)),
        ])
        .unwrap();
        let at = from + SignedDuration::from_secs(second);
        let started = Instant::now();
        tracker
            .track(&workload.metric(key), at, &values)
            .await
            .unwrap_or_else(|e| panic!("task {task}, event {i}: {e}"));
        longest = longest.max(started.elapsed());
        progress.fetch_add(1, Ordering::Relaxed);
        if i % EVENTS_PER_MS == EVENTS_PER_MS - 1 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    longest
}

/// The largest `pending` seen, overall and while the server was down.
#[derive(Default)]
struct Samples {
    done: AtomicBool,
    down: AtomicBool,
    max: AtomicUsize,
    max_down: AtomicUsize,
    taken_down: AtomicU64,
}

async fn sample(tracker: Arc<BufferedTracker>, samples: Arc<Samples>) {
    while !samples.done.load(Ordering::Acquire) {
        let pending = tracker.stats().pending;
        samples.max.fetch_max(pending, Ordering::Relaxed);
        if samples.down.load(Ordering::Acquire) {
            samples.max_down.fetch_max(pending, Ordering::Relaxed);
            samples.taken_down.fetch_add(1, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// Runs `f` on `server` on a blocking thread (starting and stopping block), re-raising its
/// panic.
async fn blocking<S: Server>(mut server: S, f: fn(&mut S)) -> S {
    tokio::task::spawn_blocking(move || {
        f(&mut server);
        server
    })
    .await
    .unwrap_or_else(|e| std::panic::resume_unwind(e.into_panic()))
}

/// Waits for `condition` up to `limit`, failing with `what`.
async fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn settings(workload: Workload) -> Coalescing {
    let options = Options::new()
        .partitions(workload.partitions)
        .unwrap()
        .interval(Duration::from_millis(50))
        .unwrap()
        .jitter(Duration::from_millis(10))
        .unwrap()
        .max_pending(workload.max_pending)
        .unwrap()
        .overflow(Overflow::Backpressure)
        .retry_delay(Duration::from_millis(10))
        .unwrap()
        .retry_delay_max(Duration::from_millis(100))
        .unwrap()
        .retry_max(2);
    Coalescing::new().options(options)
}

/// The scenario, on `server`'s store.
async fn outage_under_load<S: Server>(name: &str, workload: Workload, server: S) {
    let _one_at_a_time = SERIAL.lock().await;
    let mut server = blocking(server, S::start).await;
    let config = Config::new();
    let tracker = Arc::new(
        BufferedTracker::with(server.connect().await, config.clone(), settings(workload)).unwrap(),
    );
    let progress = Arc::new(AtomicU64::new(0));
    let samples = Arc::new(Samples::default());
    let sampler = tokio::spawn(sample(tracker.clone(), samples.clone()));
    let started = Instant::now();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            tokio::spawn(track_events(
                workload,
                tracker.clone(),
                progress.clone(),
                task,
            ))
        })
        .collect();

    let tracked = || progress.load(Ordering::Relaxed);
    wait_for(
        "a fifth of the events tracked",
        Duration::from_secs(120),
        || tracked() >= TOTAL_EVENTS / 5,
    )
    .await;
    samples.down.store(true, Ordering::Release);
    let at_stop = tracked();
    let stopped_at = started.elapsed();
    server = blocking(server, S::stop).await;
    tokio::time::sleep(OUTAGE).await;
    let stats_down = tracker.stats();
    let at_restart = tracked();
    server = blocking(server, S::start).await;
    samples.down.store(false, Ordering::Release);
    let restarted_at = started.elapsed();

    let mut longest_wait = Duration::ZERO;
    for task in tasks {
        let waited = tokio::time::timeout(Duration::from_secs(300), task)
            .await
            .expect("the tasks finish after the restart")
            .expect("a task failed");
        longest_wait = longest_wait.max(waited);
    }
    let tracked_at = started.elapsed();
    // The tracker's connection reconnects by itself; until it does a flush may fail.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        match tracker.flush().await {
            Ok(()) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{name}: flush after the restart: {e}");
                assert!(
                    Instant::now() < deadline,
                    "{name}: no flush within 60 s of the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    let flushed_at = started.elapsed();
    samples.done.store(true, Ordering::Release);
    sampler.await.unwrap();
    let stats = tracker.stats();
    let left = tracker.shutdown().await;
    let max_down = samples.max_down.load(Ordering::Relaxed);
    eprintln!(
        "{name}: {TOTAL_EVENTS} events; stopped at {stopped_at:?} after {at_stop} events, \
         restarted at {restarted_at:?} after {at_restart}; all tracked at {tracked_at:?}, \
         flushed at {flushed_at:?}; longest track call {longest_wait:?}; pending while down: at most {max_down} ({} samples, \
         bound {}), at the end of the outage {}; overall at most {}; \
         {stats_down:?} at the restart; {stats:?} at the end",
        samples.taken_down.load(Ordering::Relaxed),
        workload.max_pending,
        stats_down.pending,
        samples.max.load(Ordering::Relaxed),
    );

    let bound = workload.max_pending;
    // The outage really hit: writes failed and were retried.
    assert!(
        stats.retried > 0 && stats.failed > 0,
        "{name}: no failed write during the outage: {stats:?}"
    );
    // Under load: the tasks were still tracking when the server came back, and the buffer
    // filled up to its bound (within what one event adds), so that writes needing new
    // entries waited (writes folding into pending entries go on).
    assert!(
        at_restart < TOTAL_EVENTS,
        "{name}: every event was tracked while the server was down: the buffer never made \
         the tasks wait ({stats_down:?})"
    );
    let one_event = (LEAVES as usize) * config.granularity_list().len();
    assert!(
        max_down + one_event >= workload.max_pending,
        "{name}: the buffer did not fill up to its bound of {} while the server was down \
         (at most {max_down} pending): the bound was not tested",
        workload.max_pending
    );
    // Nothing refused, nothing left.
    let mut expected_stats = stats;
    expected_stats.pending = 0;
    expected_stats.rejected = 0;
    expected_stats.refused = 0;
    expected_stats.tracked = TOTAL_EVENTS * LEAVES * config.granularity_list().len() as u64;
    assert_eq!(stats, expected_stats, "{name}");
    assert!(left.is_empty(), "{name}: left after shutdown: {left:?}");

    check_totals(name, workload, &config, server.connect().await).await;

    // Memory bounded: while the server was down, the pending leaf updates stayed within the
    // bound (writes reserve room atomically; the increments here are of one sign, so a flush
    // sends no more than its entries count). Checked last, so that a failure here still shows
    // that the totals were exact.
    assert!(
        max_down <= bound,
        "{name}: {max_down} leaf updates pending while the server was down, over the bound of \
         {bound}"
    );
    drop(blocking(server, S::stop).await);
}

/// Reads every bucket of every metric and granularity with the unbuffered tracker over
/// `store`, and compares with what the tasks tracked.
async fn check_totals(
    name: &str,
    workload: Workload,
    config: &Config,
    store: Arc<dyn MetricStore>,
) {
    let expected = expected_totals(workload, config);
    let reader = Tracker::new(store, config.clone());
    let to = from() + SignedDuration::from_secs(workload.spread - 1);
    let mut wrong = Vec::new();
    let mut buckets = 0;
    for k in 0..workload.metrics as usize {
        let key = &workload.metric(k);
        for (g, &granularity) in config.granularity_list().iter().enumerate() {
            let series = reader
                .values(key, from(), to, granularity, Blanks::Skip)
                .await
                .expect("read back");
            let got: BTreeMap<i64, BTreeMap<String, i64>> = series
                .at
                .iter()
                .zip(&series.values)
                .map(|(at, values)| {
                    let leaves = values
                        .flatten()
                        .into_iter()
                        .map(|(path, n)| match n {
                            Number::Int(n) => (path, n),
                            other => panic!("{name}: {key} {granularity} {at}: {path} = {other:?}"),
                        })
                        .collect();
                    (at.as_second(), leaves)
                })
                .collect();
            let want = &expected[&(k, g)];
            buckets += want.len();
            for start in want.keys().chain(got.keys()) {
                if want.get(start) != got.get(start) {
                    wrong.push(format!(
                        "{key} {granularity} at {start}: tracked {:?}, stored {:?}",
                        want.get(start),
                        got.get(start)
                    ));
                }
            }
        }
    }
    wrong.dedup();
    assert!(
        wrong.is_empty(),
        "{name}: {} of {buckets} buckets differ, first: {:#?}",
        wrong.len(),
        &wrong[..wrong.len().min(10)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_under_load_over_an_hour_then_restarted_gives_exact_totals() {
    outage_under_load("Redis, an hour", HOUR, RedisServer::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_under_load_in_one_minute_then_restarted_gives_exact_totals() {
    outage_under_load("Redis, one minute", MINUTE, RedisServer::new()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_over_an_hour_then_restarted_gives_exact_totals() {
    let server = tokio::task::spawn_blocking(PostgresServer::new)
        .await
        .unwrap();
    outage_under_load("PostgreSQL, an hour", HOUR, server).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_stopped_under_load_in_one_minute_then_restarted_gives_exact_totals() {
    let server = tokio::task::spawn_blocking(PostgresServer::new)
        .await
        .unwrap();
    outage_under_load("PostgreSQL, one minute", MINUTE, server).await;
}
