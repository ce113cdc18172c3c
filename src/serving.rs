//! What every listener shares (the web app, the face API, the control socket): a cap on open
//! connections that makes room by closing the oldest idle one, a deadline for each request's
//! head, and an accept loop that backs off instead of spinning when accepting fails (out of file
//! descriptors). Without these, a thousand idle connections from anyone who can reach the port
//! took every file descriptor, and with them the camera and the control socket. A listener that
//! speaks TLS keeps all of these, the handshake within the same deadline, and answers plain HTTP
//! on the same port with a redirect to https.

use std::collections::HashMap;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes, HttpBody};
use axum::extract::ConnectInfo;
use axum::http::uri::Authority;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::checks::Checks;

/// `[<section>.connections]`: how many connections a listener keeps and how long they may idle.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Limits {
    /// Connections open at once; at the cap the oldest idle one (waiting for a request, or still
    /// receiving its body) is closed to make room, and a new one is refused only while every open
    /// one is being answered.
    pub max: usize,
    /// A connection must send a whole request head (HTTP headers, a control line) within this
    /// long of opening or of its previous answer, or it is closed: idle connections end too.
    #[serde(with = "humantime_serde")]
    pub header_timeout: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self { max: 256, header_timeout: Duration::from_secs(10) }
    }
}

impl Limits {
    pub fn check(&self, section: &str, checks: &mut Checks) {
        checks.check(
            (1..=4096).contains(&self.max),
            &format!("{section}.connections.max"),
            format!("{} is out of range; use 1 to 4096 (default {})", self.max, Self::default().max),
        );
        checks.duration(
            &format!("{section}.connections.header_timeout"),
            self.header_timeout,
            Duration::from_secs(1),
            Duration::from_secs(300),
        );
    }
}

/// A listener whose accepted connections [`accept_loop`] serves.
pub trait Accept: Send + 'static {
    type Io: Send + 'static;
    type Addr: Send + 'static;

    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Self::Addr)>> + Send;
}

impl Accept for TcpListener {
    type Io = TcpStream;
    type Addr = SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(TcpStream, SocketAddr)>> + Send {
        TcpListener::accept(self)
    }
}

impl Accept for UnixListener {
    type Io = UnixStream;
    type Addr = tokio::net::unix::SocketAddr;

    fn accept(&self) -> impl Future<Output = io::Result<(UnixStream, Self::Addr)>> + Send {
        UnixListener::accept(self)
    }
}

/// Accepts connections on `listener` and serves each with `serve` in a task of its own, within
/// `limits`, until `shutdown` completes; then waits for the connections, which are told to stop
/// through their [`Slot::closing`]. Dropping the future ends every connection at once.
pub async fn accept_loop<L, F, Fut>(
    name: &'static str,
    listener: L,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
    mut serve: F,
) where
    L: Accept,
    F: FnMut(L::Io, L::Addr, Slot) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let connections = Arc::new(Connections::new(name, limits));
    let (stop, stopping) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((io, address)) => {
                    backoff.succeeded(name);
                    // Refused connections are dropped, and so closed, at once.
                    if let Some(slot) = connections.admit(stopping.clone()) {
                        tasks.spawn(serve(io, address, slot));
                    }
                }
                Err(e) => backoff.failed(name, &e).await,
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    while tasks.join_next().await.is_some() {}
}

/// How a listener speaks TLS: its acceptor, and what answers plain HTTP sent to the same port.
#[derive(Clone)]
pub struct Tls {
    pub acceptor: TlsAcceptor,
    /// Answers plain HTTP: [`Tls::redirecting`] sends everything to https.
    pub plain: Router,
}

impl Tls {
    pub fn redirecting(acceptor: TlsAcceptor) -> Self {
        Self { acceptor, plain: Router::new().fallback(redirect_to_https) }
    }
}

/// Serves `router` over HTTP/1.1 on `listener` within `limits` until `shutdown` completes, then
/// lets requests in flight finish. With `tls`, connections speak TLS, and plain HTTP on the same
/// port is answered by `tls.plain`. Handlers see the peer as `ConnectInfo<SocketAddr>`.
pub async fn serve_http(
    name: &'static str,
    listener: TcpListener,
    router: Router,
    tls: Option<Tls>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    let header_timeout = limits.header_timeout;
    accept_loop(name, listener, limits, shutdown, move |stream, peer, slot| {
        let (router, tls) = (router.clone(), tls.clone());
        async move {
            match tls {
                None => serve_http_connection(stream, peer, router, slot, header_timeout).await,
                Some(tls) => serve_tls_connection(stream, peer, router, tls, slot, header_timeout).await,
            }
        }
    })
    .await;
}

