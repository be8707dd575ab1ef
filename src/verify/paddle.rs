//! Paddle Billing, SCHEMES.md §7: `Paddle-Signature: ts=<unix>;h1=<hex>[;h1=<hex>]` with
//! `h1` = lowercase hex HMAC-SHA256 over `{ts}:{body}` (`ts` as the raw header text, as the
//! Python SDK builds it), keyed with the secret's UTF-8 bytes.
//!
//! * Elements split on `;`, then on the first `=`; elements without `=` are ignored. No `ts`
//!   or a non-integer `ts` → malformed; duplicate `ts`: the first wins. No `h1` → bad
//!   signature. Any `h1` may match.
//! * **Unknown keys** (e.g. a future `h2=`) are ignored, not rejected (forward-compatible;
//!   the Python SDK raises instead). Vector `quirk_unknown_key` takes its `also_acceptable`
//!   valid: only `h1` is ever trusted, so ignoring other keys cannot weaken verification,
//!   and rejecting them would drop every webhook the day Paddle adds a scheme.
//! * Window: 5 s default (the SDK's `maximum_variance`), symmetric, inclusive. No message id
//!   (the notification id is in the body).

use std::sync::Arc;
use std::time::Duration;

use super::timestamped::{parse_list, sign_hex, TimestampedHmac};
use super::{required, Input, SchemeDef, SignRequest, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = "Paddle-Signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "paddle",
    default_tolerance: Duration::from_secs(5),
    headers: &[SIG_HEADER],
    build: |_, secrets| Ok(Arc::new(Paddle(TimestampedHmac::new(secrets)))),
    sign: |r| {
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            sign_value(r.secret, r.timestamp, r.body),
        )])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/event_type"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Paddle(TimestampedHmac);

impl Verifier for Paddle {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let header = required(input.headers, SIG_HEADER)?;
        let (ts_text, ts, h1) = parse_list(SIG_HEADER, header, ';', "ts", "h1")?;
        // Signed as the raw header text, as the Python SDK builds it.
        let prefix: [&[u8]; 2] = [ts_text.as_bytes(), b":"];
        self.0.check(input, ts, now, tol, &prefix, &h1)
    }
}

/// `ts=<ts>;h1=<hex>`
pub(crate) fn sign_value(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let ts_str = ts.to_string();
    let mac = sign_hex(secret, &[ts_str.as_bytes(), b":", body]);
    format!("ts={ts};h1={mac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    #[test]
    fn parse_rules_and_window() {
        let s = scheme(sn("paddle"), &SchemeOptions::default(), &["old", "pdl"]);
        let good = sign_value(b"pdl", 1000, b"{}");
        let h1 = good.split_once(";h1=").unwrap().1;
        let run = |h: &str, now: i64| s.verify(&req(&[(SIG_HEADER, h)], b"{}").input(), now);
        assert_eq!(run(&good, 1000).unwrap().key_index, 1);
        assert!(run(&format!("ts=1000;h1=00;h2=zz;h1={h1}"), 1000).is_ok());
        assert_eq!(
            run("h1=00", 1000).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        assert_eq!(run("ts=1000", 1000).unwrap_err(), VerifyError::BadSignature);
        assert!(run(&good, 1005).is_ok());
        assert_eq!(
            run(&good, 1006).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -6 }
        );
        assert_eq!(
            run(&good, 994).unwrap_err(),
            VerifyError::FutureTimestamp { skew: 6 }
        );
    }
}
