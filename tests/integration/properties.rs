//! Property tests (proptest) over the parsers of untrusted input, the same functions the
//! `fuzz/` targets drive, so they run in every `cargo test`:
//!
//! * sign → verify round trips for every scheme, with random secrets, decoy secrets, ids,
//!   timestamps (anywhere inside the window), paths and bodies;
//! * any single bit flip in the body or in a signed header (signature, id, timestamp) is
//!   rejected;
//! * verification, the config loader, path normalization and `X-Forwarded-For` parsing never
//!   panic on arbitrary input;
//! * W3C `traceparent`/`tracestate` parsing (`otel`) never panics, and what it keeps prints
//!   back to itself;
//! * route matching agrees with the naive reference in `reference.rs`;
//! * secrets never appear in config errors or in a loaded config's `Debug` output.
//!
//! Case counts are kept small enough for the whole module to run in a few seconds in debug.

use std::net::IpAddr;
use std::path::Path;

use base64::Engine as _;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};
use proptest::prelude::*;
use proptest::sample::Index;

use hookseal::config::{Config, IpNet};
use hookseal::headers::client_ip;
use hookseal::route::{normalize_path, normalize_prefix, PathMatch, RouteTable};
use hookseal::verify::{
    sign, Encoding, HmacAlgorithm, HmacOptions, Input, MessageId, Scheme, SchemeName,
    SchemeOptions, SecretMaterial, Verified, VerifyError,
};

use crate::reference::{self, RefPattern};

/// Every scheme in the registry.
/// The schemes a shared secret signs (not `sns`, `jwt` and presets, `msgraph`; not `mailgun`,
/// whose signature is written into the body: `sign` emits headers only and refuses it).
fn all() -> Vec<SchemeName> {
    SchemeName::all()
        .filter(|n| {
            n.def().secrets != hookseal::verify::SecretUse::Refused && n.as_str() != "mailgun"
        })
        .collect()
}

/// The registered scheme called `name`.
fn sn(name: &str) -> SchemeName {
    SchemeName::parse(name).unwrap_or_else(|| panic!("no scheme {name:?}"))
}

/// An id header the scheme reads but does not sign: a changed id there is a different delivery
/// of the same authentic message, not a forgery (dedupe keys on it; see SECURITY.md).
fn unsigned_id_header(name: SchemeName, header: &str) -> bool {
    match name.def().message_id {
        MessageId::Headers(hs) => {
            !name.def().id_signed && hs.iter().any(|h| h.eq_ignore_ascii_case(header))
        }
        _ => false,
    }
}

/// Standard Webhooks and the presets that sign exactly like it (clerk, resend, ...).
fn standard_family(name: SchemeName) -> bool {
    name.def().headers.first() == Some(&"svix-signature")
}

// ------------------------------------------------------------------------------------------
// A signed request, generated
// ------------------------------------------------------------------------------------------

/// Everything needed to sign and verify one request.
#[derive(Debug, Clone)]
struct Signed {
    name: SchemeName,
    options: SchemeOptions,
    /// The verifier's secrets; `secrets[key]` matches the signer's.
    secrets: Vec<Vec<u8>>,
    key: usize,
    now: i64,
    ts: i64,
    id: String,
    method: Method,
    target: String,
    headers: Vec<(String, Vec<u8>)>,
    body: Vec<u8>,
}

impl Signed {
    fn scheme(&self) -> Scheme {
        let secrets: Vec<SecretMaterial> = self
            .secrets
            .iter()
            .enumerate()
            .map(|(i, s)| SecretMaterial {
                id: format!("k{i}"),
                bytes: s.clone(),
            })
            .collect();
        Scheme::new(self.name, &self.options, &secrets)
            .unwrap_or_else(|e| panic!("{:?}: Scheme::new: {e}", self.name))
    }

