//! The pooled HTTP/1.1 client to the application.
//!
//! A pool of hyper `client::conn::http1` connections per upstream authority, each driven by
//! the task that holds it: the request's own task writes the request, reads the response head
//! and, through [`UpstreamBody`], the response body. No connection task, no channel hop
//! between tasks per request (BENCHMARKS.md, "What was learned"). An idle connection is polled
//! when it is checked out (a connection the app closed meanwhile is seen closed and skipped)
//! and by a reaper every 15 s.
//!
//! At most `upstream.max_connections` connections to the app are open at once, idle ones
//! included: a request that needs a new one when all are taken closes an idle one (of another
//! upstream or thread) if there is one, else waits for one to close or come back, within
//! `upstream.timeout`, and gets [`UpstreamError::Busy`] when none does.
//!
//! The delivery rule is the one a webhook proxy needs: a request is sent again on another
//! connection only when hyper hands it back untouched (the pooled connection closed before any
//! byte of it was written); once written, a failure is a 502, never a second delivery.

use std::future::{poll_fn, Future};
use std::pin::Pin;
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::uri::Authority;
use http::{Request, Response};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;
use prometheus::IntGauge;
use tokio::net::TcpStream;
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use tokio::time::{Instant, Sleep};

use crate::body::RawBody;
use crate::config::Upstream;

/// Why the upstream gave no answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum UpstreamError {
    /// Refused, reset, or closed before a response head.
    #[error("upstream unavailable")]
    Unavailable,
    /// No response head within the timeout.
    #[error("upstream timed out")]
    Timeout,
    /// `upstream.max_connections` are open and none came free within the timeout.
    #[error("no app connection free")]
    Busy,
}

/// Idle connections older than this are closed instead of reused.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Idle connections kept per upstream; more are closed when they come back.
const MAX_IDLE: usize = 256;

type Sender = http1::SendRequest<RawBody>;
type Conn = http1::Connection<TokioIo<TcpStream>, RawBody>;

/// Keep-alive connections to the app, shared by every route.
#[derive(Debug, Clone)]
pub struct UpstreamClient {
    pool: Arc<Pool>,
}

#[derive(Debug)]
struct Pool {
    connect_timeout: Duration,
    /// One permit per connection the app may have open (`upstream.max_connections`).
    slots: Arc<Semaphore>,
    /// `hookseal_upstream_connections`
    open: IntGauge,
    /// Woken when a connection comes back idle while all `slots` are taken.
    returned: Notify,
    /// Idle connections, a shard per worker thread ([`crate::workers::shard`]): a connection is
    /// used on the thread whose runtime it is registered with, and a shard's lock is only ever
    /// taken by its own thread and, every 15 s, the reaper — never contended, and on cache
    /// lines of its own.
    shards: Box<[Shard]>,
}

/// Shards in a pool; a worker beyond that shares a shard (still correct: a connection polled
/// from another runtime's thread is woken by its own runtime's driver, only less cheaply).
const SHARDS: usize = 64;

/// One thread's idle connections by authority (a handful of upstreams: a list beats hashing).
// Boxed links on purpose: a link leaves the list for a response body and comes back, and moves
// with every move of that response on the way (see [`Link`]).
#[allow(clippy::vec_box)]
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(Mutex<Vec<(Authority, Vec<Box<Link>>)>>);

impl Shard {
    #[allow(clippy::vec_box)]
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(Authority, Vec<Box<Link>>)>> {
        match self.0.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }
}

/// One connection to the app: the request side and the connection state machine, which
/// whoever holds the link polls. Boxed once when the connection is made: a request moves it
/// from the pool into its response body and back, and with it every move of that response
/// (hyper's connection state is several hundred bytes), so it moves as a pointer.
#[derive(Debug)]
struct Link {
    sender: Sender,
    /// `None` once the connection ended (it is never polled again).
    conn: Option<Conn>,
    authority: Authority,
    /// When it last went idle.
    since: Instant,
    /// Its place under `upstream.max_connections`, given back when the link is dropped.
    _slot: OwnedSemaphorePermit,
    open: IntGauge,
    /// The upstream timeout of the request that holds the link, one timer for all its
    /// requests: set to each request's deadline, which is later than the one before, tokio
    /// moves it without touching its timer wheel (an armed timer moved later is only looked at
    /// again when its first time comes), where a timer per request is registered and removed
    /// every time. Fired while the link is idle, it wakes the task of the request it last
    /// bounded, which finds nothing to do.
    timer: Pin<Box<Sleep>>,
}

impl Drop for Link {
    fn drop(&mut self) {
        self.open.dec();
    }
}

