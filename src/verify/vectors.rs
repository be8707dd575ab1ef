//! The SDK-certified vectors in `tests/vectors/*.json` (SCHEMES.md §9), every case of every
//! file, through the public API.
//!
//! Core cases must match `expect`. Quirk cases must match the answer chosen in [`QUIRKS`],
//! which names each decision (`expect` or `also_acceptable`) so a reviewer sees it. All
//! failures are collected, printed per file, then asserted.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde_json::Value;

use super::tests::{req_bytes, sn};
use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Decision {
    /// We give the case's `expect` answer.
    Expect,
    /// We give the case's `also_acceptable` answer.
    AlsoAcceptable,
}

/// One line per quirk case: our answer and why (the why is also in the scheme's doc comment).
/// A few entries name cases of the full corpus that this subset of it does not carry
/// (`hotglue/quirk_github_style_sha1_prefix`, the `standard-webhooks` timestamp quirks); their
/// behaviour is covered by the schemes' unit tests.
const QUIRKS: &[(&str, Decision, &str)] = &[
    (
        "discord/quirk_uppercase_hex_signature",
        Decision::Expect,
        "hex decoded case-insensitively, as the SDK",
    ),
    (
        "discord/quirk_stale_timestamp_not_checked",
        Decision::AlsoAcceptable,
        "team: 300 s replay window applied",
    ),
    (
        "github/quirk_empty_body",
        Decision::Expect,
        "HMAC of empty body is authentic",
    ),
    (
        "hotglue/quirk_github_style_sha1_prefix",
        Decision::AlsoAcceptable,
        "team: sha1= prefix accepted",
    ),
    (
        "paddle/quirk_unknown_key",
        Decision::AlsoAcceptable,
        "unknown keys ignored (forward compatible)",
    ),
    (
        "shopify/quirk_missing_topic_header",
        Decision::AlsoAcceptable,
        "app-level headers not required",
    ),
    (
        "shopify/quirk_missing_webhook_id_header",
        Decision::AlsoAcceptable,
        "app-level headers not required; id None",
    ),
    (
        "shopify/quirk_empty_body",
        Decision::Expect,
        "empty body rejected like the library",
    ),
    (
        "standard-webhooks/quirk_timestamp_trailing_garbage",
        Decision::Expect,
        "strict integer timestamp",
    ),
    (
        "standard-webhooks/quirk_timestamp_fractional",
        Decision::Expect,
        "strict integer timestamp",
    ),
    (
        "standard-webhooks/quirk_double_space_between_sigs",
        Decision::Expect,
        "empty entries skipped",
    ),
    (
        "standard-webhooks/quirk_signature_trailing_junk",
        Decision::Expect,
        "base64 text compared exactly",
    ),
    (
        "standard-webhooks/quirk_secret_unpadded_base64",
        Decision::Expect,
        "padded or unpadded secret accepted",
    ),
    (
        "standard-webhooks/quirk_timestamp_leading_zero",
        Decision::Expect,
        "integer re-serialized",
    ),
    (
        "svix/quirk_timestamp_fractional",
        Decision::Expect,
        "strict integer timestamp",
    ),
    (
        "svix/quirk_timestamp_trailing_garbage",
        Decision::Expect,
        "strict integer timestamp",
    ),
    (
        "svix/quirk_double_space_between_sigs",
        Decision::Expect,
        "empty entries skipped",
    ),
    (
        "svix/quirk_signature_trailing_junk",
        Decision::Expect,
        "base64 text compared exactly",
    ),
    (
        "svix/quirk_secret_unpadded_base64",
        Decision::Expect,
        "padded or unpadded secret accepted",
    ),
    (
        "svix/quirk_timestamp_leading_zero",
        Decision::Expect,
        "integer re-serialized",
    ),
    (
        "stripe/quirk_future_timestamp_301s",
        Decision::AlsoAcceptable,
        "team: symmetric window",
    ),
    (
        "stripe/quirk_future_timestamp_1day",
        Decision::AlsoAcceptable,
        "team: symmetric window",
    ),
    (
        "stripe/quirk_empty_body",
        Decision::Expect,
        "stripe-python verifies an empty body",
    ),
    (
        "stripe/quirk_timestamp_leading_zero",
        Decision::Expect,
        "t parsed and re-serialized",
    ),
    (
        "mux/quirk_future_timestamp_1h",
        Decision::AlsoAcceptable,
        "team: symmetric window (the SDK bounds only the age)",
    ),
    (
        "hubspot/quirk_future_timestamp_1h",
        Decision::AlsoAcceptable,
        "team: symmetric window (the SDK bounds only the age)",
    ),
    (
        "sendgrid/quirk_stale_timestamp_not_checked",
        Decision::AlsoAcceptable,
        "team: 300 s replay window applied",
    ),
    (
        "pusher/quirk_other_app_key",
        Decision::AlsoAcceptable,
        "the app key is not secret: the MAC proves the sender",
    ),
    (
        "pusher/quirk_text_body",
        Decision::AlsoAcceptable,
        "any authentic body is forwarded; parsing is the app's",
    ),
    (
        "contentful/quirk_future_timestamp_1h",
        Decision::AlsoAcceptable,
        "team: symmetric window (the toolkit bounds only the age)",
    ),
    (
        "castle/quirk_empty_body",
        Decision::AlsoAcceptable,
        "an authentic empty body is forwarded (the MAC holds)",
    ),
    (
        "twitch/quirk_stale_timestamp_not_checked",
        Decision::AlsoAcceptable,
        "Twitch's docs: refuse messages older than 10 minutes (the SDK checks no time)",
    ),
    (
        "box/quirk_future_timestamp_60s",
        Decision::AlsoAcceptable,
        "team: symmetric window (the SDK refuses any future timestamp)",
    ),
    (
        "stripe/quirk_duplicate_t_first_wins_python",
        Decision::Expect,
        "first t wins (python)",
    ),
];

