//! The accept loop and each connection's life: hyper's HTTP/1.1 server
//! under the limits that keep slow clients from holding the server, and a
//! shutdown that ends within its grace period.
//!
//! A connection is *waiting* while it has no request in progress: from
//! accept until its first request head is complete, and from the end of each
//! answer until the next head is. Waiting is bounded two ways:
//! - in time: a sweep closes a connection whose head is not complete
//!   `header_read_timeout` after it began waiting (a new, a slow or an idle
//!   keep-alive connection alike). The sweep runs a few times per timeout
//!   rather than each request arming a timer (hyper's own
//!   `header_read_timeout` does, and costs every request a timer-wheel
//!   entry: docs/performance.md);
//! - in number: the same sweep closes the longest waiting while more than
//!   `max_waiting_connections` wait, and when `accept` finds no descriptor
//!   left, the connection that has waited longest is closed at once. A
//!   client that sends its head at once is served before it can be the
//!   oldest; a slowloris is the oldest. The sweep, not each accept, enforces
//!   the cap, so that a flood of new connections cannot push out a good
//!   client in the moment between its accept and its head.
//!
//! Shutdown: the listener closes; every connection is asked to end after
//! its request in progress (idle ones close at once); runs get the grace
//! period less a flush window to end on their own, then are stopped, which
//! sends their streams a terminal event; at the end of the grace period
//! every connection still open is closed. Nothing outlives the grace.

use super::conn::{ParseErrorBodies, StallGuard};
use crate::state::AppState;
use axum::Router;
use axum::body::Body;
use futures_util::task::AtomicWaker;
use http::{Request, Response};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpListener;

/// What ends a connection from outside: nothing yet, finish the request in
/// progress and close, close now.
const OPEN: u8 = 0;
const GRACEFUL: u8 = 1;
const CLOSE: u8 = 2;

/// One connection as the registry sees it.
struct ConnSlot {
    id: u64,
    /// Nanoseconds since the registry's epoch when it began waiting; 0 while
    /// a request is in progress.
    waiting_since: AtomicU64,
    signal: AtomicU8,
    waker: AtomicWaker,
}

impl ConnSlot {
    fn busy(&self) {
        self.waiting_since.store(0, Ordering::Relaxed);
    }

    fn send(&self, signal: u8) {
        self.signal.fetch_max(signal, Ordering::AcqRel);
        self.waker.wake();
    }

    /// The strongest signal sent, once there is one.
    fn poll_signal(&self, cx: &mut Context<'_>, seen: u8) -> Poll<u8> {
        let signal = self.signal.load(Ordering::Acquire);
        if signal > seen {
            return Poll::Ready(signal);
        }
        self.waker.register(cx.waker());
        match self.signal.load(Ordering::Acquire) {
            s if s > seen => Poll::Ready(s),
            _ => Poll::Pending,
        }
    }
}

/// Every open connection, for the waiting cap and for shutdown. Its lock is
/// taken when a connection opens or closes, never per request.
struct Registry {
    epoch: Instant,
    slots: Mutex<HashMap<u64, Arc<ConnSlot>>>,
    next_id: AtomicU64,
    max_waiting: usize,
    evicted: Arc<AtomicU64>,
    open: Arc<AtomicU64>,
    waiting: Arc<AtomicU64>,
    closed_one: tokio::sync::Notify,
    emptied: tokio::sync::Notify,
}

impl Registry {
    fn now(&self) -> u64 {
        since(self.epoch)
    }

