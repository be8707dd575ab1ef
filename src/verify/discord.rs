//! Discord interactions, SCHEMES.md §7: Ed25519.
//!
//! * Secret: the application's **public key**, 64 hex chars (either case). Signing (`sign()`)
//!   takes the 32-byte private seed as 64 hex chars instead.
//! * Headers `X-Signature-Ed25519` (hex of the 64-byte signature, decoded case-insensitively
//!   as the SDK does; not exactly 128 hex digits → malformed) and `X-Signature-Timestamp`.
//! * Message: the timestamp header's raw text ‖ body; verified with `verify_strict`.
//! * Freshness (team decision): the `discord-interactions` SDK checks none, but a replay
//!   defence is cheap: the timestamp must be a strict integer (else malformed) and within the
//!   window (300 s default, symmetric). Vector `quirk_stale_timestamp_not_checked` therefore
//!   takes its `also_acceptable` invalid.
//! * No message id (the interaction id is inside the body).

use std::time::Duration;

use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use subtle::Choice;

use super::{
    check_window, first_match, hex_decode_into, hex_lower, parse_unix, required, Input, SchemeDef,
    SchemeError, SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Signature-Ed25519";
pub(crate) const TS_HEADER: &str = "X-Signature-Timestamp";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "discord",
    headers: &[SIG_HEADER, TS_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Discord::new(secrets)?)),
    sign: |r| {
        let ts = r.timestamp.to_string();
        let sig = sign_value(r.secret, &ts, r.body)?;
        Ok(vec![
            SignRequest::header(SIG_HEADER, sig),
            SignRequest::header(TS_HEADER, ts),
        ])
    },
    signed_content: super::SignedContent::Body { id: false },
    event: crate::events::DefaultEvent::Json("/type"),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Discord {
    keys: Vec<VerifyingKey>,
}

impl Discord {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Discord, SchemeError> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            let mut pk = [0u8; 32];
            if !hex_decode_into(&s.bytes, &mut pk) {
                return Err(SchemeError::secret(
                    i,
                    "discord secret must be the application public key as 64 hex chars",
                ));
            }
            let vk = VerifyingKey::from_bytes(&pk)
                .map_err(|_| SchemeError::secret(i, "not an Ed25519 public key"))?;
            if vk.is_weak() {
                return Err(SchemeError::secret(i, "weak Ed25519 public key"));
            }
            keys.push(vk);
        }
        Ok(Discord { keys })
    }
}

impl Verifier for Discord {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let sig_hex = required(input.headers, SIG_HEADER)?;
        let ts_text = required(input.headers, TS_HEADER)?;
        let mut raw = [0u8; 64];
        if !hex_decode_into(sig_hex.as_bytes(), &mut raw) {
            return Err(VerifyError::MalformedSignature(SIG_HEADER));
        }
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        check_window(ts, now, tol)?;
        let sig = Signature::from_bytes(&raw);
        let msg = input.body.after(&[ts_text.as_bytes()]);
        let key_index = first_match(self.keys.len(), |i| {
            Choice::from(u8::from(self.keys[i].verify_strict(&msg, &sig).is_ok()))
        })
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ts),
        })
    }
}

/// Signs with a private seed given as 64 hex chars; returns the signature hex (lowercase).
pub(crate) fn sign_value(seed_hex: &[u8], ts: &str, body: &[u8]) -> Result<String, SchemeError> {
    let mut seed = [0u8; 32];
    if !hex_decode_into(seed_hex, &mut seed) {
        return Err(SchemeError::secret(
            0,
            "discord signing secret must be the 32-byte Ed25519 private seed as 64 hex chars",
        ));
    }
    let sk = SigningKey::from_bytes(&seed);
    let sig = sk.sign(&[ts.as_bytes(), body].concat());
    Ok(hex_lower(&sig.to_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    /// RFC 8032 §7.1 test 1 (empty message): the Ed25519 primitive underneath.
    #[test]
    fn rfc8032_vector() {
        let seed = b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        assert_eq!(
            sign_value(seed, "", b"").unwrap(),
            "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b"
        );
    }

    #[test]
    fn timestamp_and_hex_rules() {
        let pk = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
        let seed = b"9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
        let s = scheme(sn("discord"), &SchemeOptions::default(), &[pk]);
        let sig = sign_value(seed, "1000", b"{}").unwrap();
        let run = |sig: &str, ts: &str, now: i64| {
            s.verify(
                &req(&[(SIG_HEADER, sig), (TS_HEADER, ts)], b"{}").input(),
                now,
            )
        };
        assert!(run(&sig, "1000", 1000).is_ok());
        assert!(run(&sig.to_uppercase(), "1000", 1000).is_ok());
        assert_eq!(
            run(&sig[2..], "1000", 1000).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        assert_eq!(
            run(&sig, "1000", 1301).unwrap_err(),
            VerifyError::StaleTimestamp { skew: -301 }
        );
        assert_eq!(
            run(&sig, "soon", 1000).unwrap_err(),
            VerifyError::MalformedSignature(TS_HEADER)
        );
        assert!(Scheme::new(
            sn("discord"),
            &SchemeOptions::default(),
            &[crate::verify::tests::secret("zz")]
        )
        .is_err());
    }

    use crate::verify::Scheme;
}
