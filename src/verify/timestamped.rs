//! The core the timestamped-HMAC schemes share (Stripe, Paddle, Slack and the like): a
//! lowercase-hex HMAC-SHA256 over a payload built from the timestamp and the body, keyed with
//! the secret's UTF-8 bytes, accepted only inside the window.
//!
//! Each provider keeps its header parsing and the exact payload prefix in its own file (which
//! text of the timestamp is signed, the separators, which signature entries count); this core
//! does what is the same for all of them, in the common order: window, then signature.

use std::time::Duration;

use super::{
    check_window, hex_lower, mac_keys, match_encoded, parse_unix, ts_and_signatures, HmacAlgorithm,
    Input, MacKey, SecretMaterial, Verified, VerifyError,
};

/// The keys of one route, one per configured secret.
#[derive(Debug, Clone)]
pub(crate) struct TimestampedHmac {
    keys: Vec<MacKey>,
}

impl TimestampedHmac {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> TimestampedHmac {
        TimestampedHmac {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        }
    }

    /// Checks `ts` against the window, then whether any candidate is the hex MAC of `prefix`
    /// followed by the body for any key. No message id.
    pub(crate) fn check(
        &self,
        input: &Input<'_>,
        ts: i64,
        now: i64,
        tolerance: Duration,
        prefix: &[&[u8]],
        candidates: &[&[u8]],
    ) -> Result<Verified, VerifyError> {
        check_window(ts, now, tolerance)?;
        let key_index = match_encoded(&self.keys, prefix, input.body, candidates, hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

/// A `key=value` signature list (Stripe `t=..,v1=..`, Paddle `ts=..;h1=..`): the timestamp's
/// raw text, its value, and every signature entry. No timestamp, or one that is not a strict
/// integer, is malformed.
pub(crate) fn parse_list<'a>(
    header_name: &'static str,
    header: &'a str,
    sep: char,
    ts_key: &str,
    sig_key: &str,
) -> Result<(&'a str, i64, Vec<&'a [u8]>), VerifyError> {
    let (ts_text, sigs) = ts_and_signatures(header, sep, ts_key, sig_key);
    let ts_text = ts_text.ok_or(VerifyError::MalformedSignature(header_name))?;
    let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(header_name))?;
    Ok((ts_text, ts, sigs))
}

/// The lowercase hex HMAC-SHA256 of the concatenation of `parts` (for `hookseal sign`).
pub(crate) fn sign_hex(secret: &[u8], parts: &[&[u8]]) -> String {
    hex_lower(
        MacKey::new(HmacAlgorithm::Sha256, secret)
            .compute(parts)
            .as_bytes(),
    )
}
