//! Plivo, signature V3 (Plivo docs "Validate requests from Plivo — Signature V3"; PyPI
//! `plivo` 4.x `plivo.utils.signature_v3.validate_v3_signature`, whose rules these are). Built on
//! the URL-signing pattern of `twilio`/`square` (`public_url.rs`).
//!
//! * `X-Plivo-Signature-V3`: one or more signatures separated by `,` (not trimmed; any one
//!   matching is enough), each standard padded base64 of HMAC-SHA256 keyed with the auth
//!   token's UTF-8 bytes. `X-Plivo-Signature-Ma-V3` (the main account's signature on a
//!   subaccount's callback) is one more optional source of candidates.
//! * `X-Plivo-Signature-V3-Nonce` (required, signed): a random value per request.
//! * The signed text is `base_url ‖ "." ‖ nonce`, where `base_url` is built from the public URL
//!   (`public_url`'s scheme and authority, the request's path) like the SDK:
//!   - `q`: the request's query parameters, form-decoded, sorted by name then value, written
//!     `name=value` joined by `&` (decoded, not re-encoded);
//!   - GET: `url` + (`"?" ‖ q` when `q` is not empty);
//!   - POST: `p` = the form-decoded body parameters sorted by name then value, written
//!     `name ‖ value` with no separator (the body is read as a form whatever its
//!     Content-Type, as for Twilio). `url` + (`"?" ‖ q` when `q` or `p` is not empty) + (`"."`
//!     when both are) + `p`;
//!   - other methods: 401 (the SDK refuses them).
//! * No timestamp. The nonce is the message id (signed: a replay inside the dedupe window is a
//!   duplicate); outside the window nothing stops a replay, which Plivo's scheme does not
//!   prevent either.

use std::sync::Arc;
use std::time::Duration;

use http::Method;

use super::public_url::{path_and_query, PublicUrl};
use super::square::public_url;
use super::twilio::form_decode;
use super::{
    b64_std, mac_keys, match_encoded, required, single, Body, HmacAlgorithm, Input, MacKey,
    MessageId, SchemeDef, SchemeError, SignRequest, Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Plivo-Signature-V3";
pub(crate) const NONCE_HEADER: &str = "X-Plivo-Signature-V3-Nonce";
pub(crate) const MAIN_SIG_HEADER: &str = "X-Plivo-Signature-Ma-V3";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "plivo",
    message_id: MessageId::Headers(&[NONCE_HEADER]),
    headers: &[SIG_HEADER, NONCE_HEADER, MAIN_SIG_HEADER],
    options: &["public_url"],
    parse_options: Some(&super::public_url::OPTIONS),
    build: |options, secrets| {
        Ok(Arc::new(Plivo {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
            url: public_url(options, "plivo")?,
        }))
    },
    sign: |r| {
        let url = public_url(r.options, "plivo")?;
        let method = Method::from_bytes(r.method.as_bytes())
            .map_err(|_| SchemeError::config("invalid method"))?;
        let nonce =
            r.id.map_or_else(|| format!("n{}", r.timestamp), str::to_owned);
        let text = signed_text(&url, &method, r.path_and_query, r.body, &nonce)
            .ok_or_else(|| SchemeError::config("plivo signs GET and POST only"))?;
        let mac = MacKey::new(HmacAlgorithm::Sha256, r.secret).compute(&[text.as_bytes()]);
        Ok(vec![
            SignRequest::header(SIG_HEADER, b64_std(mac.as_bytes())),
            SignRequest::header(NONCE_HEADER, nonce),
        ])
    },
    id_signed: true,
    ..SchemeDef::BASE
};

#[derive(Debug)]
struct Plivo {
    keys: Vec<MacKey>,
    url: PublicUrl,
}

/// Pairs sorted by name, then value (UTF-8 byte order, as Python sorts `str`).
fn sorted(mut pairs: Vec<(String, String)>) -> Vec<(String, String)> {
    pairs.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then(a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    pairs
}

/// The SDK's signed text for a request, or `None` for a method other than GET and POST.
fn signed_text(
    url: &PublicUrl,
    method: &Method,
    path_and_query: &str,
    body: &[u8],
    nonce: &str,
) -> Option<String> {
    let (path, query) = match path_and_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_and_query, None),
    };
    let q = sorted(query.map(|q| form_decode(q.as_bytes())).unwrap_or_default())
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut out = url.url(path);
    let params = if *method == Method::GET {
        Vec::new()
    } else if *method == Method::POST {
        sorted(form_decode(body))
    } else {
        return None;
    };
    if !q.is_empty() || !params.is_empty() {
        out.push('?');
        out.push_str(&q);
    }
    if !q.is_empty() && !params.is_empty() {
        out.push('.');
    }
    for (k, v) in params {
        out.push_str(&k);
        out.push_str(&v);
    }
    out.push('.');
    out.push_str(nonce);
    Some(out)
}

