//! Square, SCHEMES.md §7: `x-square-hmacsha256-signature: <base64>` = standard padded base64 of
//! HMAC-SHA256 over `notification_url ‖ body`, keyed with the signature key's UTF-8 bytes.
//!
//! * The notification URL is formed from the route's `public_url` and the request as described
//!   in `public_url.rs` (public scheme/host/port as configured, the request's path and query
//!   as received; a path in `public_url` must be the request's). No port variants (the Square
//!   SDK uses the URL as given).
//! * Empty body → bad signature (the SDK returns False before computing).
//! * The legacy SHA-1 `x-square-signature` is not accepted. No id, no timestamp.

use std::time::Duration;

use super::public_url::{path_and_query, PublicUrl};
use super::{
    b64_std, mac_keys, match_encoded, required, HmacAlgorithm, Input, MacKey, SchemeDef,
    SchemeError, SchemeOptions, SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "x-square-hmacsha256-signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "square",
    headers: &[SIG_HEADER],
    options: &["public_url"],
    parse_options: Some(&super::public_url::OPTIONS),
    build: |options, secrets| Ok(std::sync::Arc::new(Square::new(options, secrets)?)),
    sign: |r| {
        let url = public_url(r.options, "square")?.url(r.path_and_query);
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            sign_value(r.secret, &url, r.body),
        )])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/type"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Square {
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
}

impl Verifier for Square {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let pq = path_and_query(input.uri);
        if input.body.is_empty() || !self.url.allows(pq) {
            return Err(VerifyError::BadSignature);
        }
        let url = self.url.url(pq);
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
    use crate::verify::tests::{req_full, scheme, sn};

    #[test]
    fn url_from_public_url_and_request_path_and_query() {
        let o = SchemeOptions {
            public_url: Some("https://hooks.example.com".into()),
            ..SchemeOptions::default()
        };
        let s = scheme(sn("square"), &o, &["k"]);
        let sig = sign_value(b"k", "https://hooks.example.com/square?a=1", b"{}");
        let h = [(SIG_HEADER, sig.as_str())];
        assert!(s
            .verify(&req_full("POST", "/square?a=1", &h, b"{}").input(), 0)
            .is_ok());
        // the query and the path are signed
        for other in ["/square?a=2", "/internal?a=1", "/Square?a=1"] {
            assert_eq!(
                s.verify(&req_full("POST", other, &h, b"{}").input(), 0)
                    .unwrap_err(),
                VerifyError::BadSignature,
                "{other}"
            );
        }
        let empty = sign_value(b"k", "https://hooks.example.com/square", b"");
        let h = [(SIG_HEADER, empty.as_str())];
        assert_eq!(
            s.verify(&req_full("POST", "/square", &h, b"").input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    /// Issue 17, finding 3: a genuine notification for `/square/payments` replayed to another
    /// path of the same prefix route is refused, with or without a path in `public_url`.
    #[test]
    fn a_delivery_replayed_to_another_path_is_refused() {
        let body = br#"{"type":"payment.updated"}"#;
        let sig = sign_value(b"k", "https://hooks.example.com/square/payments", body);
        let h = [(SIG_HEADER, sig.as_str())];
        for public in [
            "https://hooks.example.com",
            "https://hooks.example.com/square/payments",
        ] {
            let o = SchemeOptions {
                public_url: Some(public.into()),
                ..SchemeOptions::default()
            };
            let s = scheme(sn("square"), &o, &["k"]);
            assert!(s
                .verify(&req_full("POST", "/square/payments", &h, body).input(), 0)
                .is_ok());
            assert_eq!(
                s.verify(&req_full("POST", "/square/admin", &h, body).input(), 0)
                    .unwrap_err(),
                VerifyError::BadSignature,
                "{public}"
            );
        }
    }
}
