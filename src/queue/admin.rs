//! The queue endpoints of the admin port (SPEC "Queued delivery"): `GET /queue`,
//! `GET /queue/dead?route=R`, `POST /queue/retry`, `POST /queue/purge`. JSON in and out; a
//! dead letter is listed by id, route, attempts, last status and error, queue time: never
//! its headers or body.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use http::{header, Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde_json::{json, Value};
use tokio::time::Instant;

use super::policy::unix_ms;
use super::{QueueError, Spool};
use crate::metrics::Metrics;
use crate::proxy::Proxy;

/// Most dead letters one `GET /queue/dead` lists (oldest first).
pub const DEAD_LIST_LIMIT: usize = 1000;
/// A route's dead letters can be retried in bulk (`all_dead`) at most once in this time:
/// each bulk retry puts every dead letter back at once, and a script calling it in a loop
/// would make the app's failures into a storm.
pub const BULK_RETRY_INTERVAL: Duration = Duration::from_secs(10);
/// Most bytes of a POST body read.
const MAX_BODY: usize = 4096;

/// The state the queue endpoints share.
#[derive(Debug, Clone)]
pub struct QueueAdmin {
    proxy: Arc<Proxy>,
    /// When each route's last bulk retry was made.
    bulk: Arc<Mutex<HashMap<String, Instant>>>,
}

impl QueueAdmin {
    /// Endpoints over `proxy`'s spool and queued routes.
    pub fn new(proxy: Arc<Proxy>) -> QueueAdmin {
        QueueAdmin {
            proxy,
            bulk: Arc::default(),
        }
    }

    /// Whether `path` is one of these endpoints.
    pub fn serves(path: &str) -> bool {
        path == "/queue" || path.starts_with("/queue/")
    }

    /// Answers one request to a `/queue` path.
    pub async fn answer(&self, req: Request<Incoming>) -> Response<Full<Bytes>> {
        let Some(spool) = self.proxy.spool().cloned() else {
            return reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "queue_not_configured"}),
            );
        };
        let routes: Vec<String> = self
            .proxy
            .snapshot()
            .delivery_targets()
            .into_iter()
            .map(|t| t.name)
            .collect();
        let path = req.uri().path().to_owned();
        let query = req.uri().query().unwrap_or("").to_owned();
        let result = match (req.method().clone(), path.as_str()) {
            (Method::GET, "/queue") => stats(&spool, &routes).await,
            (Method::GET, "/queue/dead") => dead(&spool, &routes, &query).await,
            (Method::POST, "/queue/retry") => match body(req).await {
                Ok(b) => self.retry(&spool, &routes, &b).await,
                Err(r) => Ok(r),
            },
            (Method::POST, "/queue/purge") => match body(req).await {
                Ok(b) => purge(&spool, &routes, &b).await,
                Err(r) => Ok(r),
            },
            (_, "/queue" | "/queue/dead" | "/queue/retry" | "/queue/purge") => Ok(reply(
                StatusCode::METHOD_NOT_ALLOWED,
                &json!({"error": "method_not_allowed"}),
            )),
            _ => Ok(reply(StatusCode::NOT_FOUND, &json!({"error": "not_found"}))),
        };
        result.unwrap_or_else(|e| {
            tracing::warn!(store = spool.kind(), error = %e, "queue admin: spool unavailable");
            reply(
                StatusCode::SERVICE_UNAVAILABLE,
                &json!({"error": "queue_unavailable"}),
            )
        })
    }

    async fn retry(
        &self,
        spool: &Spool,
        routes: &[String],
        b: &Value,
    ) -> Result<Response<Full<Bytes>>, QueueError> {
        let now = unix_ms(SystemTime::now());
        let route = b.get("route").and_then(Value::as_str);
        if let Some(id) = b.get("id").and_then(Value::as_str) {
            let candidates: Vec<&String> = match route {
                Some(r) => match routes.iter().find(|x| *x == r) {
                    Some(x) => vec![x],
                    None => return Ok(unknown_route()),
                },
                None => routes.iter().collect(),
            };
            for r in candidates {
                if spool.retry_dead(r, id, now).await? {
                    self.proxy.queue_wake().notify_waiters();
                    return Ok(reply(StatusCode::OK, &json!({"retried": 1, "route": r})));
                }
            }
            return Ok(reply(
                StatusCode::NOT_FOUND,
                &json!({"error": "no_such_dead_letter"}),
            ));
        }
        if b.get("all_dead").and_then(Value::as_bool) == Some(true) {
            let Some(route) = route else {
                return Ok(bad_request("give \"route\" with \"all_dead\": true"));
            };
            if !routes.iter().any(|r| r == route) {
                return Ok(unknown_route());
            }
            {
                let mut last = self.bulk.lock().unwrap_or_else(|e| e.into_inner());
                if let Some(at) = last.get(route) {
                    let wait = BULK_RETRY_INTERVAL.saturating_sub(at.elapsed());
                    if !wait.is_zero() {
                        let mut r = reply(
                            StatusCode::TOO_MANY_REQUESTS,
                            &json!({"error": "bulk_retry_rate_limited", "route": route}),
                        );
                        r.headers_mut().insert(
                            header::RETRY_AFTER,
                            header::HeaderValue::from(wait.as_secs().max(1)),
                        );
                        return Ok(r);
                    }
                }
                last.insert(route.to_owned(), Instant::now());
            }
            let n = spool.retry_all_dead(route, now).await?;
            self.proxy.queue_wake().notify_waiters();
            return Ok(reply(
                StatusCode::OK,
                &json!({"retried": n, "route": route}),
            ));
        }
        Ok(bad_request(
            "give {\"id\": \"...\"} or {\"route\": \"R\", \"all_dead\": true}",
        ))
    }
}

