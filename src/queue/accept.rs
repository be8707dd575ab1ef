//! The 202 path of a queued route (SPEC "Queued delivery"): the request that would have been
//! forwarded becomes an [`Entry`], and the sender's answer once the spool has it.

use bytes::{Bytes, BytesMut};
use http::header::{self, HeaderName, HeaderValue};
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use super::Entry;
use crate::headers;

/// `x-hookseal-queued: true` on the 202 of a queued route.
pub const QUEUED: HeaderName = HeaderName::from_static("x-hookseal-queued");
/// `x-hookseal-attempt: <n>` on every delivery attempt (1 on the first).
pub const ATTEMPT: HeaderName = HeaderName::from_static("x-hookseal-attempt");
/// `x-hookseal-queued-at: <unix seconds>` on every delivery attempt.
pub const QUEUED_AT: HeaderName = HeaderName::from_static("x-hookseal-queued-at");

/// The entry for a request about to be forwarded: `headers` as hookseal would send them
/// (in order, duplicates kept), the body's pieces joined.
pub fn entry(
    id: String,
    route: &str,
    method: &http::Method,
    path_and_query: &str,
    headers: &HeaderMap,
    body: &[Bytes],
    queued_at_ms: u64,
) -> Entry {
    let headers = super::HeaderList::from(headers);
    let body = match body {
        [] => Bytes::new(),
        [one] => one.clone(),
        many => {
            let mut b = BytesMut::with_capacity(many.iter().map(Bytes::len).sum());
            for p in many {
                b.extend_from_slice(p);
            }
            b.freeze()
        }
    };
    Entry::new(
        id,
        route,
        method.as_str(),
        path_and_query,
        headers,
        body,
        queued_at_ms,
    )
}

/// `202 {"status":"queued","id":"<id>"}` with `x-hookseal-queued: true` and `x-request-id`.
pub fn accepted(id: &str, request_id: &HeaderValue) -> Response<Full<Bytes>> {
    // Written in one buffer (a `json!` map cost five allocations per 202); the id escaped
    // by serde_json (a string always serializes: the fallback is never taken).
    let mut body = Vec::with_capacity(id.len() + 32);
    body.extend_from_slice(br#"{"status":"queued","id":"#);
    if serde_json::to_writer(&mut body, id).is_err() {
        body.extend_from_slice(b"null");
    }
    body.push(b'}');
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = StatusCode::ACCEPTED;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    h.insert(headers::REQUEST_ID, request_id.clone());
    h.insert(QUEUED, HeaderValue::from_static("true"));
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_entry_keeps_headers_in_order_and_the_body_whole() {
        let mut h = HeaderMap::new();
        h.append("x-a", HeaderValue::from_static("1"));
        h.append("x-a", HeaderValue::from_static("2"));
        h.insert("host", HeaderValue::from_static("app"));
        let body = [Bytes::from_static(b"ab"), Bytes::from_static(b"cd")];
        let e = entry(
            "m1".into(),
            "r",
            &http::Method::POST,
            "/h?q=1",
            &h,
            &body,
            5,
        );
        assert_eq!(&e.body[..], b"abcd");
        assert_eq!(e.path_and_query, "/h?q=1");
        assert_eq!(e.method, "POST");
        let a: Vec<_> = e.headers.iter().filter(|(n, _)| n == b"x-a").collect();
        assert_eq!(a.len(), 2);
        assert_eq!(a[0].1, b"1");
        assert_eq!(a[1].1, b"2");
    }

    #[tokio::test]
    async fn the_answer_is_202_json_with_the_id_escaped() {
        let r = accepted("a\"b", &HeaderValue::from_static("rid"));
        assert_eq!(r.status(), StatusCode::ACCEPTED);
        assert_eq!(r.headers()[QUEUED], "true");
        assert_eq!(r.headers()[headers::REQUEST_ID], "rid");
        let body = http_body_util::BodyExt::collect(r.into_body())
            .await
            .unwrap()
            .to_bytes();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v, serde_json::json!({ "status": "queued", "id": "a\"b" }));
    }
}
