//! The admin listener: `/metrics`, `/healthz`, `/readyz`, and `/debug/rejections` (the record
//! of rejections, [`crate::rejections`]).
//!
//! `/debug/*` is answered only to a client on a loopback address (`127.0.0.0/8`, `::1`),
//! whatever address the admin port listens on: in Kubernetes the port is often open to the pod
//! network for Prometheus, while the rejected requests' headers are for the operator, who
//! reaches them through `kubectl exec … hookseal rejections` or `kubectl port-forward` (both
//! arrive from loopback). Anyone else gets 403.
//!
//! At most [`MAX_CONNECTIONS`] connections are served at once; more wait in the kernel's listen
//! backlog (as on the proxy listener) and are accepted as soon as one closes. Every answer is
//! immediate, and a connection that sends no request head is closed after 10 s.

use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::metrics::Metrics;
use crate::queue::admin::QueueAdmin;
use crate::rejections::Rejections;

/// Readiness shared with the admin port: false before listeners are bound and while draining.
#[derive(Debug, Clone, Default)]
pub struct Readiness(Arc<AtomicBool>);

impl Readiness {
    /// Sets readiness.
    pub fn set(&self, ready: bool) {
        self.0.store(ready, Ordering::SeqCst);
    }

    /// Whether `/readyz` answers 200.
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// Admin connections served at once: Prometheus, the kubelet's probes and a person with curl
/// need a few; a client holding this many open only delays the rest, up to the 10 s head
/// timeout, instead of taking the process's file descriptors.
pub const MAX_CONNECTIONS: usize = 32;

/// Serves the admin endpoints until `stop` completes; `/queue` ones with `queue`.
pub async fn serve(
    listener: TcpListener,
    metrics: Arc<Metrics>,
    ready: Readiness,
    queue: Option<QueueAdmin>,
    rejections: Arc<Rejections>,
    stop: impl Future<Output = ()>,
) {
    tokio::pin!(stop);
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let slot = tokio::select! {
            () = &mut stop => return,
            s = Arc::clone(&slots).acquire_owned() => match s {
                Ok(s) => s,
                Err(_) => return,
            },
        };
        let (tcp, peer) = tokio::select! {
            () = &mut stop => return,
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(error = %e, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
        };
        let metrics = Arc::clone(&metrics);
        let ready = ready.clone();
        let queue = queue.clone();
        let rejections = Arc::clone(&rejections);
        tokio::spawn(async move {
            let _slot = slot;
            let svc = service_fn(move |req: Request<Incoming>| {
                let (metrics, ready, queue) = (Arc::clone(&metrics), ready.clone(), queue.clone());
                let rejections = Arc::clone(&rejections);
                async move {
                    let path = req.uri().path();
                    let operator_only = QueueAdmin::serves(path) || path.starts_with("/debug/");
                    if operator_only && local_peer(peer.ip()) && !local_host(req.headers()) {
                        return Ok(text(
                            StatusCode::FORBIDDEN,
                            "{\"error\":\"bad_host\"}\n".into(),
                            "application/json",
                        ));
                    }
                    let resp = match queue {
                        Some(q) if QueueAdmin::serves(req.uri().path()) => q.answer(req).await,
                        _ if req.uri().path().starts_with("/debug/") => {
                            debug(req.method(), req.uri(), &rejections, local_peer(peer.ip()))
                        }
                        _ => answer(&req, &metrics, &ready),
                    };
                    Ok::<_, std::convert::Infallible>(resp)
                }
            });
            let _ = http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(std::time::Duration::from_secs(10))
                .serve_connection(TokioIo::new(tcp), svc)
                .await;
        });
    }
}

/// Whether a client is on this host: a loopback address, also as an IPv4-mapped IPv6
/// address (a dual-stack `[::]` listener sees 127.0.0.1 as `::ffff:127.0.0.1`, which
/// `is_loopback` alone does not count).
fn local_peer(ip: std::net::IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// DNS rebinding: a web page whose name its owner re-points at `127.0.0.1` reaches the
/// admin port from the operator's browser (hookseal run locally, or `kubectl port-forward`)
/// as its own origin, and can read `/debug/rejections` or POST to `/queue`. Such a request
/// arrives from loopback with the page's name in `Host`. From a loopback peer, `/debug` and
/// `/queue` answer only a `Host` that is `localhost` or an IP address (or none, HTTP/1.0).
fn local_host(headers: &http::HeaderMap) -> bool {
    let mut all = headers.get_all(header::HOST).iter();
    let (value, None) = (all.next(), all.next()) else {
        return false;
    };
    let Some(value) = value else { return true };
    let Ok(authority) = value.to_str() else {
        return false;
    };
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => v6.split_once(']').unwrap_or(("", "")),
        None => match authority.rsplit_once(':') {
            Some((h, p)) => (h, p),
            None => (authority, ""),
        },
    };
    let port = port.strip_prefix(':').unwrap_or(port);
    let port_ok = port.bytes().all(|b| b.is_ascii_digit());
    port_ok && (host.eq_ignore_ascii_case("localhost") || host.parse::<std::net::IpAddr>().is_ok())
}

fn text(status: StatusCode, body: String, ctype: &'static str) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(ctype),
    );
    r
}

