//! What the `stats serve` suites share: the server run as a process on a free port, and a small
//! HTTP client answering (status, headers, JSON).
#![allow(dead_code, unreachable_pub)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reqwest::header::HeaderMap;
use serde_json::Value;

use crate::common::{Env, Run};

/// A running `stats serve`.
pub struct Server {
    child: Option<Child>,
    /// `http://127.0.0.1:<port>`.
    pub base: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: Vec<std::thread::JoinHandle<()>>,
}

impl Server {
    /// Starts `stats serve --listen 127.0.0.1:0 <extra>` on `env`'s store and waits for its
    /// `listening on` line (at most 30 s).
    pub fn start(env: &Env, extra: &[&str]) -> Server {
        Server::start_with(env, extra, &[])
    }

    /// [`Server::start`] with environment variables.
    pub fn start_with(env: &Env, extra: &[&str], vars: &[(&str, &str)]) -> Server {
        let mut child = env
            .command()
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(extra)
            .envs(vars.iter().copied())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the stats binary starts");
        let stdout = Arc::new(Mutex::new(String::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (first, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped");
        let kept = Arc::clone(&stdout);
        let out_reader = std::thread::spawn(move || {
            let mut out = BufReader::new(out);
            let mut line = String::new();
            let _ = out.read_line(&mut line);
            kept.lock().unwrap().push_str(&line);
            let _ = first.send(line);
            let mut rest = String::new();
            let _ = out.read_to_string(&mut rest);
            kept.lock().unwrap().push_str(&rest);
        });
        let err = child.stderr.take().expect("piped");
        let kept = Arc::clone(&stderr);
        let err_reader = std::thread::spawn(move || {
            let mut err = BufReader::new(err);
            let mut line = String::new();
            while err.read_line(&mut line).unwrap_or(0) > 0 {
                kept.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        let line = match lines.recv_timeout(Duration::from_secs(30)) {
            Ok(line) => line,
            Err(e) => {
                let _ = child.kill();
                panic!(
                    "stats serve printed no `listening on` line ({e}); stderr: {}",
                    stderr.lock().unwrap()
                );
            }
        };
        let Some(base) = line.trim().strip_prefix("listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            std::thread::sleep(Duration::from_millis(100));
            panic!(
                "stats serve did not start: stdout {line:?}, stderr: {}",
                stderr.lock().unwrap()
            );
        };
        assert!(base.starts_with("http://127.0.0.1:"), "{line}");
        Server {
            base: base.to_owned(),
            child: Some(child),
            stdout,
            stderr,
            readers: vec![out_reader, err_reader],
        }
    }

    /// The URL of `path` (which starts with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// Sends SIGTERM and waits (at most 60 s) for the process to end; returns what it printed.
    pub fn stop(self) -> Run {
        let status = std::process::Command::new("kill")
            .args(["-TERM", &self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        self.stop_waiting()
    }

    /// Waits (at most 60 s) for the process to end (after a signal sent otherwise).
    pub fn stop_waiting(mut self) -> Run {
        let mut child = self.child.take().expect("running");
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "stats serve did not stop within 60 s of SIGTERM; stderr: {}",
                    self.stderr.lock().unwrap()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
        Run {
            code: status.code(),
            stdout: self.stdout.lock().unwrap().clone(),
            stderr: self.stderr.lock().unwrap().clone(),
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// An answer: status, headers, and the body as JSON (`Value::Null` when empty; a panic when
/// the body is not JSON: every answer of the API is).
#[derive(Debug)]
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub json: Value,
}

impl Answer {
    /// Asserts a 4xx/5xx `status` with `{"error": ...}` containing `needle`.
    #[track_caller]
    pub fn refused(&self, status: u16, needle: &str) {
        assert_eq!(self.status, status, "{self:#?}");
        let message = self.json["error"]
            .as_str()
            .unwrap_or_else(|| panic!("no \"error\" string: {self:#?}"));
        assert!(message.contains(needle), "expected {needle:?} in {self:#?}");
    }

    /// Asserts 200; returns the JSON.
    #[track_caller]
    pub fn ok(&self) -> &Value {
        assert_eq!(self.status, 200, "{self:#?}");
        &self.json
    }
}

/// A client of one server, with an optional token.
#[derive(Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    authorization: Option<String>,
}

impl Client {
    pub fn new(server: &Server) -> Client {
        Client {
            http: reqwest::Client::new(),
            base: server.base.clone(),
            authorization: None,
        }
    }

    pub fn with_token(&self, token: &str) -> Client {
        self.with_authorization(&format!("Bearer {token}"))
    }

    /// A client sending `header` as the `Authorization` header.
    pub fn with_authorization(&self, header: &str) -> Client {
        Client {
            authorization: Some(header.to_owned()),
            ..self.clone()
        }
    }

    /// `method path` with `body` (sent as is, JSON content type).
    pub async fn send(&self, method: &str, path: &str, body: Option<Vec<u8>>) -> Answer {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(header) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, "application/json")
                .body(body);
        }
        let response = request.send().await.expect("the request is answered");
        let status = response.status().as_u16();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        let json = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                panic!(
                    "{status}: the body is not JSON ({e}): {:?}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        Answer {
            status,
            headers,
            json,
        }
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.send("GET", path, None).await
    }

    pub async fn post(&self, path: &str, body: &str) -> Answer {
        self.send("POST", path, Some(body.as_bytes().to_vec()))
            .await
    }

    pub async fn put(&self, path: &str, body: &str) -> Answer {
        self.send("PUT", path, Some(body.as_bytes().to_vec())).await
    }

    pub async fn delete(&self, path: &str) -> Answer {
        self.send("DELETE", path, None).await
    }

    /// The raw text of `GET path` (the dashboard's assets, `/metrics`), with its status and
    /// content type.
    pub async fn text(&self, path: &str) -> (u16, String, String) {
        let mut request = self.http.get(format!("{}{path}", self.base));
        if let Some(header) = &self.authorization {
            request = request.header(reqwest::header::AUTHORIZATION, header);
        }
        let response = request.send().await.expect("answered");
        let status = response.status().as_u16();
        let kind = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        (status, kind, response.text().await.expect("text"))
    }
}
