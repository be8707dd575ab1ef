//! The accept loop: connection limit, optional TLS, HTTP/1.1 and HTTP/2, per-connection
//! deadlines, graceful drain.
//!
//! Every connection is driven by `serve`, which watches three things besides the protocol:
//! - the first request must arrive within `header_timeout` of the connection (this also
//!   covers HTTP/2 and a client that connects and sends nothing, which the protocol sniffing
//!   would otherwise wait on forever), and on HTTP/1.1 each later request head within
//!   `header_timeout` of the end of the request before it (what hyper's own header timer
//!   does; the connection's one timer does it here, so that a request arms no timer of its
//!   own);
//! - a connection with no request in progress for `idle_timeout` is closed gracefully;
//! - a connection with a response its client has not taken more of for `write_timeout` (the
//!   HTTP/1.1 socket or the HTTP/2 flow-control window full) is dropped, with every request
//!   on it, so that the app connections those responses stream from are closed at once;
//! - the drain: on shutdown every connection gets a graceful shutdown (HTTP/1.1: close after
//!   the response in progress; HTTP/2: GOAWAY) — one that has not delivered a request yet
//!   after its first one, within its first-request deadline — and when `shutdown_grace` runs
//!   out the rest is cut off, and every request cut off is logged.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use http::{Method, Request, Uri, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use crate::config::Limits;
use crate::metrics::Metrics;
use crate::proxy::{ConnInfo, Proxy};
use crate::tls::TlsAcceptor;
use crate::workers::Workers;

/// The public listener and what it serves.
#[derive(Debug)]
pub struct Server {
    listener: TcpListener,
    proxy: Arc<Proxy>,
    metrics: Arc<Metrics>,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    workers: Workers,
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Drained {
    /// Connections still open when `shutdown_grace` ran out (0: a clean drain).
    pub cut_off: usize,
    /// Requests in progress on those connections (each is logged at `warn`).
    pub requests_cut_off: usize,
}

/// What every connection task shares.
struct Shared {
    proxy: Arc<Proxy>,
    builder: auto::Builder<TokioExecutor>,
    header_timeout: Duration,
    idle_timeout: Duration,
    write_timeout: Duration,
    metrics: Arc<Metrics>,
    /// Turns true when the listener stops accepting: connections shut down gracefully.
    drain: watch::Receiver<bool>,
    /// Turns true when `shutdown_grace` ran out: connections are dropped.
    cut: watch::Receiver<bool>,
    /// Set just before `drain` turns true: connections poll its watch only then.
    draining: AtomicBool,
    /// Set just before `cut` turns true.
    cutting: AtomicBool,
    requests_cut_off: AtomicUsize,
}

impl Server {
    /// A server on an already-bound listener (tests bind `127.0.0.1:0`).
    pub fn new(
        listener: TcpListener,
        proxy: Arc<Proxy>,
        metrics: Arc<Metrics>,
        limits: Limits,
        tls: Option<TlsAcceptor>,
    ) -> Server {
        Server {
            listener,
            proxy,
            metrics,
            limits,
            tls,
            workers: Workers::default(),
        }
    }

    /// Spreads connections over `workers` (and this runtime) instead of this runtime only.
    pub fn with_workers(mut self, workers: Workers) -> Server {
        self.workers = workers;
        self
    }

