//! GitLab: `X-Gitlab-Token: <secret token>`. GitLab signs nothing: it sends the webhook's
//! secret token as is, and the receiver compares it with its own copy.
//!
//! * The header is required (absent or empty → missing; sent twice or not visible ASCII →
//!   malformed). It must equal one of the configured secrets exactly (case-sensitive, no
//!   trimming); otherwise bad signature.
//! * Constant-time without leaking the secret's length: the SHA-256 of the presented token is
//!   compared with the SHA-256 of every configured secret, all of them, no early exit.
//! * The body is not authenticated (GitLab sends no MAC): the token proves only that the
//!   sender knows the secret. Use it over TLS.
//! * Id: `Idempotency-Key` when present (GitLab 17.4 and later; the same on every retry of one
//!   event, as GitLab's webhook docs describe it). No timestamp: the dedupe window is the
//!   route's `tolerance`, default 300 s.
//! * A secret that is not visible ASCII could never arrive in a header: a configuration error.

use sha2::{Digest as _, Sha256};

use super::{
    ct_eq, first_match, optional_id, required, Input, MessageId, SchemeDef, SchemeError,
    SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const TOKEN_HEADER: &str = "X-Gitlab-Token";
pub(crate) const ID_HEADER: &str = "Idempotency-Key";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "gitlab",
    message_id: MessageId::Headers(&[ID_HEADER]),
    headers: &[TOKEN_HEADER, ID_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Gitlab::new(secrets)?)),
    sign: |r| {
        let token = String::from_utf8_lossy(r.secret).into_owned();
        Ok(r.with_id(SignRequest::header(TOKEN_HEADER, token), ID_HEADER))
    },
    body_signed: false,
    event: crate::events::DefaultEvent::Header("X-Gitlab-Event"),
    ..SchemeDef::BASE
};

#[derive(Clone)]
struct Gitlab {
    /// SHA-256 of each configured token, in config order.
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Gitlab {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Gitlab({} tokens, <redacted>)", self.digests.len())
    }
}

impl Gitlab {
    fn new(secrets: &[SecretMaterial]) -> Result<Gitlab, SchemeError> {
        let mut digests = Vec::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            if !s.bytes.iter().all(|b| (0x21..=0x7e).contains(b)) {
                return Err(SchemeError::secret(
                    i,
                    "gitlab secret token must be visible ASCII without spaces (it is sent as \
                     the X-Gitlab-Token header)",
                ));
            }
            digests.push(Sha256::digest(&s.bytes).into());
        }
        Ok(Gitlab { digests })
    }
}

impl Verifier for Gitlab {
    fn verify(
        &self,
        input: &Input<'_>,
        _now: i64,
        _tol: std::time::Duration,
    ) -> Result<Verified, VerifyError> {
        let token = required(input.headers, TOKEN_HEADER)?;
        let presented: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let key_index = first_match(self.digests.len(), |i| ct_eq(&self.digests[i], &presented))
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: optional_id(input.headers, ID_HEADER)?,
            timestamp: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, secret, sn};
    use crate::verify::{Scheme, SchemeOptions};

    #[test]
    fn token_compare_rotation_and_id() {
        let s = scheme(
            sn("gitlab"),
            &SchemeOptions::default(),
            &["old-tok", "new-tok"],
        );
        let run = |h: &[(&str, &str)]| s.verify(&req(h, b"{}").input(), 0);
        let v = run(&[(TOKEN_HEADER, "new-tok")]).unwrap();
        assert_eq!(v.key_index, 1);
        assert!(v.id.is_none());
        assert_eq!(v.timestamp, None);
        let v = run(&[(TOKEN_HEADER, "old-tok"), (ID_HEADER, "e-1")]).unwrap();
        assert_eq!(v.key_index, 0);
        assert_eq!(v.id.unwrap(), "e-1");
        assert!(s.has_message_id());
        // exact: no prefix, suffix, case change or trimming
        for bad in [
            "new-to",
            "new-tokk",
            "NEW-TOK",
            "new-tok ",
            "sha256=new-tok",
        ] {
            assert_eq!(
                run(&[(TOKEN_HEADER, bad)]).unwrap_err(),
                VerifyError::BadSignature,
                "{bad:?}"
            );
        }
        assert_eq!(
            run(&[]).unwrap_err(),
            VerifyError::MissingSignature(TOKEN_HEADER)
        );
        assert_eq!(
            run(&[(TOKEN_HEADER, "")]).unwrap_err(),
            VerifyError::MissingSignature(TOKEN_HEADER)
        );
        assert_eq!(
            run(&[(TOKEN_HEADER, "new-tok"), (TOKEN_HEADER, "new-tok")]).unwrap_err(),
            VerifyError::MalformedSignature(TOKEN_HEADER)
        );
        assert_eq!(
            run(&[
                (TOKEN_HEADER, "new-tok"),
                (ID_HEADER, "a"),
                (ID_HEADER, "b")
            ])
            .unwrap_err(),
            VerifyError::MalformedSignature(ID_HEADER)
        );
    }

    #[test]
    fn secrets_must_be_header_text_and_never_show_in_debug() {
        let o = SchemeOptions::default();
        for bad in ["two words", "tab\there", "caf\u{e9}"] {
            let e = Scheme::new(sn("gitlab"), &o, &[secret("ok"), secret(bad)]).unwrap_err();
            assert_eq!(e.secret_index, Some(1), "{bad:?}");
        }
        let s = scheme(sn("gitlab"), &o, &["super-secret-token"]);
        assert!(!format!("{s:?}").contains("super-secret-token"));
    }
}
