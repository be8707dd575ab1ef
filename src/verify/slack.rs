//! Slack, SCHEMES.md §5: `X-Slack-Signature: v0=<64 lowercase hex>` = HMAC-SHA256 over
//! `v0:{timestamp}:{body}`, with `{timestamp}` the **raw text** of `X-Slack-Request-Timestamp`
//! (not re-serialized: a leading-zero timestamp changes the MAC, as in Slack's SDK).
//!
//! * Both headers required; a timestamp that is not a strict integer → malformed.
//! * The signature value must have the form `<version>=<mac>` (else malformed); only `v0` is
//!   accepted (`v1=...` → bad signature). Slack has no multi-signature header: the whole text
//!   after `v0=` is compared (so `v0=a,v0=b` → bad signature); rotation = several secrets.
//! * Window: 300 s default, symmetric, inclusive. No message id.

use super::{
    check_window, hex_lower, mac_keys, match_encoded, parse_unix, required, HmacAlgorithm, Input,
    MacKey, SchemeError, SecretMaterial, Verified, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Slack-Signature";
pub(crate) const TS_HEADER: &str = "X-Slack-Request-Timestamp";

#[derive(Debug, Clone)]
pub(crate) struct Slack {
    keys: Vec<MacKey>,
}

impl Slack {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Slack, SchemeError> {
        Ok(Slack {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        })
    }

    pub(crate) fn verify(
        &self,
        input: &Input<'_>,
        now: i64,
        tol: std::time::Duration,
    ) -> Result<Verified, VerifyError> {
        let ts_text = required(input.headers, TS_HEADER)?;
        let sig = required(input.headers, SIG_HEADER)?;
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        let (version, mac) = sig
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        check_window(ts, now, tol)?;
        let candidates: Vec<&[u8]> = if version == "v0" {
            vec![mac.as_bytes()]
        } else {
            Vec::new()
        };
        let prefix: [&[u8]; 3] = [b"v0:", ts_text.as_bytes(), b":"];
        let key_index = match_encoded(&self.keys, &prefix, input.body, &candidates, hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

/// `v0=<hex>` for the timestamp text `ts`.
pub(crate) fn sign_value(secret: &[u8], ts: &str, body: &[u8]) -> String {
    let mac =
        MacKey::new(HmacAlgorithm::Sha256, secret).compute(&[b"v0:", ts.as_bytes(), b":", body]);
    format!("v0={}", hex_lower(mac.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_vector() {
        let body = "token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
        assert_eq!(
            sign_value(
                b"8f742231b10e8888abcd99yyyzzz85a5",
                "1531420618",
                body.as_bytes()
            ),
            "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"
        );
    }
}