impl Link {
    /// Lets the connection make progress (write, read, hand the response over). Returns true
    /// when the connection has ended; it is dropped then, which fails whatever still waits
    /// on it.
    fn drive(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(conn) = self.conn.as_mut() else {
            return true;
        };
        match Pin::new(conn).poll(cx) {
            Poll::Pending => false,
            Poll::Ready(r) => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "upstream connection ended with an error");
                }
                self.conn = None;
                true
            }
        }
    }

    fn is_open(&self) -> bool {
        self.conn.is_some() && !self.sender.is_closed()
    }

    /// Still open, and idle for less than [`IDLE_TIMEOUT`].
    fn reusable(&self, now: Instant) -> bool {
        self.is_open() && now.duration_since(self.since) < IDLE_TIMEOUT
    }

    /// Whether `deadline` (the link's timer, set by [`Link::exchange`]) has passed. Polled
    /// the first time for a request (`*first`), which registers the request's task to be woken
    /// when it passes; after that only once the timer has fired, which is what wakes the task.
    fn expired(&mut self, first: &mut bool, cx: &mut Context<'_>) -> bool {
        (std::mem::take(first) || self.timer.is_elapsed())
            && self.timer.as_mut().poll(cx).is_ready()
    }

    /// Polls an idle connection until it can take a request; false if it has closed. `Err`
    /// when `deadline` passes first.
    async fn ready(&mut self, deadline: Instant) -> Result<bool, UpstreamError> {
        self.timer.as_mut().reset(deadline);
        let mut first = true;
        poll_fn(|cx| {
            if self.drive(cx) {
                return Poll::Ready(Ok(false));
            }
            if let Poll::Ready(r) = self.sender.poll_ready(cx) {
                return Poll::Ready(Ok(r.is_ok()));
            }
            if self.expired(&mut first, cx) {
                return Poll::Ready(Err(UpstreamError::Timeout));
            }
            Poll::Pending
        })
        .await
    }

    /// Sends `req` and drives the connection until the response head arrives, at the latest
    /// at `deadline` (the link's timer: [`Link::ready`] set it). On error, the request comes
    /// back when none of it was written.
    async fn exchange(&mut self, req: Request<RawBody>) -> Result<Response<Incoming>, Exchange> {
        let response = self.sender.try_send_request(req);
        tokio::pin!(response);
        let mut first = true;
        let result = poll_fn(|cx| {
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            self.drive(cx);
            if let Poll::Ready(r) = response.as_mut().poll(cx) {
                return Poll::Ready(Some(r));
            }
            if self.expired(&mut first, cx) {
                return Poll::Ready(None);
            }
            Poll::Pending
        })
        .await;
        match result {
            Some(Ok(resp)) => Ok(resp),
            Some(Err(mut e)) => {
                tracing::debug!(error = %e.error(), "upstream request failed");
                Err(Exchange::Failed(e.take_message()))
            }
            None => Err(Exchange::TimedOut),
        }
    }
}

/// Why [`Link::exchange`] gave no response. Not boxed: the request handed back is hyper's
/// own value, moved once on a rare path; boxing it would allocate there for nothing.
#[allow(clippy::large_enum_variant)]
enum Exchange {
    /// The connection failed; with the request when none of it was written.
    Failed(Option<Request<RawBody>>),
    /// The deadline passed first (the request is dropped with its response's future: the
    /// connection, mid-request, is not reused).
    TimedOut,
}

