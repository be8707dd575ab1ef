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
                    let resp = match queue {
                        Some(q) if QueueAdmin::serves(req.uri().path()) => q.answer(req).await,
                        _ if req.uri().path().starts_with("/debug/") => debug(
                            req.method(),
                            req.uri(),
                            &rejections,
                            peer.ip().is_loopback(),
                        ),
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