    /// Registers a new connection, waiting from now.
    fn open(&self) -> Arc<ConnSlot> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let slot =
            Arc::new(ConnSlot { id, waiting_since: AtomicU64::new(self.now()), signal: AtomicU8::new(OPEN), waker: AtomicWaker::new() });
        self.slots.lock().expect("registry lock").insert(id, slot.clone());
        self.open.fetch_add(1, Ordering::Relaxed);
        slot
    }

    /// Closes the connection that has waited longest, if one waits.
    fn evict_oldest(slots: &HashMap<u64, Arc<ConnSlot>>, evicted: &AtomicU64) -> bool {
        let oldest = slots
            .values()
            .filter(|s| s.signal.load(Ordering::Relaxed) != CLOSE)
            .filter_map(|s| match s.waiting_since.load(Ordering::Relaxed) {
                0 => None,
                since => Some((since, s)),
            })
            .min_by_key(|(since, _)| *since);
        match oldest {
            Some((_, slot)) => {
                slot.send(CLOSE);
                evicted.fetch_add(1, Ordering::Relaxed);
                true
            }
            None => false,
        }
    }

    fn evict_for_descriptor(&self) -> bool {
        Self::evict_oldest(&self.slots.lock().expect("registry lock"), &self.evicted)
    }

    fn close(&self, id: u64) {
        let mut slots = self.slots.lock().expect("registry lock");
        slots.remove(&id);
        self.open.fetch_sub(1, Ordering::Relaxed);
        self.closed_one.notify_waiters();
        if slots.is_empty() {
            self.emptied.notify_waiters();
        }
    }

    /// Closes every connection that has waited longer than `limit`, then
    /// the longest waiting of the rest while more than the cap wait.
    fn sweep(&self, limit: Duration, timed_out: &AtomicU64) {
        let limit = limit.as_nanos() as u64;
        let now = self.now();
        let slots = self.slots.lock().expect("registry lock");
        let mut waiting = Vec::new();
        for slot in slots.values().filter(|s| s.signal.load(Ordering::Relaxed) != CLOSE) {
            match slot.waiting_since.load(Ordering::Relaxed) {
                0 => {}
                since if now.saturating_sub(since) >= limit => {
                    slot.send(CLOSE);
                    timed_out.fetch_add(1, Ordering::Relaxed);
                }
                since => waiting.push((since, slot)),
            }
        }
        self.waiting.store(waiting.len().min(self.max_waiting) as u64, Ordering::Relaxed);
        if waiting.len() > self.max_waiting {
            waiting.sort_unstable_by_key(|(since, slot)| (*since, slot.id));
            for (_, slot) in &waiting[..waiting.len() - self.max_waiting] {
                slot.send(CLOSE);
                self.evicted.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    fn signal_all(&self, signal: u8) {
        for slot in self.slots.lock().expect("registry lock").values() {
            slot.send(signal);
        }
    }

    /// Until no connection is open.
    async fn all_closed(&self) {
        loop {
            let emptied = self.emptied.notified();
            if self.slots.lock().expect("registry lock").is_empty() {
                return;
            }
            emptied.await;
        }
    }
}

/// Nanoseconds since `epoch`, never 0 (which means busy).
fn since(epoch: Instant) -> u64 {
    (epoch.elapsed().as_nanos() as u64).max(1)
}

/// The limits of [`serve`], from the server's config.
#[derive(Debug, Clone)]
pub struct ServeLimits {
    pub header_read_timeout: Duration,
    pub max_waiting_connections: usize,
    pub stalled_client_timeout: Duration,
    pub shutdown_grace: Duration,
}

impl ServeLimits {
    /// The limits of the accept loop and of each connection, from the
    /// server's configured limits.
    pub fn of(state: &AppState) -> Self {
        let limits = &state.shared.limits;
        let max_waiting_connections = limits.max_waiting_connections.unwrap_or_else(|| {
            let (soft, _) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
            usize::try_from(soft / 4).unwrap_or(usize::MAX).clamp(16, 1 << 16)
        });
        ServeLimits {
            header_read_timeout: limits.header_read_timeout,
            max_waiting_connections,
            stalled_client_timeout: limits.stalled_client_timeout,
            shutdown_grace: limits.shutdown_grace,
        }
    }
}

/// Serves `router` on `listener` until `shutdown` resolves, then shuts down
/// within the grace period (see the module's doc).
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let limits = ServeLimits::of(&state);
    let stats = &state.shared.stats;
    let registry = Arc::new(Registry {
        epoch: Instant::now(),
        slots: Mutex::new(HashMap::new()),
        next_id: AtomicU64::new(1),
        max_waiting: limits.max_waiting_connections,
        evicted: stats.connections_evicted.clone(),
        open: stats.connections_open.clone(),
        waiting: stats.connections_waiting.clone(),
        closed_one: tokio::sync::Notify::new(),
        emptied: tokio::sync::Notify::new(),
    });
    let http = Arc::new(hyper::server::conn::http1::Builder::new());
    let sweeper = {
        let (registry, timed_out, limit) = (registry.clone(), stats.connections_head_timeout.clone(), limits.header_read_timeout);
        let every = (limit / 8).clamp(Duration::from_millis(10), Duration::from_secs(1));
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                registry.sweep(limit, &timed_out);
            }
        })
    };
    let _sweeper = tokio_util::task::AbortOnDropHandle::new(sweeper);
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let tcp = match accepted {
            Ok((tcp, _)) => tcp,
            Err(e) => {
                // Out of descriptors: the longest-waiting connection gives
                // one back, and accept waits until one is given back (else
                // each retry would close another, up to the newest). Other
                // errors (a connection reset while queued) concern one
                // connection only.
                if is_out_of_descriptors(&e) {
                    let closed = registry.closed_one.notified();
                    if !registry.evict_for_descriptor() {
                        tracing::warn!("accept: {e}; no waiting connection to close");
                    }
                    let _ = tokio::time::timeout(Duration::from_millis(50), closed).await;
                }
                tokio::task::yield_now().await;
                continue;
            }
        };
        // Without TCP_NODELAY, Nagle's algorithm and delayed ACKs hold small
        // SSE frames back by ~40 ms.
        let _ = tcp.set_nodelay(true);
        let slot = registry.open();
        let io = StallGuard::new(tcp, limits.stalled_client_timeout, stats.connections_stalled_closed.clone());
        let io = TokioIo::new(ParseErrorBodies::new(io));
        let service = ConnService { router: router.clone(), state: state.clone(), slot: slot.clone(), epoch: registry.epoch };
        let (registry, http) = (registry.clone(), http.clone());
        tokio::spawn(async move {
            let conn = http.serve_connection(io, service);
            // Its error (a client that left, a malformed request) concerns
            // that client only; hyper has answered what it could.
            let _ = Connection { conn, slot: &slot, seen: OPEN }.await;
            registry.close(slot.id);
        });
    }
    drop(listener);
    let deadline = tokio::time::Instant::now() + limits.shutdown_grace;
    registry.signal_all(GRACEFUL);
    // Runs end on their own, or are stopped a flush window before the end so
    // that their terminal events can still be written.
    let flush =
        state.shared.limits.shutdown_flush.unwrap_or((limits.shutdown_grace / 4).min(Duration::from_secs(1))).min(limits.shutdown_grace);
    let _ = tokio::time::timeout_at(deadline, state.drain(limits.shutdown_grace - flush)).await;
    let _ = tokio::time::timeout_at(deadline, registry.all_closed()).await;
    registry.signal_all(CLOSE);
    registry.all_closed().await;
    Ok(())
}