impl UpstreamClient {
    /// A client whose connection attempts give up after `upstream.connect_timeout`, with at
    /// most `upstream.max_connections` open (counted in `open`).
    ///
    /// Inside a tokio runtime, a background task closes connections idle for over a minute
    /// or closed by the app.
    pub fn new(upstream: &Upstream, open: IntGauge) -> UpstreamClient {
        let pool = Arc::new(Pool {
            connect_timeout: upstream.connect_timeout,
            slots: Arc::new(Semaphore::new(upstream.max_connections)),
            open,
            returned: Notify::new(),
            shards: (0..SHARDS).map(|_| Shard::default()).collect(),
        });
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(reap(Arc::downgrade(&pool)));
        }
        UpstreamClient { pool }
    }

    /// Sends `req` (its URI in origin form: path and query) to the app at `authority` (plain
    /// HTTP) and waits up to `timeout` for the response head. The body streams after; the
    /// connection goes back to the pool when the body is done.
    ///
    /// # Errors
    /// See [`UpstreamError`].
    pub async fn send(
        &self,
        mut req: Request<RawBody>,
        authority: &Authority,
        timeout: Duration,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let now = Instant::now();
        let deadline = now + timeout;
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            // Not origin form: a caller's mistake, never sent on as it is.
            return Err(UpstreamError::Unavailable);
        }
        if !req.headers().contains_key(http::header::HOST) {
            if let Ok(v) = http::HeaderValue::from_str(authority.as_str()) {
                req.headers_mut().insert(http::header::HOST, v);
            }
        }
        // A pooled connection first, without registering for one coming back: the common
        // case, bounded by the link's own timer ([`Link::exchange`]).
        let req = match self.pooled(req, authority, deadline, now).await {
            Ok(done) => return done,
            Err(req) => req,
        };
        match tokio::time::timeout_at(deadline, self.send_inner(req, authority, deadline)).await {
            Err(_) => Err(UpstreamError::Timeout),
            Ok(r) => r,
        }
    }

    /// [`UpstreamClient::send`] when no pooled connection took the request: waits for a
    /// connection to come back or a place for a new one, under the caller's timeout.
    async fn send_inner(
        &self,
        mut req: Request<RawBody>,
        authority: &Authority,
        deadline: Instant,
    ) -> Result<Response<UpstreamBody>, UpstreamError> {
        let slot = loop {
            // Registered before looking again, so that a connection coming back after the
            // look is not missed.
            let returned = self.pool.returned.notified();
            tokio::pin!(returned);
            returned.as_mut().enable();

            req = match self.pooled(req, authority, deadline, Instant::now()).await {
                Ok(done) => return done,
                Err(req) => req,
            };
            if let Some(slot) = self.pool.free_slot() {
                break slot;
            }
            // At `upstream.max_connections`: the first connection to close or come back.
            tracing::debug!("upstream.max_connections reached; waiting for a connection");
            tokio::select! {
                p = Arc::clone(&self.pool.slots).acquire_owned() => match p {
                    Ok(p) => break p,
                    Err(_) => return Err(UpstreamError::Busy),
                },
                () = &mut returned => {}
                () = tokio::time::sleep_until(deadline) => return Err(UpstreamError::Busy),
            }
        };
        let mut link = self.pool.connect(authority.clone(), slot).await?;
        link.timer.as_mut().reset(deadline);
        match link.exchange(req).await {
            Ok(resp) => Ok(self.lend(resp, link)),
            Err(Exchange::TimedOut) => Err(UpstreamError::Timeout),
            Err(Exchange::Failed(_)) => Err(UpstreamError::Unavailable),
        }
    }

    /// Sends `req` on the reused connections (the most recently used first): the answer, or
    /// `req` back when no pooled connection took it (each one closed, or none idle). A request
    /// handed back unsent goes to the next one. No answer by `deadline`:
    /// [`UpstreamError::Timeout`]. `now`: the caller's clock reading, for the idle check.
    async fn pooled(
        &self,
        mut req: Request<RawBody>,
        authority: &Authority,
        deadline: Instant,
        now: Instant,
    ) -> Result<Result<Response<UpstreamBody>, UpstreamError>, Request<RawBody>> {
        while let Some(mut link) = self.pool.checkout(authority, now) {
            match link.ready(deadline).await {
                Ok(true) => {}
                Ok(false) => continue,
                Err(e) => return Ok(Err(e)),
            }
            match link.exchange(req).await {
                Ok(resp) => return Ok(Ok(self.lend(resp, link))),
                Err(Exchange::Failed(Some(back))) => {
                    tracing::debug!("pooled upstream connection closed before the request was written; using another");
                    req = back;
                }
                Err(Exchange::Failed(None)) => return Ok(Err(UpstreamError::Unavailable)),
                Err(Exchange::TimedOut) => return Ok(Err(UpstreamError::Timeout)),
            }
        }
        Err(req)
    }

    fn lend(&self, resp: Response<Incoming>, link: Box<Link>) -> Response<UpstreamBody> {
        let pool = Arc::clone(&self.pool);
        let mut link = Some(link);
        if resp.body().is_end_stream() {
            // No body (204, 304, Content-Length: 0): the connection is free already.
            if let Some(l) = link.take() {
                pool.checkin(l);
            }
        }
        resp.map(|body| UpstreamBody { body, link, pool })
    }
}

impl Pool {
    /// The calling thread's shard.
    fn shard(&self) -> &Shard {
        &self.shards[crate::workers::shard() % SHARDS]
    }

    /// The most recently used idle connection that is still open and young enough at `now`.
    fn checkout(&self, authority: &Authority, now: Instant) -> Option<Box<Link>> {
        let mut idle = self.shard().lock();
        let (_, list) = idle.iter_mut().find(|(a, _)| a == authority)?;
        while let Some(l) = list.pop() {
            if l.reusable(now) {
                return Some(l);
            }
        }
        None
    }