/// The first byte of every TLS connection: the record type of its handshake.
const TLS_HANDSHAKE: u8 = 0x16;

/// A connection to a TLS port, once it has said what it speaks.
enum Opened {
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
    /// Plain HTTP (a browser given `http://`, or just `host:port`).
    Plain(TcpStream),
}

/// Serves one connection to a TLS port: a TLS handshake, or plain HTTP that `tls.plain` answers
/// (with a redirect to https). Its first byte and the whole handshake must arrive within `header_timeout`, as a
/// request head must, and the connection may be closed for room meanwhile: a handshake left
/// hanging holds a place no longer than an idle connection.
async fn serve_tls_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    tls: Tls,
    slot: Slot,
    header_timeout: Duration,
) {
    let opened = tokio::select! {
        opened = open_tls(stream, &tls.acceptor) => opened,
        () = tokio::time::sleep(header_timeout) => {
            tracing::debug!(%peer, "no TLS handshake within the header timeout");
            return;
        }
        _ = slot.closing() => return,
    };
    match opened {
        Ok(Opened::Tls(stream)) => serve_http_connection(*stream, peer, router, slot, header_timeout).await,
        Ok(Opened::Plain(stream)) => serve_http_connection(stream, peer, tls.plain, slot, header_timeout).await,
        Err(e) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
    }
}

async fn open_tls(stream: TcpStream, tls: &TlsAcceptor) -> io::Result<Opened> {
    let mut first = [0u8; 1];
    if stream.peek(&mut first).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    if first[0] == TLS_HANDSHAKE {
        Ok(Opened::Tls(Box::new(tls.accept(stream).await?)))
    } else {
        Ok(Opened::Plain(stream))
    }
}

/// Plain HTTP on a TLS port: the same address over https. Temporary (307), so that browsers do
/// not remember it should TLS be turned off later; the method and body are kept.
pub async fn redirect_to_https(request: axum::extract::Request) -> Response {
    let host = request.headers().get(header::HOST).and_then(|host| host.to_str().ok());
    match host.and_then(|host| host.parse::<Authority>().ok()) {
        Some(host) => {
            let path = request.uri().path_and_query().map_or("/", |path| path.as_str());
            Redirect::temporary(&format!("https://{host}{path}")).into_response()
        }
        None => {
            (StatusCode::BAD_REQUEST, "This port speaks https: open https://<this address>/ instead.\n").into_response()
        }
    }
}

async fn serve_http_connection<S>(stream: S, peer: SocketAddr, router: Router, slot: Slot, header_timeout: Duration)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let activity = slot.activity();
    let service = hyper::service::service_fn(move |request: hyper::Request<Incoming>| {
        // Busy from the last byte of the request until the last byte of the answer (a live
        // stream included); while its body trickles in, a connection can still be closed for a
        // newcomer, so slow uploads cannot hold every place either.
        let working = Arc::new(Mutex::new(None));
        let mut request = request.map(|body| Arriving { body, then: Some((activity.clone(), Arc::clone(&working))) });
        if request.body().body.is_end_stream() {
            request.body_mut().arrived();
        }
        let mut request = request.map(Body::new);
        request.extensions_mut().insert(ConnectInfo(peer));
        let response = router.clone().oneshot(request);
        async move {
            let response = response.await?;
            Ok::<_, Infallible>(response.map(|body| Body::new(WhileWorking { body, _working: working })))
        }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        // hyper starts this clock whenever it waits for a request head, so idle keep-alive
        // connections and headers sent a byte at a time both end.
        .header_read_timeout(header_timeout)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    let mut closing = false;
    loop {
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(%peer, error = %e, "connection ended");
                }
                return;
            }
            why = slot.closing(), if !closing => {
                // Not busy: idle, or its request still arriving, which a graceful end would wait for.
                if why == Closing::Evicted && !slot.is_busy() {
                    return;
                }
                // Ends an idle connection now and a busy one after its answer.
                closing = true;
                connection.as_mut().graceful_shutdown();
            }
        }
    }
}

