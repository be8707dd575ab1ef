//! The request pipeline of SPEC.md, top to bottom: route, body, verify, dedupe, forward.
//!
//! [`Proxy::handle`] never fails at the hyper boundary: every outcome becomes a response, and
//! every response is counted exactly once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::request::Parts;
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, Uri, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;
use prometheus::IntCounter;
use tokio::time::Instant;
use tracing::Instrument;

use crate::body::{BodyBudget, BodyError, RawBody};
use crate::config::{Config, Mode, OnStoreError, RouteConfig};
use crate::error::Reason;
use crate::headers;
use crate::loglimit::LogGate;
use crate::metrics::{Metrics, Outcome, RouteMetrics, UpstreamClass};
use crate::otel::{Marks, RequestEnd, RequestTrace, Tracer};
use crate::outcome::{QueueRefusal, Rejection, ReplayRefusal, RequestError};
use crate::queue::worker::Target;
use crate::queue::{QueueError, Spool};
use crate::rejections::{Rejected, Rejections};
use crate::replay::{Begin, Key, ReplayStore};
use crate::route::RouteTable;
use crate::swap::Swap;
use crate::upstream::{UpstreamBody, UpstreamClient, UpstreamError};
use crate::verify::{Checked, Handshake, Input, Scheme, Verified, VerifyError, NO_SCHEME};

mod handshake;

/// The response body: the upstream's stream, or a small body hookseal wrote.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The peer's address as a header value, written once for all the connection's requests
    /// (their `X-Forwarded-For` hop, and `X-Real-IP` when the peer is the client); its clones
    /// share it.
    peer_value: HeaderValue,
}

impl ConnInfo {
    /// A connection from `peer`, TLS or not.
    pub fn new(peer: SocketAddr, tls: bool) -> ConnInfo {
        ConnInfo {
            peer,
            tls,
            peer_value: headers::ip_value(peer.ip()),
        }
    }
}

/// Shared state of the pipeline. The config snapshot is swapped whole on reload; requests in
/// flight keep the snapshot they started with.
#[derive(Debug)]
pub struct Proxy {
    snapshot: Swap<Snapshot>,
    replay: Arc<ReplayStore>,
    replay_errors: IntCounter,
    metrics: Arc<Metrics>,
    client: UpstreamClient,
    /// `limits.max_buffered_bytes`, shared by every request (fixed at start).
    budget: BodyBudget,
    ids: AtomicU64,
    id_seed: u64,
    /// Rejection-line budget of requests no route matched.
    unmatched_log: LogGate,
    /// The spool of queued routes (`None` when no route is queued).
    spool: Option<Spool>,
    /// Woken when an entry was stored, so the delivery worker claims it at once.
    queue_wake: Arc<tokio::sync::Notify>,
    /// The latest rejected requests (`/debug/rejections`).
    rejections: Arc<Rejections>,
    /// The span queue (`[tracing]`).
    tracer: Arc<Tracer>,
}

/// One loaded config with everything derived from it.
#[derive(Debug)]
pub struct Snapshot {
    /// The config this snapshot was built from.
    pub config: Config,
    routes: RouteTable<Arc<Route>>,
}

/// A route ready to serve: config, metric handles and pre-built header values.
#[derive(Debug)]
struct Route {
    cfg: RouteConfig,
    metrics: RouteMetrics,
    upstream: Authority,
    name_value: HeaderValue,
    scheme_value: HeaderValue,
    key_values: Vec<HeaderValue>,
    /// The route's share of the replay store (its own partition in memory).
    replay: ReplayStore,
    /// Rejection-line budget per reason (README "Logs").
    log_gate: LogGate,
    /// Whether the scheme's timestamp is covered by the signature: not for an `hmac` route
    /// whose `signed_payload` lacks `{timestamp}`, whose skew is then not recorded.
    signed_timestamp: bool,
}

/// What the stages of one request share.
struct Ctx<'a> {
    snap: &'a Snapshot,
    route: &'a Route,
    conn: &'a ConnInfo,
    request_id: &'a HeaderValue,
    start: Instant,
    /// The request's trace, when `[tracing]` is on and it is sampled.
    trace: Option<&'a RequestTrace>,
}

/// The one record of a request: what the stages found on the way, and the answer. Its
/// metrics are written once, when it is dropped at the end of the request (also when the
/// sender left before the answer: then without a result, as the request was never answered).
/// Plain data on the stack; the only allocation is a replay store's error (a refused body is
/// moved in, not copied).
struct Record<'a> {
    metrics: &'a RouteMetrics,
    replay_errors: &'a IntCounter,
    start: Instant,
    /// Result, reason and status, once the request has its answer.
    answer: Option<(Outcome, Reason, u16)>,
    /// Why, beyond the reason, for the log line of a rejection; never request data.
    detail: Option<&'static str>,
    body_bytes: Option<u64>,
    verify_time: Option<Duration>,
    /// |sender clock - ours| of a verified, signed timestamp.
    skew: Option<u64>,
    /// Which of the route's secrets verified the signature.
    key_index: Option<usize>,
    upstream_time: Option<Duration>,
    upstream_class: Option<UpstreamClass>,
    /// The replay store's error, for the log lines only.
    store_error: Option<String>,
    /// `hookseal_events_total` of the verified request's event type.
    event: Option<IntCounter>,
    /// The body of a request refused after it was read (its length and hash go into the
    /// record of rejections).
    refused_body: Option<RawBody>,
    /// When the stages ran; only for a traced request.
    marks: Marks,
}

impl<'a> Record<'a> {
    fn new(metrics: &'a RouteMetrics, replay_errors: &'a IntCounter, start: Instant) -> Self {
        Record {
            metrics,
            replay_errors,
            start,
            answer: None,
            detail: None,
            body_bytes: None,
            verify_time: None,
            skew: None,
            key_index: None,
            upstream_time: None,
            upstream_class: None,
            store_error: None,
            event: None,
            refused_body: None,
            marks: Marks::default(),
        }
    }
}

impl Drop for Record<'_> {
    fn drop(&mut self) {
        let m = self.metrics;
        if let Some((outcome, reason, _)) = self.answer {
            m.count(outcome, reason);
            m.request_duration
                .observe(self.start.elapsed().as_secs_f64());
        }
        if let Some(n) = self.body_bytes {
            m.body_bytes.observe(n as f64);
        }
        if let (Some(h), Some(t)) = (&m.verify_duration, self.verify_time) {
            h.observe(t.as_secs_f64());
        }
        if let Some(s) = self.skew {
            m.skew.observe(s as f64);
        }
        if let Some(c) = self.key_index.and_then(|i| m.signature_key.get(i)) {
            c.inc();
        }
        if let Some(t) = self.upstream_time {
            m.upstream_duration.observe(t.as_secs_f64());
        }
        if let Some(class) = self.upstream_class {
            m.upstream(class);
        }
        if self.store_error.is_some() {
            self.replay_errors.inc();
        }
        if let Some(c) = &self.event {
            c.inc();
        }
    }
}

