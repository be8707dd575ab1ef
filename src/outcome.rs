//! Why hookseal answers a request itself: each stage's typed error, wrapped in one
//! [`Rejection`], and the one place that maps it to reason, status, body and extra headers.

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;

use crate::body::BodyError;
use crate::error::Reason;
use crate::headers;
use crate::metrics::Outcome;
use crate::route::Miss;
use crate::upstream::UpstreamError;
use crate::verify::VerifyError;

/// Step 1b: a request hookseal cannot pass on as the app would read it, or from a client the
/// route does not allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// A duplicate, empty or conflicting `Host`/`:authority`, or one with userinfo.
    BadHost,
    /// A `Transfer-Encoding` other than a single `chunked`.
    UnsupportedTransferCoding,
    /// The client address is outside the route's `allow_from`.
    IpNotAllowed,
}

/// Step 4: what the replay store said about the message id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayRefusal {
    /// Already delivered.
    Duplicate,
    /// Another delivery of the same id is being forwarded.
    InFlight,
    /// The store could not be asked (its error goes on the log line only).
    StoreUnavailable,
}

/// A queued route could not store the request (SPEC "Queued delivery").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueRefusal {
    /// At `[queue] max_bytes` or `max_entries`: nothing stored, the sender keeps the event.
    Full,
    /// The store failed or could not be reached.
    Unavailable,
}

/// Why a request was not answered by the app: the typed error of the stage that stopped it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rejection {
    Route(Miss),
    Request(RequestError),
    Body(BodyError),
    Verify(VerifyError),
    Replay(ReplayRefusal),
    Upstream(UpstreamError),
    /// Step 3b: verified, of a type the route's `events` list leaves out (not a failure:
    /// answered `200 {"status":"filtered"}`, reason `ok`).
    Filtered,
    Queue(QueueRefusal),
    /// SNS `confirm = "auto"`: the `SubscribeURL` GET failed (SNS retries the confirmation).
    ConfirmFailed,
}

/// Everything a [`Rejection`] means for the answer and the request's record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub reason: Reason,
    pub status: StatusCode,
    /// The `result` label: `forwarded` for an app that could not be reached (an observe
    /// route counts it `observed`), `duplicate`, else `rejected`.
    pub outcome: Outcome,
    /// `Connection: close`: the rest of the request was not read, or the server is saturated.
    pub close: bool,
    /// `Retry-After: 1`.
    pub retry_after: bool,
    /// Why, beyond the reason, for the log line; never request data.
    pub detail: Option<&'static str>,
}

