//! Postmark: Postmark signs nothing. Its webhooks documentation ("Protecting your webhook",
//! postmarkapp.com/developer/webhooks/webhooks-overview) offers basic HTTP authentication:
//! the webhook URL carries `https://<username>:<password>@host/path` (or the webhook's
//! `HttpAuth`), and Postmark sends `Authorization: Basic base64(username:password)`.
//!
//! * **Secret**: `username:password` exactly as in the webhook URL (percent-decoded), visible
//!   ASCII, with a `:`; anything else is a configuration error.
//! * `Authorization` is required (absent or empty → missing; twice or not visible ASCII →
//!   malformed). It must equal `Basic ` + the standard padded base64 of a configured secret,
//!   byte for byte (the scheme word as Postmark sends it, no other spelling or spacing;
//!   unpadded base64 → bad signature); compared constant-time through SHA-256 digests, every
//!   secret tried, so neither the secret nor its length leaks.
//! * The body is **not** authenticated and there is no timestamp or id header (the event's
//!   `MessageID` is in the body): as `gitlab`, the credential proves the sender knows it,
//!   nothing more. Use it over TLS, with `allow_from` on Postmark's published webhook IPs.

use sha2::{Digest as _, Sha256};

use super::{
    b64_std, ct_eq, first_match, required, Input, SchemeDef, SchemeError, SecretMaterial,
    SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const AUTH_HEADER: &str = "Authorization";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "postmark",
    headers: &[AUTH_HEADER],
    build: |_, secrets| Ok(std::sync::Arc::new(Postmark::new(secrets)?)),
    sign: |r| Ok(vec![SignRequest::header(AUTH_HEADER, basic(r.secret))]),
    body_signed: false,
    // Basic credentials, not a MAC: `signed_content` stays `Unsupported`.
    event: crate::events::DefaultEvent::Json("/RecordType"),
    ..SchemeDef::BASE
};

/// `Basic <base64(credential)>`.
fn basic(credential: &[u8]) -> String {
    format!("Basic {}", b64_std(credential))
}

#[derive(Clone)]
struct Postmark {
    /// SHA-256 of the expected `Authorization` value for each configured credential.
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for Postmark {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Postmark({} credentials, <redacted>)",
            self.digests.len()
        )
    }
}

impl Postmark {
    fn new(secrets: &[SecretMaterial]) -> Result<Postmark, SchemeError> {
        let mut digests = Vec::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            if !s.bytes.iter().all(|b| (0x21..=0x7e).contains(b)) || !s.bytes.contains(&b':') {
                return Err(SchemeError::secret(
                    i,
                    "postmark secret must be the webhook URL's username:password (visible ASCII)",
                ));
            }
            digests.push(Sha256::digest(basic(&s.bytes).as_bytes()).into());
        }
        Ok(Postmark { digests })
    }
}

impl Verifier for Postmark {
    fn verify(
        &self,
        input: &Input<'_>,
        _now: i64,
        _tol: std::time::Duration,
    ) -> Result<Verified, VerifyError> {
        let value = required(input.headers, AUTH_HEADER)?;
        let presented: [u8; 32] = Sha256::digest(value.as_bytes()).into();
        let key_index = first_match(self.digests.len(), |i| ct_eq(&self.digests[i], &presented))
            .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
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
    fn basic_credentials_rotation_and_exactness() {
        let s = scheme(
            sn("postmark"),
            &SchemeOptions::default(),
            &["hooks:old-pass", "hooks:n3w-pass"],
        );
        let run = |v: &str| s.verify(&req(&[(AUTH_HEADER, v)], b"{}").input(), 0);
        // RFC 7617's example shape: base64("hooks:n3w-pass")
        let good = basic(b"hooks:n3w-pass");
        assert_eq!(good, "Basic aG9va3M6bjN3LXBhc3M=");
        let v = run(&good).unwrap();
        assert_eq!((v.key_index, v.id, v.timestamp), (1, None, None));
        assert_eq!(run(&basic(b"hooks:old-pass")).unwrap().key_index, 0);
        for bad in [
            "basic aG9va3M6bjN3LXBhc3M=",
            "Basic  aG9va3M6bjN3LXBhc3M=",
            "Basic aG9va3M6bjN3LXBhc3M",
            "Bearer aG9va3M6bjN3LXBhc3M=",
            "aG9va3M6bjN3LXBhc3M=",
            "hooks:n3w-pass",
        ] {
            assert_eq!(run(bad).unwrap_err(), VerifyError::BadSignature, "{bad}");
        }
        assert_eq!(
            s.verify(&req(&[], b"{}").input(), 0).unwrap_err(),
            VerifyError::MissingSignature(AUTH_HEADER)
        );
    }

    #[test]
    fn credentials_must_be_user_colon_password_and_stay_secret() {
        let o = SchemeOptions::default();
        for bad in ["no-colon", "two words:x", "caf\u{e9}:x"] {
            let e = Scheme::new(sn("postmark"), &o, &[secret(bad)]).unwrap_err();
            assert_eq!(e.secret_index, Some(0), "{bad}");
        }
        let s = scheme(sn("postmark"), &o, &["user:super-secret-pass"]);
        assert!(!format!("{s:?}").contains("super-secret-pass"));
    }
}
