//! The HTTP listener: accepts TCP connections and serves the router on each over HTTP/1.1 (hyper), with what a
//! server facing clients it does not control needs and `axum::serve` lacks:
//!
//! * **Header timeout**: a new connection has `header_timeout_ms` to send a complete request head.
//! * **Idle timeout**: a keep-alive connection has `idle_timeout_ms` after a response to send its next request head.
//!   Both are measured only while no request is in progress on the connection, so a long answer (an SSE stream,
//!   which has its own keep-alive comments) is never cut by them.
//! * **Body timeout**: a request body must arrive within `body_timeout_ms` of its head; a slower one fails the
//!   handler's read ([`BodyTimedOut`], answered `408 request_timeout` by `error.rs`) and the connection is closed.
//! * **Connection cap**: at most `max_connections` connections are served. At the cap, the connection that has
//!   waited longest for a request is closed to make room (idle connections cannot starve new clients); when every
//!   connection has a request in progress, the new one goes to a reserve of [`RESERVE`] slots that answers only
//!   `GET /api/health` (anything else gets `503` with `Retry-After`), one request per connection, so a health check
//!   still answers while the cap is reached. Past the reserve too, a connection is answered that `503` at once and
//!   closed without holding a slot. [`connection_cap`] keeps the cap under the process's open-file limit.
//!
//! It owns connections, not requests: it knows no route but the health check, and never looks at a body's bytes.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, Response, StatusCode, header};
use hyper::body::{Body as HttpBody, Bytes, Frame, Incoming, SizeHint};
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, Sleep};

/// Slots beyond `max_connections` for health checks, used only when every connection has a request in progress.
pub const RESERVE: usize = 16;
/// How long a connection being closed may still flush its last answer or drain what the client sent.
const LINGER: Duration = Duration::from_secs(1);
/// Refused connections lingering at once (to let the client read the 503); past it they are closed at once.
const MAX_LINGERING: usize = 64;
/// What a refused client is told to wait, in seconds.
const RETRY_AFTER_SECS: u32 = 2;
const BUSY_BODY: &str = r#"{"detail":"The server is at its connection limit (max_connections); retry after a moment","code":"too_many_connections"}"#;

/// The listener's limits, from the settings.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// A new connection's time to send a complete request head.
    pub header_timeout: Duration,
    /// A request body's time to arrive once its head has.
    pub body_timeout: Duration,
    /// A keep-alive connection's time to send its next request head.
    pub idle_timeout: Duration,
    /// Most connections served at once (beyond it, the reserve for health checks).
    pub max_connections: usize,
}

/// The cap actually applied: `max_connections`, lowered so that the connections and the process's other files
/// (the database, outbound connections to agents and LLMs, MCP servers' pipes) fit under the open-file limit:
/// an eighth of the limit, at least 64, is left to the others. None when the limit is unknown.
pub fn connection_cap(max_connections: usize, file_limit: Option<u64>) -> usize {
    let Some(limit) = file_limit else { return max_connections };
    let others = (limit / 8).max(64);
    let usable = usize::try_from(limit.saturating_sub(others)).unwrap_or(usize::MAX);
    max_connections.min(usable.saturating_sub(RESERVE + MAX_LINGERING)).max(1)
}

/// Raises the process's soft open-file limit to its hard limit and returns the limit in force (None when it
/// cannot be read): each connection holds a file, and a soft limit of 1,024 is a common default.
pub fn raise_file_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        use nix::sys::resource::{Resource, getrlimit, setrlimit};
        let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).ok()?;
        if soft < hard && setrlimit(Resource::RLIMIT_NOFILE, hard, hard).is_ok() {
            return Some(hard);
        }
        Some(soft)
    }
    #[cfg(not(unix))]
    None
}

/// Connections the kernel completes and queues before they are accepted: a burst of new connections waits
/// there instead of being dropped (the default queue holds 128, and each connection dropped waits a second for
/// its client to retry).
const BACKLOG: u32 = 1024;

/// Listens on `addr` (`host:port`; the first of its addresses that can be bound).
pub async fn bind(addr: &str) -> std::io::Result<TcpListener> {
    let mut last = None;
    for addr in tokio::net::lookup_host(addr).await? {
        let socket = match addr {
            std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4()?,
            std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6()?,
        };
        // A restarted server binds its port again while the old one's connections are in TIME_WAIT.
        #[cfg(unix)]
        socket.set_reuseaddr(true)?;
        match socket.bind(addr).and_then(|()| socket.listen(BACKLOG)) {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidInput, "no address to listen on")))
}

