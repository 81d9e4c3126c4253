//! The dashboard in a real browser: headless Chromium loads it from `stats serve`, and the DOM
//! it leaves (`--dump-dom`) must hold the chart's points and the table's rows of a known
//! series; a screenshot must be a real picture; the console must show no error.
//!
//! Chromium: `STATS_TEST_CHROMIUM`, else `/usr/bin/chromium` (`apt-get install chromium`;
//! `cargo xtask it dashboard` installs it where missing).

mod common;
mod serve_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Env;
use serde_json::{Value, json};
use serve_support::{Client, Server};

const RANGE: &str = "from=2026-03-10T00:00:00Z&to=2026-03-10T23:59:59Z";

fn chromium() -> PathBuf {
    let path = std::env::var_os("STATS_TEST_CHROMIUM")
        .map_or_else(|| PathBuf::from("/usr/bin/chromium"), PathBuf::from);
    assert!(
        path.is_file(),
        "Chromium not found at {} (set STATS_TEST_CHROMIUM, or `apt-get install chromium`, or \
         run `cargo xtask it dashboard`, which installs it)",
        path.display()
    );
    path
}

/// What one headless Chromium run left.
struct Page {
    /// Standard output (the DOM with `--dump-dom`).
    stdout: String,
    /// Standard error (the browser's log, console messages included).
    stderr: String,
}

/// Runs headless Chromium on `url` with `extra` flags, in a fresh profile, for at most 90 s.
fn browse(url: &str, extra: &[&str]) -> Page {
    let profile = tempfile::tempdir().expect("a profile directory");
    let mut child = Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--disable-dev-shm-usage",
            "--enable-logging=stderr",
            "--v=0",
            "--window-size=1000,900",
            "--virtual-time-budget=15000",
        ])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("chromium starts");
    let out = child.stdout.take().expect("piped");
    let err = child.stderr.take().expect("piped");
    let read = |mut pipe: Box<dyn std::io::Read + Send>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            let _ = pipe.read_to_string(&mut text);
            text
        })
    };
    let (out, err) = (read(Box::new(out)), read(Box::new(err)));
    let deadline = Instant::now() + Duration::from_secs(90);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("chromium did not finish within 90 s on {url}");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let page = Page {
        stdout: out.join().expect("stdout"),
        stderr: err.join().expect("stderr"),
    };
    assert!(status.success(), "chromium failed ({status}): {}", page.stderr);
    page
}

/// The console messages Chromium logged (`...:CONSOLE...] "text", source: ...`) and any
/// uncaught exception.
fn console(stderr: &str) -> Vec<&str> {
    stderr
        .lines()
        .filter(|l| l.contains(":CONSOLE") || l.contains("Uncaught"))
        .collect()
}

/// The attributes of every element of the DOM whose opening tag starts with `start` (such as
/// `<rect class="point"`), in document order.
fn elements(dom: &str, start: &str) -> Vec<BTreeMap<String, String>> {
    let mut found = Vec::new();
    let mut rest = dom;
    while let Some(i) = rest.find(start) {
        let tag_start = &rest[i + 1..];
        let end = tag_start.find('>').expect("a closed tag");
        let tag = &tag_start[..end];
        let mut attributes = BTreeMap::new();
        let mut text = tag.split_once(' ').map_or("", |(_, attrs)| attrs);
        while let Some(eq) = text.find("=\"") {
            let name = text[..eq].trim().to_owned();
            let after = &text[eq + 2..];
            let close = after.find('"').expect("a closed attribute");
            attributes.insert(name, after[..close].replace("&amp;", "&"));
            text = &after[close + 1..];
        }
        found.push(attributes);
        rest = &tag_start[end..];
    }
    found
}

fn attr<'a>(element: &'a BTreeMap<String, String>, name: &str) -> &'a str {
    element
        .get(name)
        .map(String::as_str)
        .unwrap_or_else(|| panic!("no {name} in {element:?}"))
}

/// Tracks the known series: hour h of 2026-03-10 counts h + 1 orders worth 2.5 h euros (hour 5
/// stays empty).
async fn track_known_series(client: &Client) {
    let events: Vec<Value> = (0..24)
        .filter(|h| *h != 5)
        .map(|h| {
            json!({
                "key": "shop",
                "at": format!("2026-03-10T{h:02}:30:00Z"),
                "values": {"count": h + 1, "amount": {"eur": f64::from(h) * 2.5}},
            })
        })
        .collect();
    let answer = client.post("/v1/track", &Value::from(events).to_string()).await;
    assert_eq!(answer.ok(), &json!({"tracked": 23}));
}