    /// Serves until `stop` completes, then stops accepting, lets open connections finish their
    /// requests (HTTP/2 gets GOAWAY) for up to `limits.shutdown_grace`, and returns.
    pub async fn run(self, stop: impl Future<Output = ()>) -> Drained {
        let Server {
            listener,
            proxy,
            metrics,
            limits,
            tls,
            workers,
        } = self;
        let max = limits.max_connections;
        let permits = Arc::new(Semaphore::new(max));
        let (drain_tx, drain) = watch::channel(false);
        let (cut_tx, cut) = watch::channel(false);
        let mut builder = auto::Builder::new(TokioExecutor::new());
        builder
            .http1()
            .timer(TokioTimer::new())
            // Enforced by the connection's own timer (`ConnState::check`): hyper's would
            // allocate and arm a timer for every request head.
            .header_read_timeout(None)
            .max_headers(limits.max_headers)
            .max_buf_size(limits.max_header_bytes.max(8192))
            .keep_alive(true);
        builder
            .http2()
            .timer(TokioTimer::new())
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .max_concurrent_streams(limits.max_concurrent_streams)
            .keep_alive_interval(Some(Duration::from_secs(30)))
            .keep_alive_timeout(Duration::from_secs(10));
        let shared = Arc::new(Shared {
            proxy,
            builder,
            header_timeout: limits.header_timeout,
            idle_timeout: limits.idle_timeout,
            write_timeout: limits.write_timeout,
            metrics: Arc::clone(&metrics),
            drain,
            cut,
            draining: AtomicBool::new(false),
            cutting: AtomicBool::new(false),
            requests_cut_off: AtomicUsize::new(0),
        });
        tokio::pin!(stop);

        loop {
            // Take a permit before accepting: over the limit, new connections wait in the
            // kernel backlog instead of being accepted and dropped.
            let permit = tokio::select! {
                () = &mut stop => break,
                p = Arc::clone(&permits).acquire_owned() => match p {
                    Ok(p) => p,
                    Err(_) => break,
                },
            };
            let (tcp, peer) = tokio::select! {
                () = &mut stop => break,
                r = listener.accept() => match r {
                    Ok(c) => c,
                    Err(e) => {
                        // EMFILE and friends: back off instead of spinning.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                },
            };
            let _ = tcp.set_nodelay(true);
            let metrics = Arc::clone(&metrics);
            let shared = Arc::clone(&shared);
            let tls = tls.clone();
            match workers.pick() {
                None => {
                    tokio::spawn(connection(shared, metrics, tls, permit, tcp, peer));
                }
                // Moved to a worker's runtime: deregistered here, registered there.
                Some(worker) => match tcp.into_std() {
                    Ok(std) => {
                        worker.spawn(async move {
                            match tokio::net::TcpStream::from_std(std) {
                                Ok(tcp) => connection(shared, metrics, tls, permit, tcp, peer).await,
                                Err(e) => tracing::warn!(peer = %peer, error = %e, "cannot hand a connection to a worker"),
                            }
                        });
                    }
                    Err(e) => {
                        tracing::warn!(peer = %peer, error = %e, "cannot hand a connection to a worker")
                    }
                },
            }
        }
        drop(listener);
        let open = max - permits.available_permits();
        tracing::info!(open_connections = open, "stopped accepting; draining");
        shared.draining.store(true, Ordering::SeqCst);
        let _ = drain_tx.send(true);
        // Every connection holds a permit until its task ends: all permits back = drained.
        let all = u32::try_from(max).unwrap_or(u32::MAX);
        if tokio::time::timeout(limits.shutdown_grace, permits.acquire_many(all))
            .await
            .is_ok()
        {
            tracing::info!("drained");
            return Drained {
                cut_off: 0,
                requests_cut_off: 0,
            };
        }
        let left = max - permits.available_permits();
        shared.cutting.store(true, Ordering::SeqCst);
        let _ = cut_tx.send(true);
        // The tasks return as soon as they see the cut; give them a moment to log.
        let _ = tokio::time::timeout(Duration::from_secs(5), permits.acquire_many(all)).await;
        let requests = shared.requests_cut_off.load(Ordering::SeqCst);
        tracing::warn!(
            connections = left,
            requests,
            grace = %crate::config::fmt_duration(limits.shutdown_grace),
            "shutdown grace ran out; open connections cut off"
        );
        Drained {
            cut_off: left,
            requests_cut_off: requests,
        }
    }
}

/// One accepted connection, from the TLS handshake (if any) to its end; holds its permit.
async fn connection(
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    tls: Option<TlsAcceptor>,
    permit: OwnedSemaphorePermit,
    tcp: TcpStream,
    peer: SocketAddr,
) {
    let _permit = permit;
    metrics.connections.inc();
    let _conn_guard = ConnGuard(&metrics);
    match tls {
        None => serve(&shared, tcp, ConnInfo::new(peer, false)).await,
        Some(acceptor) => {
            let stream =
                match tokio::time::timeout(shared.header_timeout, acceptor.accept(tcp)).await {
                    Ok(Ok(s)) => s,
                    Ok(Err(e)) => {
                        metrics.tls_handshake_errors.inc();
                        tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                        return;
                    }
                    Err(_) => {
                        metrics.tls_handshake_errors.inc();
                        tracing::debug!(peer = %peer, "TLS handshake timed out");
                        return;
                    }
                };
            serve(&shared, stream, ConnInfo::new(peer, true)).await;
        }
    }
}

/// Serves one connection (plain or TLS) under the deadlines described in the module docs.
async fn serve<I>(shared: &Shared, io: I, info: ConnInfo)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let state = Arc::new(ConnState::new(info.peer));
    let svc = {
        let info = info.clone();
        let state = Arc::clone(&state);
        let proxy = Arc::clone(&shared.proxy);
        let inflight = shared.metrics.inflight.clone();
        let write_timeout = shared.write_timeout;
        service_fn(move |req: Request<Incoming>| {
            let guard = InFlight::begin(&state, &inflight, &req);
            let proxy = Arc::clone(&proxy);
            let state = Arc::clone(&state);
            let info = info.clone();
            async move {
                let resp = proxy.handle(req, info).await;
                let waiting = state.watch_response(write_timeout);
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    waiting,
                    guard,
                }))
            }
        })
    };
    let conn = shared.builder.serve_connection(TokioIo::new(io), svc);
    tokio::pin!(conn);
    let mut drain = shared.drain.clone();
    let mut cut = shared.cut.clone();
    // When the graceful shutdown of this connection began (drain or idle).
    let mut closing: Option<Instant> = None;
    // Once draining (`state.draining`, which ending requests read too): a connection that has
    // not delivered its first request yet may have been accepted just before the listener
    // closed with a request on its way: it keeps its first-request deadline, and is shut down
    // gracefully as soon as it has had a request.
    // One timer per connection, moved only when it fires or the state changes: a request
    // ending does not touch the timer wheel (`check` decides whether a deadline really passed).
    let sleep = tokio::time::sleep_until(state.next_check(shared, closing));
    tokio::pin!(sleep);
    loop {
        let draining = state.draining.load(Ordering::SeqCst);
        if draining && closing.is_none() && state.started.load(Ordering::SeqCst) > 0 {
            conn.as_mut().graceful_shutdown();
            closing = Some(Instant::now());
            sleep.as_mut().reset(state.next_check(shared, closing));
        }
        let drain_wait = drain.wait_for(|d| *d);
        let cut_wait = cut.wait_for(|c| *c);
        let quiet = state.quiet.notified();
        let rearm = state.rearm.notified();
        tokio::pin!(drain_wait, cut_wait, quiet, rearm);
        // The connection is polled on every wake-up (several per request); the other sources
        // once when they are made (which registers this task to be woken by each), then only
        // when a flag set before that wake-up says they may be ready: no watch, notify or
        // timer is polled per request.
        let mut fresh = true;
        let event = std::future::poll_fn(|cx| {
            if let Poll::Ready(r) = conn.as_mut().poll(cx) {
                return Poll::Ready(Event::Ended(r.err()));
            }
            let first = std::mem::take(&mut fresh);
            if (first || shared.cutting.load(Ordering::SeqCst))
                && cut_wait.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Event::Cut);
            }
            if !draining
                && (first || shared.draining.load(Ordering::SeqCst))
                && drain_wait.as_mut().poll(cx).is_ready()
            {
                return Poll::Ready(Event::Drain);
            }
            // Draining: a request ended, so the connection may now be shut down.
            if draining && quiet.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Quiet);
            }
            // A response began while the timer was set for later than `write_timeout` allows.
            if state.rearm_due.swap(false, Ordering::SeqCst)
                || (first && rearm.as_mut().poll(cx).is_ready())
            {
                return Poll::Ready(Event::Rearm);
            }
            if (first || sleep.is_elapsed()) && sleep.as_mut().poll(cx).is_ready() {
                return Poll::Ready(Event::Timer);
            }
            Poll::Pending
        })
        .await;
        match event {
            Event::Ended(e) => {
                if let Some(e) = e {
                    tracing::debug!(peer = %info.peer, error = %e, "connection ended with an error");
                }
                return;
            }
            Event::Drain => state.draining.store(true, Ordering::SeqCst),
            Event::Cut => {
                let n = state.cut_off();
                shared.requests_cut_off.fetch_add(n, Ordering::SeqCst);
                if n > 0 {
                    tracing::warn!(peer = %info.peer, requests = n, "connection cut off: shutdown grace ran out");
                }
                // Dropping `conn` drops the requests on it; each logs itself (InFlight).
                return;
            }
            Event::Quiet => {}
            Event::Rearm => sleep.as_mut().reset(state.next_check(shared, closing)),
            Event::Timer => {
                match state.check(shared, closing) {
                    Check::Keep => {}
                    Check::Close => {
                        tracing::debug!(peer = %info.peer, "closing an idle connection");
                        conn.as_mut().graceful_shutdown();
                        closing = Some(Instant::now());
                    }
                    Check::Drop(why) => {
                        tracing::debug!(peer = %info.peer, why, "dropping a connection");
                        return;
                    }
                    Check::Abandon => {
                        shared.metrics.responses_abandoned.inc();
                        tracing::warn!(
                            peer = %info.peer,
                            write_timeout = ?shared.write_timeout,
                            requests = state.active.load(Ordering::SeqCst),
                            "client did not read its response within write_timeout; connection dropped"
                        );
                        return;
                    }
                }
                sleep.as_mut().reset(state.next_check(shared, closing));
            }
        }
    }
}