/// What verification and the replay store found (SPEC steps 3-4), before the route's mode
/// is applied.
#[derive(Default)]
struct Verdict {
    /// What the signature established; `None` on a route without a scheme or a failed
    /// verification.
    verified: Option<Verified>,
    /// The in-flight mark this request holds, settled after forwarding.
    mark: Option<Key>,
    /// Why the request would be refused; `None` when it passed.
    failure: Option<Rejection>,
    /// The verified request's event type (`x-hookseal-event`).
    event: Option<HeaderValue>,
    /// A provider handshake (or a confirmed SNS subscription) hookseal answers itself.
    handshake: Option<Handshake>,
}

/// What the pipeline answers with when nothing stopped the request. Not boxed: the app's
/// response is the common case, and boxing it would allocate on every request.
#[allow(clippy::large_enum_variant)]
enum Served {
    /// The app's response, and the failure observe mode let through.
    App(Response<UpstreamBody>, Option<Reason>),
    /// Stored for queued delivery under this id (202), and the failure observe mode let
    /// through.
    Queued(String, Option<Reason>),
    /// hookseal's own answer to a provider handshake; the app saw nothing.
    Handshake(Handshake),
}

/// What a forwarded request carries from the checks.
struct Pass {
    verified: Option<Verified>,
    mark: Option<Key>,
    /// The failure observe mode lets through (`x-hookseal-verified: false`).
    observed: Option<Reason>,
    event: Option<HeaderValue>,
}

/// What the route does with a verdict.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Forward; with `Some(reason)` as an observed failure (`x-hookseal-verified: false`).
    Forward(Option<Reason>),
    /// Answer the failure without forwarding.
    Refuse(Rejection),
}

/// Observe mode and `on_store_error`, decided in one place: an enforcing route refuses every
/// failure except an unreachable store under `on_store_error = "allow"` (forwarded as
/// verified: the signature was); an observing route forwards every failure as observed.
fn decide(mode: Mode, on_store_error: OnStoreError, failure: Option<Rejection>) -> Decision {
    match failure {
        None => Decision::Forward(None),
        // Observe mode forwards every type: the filter is not a verdict.
        Some(Rejection::Filtered) if mode == Mode::Observe => Decision::Forward(None),
        Some(f) if mode == Mode::Observe => Decision::Forward(Some(f.answer().reason)),
        Some(Rejection::Replay(ReplayRefusal::StoreUnavailable))
            if on_store_error == OnStoreError::Allow =>
        {
            Decision::Forward(None)
        }
        Some(f) => Decision::Refuse(f),
    }
}

