//! Slack, SCHEMES.md §5: `X-Slack-Signature: v0=<64 lowercase hex>` = HMAC-SHA256 over
//! `v0:{timestamp}:{body}`, with `{timestamp}` the **raw text** of `X-Slack-Request-Timestamp`
//! (not re-serialized: a leading-zero timestamp changes the MAC, as in Slack's SDK).
//!
//! * Both headers required; a timestamp that is not a strict integer → malformed.
//! * The signature value must have the form `<version>=<mac>` (else malformed); only `v0` is
//!   accepted (`v1=...` → bad signature). Slack has no multi-signature header: the whole text
//!   after `v0=` is compared (so `v0=a,v0=b` → bad signature); rotation = several secrets.
//! * Window: 300 s default, symmetric, inclusive. No message id.
//! * Handshake (Slack Events API, "url_verification" event): a **verified** POST whose JSON
//!   `type` is `url_verification` is answered `200 text/plain` with its `challenge`; never
//!   forwarded.

use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;

use super::check::{small_json, Check, Checked, Handshake};
use super::timestamped::{sign_hex, TimestampedHmac};
use super::{parse_unix, required, Input, SchemeDef, SignRequest, Verified, Verifier, VerifyError};

pub(crate) const SIG_HEADER: &str = "X-Slack-Signature";
pub(crate) const TS_HEADER: &str = "X-Slack-Request-Timestamp";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "slack",
    headers: &[SIG_HEADER, TS_HEADER],
    build: |_, secrets| Ok(Arc::new(Slack(TimestampedHmac::new(secrets)))),
    sign: |r| {
        let ts = r.timestamp.to_string();
        let sig = sign_value(r.secret, &ts, r.body);
        Ok(vec![
            SignRequest::header(TS_HEADER, ts),
            SignRequest::header(SIG_HEADER, sig),
        ])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/event/type"),
    handshakes: true,
    ..SchemeDef::BASE
};

#[derive(Deserialize)]
struct UrlVerification {
    #[serde(rename = "type")]
    kind: String,
    challenge: String,
}

#[derive(Debug, Clone)]
struct Slack(TimestampedHmac);

impl Verifier for Slack {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let ts_text = required(input.headers, TS_HEADER)?;
        let sig = required(input.headers, SIG_HEADER)?;
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        let (version, mac) = sig
            .split_once('=')
            .ok_or(VerifyError::MalformedSignature(SIG_HEADER))?;
        // Only `v0` is accepted; another version matches nothing (bad signature).
        let v0: [&[u8]; 1] = [mac.as_bytes()];
        let candidates: &[&[u8]] = if version == "v0" { &v0 } else { &[] };
        let prefix: [&[u8]; 3] = [b"v0:", ts_text.as_bytes(), b":"];
        self.0.check(input, ts, now, tol, &prefix, candidates)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, tol: Duration) -> Check<'a> {
        let checked = self.verify(&input, now, tol).map(|v| {
            match small_json::<UrlVerification>(input.body, b"url_verification") {
                Some(h) if h.kind == "url_verification" => {
                    Checked::Handshake(Handshake::text(h.challenge))
                }
                _ => Checked::Verified(v),
            }
        });
        Check::Ready(checked)
    }
}

/// `v0=<hex>` for the timestamp text `ts`.
pub(crate) fn sign_value(secret: &[u8], ts: &str, body: &[u8]) -> String {
    format!(
        "v0={}",
        sign_hex(secret, &[b"v0:", ts.as_bytes(), b":", body])
    )
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
