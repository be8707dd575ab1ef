//! The Standard Webhooks `webhook-signature` list splitter: the input is the header value, the
//! id, timestamp and body are fixed, and the route has an HMAC (`whsec_`) and an Ed25519
//! (`whpk_`) key. Oracle: the request verifies exactly when one space-separated entry is the
//! right `v1,<base64>` or `v1a,<base64>` signature (both encodings are canonical, so each has
//! exactly one accepted spelling) — a `v1a` only among the first 8 `v1a` entries; a header with
//! no `version,signature` entry is malformed.

#![no_main]

use std::sync::OnceLock;

use base64::Engine as _;
use hookseal::verify::{sign, Scheme, SchemeName, SchemeOptions, SecretMaterial, VerifyError};
use hookseal_fuzz::Request;
use http::Method;
use libfuzzer_sys::fuzz_target;

const HMAC_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
/// The Ed25519 seed of the route's `whpk_` key (the sender's `whsk_`).
const ED_SEED: [u8; 32] = [7; 32];
const ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
const TS: i64 = 1_614_265_330;
const BODY: &[u8] = br#"{"test": 2432232314}"#;
/// How many `v1a` entries of one header are verified at most.
const MAX_V1A: usize = 8;

struct Fixture {
    scheme: Scheme,
    v1: String,
    v1a: String,
}

fn fixture() -> &'static Fixture {
    static F: OnceLock<Fixture> = OnceLock::new();
    F.get_or_init(|| {
        let o = SchemeOptions::default();
        let sig = |secret: &str| {
            let hs = sign(
                SchemeName::parse("standard-webhooks").expect("registered"),
                &o,
                secret.as_bytes(),
                Some(ID),
                TS,
                "POST",
                "/",
                BODY,
            )
            .expect("sign");
            hs.into_iter()
                .find(|(n, _)| n == "webhook-signature")
                .expect("signature")
                .1
        };
        let v1 = sig(HMAC_SECRET);
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let v1a = sig(&format!("whsk_{}", b64(&ED_SEED)));
        let vk = b64(ed25519_dalek::SigningKey::from_bytes(&ED_SEED)
            .verifying_key()
            .as_bytes());
        let secrets = [
            SecretMaterial {
                id: "hmac".into(),
                bytes: HMAC_SECRET.as_bytes().to_vec(),
            },
            SecretMaterial {
                id: "ed".into(),
                bytes: format!("whpk_{vk}").into_bytes(),
            },
        ];
        let scheme = Scheme::new(
            SchemeName::parse("standard-webhooks").expect("registered"),
            &o,
            &secrets,
        )
        .expect("scheme");
        Fixture { scheme, v1, v1a }
    })
}

fuzz_target!(|data: &[u8]| {
    let f = fixture();
    let ts = TS.to_string();
    let req = Request::new(
        Method::POST,
        "/",
        &[
            (b"webhook-id", ID.as_bytes()),
            (b"webhook-timestamp", ts.as_bytes()),
            (b"webhook-signature", data),
        ],
        BODY,
    );
    if !req.headers.contains_key("webhook-signature") {
        return; // not a valid header value: hyper never delivers it
    }
    let r = f.scheme.verify(&req.input(), TS);
    hookseal_fuzz::check_verified(&f.scheme, 2, TS, &r);
    let Ok(text) = std::str::from_utf8(data) else {
        assert!(r.is_err());
        return;
    };
    let visible = text
        .bytes()
        .all(|b| b == b'\t' || (b' '..=b'~').contains(&b));
    if data.is_empty() {
        assert_eq!(
            r.unwrap_err(),
            VerifyError::MissingSignature("webhook-signature")
        );
        return;
    }
    if !visible {
        assert_eq!(
            r.unwrap_err(),
            VerifyError::MalformedSignature("webhook-signature")
        );
        return;
    }
    let entries: Vec<&str> = text
        .split(' ')
        .filter(|e| !e.is_empty() && e.contains(','))
        .collect();
    if entries.is_empty() {
        assert_eq!(
            r.unwrap_err(),
            VerifyError::MalformedSignature("webhook-signature")
        );
        return;
    }
    // Only the first MAX_V1A (8) `v1a` entries are Ed25519-verified (a CPU cap, standard.rs).
    let genuine_v1a = entries
        .iter()
        .filter(|e| e.split_once(',').is_some_and(|(v, _)| v == "v1a"))
        .take(MAX_V1A)
        .any(|e| *e == f.v1a);
    let genuine = genuine_v1a || entries.iter().any(|e| *e == f.v1);
    match r {
        Ok(v) => {
            assert!(genuine, "accepted a forged signature list {text:?}");
            assert_eq!(v.timestamp, Some(TS));
        }
        Err(e) => {
            assert!(
                !genuine,
                "rejected a list holding the genuine signature: {text:?}: {e:?}"
            );
            assert_eq!(e, VerifyError::BadSignature);
        }
    }
});
