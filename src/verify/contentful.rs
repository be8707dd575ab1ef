//! Contentful request verification (webhooks with a signing secret, app actions and events):
//! `x-contentful-signature` = lowercase hex HMAC-SHA256 of a canonical request, with
//! `x-contentful-signed-headers` (the comma-separated, lowercase names of the signed headers)
//! and `x-contentful-timestamp` (unix milliseconds). Source: Contentful "Request verification"
//! (contentful.com/developers/docs/extensibility/app-framework/request-verification) and
//! `@contentful/node-apps-toolkit`'s `verifyRequest` / `signRequest`, whose behaviour this
//! follows where the docs are silent.
//!
//! * Canonical request: `{method}\n{path}\n{headers}\n{body}`. `{headers}` is every signed
//!   header present in the request as `name:value` (name lowercase, value trimmed), sorted by
//!   name, joined by `;`, where `x-contentful-timestamp` is the timestamp re-serialized and
//!   `x-contentful-signed-headers` the sorted list itself. `{path}` is the request's path and
//!   query as received, the query escaped as Node's `querystring.escape`, then the whole as
//!   `encodeURI` (so `?a=1` is signed as `?a%253D1`), as the toolkit does.
//! * **Secret**: the 64-character signing secret (the toolkit refuses any other length).
//! * All three headers required. The signature must be 64 characters, the timestamp a strict
//!   integer (else malformed); the list must name at least two headers (else malformed) and
//!   equal its own sorted form — stricter than the toolkit, which re-derives the list and so
//!   would accept any spelling of it; a sender never sends another. A listed header sent twice
//!   is malformed; a listed header that is absent is left out, as the toolkit does.
//! * Window: 30 s (the toolkit's default TTL), symmetric (the toolkit checks only the age).
//! * No message id.

use std::sync::Arc;
use std::time::Duration;

use http::HeaderName;

use super::{
    check_window, hex_lower, mac_keys, match_encoded, parse_unix, required, HmacAlgorithm, Input,
    MacKey, SchemeDef, SchemeError, SecretMaterial, SignRequest, Verified, Verifier, VerifyError,
};
use crate::verify::public_url::path_and_query;

pub(crate) const SIG_HEADER: &str = "x-contentful-signature";
pub(crate) const SIGNED_HEADERS: &str = "x-contentful-signed-headers";
pub(crate) const TS_HEADER: &str = "x-contentful-timestamp";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "contentful",
    default_tolerance: Duration::from_secs(30),
    headers: &[SIG_HEADER, SIGNED_HEADERS, TS_HEADER],
    build: |_, secrets| Ok(Arc::new(Contentful::new(secrets)?)),
    sign: |r| {
        check_secret(0, r.secret)?;
        let ms = (i128::from(r.timestamp) * 1000).to_string();
        let list = format!("{SIGNED_HEADERS},{TS_HEADER}");
        let headers = format!("{SIGNED_HEADERS}:{list};{TS_HEADER}:{ms}");
        let mac = MacKey::new(HmacAlgorithm::Sha256, r.secret).compute(&[
            r.method.as_bytes(),
            b"\n",
            canonical_path(r.path_and_query).as_bytes(),
            b"\n",
            headers.as_bytes(),
            b"\n",
            r.body,
        ]);
        Ok(vec![
            SignRequest::header(SIG_HEADER, hex_lower(mac.as_bytes())),
            SignRequest::header(SIGNED_HEADERS, list),
            SignRequest::header(TS_HEADER, ms),
        ])
    },
    // The signed text holds the method, path and chosen headers besides the body, which
    // `SignedContent::Body` does not describe: `dedupe_key = "signature"` is refused.
    event: crate::events::DefaultEvent::Header("X-Contentful-Topic"),
    ..SchemeDef::BASE
};

fn check_secret(i: usize, s: &[u8]) -> Result<(), SchemeError> {
    if s.len() == 64 && s.iter().all(|b| (0x21..=0x7e).contains(b)) {
        Ok(())
    } else {
        Err(SchemeError::secret(
            i,
            "contentful signing secret must be the 64-character secret Contentful shows",
        ))
    }
}