/// What woke a connection's task for more than its protocol.
enum Event {
    /// The connection ended (with the error, if any).
    Ended(Option<Box<dyn std::error::Error + Send + Sync>>),
    Drain,
    Cut,
    Quiet,
    Rearm,
    Timer,
}

/// What one connection's deadline check decided.
enum Check {
    Keep,
    /// Idle: shut down gracefully.
    Close,
    /// Nothing in progress and past a hard deadline: drop the socket.
    Drop(&'static str),
    /// A response has waited on its client for `write_timeout`: drop the socket and every
    /// request on it.
    Abandon,
}

/// Per-connection bookkeeping shared by its requests and its task.
struct ConnState {
    peer: SocketAddr,
    born: Instant,
    /// Requests whose response is not finished yet.
    active: AtomicUsize,
    /// Requests begun on this connection.
    started: AtomicU64,
    /// Set by its first request when the connection speaks HTTP/2: its later requests come
    /// as streams, with no request head to wait for between them.
    h2: AtomicBool,
    /// When the last request ended, in milliseconds after `born`.
    last_end_ms: AtomicU64,
    /// Set when the connection is being cut off, so that its requests log themselves.
    cut: AtomicBool,
    /// Set when the server drains: ending requests then signal `quiet`.
    draining: AtomicBool,
    /// Signalled, while draining, when the last request in progress ends.
    quiet: Notify,
    /// The responses being written, each with when it began to wait on the client
    /// ([`Tracked`]): the slots a response holds (a strong count above one). A slot no
    /// response holds any more is given to the next one, so that a response allocates none;
    /// the list is as long as the most responses ever in progress at once on the connection.
    responses: Mutex<Vec<Arc<AtomicU64>>>,
    /// When the connection's timer fires next, in milliseconds after `born`.
    timer_at: AtomicU64,
    /// Signalled when a response begins and the timer is too far off to see it stall in time.
    rearm: Notify,
    /// Set just before `rearm` is signalled.
    rearm_due: AtomicBool,
}

/// A response's wait time when it is not waiting on its client.
const NOT_WAITING: u64 = u64::MAX;

impl ConnState {
    fn new(peer: SocketAddr) -> ConnState {
        ConnState {
            peer,
            born: Instant::now(),
            active: AtomicUsize::new(0),
            started: AtomicU64::new(0),
            h2: AtomicBool::new(false),
            last_end_ms: AtomicU64::new(0),
            cut: AtomicBool::new(false),
            draining: AtomicBool::new(false),
            quiet: Notify::new(),
            responses: Mutex::new(Vec::new()),
            timer_at: AtomicU64::new(0),
            rearm: Notify::new(),
            rearm_due: AtomicBool::new(false),
        }
    }

