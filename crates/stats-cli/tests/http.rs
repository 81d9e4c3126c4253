//! `stats serve` end to end: the binary as a process on a free port, real HTTP requests.

mod common;
mod serve_support;

use std::time::Instant;

use common::Env;
use serde_json::{Value, json};
use serve_support::{Client, Server};

const DAY: &str = "from=2026-03-10T00:00:00Z&to=2026-03-10T23:59:59Z";

fn at(hour: u32) -> String {
    format!("2026-03-10T{hour:02}:15:00Z")
}

/// The `count` of every hourly bucket of 2026-03-10 (None for an empty bucket).
async fn counts(client: &Client, key: &str) -> Vec<Option<i64>> {
    let doc = client
        .get(&format!("/v1/values?key={key}&granularity=1h&{DAY}"))
        .await;
    let doc = doc.ok();
    assert_eq!(doc["at"].as_array().unwrap().len(), 24, "{doc}");
    doc["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_i64())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route() {
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);

    assert_eq!(client.get("/healthz").await.ok(), &json!({"status": "ok"}));
    let config = client.get("/v1/config").await;
    assert_eq!(
        config.ok()["granularities"],
        json!(["1m", "1h", "1d", "1w", "1mo", "1q", "1y"])
    );
    assert_eq!(config.json["time_zone"], "UTC");

    // One event, then an array; read back at once (read-your-writes through the buffer).
    let one = client
        .post(
            "/v1/track",
            &format!(
                r#"{{"key":"orders","at":"{}","values":{{"count":1,"amount":{{"eur":10}}}}}}"#,
                at(3)
            ),
        )
        .await;
    assert_eq!(one.ok(), &json!({"tracked": 1}));
    let many: Vec<Value> = (0..5)
        .map(|h| json!({"key": "orders", "at": at(h), "values": {"count": 2, "amount": {"eur": 2.5}}}))
        .collect();
    let many = client
        .post("/v1/track", &Value::from(many).to_string())
        .await;
    assert_eq!(many.ok(), &json!({"tracked": 5}));
    let set = client
        .post(
            "/v1/track",
            &format!(
                r#"{{"key":"temp","at":"{}","values":{{"c":7}},"op":"max"}}"#,
                at(1)
            ),
        )
        .await;
    assert_eq!(set.ok(), &json!({"tracked": 1}));
    let mut expected = vec![None; 24];
    for (h, n) in [(0, 2), (1, 2), (2, 2), (3, 3), (4, 2)] {
        expected[h] = Some(n);
    }
    assert_eq!(counts(&client, "orders").await, expected);
    let served = client
        .get(&format!("/v1/values?key=orders&granularity=1h&{DAY}"))
        .await
        .ok()
        .clone();
    assert_eq!(
        served["values"][3],
        json!({"count": 3, "amount": {"eur": 12.5}})
    );
    assert_eq!(served["values"][5], json!({}));
    assert_eq!(served["at"][0], "2026-03-10T00:00:00+00:00");
    let daily = client
        .get("/v1/values?key=orders&granularity=1d&from=2026-03-10&to=2026-03-10")
        .await;
    assert_eq!(
        daily.ok()["values"],
        json!([{"count": 11, "amount": {"eur": 22.5}}])
    );

    let metrics = client
        .get("/v1/metrics?from=2026-03-01&to=2026-03-31")
        .await;
    assert_eq!(metrics.ok(), &json!({"metrics": {"orders": 6, "temp": 1}}));

    // Counters.
    let inc = client.post("/v1/counters/shop/next/inc", "").await;
    assert_eq!(inc.ok(), &json!({"value": 1}));
    let inc = client
        .post("/v1/counters/shop/next/inc", r#"{"by": 5, "default": 100}"#)
        .await;
    assert_eq!(
        inc.ok(),
        &json!({"value": 6}),
        "created at 1 above, so no default"
    );
    let inc = client
        .post("/v1/counters/shop/fresh/inc", r#"{"default": 100}"#)
        .await;
    assert_eq!(inc.ok(), &json!({"value": 101}));
    assert_eq!(
        client.get("/v1/counters/shop/next").await.ok(),
        &json!({"value": 6})
    );
    client
        .get("/v1/counters/shop/nothing")
        .await
        .refused(404, "\"nothing\"");
    assert_eq!(
        client
            .put("/v1/counters/shop/next", r#"{"value": -7}"#)
            .await
            .ok(),
        &json!({"value": -7})
    );
    let swapped = client
        .post(
            "/v1/counters/shop/next/cas",
            r#"{"expected": -7, "new": 40}"#,
        )
        .await;
    assert_eq!(swapped.ok(), &json!({"swapped": true, "value": 40}));
    let refused = client
        .post(
            "/v1/counters/shop/next/cas",
            r#"{"expected": -7, "new": 41}"#,
        )
        .await;
    assert_eq!(
        (refused.status, &refused.json),
        (409, &json!({"swapped": false, "value": 40}))
    );
    assert_eq!(
        client.get("/v1/counters/shop").await.ok(),
        &json!({"namespace": "shop", "counters": {"fresh": 101, "next": 40}})
    );
    let info = client.get("/v1/counters").await;
    assert_eq!(
        info.ok()["namespaces"],
        json!([{"namespace": "shop", "counters": 2}])
    );
    assert_eq!(
        client.delete("/v1/counters/shop/next").await.ok(),
        &json!({"deleted": true})
    );
    client
        .delete("/v1/counters/shop/next")
        .await
        .refused(404, "\"next\"");
    assert_eq!(
        client.delete("/v1/counters/shop").await.ok(),
        &json!({"deleted": 1})
    );
    assert_eq!(
        client.get("/v1/counters/shop").await.ok()["counters"],
        json!({})
    );

    // Throttles: a text TTL and seconds as a number.
    let first = client
        .post("/v1/throttles/mail/acquire", r#"{"ttl": "30s"}"#)
        .await;
    assert_eq!(first.ok(), &json!({"acquired": true}));
    let second = client
        .post("/v1/throttles/mail/acquire", r#"{"ttl": 30}"#)
        .await;
    assert_eq!(
        (second.status, &second.json),
        (409, &json!({"acquired": false}))
    );
    let short = client
        .post("/v1/throttles/tick/acquire", r#"{"ttl": 0.2}"#)
        .await;
    assert_eq!(short.ok(), &json!({"acquired": true}));
    tokio::time::sleep(std::time::Duration::from_millis(1300)).await;
    let again = client
        .post("/v1/throttles/tick/acquire", r#"{"ttl": 0.2}"#)
        .await;
    assert_eq!(again.ok(), &json!({"acquired": true}), "expired");

    // The dashboard and its assets.
    for (path, kind, needle) in [
        ("/", "text/html", "<svg id=\"chart\""),
        ("/app.js", "text/javascript", "/v1/values"),
        ("/style.css", "text/css", "#chart"),
    ] {
        let (status, content_type, body) = client.text(path).await;
        assert_eq!(status, 200, "{path}");
        assert!(content_type.starts_with(kind), "{path}: {content_type}");
        assert!(body.contains(needle), "{path}");
    }

    // After a graceful stop the store holds exactly what the API served: the CLI's document
    // is the API's, byte for byte as JSON.
    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stdout.contains("everything written"), "{run:#?}");
    let cli = env.values_json(
        "orders",
        &[
            "--granularity",
            "1h",
            "--from",
            "2026-03-10T00:00:00Z",
            "--to",
            "2026-03-10T23:59:59Z",
        ],
    );
    assert_eq!(cli, served);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_at_the_edges() {
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    let big = 9_007_199_254_740_993_i64; // 2^53 + 1: not a double
    let events = json!([
        {"key": "edges", "at": at(0), "values": {"n": big}},
        {"key": "edges", "at": at(1), "values": {"n": i64::MAX}, "op": "set"},
        {"key": "edges", "at": at(2), "values": {"n": i64::MIN}, "op": "set"},
        {"key": "edges", "at": at(3), "values": {"n": -0.0}},
        {"key": "edges", "at": at(4), "values": {"n": 1.0e300}, "op": "set"},
    ]);
    assert_eq!(
        client.post("/v1/track", &events.to_string()).await.ok(),
        &json!({"tracked": 5})
    );
    let doc = client
        .get(&format!("/v1/values?key=edges&granularity=1h&{DAY}"))
        .await;
    let values = &doc.ok()["values"];
    assert_eq!(values[0]["n"].as_i64(), Some(big));
    assert_eq!(values[1]["n"].as_i64(), Some(i64::MAX));
    assert_eq!(values[2]["n"].as_i64(), Some(i64::MIN));
    assert_eq!(values[4]["n"].as_f64(), Some(1.0e300));
    // An increment past i64::MAX is refused by the store when it is written: the counter API
    // answers at once.
    client
        .put(
            "/v1/counters/edge/max",
            &format!(r#"{{"value": {}}}"#, i64::MAX),
        )
        .await
        .ok();
    let over = client
        .post("/v1/counters/edge/max/inc", r#"{"by": 1}"#)
        .await;
    assert_eq!(over.status, 400, "{over:#?}");
    assert_eq!(
        client.get("/v1/counters/edge/max").await.ok(),
        &json!({"value": i64::MAX})
    );
    assert_eq!(server.stop().code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_are_json_errors_naming_the_input() {
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    let good = |h: u32| json!({"key": "bad", "at": at(h), "values": {"count": 1}});
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        ("POST", "/v1/track".into(), "{".into(), 400, "not an event"),
        (
            "POST",
            "/v1/track".into(),
            String::new(),
            400,
            "not an event",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":1},"when":5}"#.into(),
            400,
            "when",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"","values":{"count":1}}"#.into(),
            400,
            "\"key\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"a::b","values":{"count":1}}"#.into(),
            400,
            "\"a::b\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":9223372036854775808}}"#.into(),
            400,
            "9223372036854775808",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":-9223372036854775809}}"#.into(),
            400,
            "-9223372036854775809",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":"1"}}"#.into(),
            400,
            "\"values\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"a.b":1}}"#.into(),
            400,
            "\"values\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":1},"at":1e300}"#.into(),
            400,
            "\"at\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":1},"at":"yesterday"}"#.into(),
            400,
            "\"at\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            r#"{"key":"bad","values":{"count":1},"op":"add"}"#.into(),
            400,
            "\"add\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            json!([good(0), good(1), {"key": "bad", "values": {"count": true}}]).to_string(),
            400,
            "[2]",
        ),
        (
            "POST",
            "/v1/track".into(),
            json!([good(0), good(1), 7]).to_string(),
            400,
            "[2]",
        ),
        (
            "POST",
            "/v1/track".into(),
            json!([good(0), {"key": "bad", "at": -377_705_116_800_i64, "values": {"count": 1}}])
                .to_string(),
            400,
            "[1]: \"at\"",
        ),
        (
            "POST",
            "/v1/track".into(),
            json!([good(0), {"key": "bad", "at": 253_402_300_799_i64, "values": {"count": 1}}])
                .to_string(),
            400,
            "[1]: \"at\"",
        ),
        // The first instant there is: parsed, but it has no bucket (its minute starts before
        // it), found before the good event before it is written.
        (
            "POST",
            "/v1/track".into(),
            json!([good(0), {"key": "bad", "at": -377_705_023_201_i64, "values": {"count": 1}}])
                .to_string(),
            400,
            "[1]: \"at\": -009999-01-02T01:59:59Z has no 1m bucket",
        ),
        (
            "GET",
            "/v1/values?granularity=1h".into(),
            String::new(),
            400,
            "\"key\"",
        ),
        (
            "GET",
            "/v1/values?key=bad&granularity=2x".into(),
            String::new(),
            400,
            "granularity",
        ),
        (
            "GET",
            "/v1/values?key=bad&granularity=5m".into(),
            String::new(),
            400,
            "not tracked",
        ),
        (
            "GET",
            "/v1/values?key=bad&from=yesterday-ish".into(),
            String::new(),
            400,
            "from",
        ),
        (
            "GET",
            "/v1/values?key=bad&from=2026-03-11&to=2026-03-10".into(),
            String::new(),
            400,
            "from",
        ),
        (
            "GET",
            "/v1/values?key=bad&to=99999999999999999999".into(),
            String::new(),
            400,
            "to",
        ),
        (
            "GET",
            "/v1/values?key=bad&kye=1".into(),
            String::new(),
            400,
            "\"kye\"",
        ),
        (
            "GET",
            "/v1/values?key=bad&key=other".into(),
            String::new(),
            400,
            "\"key\"",
        ),
        (
            "GET",
            "/v1/values?key=a%3A%3Ab".into(),
            String::new(),
            400,
            "\"a::b\"",
        ),
        (
            "GET",
            "/v1/metrics?from=never".into(),
            String::new(),
            400,
            "from",
        ),
        ("GET", "/v1/track".into(), String::new(), 405, "GET"),
        ("DELETE", "/v1/values".into(), String::new(), 405, "DELETE"),
        (
            "GET",
            "/v1/nothing".into(),
            String::new(),
            404,
            "/v1/nothing",
        ),
        (
            "GET",
            "/favicon.ico".into(),
            String::new(),
            404,
            "/favicon.ico",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            r#"{"by": 1.5}"#.into(),
            400,
            "\"by\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            r#"{"by": 9223372036854775808}"#.into(),
            400,
            "\"by\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            r#"{"by": -0.0}"#.into(),
            400,
            "\"by\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            r#"{"default": "1"}"#.into(),
            400,
            "\"default\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            r#"{"bye": 1}"#.into(),
            400,
            "\"bye\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            "[1]".into(),
            400,
            "object",
        ),
        (
            "POST",
            "/v1/counters/c/n/inc".into(),
            "{".into(),
            400,
            "not JSON",
        ),
        (
            "POST",
            "/v1/counters/bad%3A%3Ans/n/inc".into(),
            String::new(),
            400,
            "bad::ns",
        ),
        (
            "POST",
            "/v1/counters/c/%FF/inc".into(),
            String::new(),
            400,
            "UTF-8",
        ),
        (
            "PUT",
            "/v1/counters/c/n".into(),
            "{}".into(),
            400,
            "\"value\"",
        ),
        (
            "POST",
            "/v1/counters/c/n/cas".into(),
            r#"{"expected": 0}"#.into(),
            400,
            "\"new\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            "{}".into(),
            400,
            "\"ttl\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            r#"{"ttl": "0s"}"#.into(),
            400,
            "\"ttl\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            r#"{"ttl": -1}"#.into(),
            400,
            "\"ttl\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            r#"{"ttl": 1e300}"#.into(),
            400,
            "\"ttl\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            r#"{"ttl": true}"#.into(),
            400,
            "\"ttl\"",
        ),
        (
            "POST",
            "/v1/throttles/t/acquire".into(),
            r#"{"ttl": "soon"}"#.into(),
            400,
            "\"soon\"",
        ),
    ];
    for (method, path, body, status, needle) in &cases {
        let body = (!body.is_empty() || *method != "GET").then(|| body.clone().into_bytes());
        let answer = client.send(method, path, body).await;
        assert_eq!(
            answer
                .headers
                .get("content-type")
                .map(|v| v.to_str().unwrap()),
            Some("application/json"),
            "{method} {path}: {answer:#?}"
        );
        assert!(
            answer.status == *status
                && answer.json["error"]
                    .as_str()
                    .is_some_and(|m| m.contains(needle)),
            "{method} {path}: expected {status} naming {needle:?}, got {answer:#?}"
        );
    }
    let not_utf8 = client
        .send("POST", "/v1/track", Some(vec![b'{', 0xff, b'}']))
        .await;
    not_utf8.refused(400, "UTF-8");
    // Nothing of any refused request was written (the good events before a bad one included).
    assert_eq!(counts(&client, "bad").await, vec![None; 24]);
    assert_eq!(
        client.get("/v1/metrics?from=-9999y").await.ok(),
        &json!({"metrics": {}})
    );
    assert_eq!(
        client.get("/v1/counters/c").await.ok()["counters"],
        json!({})
    );
    assert_eq!(server.stop().code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn body_and_batch_limits() {
    let env = Env::sqlite();
    let server = Server::start(&env, &["--max-body", "2000", "--max-batch", "5"]);
    let client = Client::new(&server);
    let event = |h: u32| json!({"key": "lim", "at": at(h), "values": {"count": 1}});
    let five: Vec<Value> = (0..5).map(event).collect();
    assert_eq!(
        client
            .post("/v1/track", &Value::from(five).to_string())
            .await
            .ok(),
        &json!({"tracked": 5})
    );
    let six: Vec<Value> = (0..6).map(event).collect();
    client
        .post("/v1/track", &Value::from(six).to_string())
        .await
        .refused(400, "at most 5");
    let padded = format!(
        r#"{{"key":"lim","at":"{}","values":{{"count":1}}{}}}"#,
        at(9),
        " ".repeat(2100)
    );
    let big = client.post("/v1/track", &padded).await;
    big.refused(413, "--max-body (2000 bytes)");
    // The limit holds for every route with a body.
    client
        .put(
            "/v1/counters/c/n",
            &format!(r#"{{"value": 1{}}}"#, " ".repeat(2100)),
        )
        .await
        .refused(413, "--max-body");
    let mut expected = vec![None; 24];
    for slot in expected.iter_mut().take(5) {
        *slot = Some(1);
    }
    assert_eq!(counts(&client, "lim").await, expected);
    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token() {
    let env = Env::sqlite();
    let server = Server::start(&env, &["--token", "s3cret-token"]);
    let anonymous = Client::new(&server);
    for path in [
        "/v1/config",
        "/v1/values?key=x",
        "/v1/metrics",
        "/v1/counters",
    ] {
        let answer = anonymous.get(path).await;
        answer.refused(401, "missing token");
        assert_eq!(
            answer
                .headers
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap()),
            Some("Bearer realm=\"stats\""),
            "{path}"
        );
    }
    // Refused before the body is read or checked: a bad or huge body gets 401 too.
    anonymous
        .post("/v1/track", "{")
        .await
        .refused(401, "missing token");
    for wrong in ["s3cret-toke", "s3cret-tokenn", "S3CRET-TOKEN", ""] {
        anonymous
            .with_token(wrong)
            .get("/v1/config")
            .await
            .refused(401, "");
    }
    // Another scheme is not a bearer token.
    for header in [
        "Basic czNjcmV0LXRva2Vu",
        "Token s3cret-token",
        "s3cret-token",
    ] {
        let answer = anonymous.with_authorization(header).get("/v1/config").await;
        answer.refused(401, "token");
    }
    // Open without a token: the health check and the dashboard (which asks for the token).
    assert_eq!(
        anonymous.get("/healthz").await.ok(),
        &json!({"status": "ok"})
    );
    assert_eq!(anonymous.text("/").await.0, 200);
    let client = anonymous.with_token("s3cret-token");
    assert_eq!(
        client
            .post(
                "/v1/track",
                &json!({"key": "auth", "at": at(2), "values": {"count": 4}}).to_string()
            )
            .await
            .ok(),
        &json!({"tracked": 1})
    );
    assert_eq!(counts(&client, "auth").await[2], Some(4));
    assert_eq!(server.stop().code, Some(0));

    // STATS_TOKEN works as --token does.
    let server = Server::start_with(&env, &[], &[("STATS_TOKEN", "from-env")]);
    let anonymous = Client::new(&server);
    anonymous
        .get("/v1/config")
        .await
        .refused(401, "missing token");
    anonymous
        .with_token("from-env")
        .get("/v1/config")
        .await
        .ok();
    assert_eq!(server.stop().code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_batches_add_up_exactly() {
    const TASKS: i64 = 8;
    const POSTS: i64 = 60;
    const BATCH: i64 = 25;
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for task in 0..TASKS {
        let client = client.clone();
        tasks.push(tokio::spawn(async move {
            for post in 0..POSTS {
                let batch: Vec<Value> = (0..BATCH)
                    .map(|i| {
                        let hour = ((task + post + i) % 24) as u32;
                        json!({"key": "load", "at": at(hour), "values": {"count": 1, "sum": task}})
                    })
                    .collect();
                let answer = client
                    .post("/v1/track", &Value::from(batch).to_string())
                    .await;
                assert_eq!(answer.ok(), &json!({"tracked": BATCH}));
            }
        }));
    }
    for task in tasks {
        task.await.expect("a task");
    }
    let elapsed = started.elapsed();
    let total = TASKS * POSTS * BATCH;
    eprintln!(
        "{total} events in {} requests in {elapsed:?}: {:.0} events/s",
        TASKS * POSTS,
        total as f64 / elapsed.as_secs_f64()
    );
    let daily = client
        .get("/v1/values?key=load&granularity=1d&from=2026-03-10&to=2026-03-10")
        .await;
    let sum_expected: i64 = (0..TASKS).map(|t| t * POSTS * BATCH).sum();
    assert_eq!(
        daily.ok()["values"],
        json!([{"count": total, "sum": sum_expected}])
    );
    let hourly: i64 = counts(&client, "load")
        .await
        .iter()
        .map(|c| c.unwrap())
        .sum();
    assert_eq!(hourly, total);
    // Flushed at the stop: the store alone has the same totals.
    assert_eq!(server.stop().code, Some(0));
    let cli = env.values_json(
        "load",
        &[
            "--granularity",
            "1d",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
        ],
    );
    assert_eq!(
        cli["values"],
        json!([{"count": total, "sum": sum_expected}])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_writes_the_buffer_and_a_new_process_sees_it() {
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    for h in 0..24 {
        let batch: Vec<Value> = (0..=h)
            .map(|_| json!({"key": "term", "at": at(h), "values": {"count": 1}}))
            .collect();
        client
            .post("/v1/track", &Value::from(batch).to_string())
            .await
            .ok();
    }
    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");
    assert!(run.stderr.contains("stopping"), "{run:#?}");
    // A new server on the same file serves what the first one buffered.
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    let expected: Vec<Option<i64>> = (1..=24).map(Some).collect();
    assert_eq!(counts(&client, "term").await, expected);
    assert_eq!(server.stop().code, Some(0));
}

/// A request whose body is still arriving when SIGTERM comes is finished and written; a new
/// connection after the signal is refused.
#[test]
fn sigterm_finishes_the_request_in_flight() {
    use std::io::{Read, Write};
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let addr = server.base.trim_start_matches("http://").to_owned();
    let events: Vec<Value> = (0..24)
        .map(|h| json!({"key": "flight", "at": at(h), "values": {"count": 2}}))
        .collect();
    let body = Value::from(events).to_string();
    let mut stream = std::net::TcpStream::connect(&addr).expect("connects");
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let head = format!(
        "POST /v1/track HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    let (first, rest) = body.split_at(body.len() / 2);
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(first.as_bytes()).unwrap();
    stream.flush().unwrap();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let pid = server.pid().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(
        std::net::TcpStream::connect(&addr).is_err(),
        "a new connection is accepted after SIGTERM"
    );
    stream.write_all(rest.as_bytes()).unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with(r#"{"tracked":24}"#), "{answer}");
    let run = server.stop_waiting();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let cli = env.values_json(
        "flight",
        &[
            "--granularity",
            "1d",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
        ],
    );
    assert_eq!(cli["values"], json!([{"count": 48}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_options_fail_at_start() {
    let env = Env::sqlite();
    env.run(&["serve", "--listen", "localhost"])
        .fails(2, "--listen");
    env.run(&["serve", "--listen", "127.0.0.1:0", "--token", ""])
        .fails(2, "--token");
    // A port in use.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    env.run(&["serve", "--listen", &format!("127.0.0.1:{port}")])
        .fails(1, "cannot listen");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_round_trip() {
    let env = Env::redis();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);
    let events: Vec<Value> = (0..24)
        .map(|h| json!({"key": "redis", "at": at(h), "values": {"count": h + 1}}))
        .collect();
    assert_eq!(
        client
            .post("/v1/track", &Value::from(events).to_string())
            .await
            .ok(),
        &json!({"tracked": 24})
    );
    let expected: Vec<Option<i64>> = (1..=24).map(Some).collect();
    assert_eq!(counts(&client, "redis").await, expected);
    assert_eq!(
        client
            .post("/v1/counters/r/n/inc", r#"{"by": 3}"#)
            .await
            .ok(),
        &json!({"value": 3})
    );
    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");
    let cli = env.values_json(
        "redis",
        &[
            "--granularity",
            "1h",
            "--from",
            "2026-03-10T00:00:00Z",
            "--to",
            "2026-03-10T23:00:00Z",
        ],
    );
    let got: Vec<Option<i64>> = cli["values"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["count"].as_i64())
        .collect();
    assert_eq!(got, expected);
}

/// `GET /metrics` with an optional token: status, content type and body.
async fn scrape(server: &Server, token: Option<&str>) -> (u16, String, String) {
    let client = Client::new(server);
    match token {
        Some(token) => client.with_token(token).text("/metrics").await,
        None => client.text("/metrics").await,
    }
}

/// A `GET /metrics` answered 200 in the Prometheus content type: parsed, and its text.
struct Exposed {
    scrape: prometheus_parse::Scrape,
    text: String,
}

async fn exposition(server: &Server, token: Option<&str>) -> Exposed {
    let (status, kind, text) = scrape(server, token).await;
    assert_eq!(status, 200, "{text}");
    assert_eq!(kind, stats::metrics::CONTENT_TYPE);
    let scrape = prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned())))
        .unwrap_or_else(|e| panic!("not Prometheus text ({e}): {text}"));
    Exposed { scrape, text }
}

/// The value of the sample `metric` with exactly `labels`.
fn sample(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    let found: Vec<f64> = scrape
        .samples
        .iter()
        .filter(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => *v,
            other => panic!("{metric}: not a number: {other:?}"),
        })
        .collect();
    assert!(found.len() <= 1, "{metric} {labels:?} twice");
    found.first().copied()
}

/// `stats_http_requests_total{route, status}`. prometheus-parse 0.2 skips a sample whose label
/// value holds a `}` (its line pattern stops the labels at the first one), as in the route
/// templates `/v1/counters/{namespace}/{key}`: those are read from the text, exactly.
fn requests(exposed: &Exposed, route: &str, status: &str) -> Option<f64> {
    if !route.contains('}') {
        return sample(
            &exposed.scrape,
            "stats_http_requests_total",
            &[("route", route), ("status", status)],
        );
    }
    let head = format!("stats_http_requests_total{{route=\"{route}\",status=\"{status}\"}} ");
    exposed
        .text
        .lines()
        .find_map(|l| l.strip_prefix(&head))
        .map(|v| v.parse().expect("a number"))
}

/// Paths no route has, hostile ones included: each must count under `route="unmatched"`.
fn unmatched_paths() -> Vec<String> {
    let mut paths: Vec<String> = (0..40).map(|i| format!("/nope/{i}")).collect();
    paths.extend(
        [
            "/a.b.c",
            "/%00%01%7f",
            "/%E2%80%AE%F0%9F%92%A9",
            "/v1/track/extra",
            "/v2/values",
            "/metrics/",
            "/stats_overflow=true",
            "/route=x.status=1",
        ]
        .map(str::to_owned),
    );
    paths.push(format!("/{}", "x".repeat(4000)));
    paths
}

/// The sum of the integer at `path` (one object level per element) over a series document's
/// buckets.
fn total(doc: &Value, path: &[&str]) -> i64 {
    doc["values"]
        .as_array()
        .unwrap_or_else(|| panic!("no values: {doc}"))
        .iter()
        .map(|v| {
            path.iter()
                .fold(v, |v, k| &v[*k])
                .as_i64()
                .unwrap_or_default()
        })
        .sum()
}

/// `--from` and `--to` (unix seconds) around the hours of this test, for `stats values -g 1h`.
fn this_hour_and_next(started: std::time::SystemTime) -> [String; 4] {
    let secs = |t: std::time::SystemTime| {
        t.duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
    };
    [
        "--from".into(),
        (secs(started) - 3600).to_string(),
        "--to".into(),
        (secs(std::time::SystemTime::now()) + 3600).to_string(),
    ]
}

fn values_around(env: &Env, key: &str, started: std::time::SystemTime) -> Value {
    let range = this_hour_and_next(started);
    let mut args = vec!["--granularity", "1h"];
    args.extend(range.iter().map(String::as_str));
    env.values_json(key, &args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_counts_requests_by_route_template_and_writes_nothing_by_default() {
    let started = std::time::SystemTime::now();
    let env = Env::sqlite();
    let server = Server::start(&env, &[]);
    let client = Client::new(&server);

    let events: Vec<Value> = (0..3)
        .map(|h| json!({"key": "seen", "at": at(h), "values": {"count": 1}}))
        .collect();
    client
        .post("/v1/track", &Value::from(events).to_string())
        .await
        .ok();
    // Refused whole: no event of it counts as tracked.
    client
        .post(
            "/v1/track",
            r#"[{"key": "seen", "values": {"count": 1}}, {"key": "a::b", "values": {"count": 1}}]"#,
        )
        .await
        .refused(400, "a::b");
    client
        .post(
            "/v1/track",
            &json!({"key": "seen", "values": {"n": i64::MAX}}).to_string(),
        )
        .await
        .ok();
    for _ in 0..2 {
        client.post("/v1/counters/ns/k/inc", "").await.ok();
    }
    client
        .get("/v1/counters/ns/missing")
        .await
        .refused(404, "missing");
    client.delete("/v1/values").await.refused(405, "DELETE");
    client.get("/healthz").await.ok();
    assert_eq!(client.text("/app.js").await.0, 200);
    assert_eq!(client.text("/").await.0, 200);
    let unmatched = unmatched_paths();
    for path in &unmatched {
        assert_eq!(client.get(path).await.status, 404, "{path}");
    }

    let first = exposition(&server, None).await;
    assert_eq!(requests(&first, "/v1/track", "200"), Some(2.0));
    assert_eq!(requests(&first, "/v1/track", "400"), Some(1.0));
    assert_eq!(
        requests(&first, "/v1/counters/{namespace}/{key}/inc", "200"),
        Some(2.0)
    );
    assert_eq!(
        requests(&first, "/v1/counters/{namespace}/{key}", "404"),
        Some(1.0)
    );
    assert_eq!(requests(&first, "/v1/values", "405"), Some(1.0));
    assert_eq!(requests(&first, "/healthz", "200"), Some(1.0));
    assert_eq!(requests(&first, "dashboard", "200"), Some(2.0));
    assert_eq!(
        requests(&first, "unmatched", "404"),
        Some(unmatched.len() as f64)
    );
    // The scrape itself is counted when it is answered: not in its own body.
    assert_eq!(requests(&first, "/metrics", "200"), None);
    // Every label set is a route's, whatever paths were sent (read from the text: see
    // `requests`).
    let routes: std::collections::BTreeSet<&str> = first
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("stats_http_requests_total{route=\""))
        .map(|l| l.split_once("\",status=").expect("route, then status").0)
        .collect();
    assert_eq!(
        routes.into_iter().collect::<Vec<_>>(),
        [
            "/healthz",
            "/v1/counters/{namespace}/{key}",
            "/v1/counters/{namespace}/{key}/inc",
            "/v1/track",
            "/v1/values",
            "dashboard",
            "unmatched"
        ]
    );
    assert_eq!(
        sample(&first.scrape, "stats_events_tracked_total", &[]),
        Some(4.0)
    );
    assert_eq!(
        sample(
            &first.scrape,
            "stats_http_request_duration_seconds_count",
            &[("route", "/v1/track")]
        ),
        Some(3.0)
    );
    let buckets = first
        .scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == "stats_http_request_duration_seconds"
                && s.labels.get("route") == Some("unmatched")
        })
        .expect("the unmatched routes' histogram");
    let prometheus_parse::Value::Histogram(buckets) = &buckets.value else {
        panic!("not a histogram: {buckets:?}");
    };
    let last = buckets.last().expect("buckets");
    assert!(last.less_than.is_infinite(), "{buckets:?}");
    assert_eq!(last.count, unmatched.len() as f64);
    assert!(sample(&first.scrape, "stats_buffer_pending", &[]).is_some());
    assert!(sample(&first.scrape, "stats_buffer_flushed_total", &[]).is_some());
    assert_eq!(
        sample(
            &first.scrape,
            "stats_metrics_refused_total",
            &[("reason", "name")]
        ),
        Some(0.0),
        "every route label is a valid path level"
    );

    let second = exposition(&server, None).await;
    assert_eq!(requests(&second, "/metrics", "200"), Some(1.0));
    assert_eq!(requests(&second, "/v1/track", "200"), Some(2.0));

    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");
    // Without --record-metrics nothing of them is in the store; the tracked events are.
    for key in [
        "stats_http_requests_total",
        "stats_http_request_duration_seconds",
        "stats_events_tracked_total",
        "stats_buffer_pending",
        "stats_buffer_flushed_total",
    ] {
        let doc = values_around(&env, key, started);
        assert!(
            doc["values"]
                .as_array()
                .unwrap()
                .iter()
                .all(|v| v == &json!({})),
            "{key} was written: {doc}"
        );
    }
    let seen = env.values_json(
        "seen",
        &[
            "--granularity",
            "1d",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
        ],
    );
    assert_eq!(seen["values"], json!([{"count": 3}]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_follows_the_token_rule_of_v1() {
    let env = Env::sqlite();
    let server = Server::start(&env, &["--token", "s3cret"]);
    let (status, kind, body) = scrape(&server, None).await;
    assert_eq!((status, kind.as_str()), (401, "application/json"), "{body}");
    assert!(body.contains("missing token"), "{body}");
    let (status, _, body) = scrape(&server, Some("wrong")).await;
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("wrong token"), "{body}");
    // /healthz stays open.
    Client::new(&server).get("/healthz").await.ok();
    let scraped = exposition(&server, Some("s3cret")).await;
    assert_eq!(requests(&scraped, "/metrics", "401"), Some(2.0));
    assert_eq!(requests(&scraped, "/healthz", "200"), Some(1.0));
    assert_eq!(server.stop().code, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn record_metrics_keeps_the_servers_metrics_in_the_store() {
    let started = std::time::SystemTime::now();
    let env = Env::sqlite();
    let server = Server::start(&env, &["--record-metrics"]);
    let client = Client::new(&server);
    for h in 0..5 {
        let event = json!({"key": "rec", "at": at(h), "values": {"count": 1}});
        client.post("/v1/track", &event.to_string()).await.ok();
    }
    client
        .post("/v1/track", r#"{"key":"a::b","values":{"count":1}}"#)
        .await
        .refused(400, "a::b");
    for path in ["/nope", "/a.b", "/%00"] {
        assert_eq!(client.get(path).await.status, 404);
    }
    // Exposed as without the flag.
    let scraped = exposition(&server, None).await;
    assert_eq!(requests(&scraped, "/v1/track", "200"), Some(5.0));
    let run = server.stop();
    assert_eq!(run.code, Some(0), "{run:#?}");

    // After SIGTERM, everything counted is in the store, the scrape included.
    let doc = values_around(&env, "stats_http_requests_total", started);
    assert_eq!(
        total(&doc, &["route=/v1/track", "status=200", "count"]),
        5,
        "{doc}"
    );
    assert_eq!(
        total(&doc, &["route=/v1/track", "status=400", "count"]),
        1,
        "{doc}"
    );
    assert_eq!(
        total(&doc, &["route=unmatched", "status=404", "count"]),
        3,
        "{doc}"
    );
    assert_eq!(
        total(&doc, &["route=/metrics", "status=200", "count"]),
        1,
        "{doc}"
    );
    let events = values_around(&env, "stats_events_tracked_total", started);
    assert_eq!(total(&events, &["count"]), 5, "{events}");
    let durations = values_around(&env, "stats_http_request_duration_seconds", started);
    assert_eq!(
        total(&durations, &["route=/v1/track", "count"]),
        6,
        "{durations}"
    );
    assert_eq!(
        total(&durations, &["route=/v1/track", "le", "+Inf"]),
        6,
        "{durations}"
    );
    // The buffer's gauge, read at start (whether the buffer flushed before the end is up to
    // its interval: its `stats_buffer_flushed_total` is not checked here).
    let pending = values_around(&env, "stats_buffer_pending", started);
    assert!(
        pending["values"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["last"].is_number()),
        "{pending}"
    );
    // The events themselves, as always.
    let rec = env.values_json(
        "rec",
        &[
            "--granularity",
            "1d",
            "--from",
            "2026-03-10",
            "--to",
            "2026-03-10",
        ],
    );
    assert_eq!(rec["values"], json!([{"count": 5}]));
}