    fn verify_with(
        &self,
        scheme: &Scheme,
        headers: &[(String, Vec<u8>)],
        body: &[u8],
    ) -> Option<Result<Verified, VerifyError>> {
        let mut map = HeaderMap::new();
        for (n, v) in headers {
            let name = HeaderName::from_bytes(n.as_bytes()).expect("header name");
            map.append(name, HeaderValue::from_bytes(v).ok()?);
        }
        let uri: Uri = self.target.parse().expect("target");
        let input = Input {
            method: &self.method,
            uri: &uri,
            headers: &map,
            body: body.into(),
        };
        Some(scheme.verify(&input, self.now))
    }
}

fn ed25519_pair(seed: [u8; 32]) -> ([u8; 32], [u8; 32]) {
    let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
    (seed, sk.verifying_key().to_bytes())
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

/// (signing secret, verifying secret) for a scheme, from random material.
fn secret_pair(name: SchemeName, raw: &[u8], seed: [u8; 32], ed: bool) -> (Vec<u8>, Vec<u8>) {
    match name.as_str() {
        _ if standard_family(name) && ed => {
            let (s, p) = ed25519_pair(seed);
            (
                format!("whsk_{}", b64(&s)).into_bytes(),
                format!("whpk_{}", b64(&p)).into_bytes(),
            )
        }
        _ if standard_family(name) => {
            let s = format!("whsec_{}", b64(raw)).into_bytes();
            (s.clone(), s)
        }
        "discord" => {
            let (s, p) = ed25519_pair(seed);
            (hex(&s).into_bytes(), hex(&p).into_bytes())
        }
        // A token travels as a header value: visible ASCII.
        "gitlab" | "okta" => (hex(raw).into_bytes(), hex(raw).into_bytes()),
        // Contentful's signing secret: 64 visible characters.
        "contentful" => {
            let c = format!("{:x<64}", hex(raw)).as_bytes()[..64].to_vec();
            (c.clone(), c)
        }
        // Basic credentials: visible ASCII username:password.
        "postmark" => {
            let c = format!("u:{}", hex(raw)).into_bytes();
            (c.clone(), c)
        }
        // A fresh P-256 pair (ring cannot derive one from a seed): the verifier holds the
        // public key as SendGrid shows it, base64 SubjectPublicKeyInfo.
        "sendgrid" => p256_pair(),
        // Teams' security token is base64; the key is its decoding.
        "microsoft-teams" => (b64(raw).into_bytes(), b64(raw).into_bytes()),
        _ => (raw.to_vec(), raw.to_vec()),
    }
}

fn p256_pair() -> (Vec<u8>, Vec<u8>) {
    use ring::signature::{EcdsaKeyPair, KeyPair as _, ECDSA_P256_SHA256_ASN1_SIGNING};
    const SPKI_P256_PREFIX: [u8; 26] = [
        0x30, 0x59, 0x30, 0x13, 0x06, 0x07, 0x2a, 0x86, 0x48, 0xce, 0x3d, 0x02, 0x01, 0x06, 0x08,
        0x2a, 0x86, 0x48, 0xce, 0x3d, 0x03, 0x01, 0x07, 0x03, 0x42, 0x00,
    ];
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 =
        EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, &rng).expect("keygen");
    let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_ASN1_SIGNING, pkcs8.as_ref(), &rng)
        .expect("pkcs8");
    let mut spki = SPKI_P256_PREFIX.to_vec();
    spki.extend_from_slice(pair.public_key().as_ref());
    (b64(pkcs8.as_ref()).into_bytes(), b64(&spki).into_bytes())
}

const PAYLOADS: [&str; 4] = [
    "{timestamp}.{id}.{body}",
    "{id}:{timestamp}:{method}:{path}:{body}",
    "v0:{timestamp}:{body}:{id}",
    "{method} {path}\n{timestamp}\n{id}\n{body}",
];
const PREFIXES: [&str; 4] = ["", "sha256=", "v1,", "t=1;v1="];