/// Asserts the page drew the known series' `path`: 24 points and 24 rows, in order, with the
/// values `expected` gives each hour (None: the empty hour 5).
#[track_caller]
fn assert_series(dom: &str, expected: impl Fn(u32) -> Option<String>) {
    assert!(dom.contains("data-state=\"ready\""), "the page is not ready: {dom}");
    let points = elements(dom, "<rect class=\"point\"");
    let rows = elements(dom, "<tr data-at=");
    assert_eq!(points.len(), 24, "points: {points:#?}");
    assert_eq!(rows.len(), 24, "rows: {rows:#?}");
    for h in 0..24_u32 {
        let at = format!("2026-03-10T{h:02}:00:00+00:00");
        let value = expected(h).unwrap_or_default();
        let (point, row) = (&points[h as usize], &rows[h as usize]);
        assert_eq!(attr(point, "data-index"), h.to_string());
        assert_eq!((attr(point, "data-at"), attr(point, "data-value")), (at.as_str(), value.as_str()));
        assert_eq!((attr(row, "data-at"), attr(row, "data-value")), (at.as_str(), value.as_str()));
        let height: f64 = attr(point, "height").parse().expect("a height");
        assert_eq!(height > 0.0, expected(h).is_some_and(|v| v != "0"), "hour {h}: {point:?}");
    }
    // Taller bars for larger values.
    let height = |h: usize| attr(&points[h], "height").parse::<f64>().unwrap();
    assert!(height(23) > height(10) && height(10) > height(1), "{points:#?}");
    let errors = elements(dom, "<pre id=\"errors\"");
    assert_eq!(errors.len(), 1);
    assert!(errors[0].contains_key("hidden"), "script errors: {dom}");
}

fn png_size(path: &Path) -> (u32, u32, usize) {
    let bytes = std::fs::read(path).expect("the screenshot");
    assert!(
        bytes.starts_with(b"\x89PNG\r\n\x1a\n") && &bytes[12..16] == b"IHDR",
        "not a PNG"
    );
    let be = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (be(16), be(20), bytes.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_draws_the_series() {
    chromium();
    let env = Env::url("memory:", None);
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    track_known_series(&client).await;

    let url = server.url(&format!("/?key=shop&granularity=1h&{RANGE}"));
    let page = browse(&url, &["--dump-dom"]);
    assert_series(&page.stdout, |h| (h != 5).then(|| (h + 1).to_string()));
    assert_eq!(console(&page.stderr), Vec::<&str>::new(), "{}", page.stderr);
    // The metric list comes from /v1/metrics, the granularities from /v1/config.
    let options = elements(&page.stdout, "<option value=");
    let values: Vec<&str> = options.iter().map(|o| attr(o, "value")).collect();
    assert!(values.contains(&"shop") && values.contains(&"1h") && values.contains(&"1mo"), "{values:?}");
    assert!(page.stdout.contains("amount.eur"), "the value paths are offered");

    // Another path, chosen by the URL.
    let url = server.url(&format!("/?key=shop&granularity=1h&path=amount.eur&{RANGE}"));
    let page = browse(&url, &["--dump-dom"]);
    assert_series(&page.stdout, |h| {
        (h != 5).then(|| {
            let v = f64::from(h) * 2.5;
            // JavaScript's spelling of the number.
            if v.fract() == 0.0 { format!("{}", v as i64) } else { v.to_string() }
        })
    });

    // A screenshot of the same view is a real picture of the window's size.
    let dir = tempfile::tempdir().unwrap();
    let shot = dir.path().join("dashboard.png");
    let page = browse(&url, &[&format!("--screenshot={}", shot.display())]);
    let (width, height, bytes) = png_size(&shot);
    assert_eq!((width, height), (1000, 900), "{}", page.stderr);
    assert!(bytes > 15_000, "a {bytes}-byte screenshot is too plain to hold the chart");
    assert_eq!(console(&page.stderr), Vec::<&str>::new(), "{}", page.stderr);
    assert_eq!(server.stop().code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_with_a_token() {
    chromium();
    let env = Env::url("memory:", None);
    let server = Server::start(&env, &["--token", "dash-token"]);
    let client = Client::new(&server).with_token("dash-token");
    track_known_series(&client).await;

    // The token in the fragment (never sent to the server) goes to sessionStorage.
    let url = server.url(&format!("/?key=shop&granularity=1h&{RANGE}#token=dash-token"));
    let page = browse(&url, &["--dump-dom"]);
    assert_series(&page.stdout, |h| (h != 5).then(|| (h + 1).to_string()));
    assert_eq!(console(&page.stderr), Vec::<&str>::new(), "{}", page.stderr);

    // Without it the page says what is missing, and the browser's console shows the refused
    // request: the check above does see console errors.
    let url = server.url(&format!("/?key=shop&granularity=1h&{RANGE}"));
    let page = browse(&url, &["--dump-dom"]);
    assert!(page.stdout.contains("data-state=\"error\""), "{}", page.stdout);
    assert!(page.stdout.contains("needs a token"), "{}", page.stdout);
    assert!(elements(&page.stdout, "<rect class=\"point\"").is_empty());
    let logged = console(&page.stderr);
    assert!(
        logged.iter().any(|l| l.contains("401")),
        "the refused request is not in the console log: {}",
        page.stderr
    );
    assert_eq!(server.stop().code, Some(0));
}
