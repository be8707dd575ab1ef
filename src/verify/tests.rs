//! Shared test helpers and cross-scheme tests (names, round trips, bit flips).

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::*;

pub(crate) fn secret(s: &str) -> SecretMaterial {
    SecretMaterial {
        id: s.chars().take(4).collect(),
        bytes: s.as_bytes().to_vec(),
    }
}

/// Options of a scheme signed over the URL the sender called (`public_url`), as the tests of
/// those schemes sign for.
pub(crate) fn public_url_opts() -> SchemeOptions {
    SchemeOptions {
        public_url: Some("https://hooks.example.com".into()),
        ..SchemeOptions::default()
    }
}

/// The registered scheme called `name` (canonical or alias).
pub(crate) fn sn(name: &str) -> SchemeName {
    SchemeName::parse(name).unwrap_or_else(|| panic!("no scheme {name:?} in the registry"))
}

pub(crate) fn scheme(name: SchemeName, options: &SchemeOptions, secrets: &[&str]) -> Scheme {
    let secrets: Vec<SecretMaterial> = secrets.iter().map(|s| secret(s)).collect();
    match Scheme::new(name, options, &secrets) {
        Ok(s) => s,
        Err(e) => panic!("Scheme::new({name:?}) failed: {e}"),
    }
}

/// An owned request for tests.
pub(crate) struct Req {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

impl Req {
    pub(crate) fn input(&self) -> Input<'_> {
        Input {
            method: &self.method,
            uri: &self.uri,
            headers: &self.headers,
            body: Body::new(&self.body),
        }
    }
}

pub(crate) fn req_bytes(method: &str, uri: &str, headers: &[(&str, &[u8])], body: &[u8]) -> Req {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).expect("test header name"),
            HeaderValue::from_bytes(v).expect("test header value"),
        );
    }
    Req {
        method: Method::from_bytes(method.as_bytes()).expect("test method"),
        uri: uri.parse().expect("test uri"),
        headers: map,
        body: body.to_vec(),
    }
}

pub(crate) fn req_full(method: &str, uri: &str, headers: &[(&str, &str)], body: &[u8]) -> Req {
    let hs: Vec<(&str, &[u8])> = headers.iter().map(|(n, v)| (*n, v.as_bytes())).collect();
    req_bytes(method, uri, &hs, body)
}

pub(crate) fn req(headers: &[(&str, &str)], body: &[u8]) -> Req {
    req_full("POST", "/hook", headers, body)
}

#[test]
fn names_round_trip() {
    for n in SchemeName::all_names() {
        if *n == NO_SCHEME {
            // "none" is spelled in the config but is no scheme: the route has none.
            assert_eq!(SchemeName::parse(n), None);
            continue;
        }
        let s = SchemeName::parse(n).unwrap();
        let canonical = if *n == "svix" { "standard-webhooks" } else { n };
        assert_eq!(s.as_str(), canonical);
    }
    assert_eq!(SchemeName::parse("Stripe"), None);
    assert_eq!(SchemeName::parse("svix"), Some(sn("standard-webhooks")));
}

#[test]
fn default_tolerances_and_ids() {
    let t = |n: SchemeName| Scheme::new(n, &every_option(), &[secret(secret_for(n))]).unwrap();
    assert_eq!(t(sn("paddle")).tolerance(), Duration::from_secs(5));
    assert_eq!(t(sn("linear")).tolerance(), Duration::from_secs(60));
    assert_eq!(t(sn("stripe")).tolerance(), Duration::from_secs(300));
    assert!(t(sn("github")).has_message_id());
    assert!(!t(sn("stripe")).has_message_id());
    let o = SchemeOptions {
        tolerance: Some(Duration::from_secs(9)),
        ..every_option()
    };
    assert_eq!(
        Scheme::new(sn("slack"), &o, &[secret("x")])
            .unwrap()
            .tolerance(),
        Duration::from_secs(9)
    );
    assert!(Scheme::new(sn("twilio"), &SchemeOptions::default(), &[secret("x")]).is_err());
    assert!(Scheme::new(sn("github"), &SchemeOptions::default(), &[]).is_err());
}

