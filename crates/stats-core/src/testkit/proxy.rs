//! A TCP proxy for ambiguous-failure tests: it forwards bytes between clients and a server,
//! and, once armed with a pattern, lets the next request containing that pattern reach the
//! server, waits for the server's answer, throws the answer away and closes both connections.
//! The client then sees a lost connection for a request the server did carry out.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// See the module documentation. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct DropReplyProxy {
    addr: SocketAddr,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    fired: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl DropReplyProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`
    /// (`host:port`).
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start(upstream: &str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().expect("local address");
        let armed: Arc<Mutex<Option<Vec<u8>>>> = Arc::new(Mutex::new(None));
        let fired = Arc::new(AtomicUsize::new(0));
        let upstream = upstream.to_owned();
        let task = tokio::spawn({
            let (armed, fired) = (Arc::clone(&armed), Arc::clone(&fired));
            async move {
                while let Ok((client, _)) = listener.accept().await {
                    let Ok(server) = TcpStream::connect(&upstream).await else {
                        continue;
                    };
                    tokio::spawn(relay(
                        client,
                        server,
                        Arc::clone(&armed),
                        Arc::clone(&fired),
                    ));
                }
            }
        });
        DropReplyProxy {
            addr,
            armed,
            fired,
            task,
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Arms the proxy: the next chunk a client sends that contains `pattern` is forwarded, the
    /// server's answer to it is dropped and the connection closed. Fires once.
    pub fn arm(&self, pattern: &[u8]) {
        *self.armed.lock().expect("proxy lock") = Some(pattern.to_vec());
    }

    /// How many answers were dropped so far.
    pub fn fired(&self) -> usize {
        self.fired.load(Ordering::SeqCst)
    }

    /// `url` with its `host:port` (after `scheme://` and any `user:password@`) replaced by this
    /// proxy's address.
    ///
    /// # Panics
    /// If `url` has no `scheme://host:port`.
    pub fn url_via(&self, url: &str) -> String {
        let (start, end) = authority(url);
        format!("{}{}{}", &url[..start], self.addr, &url[end..])
    }
}

impl Drop for DropReplyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The `host:port` of a `scheme://[user[:password]@]host:port[/...]` URL.
///
/// # Panics
/// If the URL has no such part.
pub fn upstream_of(url: &str) -> String {
    let (start, end) = authority(url);
    url[start..end].to_owned()
}

/// Byte range of `host:port` in `url`.
fn authority(url: &str) -> (usize, usize) {
    let after_scheme = url.find("://").expect("URL with a scheme") + 3;
    let rest = &url[after_scheme..];
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let start = rest[..end].rfind('@').map_or(0, |at| at + 1);
    assert!(rest[start..end].contains(':'), "URL without a port: {url}");
    (after_scheme + start, after_scheme + end)
}