    fn ms_since_born(&self) -> u64 {
        u64::try_from(self.born.elapsed().as_millis()).unwrap_or(u64::MAX - 1)
    }

    /// Registers a response handed to the HTTP layer: it waits on the client from now. Wakes
    /// the connection's task to move its timer closer if it is set for later than
    /// `write_timeout` from now (a connection idle or new until this request, whose idle
    /// deadline lies beyond it). A timer due within `write_timeout` needs no move: when it
    /// fires with a request in progress it checks again every quarter of `write_timeout`, so a
    /// stalled response is still seen within a quarter of `write_timeout` after it ran out. On
    /// HTTP/1.1 with the default limits the idle deadline (`header_timeout`) always is within
    /// it: a request wakes nothing.
    fn watch_response(&self, write_timeout: Duration) -> Arc<AtomicU64> {
        let now = self.ms_since_born();
        let limit = u64::try_from(write_timeout.as_millis()).unwrap_or(u64::MAX);
        if self.timer_at.load(Ordering::SeqCst) > now.saturating_add(limit) {
            self.rearm_due.store(true, Ordering::SeqCst);
            self.rearm.notify_one();
        }
        let mut list = match self.responses.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        // Only this list holds a free slot, and only under its lock is one handed out: a count
        // of one stays one until then.
        if let Some(free) = list.iter().find(|w| Arc::strong_count(w) == 1) {
            // Whatever its last response wrote into it comes before this.
            std::sync::atomic::fence(Ordering::Acquire);
            free.store(now, Ordering::SeqCst);
            return Arc::clone(free);
        }
        let waiting = Arc::new(AtomicU64::new(now));
        list.push(Arc::clone(&waiting));
        waiting
    }

