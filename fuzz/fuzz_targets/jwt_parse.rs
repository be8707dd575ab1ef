//! The `jwt` engine's parsers: the input is tried as a compact JWS (`ParsedToken::parse`), as
//! a JWKS document (`KeySet::from_jwks_json`) and as an `Authorization` header value
//! (`token_from_headers`). Oracle: nothing panics; a token over `MAX_TOKEN_BYTES` or with other
//! than three parts is refused; a parsed token's algorithm is one of the three supported (never
//! `none` or an HMAC); a parsed JWKS is not empty and every key kept has at most one `kid`
//! match per lookup; a Bearer token is a suffix of the header value.

#![no_main]

use hookseal::verify::jwt::{token_from_headers, Algorithm, KeySet, ParsedToken, MAX_TOKEN_BYTES};
use http::{HeaderMap, HeaderValue};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        match ParsedToken::parse(text) {
            Ok(t) => {
                assert!(text.len() <= MAX_TOKEN_BYTES);
                assert_eq!(text.split('.').count(), 3);
                assert!(Algorithm::ALL.contains(&t.alg()));
            }
            Err(e) => assert_eq!(e.reason(), "bad_token"),
        }
        if let Ok(v) = HeaderValue::from_str(text) {
            let mut h = HeaderMap::new();
            h.insert("authorization", v);
            if let Ok(token) = token_from_headers(&h, None) {
                assert!(!token.is_empty());
                assert!(text.trim().ends_with(token));
            }
        }
    }
    if let Ok(set) = KeySet::from_jwks_json(data) {
        assert!(!set.keys().is_empty());
        for k in set.keys() {
            if let Some(kid) = k.kid() {
                assert!(set.has_kid(kid));
            }
        }
    }
});