#[derive(Debug, Clone)]
struct Contentful {
    keys: Vec<MacKey>,
}

impl Contentful {
    fn new(secrets: &[SecretMaterial]) -> Result<Contentful, SchemeError> {
        for (i, s) in secrets.iter().enumerate() {
            check_secret(i, &s.bytes)?;
        }
        Ok(Contentful {
            keys: mac_keys(HmacAlgorithm::Sha256, secrets),
        })
    }
}

/// Percent-encodes every byte outside `keep` (and ASCII alphanumerics), uppercase hex.
fn escape(s: &str, keep: &[u8]) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || keep.contains(&b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push_str(&hex_lower(&[b]).to_ascii_uppercase());
        }
    }
    out
}

/// The toolkit's path: the text before the first `?`, then (when the text between the first
/// and a second `?` is not empty) `?` and that text escaped as `querystring.escape`; the whole
/// escaped as `encodeURI`.
pub(crate) fn canonical_path(pq: &str) -> String {
    let mut parts = pq.split('?');
    let path = parts.next().unwrap_or("");
    let search = parts.next().unwrap_or("");
    let joined = if search.is_empty() {
        path.to_owned()
    } else {
        format!("{path}?{}", escape(search, b"-_.!~*'()"))
    };
    escape(&joined, b";,/?:@&=+$-_.!~*'()#")
}

