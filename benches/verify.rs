//! Signature verification per scheme × body size, next to a bare HMAC of the same bytes.
//!
//!     cargo bench --bench verify
//!     cargo bench --bench verify -- '64KiB'          # one size
//!
//! Every scheme verifies a request its own sender signed (via `hookseal::verify::sign`), with
//! one configured secret. The `bare/*` rows are the floor: a keyed MAC state prepared once and
//! cloned per message (what the schemes do), fed the body, finalized; nothing else. A scheme's
//! overhead is its row minus the matching bare row (HMAC-SHA256 for most, HMAC-SHA1 for
//! hotglue/twilio form bodies, SHA-256 + a short HMAC-SHA1 for twilio JSON bodies, Ed25519
//! (SHA-512 of the message + a point check) for discord).

use std::hint::black_box;
use std::time::Duration;

use base64::Engine as _;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use hmac::{Hmac, KeyInit, Mac};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use sha2::Digest as _;

use hookseal::verify::{
    sign, Encoding, HmacAlgorithm, HmacOptions, Input, Scheme, SchemeName, SchemeOptions,
    SecretMaterial,
};

const SIZES: &[(usize, &str)] = &[(1024, "1KiB"), (64 * 1024, "64KiB"), (1024 * 1024, "1MiB")];
const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z; verify() takes the clock as an argument
const PLAIN_SECRET: &[u8] = b"bench-secret-4f1c9a7e2b";

/// A JSON body of exactly `len` bytes (linear needs `webhookTimestamp` in it).
fn body(len: usize) -> Vec<u8> {
    let head = format!("{{\"webhookTimestamp\":{},\"data\":\"", NOW * 1000);
    let tail = "\"}";
    let fill = len.saturating_sub(head.len() + tail.len());
    let mut b = Vec::with_capacity(len);
    b.extend_from_slice(head.as_bytes());
    b.extend((0..fill).map(|i| b"abcdefghijklmnopqrstuvwxyz012345"[i % 32]));
    b.extend_from_slice(tail.as_bytes());
    b
}

/// One scheme under test: the verifier and a request its sender signed.
struct Case {
    label: &'static str,
    scheme: Scheme,
    uri: Uri,
    headers: HeaderMap,
}

