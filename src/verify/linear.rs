//! Linear, SCHEMES.md §7: `Linear-Signature: <hex>` = HMAC-SHA256 of the body, keyed with the
//! secret's UTF-8 bytes; freshness from the signed JSON body's `webhookTimestamp` (unix ms).
//!
//! * The header must be 64 hex digits (else malformed), and is compared constant-time as
//!   **text** with the lowercase hex of the MAC, as `@linear/sdk`'s
//!   `LinearWebhookClient.verify` does (`timingSafeEqual` of `digest("hex")` and the header's
//!   bytes): the same MAC in uppercase hex is a bad signature, as the SDK rejects it.
//! * **Order differs from the other schemes**: the MAC is checked first, and only an
//!   authentic body is parsed (serde_json) for `webhookTimestamp`; the unsigned
//!   `linear-timestamp` header is ignored. Body not JSON, or no numeric `webhookTimestamp` →
//!   `MalformedSignature("webhookTimestamp")` (the SDK also rejects: "Missing webhook
//!   timestamp").
//! * Window: 60 s default, symmetric, inclusive, compared in milliseconds (so 60.5 s old is
//!   stale); `Verified::timestamp` is the value in whole seconds (floor).
//! * Id: `Linear-Delivery` when present.

use std::time::Duration;

use subtle::Choice;

use super::{
    ct_eq, first_match, hex_decode_into, hex_lower, mac_keys, optional_id, required, HmacAlgorithm,
    Input, MacKey, MessageId, SchemeDef, SchemeError, SecretMaterial, SignRequest, Verified,
    Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "Linear-Signature";
pub(crate) const ID_HEADER: &str = "Linear-Delivery";
const TS_FIELD: &str = "webhookTimestamp";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "linear",
    default_tolerance: std::time::Duration::from_secs(60),
    message_id: MessageId::Headers(&[ID_HEADER]),
    headers: &[SIG_HEADER, ID_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Linear::new(secrets)?)),
    sign: |r| {
        Ok(r.with_id(
            SignRequest::header(SIG_HEADER, sign_value(r.secret, r.body)),
            ID_HEADER,
        ))
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Header("Linear-Event"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Linear {
    keys: Vec<MacKey>,
}

#[derive(serde::Deserialize)]
struct Envelope {
    #[serde(rename = "webhookTimestamp")]
    webhook_timestamp: Option<serde_json::Number>,
}

impl Linear {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Linear, SchemeError> {
        Ok(Linear {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        })
    }
}

impl Verifier for Linear {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let mut presented = [0u8; 32];
        if !hex_decode_into(sig.as_bytes(), &mut presented) {
            return Err(VerifyError::MalformedSignature(SIG_HEADER));
        }
        let key_index = first_match(self.keys.len(), |i| -> Choice {
            let mac = self.keys[i].compute_body(&[], input.body);
            ct_eq(hex_lower(mac.as_bytes()).as_bytes(), sig.as_bytes())
        })
        .ok_or(VerifyError::BadSignature)?;

        let ts_ms = webhook_timestamp_ms(&input.body.joined())
            .ok_or(VerifyError::MalformedSignature(TS_FIELD))?;
        let tol_ms = i128::try_from(tol.as_millis()).unwrap_or(i128::MAX);
        let skew_ms = i128::from(ts_ms) - i128::from(now) * 1000;
        let skew =
            i64::try_from(skew_ms / 1000).unwrap_or(if skew_ms < 0 { i64::MIN } else { i64::MAX });
        if -skew_ms > tol_ms {
            return Err(VerifyError::StaleTimestamp { skew });
        }
        if skew_ms > tol_ms {
            return Err(VerifyError::FutureTimestamp { skew });
        }
        Ok(Verified {
            key_index,
            id: optional_id(input.headers, ID_HEADER)?,
            timestamp: Some(ts_ms.div_euclid(1000)),
        })
    }
}

fn webhook_timestamp_ms(body: &[u8]) -> Option<i64> {
    let env: Envelope = serde_json::from_slice(body).ok()?;
    let n = env.webhook_timestamp?;
    if let Some(i) = n.as_i64() {
        return Some(i);
    }
    let f = n.as_f64()?;
    if f.is_finite() && f.abs() < 9.0e15 {
        // Whole milliseconds; a fractional part is dropped (floor).
        #[allow(clippy::cast_possible_truncation)]
        return Some(f.floor() as i64);
    }
    None
}

/// Lowercase hex.
pub(crate) fn sign_value(secret: &[u8], body: &[u8]) -> String {
    hex_lower(
        MacKey::new(HmacAlgorithm::Sha256, secret)
            .compute(&[body])
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    #[test]
    fn timestamp_from_body_in_ms() {
        let s = scheme(sn("linear"), &SchemeOptions::default(), &["lin"]);
        let run = |body: &str| {
            let sig = sign_value(b"lin", body.as_bytes());
            s.verify(&req(&[(SIG_HEADER, &sig)], body.as_bytes()).input(), 1000)
        };
        assert_eq!(
            run(r#"{"webhookTimestamp":1000500}"#).unwrap().timestamp,
            Some(1000)
        );
        assert!(run(r#"{"webhookTimestamp":940000}"#).is_ok());
        assert_eq!(
            run(r#"{"webhookTimestamp":939999}"#).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -60 }
        );
        assert_eq!(
            run(r#"{"webhookTimestamp":1060001}"#).unwrap_err(),
            VerifyError::FutureTimestamp { skew: 60 }
        );
        assert_eq!(
            run(r#"{"a":1}"#).unwrap_err(),
            VerifyError::MalformedSignature(TS_FIELD)
        );
        assert_eq!(
            run("not json").unwrap_err(),
            VerifyError::MalformedSignature(TS_FIELD)
        );
    }

    #[test]
    fn hex_case_as_the_sdk() {
        // @linear/sdk compares the header text with `digest("hex")` (lowercase): the same MAC
        // in uppercase (or mixed case) is refused; not 64 hex digits is malformed.
        let s = scheme(sn("linear"), &SchemeOptions::default(), &["lin"]);
        let body = br#"{"webhookTimestamp":1000000}"#;
        let run = |sig: &str| s.verify(&req(&[(SIG_HEADER, sig)], body).input(), 1000);
        let lower = sign_value(b"lin", body);
        assert!(run(&lower).is_ok());
        assert_eq!(
            run(&lower.to_uppercase()).unwrap_err(),
            VerifyError::BadSignature
        );
        let mut mixed = lower.clone();
        let at = mixed.find(|c: char| c.is_ascii_alphabetic()).unwrap();
        mixed.replace_range(at..=at, &mixed[at..=at].to_uppercase());
        assert_eq!(run(&mixed).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(
            run(&lower[..63]).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        assert_eq!(
            run(&format!("{lower}0")).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
    }
}
