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

use super::{
    check_window, hex_lower, mac_keys, match_encoded, parse_unix, required, ts_and_signatures,
    HmacAlgorithm, Input, MacKey, SchemeError, SecretMaterial, Verified, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "Stripe-Signature";

#[derive(Debug, Clone)]
pub(crate) struct Stripe {
    keys: Vec<MacKey>,
}

impl Stripe {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Stripe, SchemeError> {
        Ok(Stripe {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        })
    }

    pub(crate) fn verify(
        &self,
        input: &Input<'_>,
        now: i64,
        tol: std::time::Duration,
    ) -> Result<Verified, VerifyError> {
        let header = required(input.headers, SIG_HEADER)?;
        let (t, v1) = ts_and_signatures(header, ',', "t", "v1");
        let t = t.ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        let ts = parse_unix(t).ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        check_window(ts, now, tol)?;
        let ts_str = ts.to_string();
        let prefix: [&[u8]; 2] = [ts_str.as_bytes(), b"."];
        let key_index = match_encoded(&self.keys, &prefix, input.body, &v1, hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

/// `t=<ts>,v1=<hex>`
pub(crate) fn sign_value(secret: &[u8], ts: i64, body: &[u8]) -> String {
    let ts_str = ts.to_string();
    let mac = MacKey::new(HmacAlgorithm::Sha256, secret).compute(&[ts_str.as_bytes(), b".", body]);
    format!("t={ts},v1={}", hex_lower(mac.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme};
    use crate::verify::{SchemeName, SchemeOptions};

    #[test]
    fn parse_rules() {
        let s = scheme(
            SchemeName::Stripe,
            &SchemeOptions::default(),
            &["whsec_abc"],
        );
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