#[test]
fn debug_output_redacts_secrets() {
    let s = scheme(
        sn("github"),
        &SchemeOptions::default(),
        &["super-secret-value"],
    );
    let d = format!("{s:?}");
    assert!(!d.contains("super-secret-value"), "{d}");
}

const SIGNING_SECRETS: &[(&str, &str)] = &[
    (
        "standard-webhooks",
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    ),
    ("github", "gh-secret"),
    ("hotglue", "hg-secret"),
    ("hmac", "hmac-secret"),
    ("stripe", "whsec_stripe"),
    ("slack", "slack-secret"),
    ("shopify", "shpss_secret"),
    ("twilio", "twilio-token"),
    ("square", "sq0wss-key"),
    ("paddle", "pdl_ntfset_x"),
    ("linear", "lin_wh_x"),
    (
        "discord",
        "0707070707070707070707070707070707070707070707070707070707070707",
    ),
    // Contentful's signing secret is 64 characters.
    (
        "contentful",
        "contentful-signing-secret-0123456789abcdef0123456789abcdef012345",
    ),
    // Basic credentials: username:password.
    ("postmark", "hooks:pm-pass"),
    // Teams shows a base64 security token; the key is its decoding.
    ("microsoft-teams", "c2VjcmV0LXRlYW1zLXRva2VuLWJ5dGVz"),
];

/// Whether the scheme's secret is free text (an unrelated string makes a valid second key).
/// Not for the Standard Webhooks family (`whsec_`), Ed25519 keys, base64 keys.
pub(crate) fn free_text_secret(n: SchemeName) -> bool {
    !(n.def().headers.first() == Some(&"svix-signature")
        || matches!(
            n.as_str(),
            "discord" | "microsoft-teams" | "sendgrid" | "postmark" | "contentful"
        ))
}

fn secret_for(n: SchemeName) -> &'static str {
    if n == sn("sendgrid") {
        // A P-256 private key (PKCS#8, base64), made once.
        static KEY: OnceLock<String> = OnceLock::new();
        return KEY.get_or_init(|| super::sendgrid::test_key_pair().0);
    }
    if n.def().headers.first() == Some(&"svix-signature") {
        return SIGNING_SECRETS[0].1;
    }
    SIGNING_SECRETS
        .iter()
        .find(|(s, _)| *s == n.as_str())
        .map(|(_, k)| *k)
        .unwrap_or("x")
}

/// The verifier-side secret matching a signing secret (Ed25519: the public key).
fn verify_secret(n: SchemeName, signing: &str) -> String {
    if n == sn("sendgrid") {
        return super::sendgrid::public_key_of(signing.as_bytes()).expect("P-256 key");
    }
    if n == sn("discord") {
        let mut seed = [0u8; 32];
        assert!(hex_decode_into(signing.as_bytes(), &mut seed));
        let sk = ed25519_dalek::SigningKey::from_bytes(&seed);
        return hex_lower(sk.verifying_key().as_bytes());
    }
    signing.to_owned()
}

fn every_option() -> SchemeOptions {
    SchemeOptions {
        hmac: Some(HmacOptions {
            header: "X-Sig".into(),
            algorithm: HmacAlgorithm::Sha512,
            encoding: Encoding::Base64,
            prefix: "sha512=".into(),
            timestamp_header: Some("X-Ts".into()),
            id_header: Some("X-Id".into()),
            signed_payload: "{id}:{timestamp}:{method}:{path}:{body}".into(),
        }),
        tolerance: None,
        engine: crate::verify::EngineOptions {
            verify_token: Some(b"meta-verify-token".to_vec()),
            client_state: Some(b"graph-client-state".to_vec()),
            ..Default::default()
        },
        public_url: Some("https://hooks.example.com/in".into()),
    }
}

const NOW: i64 = 1_735_689_600;
const PQ: &str = "/in?tenant=acme";