impl Verifier for Contentful {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let h = input.headers;
        let sig = required(h, SIG_HEADER)?;
        let list = required(h, SIGNED_HEADERS)?;
        let ts_text = required(h, TS_HEADER)?;
        if sig.len() != 64 {
            return Err(VerifyError::MalformedSignature(SIG_HEADER));
        }
        let ms = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(TS_HEADER))?;
        let names: Vec<&str> = list.split(',').collect();
        if names.len() < 2 {
            return Err(VerifyError::MalformedSignature(SIGNED_HEADERS));
        }
        // The headers signed: the listed ones present (lowercase name, trimmed value), with
        // the timestamp re-serialized and the list as its own sorted form.
        let mut signed: Vec<(String, String)> = Vec::with_capacity(names.len() + 2);
        for name in &names {
            let lower = name.trim().to_ascii_lowercase();
            if lower == SIGNED_HEADERS
                || lower == TS_HEADER
                || signed.iter().any(|(k, _)| *k == lower)
            {
                continue;
            }
            let Ok(header) = HeaderName::from_bytes(lower.as_bytes()) else {
                continue;
            };
            let Some(value) = h.get(&header) else {
                continue;
            };
            if h.get_all(&header).iter().nth(1).is_some() {
                return Err(VerifyError::MalformedSignature(SIGNED_HEADERS));
            }
            let value = value
                .to_str()
                .map_err(|_| VerifyError::MalformedSignature(SIGNED_HEADERS))?;
            signed.push((lower, value.trim().to_owned()));
        }
        signed.push((SIGNED_HEADERS.to_owned(), String::new()));
        signed.push((TS_HEADER.to_owned(), ms.to_string()));
        signed.sort_by(|a, b| a.0.cmp(&b.0));
        let sorted_list = signed
            .iter()
            .map(|(k, _)| k.as_str())
            .collect::<Vec<_>>()
            .join(",");
        for (k, v) in &mut signed {
            if k == SIGNED_HEADERS {
                v.clone_from(&sorted_list);
            }
        }
        check_window(ms.div_euclid(1000), now, tol)?;
        // A list that is not the sorted list of what it names is not what a sender signs.
        if list != sorted_list {
            return Err(VerifyError::BadSignature);
        }
        let header_text = signed
            .iter()
            .map(|(k, v)| format!("{k}:{v}"))
            .collect::<Vec<_>>()
            .join(";");
        let path = canonical_path(path_and_query(input.uri));
        let prefix: [&[u8]; 6] = [
            input.method.as_str().as_bytes(),
            b"\n",
            path.as_bytes(),
            b"\n",
            header_text.as_bytes(),
            b"\n",
        ];
        let key_index = match_encoded(
            &self.keys,
            &prefix,
            input.body,
            &[sig.as_bytes()],
            hex_lower,
        )
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: None,
            timestamp: Some(ms.div_euclid(1000)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req_full, scheme, secret, sn};
    use crate::verify::{Scheme, SchemeOptions};

    const KEY: &str = "s3cr3t-0123456789abcdef0123456789abcdef0123456789abcdef012345678";

    #[test]
    fn canonical_path_is_the_toolkits() {
        assert_eq!(canonical_path("/hooks/in"), "/hooks/in");
        assert_eq!(
            canonical_path("/x?a=1&b=c d"),
            "/x?a%253D1%2526b%253Dc%2520d"
        );
        assert_eq!(canonical_path("/a%20b?"), "/a%2520b");
        assert_eq!(canonical_path("/p?q?r"), "/p?q");
    }

    #[test]
    fn sign_verify_extra_headers_window_and_strictness() {
        assert_eq!(KEY.len(), 64);
        let s = scheme(
            sn("contentful"),
            &SchemeOptions::default(),
            &["x".repeat(64).as_str(), KEY],
        );
        let r = SignRequest {
            options: &SchemeOptions::default(),
            secret: KEY.as_bytes(),
            id: None,
            timestamp: 1000,
            method: "POST",
            path_and_query: "/hooks/in?x=1",
            body: b"{\"sys\":{}}",
        };
        let hs = (DEF.sign)(&r).unwrap();
        let run = |hs: &[(String, String)], now: i64| {
            let v: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            s.verify(
                &req_full("POST", "/hooks/in?x=1", &v, b"{\"sys\":{}}").input(),
                now,
            )
        };
        let v = run(&hs, 1000).unwrap();
        assert_eq!((v.key_index, v.timestamp), (1, Some(1000)));
        assert!(run(&hs, 1030).is_ok());
        assert!(matches!(
            run(&hs, 1031),
            Err(VerifyError::StaleTimestamp { .. })
        ));
        let with = |name: &str, value: &str| -> Vec<(String, String)> {
            hs.iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        if k == name {
                            value.to_owned()
                        } else {
                            v.clone()
                        },
                    )
                })
                .collect()
        };
        // uppercase hex, a list out of order, a list of one, a bad timestamp
        assert_eq!(
            run(&with(SIG_HEADER, &hs[0].1.to_uppercase()), 1000).unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(
                &with(
                    SIGNED_HEADERS,
                    "x-contentful-timestamp,x-contentful-signed-headers"
                ),
                1000
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
        assert_eq!(
            run(&with(SIGNED_HEADERS, "x-contentful-timestamp"), 1000).unwrap_err(),
            VerifyError::MalformedSignature(SIGNED_HEADERS)
        );
        assert_eq!(
            run(&with(TS_HEADER, "1e6"), 1000).unwrap_err(),
            VerifyError::MalformedSignature(TS_HEADER)
        );
        assert_eq!(
            run(&with(SIG_HEADER, "abc"), 1000).unwrap_err(),
            VerifyError::MalformedSignature(SIG_HEADER)
        );
        // the path is signed
        let v: Vec<(&str, &str)> = hs.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        assert_eq!(
            s.verify(
                &req_full("POST", "/hooks/in?x=2", &v, b"{\"sys\":{}}").input(),
                1000
            )
            .unwrap_err(),
            VerifyError::BadSignature
        );
    }

    #[test]
    fn secrets_are_64_characters_and_stay_out_of_debug() {
        let o = SchemeOptions::default();
        for bad in ["short", &"y".repeat(65)] {
            let e = Scheme::new(sn("contentful"), &o, &[secret(bad)]).unwrap_err();
            assert_eq!(e.secret_index, Some(0));
        }
        let s = scheme(sn("contentful"), &o, &[KEY]);
        assert!(!format!("{s:?}").contains("s3cr3t"));
    }
}
