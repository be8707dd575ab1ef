//! Mailgun: the signature travels **inside the JSON body**, not in a header. Mailgun's
//! "Securing Webhooks" (documentation.mailgun.com, user manual → Webhooks → Securing Webhooks)
//! describes it: the body is `{"signature": {"timestamp": "...", "token": "...",
//! "signature": "..."}, "event-data": {...}}`; concatenate `timestamp` and `token` with no
//! separator, HMAC-SHA256 it keyed with the Webhook Signing Key, compare the hexdigest with
//! `signature`; optionally refuse a token seen before (replays) and a timestamp too far from
//! now ("don't be too aggressive": there can be delays). Its Python example is
//! `hmac.new(key=signing_key, msg="{}{}".format(timestamp, token).encode(), digestmod=sha256)
//! .hexdigest()` compared with `hmac.compare_digest`.
//!
//! * **Secret**: the Webhook Signing Key, its UTF-8 bytes as the HMAC key.
//! * The body must be a JSON object (serde_json, read whole: the route's `max_body_bytes`
//!   bounds it) with a `signature` object; not JSON, not an object, a duplicate key, or
//!   `signature` not an object → `MalformedSignature("signature")`; no `signature` →
//!   `MissingSignature("signature")`. Inside it `timestamp` (a string of digits or a JSON
//!   integer), `token` (1 to 256 visible ASCII characters) and `signature` (a string) are
//!   required: absent → missing, wrong type or shape → malformed, named `signature.<field>`.
//! * Window: 5 minutes by default (route `tolerance`), symmetric, checked before the MAC.
//! * The MAC is compared constant-time as lowercase hex text with every configured key.
//!   A subaccount's event also carries `parent-signature` (the same HMAC keyed with the
//!   primary account's key): either value may match.
//! * **The event data is not authenticated**: the signature covers `timestamp + token` only,
//!   so anyone who saw one authentic delivery can attach its `signature` object to another
//!   body inside the window. The id is the token (dedupe on it, SPEC's default), which
//!   stops a second use of one token within the dedupe window; the body itself is as
//!   trustworthy as with a token scheme (`body_signed: false`, as `gitlab` and `postmark`).
//! * `hookseal sign --scheme mailgun` refuses: the signature is written into the body, and
//!   `sign` emits headers only.

use std::time::Duration;

use http::HeaderValue;
use serde::Deserialize;
use subtle::Choice;

use super::{
    check_window, ct_eq, first_match, hex_lower, mac_keys, parse_unix, HmacAlgorithm, Input,
    MacKey, MessageId, SchemeDef, SchemeError, SecretMaterial, Verified, Verifier, VerifyError,
};

const SIGNATURE: &str = "signature";
const TIMESTAMP: &str = "signature.timestamp";
const TOKEN: &str = "signature.token";
const SIG_VALUE: &str = "signature.signature";
const PARENT_SIG: &str = "signature.parent-signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "mailgun",
    // The token, read from the body by the verifier itself (as `sns` reads `MessageId`).
    message_id: MessageId::Configured,
    build: |_, secrets| Ok(std::sync::Arc::new(Mailgun::new(secrets))),
    sign: |_| {
        Err(SchemeError::config(
            "mailgun signs inside the JSON body (signature.timestamp, token, signature): \
             hookseal sign emits headers only and cannot sign it",
        ))
    },
    body_signed: false,
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Mailgun {
    keys: Vec<MacKey>,
}

impl Mailgun {
    fn new(secrets: &[SecretMaterial]) -> Mailgun {
        Mailgun {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        }
    }
}

/// The body's outer object: only `signature` is read (other members are skipped; a
/// duplicate `signature`, or a duplicate member inside it, is an error, not resolved).
#[derive(Deserialize)]
struct Envelope {
    signature: Option<Fields>,
}

/// The `signature` object's members, each taken as any JSON value and checked below.
#[derive(Deserialize)]
struct Fields {
    timestamp: Option<serde_json::Value>,
    token: Option<serde_json::Value>,
    signature: Option<serde_json::Value>,
    #[serde(rename = "parent-signature")]
    parent_signature: Option<serde_json::Value>,
}

/// The parts of an envelope the check needs.
struct Parsed {
    ts_text: String,
    ts: i64,
    token: String,
    candidates: Vec<String>,
}

fn field<'a>(
    v: Option<&'a serde_json::Value>,
    name: &'static str,
) -> Result<&'a serde_json::Value, VerifyError> {
    match v {
        None | Some(serde_json::Value::Null) => Err(VerifyError::MissingSignature(name)),
        Some(v) => Ok(v),
    }
}

fn string<'a>(v: &'a serde_json::Value, name: &'static str) -> Result<&'a str, VerifyError> {
    match v.as_str() {
        Some("") => Err(VerifyError::MissingSignature(name)),
        Some(s) => Ok(s),
        None => Err(VerifyError::MalformedSignature(name)),
    }
}