/// A request body that did not arrive within `body_timeout_ms`.
#[derive(Debug, Clone, Copy, thiserror::Error)]
#[error("the request body did not arrive within body_timeout_ms")]
pub struct BodyTimedOut;

/// Whether `error` (a failed body read, with its causes) is a [`BodyTimedOut`].
pub fn is_body_timeout(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<BodyTimedOut>())
}

/// Serves `app` on `listener` until `stop` turns true, then lets each connection finish its request in progress
/// (idle ones are closed at once) and returns when all are closed.
pub async fn serve(listener: TcpListener, app: Router, limits: Limits, mut stop: watch::Receiver<bool>) {
    let shared = Arc::new(Shared {
        app,
        limits,
        main: Arc::new(Pool::new(limits.max_connections)),
        reserve: Arc::new(Pool::new(RESERVE)),
        lingering: Arc::new(Semaphore::new(MAX_LINGERING)),
        refusal: Bytes::from(format!(
            "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: \
             {RETRY_AFTER_SECS}\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{BUSY_BODY}",
            BUSY_BODY.len()
        )),
        open: AtomicUsize::new(0),
        all_closed: Notify::new(),
        stop: stop.clone(),
    });
    let mut failing = false;
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.wait_for(|s| *s) => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                // Out of files or memory: wait for connections to close rather than spin.
                if !failing {
                    tracing::warn!(error = %e, "cannot accept connections; retrying every 100 ms");
                }
                failing = true;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        failing = false;
        // No Nagle delay: small responses (a 201, an SSE event) leave at once.
        let _ = tcp.set_nodelay(true);
        match shared.admit() {
            Some(pool) => {
                shared.open.fetch_add(1, Ordering::AcqRel);
                // Waiting for its first request from now, in the order connections were accepted.
                let conn = Arc::new(Conn {
                    pool: pool.clone(),
                    busy: AtomicUsize::new(0),
                    served: AtomicBool::new(false),
                    idle_since: AtomicU64::new(0),
                    idle_key: AtomicU64::new(0),
                    evicted: Notify::new(),
                });
                pool.set_idle(&conn);
                tokio::spawn(serve_connection(shared.clone(), conn, tcp));
            }
            None => shared.refuse(tcp),
        }
    }
    drop(listener);
    loop {
        let closed = shared.all_closed.notified();
        if shared.open.load(Ordering::Acquire) == 0 {
            break;
        }
        closed.await;
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset, Interrupted};
    matches!(e.kind(), ConnectionAborted | ConnectionRefused | ConnectionReset | Interrupted)
}

struct Shared {
    app: Router,
    limits: Limits,
    main: Arc<Pool>,
    reserve: Arc<Pool>,
    lingering: Arc<Semaphore>,
    /// The whole `503` answer of a refused connection.
    refusal: Bytes,
    /// Connections being served, for the shutdown's wait.
    open: AtomicUsize,
    all_closed: Notify,
    stop: watch::Receiver<bool>,
}

impl Shared {
    /// The pool a new connection is served in, None when it must be refused.
    fn admit(&self) -> Option<Arc<Pool>> {
        [&self.main, &self.reserve].into_iter().find(|pool| pool.admit()).cloned()
    }

    /// Answers `503` at once and closes, lingering a moment (bounded) so the client reads the answer instead of
    /// a reset.
    fn refuse(&self, mut tcp: TcpStream) {
        // A new socket's send buffer is empty: the answer fits without waiting.
        let _ = tcp.try_write(&self.refusal);
        if let Ok(permit) = self.lingering.clone().try_acquire_owned() {
            tokio::spawn(async move {
                let _ = tcp.shutdown().await;
                let mut sink = [0u8; 4096];
                let mut left = 64 * 1024;
                let _ = tokio::time::timeout(LINGER, async {
                    while let Ok(n @ 1..) = tcp.read(&mut sink).await {
                        left -= n.min(left);
                        if left == 0 {
                            break;
                        }
                    }
                })
                .await;
                drop(permit);
            });
        }
    }
}

/// Connections served under one cap, and those of them waiting for a request, oldest first.
struct Pool {
    cap: usize,
    open: AtomicUsize,
    idle: Mutex<Idle>,
    epoch: Instant,
}

