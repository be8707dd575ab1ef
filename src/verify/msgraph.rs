//! Microsoft Graph change notifications (Microsoft Learn, "Set up notifications for changes
//! in resource data": notification endpoint validation and the `clientState` check). Graph
//! signs nothing: each notification carries the subscription's `clientState`.
//!
//! * Handshake: a request with `?validationToken=V` → `200 text/plain` with V URL-decoded
//!   (Graph wants it back within 10 s), plus `X-Content-Type-Options: nosniff` (the token is
//!   reflected unauthenticated); never forwarded.
//! * Notifications: the JSON body's `value` array; every item's `clientState` must equal the
//!   route's `client_state` (required; a secret source), compared in constant time → else
//!   403 `bad_verify_token`; a body that is not such JSON is `malformed_signature`.
//! * No `secrets`. The body is not authenticated (`body_signed = false`). No timestamp, no
//!   message id.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::check::{handshake_or, query_param, Check, Handshake};
use super::registry::SecretUse;
use super::{ct_eq, Input, SchemeDef, SchemeError, Verified, Verifier, VerifyError};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "msgraph",
    headers: &[],
    options: &["client_state"],
    build: |o, _| {
        let client_state = o
            .engine
            .client_state
            .clone()
            .filter(|t| !t.is_empty())
            .ok_or_else(|| SchemeError::config("scheme msgraph needs client_state"))?;
        Ok(Arc::new(MsGraph { client_state }))
    },
    // The secret travels in the body's `clientState`: there is no header to add.
    sign: |_| Ok(Vec::new()),
    body_signed: false,
    secrets: SecretUse::Refused,
    handshakes: true,
    // A client-state token, not a MAC (`signed_content` stays `Unsupported`); a notification
    // is a `value` list with no single type.
    ..SchemeDef::BASE
};

struct MsGraph {
    client_state: Vec<u8>,
}

impl std::fmt::Debug for MsGraph {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MsGraph(<redacted>)")
    }
}

#[derive(Deserialize)]
struct Notifications {
    value: Vec<Item>,
}

#[derive(Deserialize)]
struct Item {
    #[serde(rename = "clientState")]
    client_state: Option<String>,
}

const FIELD: &str = "clientState";

impl Verifier for MsGraph {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let body = input.body.joined();
        let n: Notifications =
            serde_json::from_slice(&body).map_err(|_| VerifyError::MalformedSignature(FIELD))?;
        if n.value.is_empty() {
            return Err(VerifyError::MalformedSignature(FIELD));
        }
        let mut all = subtle::Choice::from(1);
        for item in &n.value {
            let got = item.client_state.as_deref().unwrap_or("");
            all &= ct_eq(got.as_bytes(), &self.client_state);
        }
        if !bool::from(all) {
            return Err(VerifyError::BadVerifyToken);
        }
        Ok(Verified {
            key_index: 0,
            id: None,
            timestamp: None,
        })
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        // `?validationToken=` (even empty) is the handshake; sent twice, a malformed one.
        let handshake = query_param(input.uri, "validationToken")
            .transpose()
            .map(|token| {
                let mut h = Handshake::text(token?);
                h.nosniff = true;
                Ok(h)
            });
        handshake_or(handshake, || self.verify(&input, now, tol))
    }
}
