//! Stripe, SCHEMES.md §4: `Stripe-Signature: t=<unix>,v1=<hex>[,v1=<hex>][,v0=...]`.
//!
//! * HMAC key: the **whole** configured `whsec_...` string as UTF-8 (not base64-decoded).
//! * Signed content `{t}.{body}` with `t` parsed strictly (digits only; leading zeros allowed)
//!   and re-serialized as an integer, as both SDKs do (vector `quirk_timestamp_leading_zero`:
//!   valid).
//! * Elements are split on `,` and **not trimmed**, then on the first `=`; elements without
//!   `=` are ignored. Duplicate `t`: the **first** one wins (stripe-python behaviour; vector
//!   `quirk_duplicate_t_first_wins_python`: invalid).
//! * No `t` element, or `t` not an integer → malformed. A parseable header without any `v1`
//!   (e.g. only `v0`) → bad signature. Any `v1` (lowercase hex, compared constant-time as
//!   text) may match; `v0` and other schemes are ignored (downgrade protection).
//! * Window: 300 s default, **symmetric**. Stripe's SDKs only bound the age and accept any
//!   future timestamp; our window is stricter by team decision (vectors
//!   `quirk_future_timestamp_*` take their `also_acceptable` invalid). The window is checked
//!   before the signature (uniform order; SDKs check the signature first).
//! * Empty body: verified like any other (stripe-python behaviour; `quirk_empty_body`: valid).
//! * No message id (the event id is inside the body).

use std::sync::Arc;
use std::time::Duration;

use super::timestamped::{parse_list, sign_hex, TimestampedHmac};
use super::{required, Input, SchemeDef, SignRequest, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = "Stripe-Signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "stripe",
    headers: &[SIG_HEADER],
    build: |_, secrets| Ok(Arc::new(Stripe(TimestampedHmac::new(secrets)))),
    sign: |r| {
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            sign_value(r.secret, r.timestamp, r.body),
        )])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/type"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Stripe(TimestampedHmac);

impl Verifier for Stripe {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let header = required(input.headers, SIG_HEADER)?;
        let (_, ts, v1) = parse_list(SIG_HEADER, header, ',', "t", "v1")?;
        // Signed as re-serialized, not as sent (leading zeros dropped), as both SDKs do.
        let ts_str = ts.to_string();
        let prefix: [&[u8]; 2] = [ts_str.as_bytes(), b"."];
        self.0.check(input, ts, now, tol, &prefix, &v1)
    }
}

/// `t=<ts>,v1=<hex>`
pub(crate) fn sign_value(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let ts_str = ts.to_string();
    let mac = sign_hex(secret, &[ts_str.as_bytes(), b".", body]);
    format!("t={ts},v1={mac}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    #[test]
    fn parse_rules() {
        let s = scheme(sn("stripe"), &SchemeOptions::default(), &["whsec_abc"]);
        let good = sign_value(b"whsec_abc", 1000, b"{}");
        let sig = good.split_once(",v1=").unwrap().1;
        let run = |h: &str| s.verify(&req(&[(SIG_HEADER, h)], b"{}").input(), 1000);
        assert!(run(&good).is_ok());
        assert!(run(&format!("v0=00,t=1000,x,v1=ff,v1={sig}")).is_ok());
        assert_eq!(
            run("garbage").unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        assert_eq!(run("t=1000").unwrap_err(), VerifyError::BadSignature);
        assert_eq!(
            run(&format!("t=1000,v0={sig}")).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&format!("t=1000, v1={sig}")).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&format!("t=-1000,v1={sig}")).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        // boundary inclusive: exactly 300 s old is accepted (MAC mismatch only)
        assert_eq!(
            run(&format!("t=700,v1={sig}")).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&format!("t=699,v1={sig}")).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -301 }
        );
    }
}