impl Verifier for Plivo {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sigs = required(input.headers, SIG_HEADER)?;
        let nonce = required(input.headers, NONCE_HEADER)?;
        single(input.headers, MAIN_SIG_HEADER)?;
        let main = input
            .headers
            .get(MAIN_SIG_HEADER)
            .map(|v| {
                v.to_str()
                    .map_err(|_| VerifyError::MalformedSignature(MAIN_SIG_HEADER))
            })
            .transpose()?;
        let pq = path_and_query(input.uri);
        if !self.url.allows(pq) {
            return Err(VerifyError::BadSignature);
        }
        let text = signed_text(&self.url, input.method, pq, &input.body.joined(), nonce)
            .ok_or(VerifyError::BadSignature)?;
        let candidates: Vec<&[u8]> = sigs
            .split(',')
            .chain(main.into_iter().flat_map(|m| m.split(',')))
            .map(str::as_bytes)
            .collect();
        let key_index = match_encoded(
            &self.keys,
            &[text.as_bytes()],
            Body::EMPTY,
            &candidates,
            b64_std,
        )
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: input.headers.get(NONCE_HEADER).cloned(),
            timestamp: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{public_url_opts as opts, req_full, scheme, sn};

    fn text(method: &str, pq: &str, body: &[u8]) -> String {
        let u = PublicUrl::parse("https://hooks.example.com").unwrap();
        signed_text(
            &u,
            &Method::from_bytes(method.as_bytes()).unwrap(),
            pq,
            body,
            "N1",
        )
        .unwrap()
    }

    #[test]
    fn the_signed_text_is_the_sdks() {
        assert_eq!(text("POST", "/p", b""), "https://hooks.example.com/p.N1");
        assert_eq!(
            text("POST", "/p", b"To=2&From=1&A=x+y"),
            "https://hooks.example.com/p?Ax yFrom1To2.N1"
        );
        assert_eq!(
            text("POST", "/p?b=2&a=%2F", b"To=2"),
            "https://hooks.example.com/p?a=/&b=2.To2.N1"
        );
        assert_eq!(
            text("POST", "/p?b=2", b""),
            "https://hooks.example.com/p?b=2.N1"
        );
        assert_eq!(
            text("GET", "/p?b=2&a=1&a=0", b"ignored=1"),
            "https://hooks.example.com/p?a=0&a=1&b=2.N1"
        );
        let u = PublicUrl::parse("https://hooks.example.com").unwrap();
        assert!(signed_text(&u, &Method::PUT, "/p", b"", "N1").is_none());
    }

    #[test]
    fn valid_tampered_wrong_secret_missing_and_rotation() {
        let s = scheme(sn("plivo"), &opts(), &["old-token", "auth-token"]);
        let body = b"From=%2B1555&To=%2B1666&Text=hi";
        let mac = |k: &str, t: &str| {
            b64_std(
                MacKey::new(HmacAlgorithm::Sha256, k.as_bytes())
                    .compute(&[t.as_bytes()])
                    .as_bytes(),
            )
        };
        let good = mac("auth-token", &text("POST", "/plivo?x=1", body));
        let list = format!("{},{good}", mac("other", "x"));
        let run = |hs: &[(&str, &str)], pq: &str, b: &[u8]| {
            s.verify(&req_full("POST", pq, hs, b).input(), 0)
        };
        let h = [(SIG_HEADER, list.as_str()), (NONCE_HEADER, "N1")];
        let v = run(&h, "/plivo?x=1", body).unwrap();
        assert_eq!(v.key_index, 1);
        assert_eq!(v.id.unwrap().as_bytes(), b"N1");
        assert_eq!(
            run(&h, "/plivo?x=2", body).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&h, "/plivo?x=1", b"From=%2B1555&To=%2B1666&Text=ho").unwrap_err(),
            VerifyError::BadSignature
        );
        let h2 = [(SIG_HEADER, good.as_str()), (NONCE_HEADER, "N2")];
        assert_eq!(
            run(&h2, "/plivo?x=1", body).unwrap_err(),
            VerifyError::BadSignature
        );
        let wrong = mac("nope", &text("POST", "/plivo?x=1", body));
        let h3 = [(SIG_HEADER, wrong.as_str()), (NONCE_HEADER, "N1")];
        assert_eq!(
            run(&h3, "/plivo?x=1", body).unwrap_err(),
            VerifyError::BadSignature
        );
        // The main account's signature header is one more candidate.
        let h4 = [
            (SIG_HEADER, wrong.as_str()),
            (NONCE_HEADER, "N1"),
            (MAIN_SIG_HEADER, good.as_str()),
        ];
        assert!(run(&h4, "/plivo?x=1", body).is_ok());
        assert_eq!(
            run(&[(NONCE_HEADER, "N1")], "/plivo?x=1", body).unwrap_err(),
            VerifyError::MissingSignature(SIG_HEADER)
        );
        assert_eq!(
            run(&[(SIG_HEADER, good.as_str())], "/plivo?x=1", body).unwrap_err(),
            VerifyError::MissingSignature(NONCE_HEADER)
        );
        let padded = format!(" {good}");
        let h5 = [(SIG_HEADER, padded.as_str()), (NONCE_HEADER, "N1")];
        assert_eq!(
            run(&h5, "/plivo?x=1", body).unwrap_err(),
            VerifyError::BadSignature
        );
    }
}