impl Proxy {
    /// Builds the pipeline for `config`.
    pub fn new(config: Config, metrics: Arc<Metrics>, replay: Arc<ReplayStore>) -> Proxy {
        let client = UpstreamClient::new(&config.upstream, metrics.upstream_connections.clone());
        let budget = BodyBudget::new(
            config.limits.max_buffered_bytes,
            metrics.buffered_bytes.clone(),
        );
        let replay_errors = metrics.replay_error(replay.kind());
        let snapshot = Snapshot::new(config, &metrics, &replay);
        metrics.retain(snapshot.routes.values().map(|r| &r.metrics));
        let id_seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64)
            ^ u64::from(std::process::id()).rotate_left(32);
        let rejections = Arc::new(Rejections::new(snapshot.config.debug.rejections));
        let tracer = Arc::new(Tracer::new());
        tracer.register(&metrics);
        Proxy {
            snapshot: Swap::new(snapshot),
            replay,
            replay_errors,
            metrics,
            client,
            budget,
            ids: AtomicU64::new(0),
            id_seed,
            unmatched_log: LogGate::new(),
            rejections,
            tracer,
            spool: None,
            queue_wake: Arc::new(tokio::sync::Notify::new()),
        }
    }

    /// Queued routes store their requests in `spool` (set before serving).
    pub fn with_spool(mut self, spool: Spool) -> Proxy {
        self.spool = Some(spool);
        self
    }

    /// The spool of queued routes, if any route is queued.
    pub fn spool(&self) -> Option<&Spool> {
        self.spool.as_ref()
    }

    /// Woken whenever a queued request was stored.
    pub fn queue_wake(&self) -> Arc<tokio::sync::Notify> {
        Arc::clone(&self.queue_wake)
    }

    /// The client to the app, shared by direct forwarding and the delivery worker.
    pub fn client(&self) -> &UpstreamClient {
        &self.client
    }

    /// The replay store's error counter (`hookseal_replay_store_errors_total{store}`).
    pub fn replay_errors(&self) -> &IntCounter {
        &self.replay_errors
    }

    /// The record of rejections (`/debug/rejections`).
    pub fn rejections(&self) -> &Arc<Rejections> {
        &self.rejections
    }

    /// The span queue; [`Tracer::run`] exports it.
    pub fn tracer(&self) -> &Arc<Tracer> {
        &self.tracer
    }

    /// Swaps in a new config; requests already in flight finish under the old one.
    pub fn reload(&self, config: Config) {
        let snapshot = Snapshot::new(config, &self.metrics, &self.replay);
        self.metrics
            .retain(snapshot.routes.values().map(|r| &r.metrics));
        let names: Vec<&str> = snapshot
            .config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        self.replay.retain_partitions(&names);
        self.rejections
            .set_capacity(snapshot.config.debug.rejections);
        let old = self.snapshot.store(snapshot);
        report_suppressed(&old);
    }

    /// Writes one line per route and reason whose rejection lines were held back since the
    /// last call ([`crate::app::App::run`] calls it every second).
    pub fn report_suppressed_logs(&self) {
        self.unmatched_log.report(crate::config::UNMATCHED_ROUTE);
        report_suppressed(&self.snapshot());
    }

    /// The config snapshot in force.
    pub fn snapshot(&self) -> Arc<Snapshot> {
        self.snapshot.load()
    }

    /// Handles one request from start to response head. Every log line of the request carries
    /// a `request` span with the request id. When debug lines are on (ours at debug, or a
    /// library's), the whole request runs inside that span; otherwise the only lines a request
    /// can log are hookseal's own warn lines, and each makes the span when it is written
    /// ([`in_request_span`]): the same output, without a span per request nobody reads.
    ///
    /// Not an `async fn` of its own: the request's future is [`Proxy::serve`]'s, not one more
    /// level around it that would copy it once more (with no span, entering it is a no-op).
    pub fn handle(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
    ) -> impl std::future::Future<Output = Response<ProxyBody>> + Send + '_ {
        let request_id = self.request_id(req.headers());
        let span = if tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG {
            request_span(&request_id)
        } else {
            tracing::Span::none()
        };
        self.serve(req, conn, request_id).instrument(span)
    }

    async fn serve(
        &self,
        req: Request<Incoming>,
        conn: ConnInfo,
        request_id: HeaderValue,
    ) -> Response<ProxyBody> {
        let start = Instant::now();
        let snap = self.snapshot();
        let (mut parts, body) = req.into_parts();
        let trace =
            (snap.config.tracing.as_ref()).and_then(|t| self.tracer.start(t, &parts.headers));

        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let route = match snap.routes.find(&parts.method, target) {
            Ok(r) => Arc::clone(r),
            Err(miss) => {
                let unmatched = &self.metrics.unmatched;
                let mut rec = Record::new(unmatched, &self.replay_errors, start);
                let response = answer(
                    Err(Rejection::Route(miss)),
                    None,
                    false,
                    &request_id,
                    &mut rec,
                );
                let name = crate::config::UNMATCHED_ROUTE;
                log_line(name, &self.unmatched_log, &conn, &request_id, &rec);
                self.finish(None, &conn, &request_id, &parts, &rec, trace);
                return response;
            }
        };
        let cx = Ctx {
            snap: &snap,
            route: &route,
            conn: &conn,
            request_id: &request_id,
            start,
            trace: trace.as_ref(),
        };
        let cfg = &route.cfg;
        let mut rec = Record::new(&route.metrics, &self.replay_errors, start);
        let result = self.pipeline(&cx, &mut parts, body, &mut rec).await;
        let observe = cfg.mode == Mode::Observe;
        let response = answer(result, Some(&cfg.name), observe, &request_id, &mut rec);
        // The record: the request's line now, its metrics when `rec` drops on return.
        log_line(&cfg.name, &route.log_gate, &conn, &request_id, &rec);
        self.finish(Some(&route), &conn, &request_id, &parts, &rec, trace);
        response
    }

    /// The end of the record, beside its line and metrics: a rejected request goes into the
    /// record of rejections, a traced one's spans into the export queue. Nothing else for an
    /// accepted, untraced request.
    fn finish(
        &self,
        route: Option<&Route>,
        conn: &ConnInfo,
        request_id: &HeaderValue,
        parts: &Parts,
        rec: &Record<'_>,
        trace: Option<RequestTrace>,
    ) {
        let name = route.map_or(crate::config::UNMATCHED_ROUTE, |r| r.cfg.name.as_str());
        let scheme = route.and_then(|r| r.cfg.scheme.as_ref()).map(|s| s.name());
        if let Some((Outcome::Rejected, reason, status)) = rec.answer {
            if self.rejections.enabled() {
                let mut signature_headers: Vec<&str> = Vec::new();
                signature_headers.extend(scheme.and_then(|s| s.def().headers.first()));
                if let Some(h) = route.and_then(|r| r.cfg.options.hmac.as_ref()) {
                    signature_headers.push(&h.header);
                }
                // A `jwt` route's own token header (`[route.jwt] header`): a bearer token
                // valid until its `exp`, whatever its name.
                let jwt = route.and_then(|r| r.cfg.options.engine.jwt.as_ref());
                signature_headers.extend(jwt.and_then(|j| j.header.as_deref()));
                self.rejections.record(&Rejected {
                    route: name,
                    reason,
                    status,
                    peer: conn.peer,
                    request_id,
                    headers: &parts.headers,
                    signature_headers: &signature_headers,
                    body: rec.refused_body.as_ref().map(RawBody::pieces),
                    body_bytes: rec.body_bytes,
                });
            }
        }
        if let Some(t) = trace {
            let answer = rec.answer;
            let m = rec.marks;
            self.tracer.finish_request(
                t,
                &RequestEnd {
                    route: name,
                    scheme: scheme.map(|s| s.as_str()),
                    method: parts.method.as_str(),
                    result: answer.map(|a| a.0.as_str()),
                    reason: answer.map(|a| a.1.as_str()),
                    status: answer.map(|a| a.2),
                    verify: m.verify_start.zip(rec.verify_time),
                    store: m.store,
                    forward: m.forward_start.zip(rec.upstream_time).map(|(at, d)| {
                        let answered = !matches!(
                            rec.upstream_class,
                            Some(UpstreamClass::Error | UpstreamClass::Timeout) | None
                        );
                        (at, d, answered)
                    }),
                },
            );
        }
    }

    /// Steps 1b to 7 of one request, top to bottom: the checks, [`decide`], forwarding. Gives
    /// the app's response and the failure observe mode let through, or what stopped the
    /// request; what the stages found on the way goes into `rec`.
    async fn pipeline(
        &self,
        cx: &Ctx<'_>,
        parts: &mut Parts,
        body: Incoming,
        rec: &mut Record<'_>,
    ) -> Result<Served, Rejection> {
        let cfg = &cx.route.cfg;
        check_request(cx, parts).map_err(Rejection::Request)?;
        let body = self
            .read_body(cx, &parts.headers, body)
            .await
            .map_err(Rejection::Body)?;
        rec.body_bytes = Some(body.len());

        // Hop-by-hop headers go before verification, so the verifier reads exactly the headers
        // the app gets: a `Connection` header that names a signature, timestamp or id header
        // removes it before the check (which then fails), never after it passed.
        headers::strip_hop_by_hop(&mut parts.headers);

        // Steps 3-4: the verdict, then what the route's mode makes of it.
        let verdict = verdict(cx, parts, &body, rec).await;
        // A GET that reached a route only for its scheme's GET handshake and is none: the
        // 405 the route table would have given, whatever the mode.
        if let Some(miss @ Rejection::Route(_)) = verdict.failure {
            return Err(miss);
        }
        // Such a GET is only ever a handshake: one that failed is refused in every mode
        // (observe mode forwards what fails verification, never a method the route lacks).
        let get_beyond_methods =
            parts.method == http::Method::GET && !cfg.methods.contains(&http::Method::GET);
        match verdict.failure {
            Some(failed) if get_beyond_methods => return Err(failed),
            _ => {}
        }
        let on_store_error = cx.snap.config.replay.on_store_error;
        let observed = match decide(cfg.mode, on_store_error, verdict.failure) {
            Decision::Forward(observed) => observed,
            Decision::Refuse(rejection) => {
                rec.refused_body = Some(body);
                return Err(rejection);
            }
        };
        if let (Some(handshake), None) = (verdict.handshake, observed) {
            return Ok(Served::Handshake(handshake));
        }
        if let Some(error) = &rec.store_error {
            in_request_span(
                cx.request_id,
                || tracing::warn!(route = %cfg.name, store = self.replay.kind(), error = %error, "replay store unavailable; forwarding unchecked for duplicates"),
            );
        }

        // Steps 5-7: forward, answer, settle the mark.
        let pass = Pass {
            verified: verdict.verified,
            mark: verdict.mark,
            observed,
            event: verdict.event,
        };
        if cfg.delivery.queued() {
            let id = self.enqueue(cx, parts, body, pass).await?;
            return Ok(Served::Queued(id, observed));
        }
        let response = self.forward(cx, parts, body, pass, rec).await?;
        Ok(Served::App(response, observed))
    }

    /// Step 2: the body, bounded before and while reading.
    async fn read_body(
        &self,
        cx: &Ctx<'_>,
        headers: &http::HeaderMap,
        body: Incoming,
    ) -> Result<RawBody, BodyError> {
        let limit = cx.route.cfg.max_body_bytes;
        let declared = declared_length(headers).map_err(|()| BodyError::Incomplete)?;
        if declared.is_some_and(|n| n > limit) {
            return Err(BodyError::TooLarge);
        }
        let deadline = cx.start + cx.snap.config.limits.body_timeout;
        self.budget.read(body, declared, limit, deadline).await
    }

    /// Steps 5-7: forwards the request, settles its mark; the app's response, or why there
    /// is none. The upstream's time and class go into `rec`.
    async fn forward(
        &self,
        cx: &Ctx<'_>,
        parts: &mut Parts,
        body: RawBody,
        pass: Pass,
        rec: &mut Record<'_>,
    ) -> Result<Response<UpstreamBody>, Rejection> {
        let Ctx {
            snap,
            route,
            request_id,
            ..
        } = *cx;
        let cfg = &route.cfg;
        let signed_ts = route.signed_timestamp
            && pass
                .verified
                .as_ref()
                .is_some_and(|v| v.timestamp.is_some());
        let done_ttl = cfg.events.done_ttl(cfg.tolerance, signed_ts);
        let uri = prepare(cx, parts, &pass);
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = std::mem::take(&mut parts.headers);

        let timeout = snap.config.upstream.timeout;
        let t = Instant::now();
        if cx.trace.is_some() {
            rec.marks.forward_start = Some(t.into_std());
        }
        let result = match pass.mark {
            None => self.client.send(req, &route.upstream, timeout).await,
            Some(key) => {
                // The send and the settling of the mark run in their own task, so that a
                // sender who hangs up mid-request cannot leave the id marked in flight, and
                // the id is marked done exactly when the app answered 2xx.
                let client = self.client.clone();
                let replay = route.replay.clone();
                let errors = self.replay_errors.clone();
                let route_name = cfg.name.clone();
                let request_id = request_id.clone();
                let upstream = route.upstream.clone();
                let task = tokio::spawn(
                    async move {
                        let result = client.send(req, &upstream, timeout).await;
                        let delivered = matches!(&result, Ok(r) if r.status().is_success());
                        if let Err(e) = replay.finish(&key, delivered, done_ttl).await {
                            errors.inc();
                            in_request_span(&request_id, || {
                                tracing::warn!(route = %route_name, error = %e, "replay store: could not settle a delivery")
                            });
                        }
                        result
                    }
                    .in_current_span(),
                );
                task.await.unwrap_or(Err(UpstreamError::Unavailable))
            }
        };
        rec.upstream_time = Some(t.elapsed());
        let mut resp = result.map_err(|e| {
            rec.upstream_class = match e {
                UpstreamError::Busy => None,
                UpstreamError::Unavailable => Some(UpstreamClass::Error),
                UpstreamError::Timeout => Some(UpstreamClass::Timeout),
            };
            Rejection::Upstream(e)
        })?;
        rec.upstream_class = Some(UpstreamClass::of(resp.status()));
        headers::strip_hop_by_hop(resp.headers_mut());
        // One lookup: the app's own id stays.
        (resp.headers_mut().entry(headers::REQUEST_ID)).or_insert_with(|| request_id.clone());
        Ok(resp)
    }

    /// Step 5 of a queued route: stores the request that would have been forwarded and
    /// releases its in-flight mark (the spool's id set answers duplicates from now until it
    /// is delivered; the worker marks it done on the app's 2xx). The entry's id: the message
    /// id on a route that dedupes, else a fresh one. `Ok` only once the spool says durable.
    async fn enqueue(
        &self,
        cx: &Ctx<'_>,
        parts: &mut Parts,
        body: RawBody,
        pass: Pass,
    ) -> Result<String, Rejection> {
        let route = cx.route;
        let cfg = &route.cfg;
        let uri = prepare(cx, parts, &pass);
        let id = match pass.verified.as_ref().and_then(|v| v.id.as_ref()) {
            Some(id) if cfg.dedupe => String::from_utf8_lossy(id.as_bytes()).into_owned(),
            _ => String::from_utf8_lossy(self.fresh_id().as_bytes()).into_owned(),
        };
        let entry = crate::queue::accept::entry(
            id.clone(),
            &cfg.name,
            &parts.method,
            uri.path_and_query().map_or("/", PathAndQuery::as_str),
            &parts.headers,
            body.pieces(),
            crate::queue::policy::unix_ms(SystemTime::now()),
        );
        // The same list as the entry's, kept for its first delivery (the request is answered
        // 202, not forwarded: its headers are not needed here again).
        let head = std::mem::take(&mut parts.headers);
        let Some(spool) = self.spool.clone() else {
            return Err(Rejection::Queue(QueueRefusal::Unavailable));
        };
        // In a task of its own, as forwarding: a sender who hangs up must not leave the id
        // marked in flight.
        let replay = route.replay.clone();
        let errors = self.replay_errors.clone();
        let histogram = self.metrics.queue.enqueue_duration.clone();
        let done_ttl = cfg.tolerance * 2;
        let request_id = cx.request_id.clone();
        let route_name = cfg.name.clone();
        let mark = pass.mark;
        let task = tokio::spawn(
            async move {
                let t = Instant::now();
                let stored = spool.enqueue_with_head(entry, Some(head)).await;
                histogram.observe(t.elapsed().as_secs_f64());
                if let Some(key) = mark {
                    if let Err(e) = replay.finish(&key, false, done_ttl).await {
                        errors.inc();
                        in_request_span(&request_id, || {
                            tracing::warn!(route = %route_name, error = %e, "replay store: could not release an in-flight mark")
                        });
                    }
                }
                if let Err(e @ (QueueError::Unavailable(_) | QueueError::Corrupt { .. } | QueueError::InvalidUrl(_))) = &stored {
                    in_request_span(&request_id, || {
                        tracing::warn!(route = %route_name, store = spool.kind(), error = %e, "spool unavailable")
                    });
                }
                stored
            }
            .in_current_span(),
        );
        let stored = task.await;
        // Held until here: the entry's bytes stay counted in `limits.max_buffered_bytes` while
        // the store writes them.
        drop(body);
        match stored {
            Ok(Ok(())) => {
                self.queue_wake.notify_waiters();
                Ok(id)
            }
            Ok(Err(QueueError::AlreadyQueued)) => Ok(id),
            Ok(Err(QueueError::Full)) => Err(Rejection::Queue(QueueRefusal::Full)),
            _ => Err(Rejection::Queue(QueueRefusal::Unavailable)),
        }
    }

    /// The sender's `x-request-id` when it is sane (1 to 128 characters of `[A-Za-z0-9]` and
    /// `-_.:/+=@`: UUIDs, ULIDs, base64, trace ids), else a fresh one. The limit keeps a
    /// sender from writing arbitrary text into every log line of its request.
    fn request_id(&self, headers: &http::HeaderMap) -> HeaderValue {
        if let Some(v) = headers.get(headers::REQUEST_ID) {
            let b = v.as_bytes();
            if !b.is_empty()
                && b.len() <= 128
                && b.iter()
                    .all(|c| c.is_ascii_alphanumeric() || b"-_.:/+=@".contains(c))
            {
                return v.clone();
            }
        }
        self.fresh_id()
    }

    /// A new id: unique per process run (and across runs, by the seed).
    fn fresh_id(&self) -> HeaderValue {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        // Unique per process run and cheap; not a secret, so no CSPRNG is needed.
        let mixed = splitmix(self.id_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        generated_id(mixed, n)
    }
}