fn is_out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

pin_project_lite::pin_project! {
    /// A connection's future under its slot's signals.
    struct Connection<'a, C> {
        #[pin]
        conn: C,
        slot: &'a ConnSlot,
        seen: u8,
    }
}

impl<C> Future for Connection<'_, C>
where
    C: Future<Output = hyper::Result<()>> + GracefulConn,
{
    type Output = hyper::Result<()>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let mut this = self.project();
        loop {
            if let Poll::Ready(ended) = this.conn.as_mut().poll(cx) {
                return Poll::Ready(ended);
            }
            // Polled again after each signal, so the waker stays registered.
            match this.slot.poll_signal(cx, *this.seen) {
                Poll::Ready(CLOSE) => return Poll::Ready(Ok(())),
                Poll::Ready(signal) => {
                    *this.seen = signal;
                    this.conn.as_mut().graceful_shutdown();
                }
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}

/// hyper's connection types have `graceful_shutdown` as an inherent method.
trait GracefulConn {
    fn graceful_shutdown(self: Pin<&mut Self>);
}

impl<I, S> GracefulConn for hyper::server::conn::http1::Connection<I, S>
where
    S: hyper::service::HttpService<Incoming>,
    S::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
    I: hyper::rt::Read + hyper::rt::Write + Unpin,
    S::ResBody: 'static,
    <S::ResBody as http_body::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    fn graceful_shutdown(self: Pin<&mut Self>) {
        hyper::server::conn::http1::Connection::graceful_shutdown(self);
    }
}

/// The router as hyper's service, marking its connection busy while a
/// request is in progress.
struct ConnService {
    router: Router,
    /// For the run route, served without the router (see `call`).
    state: AppState,
    slot: Arc<ConnSlot>,
    epoch: Instant,
}

impl hyper::service::Service<Request<Incoming>> for ConnService {
    type Response = Response<Watched>;
    type Error = Infallible;
    type Future = WatchedAnswer;

    fn call(&self, mut request: Request<Incoming>) -> Self::Future {
        self.slot.busy();
        let watch = Watch { slot: self.slot.clone(), epoch: self.epoch };
        // Only a chunked body has no exact length: only then can a coding
        // other than chunked be in Transfer-Encoding.
        if http_body::Body::size_hint(request.body()).exact().is_none()
            && let Some(refused) = refuse_framing(request.headers())
        {
            return WatchedAnswer { answer: Either::Ready { response: Some(refused) }, origin: None, watch: Some(watch) };
        }
        if memchr::memchr(b'%', request.uri().path().as_bytes()).is_some() {
            decode_path(&mut request);
        }
        let origin = super::cors::origin(request.headers()).cloned();
        // The run route, the one under load, goes straight to its handler:
        // the router's path match, its matched-path extension and its
        // service layers cost more per request than the route's own
        // checks (docs/performance.md §1). Any other method or path,
        // this one's OPTIONS and 405s included, is routed.
        if request.method() == http::Method::POST && request.uri().path() == super::RUN_PATH {
            let future = Box::pin(super::run_workflow(self.state.clone(), request.map(Body::new)));
            return WatchedAnswer { answer: Either::Run { future }, origin, watch: Some(watch) };
        }
        let answer = tower::Service::call(&mut self.router.clone(), request.map(Body::new));
        WatchedAnswer { answer: Either::Route { future: answer }, origin, watch: Some(watch) }
    }
}

/// Sets its connection waiting again when the answer's body is done.
struct Watch {
    slot: Arc<ConnSlot>,
    epoch: Instant,
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.slot.waiting_since.store(since(self.epoch), Ordering::Relaxed);
    }
}

