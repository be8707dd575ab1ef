//! The request pipeline of SPEC.md, top to bottom: route, body, verify, dedupe, forward.
//!
//! [`Proxy::handle`] never fails at the hyper boundary: every outcome becomes a response, and
//! every response is counted exactly once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{Authority, PathAndQuery};
use http::{Request, Response, StatusCode, Uri, Version};
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
use crate::replay::{Begin, Key, ReplayStore};
use crate::route::{Miss, RouteTable};
use crate::upstream::{UpstreamBody, UpstreamClient, UpstreamError};
use crate::verify::{Input, Scheme, Verified, NO_SCHEME};

/// The response body: the upstream's stream, or a small body hookseal wrote.
pub type ProxyBody = Either<UpstreamBody, Full<Bytes>>;

/// What the server knows about the connection a request came on.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The socket peer.
    pub peer: SocketAddr,
    /// Whether the connection is TLS.
    pub tls: bool,
}

/// Shared state of the pipeline. The config snapshot is swapped whole on reload; requests in
/// flight keep the snapshot they started with.
#[derive(Debug)]
pub struct Proxy {
    snapshot: RwLock<Arc<Snapshot>>,
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

/// How far a request got, for the single metrics/log record at the end.
struct Done {
    response: Response<ProxyBody>,
    outcome: Outcome,
    reason: Reason,
    /// Why, beyond the reason code, for the log line (a replay store error); never request data.
    detail: Option<String>,
}

/// What verification and the replay store found (SPEC steps 3-4), before the route's mode
/// is applied.
#[derive(Default)]
struct Verdict {
    /// What the signature established; `None` on a `none` route or a failed verification.
    verified: Option<Verified>,
    /// The in-flight mark this request holds, settled after forwarding.
    mark: Option<Key>,
    /// Why the request would be refused; `None` when it passed.
    failure: Option<Failure>,
}

impl Verdict {
    fn failed(verified: Option<Verified>, reason: Reason, detail: Option<String>) -> Verdict {
        Verdict {
            verified,
            mark: None,
            failure: Some(Failure { reason, detail }),
        }
    }
}

/// A failed check: the reason, and for the log line only, the store's error.
#[derive(Debug, PartialEq, Eq)]
struct Failure {
    reason: Reason,
    detail: Option<String>,
}

/// What the route does with a verdict.
#[derive(Debug, PartialEq, Eq)]
enum Decision {
    /// Forward; with `Some(reason)` as an observed failure (`x-hookseal-verified: false`).
    Forward(Option<Reason>),
    /// Answer the failure without forwarding.
    Refuse(Failure),
}

/// Observe mode and `on_store_error`, decided in one place: an enforcing route refuses every
/// failure except an unreachable store under `on_store_error = "allow"` (forwarded as
/// verified: the signature was); an observing route forwards every failure as observed.
fn decide(mode: Mode, on_store_error: OnStoreError, failure: Option<Failure>) -> Decision {
    match failure {
        None => Decision::Forward(None),
        Some(f) if mode == Mode::Observe => Decision::Forward(Some(f.reason)),
        Some(f)
            if f.reason == Reason::ReplayStoreUnavailable
                && on_store_error == OnStoreError::Allow =>
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
        Proxy {
            snapshot: RwLock::new(Arc::new(snapshot)),
            replay,
            replay_errors,
            metrics,
            client,
            budget,
            ids: AtomicU64::new(0),
            id_seed,
            unmatched_log: LogGate::new(),
        }
    }

    /// Swaps in a new config; requests already in flight finish under the old one.
    pub fn reload(&self, config: Config) {
        let snapshot = Arc::new(Snapshot::new(config, &self.metrics, &self.replay));
        self.metrics
            .retain(snapshot.routes.values().map(|r| &r.metrics));
        let names: Vec<&str> = snapshot
            .config
            .routes
            .iter()
            .map(|r| r.name.as_str())
            .collect();
        self.replay.retain_partitions(&names);
        let old = match self.snapshot.write() {
            Ok(mut s) => std::mem::replace(&mut *s, snapshot),
            Err(poisoned) => std::mem::replace(&mut *poisoned.into_inner(), snapshot),
        };
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
        match self.snapshot.read() {
            Ok(s) => Arc::clone(&s),
            Err(poisoned) => Arc::clone(&poisoned.into_inner()),
        }
    }

    /// Handles one request from start to response head. Every log line of the request carries
    /// a `request` span with the request id. When debug lines are on (ours at debug, or a
    /// library's), the whole request runs inside that span; otherwise the only lines a request
    /// can log are hookseal's own warn lines, and each makes the span when it is written
    /// ([`in_request_span`]): the same output, without a span per request nobody reads.
    pub async fn handle(&self, req: Request<Incoming>, conn: ConnInfo) -> Response<ProxyBody> {
        let request_id = self.request_id(req.headers());
        if tracing::level_filters::LevelFilter::current() >= tracing::Level::DEBUG {
            let span = request_span(&request_id);
            self.serve(req, conn, request_id).instrument(span).await
        } else {
            self.serve(req, conn, request_id).await
        }
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

        let target = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path(), |p| p.as_str());
        let route = match snap.routes.find(&parts.method, target) {
            Ok(r) => Arc::clone(r),
            Err(miss) => {
                let reason = match miss {
                    Miss::NoRoute => Reason::NoRoute,
                    Miss::Ambiguous => Reason::AmbiguousPath,
                    Miss::MethodNotAllowed => Reason::MethodNotAllowed,
                };
                let m = &self.metrics.unmatched;
                m.count(Outcome::Rejected, reason);
                m.request_duration.observe(start.elapsed().as_secs_f64());
                if self.unmatched_log.admit(reason) {
                    log_rejection(crate::config::UNMATCHED_ROUTE, reason, &conn, &request_id);
                }
                return reject(reason, None, &request_id);
            }
        };
        let done = self
            .route(&snap, &route, &mut parts, body, &conn, &request_id, start)
            .await;
        route.metrics.count(done.outcome, done.reason);
        route
            .metrics
            .request_duration
            .observe(start.elapsed().as_secs_f64());
        let name = route.cfg.name.as_str();
        let status = done.response.status().as_u16();
        let elapsed_ms = start.elapsed().as_millis() as u64;
        // Exactly one line per request: warn when hookseal refused it, the app could not be
        // reached, or observe mode let through what enforce mode would refuse; else debug.
        match (done.outcome, done.reason) {
            // Rejection lines (and observe mode's would-be rejections) within the route's
            // budget per reason; the rest are counted and reported once a second.
            (Outcome::Rejected | Outcome::Observed, reason)
                if !matches!(
                    reason,
                    Reason::Ok | Reason::UpstreamUnavailable | Reason::UpstreamTimeout
                ) && !route.log_gate.admit(reason) => {}
            (Outcome::Rejected, reason) => match &done.detail {
                None => log_rejection(name, reason, &conn, &request_id),
                Some(error) => in_request_span(&request_id, || {
                    tracing::warn!(
                        route = %name,
                        reason = %reason.as_str(),
                        status,
                        peer = %conn.peer,
                        error = %error,
                        "request rejected"
                    )
                }),
            },
            (_, reason @ (Reason::UpstreamUnavailable | Reason::UpstreamTimeout)) => {
                in_request_span(&request_id, || {
                    tracing::warn!(
                        route = %name,
                        reason = %reason.as_str(),
                        status,
                        peer = %conn.peer,
                        elapsed_ms,
                        "upstream failed"
                    )
                });
            }
            (Outcome::Observed, reason) if reason != Reason::Ok => {
                in_request_span(&request_id, || {
                    tracing::warn!(
                        route = %name,
                        reason = %reason.as_str(),
                        status,
                        peer = %conn.peer,
                        "request would be rejected; forwarded (observe mode)"
                    )
                });
            }
            (Outcome::Duplicate, _) => {
                tracing::debug!(route = %name, peer = %conn.peer, "duplicate delivery answered");
            }
            (outcome, reason) => tracing::debug!(
                route = %name,
                result = %outcome.as_str(),
                reason = %reason.as_str(),
                status,
                peer = %conn.peer,
                elapsed_ms,
                "request forwarded"
            ),
        }
        done.response
    }