impl Snapshot {
    fn new(config: Config, metrics: &Metrics, replay: &ReplayStore) -> Snapshot {
        let default_upstream = config.upstream.url.authority();
        let mut entries = Vec::new();
        for cfg in &config.routes {
            let scheme = cfg.scheme.as_ref().map(|s| s.name().as_str());
            let upstream = cfg
                .upstream
                .as_ref()
                .map_or(default_upstream, |u| u.authority())
                .clone();
            let mut route_metrics = metrics.route_for(
                &cfg.name,
                scheme,
                &cfg.secret_ids,
                cfg.mode == Mode::Observe,
                Some(cfg.tolerance),
                cfg.delivery.queued(),
            );
            if cfg.events.source.is_some() {
                let observe = cfg.mode == Mode::Observe;
                let allow = cfg.events.allow.as_deref();
                metrics.route_events(&mut route_metrics, &cfg.name, allow, observe);
            }
            let route = Route {
                metrics: route_metrics,
                upstream,
                name_value: header_value(&cfg.name),
                scheme_value: HeaderValue::from_static(scheme.unwrap_or(NO_SCHEME)),
                key_values: cfg.secret_ids.iter().map(|k| header_value(k)).collect(),
                replay: replay.partition(&cfg.name, config.replay_capacity(cfg)),
                log_gate: LogGate::new(),
                signed_timestamp: cfg.scheme.as_ref().is_none_or(Scheme::timestamp_is_signed),
                cfg: cfg.clone(),
            };
            let methods = handshake::with_handshake_get(cfg, &config.routes);
            entries.push((cfg.path.clone(), methods, Arc::new(route)));
        }
        Snapshot {
            config,
            routes: RouteTable::new(entries),
        }
    }
}

