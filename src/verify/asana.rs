//! Asana webhooks (Asana developer docs, "Webhooks guide" and "Establish a webhook"):
//! `X-Hook-Signature: <lowercase hex HMAC-SHA256(body)>`, keyed with the secret Asana sent in
//! the webhook's handshake.
//!
//! * Events: `X-Hook-Signature` required (absent → 400 missing), compared constant-time with the
//!   lowercase hex MAC (another case → 401, as Asana's examples compare `digest('hex')`). No
//!   timestamp, no id header (Asana designs for at-most-once delivery; nothing to dedupe on).
//! * **The handshake** (`X-Hook-Secret`, a POST while the webhook is being created): Asana
//!   wants `200`/`204` with the same `X-Hook-Secret` echoed, and that secret becomes the key of
//!   every later event. The handshake itself is not authenticated: whoever can reach the URL
//!   can send one with a secret of their choosing. So hookseal never learns a key from the
//!   network and never forwards a handshake (the app would store an attacker's key just as
//!   well): it answers `200` with `X-Hook-Secret` echoed, empty `text/plain` body, only when
//!   the header equals one of the route's configured secrets (constant time); any other
//!   handshake is `403 bad_verify_token`. A request carrying `X-Hook-Secret` is always treated
//!   as a handshake, with or without a signature. Getting the first secret into the config is
//!   the operator's step (docs/PROVIDERS.md, "Asana"): the app, or a route without a scheme,
//!   answers the one handshake while the webhook is created; the secret is then configured
//!   here and the route switched to `asana`.

use std::sync::Arc;
use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};

use super::body_mac::BodyMac;
use super::check::{handshake_or, Check, Handshake};
use super::{
    ct_eq, first_match, hex_lower, required, HmacAlgorithm, Input, MacKey, SchemeDef, Verified,
    Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Hook-Signature";
pub(crate) const SECRET_HEADER: &str = "X-Hook-Secret";

pub(crate) const MAC: BodyMac = BodyMac {
    header: SIG_HEADER,
    name: http::HeaderName::from_static("x-hook-signature"),
    prefix: "",
    alg: HmacAlgorithm::Sha256,
    encode: hex_lower,
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "asana",
    headers: &[SIG_HEADER, SECRET_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Asana {
            keys: MAC.keys(secrets),
            secrets: secrets.iter().map(|s| s.bytes.clone()).collect(),
        }))
    },
    sign: |r| Ok(vec![MAC.signed(r)]),
    signed_content: super::SignedContent::Body { id: false },
    handshakes: true,
    ..SchemeDef::BASE
};

struct Asana {
    keys: Vec<MacKey>,
    secrets: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Asana {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Asana({} secrets, <redacted>)", self.secrets.len())
    }
}

impl Asana {
    fn handshake(&self, offered: &str) -> Result<Handshake, VerifyError> {
        first_match(self.secrets.len(), |i| {
            ct_eq(offered.as_bytes(), &self.secrets[i])
        })
        .ok_or(VerifyError::BadVerifyToken)?;
        let value = HeaderValue::from_str(offered)
            .map_err(|_| VerifyError::MalformedSignature(SECRET_HEADER))?;
        let mut h = Handshake::text(bytes::Bytes::new());
        h.header = Some((HeaderName::from_static("x-hook-secret"), value));
        Ok(h)
    }
}

impl Verifier for Asana {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        MAC.verified(&self.keys, input)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let handshake = (input.method == Method::POST && input.headers.contains_key(SECRET_HEADER))
            .then(|| self.handshake(required(input.headers, SECRET_HEADER)?));
        handshake_or(handshake, || self.verify(&input, now, tol))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme, sn};
    use crate::verify::Checked;
    use crate::verify::SchemeOptions;

    const SECRET: &str = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";

    fn sig(secret: &str, body: &[u8]) -> String {
        hex_lower(
            MacKey::new(HmacAlgorithm::Sha256, secret.as_bytes())
                .compute(&[body])
                .as_bytes(),
        )
    }

    #[test]
    fn events_valid_tampered_wrong_secret_missing_and_case() {
        let s = scheme(sn("asana"), &SchemeOptions::default(), &["old", SECRET]);
        let body = br#"{"events":[{"action":"changed","resource":{"gid":"1"}}]}"#.to_vec();
        let good = sig(SECRET, &body);
        let h = [(SIG_HEADER, good.as_str())];
        let v = s
            .verify(&req_full("POST", "/asana", &h, &body).input(), 0)
            .unwrap();
        assert_eq!(v.key_index, 1);
        let mut tampered = body.clone();
        tampered[3] ^= 1;
        let bad = |hs: &[(&str, &str)], b: &[u8]| {
            s.verify(&req_full("POST", "/asana", hs, b).input(), 0)
                .unwrap_err()
        };
        assert_eq!(bad(&h, &tampered), VerifyError::BadSignature);
        let wrong = sig("not-the-secret", &body);
        assert_eq!(
            bad(&[(SIG_HEADER, wrong.as_str())], &body),
            VerifyError::BadSignature
        );
        let upper = good.to_ascii_uppercase();
        assert_eq!(
            bad(&[(SIG_HEADER, upper.as_str())], &body),
            VerifyError::BadSignature
        );
        assert_eq!(bad(&[], &body), VerifyError::MissingSignature(SIG_HEADER));
    }

    fn run_check(
        s: &crate::verify::Scheme,
        headers: &[(&str, &str)],
    ) -> Result<Checked, VerifyError> {
        let r = req_full("POST", "/asana", headers, b"");
        let answer = match s.check(r.input(), 0) {
            Check::Ready(answer) => answer,
            Check::Pending(_) => panic!("asana never fetches"),
        };
        answer
    }

    #[test]
    fn the_handshake_echoes_only_a_configured_secret() {
        let s = scheme(sn("asana"), &SchemeOptions::default(), &[SECRET]);
        match run_check(&s, &[(SECRET_HEADER, SECRET)]) {
            Ok(Checked::Handshake(h)) => {
                assert_eq!(h.status, http::StatusCode::OK);
                assert!(h.body.is_empty());
                let (name, value) = h.header.expect("the secret is echoed");
                assert_eq!(name.as_str(), "x-hook-secret");
                assert_eq!(value.as_bytes(), SECRET.as_bytes());
            }
            other => panic!("{other:?}"),
        }
        // A secret the operator did not configure: refused, never echoed, never forwarded.
        for offered in ["attacker-chosen-secret", &SECRET[1..]] {
            assert_eq!(
                run_check(&s, &[(SECRET_HEADER, offered)]).unwrap_err(),
                VerifyError::BadVerifyToken,
                "{offered}"
            );
        }
        // With a valid signature too, X-Hook-Secret still makes it a handshake.
        let with_sig = sig(SECRET, b"");
        assert_eq!(
            run_check(
                &s,
                &[(SECRET_HEADER, "other"), (SIG_HEADER, with_sig.as_str())]
            )
            .unwrap_err(),
            VerifyError::BadVerifyToken
        );
        assert_eq!(
            run_check(&s, &[(SECRET_HEADER, "")]).unwrap_err(),
            VerifyError::MissingSignature(SECRET_HEADER)
        );
        assert!(!format!("{:?}", s).contains(SECRET));
    }
}
