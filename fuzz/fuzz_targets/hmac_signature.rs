//! The generic `hmac` scheme's configurable signature header: the first input byte picks the
//! prefix and encoding of the route, the rest is the header value. Oracle (the rules of
//! `src/verify/hmac.rs`, restated): entries split on spaces and commas (spaces only when the
//! prefix holds a comma), entries without the prefix ignored, none left → malformed; the
//! request verifies exactly when an entry is the prefix followed by the MAC of one of the two
//! secrets in the configured encoding (base64url: with or without padding), and the reported
//! key is the first secret that matched.

#![no_main]

use std::sync::OnceLock;

use hookseal::verify::{
    sign, Encoding, HmacAlgorithm, HmacOptions, Scheme, SchemeName, SchemeOptions, SecretMaterial,
    VerifyError,
};
use hookseal_fuzz::Request;
use http::Method;
use libfuzzer_sys::fuzz_target;

const SECRETS: [&str; 2] = ["previous-secret", "current-secret"];
const BODY: &[u8] = b"{\"event\":\"ping\"}";
const PREFIXES: [&str; 3] = ["sha256=", "v1,", ""];
const ENCODINGS: [Encoding; 3] = [Encoding::Hex, Encoding::Base64, Encoding::Base64Url];

struct Route {
    scheme: Scheme,
    prefix: &'static str,
    /// Accepted spellings of each secret's MAC (without the prefix).
    accepted: Vec<Vec<String>>,
}

fn routes() -> &'static Vec<Route> {
    static R: OnceLock<Vec<Route>> = OnceLock::new();
    R.get_or_init(|| {
        let mut out = Vec::new();
        for prefix in PREFIXES {
            for encoding in ENCODINGS {
                let o = SchemeOptions {
                    hmac: Some(HmacOptions {
                        header: "X-Sig".into(),
                        algorithm: HmacAlgorithm::Sha256,
                        encoding,
                        prefix: prefix.into(),
                        timestamp_header: None,
                        id_header: None,
                        signed_payload: "{body}".into(),
                    }),
                    ..SchemeOptions::default()
                };
                let secrets: Vec<SecretMaterial> = SECRETS
                    .iter()
                    .enumerate()
                    .map(|(i, s)| SecretMaterial {
                        id: i.to_string(),
                        bytes: s.as_bytes().to_vec(),
                    })
                    .collect();
                let scheme =
                    Scheme::new(SchemeName::parse("hmac").expect("registered"), &o, &secrets)
                        .expect("scheme");
                let accepted = SECRETS
                    .iter()
                    .map(|s| {
                        let hs = sign(
                            SchemeName::parse("hmac").expect("registered"),
                            &o,
                            s.as_bytes(),
                            None,
                            0,
                            "POST",
                            "/",
                            BODY,
                        )
                        .expect("sign");
                        let mac = hs[0].1.strip_prefix(prefix).expect("prefix").to_owned();
                        let mut forms = vec![mac.clone()];
                        if encoding == Encoding::Base64Url {
                            let mut padded = mac;
                            while padded.len() % 4 != 0 {
                                padded.push('=');
                            }
                            forms.push(padded);
                        }
                        forms
                    })
                    .collect();
                out.push(Route {
                    scheme,
                    prefix,
                    accepted,
                });
            }
        }
        out
    })
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, value)) = data.split_first() else {
        return;
    };
    let route = &routes()[usize::from(pick) % 9];
    let req = Request::new(Method::POST, "/", &[(b"x-sig", value)], BODY);
    if !req.headers.contains_key("x-sig") {
        return;
    }
    let r = route.scheme.verify(&req.input(), 0);
    hookseal_fuzz::check_verified(&route.scheme, 2, 0, &r);
    if value.is_empty() {
        assert_eq!(r.unwrap_err(), VerifyError::MissingSignature("X-Sig"));
        return;
    }
    let text = match std::str::from_utf8(value) {
        Ok(t) if t.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => t,
        _ => {
            assert_eq!(r.unwrap_err(), VerifyError::MalformedSignature("X-Sig"));
            return;
        }
    };
    let comma = !route.prefix.contains(',');
    let candidates: Vec<&str> = text
        .split(|c| c == ' ' || (comma && c == ','))
        .filter(|e| !e.is_empty())
        .filter_map(|e| e.strip_prefix(route.prefix))
        .collect();
    if candidates.is_empty() {
        assert_eq!(
            r.unwrap_err(),
            VerifyError::MalformedSignature("X-Sig"),
            "{text:?}"
        );
        return;
    }
    let first_key = (0..SECRETS.len()).find(|&i| {
        candidates
            .iter()
            .any(|c| route.accepted[i].iter().any(|a| a == c))
    });
    match (r, first_key) {
        (Ok(v), Some(k)) => assert_eq!(v.key_index, k, "{text:?}"),
        (Err(e), None) => assert_eq!(e, VerifyError::BadSignature, "{text:?}"),
        (r, k) => panic!("{text:?}: got {r:?}, the reference says key {k:?}"),
    }
});