impl Snapshot {
    /// What the delivery worker needs of each queued route.
    pub fn delivery_targets(&self) -> Vec<Target> {
        self.routes
            .values()
            .filter(|r| r.cfg.delivery.queued())
            .map(|r| Target {
                name: r.cfg.name.to_string(),
                upstream: r.upstream.clone(),
                delivery: r.cfg.delivery,
                timeout: self.config.upstream.timeout,
                replay: r.replay.clone(),
                dedupe: r.cfg.dedupe,
                // As a direct delivery's: the route's dedupe window where the scheme signs no
                // timestamp (`dedupe_window`, 7 days by default), else twice the tolerance.
                done_ttl: r.cfg.events.done_ttl(r.cfg.tolerance, r.signed_timestamp),
            })
            .collect()
    }
}

/// The suppressed-lines report of every route of `snap`.
fn report_suppressed(snap: &Snapshot) {
    for r in snap.routes.values() {
        r.log_gate.report(&r.cfg.name);
    }
}

/// Time a delivery may stay marked in flight beyond the upstream timeout.
const INFLIGHT_MARGIN: Duration = Duration::from_secs(5);

fn header_value(s: &str) -> HeaderValue {
    HeaderValue::from_str(s).unwrap_or(HeaderValue::from_static("invalid"))
}

/// Step 5's request head: the headers hookseal sends to the app (hop-by-hop and spoofed
/// `x-hookseal-*` removed, proxy headers by policy, its own `x-hookseal-*` added), written
/// into `parts`, and the URI in origin form. Direct forwarding and the spool send the same.
fn prepare(cx: &Ctx<'_>, parts: &mut Parts, pass: &Pass) -> Uri {
    let Ctx {
        snap,
        route,
        conn,
        request_id,
        ..
    } = *cx;
    let cfg = &route.cfg;
    let peer = conn.peer.ip();
    let client = headers::client_ip(peer, &parts.headers, &snap.config.listen.trusted_proxies);
    // The connection's own copy when the client is the peer (no trusted proxy before it).
    let client = client.map(|ip| {
        if ip == peer {
            conn.peer_value.clone()
        } else {
            headers::ip_value(ip)
        }
    });
    let h = &mut parts.headers;
    headers::strip_hookseal(h);
    // Over the client's names, before the headers below are added (see the function).
    let keep = &snap.config.forwarding.keep;
    headers::remove_policy_names(h, keep);
    if let Some(scheme) = &cfg.scheme {
        scheme.strip_unread(h);
    }
    let host = match h.get(header::HOST) {
        Some(host) => Some(host.clone()),
        None => {
            let from_uri =
                (parts.uri.authority()).and_then(|a| HeaderValue::from_str(a.as_str()).ok());
            if let Some(host) = &from_uri {
                h.insert(header::HOST, host.clone());
            }
            from_uri
        }
    };
    let forwarded = headers::add_forwarded(h, &conn.peer_value, conn.tls, host);
    headers::set_policy_values(h, keep, client, forwarded);
    h.insert(headers::REQUEST_ID, request_id.clone());
    if let Some(t) = cx.trace {
        h.insert(crate::otel::TRACEPARENT, t.forward_traceparent());
        if !t.continued() {
            // A new trace: a `tracestate` beside an invalid `traceparent` belongs to none.
            h.remove(crate::otel::TRACESTATE);
        }
    }
    h.insert(headers::ROUTE, route.name_value.clone());
    if cfg.scheme.is_some() {
        h.insert(headers::SCHEME, route.scheme_value.clone());
    }
    // True only when the signature verified and nothing after it failed (SPEC: `false`
    // on any failure).
    let passed = pass.verified.is_some() && pass.observed.is_none();
    h.insert(
        headers::VERIFIED,
        // Made at compile time: `from_static` outside a const checks its text at every call.
        if passed {
            const { HeaderValue::from_static("true") }
        } else {
            const { HeaderValue::from_static("false") }
        },
    );
    if let Some(v) = &pass.verified {
        if let Some(k) = route.key_values.get(v.key_index) {
            h.insert(headers::KEY, k.clone());
        }
        if let Some(id) = &v.id {
            h.insert(headers::ID, id.clone());
        }
        if let Some(ts) = v.timestamp {
            h.insert(headers::TIMESTAMP, HeaderValue::from(ts));
        }
    }
    if let Some(event) = &pass.event {
        h.insert(headers::EVENT, event.clone());
    }
    if let Some(reason) = pass.observed {
        h.insert(headers::REASON, HeaderValue::from_static(reason.as_str()));
        if reason == Reason::Duplicate {
            h.insert(headers::DUPLICATE, HeaderValue::from_static("true"));
        }
    }

    // HTTP/1.1 to an origin: the request line carries the origin form (path and query)
    // only; what came as one (HTTP/1.1 usually) goes on as it is.
    if parts.uri.scheme().is_none() && parts.uri.authority().is_none() {
        std::mem::take(&mut parts.uri)
    } else {
        Uri::from(
            parts
                .uri
                .path_and_query()
                .cloned()
                .unwrap_or_else(|| PathAndQuery::from_static("/")),
        )
    }
}