fn vectors_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("vectors")
}

fn load() -> Vec<(String, Value)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(vectors_dir())
        .expect("tests/vectors exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no vector files found");
    files
        .into_iter()
        .map(|p| {
            let stem = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_owned();
            let text = std::fs::read_to_string(&p).expect("readable vector file");
            (
                stem,
                serde_json::from_str(&text).expect("valid vector JSON"),
            )
        })
        .collect()
}

/// The route a vector file is verified through.
fn route_for(file: &str) -> (SchemeName, Option<HmacOptions>) {
    match file {
        "github_sha1" => (
            sn("hmac"),
            Some(HmacOptions {
                header: "X-Hub-Signature".into(),
                algorithm: HmacAlgorithm::Sha1,
                encoding: Encoding::Hex,
                prefix: "sha1=".into(),
                timestamp_header: None,
                id_header: Some("X-GitHub-Delivery".into()),
                signed_payload: "{body}".into(),
            }),
        ),
        "github_sha256" => (sn("github"), None),
        "standard_webhooks" => (sn("standard-webhooks"), None),
        other => (
            SchemeName::parse(other).unwrap_or_else(|| panic!("no route mapping for {other}")),
            None,
        ),
    }
}

fn str_field<'a>(c: &'a Value, k: &str) -> &'a str {
    c.get(k)
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("case field {k}"))
}

fn case_options(c: &Value, hmac: Option<HmacOptions>) -> SchemeOptions {
    SchemeOptions {
        hmac,
        tolerance: c
            .get("tolerance_s")
            .and_then(Value::as_u64)
            .map(Duration::from_secs),
        public_url: c
            .get("public_url")
            .and_then(Value::as_str)
            .map(str::to_owned),
        ..SchemeOptions::default()
    }
}

fn case_secrets(c: &Value) -> Vec<SecretMaterial> {
    let mut v = vec![str_field(c, "secret").to_owned()];
    if let Some(extra) = c.get("additional_secrets").and_then(Value::as_array) {
        v.extend(extra.iter().filter_map(Value::as_str).map(str::to_owned));
    }
    v.into_iter()
        .enumerate()
        .map(|(i, s)| SecretMaterial {
            id: i.to_string(),
            bytes: s.into_bytes(),
        })
        .collect()
}