/// The spool's numbers of the queued routes in force into the queue gauges (the app's 1 s
/// tick calls this).
pub async fn report_stats(proxy: &Proxy, metrics: &Metrics) {
    let Some(spool) = proxy.spool() else { return };
    let targets = proxy.snapshot().delivery_targets();
    if targets.is_empty() {
        return;
    }
    let names: Vec<&str> = targets.iter().map(|t| t.name.as_str()).collect();
    match spool.stats(&names, unix_ms(SystemTime::now())).await {
        Ok(s) => metrics.queue.set_stats(&s),
        Err(e) => tracing::debug!(error = %e, "spool stats unavailable"),
    }
}

async fn stats(spool: &Spool, routes: &[String]) -> Result<Response<Full<Bytes>>, QueueError> {
    let names: Vec<&str> = routes.iter().map(String::as_str).collect();
    let s = spool.stats(&names, unix_ms(SystemTime::now())).await?;
    let mut out = serde_json::Map::new();
    for (route, s) in s {
        out.insert(
            route,
            json!({"depth": s.depth, "dead": s.dead, "oldest_seconds": s.oldest_ms as f64 / 1000.0}),
        );
    }
    Ok(reply(StatusCode::OK, &json!({ "routes": out })))
}

async fn dead(
    spool: &Spool,
    routes: &[String],
    query: &str,
) -> Result<Response<Full<Bytes>>, QueueError> {
    let wanted = query
        .split('&')
        .find_map(|kv| kv.strip_prefix("route="))
        .map(percent_decode);
    let list: Vec<&String> = match &wanted {
        Some(r) => match routes.iter().find(|x| *x == r) {
            Some(x) => vec![x],
            None => return Ok(unknown_route()),
        },
        None => routes.iter().collect(),
    };
    let mut entries = Vec::new();
    for r in list {
        for d in spool.dead(r, DEAD_LIST_LIMIT).await? {
            entries.push(json!({
                "id": d.id,
                "route": d.route,
                "attempts": d.attempts,
                "last_status": d.last_status,
                "last_error": d.last_error,
                "queued_at": d.queued_at / 1000,
            }));
        }
    }
    Ok(reply(StatusCode::OK, &json!({ "entries": entries })))
}