/// Step 1b: a request whose Host or framing hookseal cannot pass on as the app would read it
/// is refused, whatever the mode; so is a client outside the route's `allow_from`.
fn check_request(cx: &Ctx<'_>, parts: &Parts) -> Result<(), RequestError> {
    if !headers::host_ok(&parts.headers, parts.uri.authority()) {
        return Err(RequestError::BadHost);
    }
    if !headers::transfer_coding_ok(&parts.headers) {
        return Err(RequestError::UnsupportedTransferCoding);
    }
    let allow_from = &cx.route.cfg.allow_from;
    if !allow_from.is_empty() {
        let client = headers::client_ip(
            cx.conn.peer.ip(),
            &parts.headers,
            &cx.snap.config.listen.trusted_proxies,
        );
        if !client.is_some_and(|ip| allow_from.iter().any(|n| n.contains(ip))) {
            return Err(RequestError::IpNotAllowed);
        }
    }
    Ok(())
}

/// Steps 3 and 4: verifies the signature, then claims the message id in the replay store.
/// Says what failed, whatever the route's mode: [`decide`] turns that into an answer.
async fn verdict(cx: &Ctx<'_>, parts: &Parts, body: &RawBody, rec: &mut Record<'_>) -> Verdict {
    let Some(scheme) = &cx.route.cfg.scheme else {
        return Verdict::default();
    };
    let checked = verify(cx.route, scheme, parts, body, rec).await;
    // A GET the route's methods do not list reaches the route only for its scheme's GET
    // handshake: anything else is the 405 it would have been.
    let get_beyond_methods =
        parts.method == http::Method::GET && !cx.route.cfg.methods.contains(&http::Method::GET);
    let marker = scheme.name().def().get_handshake;
    let no_handshake = match &checked {
        Ok(Checked::Verified(_) | Checked::Confirm(..)) => true,
        Ok(Checked::Handshake(_)) => false,
        // Without its marker the GET was no handshake; a handshake that failed keeps its reason.
        Err(VerifyError::MissingSignature(name)) => Some(*name) == marker,
        Err(_) => false,
    };
    if get_beyond_methods && no_handshake {
        return Verdict {
            failure: Some(Rejection::Route(crate::route::Miss::MethodNotAllowed)),
            ..Verdict::default()
        };
    }
    let verified = match checked {
        Ok(Checked::Verified(v)) => v,
        Ok(Checked::Handshake(h)) => {
            return Verdict {
                handshake: Some(h),
                ..Verdict::default()
            }
        }
        Ok(Checked::Confirm(v, confirmation)) => {
            return handshake::confirm(cx, v, confirmation, rec).await
        }
        Err(e) => {
            return Verdict {
                failure: Some(Rejection::Verify(e)),
                ..Verdict::default()
            }
        }
    };
    // Step 3b: the verified request's event type, and the route's filter. Observe mode
    // filters nothing ([`decide`]), so there the request goes on to the replay check like any
    // other.
    let event = event_type(cx.route, parts, body, rec);
    let observe = cx.route.cfg.mode == Mode::Observe;
    if !observe && !cx.route.cfg.events.allows(event.as_ref()) {
        settle_filtered(cx, scheme, &verified, parts, body, rec).await;
        return Verdict {
            verified: Some(verified),
            mark: None,
            failure: Some(Rejection::Filtered),
            event,
            handshake: None,
        };
    }
    match claim(cx, scheme, &verified, parts, body, rec).await {
        Ok(mark) => Verdict {
            verified: Some(verified),
            mark,
            failure: None,
            event,
            handshake: None,
        },
        Err(refusal) => Verdict {
            verified: Some(verified),
            mark: None,
            failure: Some(Rejection::Replay(refusal)),
            event,
            handshake: None,
        },
    }
}

/// Step 3b: the event type of a verified request, where the route reads one; counted in
/// `rec` (a listed type or `_other`).
fn event_type(
    route: &Route,
    parts: &Parts,
    body: &RawBody,
    rec: &mut Record<'_>,
) -> Option<HeaderValue> {
    let source = route.cfg.events.source.as_ref()?;
    let event = source.read(&parts.headers, body.as_verify());
    rec.event = route
        .metrics
        .events
        .counter(event.as_ref().map(HeaderValue::as_bytes));
    event
}

/// Step 3: the signature (or the handshake). Its time, and a verified request's key and
/// skew, go into `rec`. Ready at once for the HMAC and token schemes; the schemes that fetch
/// (JWKS, SNS certificates) wait here, bounded by the fetch client's timeouts.
async fn verify(
    route: &Route,
    scheme: &Scheme,
    parts: &Parts,
    body: &RawBody,
    rec: &mut Record<'_>,
) -> Result<Checked, VerifyError> {
    let input = Input {
        method: &parts.method,
        uri: &parts.uri,
        headers: &parts.headers,
        body: body.as_verify(),
    };
    let t = std::time::Instant::now();
    let now = unix_now();
    let result = scheme.check(input, now).resolve().await;
    rec.verify_time = Some(t.elapsed());
    rec.marks.verify_start = Some(t);
    let checked = result?;
    let verified = match &checked {
        Checked::Verified(v) | Checked::Confirm(v, _) => v,
        Checked::Handshake(_) => return Ok(checked),
    };
    // Skew only from a verified request: a stale/future error comes before the MAC is
    // checked, so its timestamp may be made up. Absolute, so `_sum` never drops.
    rec.skew = verified
        .timestamp
        .filter(|_| route.signed_timestamp)
        .map(|ts| ts.abs_diff(now));
    rec.key_index = Some(verified.key_index);
    Ok(checked)
}

/// A filtered delivery is settled by hookseal's own answer: its dedupe key is marked done, as
/// a delivered one is. A header-sourced event type is unsigned, so without this a captured
/// filtered delivery replayed with an allowed type would be a first delivery (SECURITY.md
/// row 50). A duplicate stays filtered; a store error is logged, the answer unchanged (the
/// request is not forwarded either way).
async fn settle_filtered(
    cx: &Ctx<'_>,
    scheme: &Scheme,
    verified: &Verified,
    parts: &Parts,
    body: &RawBody,
    rec: &mut Record<'_>,
) {
    let Ok(Some(key)) = claim(cx, scheme, verified, parts, body, rec).await else {
        return;
    };
    let cfg = &cx.route.cfg;
    let signed_ts = cx.route.signed_timestamp && verified.timestamp.is_some();
    let done_ttl = cfg.events.done_ttl(cfg.tolerance, signed_ts);
    if let Err(e) = cx.route.replay.finish(&key, true, done_ttl).await {
        tracing::warn!(route = %cfg.name, error = %e, "replay store: could not settle a filtered delivery");
    }
}

/// Step 4: dedupe on the route's `dedupe_key` of the verified request (src/events.rs).
/// `Ok(Some(mark))`: this request holds the key in flight. A store's error goes into `rec`.
async fn claim(
    cx: &Ctx<'_>,
    scheme: &Scheme,
    verified: &Verified,
    parts: &Parts,
    body: &RawBody,
    rec: &mut Record<'_>,
) -> Result<Option<Key>, ReplayRefusal> {
    let cfg = &cx.route.cfg;
    if !cfg.dedupe {
        return Ok(None);
    }
    let input = crate::events::KeyInput {
        verified,
        content: scheme.signed_content(),
        timestamp_signed: cx.route.signed_timestamp,
        headers: &parts.headers,
        body: body.as_verify(),
    };
    let Some(key) = crate::events::dedupe_key(&cfg.name, &cfg.events.dedupe_key, &input) else {
        return Ok(None);
    };
    let inflight_ttl = cx.snap.config.upstream.timeout + INFLIGHT_MARGIN;
    let traced = cx.trace.map(|_| std::time::Instant::now());
    let begun = cx.route.replay.begin(&key, inflight_ttl).await;
    rec.marks.store = traced.map(|t| (t, std::time::Instant::now()));
    match begun {
        Ok(Begin::Fresh) => Ok(Some(key)),
        Ok(Begin::Duplicate) => Err(ReplayRefusal::Duplicate),
        Ok(Begin::InFlight) => Err(ReplayRefusal::InFlight),
        Err(e) => {
            rec.store_error = Some(e.to_string());
            Err(ReplayRefusal::StoreUnavailable)
        }
    }
}