fn hmac_options(alg: u8, enc: u8, prefix: usize, payload: usize) -> HmacOptions {
    HmacOptions {
        header: "X-Sig".into(),
        algorithm: [
            HmacAlgorithm::Sha1,
            HmacAlgorithm::Sha256,
            HmacAlgorithm::Sha512,
        ][usize::from(alg % 3)],
        encoding: [Encoding::Hex, Encoding::Base64, Encoding::Base64Url][usize::from(enc % 3)],
        prefix: PREFIXES[prefix % PREFIXES.len()].into(),
        timestamp_header: Some("X-Ts".into()),
        id_header: Some("X-Id".into()),
        signed_payload: PAYLOADS[payload % PAYLOADS.len()].into(),
    }
}

fn body_for(name: SchemeName, raw: Vec<u8>, form: String, ts: i64, extra: u16) -> Vec<u8> {
    match name.as_str() {
        // Linear's timestamp is in the signed body, in milliseconds.
        "linear" => format!(
            r#"{{"type":"Issue","webhookTimestamp":{},"n":{extra}}}"#,
            ts * 1000 + i64::from(extra % 1000)
        )
        .into_bytes(),
        // Twilio signs decoded form parameters; an alphabet without `%`, `+` and non-ASCII keeps
        // every single bit flip a different parameter set (SECURITY.md explains the equivalences).
        "twilio" | "plivo" | "mandrill" => form.into_bytes(),
        // Hygraph signs the body as a JSON string: it must be UTF-8 (a unit test in
        // hygraph.rs checks that other bytes are refused).
        "hygraph" => raw
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
            .into_bytes(),
        // Shopify and Square reject an empty body, as their libraries do (a unit test in each
        // scheme's file checks that rejection).
        "shopify" | "square" if raw.is_empty() => b"{}".to_vec(),
        _ => raw,
    }
}

prop_compose! {
    fn signed()(
        which in 0..all().len(),
        raw_secret in prop::collection::vec(any::<u8>(), 1..48),
        decoys in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..48), 0..3),
        decoy_seeds in prop::collection::vec(any::<[u8; 32]>(), 3),
        seed in any::<[u8; 32]>(),
        ed in any::<bool>(),
        key_at in any::<Index>(),
        ts in 1_500_000_000i64..2_000_000_000,
        skew in any::<Index>(),
        id in "[A-Za-z0-9_.-]{1,40}",
        query in prop::option::of("[a-z]{1,8}=[A-Za-z0-9]{0,12}"),
        raw_body in prop::collection::vec(any::<u8>(), 0..200),
        form in "[a-zA-Z0-9]{1,6}=[a-zA-Z0-9]{0,10}(&[a-zA-Z0-9]{1,6}=[a-zA-Z0-9]{0,10}){0,4}",
        extra in any::<u16>(),
        hmac in (any::<u8>(), any::<u8>(), any::<usize>(), any::<usize>()),
    ) -> Signed {
        let name = all()[which];
        let options = SchemeOptions {
            hmac: Some(hmac_options(hmac.0, hmac.1, hmac.2, hmac.3)),
            tolerance: None,
            public_url: Some("https://hooks.example.com/in".into()),
            engine: hookseal::verify::EngineOptions {
                verify_token: Some(b"meta-token".to_vec()),
                ..Default::default()
            },
        };
        let (signing, verifying) = secret_pair(name, &raw_secret, seed, ed);
        let mut secrets: Vec<Vec<u8>> = decoys
            .iter()
            .zip(&decoy_seeds)
            .map(|(d, s)| secret_pair(name, d, *s, ed).1)
            .collect();
        let key = key_at.index(secrets.len() + 1);
        secrets.insert(key, verifying);
        let target = match &query {
            Some(q) => format!("/in?{q}"),
            None => "/in".to_owned(),
        };
        let body = body_for(name, raw_body, form, ts, extra);
        let tol = i64::try_from(name.default_tolerance().as_secs()).unwrap_or(5);
        // Linear compares milliseconds: keep its clock where the body's ms stay inside.
        let now = if name == sn("linear") {
            ts
        } else {
            ts + i64::try_from(skew.index(usize::try_from(2 * tol + 1).unwrap_or(1))).unwrap_or(0) - tol
        };
        let headers = sign(name, &options, &signing, Some(&id), ts, "POST", &target, &body)
            .unwrap_or_else(|e| panic!("{name:?}: sign: {e}"))
            .into_iter()
            .map(|(n, v)| (n, v.into_bytes()))
            .collect();
        Signed { name, options, secrets, key, now, ts, id, method: Method::POST, target, headers, body }
    }
}