    #[allow(clippy::too_many_arguments)]
    async fn route(
        &self,
        snap: &Snapshot,
        route: &Arc<Route>,
        parts: &mut http::request::Parts,
        body: Incoming,
        conn: &ConnInfo,
        request_id: &HeaderValue,
        start: Instant,
    ) -> Done {
        let cfg = &route.cfg;
        let name = Some(cfg.name.as_str());
        let rejected = |reason: Reason| Done {
            response: reject(reason, name, request_id),
            outcome: Outcome::Rejected,
            reason,
            detail: None,
        };

        // Step 1b: a request whose Host or framing hookseal cannot pass on as the app would
        // read it is refused, whatever the mode.
        if !headers::host_ok(&parts.headers, parts.uri.authority()) {
            return rejected(Reason::BadHost);
        }
        if !headers::transfer_coding_ok(&parts.headers) {
            return rejected(Reason::UnsupportedTransferCoding);
        }

        if !cfg.allow_from.is_empty() {
            let client = headers::client_ip(
                conn.peer.ip(),
                &parts.headers,
                &snap.config.listen.trusted_proxies,
            );
            if !client.is_some_and(|ip| cfg.allow_from.iter().any(|n| n.contains(ip))) {
                return rejected(Reason::IpNotAllowed);
            }
        }

        // Step 2: the body, bounded before and while reading.
        let declared = match declared_length(&parts.headers) {
            Ok(d) => d,
            Err(()) => return rejected(Reason::BodyIncomplete),
        };
        if declared.is_some_and(|n| n > cfg.max_body_bytes) {
            return rejected(Reason::BodyTooLarge);
        }
        let deadline = start + snap.config.limits.body_timeout;
        let read = self
            .budget
            .read(body, declared, cfg.max_body_bytes, deadline);
        let body = match read.await {
            Ok(b) => b,
            Err(BodyError::TooLarge) => return rejected(Reason::BodyTooLarge),
            Err(BodyError::Timeout) => return rejected(Reason::BodyTimeout),
            Err(BodyError::Incomplete) => return rejected(Reason::BodyIncomplete),
            Err(BodyError::Overloaded) => {
                let detail = Some("limits.max_buffered_bytes exhausted".into());
                return Done {
                    detail,
                    ..rejected(Reason::Overloaded)
                };
            }
        };
        route.metrics.body_bytes.observe(body.len() as f64);

        // Hop-by-hop headers go before verification, so the verifier reads exactly the headers
        // the app gets: a `Connection` header that names a signature, timestamp or id header
        // removes it before the check (which then fails), never after it passed.
        headers::strip_hop_by_hop(&mut parts.headers);

        // Steps 3-4: the verdict, then what the route's mode makes of it.
        let verdict = self.verdict(snap, route, parts, &body, request_id).await;
        let failure = match decide(cfg.mode, snap.config.replay.on_store_error, verdict.failure) {
            Decision::Forward(failure) => failure,
            Decision::Refuse(f) => {
                let mut done = Done {
                    detail: f.detail,
                    ..rejected(f.reason)
                };
                if f.reason == Reason::Duplicate {
                    done.outcome = Outcome::Duplicate;
                    done.response
                        .headers_mut()
                        .insert(headers::DUPLICATE, HeaderValue::from_static("true"));
                }
                return done;
            }
        };

        // Steps 5-7: forward, answer, settle the mark.
        self.forward(
            snap,
            route,
            parts,
            body,
            conn,
            request_id,
            verdict.verified.as_ref(),
            failure,
            verdict.mark,
        )
        .await
    }