fn body_for(n: SchemeName) -> Vec<u8> {
    match n.as_str() {
        "linear" => format!(r#"{{"type":"Issue","webhookTimestamp":{}}}"#, NOW * 1000).into_bytes(),
        "twilio" | "plivo" | "mandrill" => b"From=%2B1555&Body=hi+there&To=%2B1666".to_vec(),
        _ => br#"{"event":"ok","n":1}"#.to_vec(),
    }
}

fn signed(n: SchemeName) -> (Scheme, Vec<(String, String)>, Vec<u8>) {
    let o = every_option();
    let body = body_for(n);
    let signing = secret_for(n);
    let headers = sign(
        n,
        &o,
        signing.as_bytes(),
        Some("msg_1"),
        NOW,
        "POST",
        PQ,
        &body,
    )
    .unwrap_or_else(|e| panic!("{n:?}: sign failed: {e}"));
    let verify_with = verify_secret(n, signing);
    let s = scheme(
        n,
        &o,
        &["an-unrelated-old-secret-000000000", &verify_with][usize::from(!free_text_secret(n))..],
    );
    (s, headers, body)
}

fn run(s: &Scheme, headers: &[(String, Vec<u8>)], body: &[u8]) -> Result<Verified, VerifyError> {
    let hs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_slice()))
        .collect();
    s.verify(&req_bytes("POST", PQ, &hs, body).input(), NOW)
}

/// Every scheme in the registry that a shared secret signs (not `sns`, `jwt` and its
/// presets, whose keys are the provider's private keys, nor `msgraph`, which signs nothing:
/// their own tests cover them). Not `mailgun` either: its signature is written into the JSON
/// body and `sign` emits headers only, so it refuses (mailgun.rs tests it with the docs'
/// Python vector).
fn all() -> Vec<SchemeName> {
    SchemeName::all()
        .filter(|n| n.def().secrets != crate::verify::SecretUse::Refused && n.as_str() != "mailgun")
        .collect()
}

#[test]
fn sign_verify_round_trip_every_scheme() {
    for n in all() {
        let (s, headers, body) = signed(n);
        let hs: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        let v = run(&s, &hs, &body).unwrap_or_else(|e| panic!("{n:?}: {e:?} for {headers:?}"));
        let expected_index = usize::from(free_text_secret(n));
        assert_eq!(v.key_index, expected_index, "{n:?}");
        if s.has_message_id() && n != sn("hmac") {
            assert_eq!(
                v.id.as_ref().map(|h| h.as_bytes()),
                Some(&b"msg_1"[..]),
                "{n:?}"
            );
        }
    }
    assert!(sign(
        sn("github"),
        &SchemeOptions::default(),
        b"",
        None,
        0,
        "POST",
        "/",
        b""
    )
    .is_err());
}

/// Flipping any single bit of the signature, id or timestamp header values, or of the body,
/// must be rejected. (Header values that stop being valid header bytes are skipped.)
#[test]
fn every_single_bit_flip_is_rejected() {
    for n in all() {
        let (s, headers, body) = signed(n);
        let base: Vec<(String, Vec<u8>)> = headers
            .iter()
            .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
            .collect();
        assert!(run(&s, &base, &body).is_ok(), "{n:?}");
        // headers that carry authenticated content (all but pure id headers the scheme does
        // not sign)
        for (hi, (name, value)) in base.iter().enumerate() {
            let unsigned_id = unsigned_id_header(n, name);
            if unsigned_id {
                continue;
            }
            for byte in 0..value.len() {
                for bit in 0..8 {
                    let mut hs = base.clone();
                    hs[hi].1[byte] ^= 1 << bit;
                    if HeaderValue::from_bytes(&hs[hi].1).is_err() {
                        continue;
                    }
                    let r = run(&s, &hs, &body);
                    // A flip may still decode to the same value (hex case for Linear and
                    // Discord, which decode case-insensitively).
                    let same_case_insensitive = matches!(n.as_str(), "linear" | "discord")
                        && hs[hi].1.eq_ignore_ascii_case(value);
                    assert!(
                        r.is_err() || same_case_insensitive,
                        "{n:?}: flip {name} byte {byte} bit {bit} accepted"
                    );
                }
            }
        }
        // A token scheme does not authenticate the body: nothing to flip there.
        let body_bytes = if n.def().body_signed { body.len() } else { 0 };
        for byte in 0..body_bytes {
            for bit in 0..8 {
                let mut b = body.clone();
                b[byte] ^= 1 << bit;
                // Twilio signs the *decoded* form parameters: `%2B` and `%2b` are the same.
                // (So do Plivo and Mandrill, sorted, and Plivo's sort makes the order of
                // the pairs unsigned too.)
                let same_form = matches!(n.as_str(), "twilio" | "plivo" | "mandrill")
                    && sorted_form(&b) == sorted_form(&body);
                assert!(
                    run(&s, &base, &b).is_err() || same_form,
                    "{n:?}: body flip {byte}/{bit} accepted"
                );
            }
        }
    }
}

