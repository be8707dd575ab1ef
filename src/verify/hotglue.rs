//! hotglue, SCHEMES.md §3: `X-Hub-Signature: <40 lowercase hex>` = HMAC-SHA1 of the body keyed
//! with the secret's UTF-8 bytes, **no** prefix (unlike GitHub's legacy header of the same
//! name).
//!
//! * Team decision: a GitHub-style `sha1=` prefix is also accepted (it is not MAC input; vector
//!   quirk `quirk_github_style_sha1_prefix` takes its `also_acceptable` valid).
//! * Lowercase hex only, compared constant-time as text (uppercase → bad signature).
//! * No id, no timestamp (hotglue signs neither): `has_message_id()` is false.

use std::time::Duration;

use super::{
    hex_lower, mac_keys, match_encoded, required, HmacAlgorithm, Input, MacKey, SchemeDef,
    SchemeError, SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Hub-Signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "hotglue",
    headers: &[SIG_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Hotglue::new(secrets)?)),
    sign: |r| {
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            sign_value(r.secret, r.body),
        )])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/status"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Hotglue {
    keys: Vec<MacKey>,
}

impl Hotglue {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Hotglue, SchemeError> {
        Ok(Hotglue {
            keys: mac_keys(HmacAlgorithm::Sha1, secrets),
        })
    }
}

impl Verifier for Hotglue {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let hex = sig.strip_prefix("sha1=").unwrap_or(sig);
        let key_index = match_encoded(&self.keys, &[], input.body, &[hex.as_bytes()], hex_lower)
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: None,
        })
    }
}

/// Bare lowercase hex, as hotglue sends it.
pub(crate) fn sign_value(secret: &[u8], body: &[u8]) -> String {
    hex_lower(
        MacKey::new(HmacAlgorithm::Sha1, secret)
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
    fn bare_and_prefixed_hex() {
        let s = scheme(sn("hotglue"), &SchemeOptions::default(), &["k"]);
        let sig = sign_value(b"k", b"{}");
        assert_eq!(sig.len(), 40);
        assert!(s
            .verify(&req(&[(SIG_HEADER, &sig)], b"{}").input(), 0)
            .is_ok());
        let prefixed = format!("sha1={sig}");
        assert!(s
            .verify(&req(&[(SIG_HEADER, &prefixed)], b"{}").input(), 0)
            .is_ok());
        let upper = sig.to_uppercase();
        assert_eq!(
            s.verify(&req(&[(SIG_HEADER, &upper)], b"{}").input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }
}
