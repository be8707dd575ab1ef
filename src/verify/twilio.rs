//! Twilio, SCHEMES.md §7 (PyPI `twilio` 9.13.0 `RequestValidator`).
//!
//! `X-Twilio-Signature` = standard padded base64 of HMAC-SHA1 (auth token as UTF-8 key) over
//! `url ‖ concat(name ‖ value for the sorted POST form parameters)`.
//!
//! * `url` is formed from the route's `public_url` and the request as documented in
//!   `public_url.rs` (public scheme/host/port, the request's path and query as received; a
//!   path in `public_url` must be the request's, else bad signature). Like the SDK, both the
//!   URL without any port and the URL with the port (explicit or the default 443/80) are
//!   tried.
//! * If the request query has a `bodySHA256` parameter (JSON bodies), the body is not parsed:
//!   `bodySHA256` must equal the lowercase hex SHA-256 of the body, and only the URL is signed.
//!   Otherwise the body is decoded as `application/x-www-form-urlencoded` whatever the
//!   Content-Type (`+` → space, `%XX`; invalid escapes kept literally, invalid UTF-8 replaced by
//!   U+FFFD, blank values kept), parameters are sorted by name then value (UTF-8 byte order)
//!   and exact duplicate pairs are counted once (the SDK iterates `sorted(set(values))`).
//! * `X-Twilio-Webhooks-Signature-Settings: ...,algorithm=HMAC_SHA256` selects HMAC-SHA256
//!   (SharedKey); `HMAC_SHA1` or no header → HMAC-SHA1; another algorithm → malformed.
//! * No timestamp. Id: `I-Twilio-Idempotency-Token` when present (Twilio's per-delivery token,
//!   unsigned, the same on retries).

use std::time::Duration;

use sha2::Digest as _;

use super::public_url::{path_and_query, PublicUrl};
use super::square::public_url;
use super::{
    b64_std, ct_eq, hex_lower, mac_keys, match_encoded, optional_id, required, Body, HmacAlgorithm,
    Input, MacKey, MessageId, SchemeDef, SchemeError, SchemeOptions, SecretMaterial, SignRequest,
    Verified, Verifier, VerifyError,
};

pub(crate) const SIG_HEADER: &str = "X-Twilio-Signature";
pub(crate) const SETTINGS_HEADER: &str = "X-Twilio-Webhooks-Signature-Settings";
pub(crate) const ID_HEADER: &str = "I-Twilio-Idempotency-Token";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "twilio",
    message_id: MessageId::Headers(&[ID_HEADER]),
    headers: &[SIG_HEADER, SETTINGS_HEADER, ID_HEADER],
    options: &["public_url"],
    parse_options: Some(&super::public_url::OPTIONS),
    build: |options, secrets| Ok(std::sync::Arc::new(Twilio::new(options, secrets)?)),
    sign: |r| {
        let sig = sign_value(r.secret, r.options, r.path_and_query, r.body)?;
        Ok(r.with_id(SignRequest::header(SIG_HEADER, sig), ID_HEADER))
    },
    signed_content: super::SignedContent::Header(SIG_HEADER),
    ..SchemeDef::BASE
};

#[derive(Debug, Clone)]
struct Twilio {
    sha1: Vec<MacKey>,
    sha256: Vec<MacKey>,
    url: PublicUrl,
}

impl Twilio {
    pub(crate) fn new(
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Twilio, SchemeError> {
        Ok(Twilio {
            sha1: mac_keys(HmacAlgorithm::Sha1, secrets),
            sha256: mac_keys(HmacAlgorithm::Sha256, secrets),
            url: public_url(options, "twilio")?,
        })
    }
}

impl Verifier for Twilio {
    fn verify(&self, input: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        let sig = required(input.headers, SIG_HEADER)?;
        let alg = algorithm(input)?;
        let pq = path_and_query(input.uri);
        if !self.url.allows(pq) {
            return Err(VerifyError::BadSignature);
        }
        let urls = self.url.twilio_variants(pq);
        let payload = match signed_params(input.uri.query(), &input.body.joined()) {
            Payload::BodyHash(ok) => {
                if !ok {
                    return Err(VerifyError::BadSignature);
                }
                Vec::new()
            }
            Payload::Form(p) => p,
        };
        let keys = match alg {
            HmacAlgorithm::Sha256 => &self.sha256,
            _ => &self.sha1,
        };
        // Both URL variants are always computed; the lowest matching key index wins.
        let found = urls
            .iter()
            .filter_map(|url| {
                let parts: [&[u8]; 2] = [url.as_bytes(), &payload];
                match_encoded(keys, &parts, Body::EMPTY, &[sig.as_bytes()], b64_std)
            })
            .min();
        let key_index = found.ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: optional_id(input.headers, ID_HEADER)?,
            timestamp: None,
        })
    }
}

