//! A TCP proxy for ambiguous-failure tests: it forwards bytes between clients and a server,
//! and, once armed with a pattern, lets the next request containing that pattern reach the
//! server, waits for the server's answer, throws the answer away and closes both connections.
//! The client then sees a lost connection for a request the server did carry out.
//!
//! One proxy can stand in front of several servers (the nodes of a cluster, see
//! [`DropReplyProxy::start_many`]): one listening port per server, one arming shared by all.
//! A [`Rewrite`] then changes what the servers answer, so that the addresses they hand out
//! (a cluster's topology, its redirections) name the proxy's ports and the client keeps going
//! through the proxy.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// What a proxy does to one connection's bytes besides forwarding them: it sees what the
/// client sends and rewrites what the server answers. [`DropReplyProxy::start_many`] makes
/// one per connection.
///
/// # Example
///
/// A proxy that shouts the server's answers:
///
/// ```
/// use stats_core::testkit::proxy::{DropReplyProxy, Rewrite};
/// use tokio::io::{AsyncReadExt, AsyncWriteExt};
///
/// struct Shout;
/// impl Rewrite for Shout {
///     fn request(&mut self, _bytes: &[u8]) {}
///     fn reply(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
///         Ok(bytes.to_ascii_uppercase())
///     }
/// }
///
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() {
/// // A server that answers every request with "hello".
/// let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
/// let upstream = server.local_addr().unwrap().to_string();
/// tokio::spawn(async move {
///     let (mut conn, _) = server.accept().await.unwrap();
///     let mut request = [0_u8; 16];
///     let _ = conn.read(&mut request).await.unwrap();
///     conn.write_all(b"hello").await.unwrap();
/// });
/// let proxy = DropReplyProxy::start_many(&[upstream], |_routes| Box::new(Shout)).await;
/// let mut client = tokio::net::TcpStream::connect(proxy.addr()).await.unwrap();
/// client.write_all(b"hi").await.unwrap();
/// let mut answer = [0_u8; 5];
/// client.read_exact(&mut answer).await.unwrap();
/// assert_eq!(&answer, b"HELLO");
/// # }
/// ```
pub trait Rewrite: Send {
    /// Sees bytes the client sent, before the server gets them (a chunk as read: it may hold
    /// part of a request, or several).
    fn request(&mut self, bytes: &[u8]);

    /// Takes bytes the server sent (a chunk as read) and returns the bytes to pass to the
    /// client now; it may keep an incomplete part for a later call. An error closes the
    /// connection and is printed on standard error.
    ///
    /// # Errors
    /// When the server's bytes cannot be rewritten (say, they do not follow the protocol the
    /// rewrite expects).
    fn reply(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String>;
}

/// One server behind a [`DropReplyProxy`] and the proxy's address for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Route {
    /// The server, `host:port` as given to the proxy.
    pub upstream: String,
    /// Where the proxy listens for it.
    pub addr: SocketAddr,
}

/// Makes the [`Rewrite`] of each new connection, given every route of the proxy.
type MakeRewrite = dyn Fn(&[Route]) -> Box<dyn Rewrite> + Send + Sync;

/// The pattern the proxy waits for, and whether it fires once or until disarmed.
#[derive(Debug)]
struct Armed {
    pattern: Vec<u8>,
    once: bool,
}

/// See the module documentation. Dropping it stops accepting connections.
#[derive(Debug)]
pub struct DropReplyProxy {
    routes: Vec<Route>,
    armed: Arc<Mutex<Option<Armed>>>,
    fired: Arc<AtomicUsize>,
    tasks: Vec<JoinHandle<()>>,
}

impl DropReplyProxy {
    /// Listens on a free loopback port and forwards every connection to `upstream`
    /// (`host:port`).
    ///
    /// # Panics
    /// If no port can be bound.
    pub async fn start(upstream: &str) -> Self {
        Self::listen(&[upstream.to_owned()], None).await
    }

    /// Listens on one free loopback port per server of `upstreams` (`host:port` each) and
    /// forwards every connection to its server, passing the bytes of each connection through
    /// a [`Rewrite`] that `rewrite` makes from all the routes (so that it can put the proxy's
    /// addresses where a server names itself or its peers). [`arm`](Self::arm) applies to all
    /// the servers: the first request with the pattern, whichever server it goes to, loses
    /// its answer.
    ///
    /// # Panics
    /// If no port can be bound.
    ///
    /// # Example
    /// See [`Rewrite`].
    pub async fn start_many<F>(upstreams: &[String], rewrite: F) -> Self
    where
        F: Fn(&[Route]) -> Box<dyn Rewrite> + Send + Sync + 'static,
    {
        Self::listen(upstreams, Some(Arc::new(rewrite))).await
    }

    async fn listen(upstreams: &[String], rewrite: Option<Arc<MakeRewrite>>) -> Self {
        let mut listeners = Vec::with_capacity(upstreams.len());
        let mut routes = Vec::with_capacity(upstreams.len());
        for upstream in upstreams {
            let listener = TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind a loopback port");
            let addr = listener.local_addr().expect("local address");
            routes.push(Route {
                upstream: upstream.clone(),
                addr,
            });
            listeners.push(listener);
        }
        let armed: Arc<Mutex<Option<Armed>>> = Arc::new(Mutex::new(None));
        let fired = Arc::new(AtomicUsize::new(0));
        let shared_routes: Arc<[Route]> = routes.clone().into();
        let tasks = listeners
            .into_iter()
            .zip(upstreams.iter().cloned())
            .map(|(listener, upstream)| {
                let (armed, fired) = (Arc::clone(&armed), Arc::clone(&fired));
                let (rewrite, routes) = (rewrite.clone(), Arc::clone(&shared_routes));
                tokio::spawn(async move {
                    while let Ok((client, _)) = listener.accept().await {
                        let Ok(server) = TcpStream::connect(&upstream).await else {
                            continue;
                        };
                        let rewrite = rewrite.as_ref().map(|make| make(&routes));
                        tokio::spawn(relay(
                            client,
                            server,
                            Arc::clone(&armed),
                            Arc::clone(&fired),
                            rewrite,
                        ));
                    }
                })
            })
            .collect();
        DropReplyProxy {
            routes,
            armed,
            fired,
            tasks,
        }
    }

    /// The address clients connect to (of the first server, for a proxy of several).
    pub fn addr(&self) -> SocketAddr {
        self.routes[0].addr
    }

    /// Every server and the proxy's address for it, in the order given to
    /// [`start_many`](Self::start_many).
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Arms the proxy: the next chunk a client sends that contains `pattern` is forwarded, the
    /// server's answer to it is dropped and the connection closed. Fires once.
    pub fn arm(&self, pattern: &[u8]) {
        *self.armed.lock().expect("proxy lock") = Some(Armed {
            pattern: pattern.to_vec(),
            once: true,
        });
    }

    /// Arms the proxy until [`disarm`](Self::disarm): every chunk a client sends that contains
    /// `pattern` is forwarded, the server's answer to it dropped and the connection closed, so
    /// that a client that resends the request on a new connection loses every answer.
    pub fn arm_until_disarmed(&self, pattern: &[u8]) {
        *self.armed.lock().expect("proxy lock") = Some(Armed {
            pattern: pattern.to_vec(),
            once: false,
        });
    }

    /// Disarms the proxy: it forwards everything again.
    pub fn disarm(&self) {
        *self.armed.lock().expect("proxy lock") = None;
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
        format!("{}{}{}", &url[..start], self.addr(), &url[end..])
    }
}

impl Drop for DropReplyProxy {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
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
    armed: Arc<Mutex<Option<Armed>>>,
    fired: Arc<AtomicUsize>,
    mut rewrite: Option<Box<dyn Rewrite>>,
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
                    if let Some(armed) = slot.as_ref()
                        && window
                            .windows(armed.pattern.len())
                            .any(|w| w == armed.pattern.as_slice())
                    {
                        if armed.once {
                            *slot = None;
                        }
                        triggered = true;
                    }
                    let keep = slot
                        .as_ref()
                        .map_or(0, |a| a.pattern.len().saturating_sub(1));
                    tail = window[window.len().saturating_sub(keep)..].to_vec();
                }
                if let Some(rewrite) = rewrite.as_mut() {
                    rewrite.request(&up[..n]);
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
                let sent = match rewrite.as_mut().map(|r| r.reply(&down[..n])) {
                    None => client.write_all(&down[..n]).await,
                    Some(Ok(rewritten)) => client.write_all(&rewritten).await,
                    Some(Err(e)) => {
                        eprintln!("proxy: the server's answer could not be rewritten: {e}");
                        return;
                    }
                };
                if sent.is_err() {
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
    let name = store.name();
    assert!(
        store.capabilities().idempotent_batch,
        "{name}: this check is for idempotent stores"
    );
    for with_id in [true, false] {
        let (metric, key, batch) = lost_reply_batch("lost", with_id);
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
            Some(counted(1)),
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
            counted(times),
            "{name}: a batch retried after a lost reply (with id: {with_id}) must count \
             {times} time(s)"
        );
    }
}

/// The batch of the lost-reply checks, on a metric of its own: `n` +1, `sum` +0.25 and `top`
/// max 3 on one bucket; with a fresh id or none.
fn lost_reply_batch(prefix: &str, with_id: bool) -> (String, crate::Key, crate::Batch) {
    use crate::{Batch, BatchId, Key, values};
    let metric = super::unique(&format!(
        "{prefix}_{}",
        if with_id { "id" } else { "plain" }
    ));
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
    (metric, key, batch)
}

/// The bucket of [`lost_reply_batch`] after the batch counted `times` times.
fn counted(times: i64) -> crate::Values {
    crate::values!({"n": times, "sum": 0.25 * times as f64, "top": 3})
}

/// The ambiguous-failure check for a store whose client resends a request by itself when the
/// connection drops before the answer (the Redis Cluster driver does, up to its retry count):
///
/// 1. One lost answer: the client's own resend succeeds, so `apply` succeeds. With an id the
///    totals count the batch once; without one, twice (the server ran it twice: the id is
///    what absorbs the resend).
/// 2. Every answer lost until the client gives up: `apply` fails, after the server ran the
///    batch once per attempt (at least two: the client does resend). The caller then retries
///    as a buffer does, and succeeds. With an id the totals count the batch once; without
///    one, once per attempt the server ran plus the retry.
///
/// `store` must talk to its servers through `proxy`; `trigger(metric, with_id)` gives the
/// bytes of the request whose answer is dropped (see [`check_retry_after_lost_reply`], the
/// check for stores whose calls fail at once).
///
/// # Panics
/// When the store does not behave so.
pub async fn check_resend_after_lost_reply(
    store: &dyn crate::MetricStore,
    proxy: &DropReplyProxy,
    trigger: impl Fn(&str, bool) -> Vec<u8>,
) {
    let name = store.name();
    assert!(
        store.capabilities().idempotent_batch,
        "{name}: this check is for idempotent stores"
    );
    let read = |key: &crate::Key| {
        let key = key.clone();
        async move {
            store
                .read(std::slice::from_ref(&key))
                .await
                .expect("read")
                .remove(0)
        }
    };
    for with_id in [true, false] {
        // 1. One answer lost: the client resends on its own.
        let (metric, key, batch) = lost_reply_batch("resent", with_id);
        let before = proxy.fired();
        proxy.arm(&trigger(&metric, with_id));
        let first = store.apply(&batch).await;
        proxy.disarm();
        assert_eq!(
            proxy.fired(),
            before + 1,
            "{name}: the proxy did not see the batch (with id: {with_id})"
        );
        assert!(
            first.is_ok(),
            "{name}: the client was to resend the batch whose answer was lost, got {first:?}"
        );
        let times = if with_id { 1 } else { 2 };
        assert_eq!(
            read(&key).await,
            counted(times),
            "{name}: a batch resent by the client after a lost answer (with id: {with_id}) \
             must count {times} time(s)"
        );

        // 2. Every answer lost: the client gives up, the caller retries.
        let (metric, key, batch) = lost_reply_batch("given_up", with_id);
        let before = proxy.fired();
        proxy.arm_until_disarmed(&trigger(&metric, with_id));
        let first = store.apply(&batch).await;
        proxy.disarm();
        let ran = proxy.fired() - before;
        assert!(
            first.is_err(),
            "{name}: an apply whose every answer was lost must fail, got {first:?}"
        );
        assert!(
            first.as_ref().is_err_and(crate::Error::is_retryable),
            "{name}: a lost connection must be a retryable error, got {first:?}"
        );
        assert!(
            ran >= 2,
            "{name}: the server ran the batch {ran} time(s): the client did not resend it"
        );
        let runs = if with_id { 1 } else { ran as i64 };
        assert_eq!(
            read(&key).await,
            counted(runs),
            "{name}: the server ran the batch {ran} time(s) (with id: {with_id}) and must \
             count it {runs} time(s)"
        );
        store
            .apply(&batch)
            .await
            .unwrap_or_else(|e| panic!("{name}: the retry failed: {e}"));
        let times = if with_id { 1 } else { ran as i64 + 1 };
        assert_eq!(
            read(&key).await,
            counted(times),
            "{name}: a batch retried after its client gave up (with id: {with_id}) must count \
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

    /// A server that answers each chunk it reads with `name` and the chunk, on every
    /// connection.
    async fn tagging_server(name: &'static str) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("address").to_string();
        tokio::spawn(async move {
            while let Ok((mut conn, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0_u8; 64];
                    while let Ok(n @ 1..) = conn.read(&mut buf).await {
                        let answer = [name.as_bytes(), b":", &buf[..n]].concat();
                        if conn.write_all(&answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        addr
    }

    /// Sends `request` on a new connection to `addr` and returns the answer, or `None` when
    /// the connection is closed without one.
    async fn ask(addr: SocketAddr, request: &[u8]) -> Option<Vec<u8>> {
        let mut conn = TcpStream::connect(addr).await.expect("connect");
        conn.write_all(request).await.expect("write");
        let mut buf = [0_u8; 64];
        match conn.read(&mut buf).await {
            Ok(n @ 1..) => Some(buf[..n].to_vec()),
            _ => None,
        }
    }

    struct Upper;
    impl Rewrite for Upper {
        fn request(&mut self, _bytes: &[u8]) {}
        fn reply(&mut self, bytes: &[u8]) -> Result<Vec<u8>, String> {
            Ok(bytes.to_ascii_uppercase())
        }
    }

    #[tokio::test]
    async fn a_proxy_of_several_servers_routes_rewrites_and_arms_once_or_until_disarmed() {
        let upstreams = [tagging_server("a").await, tagging_server("b").await];
        let proxy = DropReplyProxy::start_many(&upstreams, |routes| {
            assert_eq!(routes.len(), 2);
            Box::new(Upper)
        })
        .await;
        let routes = proxy.routes().to_vec();
        assert_eq!(routes[0].upstream, upstreams[0]);
        assert_eq!(proxy.addr(), routes[0].addr);
        let (a, b) = (routes[0].addr, routes[1].addr);
        assert_eq!(ask(a, b"x").await.as_deref(), Some(&b"A:X"[..]));
        assert_eq!(ask(b, b"x").await.as_deref(), Some(&b"B:X"[..]));
        // Once: the first request with the pattern, on whichever server, loses its answer.
        proxy.arm(b"lose");
        assert_eq!(ask(b, b"lose me").await, None);
        assert_eq!(ask(a, b"lose me").await.as_deref(), Some(&b"A:LOSE ME"[..]));
        assert_eq!(proxy.fired(), 1);
        // Until disarmed: every such request loses its answer, others pass.
        proxy.arm_until_disarmed(b"lose");
        assert_eq!(ask(a, b"lose me").await, None);
        assert_eq!(ask(b, b"lose me").await, None);
        assert_eq!(ask(a, b"keep me").await.as_deref(), Some(&b"A:KEEP ME"[..]));
        assert_eq!(proxy.fired(), 3);
        proxy.disarm();
        assert_eq!(ask(b, b"lose me").await.as_deref(), Some(&b"B:LOSE ME"[..]));
        assert_eq!(proxy.fired(), 3);
    }

    #[tokio::test]
    async fn a_proxy_of_one_server_passes_bytes_unchanged() {
        let proxy = DropReplyProxy::start(&tagging_server("a").await).await;
        assert_eq!(proxy.routes().len(), 1);
        assert_eq!(ask(proxy.addr(), b"x").await.as_deref(), Some(&b"a:x"[..]));
    }
}
