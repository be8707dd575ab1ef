//! Zoom (Zoom developer docs, "Using webhooks": "Verify webhook events" and "Validate your
//! webhook endpoint"): `x-zm-signature: v0=<64 lowercase hex>` = HMAC-SHA256 over
//! `v0:{x-zm-request-timestamp}:{body}`, keyed with the app's secret token.
//!
//! * Both headers required; the timestamp a strict integer (else malformed), the signature
//!   `v0=` then the hex (another version → bad signature). Window: 300 s, symmetric.
//! * Handshake: a **signed** POST whose JSON `event` is `endpoint.url_validation` is answered
//!   `200 application/json {"plainToken": P, "encryptedToken": hex HMAC-SHA256(secret, P)}`
//!   with the secret that verified the request; never forwarded. No message id.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::check::{small_json, Check, Checked, Handshake};
use super::timestamped::sign_hex;
use super::{
    check_window, hex_lower, mac_keys, match_encoded, parse_unix, required, HmacAlgorithm, Input,
    MacKey, SchemeDef, SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "x-zm-signature";
pub(crate) const TS_HEADER: &str = "x-zm-request-timestamp";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "zoom",
    headers: &[SIG_HEADER, TS_HEADER],
    build: |_, secrets| Ok(Arc::new(Zoom::new(secrets))),
    sign: |r| {
        let ts = r.timestamp.to_string();
        let sig = format!(
            "v0={}",
            sign_hex(r.secret, &[b"v0:", ts.as_bytes(), b":", r.body])
        );
        Ok(vec![
            SignRequest::header(TS_HEADER, ts),
            SignRequest::header(SIG_HEADER, sig),
        ])
    },
    handshakes: true,
    // `v0:{timestamp}:{body}`: the raw body and the signed timestamp.
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/event"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Zoom {
    keys: Vec<MacKey>,
}

impl Zoom {
    fn new(secrets: &[SecretMaterial]) -> Zoom {
        Zoom {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        }
    }
}

#[derive(Deserialize)]
struct Validation {
    event: String,
    payload: Payload,
}

#[derive(Deserialize)]
struct Payload {
    #[serde(rename = "plainToken")]
    plain_token: String,
}

impl Verifier for Zoom {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let ts_text = required(input.headers, TS_HEADER)?;
        let sig = required(input.headers, SIG_HEADER)?;
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        let (version, mac) = sig
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        check_window(ts, now, tol)?;
        let v0: [&[u8]; 1] = [mac.as_bytes()];
        let candidates: &[&[u8]] = if version == "v0" { &v0 } else { &[] };
        let prefix: [&[u8]; 3] = [b"v0:", ts_text.as_bytes(), b":"];
        let key_index = match_encoded(&self.keys, &prefix, input.body, candidates, hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let checked = self.verify(&input, now, tol).map(|v| {
            match small_json::<Validation>(input.body, b"endpoint.url_validation") {
                Some(h) if h.event == "endpoint.url_validation" => {
                    let key = &self.keys[v.key_index];
                    let encrypted =
                        hex_lower(key.compute(&[h.payload.plain_token.as_bytes()]).as_bytes());
                    Checked::Handshake(Handshake::json(&serde_json::json!({
                        "plainToken": h.payload.plain_token,
                        "encryptedToken": encrypted,
                    })))
                }
                _ => Checked::Verified(v),
            }
        });
        Check::Ready(checked)
    }
}