    /// How long the response that has waited on its client longest has waited.
    fn longest_wait(&self) -> Option<Duration> {
        let list = match self.responses.lock() {
            Ok(l) => l,
            Err(poisoned) => poisoned.into_inner(),
        };
        let since = list
            .iter()
            .filter(|w| Arc::strong_count(w) > 1)
            .map(|w| w.load(Ordering::SeqCst))
            .filter(|&ms| ms != NOT_WAITING)
            .min()?;
        Some(Duration::from_millis(
            self.ms_since_born().saturating_sub(since),
        ))
    }

    /// The next instant a deadline may pass; `check` decides whether one did. Never later
    /// than the earliest deadline that could apply by then, as nothing else moves the timer
    /// (but [`ConnState::watch_response`]). Remembered in `timer_at`: the caller sets the
    /// timer to it.
    fn next_check(&self, shared: &Shared, closing: Option<Instant>) -> Instant {
        let at = self.next_deadline(shared, closing);
        let ms = u64::try_from(at.saturating_duration_since(self.born).as_millis());
        self.timer_at
            .store(ms.unwrap_or(u64::MAX), Ordering::SeqCst);
        at
    }

    fn next_deadline(&self, shared: &Shared, closing: Option<Instant>) -> Instant {
        let now = Instant::now();
        if self.active.load(Ordering::SeqCst) > 0 {
            // Busy: only `write_timeout` applies; look again later.
            return now
                + shared
                    .idle_timeout
                    .min(shared.header_timeout)
                    .min(shared.write_timeout / 4);
        }
        match closing {
            Some(since) => since + shared.header_timeout,
            // No request yet: its deadline, or sooner, as a request may begin and end before
            // then, and its idle deadline must not be missed.
            None if self.started.load(Ordering::SeqCst) == 0 => {
                (self.born + shared.header_timeout).min(now + shared.idle_timeout)
            }
            None => self.idle_since() + self.idle_limit(shared),
        }
    }

    /// How long the connection may have no request in progress: `idle_timeout`, and on
    /// HTTP/1.1 at most `header_timeout`, as the next request head must arrive within it.
    fn idle_limit(&self, shared: &Shared) -> Duration {
        if self.h2.load(Ordering::SeqCst) {
            shared.idle_timeout
        } else {
            shared.idle_timeout.min(shared.header_timeout)
        }
    }

    fn check(&self, shared: &Shared, closing: Option<Instant>) -> Check {
        if self.active.load(Ordering::SeqCst) > 0 {
            return match self.longest_wait() {
                Some(w) if w >= shared.write_timeout => Check::Abandon,
                _ => Check::Keep,
            };
        }
        let now = Instant::now();
        if let Some(since) = closing {
            return if now >= since + shared.header_timeout {
                Check::Drop("not closed within header_timeout of its graceful shutdown")
            } else {
                Check::Keep
            };
        }
        if self.started.load(Ordering::SeqCst) == 0 {
            return if now >= self.born + shared.header_timeout {
                Check::Drop("no request within header_timeout")
            } else {
                Check::Keep
            };
        }
        let idle = self.idle_since();
        if !self.h2.load(Ordering::SeqCst) && now >= idle + shared.header_timeout {
            // No (complete) HTTP/1.1 request head within `header_timeout` of the last request:
            // dropped, as a stalled first head is (hyper's header timer ended it the same way).
            Check::Drop("no request head within header_timeout")
        } else if now >= idle + shared.idle_timeout {
            Check::Close
        } else {
            Check::Keep
        }
    }

