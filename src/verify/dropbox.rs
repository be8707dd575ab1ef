//! Dropbox (Dropbox developer docs, "Webhooks" reference and tutorial):
//! `X-Dropbox-Signature: <64 lowercase hex>` = HMAC-SHA256 of the body keyed with the app
//! secret.
//!
//! * Handshake: `GET ?challenge=C` (the verification request, unsigned) is answered
//!   `200 text/plain` with C as it is and `X-Content-Type-Options: nosniff`, as Dropbox asks
//!   (no reflected XSS); never forwarded, also on a route whose `methods` lack GET.
//! * No timestamp, no message id: dedupe is off unless configured elsewhere.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::check::{query_param, Check, Checked, Handshake};
use super::{
    hex_lower, mac_keys, match_encoded, required, HmacAlgorithm, Input, MacKey, SchemeDef,
    SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Dropbox-Signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "dropbox",
    headers: &[SIG_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Dropbox {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        }))
    },
    sign: |r| {
        let mac = MacKey::new(HmacAlgorithm::Sha256, r.secret).compute(&[r.body]);
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            hex_lower(mac.as_bytes()),
        )])
    },
    get_handshake: Some("challenge"),
    handshakes: true,
    // `X-Dropbox-Signature`: HMAC of the raw body; the notification has no event type.
    signed_content: super::SignedContent::Body { id: false },
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Dropbox {
    keys: Vec<MacKey>,
}

impl Verifier for Dropbox {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let key_index = match_encoded(&self.keys, &[], input.body, &[sig.as_bytes()], hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: None,
        })
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        if input.method == Method::GET {
            let challenge = match query_param(input.uri, "challenge") {
                Ok(Some(c)) if !c.is_empty() => c,
                Ok(_) => return Check::Ready(Err(VerifyError::MissingSignature("challenge"))),
                Err(e) => return Check::Ready(Err(e)),
            };
            let mut h = Handshake::text(challenge);
            h.nosniff = true;
            return Check::Ready(Ok(Checked::Handshake(h)));
        }
        Check::Ready(self.verify(&input, now, tol).map(Checked::Verified))
    }
}
