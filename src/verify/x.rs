//! X, formerly Twitter (X developer docs, "Securing webhooks" / webhooks quickstart: the
//! Challenge-Response Check and the signature header). POSTs carry
//! `x-twitter-webhooks-signature: sha256=<padded base64>` = HMAC-SHA256 of the body keyed with
//! the app's consumer secret.
//!
//! * Handshake (CRC): `GET ?crc_token=C` → `200 application/json
//!   {"response_token":"sha256=<base64 HMAC-SHA256(secret, C)>"}` with the **first** secret
//!   (the app's current consumer secret); never forwarded, also on a route whose `methods`
//!   lack GET. The CRC is unsigned, so it is an HMAC oracle over C: hookseal answers only a
//!   token of at most 256 characters of `[A-Za-z0-9._~+/=-]` (X's tokens) that is not a JSON
//!   document (not an object, nor a scalar such as `null`, `true` or `1`: any body a JSON
//!   parser accepts), so the answer cannot be replayed as the signature of a JSON delivery.
//! * No timestamp, no message id.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::body_mac::BodyMac;
use super::check::{handshake_or, query_param, Check, Handshake};
use super::{b64_std, HmacAlgorithm, Input, MacKey, SchemeDef, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = "x-twitter-webhooks-signature";

pub(crate) const MAC: BodyMac = BodyMac {
    header: SIG_HEADER,
    name: http::HeaderName::from_static("x-twitter-webhooks-signature"),
    prefix: "sha256=",
    alg: HmacAlgorithm::Sha256,
    encode: b64_std,
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "x",
    headers: &[SIG_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(X {
            keys: MAC.keys(secrets),
        }))
    },
    sign: |r| Ok(vec![MAC.signed(r)]),
    get_handshake: Some("crc_token"),
    handshakes: true,
    // `x-twitter-webhooks-signature`: HMAC of the raw body. The event kind is the name of a
    // body key (`tweet_create_events`, …), not a value hookseal can point at.
    signed_content: super::SignedContent::Body { id: false },
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct X {
    keys: Vec<MacKey>,
}

/// A CRC token as X sends them; anything else is refused (see the module doc). The
/// character set keeps out JSON objects, arrays and strings, but not JSON's scalars: `null`,
/// `true`, `1e5` are a whole JSON document an app's parser accepts, and their answer would be
/// the signature of a POST with that body. A token that is JSON is refused too.
fn plausible_token(t: &str) -> bool {
    !t.is_empty()
        && t.len() <= 256
        && t.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._~+/=-".contains(&b))
        && serde_json::from_str::<serde::de::IgnoredAny>(t).is_err()
}

impl X {
    fn crc(&self, input: &Input<'_>) -> Result<Handshake, VerifyError> {
        let token = query_param(input.uri, "crc_token")?
            .ok_or(VerifyError::MissingSignature("crc_token"))?;
        if !plausible_token(&token) {
            return Err(VerifyError::MalformedSignature("crc_token"));
        }
        let mac = self.keys[0].compute(&[token.as_bytes()]);
        Ok(Handshake::json(&serde_json::json!({
            "response_token": format!("sha256={}", b64_std(mac.as_bytes())),
        })))
    }
}

impl Verifier for X {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        MAC.verified(&self.keys, input)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let crc = (input.method == Method::GET).then(|| self.crc(&input));
        handshake_or(crc, || self.verify(&input, now, tol))
    }
}

#[cfg(test)]
mod tests {
    use super::plausible_token;

    #[test]
    fn crc_tokens_that_are_json_documents_are_refused() {
        for t in ["null", "true", "false", "0", "1", "-2.5e3", "1E5", "123456"] {
            assert!(
                !plausible_token(t),
                "{t} is JSON: its answer would sign that body"
            );
        }
        for t in [
            "9b4507b3-9040-4669-9ca3-6b94edb50553",
            "abc",
            "nul",
            "1.2.3",
            "-",
            "e5",
            "01",
            "aGVsbG8=",
        ] {
            assert!(plausible_token(t), "{t}");
        }
    }
}