async fn purge(
    spool: &Spool,
    routes: &[String],
    b: &Value,
) -> Result<Response<Full<Bytes>>, QueueError> {
    let Some(route) = b.get("route").and_then(Value::as_str) else {
        return Ok(bad_request("give {\"route\": \"R\", \"dead\": true}"));
    };
    if b.get("dead").and_then(Value::as_bool) != Some(true) {
        return Ok(bad_request(
            "only dead letters are purged: give \"dead\": true",
        ));
    }
    if !routes.iter().any(|r| r == route) {
        return Ok(unknown_route());
    }
    let n = spool.purge_dead(route).await?;
    Ok(reply(StatusCode::OK, &json!({"purged": n, "route": route})))
}

/// Whether a POST says its body is JSON (`application/json`, parameters allowed). A browser
/// sends a cross-site POST without asking first only as a "simple" request (`text/plain`,
/// form types): requiring JSON makes it ask (a CORS preflight, which this port never
/// grants), so a web page cannot retry or purge through an operator's `kubectl port-forward`.
fn json_content_type(headers: &http::HeaderMap) -> bool {
    let mut all = headers.get_all(header::CONTENT_TYPE).iter();
    let (Some(v), None) = (all.next(), all.next()) else {
        return false;
    };
    v.to_str().is_ok_and(|v| {
        let essence = v.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case("application/json")
    })
}

/// The JSON body of a POST (`Content-Type: application/json`), bounded in size and time.
async fn body(req: Request<Incoming>) -> Result<Value, Response<Full<Bytes>>> {
    if !json_content_type(req.headers()) {
        return Err(reply(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            &json!({"error": "unsupported_media_type", "detail": "send Content-Type: application/json"}),
        ));
    }
    let read = tokio::time::timeout(
        Duration::from_secs(10),
        Limited::new(req.into_body(), MAX_BODY).collect(),
    )
    .await;
    let bytes = match read {
        Ok(Ok(b)) => b.to_bytes(),
        _ => return Err(bad_request("a JSON body of at most 4096 bytes")),
    };
    serde_json::from_slice(&bytes).map_err(|_| bad_request("the body is not JSON"))
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'%' if i + 2 < b.len() => {
                match std::str::from_utf8(&b[i + 1..i + 3])
                    .ok()
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    Some(v) => {
                        out.push(v);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn unknown_route() -> Response<Full<Bytes>> {
    reply(StatusCode::NOT_FOUND, &json!({"error": "no_queued_route"}))
}

fn bad_request(why: &str) -> Response<Full<Bytes>> {
    reply(
        StatusCode::BAD_REQUEST,
        &json!({"error": "bad_request", "detail": why}),
    )
}

fn reply(status: StatusCode, v: &Value) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(format!("{v}\n"))));
    *r.status_mut() = status;
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn posts_must_say_they_are_json() {
        let h = |values: &[&str]| {
            let mut m = http::HeaderMap::new();
            for v in values {
                m.append(header::CONTENT_TYPE, v.parse().unwrap());
            }
            json_content_type(&m)
        };
        assert!(h(&["application/json"]));
        assert!(h(&["Application/JSON; charset=utf-8"]));
        // What a cross-site form or `fetch` sends without a preflight, and nothing at all.
        for simple in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ] {
            assert!(!h(&[simple]), "{simple}");
        }
        assert!(!h(&[]));
        assert!(!h(&["application/json", "text/plain"]));
        assert!(!h(&["application/jsonx"]));
    }

    #[test]
    fn query_values_are_percent_decoded() {
        assert_eq!(percent_decode("a%2Db+c"), "a-b c");
        assert_eq!(percent_decode("abc%"), "abc%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("x%4"), "x%4");
    }
}
