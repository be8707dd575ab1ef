//! Shopify, SCHEMES.md §6: `X-Shopify-Hmac-Sha256: <base64>` = standard padded base64 of
//! HMAC-SHA256 over the body, keyed with the app secret's UTF-8 bytes.
//!
//! * Header: `X-Shopify-Hmac-Sha256`, or the newer un-prefixed `shopify-hmac-sha256` when the
//!   former is absent. Compared constant-time as base64 text (hex, unpadded, base64url → bad
//!   signature).
//! * **Empty body → bad signature**, before any MAC, as `@shopify/shopify-api` does
//!   (`missing_body`); Shopify never sends one (vector `quirk_empty_body`: invalid, its
//!   `expect`).
//! * Topic / shop-domain / API-version / webhook-id headers are **not** required (proxy-level
//!   decision: they are application concerns, unsigned; vectors `quirk_missing_*` take
//!   `also_acceptable` valid).
//! * Id: `X-Shopify-Webhook-Id`, else `shopify-webhook-id`, when present. No timestamp.

use std::time::Duration;

use super::{
    b64_std, mac_keys, match_encoded, optional_id, required, HmacAlgorithm, Input, MacKey,
    MessageId, SchemeDef, SchemeError, SecretMaterial, SignRequest, Verified, Verifier,
    VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Shopify-Hmac-Sha256";
const SIG_HEADER_NEW: &str = "shopify-hmac-sha256";
pub(crate) const ID_HEADER: &str = "X-Shopify-Webhook-Id";
const ID_HEADER_NEW: &str = "shopify-webhook-id";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "shopify",
    message_id: MessageId::Headers(&[ID_HEADER, ID_HEADER_NEW]),
    headers: &[SIG_HEADER, SIG_HEADER_NEW, ID_HEADER, ID_HEADER_NEW],
    build: |_, secrets| Ok(std::sync::Arc::new(Shopify::new(secrets)?)),
    sign: |r| {
        Ok(r.with_id(
            SignRequest::header(SIG_HEADER, sign_value(r.secret, r.body)),
            ID_HEADER,
        ))
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Header("X-Shopify-Topic"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Shopify {
    keys: Vec<MacKey>,
}

impl Shopify {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Shopify, SchemeError> {
        Ok(Shopify {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        })
    }
}

impl Verifier for Shopify {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let h = input.headers;
        let name = if h.contains_key(SIG_HEADER) || !h.contains_key(SIG_HEADER_NEW) {
            SIG_HEADER
        } else {
            SIG_HEADER_NEW
        };
        let sig = required(h, name)?;
        if input.body.is_empty() {
            return Err(VerifyError::BadSignature);
        }
        let key_index = match_encoded(&self.keys, &[], input.body, &[sig.as_bytes()], b64_std)
            .ok_or(VerifyError::BadSignature)?;
        let id = optional_id(h, ID_HEADER)?.or(optional_id(h, ID_HEADER_NEW)?);
        Ok(Verified {
            key_index,
            id,
            timestamp: None,
        })
    }
}

/// Standard padded base64.
pub(crate) fn sign_value(secret: &[u8], body: &[u8]) -> String {
    b64_std(
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
    fn unprefixed_headers_and_empty_body() {
        let s = scheme(sn("shopify"), &SchemeOptions::default(), &["shpss_x"]);
        let sig = sign_value(b"shpss_x", b"{}");
        let v = s
            .verify(
                &req(
                    &[("shopify-hmac-sha256", &sig), ("shopify-webhook-id", "w1")],
                    b"{}",
                )
                .input(),
                0,
            )
            .unwrap();
        assert_eq!(v.id.unwrap(), "w1");
        let empty = sign_value(b"shpss_x", b"");
        assert_eq!(
            s.verify(&req(&[(SIG_HEADER, &empty)], b"").input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }
}