fn case(
    label: &'static str,
    name: SchemeName,
    options: SchemeOptions,
    sender_secret: &[u8],
    verifier_secret: &[u8],
    path_and_query: &str,
    body: &[u8],
) -> Case {
    let scheme = Scheme::new(
        name,
        &options,
        &[SecretMaterial {
            id: "k".into(),
            bytes: verifier_secret.to_vec(),
        }],
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    let signed = sign(
        name,
        &options,
        sender_secret,
        Some("msg_2bench0000000000000000001"),
        NOW,
        "POST",
        path_and_query,
        body,
    )
    .unwrap_or_else(|e| panic!("{label}: {e}"));
    let mut headers = HeaderMap::new();
    for (k, v) in signed {
        headers.append(
            HeaderName::from_bytes(k.as_bytes()).expect("header name"),
            HeaderValue::from_str(&v).expect("header value"),
        );
    }
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    let uri: Uri = path_and_query.parse().expect("uri");
    let c = Case {
        label,
        scheme,
        uri,
        headers,
    };
    // A benchmark of a failing verification would measure the wrong thing.
    let input = Input {
        method: &Method::POST,
        uri: &c.uri,
        headers: &c.headers,
        body: body.into(),
    };
    if let Err(e) = c.scheme.verify(&input, NOW) {
        panic!("{label}: the signed request does not verify: {e}");
    }
    c
}

fn cases(body: &[u8]) -> Vec<Case> {
    let whsec = format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(b"bench-standard-webhooks-key!")
    );
    let whsec = whsec.as_bytes();
    let opts = SchemeOptions::default;
    let public = |url: &str| SchemeOptions {
        public_url: Some(url.into()),
        ..SchemeOptions::default()
    };
    let generic = SchemeOptions {
        hmac: Some(HmacOptions {
            header: "X-Bench-Signature".into(),
            algorithm: HmacAlgorithm::Sha256,
            encoding: Encoding::Hex,
            prefix: "sha256=".into(),
            timestamp_header: Some("X-Bench-Timestamp".into()),
            id_header: Some("X-Bench-Delivery".into()),
            signed_payload: "{timestamp}.{body}".into(),
        }),
        ..SchemeOptions::default()
    };
    let body_sha = hex(&sha2::Sha256::digest(body));
    let twilio_json = format!("/twilio?bodySHA256={body_sha}");
    let seed = [7u8; 32];
    let discord_pk = ed25519_dalek::SigningKey::from_bytes(&seed)
        .verifying_key()
        .to_bytes();
    let p = PLAIN_SECRET;
    use SchemeName as S;
    vec![
        case(
            "standard-webhooks",
            S::parse("standard-webhooks").expect("registered"),
            opts(),
            whsec,
            whsec,
            "/w",
            body,
        ),
        case(
            "github",
            S::parse("github").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "hotglue",
            S::parse("hotglue").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "stripe",
            S::parse("stripe").expect("registered"),
            opts(),
            whsec,
            whsec,
            "/w",
            body,
        ),
        case(
            "slack",
            S::parse("slack").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "shopify",
            S::parse("shopify").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "hmac-sha256-ts",
            S::parse("hmac").expect("registered"),
            generic,
            p,
            p,
            "/w",
            body,
        ),
        case(
            "paddle",
            S::parse("paddle").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "linear",
            S::parse("linear").expect("registered"),
            opts(),
            p,
            p,
            "/w",
            body,
        ),
        case(
            "square",
            S::parse("square").expect("registered"),
            public("https://hooks.example.com/square"),
            p,
            p,
            "/square",
            body,
        ),
        case(
            "twilio-json",
            S::parse("twilio").expect("registered"),
            public("https://hooks.example.com/twilio"),
            p,
            p,
            &twilio_json,
            body,
        ),
        case(
            "discord",
            S::parse("discord").expect("registered"),
            opts(),
            hex(&seed).as_bytes(),
            hex(&discord_pk).as_bytes(),
            "/w",
            body,
        ),
    ]
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn bench_verify(c: &mut Criterion) {
    for &(size, size_label) in SIZES {
        let body = body(size);
        let mut group = c.benchmark_group(format!("verify/{size_label}"));
        group.throughput(Throughput::Bytes(size as u64));
        if size >= 1024 * 1024 {
            group.sample_size(20);
        }
        group.warm_up_time(Duration::from_millis(500));
        group.measurement_time(Duration::from_secs(2));

        let sha256 = <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(PLAIN_SECRET).expect("key");
        group.bench_function(BenchmarkId::new("bare", "hmac-sha256"), |b| {
            b.iter(|| {
                let mut m = sha256.clone();
                m.update(black_box(&body));
                black_box(m.finalize().into_bytes())
            })
        });
        let sha1 = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(PLAIN_SECRET).expect("key");
        group.bench_function(BenchmarkId::new("bare", "hmac-sha1"), |b| {
            b.iter(|| {
                let mut m = sha1.clone();
                m.update(black_box(&body));
                black_box(m.finalize().into_bytes())
            })
        });
        group.bench_function(BenchmarkId::new("bare", "sha512"), |b| {
            b.iter(|| black_box(sha2::Sha512::digest(black_box(&body))))
        });

        for case in cases(&body) {
            let input = Input {
                method: &Method::POST,
                uri: &case.uri,
                headers: &case.headers,
                body: body[..].into(),
            };
            group.bench_function(BenchmarkId::new("scheme", case.label), |b| {
                b.iter(|| black_box(case.scheme.verify(black_box(&input), NOW)))
            });
        }
        group.finish();
    }
}

criterion_group!(benches, bench_verify);
criterion_main!(benches);
