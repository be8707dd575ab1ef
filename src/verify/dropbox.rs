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

use super::body_mac::BodyMac;
use super::check::{handshake_or, required_query, Check, Handshake};
use super::{hex_lower, HmacAlgorithm, Input, MacKey, SchemeDef, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = "X-Dropbox-Signature";

pub(crate) const MAC: BodyMac = BodyMac {
    header: SIG_HEADER,
    name: http::HeaderName::from_static("x-dropbox-signature"),
    prefix: "",
    alg: HmacAlgorithm::Sha256,
    encode: hex_lower,
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "dropbox",
    headers: &[SIG_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Dropbox {
            keys: MAC.keys(secrets),
        }))
    },
    sign: |r| Ok(vec![MAC.signed(r)]),
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
        MAC.verified(&self.keys, input)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let challenge = (input.method == Method::GET).then(|| {
            let mut h = Handshake::text(required_query(input.uri, "challenge")?);
            h.nosniff = true;
            Ok(h)
        });
        handshake_or(challenge, || self.verify(&input, now, tol))
    }
}