fn case_headers(c: &Value) -> Vec<(String, String)> {
    c.get("headers")
        .and_then(Value::as_array)
        .expect("headers")
        .iter()
        .map(|p| {
            let a = p.as_array().expect("header pair");
            (
                a[0].as_str().unwrap_or_default().to_owned(),
                a[1].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

fn run_case(file: &str, c: &Value) -> Result<Result<Verified, VerifyError>, String> {
    let (name, hmac) = route_for(file);
    let scheme = Scheme::new(name, &case_options(c, hmac), &case_secrets(c))
        .map_err(|e| format!("Scheme::new failed: {e}"))?;
    let headers = case_headers(c);
    let hs: Vec<(&str, &[u8])> = headers
        .iter()
        .map(|(n, v)| (n.as_str(), v.as_bytes()))
        .collect();
    let r = req_bytes(
        str_field(c, "method"),
        str_field(c, "path"),
        &hs,
        str_field(c, "body").as_bytes(),
    );
    let now = c.get("now").and_then(Value::as_i64).expect("now");
    let whole = scheme.verify(&r.input(), now);
    // The proxy hands bodies over in the pieces they arrived in: every split must verify
    // exactly as the whole does (an empty piece included).
    let b = &r.body;
    for cuts in [
        vec![0, b.len()],
        vec![b.len() / 3, 2 * b.len() / 3],
        vec![1.min(b.len())],
    ] {
        let mut pieces = Vec::new();
        let mut at = 0;
        for cut in cuts.into_iter().chain([b.len()]) {
            pieces.push(bytes::Bytes::copy_from_slice(&b[at..cut.max(at)]));
            at = cut.max(at);
        }
        let split = scheme.verify(
            &Input {
                body: Body::chunked(&pieces),
                ..r.input()
            },
            now,
        );
        let same = match (&whole, &split) {
            (Ok(a), Ok(b)) => a.key_index == b.key_index && a.timestamp == b.timestamp,
            (Err(a), Err(b)) => a == b,
            _ => false,
        };
        if !same {
            return Err(format!(
                "body in {} pieces: {split:?}, whole: {whole:?}",
                pieces.len()
            ));
        }
    }
    Ok(whole)
}

#[test]
fn every_vector_case_matches_its_decision() {
    let quirks: BTreeMap<&str, Decision> = QUIRKS.iter().map(|(n, d, _)| (*n, *d)).collect();
    let mut failures: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut total = 0;
    for (file, doc) in load() {
        for c in doc.get("cases").and_then(Value::as_array).expect("cases") {
            total += 1;
            let name = str_field(c, "name");
            let expect = str_field(c, "expect");
            let wanted = match str_field(c, "category") {
                "core" => expect.to_owned(),
                _ => match quirks.get(name) {
                    Some(Decision::Expect) => expect.to_owned(),
                    Some(Decision::AlsoAcceptable) => c
                        .get("also_acceptable")
                        .and_then(Value::as_str)
                        .unwrap_or(expect)
                        .to_owned(),
                    None => {
                        failures
                            .entry(file.clone())
                            .or_default()
                            .push(format!("{name}: quirk case without a decision in QUIRKS"));
                        continue;
                    }
                },
            };
            match run_case(&file, c) {
                Err(e) => failures
                    .entry(file.clone())
                    .or_default()
                    .push(format!("{name}: {e}")),
                Ok(r) => {
                    let got = if r.is_ok() { "valid" } else { "invalid" };
                    if got != wanted {
                        failures
                            .entry(file.clone())
                            .or_default()
                            .push(format!("{name}: want {wanted}, got {got} ({r:?})"));
                    }
                }
            }
        }
    }
    if !failures.is_empty() {
        let mut msg = String::new();
        for (file, cases) in &failures {
            msg.push_str(&format!("\n{file}.json: {} failing\n", cases.len()));
            for c in cases {
                msg.push_str(&format!("  - {c}\n"));
            }
        }
        panic!(
            "{} of {total} vector cases failed:{msg}",
            failures.values().map(Vec::len).sum::<usize>()
        );
    }
    assert!(total > 100, "only {total} cases loaded");
}

/// Splits a signature header into its entries (for list headers such as Paddle's rotation
/// case, our single signature must be one of the SDK's entries).
fn entries(v: &str) -> Vec<&str> {
    v.split([' ', ',', ';']).filter(|e| !e.is_empty()).collect()
}

/// `sign()` reproduces the SDK-made signature header of valid core cases (same secret, id,
/// timestamp, body). Discord is skipped: its vectors carry only the public key.
#[test]
fn sign_reproduces_sdk_signatures() {
    let mut failures = Vec::new();
    for (file, doc) in load() {
        let (name, hmac) = route_for(&file);
        // Discord's vectors carry only the public key; ECDSA (sendgrid) is randomized.
        if name == sn("discord") || name == sn("sendgrid") {
            continue;
        }
        let mut matched = 0;
        let mut tried = Vec::new();
        for c in doc.get("cases").and_then(Value::as_array).expect("cases") {
            if str_field(c, "category") != "core" || str_field(c, "expect") != "valid" {
                continue;
            }
            let headers = case_headers(c);
            let get = |n: &str| {
                headers
                    .iter()
                    .find(|(k, _)| k.eq_ignore_ascii_case(n))
                    .map(|(_, v)| v.as_str())
            };
            // Standard Webhooks and its presets (clerk, resend, ...) sign as `webhook-*`.
            let standard = name.def().headers.first() == Some(&"svix-signature");
            let sig_name = match name.as_str() {
                _ if standard => "webhook-signature",
                "hmac" => "X-Hub-Signature",
                "discord" => continue,
                // The registry lists each scheme's signature header first.
                _ => name.def().headers[0],
            };
            let theirs = match name.as_str() {
                _ if standard => get("svix-signature").or(get("webhook-signature")),
                _ => get(sig_name),
            };
            let Some(theirs) = theirs else { continue };
            let id = get("svix-id")
                .or(get("webhook-id"))
                .or_else(|| match name.def().message_id {
                    MessageId::Headers(hs) => hs.iter().find_map(|h| get(h)),
                    _ => None,
                });
            let ts: i64 = match name.as_str() {
                _ if standard => get("svix-timestamp")
                    .or(get("webhook-timestamp"))
                    .and_then(parse_unix),
                "slack" => get("X-Slack-Request-Timestamp").and_then(parse_unix),
                "twitch" => get("Twitch-Eventsub-Message-Timestamp").and_then(|t| {
                    time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339)
                        .ok()
                        .map(time::OffsetDateTime::unix_timestamp)
                }),
                "stripe" | "paddle" => theirs
                    .split([',', ';'])
                    .find_map(|e| e.strip_prefix("t=").or(e.strip_prefix("ts=")))
                    .and_then(parse_unix),
                _ => c.get("now").and_then(Value::as_i64),
            }
            .expect("timestamp");
            let secret = str_field(c, "secret");
            let ours = sign(
                name,
                &case_options(c, hmac.clone()),
                secret.as_bytes(),
                id,
                ts,
                str_field(c, "method"),
                str_field(c, "path"),
                str_field(c, "body").as_bytes(),
            )
            .unwrap_or_else(|e| panic!("{}: sign failed: {e}", str_field(c, "name")));
            let ours = ours
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(sig_name))
                .map(|(_, v)| v.clone())
                .expect("signature header in sign() output");
            let theirs_entries = entries(theirs);
            if ours == theirs || entries(&ours).iter().all(|e| theirs_entries.contains(e)) {
                matched += 1;
            } else {
                tried.push(str_field(c, "name").to_owned());
            }
        }
        if matched == 0 {
            failures.push(format!(
                "{file}: sign() matched no valid case (differs on {tried:?})"
            ));
        }
        for t in &tried {
            if t.ends_with("/valid_basic") {
                failures.push(format!("{file}: sign() differs on {t}"));
            }
        }
    }
    assert!(failures.is_empty(), "{failures:#?}");
}
