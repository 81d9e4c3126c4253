//! A server stopped in the middle of a run and started again on the same port: calls in
//! between fail fast with retryable errors, and after the restart the same `MongoStore` works
//! again without being reconnected by hand.
//!
//! The test runs a MongoDB-wire server of its own: `$STATS_MONGO_PYTHON $STATS_MONGO_LAUNCHER
//! --port <port>` (both set by `cargo xtask servers mongo` and `cargo xtask it mongo`). That
//! server keeps nothing on disk, so the test checks recovery, not persistence: after the
//! restart it calls `setup()` again and writes and reads anew.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use stats_backend_mongo::{MongoConfig, MongoStore};
use stats_core::{Batch, CounterStore, Error, Key, MetricStore, Number, ThrottleStore, values};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

/// How long the driver looks for a server before a call fails.
const SELECTION: Duration = Duration::from_secs(2);
/// How long a call to a stopped server may take to fail: the selection timeout and generous
/// slack for a loaded machine (a call that hangs takes the driver's 30 s default or longer).
const FAIL_FAST: Duration = Duration::from_secs(10);

/// The test's own server process, on a port fixed for its life.
struct Server {
    python: String,
    launcher: String,
    port: u16,
    /// The server's standard error, kept for a failure message.
    log: PathBuf,
    child: Option<Child>,
}

fn var(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!(
            "{name} is not set. This test starts a MongoDB-wire server of its own from \
             $STATS_MONGO_PYTHON and $STATS_MONGO_LAUNCHER; `cargo xtask servers mongo` and \
             `cargo xtask it mongo` set both."
        )
    })
}

impl Server {
    fn new() -> Self {
        // A port the system says is free now; the listener is dropped at once so that the
        // server can bind it (and bind it again after the restart).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let log = std::env::temp_dir().join(format!(
            "{}.log",
            stats_core::testkit::unique("mongo-fault")
        ));
        Server {
            python: var("STATS_MONGO_PYTHON"),
            launcher: var("STATS_MONGO_LAUNCHER"),
            port,
            log,
            child: None,
        }
    }

    /// Starts the server and waits for its `READY <url>` line; returns the URL.
    async fn start(&mut self) -> String {
        let stderr = std::fs::File::create(&self.log).unwrap();
        let mut child = Command::new(&self.python)
            .arg("-u")
            .arg(&self.launcher)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {} {}: {e}", self.python, self.launcher));
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.unwrap() {
                if let Some(url) = line.trim().strip_prefix("READY ") {
                    return Some(url.to_owned());
                }
            }
            None
        })
        .await;
        let url = match ready {
            Ok(Some(url)) => url,
            other => panic!(
                "the MongoDB-wire server on port {} did not say READY ({}): {}",
                self.port,
                if other.is_err() {
                    "timed out"
                } else {
                    "it exited"
                },
                std::fs::read_to_string(&self.log).unwrap_or_default()
            ),
        };
        // The launcher prints nothing more; read on so that it never writes into a closed pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
        url
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_file(&self.log);
    }
}

/// The name of an error's variant, for messages.
fn variant(e: &Error) -> &'static str {
    match e {
        Error::Unavailable { .. } => "Unavailable",
        Error::Backend { .. } => "Backend",
        Error::Timeout { .. } => "Timeout",
        _ => "another variant",
    }
}

/// How long a call took, and its outcome.
async fn timed<T>(call: impl Future<Output = T>) -> (Duration, T) {
    let started = Instant::now();
    let outcome = call.await;
    (started.elapsed(), outcome)
}

/// One metric write, one read, one counter increment and one throttle acquire; each checked.
async fn calls(store: &MongoStore, key: &Key, expected: i64) {
    let mut batch = Batch::new();
    batch.inc([key.clone()], &values!({"n": 1})).unwrap();
    store.apply(&batch).await.expect("apply");
    let read = store.read(std::slice::from_ref(key)).await.expect("read");
    assert_eq!(read[0].number_at("n"), Some(Number::Int(expected)));
    assert_eq!(store.inc("fault", "n", 1, 0).await.expect("inc"), expected);
    let throttle = format!("t{expected}");
    assert!(
        store
            .try_acquire(&throttle, Duration::from_secs(60))
            .await
            .expect("try_acquire")
    );
    assert!(
        !store
            .try_acquire(&throttle, Duration::from_secs(60))
            .await
            .expect("try_acquire")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_server_fails_fast_and_recovers() {
    let mut server = Server::new();
    let url = server.start().await;
    let config = MongoConfig::from_url(&url)
        .unwrap()
        .database("stats_fault")
        .unwrap()
        .server_selection_timeout(SELECTION)
        .connect_timeout(SELECTION);
    let store = MongoStore::connect(config).await.expect("connect");
    store.setup().await.expect("setup");
    let key = Key::bucket("fault", "1h".parse().unwrap(), 0).unwrap();
    for n in 1..=3 {
        calls(&store, &key, n).await;
    }

    server.kill().await;
    // Each kind of call, twice over (the first call meets the dropped connection, the later
    // ones a server the driver knows is down): every one fails, fast, retryably.
    for round in 0..2 {
        let mut batch = Batch::new();
        batch.inc([key.clone()], &values!({"n": 1})).unwrap();
        let outcomes = [
            ("apply", timed(store.apply(&batch)).await),
            (
                "read",
                timed(async { store.read(std::slice::from_ref(&key)).await.map(drop) }).await,
            ),
            (
                "inc",
                timed(async { store.inc("fault", "n", 1, 0).await.map(drop) }).await,
            ),
            (
                "try_acquire",
                timed(async {
                    store
                        .try_acquire("t-down", Duration::from_secs(60))
                        .await
                        .map(drop)
                })
                .await,
            ),
        ]
        .map(|(call, (took, outcome))| (call, took, outcome));
        for (call, took, outcome) in &outcomes {
            match outcome {
                Ok(()) => eprintln!("round {round}: {call} succeeded in {took:?}"),
                Err(e) => eprintln!(
                    "round {round}: {call} failed in {took:?}: {}: {e}",
                    variant(e)
                ),
            }
        }
        for (call, took, outcome) in outcomes {
            let err = outcome
                .err()
                .unwrap_or_else(|| panic!("round {round}: {call} succeeded on a stopped server"));
            assert!(
                err.is_retryable(),
                "round {round}: {call}: the error must be retryable: {err:?}"
            );
            assert!(
                matches!(err, Error::Unavailable { .. }),
                "round {round}: {call}: an unreachable server is Unavailable (crate docs): {err:?}"
            );
            assert!(
                took < FAIL_FAST,
                "round {round}: {call} must fail within {FAIL_FAST:?}, took {took:?}"
            );
        }
    }

    // The same port again; the same store finds it (the driver's monitor), and `setup()` makes
    // the collections and indexes of the new, empty server.
    let again = server.start().await;
    assert_eq!(again, url, "the server restarted on its port");
    let restarted = Instant::now();
    let deadline = restarted + Duration::from_secs(30);
    loop {
        match store.setup().await {
            Ok(()) => {
                eprintln!(
                    "setup succeeded {:?} after the restart",
                    restarted.elapsed()
                );
                break;
            }
            Err(e) => {
                assert!(e.is_retryable(), "setup after the restart: {e:?}");
                assert!(
                    Instant::now() < deadline,
                    "the store did not find the restarted server: {e}"
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    for n in 1..=3 {
        calls(&store, &key, n).await;
    }
    server.kill().await;
}
