//! The one signature shape the handshake schemes' deliveries share: a header holding a literal
//! prefix and the encoded HMAC of the raw body, keyed with each configured secret (GitHub and
//! Meta `X-Hub-Signature-256: sha256=<hex>`, X `sha256=<base64>`, Dropbox and Asana bare hex).
//!
//! Rules, as each of those schemes documents them: the header is required (absent or empty →
//! missing) and comes once; a value without the prefix is malformed; the rest is compared
//! constant-time, as text, with the encoded MAC of every secret (`match_encoded`: no case
//! folding, no trimming); the first matching secret is reported.

use http::HeaderName;

use super::{
    mac_keys, match_encoded, required_by, HmacAlgorithm, Input, MacKey, SecretMaterial,
    SignRequest, Verified, VerifyError,
};

/// A signature header over the raw body: `header: prefix ‖ encode(HMAC(secret, body))`.
pub(crate) struct BodyMac {
    pub(crate) header: &'static str,
    /// `header` as the lowercase name it is looked up by (tested equal): not parsed again
    /// for every request.
    pub(crate) name: HeaderName,
    pub(crate) prefix: &'static str,
    pub(crate) alg: HmacAlgorithm,
    pub(crate) encode: fn(&[u8]) -> String,
}

impl BodyMac {
    /// One prepared key per secret, in config order.
    pub(crate) fn keys(&self, secrets: &[SecretMaterial]) -> Vec<MacKey> {
        mac_keys(self.alg, secrets)
    }

    /// The index of the first key whose MAC the request's header carries.
    pub(crate) fn key_index(
        &self,
        keys: &[MacKey],
        input: &Input<'_>,
    ) -> Result<usize, VerifyError> {
        let value = required_by(input.headers, &self.name, self.header)?;
        let sig = value
            .strip_prefix(self.prefix)
            .ok_or(VerifyError::MalformedSignature(self.header))?;
        match_encoded(keys, &[], input.body, &[sig.as_bytes()], self.encode)
            .ok_or(VerifyError::BadSignature)
    }

    /// [`BodyMac::key_index`] as a verified delivery: no id, no timestamp (these schemes sign
    /// neither).
    pub(crate) fn verified(
        &self,
        keys: &[MacKey],
        input: &Input<'_>,
    ) -> Result<Verified, VerifyError> {
        Ok(Verified {
            key_index: self.key_index(keys, input)?,
            id: None,
            timestamp: None,
        })
    }

    /// The header value a sender holding `secret` sends with `body`.
    pub(crate) fn value(&self, secret: &[u8], body: &[u8]) -> String {
        let mac = MacKey::new(self.alg, secret).compute(&[body]);
        format!("{}{}", self.prefix, (self.encode)(mac.as_bytes()))
    }

    /// `(header, value)` for `hookseal sign`.
    pub(crate) fn signed(&self, r: &SignRequest<'_>) -> (String, String) {
        SignRequest::header(self.header, self.value(r.secret, r.body))
    }
}