/// A request body that marks its connection busy once all of it has arrived.
struct Arriving {
    body: Incoming,
    then: Option<(Activity, Arc<Mutex<Option<Working>>>)>,
}

impl Arriving {
    fn arrived(&mut self) {
        if let Some((activity, working)) = self.then.take() {
            *working.lock().expect("working lock") = Some(activity.start());
        }
    }
}

impl HttpBody for Arriving {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None)) || self.body.is_end_stream() {
            self.arrived();
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A response body that keeps its connection marked busy until it is sent or dropped.
struct WhileWorking {
    body: Body,
    _working: Arc<Mutex<Option<Working>>>,
}

impl HttpBody for WhileWorking {
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

/// The open connections of one listener.
struct Connections {
    name: &'static str,
    limits: Limits,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
    next_id: AtomicU64,
    /// When a refusal was last logged: a flood must not flood the log as well.
    refusal_logged: Mutex<Option<Instant>>,
}

struct Entry {
    opened: Instant,
    /// Requests in progress.
    busy: AtomicUsize,
    evicted: Notify,
}

/// Refusals are logged at most this often.
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(60);

impl Connections {
    fn new(name: &'static str, limits: Limits) -> Self {
        Self { name, limits, open: Mutex::default(), next_id: AtomicU64::new(0), refusal_logged: Mutex::default() }
    }

    /// A slot for a new connection; at the cap the oldest idle connection is told to close to
    /// make room. None while every open connection is busy.
    fn admit(self: &Arc<Self>, stopping: watch::Receiver<bool>) -> Option<Slot> {
        let mut open = self.open.lock().expect("connections lock");
        if open.len() >= self.limits.max {
            let idle = open
                .iter()
                .filter(|(_, entry)| entry.busy.load(Ordering::SeqCst) == 0)
                .min_by_key(|(_, entry)| entry.opened)
                .map(|(id, _)| *id);
            match idle.and_then(|id| open.remove(&id)) {
                Some(entry) => {
                    tracing::debug!(listener = self.name, "connection cap reached: closing the oldest idle connection");
                    entry.evicted.notify_one();
                }
                None => {
                    drop(open);
                    self.log_refusal();
                    return None;
                }
            }
        }
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry { opened: Instant::now(), busy: AtomicUsize::new(0), evicted: Notify::new() });
        open.insert(id, Arc::clone(&entry));
        Some(Slot { id, connections: Arc::clone(self), entry, stopping })
    }

    fn log_refusal(&self) {
        let mut logged = self.refusal_logged.lock().expect("refusal log lock");
        let now = Instant::now();
        if logged.is_none_or(|at| now.duration_since(at) >= REFUSAL_LOG_INTERVAL) {
            *logged = Some(now);
            tracing::warn!(
                listener = self.name,
                max = self.limits.max,
                "refusing connections: every one of the allowed connections is busy (logged once a minute)"
            );
        }
    }
}

/// One admitted connection's place; dropping it frees the place.
pub struct Slot {
    id: u64,
    connections: Arc<Connections>,
    entry: Arc<Entry>,
    stopping: watch::Receiver<bool>,
}

impl Slot {
    /// Marks the connection busy for requests in progress.
    pub fn activity(&self) -> Activity {
        Activity(Arc::clone(&self.entry))
    }

    /// Completes when the connection should close, saying why.
    pub async fn closing(&self) -> Closing {
        let mut stopping = self.stopping.clone();
        tokio::select! {
            () = self.entry.evicted.notified() => Closing::Evicted,
            _ = stopping.wait_for(|stop| *stop) => Closing::Stopping,
        }
    }

    /// Whether a request is in progress.
    pub fn is_busy(&self) -> bool {
        self.entry.busy.load(Ordering::SeqCst) > 0
    }
}

/// Why a connection should close.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Closing {
    /// Its place went to a newer connection while it was idle.
    Evicted,
    /// The listener is stopping.
    Stopping,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.connections.open.lock().expect("connections lock").remove(&self.id);
    }
}

/// Marks its connection busy; a busy connection is never closed to make room.
#[derive(Clone)]
pub struct Activity(Arc<Entry>);

impl Activity {
    pub fn start(&self) -> Working {
        self.0.busy.fetch_add(1, Ordering::SeqCst);
        Working(Arc::clone(&self.0))
    }
}

