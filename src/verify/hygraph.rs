//! Hygraph, formerly GraphCMS (Hygraph docs "Webhooks — Signed webhooks"; npm
//! `@hygraph/utils` 1.x `verifyWebhookSignature`, whose rules these are):
//!
//! * `gcms-signature: sign=<base64>, env=<environment>, t=<unix milliseconds>`: exactly these
//!   three elements, in this order, separated by `", "` (the SDK splits on that text); anything
//!   else → 400 malformed. `t` is digits only.
//! * The signed text is the JSON document `{"Body":<body as a JSON string>,"EnvironmentName":
//!   <env as a JSON string>,"TimeStamp":<t as a number>}`, written as JavaScript's
//!   `JSON.stringify` writes it (no spaces; `"`, `\` and control characters escaped, `\b \f \n
//!   \r \t` in short form, others `\u00XX`; everything else as is — serde_json escapes
//!   identically). The body must be UTF-8 (the SDK reads it as a string): invalid UTF-8 → 401,
//!   since a lossy conversion would map two bodies to one signature.
//! * `sign` = standard padded base64 of HMAC-SHA256 over that text, keyed with the secret's
//!   UTF-8 bytes; compared constant-time as text.
//! * Window: the SDK checks none; hookseal applies the route's window (default 5 minutes) to
//!   `t`, which the signature covers. No id header: `dedupe_key = "signature"` keys on the
//!   body and the signed timestamp.

use std::sync::Arc;
use std::time::Duration;

use super::{
    b64_std, check_window, mac_keys, match_encoded, parse_unix, required, Body, HmacAlgorithm,
    Input, MacKey, SchemeDef, SchemeError, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "gcms-signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "hygraph",
    headers: &[SIG_HEADER],
    build: |_, secrets| {
        Ok(Arc::new(Hygraph {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        }))
    },
    sign: |r| {
        let ms = r
            .timestamp
            .checked_mul(1000)
            .ok_or_else(|| SchemeError::config("timestamp out of range"))?;
        let env = "master";
        let text = signed_text(r.body, env, ms)
            .ok_or_else(|| SchemeError::config("hygraph signs UTF-8 bodies only"))?;
        let mac = MacKey::new(HmacAlgorithm::Sha256, r.secret).compute(&[text.as_bytes()]);
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            format!("sign={}, env={env}, t={ms}", b64_std(mac.as_bytes())),
        )])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/operation"),
    ..SchemeDef::BASE
};

#[derive(Debug)]
struct Hygraph {
    keys: Vec<MacKey>,
}

/// `(sign, env, t)` of a `gcms-signature` value, or `None` when it is not exactly the SDK's
/// three elements.
fn parse(header: &str) -> Option<(&str, &str, i64)> {
    let mut parts = header.split(", ");
    let sign = parts.next()?.strip_prefix("sign=")?;
    let env = parts.next()?.strip_prefix("env=")?;
    let t = parse_unix(parts.next()?.strip_prefix("t=")?)?;
    if parts.next().is_some() || sign.is_empty() {
        return None;
    }
    Some((sign, env, t))
}

/// The JSON text Hygraph signs, or `None` for a body that is not UTF-8.
fn signed_text(body: &[u8], env: &str, ms: i64) -> Option<String> {
    let body = std::str::from_utf8(body).ok()?;
    let body = serde_json::to_string(body).ok()?;
    let env = serde_json::to_string(env).ok()?;
    Some(format!(
        r#"{{"Body":{body},"EnvironmentName":{env},"TimeStamp":{ms}}}"#
    ))
}

impl Verifier for Hygraph {
    fn verify(
        &self,
        input: &Input<'_>,
        now: i64,
        tolerance: Duration,
    ) -> Result<Verified, VerifyError> {
        let header = required(input.headers, SIG_HEADER)?;
        let (sign, env, ms) = parse(header).ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        let ts = ms.div_euclid(1000);
        check_window(ts, now, tolerance)?;
        let text = signed_text(&input.body.joined(), env, ms).ok_or(VerifyError::BadSignature)?;
        let key_index = match_encoded(
            &self.keys,
            &[text.as_bytes()],
            Body::EMPTY,
            &[sign.as_bytes()],
            b64_std,
        )
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme, sn};
    use crate::verify::SchemeOptions;

    const NOW: i64 = 1_735_689_600;

    fn header(secret: &str, body: &[u8], env: &str, ms: i64) -> String {
        let text = signed_text(body, env, ms).unwrap();
        let mac = MacKey::new(HmacAlgorithm::Sha256, secret.as_bytes()).compute(&[text.as_bytes()]);
        format!("sign={}, env={env}, t={ms}", b64_std(mac.as_bytes()))
    }

    #[test]
    fn the_signed_text_is_json_stringify() {
        assert_eq!(
            signed_text(b"{\"a\":\"\xc3\xa9\\\n\t\x01\x7f\"}", "master", 5).unwrap(),
            "{\"Body\":\"{\\\"a\\\":\\\"\u{e9}\\\\\\n\\t\\u0001\u{7f}\\\"}\",\"EnvironmentName\":\"master\",\"TimeStamp\":5}"
        );
        assert!(signed_text(b"\xff", "master", 5).is_none());
    }

    #[test]
    fn valid_tampered_wrong_secret_missing_malformed_stale_future() {
        let s = scheme(
            sn("hygraph"),
            &SchemeOptions::default(),
            &["old", "hyg-secret"],
        );
        let body = br#"{"operation":"publish","data":{"id":"ck1"}}"#;
        let ms = NOW * 1000 + 123;
        let good = header("hyg-secret", body, "master", ms);
        let run = |h: &str, b: &[u8], now: i64| {
            s.verify(&req_full("POST", "/h", &[(SIG_HEADER, h)], b).input(), now)
        };
        let v = run(&good, body, NOW).unwrap();
        assert_eq!((v.key_index, v.timestamp), (1, Some(NOW)));
        assert_eq!(
            run(&good, b"{}", NOW).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&good.replace("env=master", "env=staging"), body, NOW).unwrap_err(),
            VerifyError::BadSignature
        );
        let wrong = header("nope", body, "master", ms);
        assert_eq!(
            run(&wrong, body, NOW).unwrap_err(),
            VerifyError::BadSignature
        );
        assert!(matches!(
            run(&good, body, NOW + 301).unwrap_err(),
            VerifyError::StaleTimestamp { .. }
        ));
        assert!(matches!(
            run(&good, body, NOW - 301).unwrap_err(),
            VerifyError::FutureTimestamp { .. }
        ));
        for bad in [
            good.replace(", ", ","),
            good.replace("t=", "t=+"),
            format!("{good}, x=1"),
            "sign=, env=master, t=1".to_owned(),
            good.replacen("sign=", "sig=", 1),
        ] {
            assert_eq!(
                run(&bad, body, NOW).unwrap_err(),
                VerifyError::MalformedSignature(SIG_HEADER),
                "{bad}"
            );
        }
        assert_eq!(
            s.verify(&req_full("POST", "/h", &[], body).input(), NOW)
                .unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
    }
}