pin_project_lite::pin_project! {
    struct WatchedAnswer {
        #[pin]
        answer: Either,
        origin: Option<http::HeaderValue>,
        watch: Option<Watch>,
    }
}

pin_project_lite::pin_project! {
    /// The router's answer, the run handler's, or one made before routing.
    #[project = EitherProj]
    enum Either {
        Route { #[pin] future: axum::routing::future::RouteFuture<Infallible> },
        Run { future: Pin<Box<dyn Future<Output = axum::response::Response> + Send>> },
        Ready { response: Option<axum::response::Response> },
    }
}

impl Future for WatchedAnswer {
    type Output = Result<Response<Watched>, Infallible>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut response = match this.answer.project() {
            EitherProj::Route { future } => match std::task::ready!(future.poll(cx)) {
                Ok(response) => response,
                Err(never) => match never {},
            },
            EitherProj::Run { future } => {
                let mut response = std::task::ready!(future.as_mut().poll(cx));
                set_content_length(&mut response);
                response
            }
            EitherProj::Ready { response } => response.take().expect("polled after it was ready"),
        };
        if let Some(origin) = this.origin.take() {
            super::cors::echo_origin(origin, &mut response);
        }
        let watch = this.watch.take();
        Poll::Ready(Ok(response.map(|body| Watched { body, _watch: watch })))
    }
}

