//! Mandrill / Mailchimp Transactional (Mailchimp Transactional docs "Authenticating webhook
//! requests"). Built on the URL-signing pattern of `twilio`/`square` (`public_url.rs`).
//!
//! * `X-Mandrill-Signature` = standard padded base64 of HMAC-SHA1, keyed with the webhook's
//!   authentication key (UTF-8), over `url ‖ concat(name ‖ value for the POST parameters
//!   sorted by name)`, compared constant-time as text.
//! * `url` is "the webhook's URL exactly as you entered it, including any query string":
//!   `public_url`'s scheme and authority with the request's path and query as received (a path
//!   in `public_url` pins the route to it, as for Twilio). No port variants.
//! * The body is form-decoded whatever its Content-Type (`+` → space, `%XX`; as Twilio). A
//!   parameter name sent twice → 401: the documented examples keep one value per name (PHP's
//!   `$_POST`), so which one was signed is unknowable. Mandrill sends one, `mandrill_events`.
//! * No timestamp, no id: a captured request replays forever (Mandrill's scheme has nothing
//!   against it); the signature is the dedupe key (`dedupe_key = "signature"`).

use std::sync::Arc;
use std::time::Duration;

use super::public_url::{path_and_query, PublicUrl};
use super::square::public_url;
use super::twilio::form_decode;
use super::{
    b64_std, mac_keys, match_encoded, required, Body, HmacAlgorithm, Input, MacKey, SchemeDef,
    SchemeError, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Mandrill-Signature";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "mandrill",
    headers: &[SIG_HEADER],
    options: &["public_url"],
    parse_options: Some(&super::public_url::OPTIONS),
    build: |options, secrets| {
        Ok(Arc::new(Mandrill {
            keys: mac_keys(HmacAlgorithm::Sha1, secrets),
            url: public_url(options, "mandrill")?,
        }))
    },
    sign: |r| {
        let url = public_url(r.options, "mandrill")?.url(r.path_and_query);
        let params = signed_params(r.body)
            .ok_or_else(|| SchemeError::config("a form parameter is sent twice"))?;
        let mac = MacKey::new(HmacAlgorithm::Sha1, r.secret).compute(&[url.as_bytes(), &params]);
        Ok(vec![SignRequest::header(
            SIG_HEADER,
            b64_std(mac.as_bytes()),
        )])
    },
    signed_content: super::SignedContent::Header(SIG_HEADER),
    ..SchemeDef::BASE
};

#[derive(Debug)]
struct Mandrill {
    keys: Vec<MacKey>,
    url: PublicUrl,
}

/// `name ‖ value` of every form parameter, sorted by name; `None` when a name repeats.
fn signed_params(body: &[u8]) -> Option<Vec<u8>> {
    let mut params = form_decode(body);
    params.sort_by(|a, b| a.0.as_bytes().cmp(b.0.as_bytes()));
    if params.windows(2).any(|w| w[0].0 == w[1].0) {
        return None;
    }
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in params {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    Some(out)
}

impl Verifier for Mandrill {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let pq = path_and_query(input.uri);
        if !self.url.allows(pq) {
            return Err(VerifyError::BadSignature);
        }
        let params = signed_params(&input.body.joined()).ok_or(VerifyError::BadSignature)?;
        let url = self.url.url(pq);
        let key_index = match_encoded(
            &self.keys,
            &[url.as_bytes(), &params],
            Body::EMPTY,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{public_url_opts as opts, req_full, scheme, sn};

    /// Computed independently (Python's `hmac`/`base64`, following the documented steps):
    /// key `mandrill-key`, URL `https://hooks.example.com/mandrill?t=1`, one parameter
    /// `mandrill_events` = `[{"event":"send","_id":"abc"}]`.
    const DOC_VECTOR: &str = "YXCZE33HIg0k5TkJYfhjRnFh6sw=";

    #[test]
    fn valid_tampered_wrong_secret_missing_and_duplicates() {
        let s = scheme(sn("mandrill"), &opts(), &["old", "mandrill-key"]);
        let body = b"mandrill_events=%5B%7B%22event%22%3A%22send%22%2C%22_id%22%3A%22abc%22%7D%5D";
        let run = |sig: &str, pq: &str, b: &[u8]| {
            s.verify(&req_full("POST", pq, &[(SIG_HEADER, sig)], b).input(), 0)
        };
        let v = run(DOC_VECTOR, "/mandrill?t=1", body).unwrap();
        assert_eq!(v.key_index, 1);
        assert_eq!(
            run(DOC_VECTOR, "/mandrill?t=2", body).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(DOC_VECTOR, "/mandrill?t=1", b"mandrill_events=%5B%5D").unwrap_err(),
            VerifyError::BadSignature
        );
        let wrong = s.name().def().sign;
        let o = opts();
        let other = wrong(&SignRequest {
            options: &o,
            secret: b"not-the-key",
            id: None,
            timestamp: 0,
            method: "POST",
            path_and_query: "/mandrill?t=1",
            body,
        })
        .unwrap();
        assert_eq!(
            run(&other[0].1, "/mandrill?t=1", body).unwrap_err(),
            VerifyError::BadSignature
        );
        // Sorted by name; a repeated name is refused.
        assert_eq!(signed_params(b"b=2&a=1").unwrap(), b"a1b2");
        assert!(signed_params(b"a=1&a=2").is_none());
        assert_eq!(
            s.verify(&req_full("POST", "/mandrill?t=1", &[], body).input(), 0)
                .unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
    }
}
