//! What a verifier answers besides "verified": a handshake hookseal answers itself (SPEC
//! "Handshakes"), an SNS subscription to confirm once, or a check that must wait for a fetch
//! (JWKS, SNS certificate).
//!
//! The HMAC schemes answer [`Check::Ready`] from [`super::Verifier::check`]'s default: no
//! allocation, no boxed future. Only schemes that may fetch (`sns`, `jwt`, `google-pubsub`,
//! `plaid`) return [`Check::Pending`], whose future is bounded by the fetch client's
//! timeouts.

use std::future::Future;
use std::pin::Pin;

use bytes::Bytes;
use http::StatusCode;

use super::{Verified, VerifyError};

/// A response hookseal writes itself for a provider's handshake; never forwarded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Handshake {
    pub status: StatusCode,
    /// The `Content-Type` of the answer.
    pub content_type: &'static str,
    /// The exact body bytes.
    pub body: Bytes,
    /// `X-Content-Type-Options: nosniff`: set on every `text/plain` echo (Dropbox asks for it;
    /// for the others it keeps a browser from sniffing the sender's text as HTML).
    pub nosniff: bool,
    /// One more response header (Asana's `X-Hook-Secret` echo), if the provider wants one.
    pub header: Option<(http::HeaderName, http::HeaderValue)>,
}

impl Handshake {
    /// 200 `text/plain` with `body` as it is, and `nosniff`.
    pub fn text(body: impl Into<Bytes>) -> Handshake {
        Handshake {
            status: StatusCode::OK,
            content_type: "text/plain",
            body: body.into(),
            nosniff: true,
            header: None,
        }
    }

    /// 200 `application/json` with `value` serialized.
    pub fn json(value: &serde_json::Value) -> Handshake {
        Handshake {
            status: StatusCode::OK,
            content_type: "application/json",
            body: Bytes::from(value.to_string()),
            nosniff: false,
            header: None,
        }
    }
}

/// The GET of a verified SNS `SubscriptionConfirmation`'s `SubscribeURL`, run by the proxy
/// only when it claimed the message id (once across replicas). `Err`: why, for the log line.
pub type Confirmation = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'static>>;

/// What a request proved.
pub enum Checked {
    /// A delivery for the app.
    Verified(Verified),
    /// A provider handshake, answered by hookseal.
    Handshake(Handshake),
    /// A verified subscription confirmation (its id in `Verified`) that hookseal confirms.
    Confirm(Verified, Confirmation),
}

impl std::fmt::Debug for Checked {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Checked::Verified(v) => f.debug_tuple("Verified").field(v).finish(),
            Checked::Handshake(h) => f.debug_tuple("Handshake").field(h).finish(),
            Checked::Confirm(v, _) => f.debug_tuple("Confirm").field(v).finish(),
        }
    }
}

/// A check's result: ready now (every HMAC and token scheme), or after a fetch.
pub enum Check<'a> {
    Ready(Result<Checked, VerifyError>),
    Pending(Pin<Box<dyn Future<Output = Result<Checked, VerifyError>> + Send + 'a>>),
}

impl Check<'_> {
    /// The result, waiting for the fetch if there is one.
    pub async fn resolve(self) -> Result<Checked, VerifyError> {
        match self {
            Check::Ready(r) => r,
            Check::Pending(f) => f.await,
        }
    }
}

/// The one value of query parameter `name` (form-decoded): `Ok(None)` when absent, `Err`
/// when it is sent twice (which copy the app would read is anyone's guess).
pub(crate) fn query_param(
    uri: &http::Uri,
    name: &'static str,
) -> Result<Option<String>, VerifyError> {
    let Some(query) = uri.query() else {
        return Ok(None);
    };
    let mut found = None;
    for (k, v) in form_urlencoded::parse(query.as_bytes()) {
        if k == name {
            if found.is_some() {
                return Err(VerifyError::MalformedSignature(name));
            }
            found = Some(v.into_owned());
        }
    }
    Ok(found)
}

/// The one value of query parameter `name`, which must be there and not empty (a handshake's
/// challenge): absent or empty → missing, sent twice → malformed.
pub(crate) fn required_query(uri: &http::Uri, name: &'static str) -> Result<String, VerifyError> {
    match query_param(uri, name)? {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VerifyError::MissingSignature(name)),
    }
}

/// The check of a scheme with a handshake: `handshake` (`Some` when the request is one) is
/// answered as it is, never forwarded; any other request is a delivery, `verify`'d.
pub(crate) fn handshake_or(
    handshake: Option<Result<Handshake, VerifyError>>,
    verify: impl FnOnce() -> Result<Verified, VerifyError>,
) -> Check<'static> {
    Check::Ready(match handshake {
        Some(answer) => answer.map(Checked::Handshake),
        None => verify().map(Checked::Verified),
    })
}

/// Handshake bodies are small: a larger body is never one (and is not parsed here).
const MAX_HANDSHAKE_BODY: usize = 16 * 1024;

/// The body parsed as `T` when it is small and contains `marker` (a cheap test that skips
/// the JSON parse for ordinary deliveries); `None` otherwise.
pub(crate) fn small_json<T: serde::de::DeserializeOwned>(
    body: super::Body<'_>,
    marker: &[u8],
) -> Option<T> {
    if body.len() > MAX_HANDSHAKE_BODY {
        return None;
    }
    let bytes = body.joined();
    if !bytes.windows(marker.len()).any(|w| w == marker) {
        return None;
    }
    serde_json::from_slice(&bytes).ok()
}