/// What axum's router does to every answer it routes, so an answer of the
/// run route is byte for byte the same either way: a body of known length
/// gets its `Content-Length` among the answer's headers (hyper would write
/// one too, but after `Connection`, not in the same place).
fn set_content_length(response: &mut axum::response::Response) {
    let headers = response.headers();
    if headers.contains_key(http::header::CONTENT_LENGTH) {
        return;
    }
    if let Some(n) = http_body::Body::size_hint(response.body()).exact() {
        response.headers_mut().insert(http::header::CONTENT_LENGTH, super::response::content_length(n));
    }
}

/// The first coding in `Transfer-Encoding` that is not `chunked`: hyper
/// reads such a body as if it were only chunked, and its bytes would be
/// taken for what they are not.
fn unsupported_coding(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get_all(http::header::TRANSFER_ENCODING)
        .iter()
        .flat_map(|v| v.to_str().unwrap_or("?").split(','))
        .map(str::trim)
        .find(|coding| !coding.eq_ignore_ascii_case("chunked"))
        .map(str::to_owned)
}

/// A chunked request the server will not read: one with a coding other
/// than chunked. (One that also declares a `Content-Length` hyper reads as
/// chunked and closes after, as RFC 9112 asks.)
fn refuse_framing(headers: &http::HeaderMap) -> Option<axum::response::Response> {
    let coding = unsupported_coding(headers)?;
    let error = super::error::ApiError::not_implemented(format!(
        "Transfer-Encoding {coding:?} is not supported; a request body may only be chunked."
    ));
    let mut response = axum::response::IntoResponse::into_response(error);
    // The body's framing is unknown: nothing after it on this connection can be read.
    response.headers_mut().insert(http::header::CONNECTION, http::HeaderValue::from_static("close"));
    Some(response)
}

/// Percent-decodes the path once before routing, as gunicorn does before
/// werkzeug matches (so `/v1/workflows/%72un` is `/v1/workflows/run`, and
/// `%2F` a real `/`). Bytes a URI may not hold are encoded again, so the
/// path stays a valid URI, and axum's own decoding of a segment gives back
/// what one decoding made.
fn decode_path(request: &mut Request<Incoming>) {
    let path = request.uri().path();
    let mut decoded = Vec::with_capacity(path.len());
    let bytes = path.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        let byte = match (bytes[i], bytes.get(i + 1..i + 3)) {
            (b'%', Some(&[h, l])) if h.is_ascii_hexdigit() && l.is_ascii_hexdigit() => {
                i += 2;
                u8::from_str_radix(std::str::from_utf8(&[h, l]).expect("ASCII"), 16).expect("hex")
            }
            (b, _) => b,
        };
        i += 1;
        if byte.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@/".contains(&byte) {
            decoded.push(byte);
        } else {
            decoded.extend_from_slice(format!("%{byte:02X}").as_bytes());
        }
    }
    let mut target = String::from_utf8(decoded).expect("ASCII");
    if let Some(query) = request.uri().query() {
        target.push('?');
        target.push_str(query);
    }
    let Ok(path_and_query) = http::uri::PathAndQuery::try_from(target) else { return };
    let mut parts = request.uri().clone().into_parts();
    parts.path_and_query = Some(path_and_query);
    if let Ok(uri) = http::Uri::from_parts(parts) {
        *request.uri_mut() = uri;
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, which holds its connection busy until dropped.
    pub struct Watched {
        #[pin]
        body: Body,
        _watch: Option<Watch>,
    }
}

impl http_body::Body for Watched {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
