//! Okta event hooks (Okta developer docs, "Event hooks": one-time verification request and
//! the authentication header). Okta signs nothing: it sends the header value configured on
//! the hook (`Authorization` here) with every request.
//!
//! * `secrets` optional: when given, `Authorization` must equal one of them (constant time)
//!   on every request, the verification GET included; without secrets, deliveries pass
//!   unchecked (`x-hookseal-verified: true` means only "a well-formed Okta request").
//! * Handshake: `GET` with `X-Okta-Verification-Challenge: C` → `200 application/json
//!   {"verification": C}`; never forwarded, also on a route whose `methods` lack GET.
//! * The body is not authenticated (`body_signed = false`). No timestamp, no message id.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::check::{handshake_or, Check, Handshake};
use super::registry::SecretUse;
use super::{
    ct_eq, first_match, required, Input, SchemeDef, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const AUTH_HEADER: &str = "Authorization";
pub(crate) const CHALLENGE_HEADER: &str = "X-Okta-Verification-Challenge";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "okta",
    headers: &[AUTH_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Okta {
            secrets: secrets.iter().map(|s| s.bytes.clone()).collect(),
        }))
    },
    sign: |r| {
        Ok(vec![SignRequest::header(
            AUTH_HEADER,
            String::from_utf8_lossy(r.secret).into_owned(),
        )])
    },
    body_signed: false,
    secrets: SecretUse::Optional,
    get_handshake: Some(CHALLENGE_HEADER),
    handshakes: true,
    // A shared token, not a MAC (`signed_content` stays `Unsupported`); an event hook carries a
    // list of events.
    ..SchemeDef::BASE
};

struct Okta {
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Okta {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Okta({} secrets, <redacted>)", self.secrets.len())
    }
}

impl Verifier for Okta {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        if self.secrets.is_empty() {
            super::single(input.headers, AUTH_HEADER)?;
            return Ok(Verified {
                key_index: 0,
                id: None,
                timestamp: None,
            });
        }
        let auth = required(input.headers, AUTH_HEADER)?;
        let key_index = first_match(self.secrets.len(), |i| {
            ct_eq(auth.as_bytes(), &self.secrets[i])
        })
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: None,
        })
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let handshake = (input.method == Method::GET).then(|| {
            let challenge = required(input.headers, CHALLENGE_HEADER)?;
            self.verify(&input, now, tol)?;
            Ok(Handshake::json(
                &serde_json::json!({ "verification": challenge }),
            ))
        });
        handshake_or(handshake, || self.verify(&input, now, tol))
    }
}
