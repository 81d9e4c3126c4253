//! The `stats` crate's `metrics_service` example end to end: the example binary on a free port
//! with a SQLite file of its own, real HTTP requests, SIGTERM, then its request counts read
//! back per minute with `stats values`.
//!
//! The example is built by `cargo test --workspace --all-features --no-run` (what CI and
//! `cargo xtask it` build first); this test finds it next to its own binary.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::Env;
use serde_json::Value;

/// `target/<profile>/examples/metrics_service`, from this test's `target/<profile>/deps/`.
fn example_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    let profile = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("the test binary is in target/<profile>/deps");
    let path = profile
        .join("examples")
        .join(format!("metrics_service{}", std::env::consts::EXE_SUFFIX));
    assert!(
        path.is_file(),
        "the example binary {} is missing: build it with `cargo test --workspace --all-features \
         --no-run` (or `cargo build -p stats --example metrics_service --features metrics,sqlite`)",
        path.display()
    );
    path
}

/// The running example, killed if the test fails before it is stopped.
struct Service {
    child: Child,
    base: String,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Service {
    fn start(db: &std::path::Path) -> Service {
        let mut child = Command::new(example_binary())
            .arg(db)
            .arg("127.0.0.1:0")
            .env_remove("METRICS_SERVICE_DB")
            .env_remove("METRICS_SERVICE_LISTEN")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the example starts");
        let out = child.stdout.take().expect("piped");
        let err = child.stderr.take().expect("piped");
        let stderr = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = BufReader::new(err).read_to_string(&mut text);
            text
        });
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let _ = BufReader::new(out).read_line(&mut line);
            let _ = tx.send(line);
        });
        let line = match rx.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!("the example printed no `listening on` line within 30 s ({e})");
            }
        };
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the example did not start: stdout {line:?}, stderr: {}",
                stderr.join().unwrap_or_default()
            );
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Service {
            base: base.to_owned(),
            child,
            stderr: Some(stderr),
        }
    }

    /// SIGTERM, then the exit code and standard error (at most 60 s).
    fn stop(mut self) -> (Option<i32>, String) {
        let killed = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(killed.success());
        let deadline = Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "the example did not stop within 60 s of SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let stderr = self.stderr.take().expect("read once");
        (status.code(), stderr.join().unwrap_or_default())
    }
}

impl Drop for Service {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn unix(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs()
}

/// The sum over the document's buckets of the count at `route=<route>.status=<status>.count`.
fn count(doc: &Value, route: &str, status: u16) -> i64 {
    doc["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values: {doc}"))
        .iter()
        .map(|v| {
            v[format!("route={route}")][format!("status={status}")]["count"]
                .as_i64()
                .unwrap_or_default()
        })
        .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn example_service_counts_per_minute_in_sqlite() {
    let started = SystemTime::now();
    let env = Env::sqlite();
    let db = env.path("stats.db");
    let service = Service::start(&db);
    let http = reqwest::Client::new();
    let get = |path: &str| {
        let request = http.get(format!("{}{path}", service.base));
        async move {
            let response = request.send().await.expect("answered");
            let status = response.status().as_u16();
            (status, response.text().await.expect("a body"))
        }
    };
    for _ in 0..7 {
        assert_eq!(get("/hello").await.0, 200);
    }
    for id in [1, 7, 7, 100] {
        assert_eq!(get(&format!("/orders/{id}")).await.0, 200);
    }
    for path in ["/orders/0", "/orders/101", "/orders/18446744073709551615"] {
        assert_eq!(get(path).await.0, 404, "{path}");
    }
    // Not a u64: axum refuses the path (400), still under the route's template.
    for path in ["/orders/-1", "/orders/18446744073709551616", "/orders/1.5"] {
        assert_eq!(get(path).await.0, 400, "{path}");
    }
    for path in ["/nope", "/a.b.c", "/%00%7f", "/orders"] {
        assert_eq!(get(path).await.0, 404, "{path}");
    }

    // The scrape shows the current totals.
    let (status, body) = get("/metrics").await;
    assert_eq!(status, 200, "{body}");
    let scrape = prometheus_parse::Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}): {body}"));
    let exposed = |route: &str, status: &str| {
        if route.contains('}') {
            // prometheus-parse 0.2 skips a sample whose label value holds a `}` (its line
            // pattern ends the labels at the first one): read the line itself.
            let head = format!("http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
            return body
                .lines()
                .find_map(|l| l.strip_prefix(&head))
                .map(|v| v.parse::<f64>().expect("a number"));
        }
        scrape
            .samples
            .iter()
            .find(|s| {
                s.metric == "http_requests_total"
                    && s.labels.get("route") == Some(route)
                    && s.labels.get("status") == Some(status)
            })
            .map(|s| match s.value {
                prometheus_parse::Value::Counter(v) => v,
                ref other => panic!("not a counter: {other:?}"),
            })
    };
    assert_eq!(exposed("/hello", "200"), Some(7.0), "{body}");
    assert_eq!(exposed("/orders/{id}", "200"), Some(4.0), "{body}");
    assert_eq!(exposed("/orders/{id}", "404"), Some(3.0), "{body}");
    assert_eq!(exposed("/orders/{id}", "400"), Some(3.0), "{body}");
    assert_eq!(exposed("unmatched", "404"), Some(4.0), "{body}");

    let (code, stderr) = service.stop();
    assert_eq!(code, Some(0), "stderr: {stderr}");
    assert!(stderr.contains("stopped: every metric written"), "{stderr}");

    // The minutes of this test, read back as the README shows it.
    let store = format!("sqlite://{}", db.display());
    let from = (unix(started) - 60).to_string();
    let to = (unix(SystemTime::now()) + 60).to_string();
    let run = env.run(&[
        "values",
        "http_requests_total",
        "--store",
        &store,
        "-g",
        "1m",
        "--format",
        "json",
        "--from",
        &from,
        "--to",
        &to,
    ]);
    let doc: Value = serde_json::from_str(run.ok()).unwrap_or_else(|e| panic!("{e}: {run:#?}"));
    assert_eq!(doc["granularity"], "1m", "{doc}");
    assert_eq!(count(&doc, "/hello", 200), 7, "{doc}");
    assert_eq!(count(&doc, "/orders/{id}", 200), 4, "{doc}");
    assert_eq!(count(&doc, "/orders/{id}", 404), 3, "{doc}");
    assert_eq!(count(&doc, "/orders/{id}", 400), 3, "{doc}");
    assert_eq!(count(&doc, "unmatched", 404), 4, "{doc}");
    // The scrape, counted once it was answered.
    assert_eq!(count(&doc, "/metrics", 200), 1, "{doc}");
    let latency = env.values_json(
        "http_request_duration_seconds",
        &["--store", &store, "-g", "1m", "--from", &from, "--to", &to],
    );
    let observed: i64 = latency["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["route=/hello"]["count"].as_i64().unwrap_or_default())
        .sum();
    assert_eq!(observed, 7, "{latency}");
}
