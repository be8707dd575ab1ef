//! Square, SCHEMES.md §7: `x-square-hmacsha256-signature: <base64>` = standard padded base64 of
//! HMAC-SHA256 over `notification_url ‖ body`, keyed with the signature key's UTF-8 bytes.
//!
//! * The notification URL is formed from the route's `public_url` and the request as described
//!   in `public_url.rs` (public scheme/host/port/path as configured, the request's query).
//!   No port variants (the Square SDK uses the URL as given).
//! * Empty body → bad signature (the SDK returns False before computing).
//! * The legacy SHA-1 `x-square-signature` is not accepted. No id, no timestamp.

use super::public_url::{path_and_query, PublicUrl};
use super::{
    b64_std, mac_keys, match_encoded, required, HmacAlgorithm, Input, MacKey, SchemeError,
    SchemeOptions, SecretMaterial, Verified, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "x-square-hmacsha256-signature";

#[derive(Debug, Clone)]
pub(crate) struct Square {
    keys: Vec<MacKey>,
    url: PublicUrl,
}

pub(crate) fn public_url(options: &SchemeOptions, scheme: &str) -> Result<PublicUrl, SchemeError> {
    let u = options.public_url.as_deref().ok_or_else(|| {
        SchemeError::config(format!(
            "scheme {scheme} needs public_url (the URL the provider calls)"
        ))
    })?;
    PublicUrl::parse(u)
}

impl Square {
    pub(crate) fn new(
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Square, SchemeError> {
        Ok(Square {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
            url: public_url(options, "square")?,
        })
    }

    pub(crate) fn verify(&self, input: &Input<'_>) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        if input.body.is_empty() {
            return Err(VerifyError::BadSignature);
        }
        let url = self.url.url(path_and_query(input.uri));
        let key_index = match_encoded(
            &self.keys,
            &[url.as_bytes()],
            input.body,
            &[sig.as_bytes()],
            b64_std,
        )
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: None,
        })
    }
}

/// base64(HMAC-SHA256(key, url ‖ body)).
pub(crate) fn sign_value(secret: &[u8], url: &str, body: &[u8]) -> String {
    b64_std(
        MacKey::new(HmacAlgorithm::Sha256, secret)
            .compute(&[url.as_bytes(), body])
            .as_bytes(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme};
    use crate::verify::SchemeName;

    #[test]
    fn url_from_public_url_and_request_query() {
        let o = SchemeOptions {
            public_url: Some("https://hooks.example.com/square".into()),
            ..SchemeOptions::default()
        };
        let s = scheme(SchemeName::Square, &o, &["k"]);
        let sig = sign_value(b"k", "https://hooks.example.com/square?a=1", b"{}");
        let h = [(SIG_HEADER, sig.as_str())];
        // the internal path does not matter, the query does
        assert!(s
            .verify(&req_full("POST", "/internal?a=1", &h, b"{}").input(), 0)
            .is_ok());
        assert_eq!(
            s.verify(&req_full("POST", "/internal?a=2", &h, b"{}").input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
        let empty = sign_value(b"k", "https://hooks.example.com/square", b"");
        let h = [(SIG_HEADER, empty.as_str())];
        assert_eq!(
            s.verify(&req_full("POST", "/square", &h, b"").input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }
}