/// `GET /debug/rejections?route=R&reason=X&limit=N`: the record of rejections as a JSON
/// array, newest first (all of it without `limit`). Loopback clients only.
fn debug(
    method: &Method,
    uri: &http::Uri,
    rejections: &Rejections,
    loopback: bool,
) -> Response<Full<Bytes>> {
    if !loopback {
        return text(
            StatusCode::FORBIDDEN,
            "/debug is answered on loopback only\n".into(),
            "text/plain",
        );
    }
    if method != Method::GET && method != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            "text/plain",
        );
    }
    if uri.path() != "/debug/rejections" {
        return text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain");
    }
    let (mut route, mut reason, mut limit) = (None, None, usize::MAX);
    for (k, v) in form_urlencoded::parse(uri.query().unwrap_or("").as_bytes()) {
        match &*k {
            "route" => route = Some(v.into_owned()),
            "reason" => reason = Some(v.into_owned()),
            "limit" => match v.parse() {
                Ok(n) => limit = n,
                Err(_) => {
                    return text(
                        StatusCode::BAD_REQUEST,
                        "limit must be a number\n".into(),
                        "text/plain",
                    )
                }
            },
            _ => {}
        }
    }
    let body = rejections.json(route.as_deref(), reason.as_deref(), limit);
    text(StatusCode::OK, body, "application/json")
}

fn answer(req: &Request<Incoming>, metrics: &Metrics, ready: &Readiness) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(
            StatusCode::METHOD_NOT_ALLOWED,
            "method not allowed\n".into(),
            "text/plain",
        );
    }
    match req.uri().path() {
        "/metrics" => text(
            StatusCode::OK,
            metrics.encode(),
            "text/plain; version=0.0.4",
        ),
        "/healthz" => text(StatusCode::OK, "ok\n".into(), "text/plain"),
        "/readyz" if ready.is_ready() => text(StatusCode::OK, "ready\n".into(), "text/plain"),
        "/readyz" => text(
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready\n".into(),
            "text/plain",
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n".into(), "text/plain"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mapped_loopback_peer_is_local() {
        for ip in ["127.0.0.1", "127.9.9.9", "::1", "::ffff:127.0.0.1"] {
            assert!(local_peer(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["10.0.0.1", "::ffff:10.0.0.1", "::", "0.0.0.0", "fe80::1"] {
            assert!(!local_peer(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn operator_endpoints_refuse_a_rebound_host() {
        let h = |values: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in values {
                m.append(header::HOST, v.parse().unwrap());
            }
            local_host(&m)
        };
        for ok in [
            "localhost",
            "LOCALHOST:9090",
            "127.0.0.1:9090",
            "127.0.0.2",
            "[::1]:9090",
            "[::1]",
            "10.0.0.7:9090",
        ] {
            assert!(h(&[ok]), "{ok}");
        }
        assert!(h(&[]), "HTTP/1.0 without Host");
        for bad in [
            "evil.example",
            "evil.example:9090",
            "localhost.evil.example",
            "127.0.0.1.nip.io:9090",
            "[::1",
            "localhost:9090@evil",
        ] {
            assert!(!h(&[bad]), "{bad}");
        }
        assert!(!h(&["localhost", "evil.example"]), "two Hosts");
    }

    #[test]
    fn debug_is_for_loopback_clients_only_and_filters() {
        let ring = Rejections::new(10);
        let h = http::HeaderMap::new();
        let id = header::HeaderValue::from_static("r1");
        ring.record(&crate::rejections::Rejected {
            route: "gh",
            reason: crate::error::Reason::BadSignature,
            status: 401,
            peer: "10.0.0.1:5".parse().unwrap(),
            request_id: &id,
            headers: &h,
            signature_headers: &[],
            body: None,
            body_bytes: None,
        });
        let get = |uri: &str, loopback| {
            let uri: http::Uri = uri.parse().unwrap();
            debug(&Method::GET, &uri, &ring, loopback)
        };
        assert_eq!(
            get("/debug/rejections", false).status(),
            StatusCode::FORBIDDEN
        );
        let r = get("/debug/rejections?route=gh&reason=bad_signature", true);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
        assert_eq!(get("/debug/other", true).status(), StatusCode::NOT_FOUND);
        assert_eq!(
            get("/debug/rejections?limit=x", true).status(),
            StatusCode::BAD_REQUEST
        );
        let uri: http::Uri = "/debug/rejections".parse().unwrap();
        let post = debug(&Method::POST, &uri, &ring, true);
        assert_eq!(post.status(), StatusCode::METHOD_NOT_ALLOWED);
    }
}
