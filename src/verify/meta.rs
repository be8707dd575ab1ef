//! Meta: WhatsApp Cloud API, Instagram, Messenger (Meta for Developers, "Webhooks: Getting
//! started", verification requests and event notifications). POSTs carry
//! `X-Hub-Signature-256: sha256=<64 lowercase hex>` = HMAC-SHA256 of the body keyed with the
//! app secret (`secrets`).
//!
//! * Handshake: `GET ?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C`. T is compared
//!   in constant time with the route's `verify_token` (required; a secret source): equal →
//!   `200 text/plain` with C as it is (never JSON-quoted: Meta compares the bytes); a wrong
//!   token or another mode → 403 `bad_verify_token`. Answered also on a route whose `methods`
//!   lack GET; never forwarded.
//! * No timestamp, no message id.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::check::{handshake_or, query_param, Check, Handshake};
use super::{ct_eq, Input, MacKey, SchemeDef, SchemeError, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = super::github::SIG_HEADER;

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "meta",
    headers: &[SIG_HEADER],
    options: &["verify_token"],
    build: |o, secrets| {
        let verify_token = o
            .engine
            .verify_token
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SchemeError::config("scheme meta needs verify_token"))?;
        Ok(Arc::new(Meta {
            keys: super::github::MAC.keys(secrets),
            verify_token,
        }))
    },
    sign: |r| Ok(vec![super::github::MAC.signed(r)]),
    get_handshake: Some("hub.verify_token"),
    handshakes: true,
    // `X-Hub-Signature-256`: HMAC of the raw body. Meta names no single event type field
    // (`object` plus a list of `entry` changes).
    signed_content: super::SignedContent::Body { id: false },
    ..SchemeDef::BASE
};

struct Meta {
    keys: Vec<MacKey>,
    verify_token: Vec<u8>,
}

impl std::fmt::Debug for Meta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Meta")
            .field("keys", &self.keys)
            .field("verify_token", &"<redacted>")
            .finish()
    }
}

impl Meta {
    fn handshake(&self, input: &Input<'_>) -> Result<Handshake, VerifyError> {
        let token = query_param(input.uri, "hub.verify_token")?;
        let mode = query_param(input.uri, "hub.mode")?;
        let challenge = query_param(input.uri, "hub.challenge")?;
        let Some(token) = token else {
            return Err(VerifyError::MissingSignature("hub.verify_token"));
        };
        let matches = bool::from(ct_eq(token.as_bytes(), &self.verify_token));
        if !matches || mode.as_deref() != Some("subscribe") {
            return Err(VerifyError::BadVerifyToken);
        }
        match challenge {
            Some(c) if !c.is_empty() => Ok(Handshake::text(c)),
            _ => Err(VerifyError::MissingSignature("hub.challenge")),
        }
    }
}

impl Verifier for Meta {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        super::github::MAC.verified(&self.keys, input)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let handshake = (input.method == Method::GET).then(|| self.handshake(&input));
        handshake_or(handshake, || self.verify(&input, now, tol))
    }
}