#[derive(Default)]
struct Idle {
    next: u64,
    by_age: BTreeMap<u64, Arc<Conn>>,
}

impl Pool {
    fn new(cap: usize) -> Self {
        Pool { cap, open: AtomicUsize::new(0), idle: Mutex::new(Idle::default()), epoch: Instant::now() }
    }

    /// Takes a slot: a free one, or the one of the connection that has waited longest for a request (told to
    /// close, it does so at once).
    fn admit(&self) -> bool {
        let free =
            self.open.fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| (n < self.cap).then_some(n + 1)).is_ok();
        free || self.evict_oldest_idle()
    }

    fn evict_oldest_idle(&self) -> bool {
        let Some((_, conn)) = self.lock().by_age.pop_first() else { return false };
        conn.idle_key.store(0, Ordering::Release);
        conn.evicted.notify_one();
        // The evicted connection gives its slot back when it closes; the new one holds its own meanwhile.
        self.open.fetch_add(1, Ordering::AcqRel);
        true
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Idle> {
        self.idle.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn at(&self, ms: u64) -> Instant {
        self.epoch + Duration::from_millis(ms)
    }

    fn set_idle(&self, conn: &Arc<Conn>) {
        conn.idle_since.store(self.now_ms(), Ordering::Release);
        let mut idle = self.lock();
        idle.next += 1;
        let key = idle.next;
        idle.by_age.insert(key, conn.clone());
        conn.idle_key.store(key, Ordering::Release);
    }

    fn set_busy(&self, conn: &Conn) {
        let key = conn.idle_key.swap(0, Ordering::AcqRel);
        if key != 0 {
            self.lock().by_age.remove(&key);
        }
    }
}

/// One connection's state, shared by its task, its requests and its pool's idle list.
struct Conn {
    pool: Arc<Pool>,
    /// Requests in progress: from the head's arrival to the end of the answer's body.
    busy: AtomicUsize,
    /// Whether a request came: the idle timeout applies instead of the header timeout.
    served: AtomicBool,
    /// When the connection last became idle, in milliseconds since the pool's epoch.
    idle_since: AtomicU64,
    /// Its key in the pool's idle list (0 while busy or evicted).
    idle_key: AtomicU64,
    /// Told when its slot was given to a new connection.
    evicted: Notify,
}

impl Conn {
    /// When the connection is next to be looked at: its timeout when idle, else after an idle timeout's time.
    fn next_check(&self, limits: &Limits) -> Instant {
        if self.busy.load(Ordering::Acquire) > 0 {
            return Instant::now() + limits.idle_timeout;
        }
        let timeout = match self.served.load(Ordering::Acquire) {
            true => limits.idle_timeout,
            false => limits.header_timeout,
        };
        self.pool.at(self.idle_since.load(Ordering::Acquire)) + timeout
    }
}

/// Marks its connection busy while it lives: from a request's head to the end of its answer's body.
struct Busy(Arc<Conn>);

impl Busy {
    fn begin(conn: &Arc<Conn>) -> Self {
        conn.served.store(true, Ordering::Release);
        if conn.busy.fetch_add(1, Ordering::AcqRel) == 0 {
            conn.pool.set_busy(conn);
        }
        Busy(conn.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        if self.0.busy.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.pool.set_idle(&self.0);
        }
    }
}

async fn serve_connection(shared: Arc<Shared>, conn: Arc<Conn>, tcp: TcpStream) {
    let limits = shared.limits;
    let pool = conn.pool.clone();
    let reserve = Arc::ptr_eq(&pool, &shared.reserve);
    let peer = tcp.peer_addr().ok();
    let service =
        ConnService { app: shared.app.clone(), conn: conn.clone(), reserve, body_timeout: limits.body_timeout, peer };
    let mut builder = hyper::server::conn::http1::Builder::new();
    // The timeouts are this module's (hyper's header timer would also run between requests and cut idle ones
    // at the header timeout).
    builder.header_read_timeout(None);
    // A reserve slot serves one health check.
    builder.keep_alive(!reserve);
    let http = builder.serve_connection(TokioIo::new(tcp), service);
    tokio::pin!(http);
    let mut stop = shared.stop.clone();
    // Since when the connection is being closed: it finishes a request in progress, an idle one is dropped after
    // LINGER (the time to flush its last answer; a half-sent head does not keep it).
    let mut closing: Option<Instant> = None;
    loop {
        let wake = match closing {
            Some(since) => (since + LINGER).max(Instant::now() + Duration::from_millis(10)),
            None => conn.next_check(&limits),
        };
        tokio::select! {
            _ = http.as_mut() => break,
            () = tokio::time::sleep_until(wake) => match closing {
                Some(_) if conn.busy.load(Ordering::Acquire) == 0 => break,
                Some(_) => closing = Some(Instant::now()),
                None if conn.busy.load(Ordering::Acquire) == 0 && conn.next_check(&limits) <= Instant::now() => {
                    http.as_mut().graceful_shutdown();
                    closing = Some(Instant::now());
                }
                None => {}
            },
            () = conn.evicted.notified(), if closing.is_none() => {
                http.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
            _ = stop.wait_for(|s| *s), if closing.is_none() => {
                http.as_mut().graceful_shutdown();
                closing = Some(Instant::now());
            }
        }
    }
    pool.set_busy(&conn);
    pool.open.fetch_sub(1, Ordering::AcqRel);
    if shared.open.fetch_sub(1, Ordering::AcqRel) == 1 {
        shared.all_closed.notify_waiters();
    }
}

/// The router as one connection's hyper service.
#[derive(Clone)]
struct ConnService {
    app: Router,
    conn: Arc<Conn>,
    reserve: bool,
    body_timeout: Duration,
    /// The client's address (the audit log's source, the rate limiter's key), as `ConnectInfo`.
    peer: Option<std::net::SocketAddr>,
}

type ServiceFuture = Pin<Box<dyn Future<Output = Result<Response<Tracked>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Tracked>;
    type Error = Infallible;
    type Future = ServiceFuture;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let busy = Busy::begin(&self.conn);
        if self.reserve && !(req.method() == Method::GET && req.uri().path() == "/api/health") {
            return Box::pin(std::future::ready(Ok(busy_answer().map(|body| Tracked { body, _busy: busy }))));
        }
        let deadline = Instant::now() + self.body_timeout;
        let mut req = req;
        if let Some(peer) = self.peer {
            req.extensions_mut().insert(axum::extract::ConnectInfo(peer));
        }
        let req = req.map(|body| match body.is_end_stream() {
            true => Body::new(body),
            false => Body::new(TimedBody { body, deadline, timer: None }),
        });
        let answer = tower::ServiceExt::oneshot(self.app.clone(), req);
        Box::pin(async move {
            let response = answer.await.unwrap_or_else(|never| match never {});
            Ok(response.map(|body| Tracked { body, _busy: busy }))
        })
    }
}