/// The form-decoded pairs of a body, sorted: what the form-signing schemes sign.
fn sorted_form(body: &[u8]) -> Vec<(String, String)> {
    let mut pairs = super::twilio::form_decode(body);
    pairs.sort();
    pairs
}

/// An id header the scheme reads but does not sign: a changed id there is a different delivery
/// of the same authentic message, not a forgery (dedupe keys on it; see SECURITY.md).
pub(crate) fn unsigned_id_header(n: SchemeName, name: &str) -> bool {
    match n.def().message_id {
        MessageId::Headers(hs) => {
            !n.def().id_signed && hs.iter().any(|h| h.eq_ignore_ascii_case(name))
        }
        _ => false,
    }
}

#[test]
fn the_unsigned_id_headers_are_the_known_ones() {
    for (scheme, header) in [
        ("github", "X-GitHub-Delivery"),
        ("shopify", "X-Shopify-Webhook-Id"),
        ("linear", "Linear-Delivery"),
        ("twilio", "I-Twilio-Idempotency-Token"),
        ("gitlab", "Idempotency-Key"),
        ("gitea", "X-Gitea-Delivery"),
    ] {
        assert!(unsigned_id_header(sn(scheme), header), "{scheme}");
    }
    assert!(!unsigned_id_header(sn("standard-webhooks"), "webhook-id"));
    assert!(!unsigned_id_header(sn("clerk"), "svix-id"));
    assert!(!unsigned_id_header(
        sn("twitch"),
        "Twitch-Eventsub-Message-Id"
    ));
}

#[test]
fn window_boundaries_are_inclusive_and_symmetric() {
    let t = Duration::from_secs(300);
    assert!(check_window(NOW - 300, NOW, t).is_ok());
    assert!(check_window(NOW + 300, NOW, t).is_ok());
    assert_eq!(
        check_window(NOW - 301, NOW, t),
        Err(VerifyError::StaleTimestamp { skew: -301 })
    );
    assert_eq!(
        check_window(NOW + 301, NOW, t),
        Err(VerifyError::FutureTimestamp { skew: 301 })
    );
    assert!(check_window(i64::MAX, i64::MIN, t).is_err());
}

#[test]
fn strict_integer_parse() {
    assert_eq!(parse_unix("0123"), Some(123));
    for bad in [
        "",
        "+1",
        "-1",
        "1.5",
        "1e3",
        " 1",
        "1 ",
        "12a",
        "99999999999999999999",
    ] {
        assert_eq!(parse_unix(bad), None, "{bad}");
    }
}

#[test]
fn non_utf8_headers_are_malformed_not_panics() {
    for n in all() {
        let (s, headers, body) = signed(n);
        for (i, _) in headers.iter().enumerate() {
            let mut hs: Vec<(String, Vec<u8>)> = headers
                .iter()
                .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                .collect();
            hs[i].1 = vec![0xff, 0xfe, b'a'];
            let _ = run(&s, &hs, &body);
        }
    }
}

