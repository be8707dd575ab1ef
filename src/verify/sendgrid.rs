//! SendGrid signed Event Webhook: `X-Twilio-Email-Event-Webhook-Signature` = base64 of a
//! DER-encoded ECDSA P-256 / SHA-256 signature over `{timestamp}{body}`, with
//! `X-Twilio-Email-Event-Webhook-Timestamp` (unix seconds) signed as sent. Source: Twilio
//! SendGrid "Getting Started with the Event Webhook Security Features"
//! (twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features)
//! and `@sendgrid/eventwebhook`'s `verifySignature`.
//!
//! * **Secret**: the verification key SendGrid shows (Mail Settings → Signed Event Webhook):
//!   base64 of the DER `SubjectPublicKeyInfo` of a P-256 key; PEM armour around it is accepted.
//!   Anything else (another curve, a private key) is a configuration error. SendGrid keeps the
//!   private key: this is the one scheme here whose secret is public.
//! * Both headers required; a timestamp that is not a strict integer → malformed; a signature
//!   that is not standard padded base64 → malformed; one that does not verify (or is not DER)
//!   → bad signature. Each configured key is tried (rotation), no early exit.
//! * Window: 5 minutes, symmetric. SendGrid documents none and its SDK checks no time; without
//!   one a captured batch would replay forever (the team rule of a window for every timestamp).
//! * No message id (each event in the batch carries `sg_event_id`).
//! * `hookseal sign --scheme sendgrid` takes the **private** key (base64 PKCS#8 DER, or PEM).

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature::{
    EcdsaKeyPair, UnparsedPublicKey, ECDSA_P256_SHA256_ASN1, ECDSA_P256_SHA256_ASN1_SIGNING,
};
use subtle::Choice;

use super::{
    check_window, first_match, parse_unix, required, Input, SchemeDef, SchemeError, SecretMaterial,
    SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Twilio-Email-Event-Webhook-Signature";
pub(crate) const TS_HEADER: &str = "X-Twilio-Email-Event-Webhook-Timestamp";

/// The DER prefix of a P-256 `SubjectPublicKeyInfo` (id-ecPublicKey, prime256v1, a 66-byte
/// BIT STRING), followed by the 65-byte uncompressed point.
const SPKI_P256_PREFIX: [u8; 26] = [
    0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08, 0x2a,
    0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
];

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "sendgrid",
    headers: &[SIG_HEADER, TS_HEADER],
    build: |_, secrets| Ok(Arc::new(Sendgrid::new(secrets)?)),
    sign: |r| {
        let ts = r.timestamp.to_string();
        Ok(vec![
            SignRequest::header(SIG_HEADER, sign_value(r.secret, &ts, r.body)?),
            SignRequest::header(TS_HEADER, ts),
        ])
    },
    // ECDSA over timestamp + raw body: the body and the signed timestamp (the signature value
    // itself is randomized, so it is not the key). The body is a list of events: no one type.
    signed_content: super::SignedContent::Body { id: false },
    ..SchemeDef::BASE
};

/// The base64 text inside optional PEM armour.
fn unarmour(text: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(text).ok()?;
    let inner: String = text
        .lines()
        .filter(|l| !l.starts_with("-----"))
        .flat_map(|l| l.chars().filter(|c| !c.is_ascii_whitespace()))
        .collect();
    base64::engine::general_purpose::STANDARD
        .decode(inner.as_bytes())
        .ok()
}

/// The uncompressed P-256 point of a base64 (or PEM) `SubjectPublicKeyInfo`.
pub(crate) fn public_point(secret: &[u8]) -> Option<Vec<u8>> {
    let der = unarmour(secret)?;
    let point = der.strip_prefix(&SPKI_P256_PREFIX[..])?;
    (point.len() == 65 && point[0] == 0x04).then(|| point.to_vec())
}

/// The base64 `SubjectPublicKeyInfo` of a base64 (or PEM) PKCS#8 private key: what SendGrid
/// shows for the key it signs with (tests).
#[cfg(test)]
pub(crate) fn public_key_of(private: &[u8]) -> Option<String> {
    use ring::signature::KeyPair as _;
    let pkcs8 = unarmour(private)?;
    let pair = EcdsaKeyPair::from_pkcs8(
        &ECDSA_P256_SHA256_ASN1_SIGNING,
        &pkcs8,
        &SystemRandom::new(),
    )
    .ok()?;
    let mut spki = SPKI_P256_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    Some(base64::engine::general_purpose::STANDARD.encode(spki))
}

/// `base64(DER ECDSA-P256-SHA256(ts + body))` with a base64 (or PEM) PKCS#8 private key.
pub(crate) fn sign_value(private: &[u8], ts: &str, body: &[u8]) -> Result<String, SchemeError> {
    let bad = || {
        SchemeError::secret(
            0,
            "sendgrid signing needs the P-256 private key as base64 PKCS#8 DER (or PEM)",
        )
    };
    let pkcs8 = unarmour(private).ok_or_else(bad)?;
    let rng = SystemRandom::new();
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &pkcs8, &rng)
        .map_err(|_| bad())?;
    let mut msg = Vec::with_capacity(ts.len() + body.len());
    msg.extend_from_slice(ts.as_bytes());
    msg.extend_from_slice(body);
    let sig = pair
        .sign(&rng, &msg)
        .map_err(|_| SchemeError::config("ECDSA signing failed"))?;
    Ok(base64::engine::general_purpose::STANDARD.encode(sig.as_ref()))
}