    /// Steps 3 and 4: verifies the signature, then claims the message id in the replay store.
    /// Says what failed, whatever the route's mode: [`decide`] turns that into an answer.
    async fn verdict(
        &self,
        snap: &Snapshot,
        route: &Route,
        parts: &http::request::Parts,
        body: &RawBody,
        request_id: &HeaderValue,
    ) -> Verdict {
        let cfg = &route.cfg;
        let Some(scheme) = &cfg.scheme else {
            return Verdict::default();
        };
        let input = Input {
            method: &parts.method,
            uri: &parts.uri,
            headers: &parts.headers,
            body: body.as_verify(),
        };
        let t = std::time::Instant::now();
        let now = unix_now();
        let result = scheme.verify(&input, now);
        if let Some(h) = &route.metrics.verify_duration {
            h.observe(t.elapsed().as_secs_f64());
        }
        let verified = match result {
            Ok(v) => {
                // Skew only from a verified request: a stale/future error comes before the MAC
                // is checked, so its timestamp may be made up. Absolute, so `_sum` never drops.
                if let Some(ts) = v.timestamp.filter(|_| route.signed_timestamp) {
                    route.metrics.skew.observe(ts.abs_diff(now) as f64);
                }
                if let Some(c) = route.metrics.signature_key.get(v.key_index) {
                    c.inc();
                }
                v
            }
            Err(e) => return Verdict::failed(None, Reason::from(e), None),
        };

        // Step 4: dedupe on the verified message id.
        let Some(id) = verified.id.as_ref().filter(|_| cfg.dedupe) else {
            return Verdict {
                verified: Some(verified),
                ..Verdict::default()
            };
        };
        let key = Key::new(&cfg.name, id.as_bytes());
        let inflight_ttl = snap.config.upstream.timeout + INFLIGHT_MARGIN;
        let reason = match route.replay.begin(&key, inflight_ttl).await {
            Ok(Begin::Fresh) => {
                return Verdict {
                    verified: Some(verified),
                    mark: Some(key),
                    failure: None,
                }
            }
            Ok(Begin::Duplicate) => Reason::Duplicate,
            Ok(Begin::InFlight) => Reason::InFlight,
            Err(e) => {
                self.replay_errors.inc();
                let error = e.to_string();
                if cfg.mode == Mode::Observe
                    || snap.config.replay.on_store_error == OnStoreError::Allow
                {
                    // Forwarded anyway (see `decide`); a refusal logs the error on its one line.
                    in_request_span(
                        request_id,
                        || tracing::warn!(route = %cfg.name, store = self.replay.kind(), error = %error, "replay store unavailable; forwarding unchecked for duplicates"),
                    );
                }
                return Verdict::failed(
                    Some(verified),
                    Reason::ReplayStoreUnavailable,
                    Some(error),
                );
            }
        };
        Verdict::failed(Some(verified), reason, None)
    }

