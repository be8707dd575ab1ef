//! The `Stripe-Signature` parser: the input is the header value; secret, body and clock are
//! fixed. Oracle (the rules of `src/verify/stripe.rs`, restated): elements split on `,`, each
//! on its first `=`; the first `t` is the timestamp (strict integer, else malformed; outside
//! the window → stale/future); the request verifies exactly when some `v1` element is the
//! lowercase hex HMAC of `{t}.{body}`.

#![no_main]

use hookseal::verify::{sign, Scheme, SchemeName, SchemeOptions, SecretMaterial, VerifyError};
use hookseal_fuzz::{reference_unix, Request};
use http::Method;
use libfuzzer_sys::fuzz_target;

const SECRET: &str = "whsec_Ky7mQ2pV9sT4wX1zB6nD3fH8jL0cR5eA";
const NOW: i64 = 1_735_689_600;
const BODY: &[u8] = br#"{"id":"evt_1","object":"event"}"#;
const NAME: &str = "Stripe-Signature";

fn expected_v1(ts: i64) -> String {
    let hs = sign(
        SchemeName::parse("stripe").expect("registered"),
        &SchemeOptions::default(),
        SECRET.as_bytes(),
        None,
        ts,
        "POST",
        "/",
        BODY,
    )
    .expect("sign");
    let value = &hs[0].1;
    value.split_once(",v1=").expect("v1").1.to_owned()
}

fuzz_target!(|data: &[u8]| {
    let secrets = [SecretMaterial {
        id: "0".into(),
        bytes: SECRET.as_bytes().to_vec(),
    }];
    let scheme = Scheme::new(
        SchemeName::parse("stripe").expect("registered"),
        &SchemeOptions::default(),
        &secrets,
    )
    .expect("scheme");
    let req = Request::new(Method::POST, "/", &[(b"stripe-signature", data)], BODY);
    if !req.headers.contains_key(NAME) {
        return;
    }
    let r = scheme.verify(&req.input(), NOW);
    hookseal_fuzz::check_verified(&scheme, 1, NOW, &r);
    if data.is_empty() {
        assert_eq!(r.unwrap_err(), VerifyError::MissingSignature(NAME));
        return;
    }
    let text = match std::str::from_utf8(data) {
        Ok(t) if t.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b)) => t,
        _ => {
            assert_eq!(r.unwrap_err(), VerifyError::MalformedSignature(NAME));
            return;
        }
    };
    let elements: Vec<(&str, &str)> = text.split(',').filter_map(|e| e.split_once('=')).collect();
    let t = elements.iter().find(|(k, _)| *k == "t").map(|(_, v)| *v);
    let Some(ts) = t.and_then(reference_unix) else {
        assert_eq!(
            r.unwrap_err(),
            VerifyError::MalformedSignature(NAME),
            "{text:?}"
        );
        return;
    };
    let skew = i128::from(ts) - i128::from(NOW);
    if skew < -300 {
        assert!(
            matches!(r, Err(VerifyError::StaleTimestamp { .. })),
            "{text:?}: {r:?}"
        );
        return;
    }
    if skew > 300 {
        assert!(
            matches!(r, Err(VerifyError::FutureTimestamp { .. })),
            "{text:?}: {r:?}"
        );
        return;
    }
    let want = expected_v1(ts);
    let genuine = elements.iter().any(|(k, v)| *k == "v1" && *v == want);
    match r {
        Ok(v) => {
            assert!(genuine, "accepted a forged header {text:?}");
            assert_eq!(v.timestamp, Some(ts));
        }
        Err(e) => {
            assert!(
                !genuine,
                "rejected the genuine signature in {text:?}: {e:?}"
            );
            assert_eq!(e, VerifyError::BadSignature);
        }
    }
});
