//! GitHub, SCHEMES.md §2: `X-Hub-Signature-256: sha256=<64 lowercase hex>` = HMAC-SHA256 of the
//! body keyed with the secret's UTF-8 bytes.
//!
//! * Only `X-Hub-Signature-256` is read; a request carrying only the legacy SHA-1
//!   `X-Hub-Signature` is missing its signature (never a fallback; SHA-1 senders use `hmac`).
//! * A value without the exact `sha256=` prefix is malformed; otherwise the whole lowercase hex
//!   text is compared constant-time (uppercase hex, truncation → bad signature), as Octokit.
//! * Empty body: verified like any other body (HMAC of the empty string). Octokit refuses an
//!   empty payload, but the MAC is authentic and GitHub never sends one (vector quirk
//!   `quirk_empty_body`: valid).
//! * Id: `X-GitHub-Delivery` when present (optional). No timestamp.

use std::time::Duration;

use super::body_mac::BodyMac;
use super::{
    hex_lower, optional_id_by, HmacAlgorithm, Input, MacKey, MessageId, SchemeDef, SchemeError,
    SecretMaterial, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Hub-Signature-256";
pub(crate) const ID_HEADER: &str = "X-GitHub-Delivery";
/// [`ID_HEADER`] as it is looked up (tested equal).
const ID_NAME: http::HeaderName = http::HeaderName::from_static("x-github-delivery");

/// `X-Hub-Signature-256: sha256=<lowercase hex>` over the body (GitHub, and Meta's POSTs).
pub(crate) const MAC: BodyMac = BodyMac {
    header: SIG_HEADER,
    name: http::HeaderName::from_static("x-hub-signature-256"),
    prefix: "sha256=",
    alg: HmacAlgorithm::Sha256,
    encode: hex_lower,
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "github",
    message_id: MessageId::Headers(&[ID_HEADER]),
    headers: &[SIG_HEADER, ID_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Github::new(secrets)?)),
    sign: |r| Ok(r.with_id(MAC.signed(r), ID_HEADER)),
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Header("X-GitHub-Event"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Github {
    keys: Vec<MacKey>,
}

impl Github {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Github, SchemeError> {
        Ok(Github {
            keys: MAC.keys(secrets),
        })
    }
}

impl Verifier for Github {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        Ok(Verified {
            key_index: MAC.key_index(&self.keys, input)?,
            id: optional_id_by(input.headers, &ID_NAME, ID_HEADER)?,
            timestamp: None,
        })
    }
}

/// `sha256=<hex>`
#[cfg(test)]
fn sign_value(secret: &[u8], body: &[u8]) -> String {
    MAC.value(secret, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    #[test]
    fn the_delivery_id_is_looked_up_by_its_own_name() {
        let id = http::HeaderName::from_bytes(ID_HEADER.as_bytes()).unwrap();
        assert_eq!(ID_NAME, id);
    }

    #[test]
    fn published_vector() {
        assert_eq!(
            sign_value(b"It's a Secret to Everybody", b"Hello, World!"),
            "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
    }

    #[test]
    fn rotation_reports_first_matching_secret_and_id_optional() {
        let s = scheme(
            sn("github"),
            &SchemeOptions::default(),
            &["old", "new", "new"],
        );
        let sig = sign_value(b"new", b"x");
        let v = s
            .verify(&req(&[("x-hub-signature-256", &sig)], b"x").input(), 0)
            .unwrap();
        assert_eq!(v.key_index, 1);
        assert!(v.id.is_none());
        let v = s
            .verify(
                &req(&[(SIG_HEADER, &sig), (ID_HEADER, "d-1")], b"x").input(),
                0,
            )
            .unwrap();
        assert_eq!(v.id.unwrap(), "d-1");
        let legacy = [("X-Hub-Signature", "sha1=00")];
        assert_eq!(
            s.verify(&req(&legacy, b"x").input(), 0).unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
        let bare = sig.trim_start_matches("sha256=");
        assert_eq!(
            s.verify(&req(&[(SIG_HEADER, bare)], b"x").input(), 0)
                .unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
    }
}