fn algorithm(input: &Input<'_>) -> Result<HmacAlgorithm, VerifyError> {
    super::single(input.headers, SETTINGS_HEADER)?;
    let Some(v) = input.headers.get(SETTINGS_HEADER) else {
        return Ok(HmacAlgorithm::Sha1);
    };
    let s = v
        .to_str()
        .map_err(|_| VerifyError::MalformedSignature(SETTINGS_HEADER))?;
    let alg = s
        .split(',')
        .filter_map(|e| e.split_once('='))
        .find(|(k, _)| k.trim() == "algorithm")
        .map(|(_, v)| v.trim());
    match alg {
        None | Some("HMAC_SHA1") => Ok(HmacAlgorithm::Sha1),
        Some("HMAC_SHA256") => Ok(HmacAlgorithm::Sha256),
        Some(_) => Err(VerifyError::MalformedSignature(SETTINGS_HEADER)),
    }
}

enum Payload {
    /// `bodySHA256` in the query: whether it matched the body.
    BodyHash(bool),
    /// Sorted, concatenated form parameters.
    Form(Vec<u8>),
}

fn signed_params(query: Option<&str>, body: &[u8]) -> Payload {
    if let Some(q) = query {
        if let Some((_, want)) = form_decode(q.as_bytes())
            .into_iter()
            .find(|(k, _)| k == "bodySHA256")
        {
            let got = hex_lower(&sha2::Sha256::digest(body));
            return Payload::BodyHash(bool::from(ct_eq(got.as_bytes(), want.as_bytes())));
        }
    }
    let mut params = form_decode(body);
    params.sort_by(|a, b| {
        a.0.as_bytes()
            .cmp(b.0.as_bytes())
            .then(a.1.as_bytes().cmp(b.1.as_bytes()))
    });
    params.dedup();
    let mut out = Vec::with_capacity(body.len());
    for (k, v) in params {
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    Payload::Form(out)
}

/// `application/x-www-form-urlencoded` decoding as the WHATWG URL standard defines it (the
/// `form_urlencoded` crate): pairs split on `&` (empty pieces skipped), name/value on the first
/// `=` (none → empty value), `+` → space, `%XX` decoded, an invalid escape kept literally,
/// invalid UTF-8 replaced by U+FFFD. Never panics.
pub(crate) fn form_decode(input: &[u8]) -> Vec<(String, String)> {
    form_urlencoded::parse(input)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `X-Twilio-Signature` (HMAC-SHA1) for the URL formed from `public_url` (scheme and
/// authority as written, no port added) and `path_and_query`, and the body.
pub(crate) fn sign_value(
    secret: &[u8],
    options: &SchemeOptions,
    path_and_query: &str,
    body: &[u8],
) -> Result<String, SchemeError> {
    let url = public_url(options, "twilio")?.url(path_and_query);
    let query = path_and_query.split_once('?').map(|(_, q)| q);
    let payload = match signed_params(query, body) {
        Payload::BodyHash(true) => Vec::new(),
        Payload::BodyHash(false) => {
            return Err(SchemeError::config(
                "bodySHA256 in the URL does not match the body",
            ))
        }
        Payload::Form(p) => p,
    };
    let mac = MacKey::new(HmacAlgorithm::Sha1, secret).compute(&[url.as_bytes(), &payload]);
    Ok(b64_std(mac.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn form_decoding() {
        let d = form_decode(b"a=1&b=H%C3%A9llo+w&&c&d=%zz%4&e=%41");
        assert_eq!(
            d,
            vec![
                ("a".into(), "1".into()),
                ("b".into(), "Héllo w".into()),
                ("c".into(), String::new()),
                ("d".into(), "%zz%4".into()),
                ("e".into(), "A".into()),
            ]
        );
        assert_eq!(form_decode(b"x=%FF")[0].1, "\u{fffd}");
    }

    use crate::verify::tests::{req_full, scheme, sn};
    use crate::verify::VerifyError;

    fn opts() -> SchemeOptions {
        SchemeOptions {
            public_url: Some("https://sms.example.com/twilio".into()),
            ..SchemeOptions::default()
        }
    }

    #[test]
    fn ports_json_bodies_and_sha256() {
        let s = scheme(sn("twilio"), &opts(), &["tok"]);
        let body = b"To=%2B1&From=%2B2&Body=hi";
        // sorted params: Body, From, To
        let expected_payload = "https://sms.example.com:443/twilio?x=1BodyhiFrom+2To+1";
        let mac = MacKey::new(HmacAlgorithm::Sha1, b"tok").compute(&[expected_payload.as_bytes()]);
        let with_port = b64_std(mac.as_bytes());
        let h = [(SIG_HEADER, with_port.as_str())];
        assert!(s
            .verify(&req_full("POST", "/twilio?x=1", &h, body).input(), 0)
            .is_ok());
        let plain = sign_value(b"tok", &opts(), "/twilio?x=1", body).unwrap();
        let h = [(SIG_HEADER, plain.as_str())];
        assert!(s
            .verify(&req_full("POST", "/twilio?x=1", &h, body).input(), 0)
            .is_ok());
        // SharedKey HMAC-SHA256 selected by the settings header
        let url = "https://sms.example.com/twilio?x=1";
        let mac = MacKey::new(HmacAlgorithm::Sha256, b"tok")
            .compute(&[url.as_bytes(), b"BodyhiFrom+2To+1"]);
        let sha256 = b64_std(mac.as_bytes());
        let h = [
            (SIG_HEADER, sha256.as_str()),
            (SETTINGS_HEADER, "key=k1,algorithm=HMAC_SHA256"),
        ];
        assert!(s
            .verify(&req_full("POST", "/twilio?x=1", &h, body).input(), 0)
            .is_ok());
        let h = [
            (SIG_HEADER, sha256.as_str()),
            (SETTINGS_HEADER, "algorithm=HMAC_MD5"),
        ];
        assert_eq!(
            s.verify(&req_full("POST", "/twilio?x=1", &h, body).input(), 0)
                .unwrap_err(),
            VerifyError::MalformedSignature(SETTINGS_HEADER)
        );
        // JSON body: bodySHA256 in the query, URL only signed
        let json = br#"{"a":1}"#;
        let pq = format!(
            "/twilio?bodySHA256={}",
            hex_lower(&sha2::Sha256::digest(json))
        );
        let sig = sign_value(b"tok", &opts(), &pq, json).unwrap();
        let h = [(SIG_HEADER, sig.as_str())];
        assert!(s
            .verify(&req_full("POST", &pq, &h, json).input(), 0)
            .is_ok());
        assert_eq!(
            s.verify(&req_full("POST", &pq, &h, br#"{"a":2}"#).input(), 0)
                .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    /// Issue 17, finding 3: a genuine delivery for `/twilio/sms` replayed to another path of a
    /// `path_prefix = "/twilio/"` route is refused, with or without a path in `public_url`.
    #[test]
    fn a_delivery_replayed_to_another_path_is_refused() {
        let body = b"From=%2B1555&Body=hi";
        let sms = SchemeOptions {
            public_url: Some("https://sms.example.com/twilio/sms".into()),
            ..SchemeOptions::default()
        };
        let sig = sign_value(b"tok", &sms, "/twilio/sms?x=1", body).unwrap();
        let h = [(SIG_HEADER, sig.as_str())];
        for public in [
            "https://sms.example.com",
            "https://sms.example.com/twilio/sms",
        ] {
            let o = SchemeOptions {
                public_url: Some(public.into()),
                ..SchemeOptions::default()
            };
            let s = scheme(sn("twilio"), &o, &["tok"]);
            assert!(s
                .verify(&req_full("POST", "/twilio/sms?x=1", &h, body).input(), 0)
                .is_ok());
            for other in ["/twilio/admin/delete-all?x=1", "/twilio/SMS?x=1"] {
                assert_eq!(
                    s.verify(&req_full("POST", other, &h, body).input(), 0)
                        .unwrap_err(),
                    VerifyError::BadSignature,
                    "{public} {other}"
                );
            }
        }
    }
}