fn parse(body: &[u8]) -> Result<Parsed, VerifyError> {
    let env: Envelope =
        serde_json::from_slice(body).map_err(|_| VerifyError::MalformedSignature(SIGNATURE))?;
    let f = env
        .signature
        .ok_or(VerifyError::MissingSignature(SIGNATURE))?;

    let ts_text = match field(f.timestamp.as_ref(), TIMESTAMP)? {
        serde_json::Value::Number(n) => n.to_string(),
        v => string(v, TIMESTAMP)?.to_owned(),
    };
    let ts = parse_unix(&ts_text).ok_or(VerifyError::MalformedSignature(TIMESTAMP))?;

    let token = string(field(f.token.as_ref(), TOKEN)?, TOKEN)?;
    if token.len() > 256 || !token.bytes().all(|b| (0x21..=0x7e).contains(&b)) {
        return Err(VerifyError::MalformedSignature(TOKEN));
    }

    let mut candidates =
        vec![string(field(f.signature.as_ref(), SIG_VALUE)?, SIG_VALUE)?.to_owned()];
    if let Some(parent) = f.parent_signature.as_ref().filter(|v| !v.is_null()) {
        candidates.push(string(parent, PARENT_SIG)?.to_owned());
    }
    Ok(Parsed {
        ts_text,
        ts,
        token: token.to_owned(),
        candidates,
    })
}