    fn idle_since(&self) -> Instant {
        self.born + Duration::from_millis(self.last_end_ms.load(Ordering::SeqCst))
    }

    /// Marks the connection as cut off; returns how many requests were in progress.
    fn cut_off(&self) -> usize {
        self.cut.store(true, Ordering::SeqCst);
        self.active.load(Ordering::SeqCst)
    }
}

/// One request in progress, from its head until its response body is done or dropped.
struct InFlight {
    state: Arc<ConnState>,
    /// `hookseal_inflight_requests`: a request counts until its response body is done.
    inflight: prometheus::IntGauge,
    method: Method,
    uri: Uri,
    started: Instant,
}

impl InFlight {
    fn begin<B>(
        state: &Arc<ConnState>,
        inflight: &prometheus::IntGauge,
        req: &Request<B>,
    ) -> InFlight {
        if state.started.load(Ordering::SeqCst) == 0 && req.version() == Version::HTTP_2 {
            state.h2.store(true, Ordering::SeqCst);
        }
        state.started.fetch_add(1, Ordering::SeqCst);
        state.active.fetch_add(1, Ordering::SeqCst);
        inflight.inc();
        InFlight {
            state: Arc::clone(state),
            inflight: inflight.clone(),
            method: req.method().clone(),
            uri: req.uri().clone(),
            started: Instant::now(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.inflight.dec();
        let s = &self.state;
        let ms = u64::try_from(s.born.elapsed().as_millis()).unwrap_or(u64::MAX);
        s.last_end_ms.fetch_max(ms, Ordering::SeqCst);
        if s.active.fetch_sub(1, Ordering::SeqCst) == 1 && s.draining.load(Ordering::SeqCst) {
            s.quiet.notify_one();
        }
        if s.cut.load(Ordering::SeqCst) {
            // The path only: a query string may carry tokens.
            tracing::warn!(
                peer = %s.peer,
                method = %self.method,
                path = self.uri.path(),
                running = ?self.started.elapsed(),
                "request cut off: shutdown grace ran out"
            );
        }
    }
}

/// A response body that keeps its request counted as in progress until it is done, and
/// tells its connection since when it has waited on the client: from when it was handed to
/// the HTTP layer, and again from each frame it gives until the next is asked for (the
/// HTTP layer asks only when it has room for it: socket buffers or flow-control window).
/// While the app has not sent the next frame, it waits on the app, not on the client.
struct Tracked<B> {
    body: B,
    /// [`NOT_WAITING`], or milliseconds after the connection was born.
    waiting: Arc<AtomicU64>,
    guard: InFlight,
}

impl<B: Body + Unpin> Body for Tracked<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.waiting.store(NOT_WAITING, Ordering::SeqCst);
        let r = Pin::new(&mut self.body).poll_frame(cx);
        if matches!(&r, Poll::Ready(Some(Ok(_)))) && !self.body.is_end_stream() {
            let now = self.guard.state.ms_since_born();
            self.waiting.store(now, Ordering::SeqCst);
        }
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// Keeps `hookseal_connections` right however the connection task ends.
struct ConnGuard<'a>(&'a Metrics);

impl Drop for ConnGuard<'_> {
    fn drop(&mut self) {
        self.0.connections.dec();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_finished_response_gives_its_slot_to_the_next_and_is_not_waited_on() {
        let state = ConnState::new("127.0.0.1:9".parse().unwrap());
        let write_timeout = Duration::from_secs(60);
        let slots = |s: &ConnState| s.responses.lock().unwrap().len();
        let a = state.watch_response(write_timeout);
        assert!(state.longest_wait().is_some());
        drop(a);
        // Its wait time is still in the slot, but no response holds it.
        assert_eq!(state.longest_wait(), None);
        let b = state.watch_response(write_timeout);
        assert_eq!(slots(&state), 1, "the free slot is taken again");
        let c = state.watch_response(write_timeout);
        assert_eq!(slots(&state), 2);
        assert!(!Arc::ptr_eq(&b, &c));
        b.store(NOT_WAITING, Ordering::SeqCst);
        c.store(0, Ordering::SeqCst);
        assert!(
            state.longest_wait().is_some(),
            "c waits since the connection was born"
        );
        c.store(NOT_WAITING, Ordering::SeqCst);
        assert_eq!(state.longest_wait(), None);
        drop((b, c));
        let _d = state.watch_response(write_timeout);
        assert_eq!(slots(&state), 2);
    }
}