/// The `503` a reserve slot answers to anything but a health check.
fn busy_answer() -> Response<Body> {
    let mut response = Response::new(Body::from(BUSY_BODY));
    *response.status_mut() = StatusCode::SERVICE_UNAVAILABLE;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static("application/json"));
    headers.insert(header::RETRY_AFTER, header::HeaderValue::from(RETRY_AFTER_SECS));
    headers.insert(header::CONNECTION, header::HeaderValue::from_static("close"));
    response
}

/// An answer's body, keeping its connection busy until it is sent or dropped.
struct Tracked {
    body: Body,
    _busy: Busy,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A request body that fails with [`BodyTimedOut`] when it has not all arrived by its deadline.
struct TimedBody {
    body: Incoming,
    deadline: Instant,
    /// Made on the first wait: a body that arrives with its head never needs one.
    timer: Option<Pin<Box<Sleep>>>,
}

impl HttpBody for TimedBody {
    type Data = Bytes;
    type Error = Box<dyn std::error::Error + Send + Sync>;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        if let Poll::Ready(frame) = Pin::new(&mut self.body).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let deadline = self.deadline;
        let timer = self.timer.get_or_insert_with(|| Box::pin(tokio::time::sleep_until(deadline)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(BodyTimedOut)))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::{RESERVE, connection_cap};

    #[test]
    fn the_cap_leaves_room_for_the_other_files() {
        assert_eq!(connection_cap(10_000, Some(20_000)), 10_000);
        assert_eq!(connection_cap(10_000, Some(1_024)), 1_024 - 128 - RESERVE - 64);
        assert_eq!(connection_cap(10_000, Some(256)), 256 - 64 - RESERVE - 64);
        assert_eq!(connection_cap(10_000, Some(16)), 1);
        assert_eq!(connection_cap(500, None), 500);
    }
}