impl Verifier for Mailgun {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let p = parse(&input.body.joined())?;
        check_window(p.ts, now, tol)?;
        let key_index = first_match(self.keys.len(), |i| -> Choice {
            let mac = self.keys[i].compute(&[p.ts_text.as_bytes(), p.token.as_bytes()]);
            let text = hex_lower(mac.as_bytes());
            let mut any = Choice::from(0);
            for c in &p.candidates {
                any |= ct_eq(text.as_bytes(), c.as_bytes());
            }
            any
        })
        .ok_or(VerifyError::BadSignature)?;
        // Visible ASCII was checked: always a valid header value.
        let id =
            HeaderValue::from_str(&p.token).map_err(|_| VerifyError::MalformedSignature(TOKEN))?;
        Ok(Verified {
            key_index,
            id: Some(id),
            timestamp: Some(p.ts),
        })
    }

    /// The token is the message id, always (it is required).
    fn configured_id(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    /// Made with the Python example of Mailgun's "Securing Webhooks" (`hmac.new(key=...,
    /// msg="{}{}".format(timestamp, token).encode("utf-8"), digestmod=hashlib.sha256)
    /// .hexdigest()`, Python 3 standard library), over the token and timestamp of the docs'
    /// own sample signature object, with the key below.
    const KEY: &str = "key-hookseal-mailgun-vector";
    const TOKEN_V: &str = "e0b5477167110d68991efc6b9f89f0a11066af27834600e123";
    const TS_V: i64 = 1_770_920_772;
    const SIG_V: &str = "6f910cebb4bd267e7c1141711fbfa78ebdd290bfff3ae4e65eb3228e143421c5";

    fn body(ts: &str, token: &str, sig: &str) -> Vec<u8> {
        format!(
            r#"{{"signature":{{"timestamp":{ts},"token":"{token}","signature":"{sig}"}},"event-data":{{"event":"delivered","id":"x"}}}}"#
        )
        .into_bytes()
    }

    fn run(secrets: &[&str], b: &[u8], now: i64) -> Result<Verified, VerifyError> {
        let s = scheme(sn("mailgun"), &SchemeOptions::default(), secrets);
        s.verify(&req(&[], b).input(), now)
    }

    #[test]
    fn docs_python_vector_verifies_with_token_as_id() {
        let b = body(&format!("\"{TS_V}\""), TOKEN_V, SIG_V);
        let v = run(&["old-key", KEY], &b, TS_V + 10).unwrap();
        assert_eq!(v.key_index, 1);
        assert_eq!(v.timestamp, Some(TS_V));
        assert_eq!(v.id.unwrap().as_bytes(), TOKEN_V.as_bytes());
        // The timestamp as a JSON integer (the docs' table types it `int`): same text signed.
        assert!(run(&[KEY], &body(&TS_V.to_string(), TOKEN_V, SIG_V), TS_V).is_ok());
        // Our own MAC agrees with the vector.
        let mac = MacKey::new(HmacAlgorithm::Sha256, KEY.as_bytes())
            .compute(&[TS_V.to_string().as_bytes(), TOKEN_V.as_bytes()]);
        assert_eq!(hex_lower(mac.as_bytes()), SIG_V);
    }

    #[test]
    fn tampered_signature_token_timestamp_or_key_is_bad_signature() {
        let ts = format!("\"{TS_V}\"");
        let mut flipped = SIG_V.to_owned();
        flipped.replace_range(0..1, "7");
        for (b, what) in [
            (body(&ts, TOKEN_V, &flipped), "signature"),
            (body(&ts, TOKEN_V, &SIG_V.to_uppercase()), "uppercase hex"),
            (body(&ts, &TOKEN_V.replace('e', "f"), SIG_V), "token"),
            (
                body(&format!("\"{}\"", TS_V + 1), TOKEN_V, SIG_V),
                "timestamp",
            ),
        ] {
            assert_eq!(
                run(&[KEY], &b, TS_V).unwrap_err(),
                VerifyError::BadSignature,
                "{what}"
            );
        }
        let good = body(&ts, TOKEN_V, SIG_V);
        assert_eq!(
            run(&["wrong-key"], &good, TS_V).unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn parent_signature_of_a_subaccount_event_also_matches() {
        let b = format!(
            r#"{{"signature":{{"timestamp":"{TS_V}","token":"{TOKEN_V}","signature":"{}","parent-signature":"{SIG_V}"}}}}"#,
            "0".repeat(64)
        );
        assert_eq!(run(&[KEY], b.as_bytes(), TS_V).unwrap().key_index, 0);
    }

    #[test]
    fn the_event_data_is_not_covered() {
        // Documented, not a bug: the signature is over timestamp + token only.
        let b = format!(
            r#"{{"signature":{{"timestamp":"{TS_V}","token":"{TOKEN_V}","signature":"{SIG_V}"}},"event-data":{{"event":"failed"}}}}"#
        );
        assert!(run(&[KEY], b.as_bytes(), TS_V).is_ok());
        assert!(!DEF.body_signed);
    }

    #[test]
    fn stale_and_future_timestamps_are_refused_at_5_minutes() {
        let b = body(&format!("\"{TS_V}\""), TOKEN_V, SIG_V);
        assert!(run(&[KEY], &b, TS_V + 300).is_ok());
        assert_eq!(
            run(&[KEY], &b, TS_V + 301).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -301 }
        );
        assert_eq!(
            run(&[KEY], &b, TS_V - 301).unwrap_err(),
            VerifyError::FutureTimestamp { skew: 301 }
        );
    }

    #[test]
    fn non_json_and_missing_or_malformed_fields() {
        use VerifyError::{MalformedSignature as Bad, MissingSignature as Missing};
        let ts = format!("\"{TS_V}\"");
        let cases: Vec<(Vec<u8>, VerifyError)> = vec![
            (b"token=x&timestamp=1".to_vec(), Bad(SIGNATURE)),
            (b"".to_vec(), Bad(SIGNATURE)),
            (b"[1,2]".to_vec(), Bad(SIGNATURE)),
            (b"{\"signature\":{}".to_vec(), Bad(SIGNATURE)),
            (b"{}".to_vec(), Missing(SIGNATURE)),
            (b"{\"signature\":null}".to_vec(), Missing(SIGNATURE)),
            (b"{\"signature\":\"abc\"}".to_vec(), Bad(SIGNATURE)),
            (
                br#"{"signature":{"token":"t","signature":"s"}}"#.to_vec(),
                Missing(TIMESTAMP),
            ),
            (
                format!(r#"{{"signature":{{"timestamp":{ts},"signature":"s"}}}}"#).into_bytes(),
                Missing(TOKEN),
            ),
            (
                format!(r#"{{"signature":{{"timestamp":{ts},"token":"t"}}}}"#).into_bytes(),
                Missing(SIG_VALUE),
            ),
            (body(&ts, "", SIG_V), Missing(TOKEN)),
            (body(&ts, "has space", SIG_V), Bad(TOKEN)),
            (body(&ts, &"t".repeat(257), SIG_V), Bad(TOKEN)),
            (body("\"-5\"", TOKEN_V, SIG_V), Bad(TIMESTAMP)),
            (body("1.5", TOKEN_V, SIG_V), Bad(TIMESTAMP)),
            (body("true", TOKEN_V, SIG_V), Bad(TIMESTAMP)),
            (
                format!(r#"{{"signature":{{"timestamp":{ts},"token":"t","signature":7}}}}"#)
                    .into_bytes(),
                Bad(SIG_VALUE),
            ),
            // A duplicate member is ambiguous: refused, not resolved.
            (
                format!(
                    r#"{{"signature":{{"timestamp":{ts},"token":"t","signature":"a","signature":"b"}}}}"#
                )
                .into_bytes(),
                Bad(SIGNATURE),
            ),
        ];
        for (b, want) in cases {
            assert_eq!(
                run(&[KEY], &b, TS_V).unwrap_err(),
                want,
                "{}",
                String::from_utf8_lossy(&b)
            );
        }
    }

    #[test]
    fn sign_refuses_and_the_key_stays_secret() {
        let e = crate::verify::sign(
            sn("mailgun"),
            &SchemeOptions::default(),
            KEY.as_bytes(),
            None,
            TS_V,
            "POST",
            "/",
            b"{}",
        )
        .unwrap_err();
        assert!(e.to_string().contains("inside the JSON body"), "{e}");
        let s = scheme(sn("mailgun"), &SchemeOptions::default(), &[KEY]);
        assert!(!format!("{s:?}").contains(KEY));
    }
}