impl Rejection {
    /// The one mapping from a stage's error to what hookseal answers.
    pub fn answer(self) -> Answer {
        use StatusCode as S;
        let (reason, status, outcome, close) = match self {
            Rejection::Route(Miss::NoRoute) => (Reason::NoRoute, S::NOT_FOUND, REJ, false),
            Rejection::Route(Miss::Ambiguous) => {
                (Reason::AmbiguousPath, S::BAD_REQUEST, REJ, false)
            }
            Rejection::Route(Miss::MethodNotAllowed) => {
                (Reason::MethodNotAllowed, S::METHOD_NOT_ALLOWED, REJ, false)
            }
            Rejection::Request(RequestError::BadHost) => {
                (Reason::BadHost, S::BAD_REQUEST, REJ, true)
            }
            Rejection::Request(RequestError::UnsupportedTransferCoding) => (
                Reason::UnsupportedTransferCoding,
                S::NOT_IMPLEMENTED,
                REJ,
                true,
            ),
            Rejection::Request(RequestError::IpNotAllowed) => {
                (Reason::IpNotAllowed, S::FORBIDDEN, REJ, false)
            }
            Rejection::Body(BodyError::TooLarge) => {
                (Reason::BodyTooLarge, S::PAYLOAD_TOO_LARGE, REJ, true)
            }
            Rejection::Body(BodyError::Timeout) => {
                (Reason::BodyTimeout, S::REQUEST_TIMEOUT, REJ, true)
            }
            Rejection::Body(BodyError::Incomplete) => {
                (Reason::BodyIncomplete, S::BAD_REQUEST, REJ, true)
            }
            Rejection::Body(BodyError::Overloaded) => {
                (Reason::Overloaded, S::SERVICE_UNAVAILABLE, REJ, true)
            }
            Rejection::Verify(VerifyError::MissingSignature(_)) => {
                (Reason::MissingSignature, S::BAD_REQUEST, REJ, false)
            }
            Rejection::Verify(VerifyError::MalformedSignature(_)) => {
                (Reason::MalformedSignature, S::BAD_REQUEST, REJ, false)
            }
            Rejection::Verify(VerifyError::StaleTimestamp { .. }) => {
                (Reason::StaleTimestamp, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::FutureTimestamp { .. }) => {
                (Reason::FutureTimestamp, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::BadSignature) => {
                (Reason::BadSignature, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::TopicNotAllowed) => {
                (Reason::TopicNotAllowed, S::FORBIDDEN, REJ, false)
            }
            Rejection::Verify(VerifyError::BadCertUrl) => {
                (Reason::BadCertUrl, S::FORBIDDEN, REJ, false)
            }
            Rejection::Verify(VerifyError::CertUnavailable) => {
                (Reason::CertUnavailable, S::SERVICE_UNAVAILABLE, REJ, false)
            }
            Rejection::Verify(VerifyError::BadToken) => {
                (Reason::BadToken, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::TokenExpired) => {
                (Reason::TokenExpired, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::ClaimMismatch) => {
                (Reason::ClaimMismatch, S::UNAUTHORIZED, REJ, false)
            }
            Rejection::Verify(VerifyError::KeysUnavailable) => {
                (Reason::KeysUnavailable, S::SERVICE_UNAVAILABLE, REJ, false)
            }
            Rejection::Verify(VerifyError::BadVerifyToken) => {
                (Reason::BadVerifyToken, S::FORBIDDEN, REJ, false)
            }
            Rejection::ConfirmFailed => (Reason::ConfirmFailed, S::BAD_GATEWAY, REJ, false),
            Rejection::Replay(ReplayRefusal::Duplicate) => {
                (Reason::Duplicate, S::OK, Outcome::Duplicate, false)
            }
            Rejection::Replay(ReplayRefusal::InFlight) => {
                (Reason::InFlight, S::CONFLICT, REJ, false)
            }
            Rejection::Replay(ReplayRefusal::StoreUnavailable) => (
                Reason::ReplayStoreUnavailable,
                S::SERVICE_UNAVAILABLE,
                REJ,
                false,
            ),
            Rejection::Upstream(UpstreamError::Busy) => {
                (Reason::Overloaded, S::SERVICE_UNAVAILABLE, REJ, true)
            }
            Rejection::Upstream(UpstreamError::Unavailable) => (
                Reason::UpstreamUnavailable,
                S::BAD_GATEWAY,
                Outcome::Forwarded,
                false,
            ),
            Rejection::Upstream(UpstreamError::Timeout) => (
                Reason::UpstreamTimeout,
                S::GATEWAY_TIMEOUT,
                Outcome::Forwarded,
                false,
            ),
            Rejection::Filtered => (Reason::Ok, S::OK, Outcome::Filtered, false),
            Rejection::Queue(QueueRefusal::Full) => {
                (Reason::QueueFull, S::SERVICE_UNAVAILABLE, REJ, false)
            }
            Rejection::Queue(QueueRefusal::Unavailable) => {
                (Reason::QueueUnavailable, S::SERVICE_UNAVAILABLE, REJ, false)
            }
        };
        let detail = match self {
            Rejection::Body(BodyError::Overloaded) => Some("limits.max_buffered_bytes exhausted"),
            Rejection::Upstream(UpstreamError::Busy) => {
                Some("no app connection free within upstream.timeout")
            }
            _ => None,
        };
        Answer {
            reason,
            status,
            outcome,
            close,
            retry_after: matches!(reason, Reason::Overloaded | Reason::QueueFull),
            detail,
        }
    }

    /// The response hookseal writes itself: the status, the JSON body, `x-request-id` and the
    /// extra headers of [`Rejection::answer`].
    pub fn response(self, route: Option<&str>, request_id: &HeaderValue) -> Response<Full<Bytes>> {
        let a = self.answer();
        let duplicate = a.reason == Reason::Duplicate;
        let body = if a.outcome == Outcome::Filtered {
            Bytes::from_static(b"{\"status\":\"filtered\"}")
        } else {
            body(a.reason, route)
        };
        let mut resp = Response::new(Full::new(body));
        *resp.status_mut() = a.status;
        let h = resp.headers_mut();
        h.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        h.insert(headers::REQUEST_ID, request_id.clone());
        if a.close {
            h.insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        if a.retry_after {
            // A full spool drains at the app's pace: ask for a longer pause than a busy moment.
            let after = if a.reason == Reason::QueueFull {
                QUEUE_FULL_RETRY_AFTER
            } else {
                "1"
            };
            h.insert(header::RETRY_AFTER, HeaderValue::from_static(after));
        }
        if duplicate {
            h.insert(headers::DUPLICATE, HeaderValue::from_static("true"));
        }
        resp
    }
}

const REJ: Outcome = Outcome::Rejected;

/// `Retry-After` of a 503 `queue_full`, in seconds.
pub const QUEUE_FULL_RETRY_AFTER: &str = "30";

/// The JSON body: `{"error":"<reason>","route":"<name>"|null}`, or `{"status":"duplicate"}`.
/// Never contains a signature, a secret or an expected value.
fn body(reason: Reason, route: Option<&str>) -> Bytes {
    if reason == Reason::Duplicate {
        return Bytes::from_static(b"{\"status\":\"duplicate\"}");
    }
    let route = match route {
        // Route names are restricted to [A-Za-z0-9._-] by config validation: no escaping.
        Some(r) => format!("\"{r}\""),
        None => "null".to_owned(),
    };
    Bytes::from(format!(
        "{{\"error\":\"{}\",\"route\":{route}}}",
        reason.as_str()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_is_json() {
        let b = body(Reason::BadSignature, Some("gh"));
        let v: serde_json::Value = serde_json::from_slice(&b).unwrap();
        assert_eq!(v["error"], "bad_signature");
        assert_eq!(v["route"], "gh");
        let v: serde_json::Value = serde_json::from_slice(&body(Reason::NoRoute, None)).unwrap();
        assert!(v["route"].is_null());
    }

    /// One of each stage error.
    const ALL: [Rejection; 33] = [
        Rejection::Route(Miss::NoRoute),
        Rejection::Route(Miss::Ambiguous),
        Rejection::Route(Miss::MethodNotAllowed),
        Rejection::Request(RequestError::BadHost),
        Rejection::Request(RequestError::UnsupportedTransferCoding),
        Rejection::Request(RequestError::IpNotAllowed),
        Rejection::Body(BodyError::TooLarge),
        Rejection::Body(BodyError::Timeout),
        Rejection::Body(BodyError::Incomplete),
        Rejection::Body(BodyError::Overloaded),
        Rejection::Verify(VerifyError::MissingSignature("x-signature")),
        Rejection::Verify(VerifyError::MalformedSignature("x-signature")),
        Rejection::Verify(VerifyError::StaleTimestamp { skew: -600 }),
        Rejection::Verify(VerifyError::FutureTimestamp { skew: 600 }),
        Rejection::Verify(VerifyError::BadSignature),
        Rejection::Verify(VerifyError::TopicNotAllowed),
        Rejection::Verify(VerifyError::BadCertUrl),
        Rejection::Verify(VerifyError::CertUnavailable),
        Rejection::Verify(VerifyError::BadToken),
        Rejection::Verify(VerifyError::TokenExpired),
        Rejection::Verify(VerifyError::ClaimMismatch),
        Rejection::Verify(VerifyError::KeysUnavailable),
        Rejection::Verify(VerifyError::BadVerifyToken),
        Rejection::ConfirmFailed,
        Rejection::Replay(ReplayRefusal::Duplicate),
        Rejection::Replay(ReplayRefusal::InFlight),
        Rejection::Replay(ReplayRefusal::StoreUnavailable),
        Rejection::Upstream(UpstreamError::Busy),
        Rejection::Upstream(UpstreamError::Unavailable),
        Rejection::Upstream(UpstreamError::Timeout),
        Rejection::Filtered,
        Rejection::Queue(QueueRefusal::Full),
        Rejection::Queue(QueueRefusal::Unavailable),
    ];

    #[test]
    fn every_reason_but_ok_is_some_stage_error() {
        for reason in Reason::ALL {
            let found = ALL
                .iter()
                .any(|r| r.answer().reason == reason && *r != Rejection::Filtered);
            assert_eq!(found, reason != Reason::Ok, "{}", reason.as_str());
        }
    }

    #[test]
    fn responses_carry_the_status_body_and_extra_headers() {
        let id = HeaderValue::from_static("req-1");
        for r in ALL {
            let a = r.answer();
            let resp = r.response(Some("gh"), &id);
            let h = resp.headers();
            assert_eq!(resp.status(), a.status);
            assert_eq!(h[headers::REQUEST_ID], "req-1");
            assert_eq!(h[header::CONTENT_TYPE], "application/json");
            assert_eq!(h.contains_key(header::CONNECTION), a.close);
            assert_eq!(h.contains_key(header::RETRY_AFTER), a.retry_after);
            assert_eq!(
                h.contains_key(headers::DUPLICATE),
                a.reason == Reason::Duplicate
            );
        }
        // The unread rest of a body, and saturation, close the connection.
        let over = Rejection::Upstream(UpstreamError::Busy).response(None, &id);
        assert_eq!(over.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(over.headers()[header::RETRY_AFTER], "1");
        assert_eq!(over.headers()[header::CONNECTION], "close");
        // A filtered request is answered 200 with its own body, reason ok.
        let filtered = Rejection::Filtered.response(Some("gh"), &id);
        assert_eq!(filtered.status(), StatusCode::OK);
        assert!(!filtered.headers().contains_key(headers::DUPLICATE));
        let a = Rejection::Filtered.answer();
        assert_eq!((a.reason, a.outcome), (Reason::Ok, Outcome::Filtered));
        let dup = Rejection::Replay(ReplayRefusal::Duplicate).answer();
        assert_eq!(
            (dup.status, dup.outcome),
            (StatusCode::OK, Outcome::Duplicate)
        );
    }
}