/// The response to a request: the app's, or hookseal's own for a rejection. Sets the
/// record's result: an observe route counts what it forwarded as `observed`, also when the
/// app could not be reached.
fn answer(
    result: Result<Served, Rejection>,
    route: Option<&str>,
    observe: bool,
    request_id: &HeaderValue,
    rec: &mut Record<'_>,
) -> Response<ProxyBody> {
    let forwarded = if observe {
        Outcome::Observed
    } else {
        Outcome::Forwarded
    };
    match result {
        Ok(Served::App(response, observed)) => {
            let reason = observed.unwrap_or(Reason::Ok);
            rec.answer = Some((forwarded, reason, response.status().as_u16()));
            response.map(Either::Left)
        }
        Ok(Served::Queued(id, observed)) => {
            // An observing route counts what it stored as it counts what it forwards.
            let outcome = if observe {
                Outcome::Observed
            } else {
                Outcome::Queued
            };
            rec.answer = Some((outcome, observed.unwrap_or(Reason::Ok), 202));
            crate::queue::accept::accepted(&id, request_id).map(Either::Right)
        }
        Ok(Served::Handshake(h)) => {
            rec.answer = Some((Outcome::Handshake, Reason::Ok, h.status.as_u16()));
            let mut resp = Response::new(Either::Right(Full::new(h.body)));
            *resp.status_mut() = h.status;
            let map = resp.headers_mut();
            map.insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static(h.content_type),
            );
            map.insert(headers::REQUEST_ID, request_id.clone());
            if h.nosniff {
                map.insert(
                    header::X_CONTENT_TYPE_OPTIONS,
                    HeaderValue::from_static("nosniff"),
                );
            }
            if let Some((name, value)) = h.header {
                map.insert(name, value);
            }
            resp
        }
        Err(rejection) => {
            let a = rejection.answer();
            let outcome = match a.outcome {
                Outcome::Forwarded => forwarded,
                o => o,
            };
            rec.answer = Some((outcome, a.reason, a.status.as_u16()));
            rec.detail = a.detail;
            rejection.response(route, request_id).map(Either::Right)
        }
    }
}

/// The one line of a request: warn when hookseal refused it, the app could not be reached,
/// or observe mode let through what enforce mode would refuse; else debug. Rejection lines
/// (and observe mode's would-be rejections) only within `gate`'s budget per reason; the rest
/// are counted and reported once a second.
fn log_line(
    name: &str,
    gate: &LogGate,
    conn: &ConnInfo,
    request_id: &HeaderValue,
    rec: &Record<'_>,
) {
    let Some((outcome, reason, status)) = rec.answer else {
        return;
    };
    // Read only for a line that is written (the debug line's fields are evaluated only when
    // it is enabled): the clock is not read again for every request.
    let elapsed_ms = || rec.start.elapsed().as_millis() as u64;
    let upstream_failed = matches!(
        reason,
        Reason::UpstreamUnavailable | Reason::UpstreamTimeout
    );
    let message = match outcome {
        _ if upstream_failed => "upstream failed",
        Outcome::Rejected | Outcome::Observed if reason != Reason::Ok && !gate.admit(reason) => {
            return
        }
        Outcome::Rejected => "request rejected",
        Outcome::Observed if reason != Reason::Ok => {
            "request would be rejected; forwarded (observe mode)"
        }
        Outcome::Duplicate => {
            tracing::debug!(route = %name, peer = %conn.peer, "duplicate delivery answered");
            return;
        }
        Outcome::Filtered => {
            tracing::debug!(route = %name, peer = %conn.peer, "event type filtered");
            return;
        }
        _ => {
            tracing::debug!(
                route = %name,
                result = %outcome.as_str(),
                reason = %reason.as_str(),
                status,
                peer = %conn.peer,
                elapsed_ms = elapsed_ms(),
                "request forwarded"
            );
            return;
        }
    };
    // Why, beyond the reason (a store's error, a saturated limit); absent when there is none.
    let error = match outcome {
        Outcome::Rejected => rec.detail.or(rec.store_error.as_deref()),
        _ => None,
    };
    in_request_span(request_id, || {
        tracing::warn!(
            route = %name,
            reason = %reason.as_str(),
            status,
            peer = %conn.peer,
            error = error.map(tracing::field::display),
            elapsed_ms = upstream_failed.then(elapsed_ms),
            "{message}"
        )
    });
}

/// The span every log line of a request is in. At ERROR level so that it is enabled whenever
/// any event of this module is: an INFO span would vanish from warn lines under
/// HOOKSEAL_LOG=warn.
fn request_span(request_id: &HeaderValue) -> tracing::Span {
    tracing::error_span!("request", request_id = %HeaderDisplay(request_id))
}

/// Runs `log` (one of a request's lines) inside the request's span: the one
/// [`Proxy::handle`] entered when debug lines are on, else one made for this line.
fn in_request_span(request_id: &HeaderValue, log: impl FnOnce()) {
    let current = tracing::Span::current();
    if current.metadata().is_some_and(|m| m.name() == "request") {
        log();
    } else {
        request_span(request_id).in_scope(log);
    }
}

/// `Content-Length`, if declared. Several differing values are malformed.
fn declared_length(h: &http::HeaderMap) -> Result<Option<u64>, ()> {
    let mut out = None;
    for v in h.get_all(header::CONTENT_LENGTH) {
        let n = v
            .to_str()
            .ok()
            .and_then(|s| s.trim().parse::<u64>().ok())
            .ok_or(())?;
        if out.is_some_and(|o| o != n) {
            return Err(());
        }
        out = Some(n);
    }
    Ok(out)
}

fn unix_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

/// `{mixed:016x}{n:08x}`, written without the formatting machinery, in the one allocation
/// its `Bytes` owns: the id is cloned into the app's request and the response, and a clone of
/// a value copied from a slice would allocate again to share it.
fn generated_id(mixed: u64, n: u64) -> HeaderValue {
    use crate::hex::DIGITS as HEX;
    let mut buf = [0u8; 32];
    let n_digits = (16 - n.leading_zeros() as usize / 4).max(8);
    for (i, b) in buf[..16].iter_mut().enumerate() {
        *b = HEX[(mixed >> (60 - 4 * i) & 0xf) as usize];
    }
    for (i, b) in buf[16..16 + n_digits].iter_mut().enumerate() {
        *b = HEX[(n >> (4 * (n_digits - 1 - i)) & 0xf) as usize];
    }
    headers::owned_value(buf, 16 + n_digits, "-")
}