/// A request in progress; dropping it ends it.
pub struct Working(Arc<Entry>);

impl Drop for Working {
    fn drop(&mut self) {
        self.0.busy.fetch_sub(1, Ordering::SeqCst);
    }
}

/// The pause after a failed accept, doubling from the first to the last: out of file
/// descriptors every accept fails at once, and retrying at once spins and floods the log.
const BACKOFF_FIRST: Duration = Duration::from_millis(10);
const BACKOFF_LAST: Duration = Duration::from_secs(1);

#[derive(Default)]
struct Backoff {
    pause: Option<Duration>,
}

impl Backoff {
    async fn failed(&mut self, name: &str, error: &io::Error) {
        let pause = match self.pause {
            None => {
                tracing::error!(listener = name, %error, "cannot accept connections; retrying with back-off");
                BACKOFF_FIRST
            }
            Some(pause) => (pause * 2).min(BACKOFF_LAST),
        };
        self.pause = Some(pause);
        tokio::time::sleep(pause).await;
    }

    fn succeeded(&mut self, name: &str) {
        if self.pause.take().is_some() {
            tracing::info!(listener = name, "accepting connections again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn connections(max: usize) -> (Arc<Connections>, watch::Sender<bool>) {
        let limits = Limits { max, ..Limits::default() };
        (Arc::new(Connections::new("test", limits)), watch::channel(false).0)
    }

    fn admit(connections: &Arc<Connections>, stop: &watch::Sender<bool>) -> Option<Slot> {
        connections.admit(stop.subscribe())
    }

    async fn closes(slot: &Slot) -> bool {
        tokio::time::timeout(Duration::from_millis(10), slot.closing()).await.is_ok()
    }

    #[tokio::test(start_paused = true)]
    async fn at_the_cap_the_oldest_idle_connection_makes_room() {
        let (connections, stop) = connections(2);
        let oldest = admit(&connections, &stop).expect("room");
        tokio::time::advance(Duration::from_secs(1)).await;
        let busy = admit(&connections, &stop).expect("room");
        let working = busy.activity().start();
        tokio::time::advance(Duration::from_secs(1)).await;
        let newest = admit(&connections, &stop).expect("an idle connection made room");
        assert!(closes(&oldest).await, "the oldest idle connection is told to close");
        assert!(!closes(&busy).await && !closes(&newest).await);
        drop(oldest);
        let newest_working = newest.activity().start();
        assert!(admit(&connections, &stop).is_none(), "every connection is busy: refused");
        drop(working);
        assert!(admit(&connections, &stop).is_some(), "a finished request frees its connection for eviction");
        assert!(closes(&busy).await);
        drop(newest_working);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_connection_frees_its_place_and_stopping_closes_all() {
        let (connections, stop) = connections(1);
        let first = admit(&connections, &stop).expect("room");
        let _working = first.activity().start();
        assert!(admit(&connections, &stop).is_none());
        drop(first);
        let second = admit(&connections, &stop).expect("the place is free again");
        assert!(!closes(&second).await);
        stop.send(true).expect("a slot listens");
        assert!(closes(&second).await);
    }

    #[tokio::test(start_paused = true)]
    async fn failed_accepts_back_off_up_to_a_second() {
        let mut backoff = Backoff::default();
        let error = io::Error::from_raw_os_error(libc::EMFILE);
        let start = Instant::now();
        for _ in 0..10 {
            backoff.failed("test", &error).await;
        }
        // 10 + 20 + … + 640 ms, then 1 s thrice.
        assert_eq!(start.elapsed(), Duration::from_millis(1270 + 3000));
        backoff.succeeded("test");
        let again = Instant::now();
        backoff.failed("test", &error).await;
        assert_eq!(again.elapsed(), BACKOFF_FIRST, "a success starts over");
    }

    #[test]
    fn limits_name_their_keys() {
        let mut checks = Checks::default();
        Limits { max: 0, header_timeout: Duration::ZERO }.check("web", &mut checks);
        let keys: Vec<String> = checks.into_problems().into_iter().map(|p| p.key).collect();
        assert_eq!(keys, ["web.connections.max", "web.connections.header_timeout"]);
        let mut checks = Checks::default();
        Limits::default().check("web", &mut checks);
        assert!(checks.into_problems().is_empty());
    }
}