    /// Forwards the request; `failure` is the observe-mode reason when a check failed.
    #[allow(clippy::too_many_arguments)]
    async fn forward(
        &self,
        snap: &Snapshot,
        route: &Arc<Route>,
        parts: &mut http::request::Parts,
        body: RawBody,
        conn: &ConnInfo,
        request_id: &HeaderValue,
        verified: Option<&Verified>,
        failure: Option<Reason>,
        mark: Option<Key>,
    ) -> Done {
        let cfg = &route.cfg;
        let observe = cfg.mode == Mode::Observe;
        let client = headers::client_ip(
            conn.peer.ip(),
            &parts.headers,
            &snap.config.listen.trusted_proxies,
        );
        let h = &mut parts.headers;
        headers::strip_hookseal(h);
        if let Some(scheme) = &cfg.scheme {
            scheme.strip_unread(h);
        }
        let host = h.get(header::HOST).cloned().or_else(|| {
            parts
                .uri
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        if let Some(host) = &host {
            if !h.contains_key(header::HOST) {
                h.insert(header::HOST, host.clone());
            }
        }
        headers::add_forwarded(h, conn.peer.ip(), conn.tls, host);
        headers::apply_policy(h, &snap.config.forwarding.keep, client);
        h.insert(headers::REQUEST_ID, request_id.clone());
        h.insert(headers::ROUTE, route.name_value.clone());
        if cfg.scheme.is_some() {
            h.insert(headers::SCHEME, route.scheme_value.clone());
        }
        // True only when the signature verified and nothing after it failed (SPEC: `false`
        // on any failure).
        let passed = verified.is_some() && failure.is_none();
        h.insert(
            headers::VERIFIED,
            HeaderValue::from_static(if passed { "true" } else { "false" }),
        );
        if let Some(v) = verified {
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
        if let Some(reason) = failure {
            h.insert(headers::REASON, HeaderValue::from_static(reason.as_str()));
            if reason == Reason::Duplicate {
                h.insert(headers::DUPLICATE, HeaderValue::from_static("true"));
            }
        }

        // HTTP/1.1 to an origin: the request line carries the origin form (path and query)
        // only; what came as one (HTTP/1.1 usually) goes on as it is.
        let uri = if parts.uri.scheme().is_none() && parts.uri.authority().is_none() {
            std::mem::take(&mut parts.uri)
        } else {
            Uri::from(
                parts
                    .uri
                    .path_and_query()
                    .cloned()
                    .unwrap_or_else(|| PathAndQuery::from_static("/")),
            )
        };
        let mut req = Request::new(body);
        *req.method_mut() = parts.method.clone();
        *req.uri_mut() = uri;
        *req.version_mut() = Version::HTTP_11;
        *req.headers_mut() = std::mem::take(&mut parts.headers);

        let timeout = snap.config.upstream.timeout;
        let t = Instant::now();
        let result = match mark {
            None => self.client.send(req, &route.upstream, timeout).await,
            Some(key) => {
                // The send and the settling of the mark run in their own task, so that a
                // sender who hangs up mid-request cannot leave the id marked in flight, and
                // the id is marked done exactly when the app answered 2xx.
                let client = self.client.clone();
                let replay = route.replay.clone();
                let errors = self.replay_errors.clone();
                let done_ttl = cfg.tolerance * 2;
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
        route
            .metrics
            .upstream_duration
            .observe(t.elapsed().as_secs_f64());
        let mut resp = match result {
            Ok(r) => r,
            Err(e) => return self.upstream_failed(route, e, request_id, observe),
        };
        route.metrics.upstream(UpstreamClass::of(resp.status()));
        headers::strip_hop_by_hop(resp.headers_mut());
        if !resp.headers().contains_key(headers::REQUEST_ID) {
            resp.headers_mut()
                .insert(headers::REQUEST_ID, request_id.clone());
        }
        let (outcome, reason) = match failure {
            Some(r) => (Outcome::Observed, r),
            None if observe => (Outcome::Observed, Reason::Ok),
            None => (Outcome::Forwarded, Reason::Ok),
        };
        Done {
            response: resp.map(Either::Left),
            outcome,
            reason,
            detail: None,
        }
    }

    fn upstream_failed(
        &self,
        route: &Route,
        e: UpstreamError,
        request_id: &HeaderValue,
        observe: bool,
    ) -> Done {
        let (class, reason) = match e {
            UpstreamError::Busy => {
                return Done {
                    response: reject(Reason::Overloaded, Some(&route.cfg.name), request_id),
                    outcome: Outcome::Rejected,
                    reason: Reason::Overloaded,
                    detail: Some("no app connection free within upstream.timeout".into()),
                }
            }
            UpstreamError::Unavailable => (UpstreamClass::Error, Reason::UpstreamUnavailable),
            UpstreamError::Timeout => (UpstreamClass::Timeout, Reason::UpstreamTimeout),
        };
        route.metrics.upstream(class);
        Done {
            response: reject(reason, Some(&route.cfg.name), request_id),
            outcome: if observe {
                Outcome::Observed
            } else {
                Outcome::Forwarded
            },
            reason,
            detail: None,
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
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        // Unique per process run and cheap; not a secret, so no CSPRNG is needed.
        let mixed = splitmix(self.id_seed ^ n.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        generated_id(mixed, n)
    }
}

impl Snapshot {
    fn new(config: Config, metrics: &Metrics, replay: &ReplayStore) -> Snapshot {
        let default_upstream = config.upstream.url.authority().cloned();
        let mut entries = Vec::new();
        for cfg in &config.routes {
            let scheme = cfg.scheme.as_ref().map(|s| s.name().as_str());
            let upstream = cfg
                .upstream
                .as_ref()
                .and_then(|u| u.authority().cloned())
                .or_else(|| default_upstream.clone())
                .unwrap_or_else(|| Authority::from_static("127.0.0.1:8080"));
            let route = Route {
                metrics: metrics.route(
                    &cfg.name,
                    scheme,
                    &cfg.secret_ids,
                    cfg.mode == Mode::Observe,
                    Some(cfg.tolerance),
                ),
                upstream,
                name_value: header_value(&cfg.name),
                scheme_value: HeaderValue::from_static(scheme.unwrap_or(NO_SCHEME)),
                key_values: cfg.secret_ids.iter().map(|k| header_value(k)).collect(),
                replay: replay.partition(&cfg.name, config.replay_capacity(cfg)),
                log_gate: LogGate::new(),
                signed_timestamp: cfg.scheme.as_ref().is_none_or(Scheme::timestamp_is_signed),
                cfg: cfg.clone(),
            };
            entries.push((cfg.path.clone(), cfg.methods.clone(), Arc::new(route)));
        }
        Snapshot {
            config,
            routes: RouteTable::new(entries),
        }
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

/// A response hookseal writes itself.
fn reject(reason: Reason, route: Option<&str>, request_id: &HeaderValue) -> Response<ProxyBody> {
    let mut resp = Response::new(Either::Right(Full::new(reason.body(route))));
    *resp.status_mut() = reason.status();
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(headers::REQUEST_ID, request_id.clone());
    if reason.status() == StatusCode::PAYLOAD_TOO_LARGE
        || reason == Reason::BodyIncomplete
        || reason == Reason::BodyTimeout
        || reason == Reason::BadHost
        || reason == Reason::UnsupportedTransferCoding
        || reason == Reason::Overloaded
    {
        // The rest of the body was not read: the connection cannot carry another request.
        h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    if reason == Reason::Overloaded {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    resp
}

/// The one warn line of a rejected request (the request id comes from the span).
fn log_rejection(route: &str, reason: Reason, conn: &ConnInfo, request_id: &HeaderValue) {
    in_request_span(request_id, || {
        tracing::warn!(
            route = %route,
            reason = %reason.as_str(),
            status = reason.status().as_u16(),
            peer = %conn.peer,
            "request rejected"
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

/// `{mixed:016x}{n:08x}`, written without the formatting machinery.
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
    HeaderValue::from_bytes(&buf[..16 + n_digits]).unwrap_or(HeaderValue::from_static("-"))
}

fn splitmix(mut z: u64) -> u64 {
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
        let fail = |reason| {
            Some(Failure {
                reason,
                detail: None,
            })
        };
        for on_store_error in [OnStoreError::Reject, OnStoreError::Allow] {
            for mode in [Mode::Enforce, Mode::Observe] {
                assert_eq!(decide(mode, on_store_error, None), Decision::Forward(None));
            }
            for reason in [
                Reason::BadSignature,
                Reason::MissingSignature,
                Reason::StaleTimestamp,
                Reason::Duplicate,
                Reason::InFlight,
                Reason::ReplayStoreUnavailable,
            ] {
                // Observe: every failure forwarded with its reason (so verified: false).
                assert_eq!(
                    decide(Mode::Observe, on_store_error, fail(reason)),
                    Decision::Forward(Some(reason))
                );
                let enforced = decide(Mode::Enforce, on_store_error, fail(reason));
                if reason == Reason::ReplayStoreUnavailable && on_store_error == OnStoreError::Allow
                {
                    assert_eq!(enforced, Decision::Forward(None));
                } else {
                    assert_eq!(enforced, Decision::Refuse(fail(reason).unwrap()));
                }
            }
        }
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