#[derive(Clone)]
struct Sendgrid {
    /// The uncompressed point of each configured key.
    points: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Sendgrid {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Sendgrid({} public keys)", self.points.len())
    }
}

impl Sendgrid {
    fn new(secrets: &[SecretMaterial]) -> Result<Sendgrid, SchemeError> {
        let points = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| {
                public_point(&s.bytes).ok_or_else(|| {
                    SchemeError::secret(
                        i,
                        "sendgrid secret must be the verification key SendGrid shows: base64 of \
                         a P-256 public key (SubjectPublicKeyInfo DER)",
                    )
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Sendgrid { points })
    }
}

impl Verifier for Sendgrid {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let ts_text = required(input.headers, TS_HEADER)?;
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        let der = base64::engine::general_purpose::STANDARD
            .decode(sig.as_bytes())
            .map_err(|_| VerifyError::MalformedSignature(SIG_HEADER))?;
        check_window(ts, now, tol)?;
        let msg = input.body.after(&[ts_text.as_bytes()]);
        let key_index = first_match(self.points.len(), |i| {
            let ok = UnparsedPublicKey::new(&ECDSA_P256_SHA256_ASN1, &self.points[i])
                .verify(&msg, &der)
                .is_ok();
            Choice::from(u8::from(ok))
        })
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

/// A fixed P-256 key pair for tests: (private PKCS#8 base64, public SPKI base64).
#[cfg(test)]
pub(crate) fn test_key_pair() -> (String, String) {
    let rng = SystemRandom::new();
    // Generated once per call; the tests only need some valid pair.
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("keygen");
    let private = base64::engine::general_purpose::STANDARD.encode(pkcs8.as_ref());
    let public = public_key_of(private.as_bytes()).expect("public key");
    (private, public)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::{Scheme, SchemeOptions};

    #[test]
    fn sign_verify_rotation_window_and_errors() {
        let (old_private, old_public) = test_key_pair();
        let (private, public) = test_key_pair();
        let s = scheme(
            sn("sendgrid"),
            &SchemeOptions::default(),
            &[&old_public, &public],
        );
        let body = br#"[{"email":"a@example.com","event":"delivered","sg_event_id":"e1"}]"#;
        let sig = sign_value(private.as_bytes(), "1000", body).unwrap();
        let run = |h: &[(&str, &str)], b: &[u8], now: i64| s.verify(&req(h, b).input(), now);
        let hs = [(SIG_HEADER, sig.as_str()), (TS_HEADER, "1000")];
        let v = run(&hs, body, 1000).unwrap();
        assert_eq!((v.key_index, v.timestamp), (1, Some(1000)));
        let old_sig = sign_value(old_private.as_bytes(), "1000", body).unwrap();
        assert_eq!(
            run(&[(SIG_HEADER, &old_sig), (TS_HEADER, "1000")], body, 1000)
                .unwrap()
                .key_index,
            0
        );
        // tampered body, other timestamp text (signed as sent), stale, future
        assert_eq!(
            run(&hs, b"[]", 1000).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&[(SIG_HEADER, &sig), (TS_HEADER, "01000")], body, 1000).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&hs, body, 1301).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -301 }
        );
        assert_eq!(
            run(&hs, body, 699).unwrap_err(),
            VerifyError::FutureTimestamp { skew: 301 }
        );
        // encodings: unpadded / URL-safe base64 are malformed (the SDK decodes standard base64)
        let unpadded = sig.trim_end_matches('=');
        if unpadded != sig {
            assert_eq!(
                run(&[(SIG_HEADER, unpadded), (TS_HEADER, "1000")], body, 1000).unwrap_err(),
                VerifyError::MalformedSignature(SIG_HEADER)
            );
        }
        assert_eq!(
            run(
                &[(SIG_HEADER, "not base64!"), (TS_HEADER, "1000")],
                body,
                1000
            )
            .unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        assert_eq!(
            run(&[(SIG_HEADER, "AAAA"), (TS_HEADER, "1000")], body, 1000).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&[(SIG_HEADER, &sig), (TS_HEADER, "10x")], body, 1000).unwrap_err(),
            VerifyError::MalformedSignature(TS_HEADER)
        );
        assert_eq!(
            run(&[(TS_HEADER, "1000")], body, 1000).unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
    }

    #[test]
    fn keys_must_be_p256_public_keys_pem_or_not() {
        let (private, public) = test_key_pair();
        let o = SchemeOptions::default();
        let pem = format!("-----BEGIN PUBLIC KEY-----\n{public}\n-----END PUBLIC KEY-----\n");
        assert!(Scheme::new(sn("sendgrid"), &o, &[crate::verify::tests::secret(&pem)]).is_ok());
        for bad in [private.as_str(), "c2VjcmV0", "not base64"] {
            let e =
                Scheme::new(sn("sendgrid"), &o, &[crate::verify::tests::secret(bad)]).unwrap_err();
            assert_eq!(e.secret_index, Some(0), "{bad}");
        }
        assert!(sign_value(public.as_bytes(), "1", b"").is_err());
    }
}
