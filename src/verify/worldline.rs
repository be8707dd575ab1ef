//! Worldline Connect (formerly Ingenico ePayments) webhooks (Worldline Connect docs
//! "Webhooks" and "Webhooks event structure"):
//! `X-GCS-Signature: <base64 HMAC-SHA256(body)>` keyed with the webhooks secret key, and
//! `X-GCS-KeyId` naming that key.
//!
//! * Every configured secret is tried (`X-GCS-KeyId` is not matched against the secret ids:
//!   the MAC decides); the header is the standard padded base64 text, compared constant-time.
//! * Handshake: Worldline checks a new endpoint with `GET` carrying
//!   `X-GCS-Webhooks-Endpoint-Verification: V` and wants V echoed in the body: `200 text/plain`
//!   V with `X-Content-Type-Options: nosniff` (the echo is unsigned, as Dropbox's); never
//!   forwarded, also on a route whose `methods` lack GET.
//! * No timestamp and no id header (the event's `id` is in the body).

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::body_mac::BodyMac;
use super::check::{handshake_or, Check, Handshake};
use super::{
    b64_std, required, HmacAlgorithm, Input, MacKey, SchemeDef, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-GCS-Signature";
pub(crate) const KEY_ID_HEADER: &str = "X-GCS-KeyId";
pub(crate) const VERIFICATION_HEADER: &str = "X-GCS-Webhooks-Endpoint-Verification";

pub(crate) const MAC: BodyMac = BodyMac {
    header: SIG_HEADER,
    name: http::HeaderName::from_static("x-gcs-signature"),
    prefix: "",
    alg: HmacAlgorithm::Sha256,
    encode: b64_std,
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "worldline",
    headers: &[SIG_HEADER, KEY_ID_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Worldline {
            keys: MAC.keys(secrets),
        }))
    },
    sign: |r| Ok(vec![MAC.signed(r)]),
    get_handshake: Some(VERIFICATION_HEADER),
    handshakes: true,
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/type"),
    ..SchemeDef::BASE
};

#[derive(Debug)]
struct Worldline {
    keys: Vec<MacKey>,
}

impl Verifier for Worldline {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        MAC.verified(&self.keys, input)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let verification = (input.method == Method::GET).then(|| {
            let mut h = Handshake::text(required(input.headers, VERIFICATION_HEADER)?.to_owned());
            h.nosniff = true;
            Ok(h)
        });
        handshake_or(verification, || self.verify(&input, now, tol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme, sn};
    use crate::verify::{Checked, SchemeOptions};

    #[test]
    fn valid_tampered_wrong_secret_missing_and_the_endpoint_check() {
        let s = scheme(
            sn("worldline"),
            &SchemeOptions::default(),
            &["old", "wl-key"],
        );
        let body = br#"{"apiVersion":"v1","id":"97a4","type":"payment.created"}"#;
        let good = MAC.value(b"wl-key", body);
        let run =
            |hs: &[(&str, &str)], b: &[u8]| s.verify(&req_full("POST", "/wl", hs, b).input(), 0);
        let h = [(SIG_HEADER, good.as_str()), (KEY_ID_HEADER, "k1")];
        assert_eq!(run(&h, body).unwrap().key_index, 1);
        assert_eq!(run(&h, b"{}").unwrap_err(), VerifyError::BadSignature);
        let wrong = MAC.value(b"other", body);
        assert_eq!(
            run(&[(SIG_HEADER, wrong.as_str())], body).unwrap_err(),
            VerifyError::BadSignature
        );
        let unpadded = good.trim_end_matches('=').to_owned();
        assert_eq!(
            run(&[(SIG_HEADER, unpadded.as_str())], body).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&[], body).unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
        // The endpoint check: the value echoed as text/plain with nosniff.
        let r = req_full("GET", "/wl", &[(VERIFICATION_HEADER, "b3f2-7a")], b"");
        match s.check(r.input(), 0) {
            Check::Ready(Ok(Checked::Handshake(h))) => {
                assert_eq!(&h.body[..], b"b3f2-7a");
                assert_eq!(h.content_type, "text/plain");
                assert!(h.nosniff);
            }
            _ => panic!("the endpoint verification is answered"),
        }
        let r = req_full("GET", "/wl", &[], b"");
        assert!(matches!(
            s.check(r.input(), 0),
            Check::Ready(Err(VerifyError::MissingSignature(VERIFICATION_HEADER)))
        ));
    }
}
