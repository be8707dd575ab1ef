//! Reasons: every outcome code of SPEC.md (its status and body: [`crate::outcome::Rejection`]).

/// The `reason` of a request's outcome: a rejection code, `ok` or `duplicate`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// Forwarded and answered by the upstream (whatever its status).
    Ok,
    /// Already delivered: answered 200 without forwarding.
    Duplicate,
    NoRoute,
    /// Readings of the path that servers use lead to different routes (`route.rs`).
    AmbiguousPath,
    MethodNotAllowed,
    IpNotAllowed,
    BodyTooLarge,
    BodyTimeout,
    BodyIncomplete,
    MissingSignature,
    MalformedSignature,
    StaleTimestamp,
    FutureTimestamp,
    BadSignature,
    InFlight,
    ReplayStoreUnavailable,
    UpstreamUnavailable,
    UpstreamTimeout,
    /// A duplicate, empty or conflicting `Host`/`:authority`, or one with userinfo.
    BadHost,
    /// A `Transfer-Encoding` other than a single `chunked`.
    UnsupportedTransferCoding,
    /// Over a capacity limit: the buffered-body budget, or no app connection free in time.
    Overloaded,
    /// A queued route's spool is at `[queue] max_bytes` or `max_entries`.
    QueueFull,
    /// A queued route's spool could not store the request (Redis down, disk error).
    QueueUnavailable,
    /// SNS: `TopicArn` not on the route's `topics`.
    TopicNotAllowed,
    /// SNS: `SigningCertURL` not on the route's `cert_host`.
    BadCertUrl,
    /// SNS: the signing certificate could not be fetched or verified.
    CertUnavailable,
    /// JWT: unparseable, unknown key, bad signature, algorithm not allowed.
    BadToken,
    /// JWT: `exp`/`nbf`/`iat` out of range.
    TokenExpired,
    /// JWT: `iss`, `aud`, a required claim or the body hash does not match.
    ClaimMismatch,
    /// JWT: no usable keys.
    KeysUnavailable,
    /// Meta's `hub.verify_token` or Microsoft Graph's `clientState` does not match.
    BadVerifyToken,
    /// SNS `confirm = "auto"`: the `SubscribeURL` GET failed.
    ConfirmFailed,
}

impl Reason {
    /// Every reason, in a fixed order (metric handle tables are indexed by it).
    pub const ALL: [Reason; 32] = [
        Reason::Ok,
        Reason::Duplicate,
        Reason::NoRoute,
        Reason::AmbiguousPath,
        Reason::MethodNotAllowed,
        Reason::IpNotAllowed,
        Reason::BodyTooLarge,
        Reason::BodyTimeout,
        Reason::BodyIncomplete,
        Reason::MissingSignature,
        Reason::MalformedSignature,
        Reason::StaleTimestamp,
        Reason::FutureTimestamp,
        Reason::BadSignature,
        Reason::InFlight,
        Reason::ReplayStoreUnavailable,
        Reason::UpstreamUnavailable,
        Reason::UpstreamTimeout,
        Reason::BadHost,
        Reason::UnsupportedTransferCoding,
        Reason::Overloaded,
        Reason::QueueFull,
        Reason::QueueUnavailable,
        Reason::TopicNotAllowed,
        Reason::BadCertUrl,
        Reason::CertUnavailable,
        Reason::BadToken,
        Reason::TokenExpired,
        Reason::ClaimMismatch,
        Reason::KeysUnavailable,
        Reason::BadVerifyToken,
        Reason::ConfirmFailed,
    ];

    /// The code used in JSON bodies, `x-hookseal-reason` and the `reason` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Ok => "ok",
            Reason::Duplicate => "duplicate",
            Reason::NoRoute => "no_route",
            Reason::AmbiguousPath => "ambiguous_path",
            Reason::MethodNotAllowed => "method_not_allowed",
            Reason::IpNotAllowed => "ip_not_allowed",
            Reason::BodyTooLarge => "body_too_large",
            Reason::BodyTimeout => "body_timeout",
            Reason::BodyIncomplete => "body_incomplete",
            Reason::MissingSignature => "missing_signature",
            Reason::MalformedSignature => "malformed_signature",
            Reason::StaleTimestamp => "stale_timestamp",
            Reason::FutureTimestamp => "future_timestamp",
            Reason::BadSignature => "bad_signature",
            Reason::InFlight => "in_flight",
            Reason::ReplayStoreUnavailable => "replay_store_unavailable",
            Reason::UpstreamUnavailable => "upstream_unavailable",
            Reason::UpstreamTimeout => "upstream_timeout",
            Reason::BadHost => "bad_host",
            Reason::UnsupportedTransferCoding => "unsupported_transfer_coding",
            Reason::Overloaded => "overloaded",
            Reason::QueueFull => "queue_full",
            Reason::QueueUnavailable => "queue_unavailable",
            Reason::TopicNotAllowed => "topic_not_allowed",
            Reason::BadCertUrl => "bad_cert_url",
            Reason::CertUnavailable => "cert_unavailable",
            Reason::BadToken => "bad_token",
            Reason::TokenExpired => "token_expired",
            Reason::ClaimMismatch => "claim_mismatch",
            Reason::KeysUnavailable => "keys_unavailable",
            Reason::BadVerifyToken => "bad_verify_token",
            Reason::ConfirmFailed => "confirm_failed",
        }
    }

    /// Position in [`Reason::ALL`].
    pub fn index(self) -> usize {
        Reason::ALL.iter().position(|r| *r == self).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn index_matches_all() {
        for (i, r) in Reason::ALL.iter().enumerate() {
            assert_eq!(r.index(), i);
        }
    }
}