fn carries_timestamp(name: SchemeName) -> bool {
    standard_family(name)
        || matches!(
            name.as_str(),
            "hmac"
                | "stripe"
                | "slack"
                | "paddle"
                | "linear"
                | "discord"
                | "zendesk"
                | "hubspot"
                | "twitch"
                | "calendly"
                | "box"
                | "frame-io"
                | "buildkite"
                | "mux"
                | "persona"
                | "lob"
                | "tiktok"
                | "sendgrid"
                | "contentful"
                | "hygraph"
        )
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 192, ..ProptestConfig::default() })]

    /// What a sender signs, hookseal accepts, naming the right secret, id and timestamp.
    #[test]
    fn sign_then_verify_round_trips(s in signed()) {
        let scheme = s.scheme();
        let v = s
            .verify_with(&scheme, &s.headers, &s.body)
            .expect("sign() emits valid header values");
        let v = match v {
            Ok(v) => v,
            Err(e) => panic!("{:?} rejected its own signature: {e:?}\n{s:?}", s.name),
        };
        prop_assert_eq!(v.key_index, s.key);
        if scheme.has_message_id() {
            prop_assert_eq!(v.id.as_ref().map(|h| h.as_bytes()), Some(s.id.as_bytes()));
        }
        if carries_timestamp(s.name) {
            prop_assert_eq!(v.timestamp, Some(s.ts));
        }
    }

    /// One flipped bit anywhere in the body (where the scheme authenticates it) or in a signed
    /// header value is a rejection.
    #[test]
    fn any_single_bit_flip_is_rejected(s in signed(), at in any::<Index>(), bit in 0u8..8) {
        let scheme = s.scheme();
        // The bit positions: every body bit, then every bit of every signed header value.
        // (A token scheme does not authenticate the body: no body bits then.)
        let body_bits = if s.name.def().body_signed { s.body.len() } else { 0 };
        let mut targets: Vec<Option<usize>> = vec![None; body_bits];
        let mut offsets: Vec<usize> = (0..body_bits).collect();
        for (i, (n, v)) in s.headers.iter().enumerate() {
            if unsigned_id_header(s.name, n) {
                continue;
            }
            targets.extend(std::iter::repeat_n(Some(i), v.len()));
            offsets.extend(0..v.len());
        }
        prop_assume!(!targets.is_empty());
        let pick = at.index(targets.len());
        let mut headers = s.headers.clone();
        let mut body = s.body.clone();
        let original: Vec<u8>;
        match targets[pick] {
            None => {
                original = body.clone();
                body[offsets[pick]] ^= 1 << bit;
            }
            Some(h) => {
                original = headers[h].1.clone();
                headers[h].1[offsets[pick]] ^= 1 << bit;
            }
        }
        let Some(r) = s.verify_with(&scheme, &headers, &body) else {
            // The flip made an invalid header value: hyper would refuse the request itself.
            return Ok(());
        };
        // Linear and Discord decode hex case-insensitively (as their SDKs): a case flip of a
        // hex letter in the signature is the same signature.
        let hex_case = matches!(s.name.as_str(), "linear" | "discord")
            && targets[pick].is_some()
            && headers[targets[pick].unwrap_or(0)].1.eq_ignore_ascii_case(&original);
        prop_assert!(
            r.is_err() || hex_case,
            "{:?}: flip at {:?}/{} bit {} accepted: {:?}",
            s.name, targets[pick].map(|h| &s.headers[h].0), offsets[pick], bit, r
        );
    }

    /// Arbitrary header values and bodies never make a verifier panic, and an acceptance always
    /// names a configured secret.
    #[test]
    fn verifiers_never_panic(
        which in 0..all().len(),
        values in prop::collection::vec((0usize..24, prop::collection::vec(any::<u8>(), 0..120)), 0..8),
        body in prop::collection::vec(any::<u8>(), 0..200),
        now in any::<i64>(),
        target in "/[a-zA-Z0-9/?=&%.]{0,30}",
    ) {
        const NAMES: [&str; 24] = [
            "webhook-id", "webhook-timestamp", "webhook-signature", "svix-signature",
            "X-Hub-Signature-256", "X-Hub-Signature", "X-GitHub-Delivery", "Stripe-Signature",
            "X-Slack-Signature", "X-Slack-Request-Timestamp", "X-Shopify-Hmac-Sha256",
            "shopify-hmac-sha256", "X-Twilio-Signature", "X-Twilio-Webhooks-Signature-Settings",
            "x-square-hmacsha256-signature", "Paddle-Signature", "Linear-Signature",
            "X-Signature-Ed25519", "X-Signature-Timestamp", "X-Sig", "X-Ts", "X-Id",
            "Linear-Delivery", "content-type",
        ];
        let name = all()[which];
        let (_, verifying) = secret_pair(name, b"k", [9; 32], false);
        let options = SchemeOptions {
            hmac: Some(hmac_options(1, 0, 1, 0)),
            tolerance: None,
            public_url: Some("https://hooks.example.com/in".into()),
            engine: hookseal::verify::EngineOptions {
                verify_token: Some(b"meta-token".to_vec()),
                ..Default::default()
            },
        };
        let scheme = Scheme::new(name, &options, &[SecretMaterial { id: "0".into(), bytes: verifying }])
            .expect("scheme");
        let mut map = HeaderMap::new();
        for (n, v) in &values {
            if let Ok(v) = HeaderValue::from_bytes(v) {
                map.append(HeaderName::from_bytes(NAMES[*n].as_bytes()).expect("name"), v);
            }
        }
        let uri: Uri = target.parse().unwrap_or_else(|_| Uri::from_static("/"));
        let input = Input { method: &Method::POST, uri: &uri, headers: &map, body: body[..].into() };
        if let Ok(v) = scheme.verify(&input, now) {
            prop_assert_eq!(v.key_index, 0);
        }
    }
}