    fn checkin(&self, mut link: Box<Link>) {
        if !link.is_open() {
            return;
        }
        link.since = Instant::now();
        {
            let mut idle = self.shard().lock();
            match idle.iter_mut().find(|(a, _)| *a == link.authority) {
                Some((_, list)) if list.len() < MAX_IDLE => list.push(link),
                Some(_) => {}
                None => idle.push((link.authority.clone(), vec![link])),
            }
        }
        if self.slots.available_permits() == 0 {
            // Requests may be waiting for a connection: this one is free now.
            self.returned.notify_waiters();
        }
    }

    /// A place for one more connection: a free one, else one an idle connection gives up
    /// (the oldest of a shard: of another upstream, or idle on another thread).
    fn free_slot(&self) -> Option<OwnedSemaphorePermit> {
        loop {
            if let Ok(p) = Arc::clone(&self.slots).try_acquire_owned() {
                return Some(p);
            }
            if !self.close_one_idle() {
                return None;
            }
        }
    }

    /// Closes one idle connection of any shard and upstream; false if none is idle.
    fn close_one_idle(&self) -> bool {
        for shard in &self.shards {
            let link = {
                let mut idle = shard.lock();
                idle.iter_mut()
                    .find(|(_, list)| !list.is_empty())
                    .map(|(_, list)| list.remove(0))
            };
            if link.is_some() {
                return true;
            }
        }
        false
    }

    async fn connect(
        &self,
        authority: Authority,
        slot: OwnedSemaphorePermit,
    ) -> Result<Box<Link>, UpstreamError> {
        let port = authority.port_u16().unwrap_or(80);
        let host = authority
            .host()
            .trim_start_matches('[')
            .trim_end_matches(']');
        let tcp = match tokio::time::timeout(self.connect_timeout, TcpStream::connect((host, port)))
            .await
        {
            Ok(Ok(s)) => s,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "upstream connect failed");
                return Err(UpstreamError::Unavailable);
            }
            Err(_) => {
                tracing::debug!(
                    timeout = %crate::config::fmt_duration(self.connect_timeout),
                    "upstream connect timed out"
                );
                return Err(UpstreamError::Unavailable);
            }
        };
        let _ = tcp.set_nodelay(true);
        let (sender, conn) = http1::Builder::new()
            .handshake(TokioIo::new(tcp))
            .await
            .map_err(|e| {
                tracing::debug!(error = %e, "upstream handshake failed");
                UpstreamError::Unavailable
            })?;
        self.open.inc();
        Ok(Box::new(Link {
            sender,
            conn: Some(conn),
            authority,
            since: Instant::now(),
            _slot: slot,
            open: self.open.clone(),
            timer: Box::pin(tokio::time::sleep_until(Instant::now())),
        }))
    }
}

/// Every 15 s, closes idle connections older than [`IDLE_TIMEOUT`] or closed by the app (each
/// is polled once, which reads the app's FIN); ends with the pool.
async fn reap(pool: Weak<Pool>) {
    let mut tick = tokio::time::interval(IDLE_TIMEOUT / 4);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let Some(pool) = pool.upgrade() else { return };
        let now = Instant::now();
        let mut cx = Context::from_waker(std::task::Waker::noop());
        for shard in &pool.shards {
            let mut idle = shard.lock();
            for (_, list) in idle.iter_mut() {
                list.retain_mut(|l| !l.drive(&mut cx) && l.reusable(now));
            }
            idle.retain(|(_, list)| !list.is_empty());
        }
    }
}

/// The app's response body, streamed; polling it drives the connection it arrives on. The
/// connection goes back to the pool at the end of the body; dropped before that, the body
/// takes its connection with it (hyper closes a connection whose response was not read to
/// the end).
#[derive(Debug)]
pub struct UpstreamBody {
    body: Incoming,
    link: Option<Box<Link>>,
    pool: Arc<Pool>,
}

impl UpstreamBody {
    fn settle(&mut self, r: &Poll<Option<Result<Frame<Bytes>, hyper::Error>>>) {
        let done = match r {
            Poll::Ready(None) => true,
            Poll::Ready(Some(Ok(_))) => self.body.is_end_stream(),
            Poll::Ready(Some(Err(_))) => {
                self.link = None;
                false
            }
            Poll::Pending => false,
        };
        if done {
            if let Some(l) = self.link.take() {
                self.pool.checkin(l);
            }
        }
    }
}

impl Body for UpstreamBody {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let this = &mut *self;
        let mut r = Pin::new(&mut this.body).poll_frame(cx);
        if r.is_pending() {
            if let Some(link) = this.link.as_mut() {
                // Read more of the body into the channel, then look again.
                link.drive(cx);
                r = Pin::new(&mut this.body).poll_frame(cx);
            }
        }
        this.settle(&r);
        r
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}