/// A header the verifier reads, sent twice: the app would see both copies (or their
/// comma-joined value) while hookseal verified one, so it is malformed, whichever copy is the
/// sender's. Holds for the signature, timestamp and id headers of every scheme.
#[test]
fn every_header_a_scheme_reads_sent_twice_is_malformed() {
    for n in all() {
        let (s, headers, body) = signed(n);
        for (name, value) in &headers {
            for (first, second) in [(value.as_str(), "x"), ("x", value.as_str())] {
                let mut hs: Vec<(String, Vec<u8>)> = headers
                    .iter()
                    .filter(|(k, _)| k != name)
                    .map(|(k, v)| (k.clone(), v.as_bytes().to_vec()))
                    .collect();
                hs.push((name.clone(), first.as_bytes().to_vec()));
                hs.push((name.clone(), second.as_bytes().to_vec()));
                assert!(
                    matches!(run(&s, &hs, &body), Err(VerifyError::MalformedSignature(_))),
                    "{n:?}: {name} twice ({first:?} then {second:?}) gave {:?}",
                    run(&s, &hs, &body)
                );
            }
        }
    }
}

/// Timing: the secret that matches must not be told by when the loop stops. `first_match`
/// evaluates every key, also after a match, and reports the first one that matched.
#[test]
fn first_match_checks_every_key_even_after_a_match() {
    for matching in [vec![0], vec![2], vec![1, 3], vec![]] {
        let mut calls = Vec::new();
        let found = first_match(5, |i| {
            calls.push(i);
            Choice::from(u8::from(matching.contains(&i)))
        });
        assert_eq!(calls, vec![0, 1, 2, 3, 4], "every key is computed");
        assert_eq!(found, matching.first().copied());
    }
}

/// The pipeline's check of every shared-secret scheme is ready at once (no boxed future, no
/// fetch) and, for a signed delivery, says what `verify` says: the async path is only for the
/// schemes that fetch.
#[test]
fn shared_secret_schemes_check_without_a_future() {
    for n in all() {
        let (s, headers, body) = signed(n);
        let hs: Vec<(&str, &[u8])> = headers
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_bytes()))
            .collect();
        let r = req_bytes("POST", PQ, &hs, &body);
        let input = r.input();
        let verified = s.verify(&input, NOW).unwrap();
        let checked = s.check(input, NOW);
        match checked {
            Check::Ready(Ok(Checked::Verified(v))) => assert_eq!(v.key_index, verified.key_index),
            Check::Ready(other) => panic!("{n:?}: {other:?}"),
            Check::Pending(_) => panic!("{n:?}: a shared-secret scheme returned a future"),
        };
    }
    for n in ["sns", "jwt", "google-pubsub", "plaid"] {
        assert_eq!(sn(n).def().secrets, SecretUse::Refused, "{n}");
    }
}

/// `ct_eq` compares words and a tail: equal strings of every length up to 40 are equal, and
/// a difference in any one bit of any byte (word or tail), or in length, is not.
#[test]
fn ct_eq_finds_every_difference() {
    for len in 0..40usize {
        let a: Vec<u8> = (0..len).map(|i| (i * 37 + len) as u8).collect();
        assert!(bool::from(ct_eq(&a, &a.clone())), "len {len}");
        for at in 0..len {
            for bit in 0..8 {
                let mut b = a.clone();
                b[at] ^= 1 << bit;
                assert!(!bool::from(ct_eq(&a, &b)), "len {len} at {at} bit {bit}");
            }
        }
        let mut longer = a.clone();
        longer.push(0);
        assert!(!bool::from(ct_eq(&a, &longer)), "len {len}");
    }
}

/// Every body-MAC scheme looks its signature header up by a `HeaderName` constant: each
/// constant is its header's text, parsed.
#[test]
fn every_body_mac_header_is_looked_up_by_its_own_name() {
    for (mac, header) in [
        (&super::github::MAC, super::github::SIG_HEADER),
        (&super::dropbox::MAC, super::dropbox::SIG_HEADER),
        (&super::asana::MAC, super::asana::SIG_HEADER),
        (&super::worldline::MAC, super::worldline::SIG_HEADER),
        (&super::x::MAC, super::x::SIG_HEADER),
    ] {
        let parsed = HeaderName::from_bytes(header.as_bytes()).unwrap();
        assert_eq!(mac.name, parsed, "{header}");
        assert_eq!(mac.header, header);
    }
}