// ------------------------------------------------------------------------------------------
// Config loader
// ------------------------------------------------------------------------------------------

fn example_config() -> String {
    std::fs::read_to_string(crate::support::repo_root().join("config.example.toml"))
        .expect("config.example.toml")
}

fn no_env(_: &str) -> Option<String> {
    None
}

fn check_errors_point_at_lines(text: &str) {
    let path = Path::new("/nonexistent-hookseal-props/hookseal.toml");
    if let Err(errors) = Config::parse(path, text, &no_env) {
        assert!(!errors.0.is_empty());
        let lines = text.lines().count() + 1;
        for e in &errors.0 {
            assert!(e.line <= lines, "error on line {} of {lines}: {e}", e.line);
        }
        let _ = errors.to_string();
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Arbitrary text: an error list, never a panic.
    #[test]
    fn config_parse_never_panics_on_text(text in "(\\PC|\n){0,300}") {
        check_errors_point_at_lines(&text);
    }

    /// The example config with one line deleted, duplicated or overwritten with junk: the
    /// loader answers with errors on real lines (or loads), never panics.
    #[test]
    fn config_parse_never_panics_on_near_misses(
        at in any::<Index>(),
        op in 0u8..4,
        junk in "[ -~]{0,40}",
    ) {
        let text = example_config();
        let mut lines: Vec<String> = text.lines().map(str::to_owned).collect();
        let i = at.index(lines.len());
        match op {
            0 => { lines.remove(i); }
            1 => { let l = lines[i].clone(); lines.insert(i, l); }
            2 => lines[i] = junk,
            _ => lines[i].push_str(&junk),
        }
        check_errors_point_at_lines(&lines.join("\n"));
    }

    /// A secret value is never echoed: neither in the errors of a broken config nor in the
    /// `Debug` output of a loaded one.
    #[test]
    fn secrets_never_appear_in_errors_or_debug(
        secret in "[A-Za-z0-9]{24,40}",
        broken in any::<bool>(),
        scheme in prop::sample::select(vec!["github", "hotglue", "stripe", "slack", "shopify", "linear"]),
    ) {
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:8080\"\n{}[[route]]\nname = \"r\"\npath = \"/r\"\n\
             scheme = \"{scheme}\"\nsecrets = [{{ id = \"a\", value = \"{secret}\" }}]\n",
            if broken { "[limits]\nbody_timeout = \"forever\"\n" } else { "" }
        );
        let path = Path::new("/nonexistent-hookseal-props/hookseal.toml");
        match Config::parse(path, &text, &no_env) {
            Ok(c) => {
                prop_assert!(!broken);
                let d = format!("{c:?}");
                prop_assert!(!d.contains(&secret), "secret in Debug output");
            }
            Err(e) => {
                prop_assert!(broken, "{}", e);
                prop_assert!(!e.to_string().contains(&secret));
                let debug = format!("{e:?}");
                prop_assert!(!debug.contains(&secret));
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// Routing
// ------------------------------------------------------------------------------------------

const SEGMENTS: [&str; 33] = [
    "hooks",
    "a",
    "B",
    "x",
    "",
    ".",
    "..",
    "%2e",
    "%2E%2e",
    "%41",
    "%2f",
    "%7e",
    "HOOKS",
    "h%6foks",
    "a;x",
    "hooks;v=1",
    "%5C",
    "\\",
    "%",
    "a%%36%31",
    // The readings added for issue 17: authority (a leading `//` comes from "" first),
    // format suffixes, NUL and whitespace, `%3B`, PHP scripts, Unicode look-alikes.
    "hooks.json",
    "a.",
    "%2ejson",
    "hooks%00",
    "a%20",
    "%09",
    "hooks%3Bv",
    "index.php",
    "%EF%BC%8F",
    "\u{ff48}ooks",
    "\u{212a}",
    "ho\u{2024}oks",
    "x:1@y",
];

/// Query strings for the route property: none, plain ones, and front-controller routes.
const QUERIES: [&str; 7] = [
    "",
    "?a=1",
    "?/hooks",
    "?/a&x=1",
    "?%2Fhooks%2Fa",
    "?/x/../hooks",
    "?\\a",
];

fn path_from(parts: &[usize], lead: bool, trail: bool) -> String {
    let mut p: String = parts
        .iter()
        .map(|i| SEGMENTS[*i % SEGMENTS.len()])
        .collect::<Vec<_>>()
        .join("/");
    if lead {
        p.insert(0, '/');
    }
    if trail {
        p.push('/');
    }
    p
}

prop_compose! {
    fn route_table()(
        routes in prop::collection::vec(
            (any::<bool>(), prop::collection::vec(0usize..4, 0..4), any::<bool>(), 1u8..8),
            1..7,
        ),
    ) -> Vec<(RefPattern, Vec<Method>)> {
        let mut out: Vec<(RefPattern, Vec<Method>)> = Vec::new();
        for (exact, segs, trail, mbits) in routes {
            let raw = path_from(&segs, true, trail && !segs.is_empty());
            let pattern = if exact {
                RefPattern::Exact(normalize_path(&raw).into_owned())
            } else {
                RefPattern::Prefix(normalize_prefix(&raw))
            };
            if out.iter().any(|(p, _)| *p == pattern) {
                continue;
            }
            let methods = [Method::GET, Method::POST, Method::PUT]
                .into_iter()
                .enumerate()
                .filter(|(i, _)| mbits & (1 << i) != 0)
                .map(|(_, m)| m)
                .collect();
            out.push((pattern, methods));
        }
        out
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// The real normalizer agrees with the naive per-segment one, on arbitrary text and on
    /// paths built from tricky segments; its output is canonical and a fixed point.
    #[test]
    fn normalize_path_matches_reference(
        any_text in "\\PC{0,40}",
        escapes in "[/%.a-fA-F0-9~_-]{0,30}",
        parts in prop::collection::vec(0usize..SEGMENTS.len(), 0..6),
        lead in any::<bool>(),
        trail in any::<bool>(),
    ) {
        for p in [any_text, escapes, path_from(&parts, lead, trail)] {
            let n = normalize_path(&p);
            let want = reference::normalize(&p);
            prop_assert_eq!(&*n, want.as_str(), "path {:?}", p);
            prop_assert_eq!(&*normalize_path(&n), &*n);
            prop_assert!(n.starts_with('/') && !n.contains("//"));
            prop_assert!(n == "/" || !n.ends_with('/'));
        }
    }

    /// `RouteTable::find` takes the route the reference takes (or misses the same way).
    #[test]
    fn route_matching_agrees_with_reference(
        table in route_table(),
        parts in prop::collection::vec(0usize..SEGMENTS.len(), 0..6),
        lead in any::<bool>(),
        trail in any::<bool>(),
        query in prop::sample::select(QUERIES.to_vec()),
        noise in "[/\\\\%.;?&=a-fA-F0-9 hoksx\u{ff0f}\u{212a}\u{ff48}]{0,24}",
        method in prop::sample::select(vec![Method::GET, Method::POST, Method::PUT, Method::DELETE]),
    ) {
        let entries = table
            .iter()
            .enumerate()
            .map(|(i, (p, m))| {
                let pm = match p {
                    RefPattern::Exact(e) => PathMatch::Exact(e.clone()),
                    RefPattern::Prefix(e) => PathMatch::Prefix(e.clone()),
                };
                (pm, m.clone(), i)
            })
            .collect();
        let real = RouteTable::new(entries);
        let built = format!("{}{query}", path_from(&parts, lead, trail));
        for path in [built, noise] {
            let got = real.find(&method, &path).copied();
            let want = reference::find(&table, &method, &path);
            match (got, want) {
                (Ok(a), Ok(b)) => prop_assert_eq!(a, b, "{} {:?} in {:?}", method, path, table),
                (Err(a), Err(b)) => prop_assert_eq!(
                    format!("{a:?}"),
                    format!("{b:?}").replace("Ref", ""),
                    "{} {:?}", method, path
                ),
                (a, b) => prop_assert!(false, "{} {:?} in {:?}: real {:?}, reference {:?}", method, path, table, a, b),
            }
        }
    }
}

// ------------------------------------------------------------------------------------------
// X-Forwarded-For
// ------------------------------------------------------------------------------------------

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// An untrusted peer is the client whatever it claims; behind trusted proxies the answer is
    /// an address the header or the peer named, never a panic.
    #[test]
    fn client_ip_never_trusts_an_untrusted_peer(
        peer in prop::sample::select(vec!["10.0.0.1", "192.0.2.9", "::1", "2001:db8::5", "::ffff:10.1.2.3"]),
        nets in prop::collection::vec(prop::sample::select(vec!["10.0.0.0/8", "::1/128", "2001:db8::/32", "192.0.2.0/24"]), 0..3),
        values in prop::collection::vec(prop::collection::vec(any::<u8>(), 0..60), 0..3),
        hops in prop::collection::vec(prop::sample::select(vec!["1.2.3.4", "10.9.9.9", "[2001:db8::1]:443", "192.0.2.200:80", "junk", " ", "::1"]), 0..5),
    ) {
        let peer: IpAddr = peer.parse().expect("peer");
        let trusted: Vec<IpNet> = nets.iter().map(|n| IpNet::parse(n).expect("net")).collect();
        let mut map = HeaderMap::new();
        let mut named: Vec<String> = Vec::new();
        for v in &values {
            if let Ok(hv) = HeaderValue::from_bytes(v) {
                named.extend(String::from_utf8_lossy(v).split(',').map(|s| s.trim().to_owned()));
                map.append("x-forwarded-for", hv);
            }
        }
        let joined = hops.join(", ");
        named.extend(hops.iter().map(|h| (*h).to_owned()));
        map.append("x-forwarded-for", HeaderValue::from_str(&joined).expect("hops"));
        let got = client_ip(peer, &map, &trusted);
        if !trusted.iter().any(|n| n.contains(peer)) {
            prop_assert_eq!(got, Some(peer));
        } else if let Some(ip) = got {
            let parsed = |s: &str| {
                s.parse::<IpAddr>().ok().or_else(|| s.parse::<std::net::SocketAddr>().ok().map(|a| a.ip()))
            };
            prop_assert!(ip == peer || named.iter().any(|n| parsed(n) == Some(ip)), "{ip} not named");
        }
    }

    /// `traceparent` parsing never panics on any bytes or on one-byte edits of a valid value;
    /// what it accepts prints back as a valid `traceparent` of the same ids.
    #[test]
    fn traceparent_parse_never_panics_and_round_trips(
        junk in prop::collection::vec(any::<u8>(), 0..80),
        at in any::<Index>(),
        byte in any::<u8>(),
        tail in "(-[0-9a-zA-Z]{0,8}){0,2}",
    ) {
        let valid = b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01".to_vec();
        let mut edited = valid.clone();
        edited[at.index(valid.len())] = byte;
        let mut later = edited.clone();
        later[..2].copy_from_slice(b"01");
        later.extend_from_slice(tail.as_bytes());
        for v in [&junk, &edited, &later] {
            if let Some(c) = hookseal::otel::SpanContext::parse(v) {
                let printed = c.traceparent();
                prop_assert_eq!(hookseal::otel::SpanContext::parse(printed.as_bytes()), Some(c.clone()));
                prop_assert!(c.trace_id != [0; 16] && c.span_id != [0; 8]);
                if v.len() == 55 && v[..2] == *b"00" && (v[53..] == *b"00" || v[53..] == *b"01") {
                    prop_assert_eq!(printed.as_bytes(), &v[..]);
                }
            }
        }
    }

    /// `tracestate` checking never panics; what it keeps is canonical (checking it again
    /// gives it back) and never longer than what came.
    #[test]
    fn tracestate_never_panics_and_is_canonical(
        v in "([a-z0-9@*/_A-Z=, \t-]{0,12}){0,40}|\\PC{0,600}",
    ) {
        if let Some(kept) = hookseal::otel::tracestate(&v) {
            prop_assert!(kept.len() <= v.len());
            let again = hookseal::otel::tracestate(&kept);
            prop_assert_eq!(again.as_deref(), Some(kept.as_str()));
        }
    }

    /// A valid list (blanks around members allowed) of at most 32 members within the length
    /// cap is kept, members in order, blanks dropped.
    #[test]
    fn tracestate_keeps_valid_lists(
        members in prop::collection::vec(("[a-z][a-z0-9_*/-]{0,6}", "[a-zA-Z0-9+/]{1,10}", "[ \t]{0,2}", "[ \t]{0,2}"), 1..40),
    ) {
        let v: Vec<String> = members.iter().map(|(k, x, a, b)| format!("{a}{k}={x}{b}")).collect();
        let v = v.join(",");
        let want: Vec<String> = members.iter().map(|(k, x, _, _)| format!("{k}={x}")).collect();
        let got = hookseal::otel::tracestate(&v);
        if members.len() <= 32 && v.len() <= hookseal::otel::MAX_TRACESTATE {
            prop_assert_eq!(got, Some(want.join(",")));
        } else {
            prop_assert_eq!(got, None);
        }
    }
}