/// SplitMix64's output function: a well-mixed 64-bit value from a counter.
pub(crate) fn splitmix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Shows a header value in logs (request ids are validated as visible ASCII or generated).
struct HeaderDisplay<'a>(&'a HeaderValue);

impl std::fmt::Display for HeaderDisplay<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.to_str().unwrap_or("-"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decide_applies_observe_mode_and_on_store_error_in_one_place() {
        for on_store_error in [OnStoreError::Reject, OnStoreError::Allow] {
            for mode in [Mode::Enforce, Mode::Observe] {
                assert_eq!(decide(mode, on_store_error, None), Decision::Forward(None));
            }
            // A filtered type: answered by hookseal when enforcing, forwarded when observing.
            assert_eq!(
                decide(Mode::Enforce, on_store_error, Some(Rejection::Filtered)),
                Decision::Refuse(Rejection::Filtered)
            );
            assert_eq!(
                decide(Mode::Observe, on_store_error, Some(Rejection::Filtered)),
                Decision::Forward(None)
            );
            for (failure, reason) in [
                (
                    Rejection::Verify(VerifyError::BadSignature),
                    Reason::BadSignature,
                ),
                (
                    Rejection::Verify(VerifyError::MissingSignature("x")),
                    Reason::MissingSignature,
                ),
                (
                    Rejection::Verify(VerifyError::StaleTimestamp { skew: -600 }),
                    Reason::StaleTimestamp,
                ),
                (
                    Rejection::Replay(ReplayRefusal::Duplicate),
                    Reason::Duplicate,
                ),
                (Rejection::Replay(ReplayRefusal::InFlight), Reason::InFlight),
                (
                    Rejection::Replay(ReplayRefusal::StoreUnavailable),
                    Reason::ReplayStoreUnavailable,
                ),
            ] {
                // Observe: every failure forwarded with its reason (so verified: false).
                assert_eq!(
                    decide(Mode::Observe, on_store_error, Some(failure)),
                    Decision::Forward(Some(reason))
                );
                let enforced = decide(Mode::Enforce, on_store_error, Some(failure));
                if reason == Reason::ReplayStoreUnavailable && on_store_error == OnStoreError::Allow
                {
                    assert_eq!(enforced, Decision::Forward(None));
                } else {
                    assert_eq!(enforced, Decision::Refuse(failure));
                }
            }
        }
    }

    #[test]
    fn a_record_writes_its_metrics_once_when_dropped_and_counts_only_an_answer() {
        let metrics = Metrics::new();
        let m = &metrics.unmatched;
        let errors = IntCounter::new("e", "e").unwrap();
        {
            // The sender left after its body was read: the body counts, the request does not.
            let mut rec = Record::new(m, &errors, Instant::now());
            rec.body_bytes = Some(10);
            rec.upstream_time = Some(Duration::from_millis(1));
        }
        assert_eq!(m.body_bytes.get_sample_count(), 1);
        assert_eq!(m.upstream_duration.get_sample_count(), 1);
        assert_eq!(m.request_duration.get_sample_count(), 0);
        {
            let mut rec = Record::new(m, &errors, Instant::now());
            rec.answer = Some((Outcome::Rejected, Reason::ReplayStoreUnavailable, 503));
            rec.store_error = Some("refused".into());
            assert_eq!(errors.get(), 0, "nothing is written before the end");
        }
        assert_eq!(m.request_duration.get_sample_count(), 1);
        assert_eq!(m.body_bytes.get_sample_count(), 1);
        assert_eq!(errors.get(), 1);
    }

    /// Runs `log` under a subscriber writing JSON (or text) lines; returns them.
    fn captured(json: bool, log: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Buf(Arc<std::sync::Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let buf = Buf::default();
        let out = buf.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || out.clone())
            .with_ansi(false);
        if json {
            tracing::subscriber::with_default(builder.json().finish(), log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
        let bytes = buf.0.lock().unwrap().clone();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn a_request_line_has_its_message_and_only_the_fields_that_apply() {
        let metrics = Metrics::new();
        let errors = IntCounter::new("e", "e").unwrap();
        let conn = ConnInfo::new("127.0.0.1:9".parse().unwrap(), false);
        let id = HeaderValue::from_static("rid-1");
        let gate = LogGate::new();
        let line = |json: bool, outcome: Outcome, reason: Reason, store_error: Option<&str>| {
            let mut rec = Record::new(&metrics.unmatched, &errors, Instant::now());
            rec.answer = Some((outcome, reason, 401));
            rec.store_error = store_error.map(str::to_owned);
            captured(json, || log_line("gh", &gate, &conn, &id, &rec))
        };
        let fields = |l: String| -> serde_json::Value {
            let v: serde_json::Value = serde_json::from_str(l.trim()).expect(&l);
            assert_eq!(v["level"], "WARN");
            assert_eq!(v["fields"]["peer"], "127.0.0.1:9");
            assert_eq!(v["fields"]["status"], 401);
            v["fields"].clone()
        };
        let rejected = Outcome::Rejected;
        let f = fields(line(true, rejected, Reason::BadSignature, None));
        assert_eq!(f["message"], "request rejected");
        assert_eq!(f["reason"], "bad_signature");
        assert!(
            f.get("error").is_none() && f.get("elapsed_ms").is_none(),
            "{f}"
        );
        let store = Reason::ReplayStoreUnavailable;
        let f = fields(line(true, rejected, store, Some("refused")));
        assert_eq!(f["error"], "refused");
        let f = fields(line(
            true,
            Outcome::Forwarded,
            Reason::UpstreamTimeout,
            None,
        ));
        assert_eq!(f["message"], "upstream failed");
        assert!(f["elapsed_ms"].is_u64() && f.get("error").is_none(), "{f}");
        let f = fields(line(true, Outcome::Observed, store, Some("refused")));
        assert_eq!(
            f["message"],
            "request would be rejected; forwarded (observe mode)"
        );
        assert!(
            f.get("error").is_none() && f.get("elapsed_ms").is_none(),
            "{f}"
        );
        // Text lines show the error as it is (Display), as before.
        let text = line(false, rejected, store, Some("conn refused"));
        assert!(text.contains("error=conn refused"), "{text}");
        // Forwarded and answered: a debug line, not shown at the default level.
        let ok = captured(true, || {
            let mut rec = Record::new(&metrics.unmatched, &errors, Instant::now());
            rec.answer = Some((Outcome::Forwarded, Reason::Ok, 200));
            log_line("gh", &gate, &conn, &id, &rec);
        });
        assert!(!ok.contains("WARN"), "{ok}");
    }

    #[test]
    fn generated_ids_read_as_the_format_they_replace() {
        let mut z = 1u64;
        for n in [0, 1, 0xf, 0x1234_5678, 0xffff_ffff, 0x1_0000_0000, u64::MAX] {
            for _ in 0..8 {
                z = splitmix(z);
                let id = generated_id(z, n);
                assert_eq!(id.to_str().unwrap(), format!("{z:016x}{n:08x}"));
            }
        }
    }
}