async fn relay(
    mut client: TcpStream,
    mut server: TcpStream,
    armed: Arc<Mutex<Option<Vec<u8>>>>,
    fired: Arc<AtomicUsize>,
) {
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let (mut up, mut down) = (vec![0_u8; 64 * 1024], vec![0_u8; 64 * 1024]);
    // The last bytes sent, so that a pattern split between two chunks is still found.
    let mut tail: Vec<u8> = Vec::new();
    let mut triggered = false;
    loop {
        tokio::select! {
            n = client.read(&mut up) => {
                let Ok(n @ 1..) = n else { return };
                let mut window = std::mem::take(&mut tail);
                window.extend_from_slice(&up[..n]);
                {
                    let mut slot = armed.lock().expect("proxy lock");
                    if let Some(pattern) = slot.as_ref()
                        && window.windows(pattern.len()).any(|w| w == pattern.as_slice())
                    {
                        *slot = None;
                        triggered = true;
                    }
                    let keep = slot.as_ref().map_or(0, |p| p.len().saturating_sub(1));
                    tail = window[window.len().saturating_sub(keep)..].to_vec();
                }
                if server.write_all(&up[..n]).await.is_err() {
                    return;
                }
            }
            n = server.read(&mut down) => {
                let Ok(n @ 1..) = n else { return };
                if triggered {
                    // The server answered the request: drop the answer and both connections.
                    fired.fetch_add(1, Ordering::SeqCst);
                    return;
                }
                if client.write_all(&down[..n]).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// The ambiguous-failure check: a batch whose reply is lost after the server applied it (the
/// client gets an error), then retried until it succeeds. With an id, on a store whose
/// `idempotent_batch` is true, the totals count it once; without an id they count it twice
/// (so the check can fail: the fault really is ambiguous).
///
/// `store` must talk to its server through `proxy`; `trigger(metric, with_id)` gives the bytes
/// of the request whose reply is dropped (for a single-round-trip store, the metric's name;
/// for a transaction, its `COMMIT`).
///
/// # Panics
/// When the store does not behave so.
pub async fn check_retry_after_lost_reply(
    store: &dyn crate::MetricStore,
    proxy: &DropReplyProxy,
    trigger: impl Fn(&str, bool) -> Vec<u8>,
) {
    use crate::{Batch, BatchId, Key, values};
    let name = store.name();
    assert!(
        store.capabilities().idempotent_batch,
        "{name}: this check is for idempotent stores"
    );
    for with_id in [true, false] {
        let metric = super::unique(if with_id { "lost_id" } else { "lost_plain" });
        let key = Key::bucket(&metric, "1h".parse().expect("1h"), 0).expect("key");
        let mut batch = Batch::new();
        batch
            .inc([key.clone()], &values!({"n": 1, "sum": 0.25}))
            .expect("valid");
        batch
            .max([key.clone()], &values!({"top": 3}))
            .expect("valid");
        if with_id {
            batch = batch.with_id(BatchId::new());
        }
        let before = proxy.fired();
        proxy.arm(&trigger(&metric, with_id));
        let first = store.apply(&batch).await;
        assert_eq!(
            proxy.fired(),
            before + 1,
            "{name}: the proxy did not see the batch (with id: {with_id})"
        );
        assert!(
            first.is_err(),
            "{name}: an apply whose reply was lost must fail, got {first:?}"
        );
        let read = || async {
            store
                .read(std::slice::from_ref(&key))
                .await
                .expect("read")
                .remove(0)
        };
        // The failure was ambiguous: the server did apply the batch.
        let mut seen = None;
        for _ in 0..50 {
            match store.read(std::slice::from_ref(&key)).await {
                Ok(mut docs) => {
                    seen = Some(docs.remove(0));
                    break;
                }
                Err(_) => tokio::time::sleep(std::time::Duration::from_millis(100)).await,
            }
        }
        assert_eq!(
            seen,
            Some(values!({"n": 1, "sum": 0.25, "top": 3})),
            "{name}: the server applied the batch whose reply was lost"
        );
        // Retry as a buffer does, until the store answers.
        let mut retried = Err(crate::Error::InvalidInput("not tried".into()));
        for _ in 0..50 {
            retried = store.apply(&batch).await;
            if retried.is_ok() {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        retried.unwrap_or_else(|e| panic!("{name}: the retry failed: {e}"));
        let times = if with_id { 1 } else { 2 };
        assert_eq!(
            read().await,
            values!({"n": times, "sum": 0.25 * times as f64, "top": 3}),
            "{name}: a batch retried after a lost reply (with id: {with_id}) must count \
             {times} time(s)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn authority_is_found() {
        assert_eq!(upstream_of("redis://127.0.0.1:6379/0"), "127.0.0.1:6379");
        assert_eq!(
            upstream_of("postgres://u:p@w@localhost:5432/db?x=1"),
            "localhost:5432"
        );
        assert_eq!(upstream_of("mysql://root@127.0.0.1:3306"), "127.0.0.1:3306");
    }
}
