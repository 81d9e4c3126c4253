//! A server stopped in the middle of a run and started again: calls in between fail with
//! retryable errors, calls after it succeed, and no acknowledged increment is lost.
//!
//! The test runs its own `redis-server` (`STATS_REDIS_SERVER_BIN`, else `redis-server` on the
//! PATH) with an append-only file synced on every write, so that the restarted server has every
//! write it acknowledged.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};

use stats_backend_redis::{RedisConfig, RedisStore};
use stats_core::{Batch, CounterStore, Key, MetricStore, Number, values};
use tokio::process::{Child, Command};

struct Server {
    bin: String,
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Server {
    fn new() -> Self {
        let bin = std::env::var("STATS_REDIS_SERVER_BIN").unwrap_or_else(|_| "redis-server".into());
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(stats_core::testkit::unique("redis-fault"));
        std::fs::create_dir_all(&dir).unwrap();
        Server {
            bin,
            port,
            dir,
            child: None,
        }
    }

    async fn start(&mut self) {
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "yes",
            ])
            .args(["--appendfsync", "always", "--daemonize", "no", "--dir"])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "cannot start {} ({e}); `cargo xtask it redis` sets STATS_REDIS_SERVER_BIN",
                    self.bin
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(client) = redis::Client::open(self.url())
                && let Ok(mut c) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "redis-server on port {} did not start",
                self.port
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().await.unwrap();
            child.wait().await.unwrap();
        }
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// One counter increment and one metric increment; true if both were acknowledged.
async fn step(store: &RedisStore, key: &Key) -> stats_core::Result<()> {
    store.inc("fault", "n", 1, 0).await?;
    let mut batch = Batch::new();
    batch.inc([key.clone()], &values!({"n": 1}))?;
    store.apply(&batch).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_loses_no_acknowledged_increment() {
    let mut server = Server::new();
    server.start().await;
    let config = RedisConfig::single(server.url())
        .connection_timeout(Duration::from_millis(500))
        .response_timeout(Duration::from_secs(1));
    let store = RedisStore::connect(config).await.expect("connect");
    let key = Key::bucket("fault", "1h".parse().unwrap(), 0).unwrap();
    // Every step below is asserted acknowledged (both its counter and its metric increment).
    let mut acknowledged = 0_i64;

    for _ in 0..200 {
        let r = step(&store, &key).await;
        assert!(r.is_ok(), "before the stop: {r:?}");
        acknowledged += 1;
    }

    server.kill().await;
    let down = Instant::now();
    for _ in 0..20 {
        let started = Instant::now();
        let counter = store.inc("fault", "n", 1, 0).await;
        let err = counter.expect_err("a call to a stopped server must fail");
        assert!(err.is_retryable(), "the error must be retryable: {err}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "a call must fail, not hang: {:?}",
            started.elapsed()
        );
    }
    assert!(down.elapsed() < Duration::from_secs(30));

    server.start().await;
    // The managed connection reconnects in the background; the first calls may still fail.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        match store.get("fault", "n").await {
            Ok(_) => break,
            Err(e) => {
                assert!(e.is_retryable(), "{e}");
                assert!(
                    Instant::now() < deadline,
                    "no reconnect after the restart: {e}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
    for _ in 0..200 {
        let r = step(&store, &key).await;
        assert!(r.is_ok(), "after the restart: {r:?}");
        acknowledged += 1;
    }

    let counter = store.get("fault", "n").await.unwrap().unwrap();
    assert_eq!(
        counter, acknowledged,
        "every acknowledged counter increment is there, and no failed one"
    );
    let doc = store
        .read(std::slice::from_ref(&key))
        .await
        .unwrap()
        .remove(0);
    assert_eq!(
        doc.number_at("n"),
        Some(Number::Int(acknowledged)),
        "every acknowledged metric increment is there"
    );
    server.kill().await;
}
