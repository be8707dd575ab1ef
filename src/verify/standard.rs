//! Standard Webhooks (`standard-webhooks`, alias `svix`), SCHEMES.md §1.
//!
//! * Headers `webhook-id`, `webhook-timestamp`, `webhook-signature`, each resolved
//!   independently as the Svix libraries do: `svix-X` if present (even when empty or bad), else
//!   `webhook-X`. The id header's value is [`Verified::id`](super::Verified::id).
//! * Secrets: `whsec_<base64>` (the prefix is optional; padded or unpadded standard base64;
//!   the HMAC key is the decoded bytes) for `v1` HMAC-SHA256, or `whpk_<base64 of a 32-byte
//!   Ed25519 public key>` for `v1a`. A route may mix both. `whsk_` (a private key) is refused
//!   in the verifier config.
//! * Signed content: `{id}.{timestamp}.{body}` with the timestamp parsed strictly (digits only,
//!   leading zeros allowed) and re-serialized as an integer, as all three official libs do.
//! * Signature header: single-space separated entries, empty entries (double spaces) skipped;
//!   each entry split on its first `,`. `v1` entries are compared (constant-time, as base64
//!   text, so trailing junk such as `v1,<sig>!!` is rejected) against every `whsec_` key;
//!   the first 8 `v1a` entries are Ed25519-verified (strict) against every `whpk_` key (a cap:
//!   each costs a verification per key); other versions are ignored. No entry containing a `,` → malformed; entries but no match → bad signature.
//! * Window: 300 s default, symmetric, inclusive.

use std::time::Duration;

use base64::Engine as _;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use http::{HeaderMap, HeaderName, HeaderValue};

use super::{
    b64_decode_lenient, b64_std, check_window, ct_eq, first_match, parse_unix, Input, MacKey,
    MessageId, SchemeDef, SchemeError, SecretMaterial, SignRequest, Verified, Verifier,
    VerifyError,
};
use crate::verify::HmacAlgorithm;

/// Most `v1a` entries of one header that are Ed25519-verified (each costs a verification per
/// `whpk_` key; a sender sends one per active key).
const MAX_V1A_ENTRIES: usize = 8;

#[derive(Debug, Clone)]
enum Key {
    Hmac(MacKey),
    Ed(VerifyingKey),
}

pub(crate) static DEF: SchemeDef = SchemeDef {
    aliases: &["svix"],
    ..preset("standard-webhooks")
};

/// A provider that signs exactly as Standard Webhooks / Svix (same headers, secret format,
/// window and id), under its own name: one line in the registry.
pub(crate) const fn preset(name: &'static str) -> SchemeDef {
    SchemeDef {
        name,
        message_id: MessageId::Headers(&["svix-id", "webhook-id"]),
        headers: &[
            "svix-signature",
            "webhook-signature",
            "svix-timestamp",
            "webhook-timestamp",
            "svix-id",
            "webhook-id",
        ],
        build,
        sign: sign_headers,
        strip_unread: Some(strip_unread),
        id_signed: true,
        signed_content: super::SignedContent::Body { id: true },
        event: crate::events::DefaultEvent::Json("/type"),
        ..SchemeDef::BASE
    }
}

/// Clerk: its webhooks are sent by Svix (`svix-id`, `svix-timestamp`, `svix-signature`,
/// `whsec_` secret). Source: Clerk "Verify webhook requests"
/// (clerk.com/docs/webhooks/verifying) and its `verifyWebhook`, which calls `standardwebhooks`.
pub(crate) static CLERK: SchemeDef = preset("clerk");
/// Resend: Svix headers and `whsec_` secret. Source: Resend "Verify webhooks requests"
/// (resend.com/docs/dashboard/webhooks/verify-webhooks-requests); the SDK uses `svix`.
pub(crate) static RESEND: SchemeDef = preset("resend");
/// Brex: Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature`, base64
/// secret from the API). Source: Brex developer docs "Webhooks — Verifying webhooks"
/// (developer.brex.com/docs/webhooks).
pub(crate) static BREX: SchemeDef = preset("brex");
/// Replicate: `webhook-id`, `webhook-timestamp`, `webhook-signature`, `whsec_` secret from
/// its API. Source: Replicate "Verifying webhooks" (replicate.com/docs/topics/webhooks/verify-webhook).
pub(crate) static REPLICATE: SchemeDef = preset("replicate");

fn build(
    _: &super::SchemeOptions,
    secrets: &[SecretMaterial],
) -> Result<std::sync::Arc<dyn Verifier>, SchemeError> {
    Ok(std::sync::Arc::new(Standard::new(secrets)?))
}

#[derive(Debug, Clone)]
struct Standard {
    keys: Vec<Key>,
}

/// Decodes a `whsec_` (or bare base64) secret into HMAC key bytes.
pub(crate) fn decode_whsec(bytes: &[u8]) -> Option<Vec<u8>> {
    let b = bytes.strip_prefix(b"whsec_").unwrap_or(bytes);
    b64_decode_lenient(b).filter(|k| !k.is_empty())
}

/// Decodes a `whsk_` private key: base64 of a 32-byte seed or a 64-byte keypair.
pub(crate) fn decode_whsk(bytes: &[u8]) -> Option<SigningKey> {
    let b = bytes.strip_prefix(b"whsk_")?;
    let raw = b64_decode_lenient(b)?;
    match raw.len() {
        32 => {
            let mut seed = [0u8; 32];
            seed.copy_from_slice(&raw);
            Some(SigningKey::from_bytes(&seed))
        }
        64 => {
            let mut kp = [0u8; 64];
            kp.copy_from_slice(&raw);
            SigningKey::from_keypair_bytes(&kp).ok()
        }
        _ => None,
    }
}

impl Standard {
    pub(crate) fn new(secrets: &[SecretMaterial]) -> Result<Standard, SchemeError> {
        let mut keys = Vec::with_capacity(secrets.len());
        for (i, s) in secrets.iter().enumerate() {
            if let Some(pk) = s.bytes.strip_prefix(b"whpk_") {
                let raw = b64_decode_lenient(pk)
                    .ok_or_else(|| SchemeError::secret(i, "whpk_ secret is not valid base64"))?;
                let arr: [u8; 32] = raw.as_slice().try_into().map_err(|_| {
                    SchemeError::secret(i, "whpk_ secret must be a 32-byte Ed25519 public key")
                })?;
                let vk = VerifyingKey::from_bytes(&arr)
                    .map_err(|_| SchemeError::secret(i, "whpk_ secret is not an Ed25519 key"))?;
                if vk.is_weak() {
                    return Err(SchemeError::secret(i, "whpk_ secret is a weak Ed25519 key"));
                }
                keys.push(Key::Ed(vk));
            } else if s.bytes.starts_with(b"whsk_") {
                return Err(SchemeError::secret(
                    i,
                    "whsk_ is a private signing key; configure the whpk_ public key",
                ));
            } else {
                let k = decode_whsec(&s.bytes).ok_or_else(|| {
                    SchemeError::secret(i, "secret must be whsec_ followed by base64")
                })?;
                keys.push(Key::Hmac(MacKey::new(HmacAlgorithm::Sha256, &k)));
            }
        }
        Ok(Standard { keys })
    }
}

impl Verifier for Standard {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let h = input.headers;
        let id = pick(h, &NAMES[0]);
        let ts = pick(h, &NAMES[1]);
        let sig = pick(h, &NAMES[2]);
        let id_val = present(&id)?;
        let ts_val = present(&ts)?;
        let sig_val = present(&sig)?;
        // Sent twice: the app would see both copies while one was verified.
        for p in [&id, &ts, &sig] {
            if p.twice {
                return Err(VerifyError::MalformedSignature(p.name));
            }
        }
        let (id_name, ts_name, sig_name) = (id.name, ts.name, sig.name);
        let id = id_val
            .to_str()
            .map_err(|_| VerifyError::MalformedSignature(id_name))?;
        let ts_text = ts_val
            .to_str()
            .map_err(|_| VerifyError::MalformedSignature(ts_name))?;
        let sig = sig_val
            .to_str()
            .map_err(|_| VerifyError::MalformedSignature(sig_name))?;
        let ts = parse_unix(ts_text).ok_or(VerifyError::MalformedSignature(ts_name))?;

        let entries = || {
            sig.split(' ')
                .filter(|e| !e.is_empty())
                .filter_map(|e| e.split_once(','))
        };
        if entries().next().is_none() {
            return Err(VerifyError::MalformedSignature(sig_name));
        }
        check_window(ts, now, tol)?;

        // The timestamp as the integer it parsed to (leading zeros dropped), as the libs sign.
        let mut ts_buf = [0u8; 20];
        let ts_str = decimal(ts.unsigned_abs(), &mut ts_buf);
        let prefix: [&[u8]; 4] = [id.as_bytes(), b".", ts_str, b"."];
        let v1a: Vec<Signature> = if self.keys.iter().any(|k| matches!(k, Key::Ed(_))) {
            entries()
                .filter(|(v, _)| *v == "v1a")
                .take(MAX_V1A_ENTRIES)
                .filter_map(|(_, s)| decode_ed_sig(s))
                .collect()
        } else {
            Vec::new()
        };
        let msg = if v1a.is_empty() {
            Vec::new()
        } else {
            input.body.after(&prefix)
        };

        let found = first_match(self.keys.len(), |i| match &self.keys[i] {
            Key::Hmac(k) => {
                let mac = k.compute_body(&prefix, input.body);
                let mut text = [0u8; 88];
                let n = base64::engine::general_purpose::STANDARD
                    .encode_slice(mac.as_bytes(), &mut text)
                    .unwrap_or(0);
                let mut any = subtle::Choice::from(0);
                for (_, c) in entries().filter(|(v, _)| *v == "v1") {
                    any |= ct_eq(&text[..n], c.as_bytes());
                }
                any
            }
            Key::Ed(vk) => {
                let mut any = subtle::Choice::from(0);
                for s in &v1a {
                    any |= subtle::Choice::from(u8::from(vk.verify_strict(&msg, s).is_ok()));
                }
                any
            }
        });
        match found {
            Some(key_index) => Ok(Verified {
                key_index,
                id: Some(id_val.clone()),
                timestamp: Some(ts),
            }),
            None => Err(VerifyError::BadSignature),
        }
    }
}

/// The (`svix-X`, `webhook-X`) header names of the id, the timestamp and the signature, as
/// looked up and as reported in errors.
const NAMES: [[(HeaderName, &str); 2]; 3] = [
    [
        (HeaderName::from_static("svix-id"), "svix-id"),
        (HeaderName::from_static("webhook-id"), "webhook-id"),
    ],
    [
        (HeaderName::from_static("svix-timestamp"), "svix-timestamp"),
        (
            HeaderName::from_static("webhook-timestamp"),
            "webhook-timestamp",
        ),
    ],
    [
        (HeaderName::from_static("svix-signature"), "svix-signature"),
        (
            HeaderName::from_static("webhook-signature"),
            "webhook-signature",
        ),
    ],
];

/// Removes the headers the verifier did not read: for each of the id, the timestamp and the
/// signature, `webhook-X` when `svix-X` is present (when it is absent, `webhook-X` was read
/// and there is no `svix-X` to remove). The app then sees only what was verified.
pub(crate) fn strip_unread(h: &mut HeaderMap) {
    for [(svix, _), (webhook, _)] in &NAMES {
        if h.contains_key(svix) {
            h.remove(webhook);
        }
    }
}

/// One header as the Svix libraries resolve it: `svix-X` if present (even empty), else
/// `webhook-X`; its first value and whether it came more than once.
struct Picked<'a> {
    name: &'static str,
    value: Option<&'a HeaderValue>,
    twice: bool,
}

fn pick<'a>(h: &'a HeaderMap, names: &[(HeaderName, &'static str); 2]) -> Picked<'a> {
    let one = |(header, name): &(HeaderName, &'static str)| {
        let mut all = h.get_all(header).iter();
        let value = all.next();
        Picked {
            name,
            value,
            twice: all.next().is_some(),
        }
    };
    match one(&names[0]) {
        p @ Picked { value: Some(_), .. } => p,
        _ => one(&names[1]),
    }
}

fn present<'a>(p: &Picked<'a>) -> Result<&'a HeaderValue, VerifyError> {
    match p.value {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(VerifyError::MissingSignature(p.name)),
    }
}

/// `n` in decimal, in `buf`.
fn decimal(mut n: u64, buf: &mut [u8; 20]) -> &[u8] {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return &buf[at..];
        }
    }
}

/// Strict standard padded base64 of exactly 64 bytes.
fn decode_ed_sig(s: &str) -> Option<Signature> {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD.decode(s).ok()?;
    let arr: [u8; 64] = raw.as_slice().try_into().ok()?;
    Some(Signature::from_bytes(&arr))
}

/// `webhook-id`, `webhook-timestamp`, `webhook-signature`. Standard Webhooks requires an id:
/// without one, `msg_<24 hex of SHA-256(timestamp.body)>` is used (deterministic).
fn sign_headers(r: &SignRequest<'_>) -> Result<Vec<(String, String)>, SchemeError> {
    use sha2::Digest as _;
    let ts = r.timestamp.to_string();
    let id = match r.id {
        Some(i) => i.to_owned(),
        None => {
            let d = sha2::Sha256::new()
                .chain_update(ts.as_bytes())
                .chain_update(b".")
                .chain_update(r.body)
                .finalize();
            format!("msg_{}", &super::hex_lower(&d)[..24])
        }
    };
    let sig = sign_value(r.secret, &id, r.timestamp, r.body)?;
    Ok(vec![
        SignRequest::header("webhook-id", id),
        SignRequest::header("webhook-timestamp", ts),
        SignRequest::header("webhook-signature", sig),
    ])
}

/// `webhook-signature` value for one secret: `v1,<base64>` for `whsec_`, `v1a,<base64>` for a
/// `whsk_` private key.
pub(crate) fn sign_value(
    secret: &[u8],
    id: &str,
    ts: i64,
    body: &[u8],
) -> Result<String, SchemeError> {
    let ts_str = ts.to_string();
    let parts: [&[u8]; 5] = [id.as_bytes(), b".", ts_str.as_bytes(), b".", body];
    if secret.starts_with(b"whsk_") {
        let sk = decode_whsk(secret).ok_or_else(|| {
            SchemeError::secret(
                0,
                "whsk_ must be base64 of a 32-byte seed or 64-byte keypair",
            )
        })?;
        let sig = sk.sign(&parts.concat());
        return Ok(format!("v1a,{}", b64_std(&sig.to_bytes())));
    }
    if secret.starts_with(b"whpk_") {
        return Err(SchemeError::secret(
            0,
            "whpk_ is a public key; signing needs whsk_",
        ));
    }
    let key = decode_whsec(secret)
        .ok_or_else(|| SchemeError::secret(0, "secret must be whsec_ followed by base64"))?;
    let mac = MacKey::new(HmacAlgorithm::Sha256, &key).compute(&parts);
    Ok(format!("v1,{}", b64_std(mac.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::tests::{req, scheme, sn};
    use crate::verify::SchemeOptions;

    #[test]
    fn strip_unread_keeps_only_the_family_each_header_was_read_from() {
        let mut h = HeaderMap::new();
        for (k, v) in [
            ("svix-id", "a"),
            ("webhook-id", "b"),
            ("webhook-timestamp", "1"),
            ("svix-signature", "v1,x"),
            ("webhook-signature", "v1,y"),
            ("content-type", "application/json"),
        ] {
            h.insert(HeaderName::from_static(k), HeaderValue::from_static(v));
        }
        strip_unread(&mut h);
        let mut names: Vec<&str> = h.keys().map(HeaderName::as_str).collect();
        names.sort_unstable();
        assert_eq!(
            names,
            [
                "content-type",
                "svix-id",
                "svix-signature",
                "webhook-timestamp"
            ]
        );
    }

    #[test]
    fn decimal_writes_what_to_string_does() {
        for n in [0u64, 7, 10, 99, 100, 1_796_171_745, 1 << 40, u64::MAX] {
            let mut buf = [0u8; 20];
            assert_eq!(decimal(n, &mut buf), n.to_string().as_bytes());
        }
    }

    #[test]
    fn published_vectors() {
        assert_eq!(
            sign_value(
                b"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
                "msg_p5jXN8AQM9LWM0D4loKWxJek",
                1614265330,
                br#"{"test": 2432232314}"#
            )
            .unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        assert_eq!(
            sign_value(
                b"whsec_C2FVsBQIhrscChlQIMV+b5sSYspob7oD",
                "msg_27UH4WbU6Z5A5EzD8u03UvzRbpk",
                1649367553,
                br#"{"email":"test@example.com","username":"test_user"}"#
            )
            .unwrap(),
            "v1,tZ1I4/hDygAJgO5TYxiSd6Sd0kDW6hPenDe+bTa3Kkw="
        );
    }

    #[test]
    fn v1a_ed25519_and_mixed_keys() {
        let seed = [7u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let whsk = format!("whsk_{}", b64_std(&seed));
        let whpk = format!("whpk_{}", b64_std(sk.verifying_key().as_bytes()));
        let hmac_secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = scheme(
            sn("standard-webhooks"),
            &SchemeOptions::default(),
            &[hmac_secret, whpk.as_str()],
        );
        let sig = sign_value(whsk.as_bytes(), "msg_1", 1000, b"hello").unwrap();
        assert!(sig.starts_with("v1a,"));
        let headers = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1000"),
            ("webhook-signature", &sig),
        ];
        let v = s.verify(&req(&headers, b"hello").input(), 1000).unwrap();
        assert_eq!(v.key_index, 1);
        // A v1a signature is never checked against an HMAC key and vice versa.
        let bad = sig.replacen("v1a,", "v1,", 1);
        let headers = [
            ("webhook-id", "msg_1"),
            ("webhook-timestamp", "1000"),
            ("webhook-signature", &bad),
        ];
        assert_eq!(
            s.verify(&req(&headers, b"hello").input(), 1000)
                .unwrap_err(),
            VerifyError::BadSignature
        );
        // keypair form of whsk_ signs identically
        let whsk64 = format!("whsk_{}", b64_std(&sk.to_keypair_bytes()));
        assert_eq!(
            sign_value(whsk64.as_bytes(), "msg_1", 1000, b"hello").unwrap(),
            sig
        );
        // private keys are refused in the verifier
        assert!(Scheme::new(
            sn("standard-webhooks"),
            &SchemeOptions::default(),
            &[crate::verify::tests::secret(&whsk)]
        )
        .is_err());
    }

    /// Each `v1a` entry costs an Ed25519 verification per `whpk_` key: a 64 KiB header holds
    /// ~700 of them. Only the first [`MAX_V1A_ENTRIES`] are checked, so a valid signature
    /// after that many junk ones is not found (no sender rotates through more keys at once).
    #[test]
    fn only_the_first_v1a_entries_are_checked() {
        let seed = [9u8; 32];
        let sk = SigningKey::from_bytes(&seed);
        let whsk = format!("whsk_{}", b64_std(&seed));
        let whpk = format!("whpk_{}", b64_std(sk.verifying_key().as_bytes()));
        let s = scheme(
            sn("standard-webhooks"),
            &SchemeOptions::default(),
            &[whpk.as_str()],
        );
        let good = sign_value(whsk.as_bytes(), "msg_1", 1000, b"hello").unwrap();
        let junk = format!("v1a,{}", b64_std(&[1u8; 64]));
        let run = |n_junk: usize| {
            let mut sig = vec![junk.as_str(); n_junk];
            sig.push(&good);
            let sig = sig.join(" ");
            let headers = [
                ("webhook-id", "msg_1"),
                ("webhook-timestamp", "1000"),
                ("webhook-signature", sig.as_str()),
            ];
            s.verify(&req(&headers, b"hello").input(), 1000)
        };
        assert!(run(MAX_V1A_ENTRIES - 1).is_ok());
        assert_eq!(run(MAX_V1A_ENTRIES).unwrap_err(), VerifyError::BadSignature);
        assert_eq!(run(700).unwrap_err(), VerifyError::BadSignature);
    }

    use crate::verify::Scheme;

    /// The quirks the README names for Standard Webhooks, where the SDKs disagree: a leading-zero
    /// timestamp verifies against the signature over the integer; fractional or trailing text is
    /// malformed (Rust library), not accepted (Python/JS).
    #[test]
    fn timestamp_text_quirks() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = scheme(
            sn("standard-webhooks"),
            &SchemeOptions::default(),
            &[secret],
        );
        let sig = sign_value(secret.as_bytes(), "m", 1735689600, b"b").unwrap();
        let run = |ts: &str| {
            s.verify(
                &req(
                    &[
                        ("webhook-id", "m"),
                        ("webhook-timestamp", ts),
                        ("webhook-signature", &sig),
                    ],
                    b"b",
                )
                .input(),
                1735689600,
            )
        };
        assert_eq!(run("01735689600").unwrap().timestamp, Some(1735689600));
        for bad in ["1735689600.5", "1735689600abc", " 1735689600", "1.7e9"] {
            assert_eq!(
                run(bad).unwrap_err(),
                VerifyError::MalformedSignature("webhook-timestamp"),
                "{bad}"
            );
        }
    }

    #[test]
    fn parse_errors_and_aliases() {
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let s = scheme(
            sn("standard-webhooks"),
            &SchemeOptions::default(),
            &[secret],
        );
        let sig = sign_value(secret.as_bytes(), "m", 100, b"b").unwrap();
        let ok = |hs: &[(&str, &str)]| s.verify(&req(hs, b"b").input(), 100);
        assert!(ok(&[
            ("svix-id", "m"),
            ("webhook-timestamp", "100"),
            ("svix-signature", &sig)
        ])
        .is_ok());
        assert_eq!(
            ok(&[
                ("webhook-id", "m"),
                ("webhook-timestamp", "+100"),
                ("webhook-signature", &sig)
            ])
            .unwrap_err(),
            VerifyError::MalformedSignature("webhook-timestamp")
        );
        assert_eq!(
            ok(&[
                ("webhook-id", "m"),
                ("webhook-timestamp", "100"),
                ("webhook-signature", "abc")
            ])
            .unwrap_err(),
            VerifyError::MalformedSignature("webhook-signature")
        );
        assert_eq!(
            ok(&[
                ("svix-id", ""),
                ("webhook-id", "m"),
                ("webhook-timestamp", "100")
            ])
            .unwrap_err(),
            VerifyError::MissingSignature("svix-id")
        );
        assert_eq!(
            ok(&[
                ("webhook-id", "m"),
                ("webhook-timestamp", "401"),
                ("webhook-signature", &sig)
            ])
            .unwrap_err(),
            VerifyError::FutureTimestamp { skew: 301 }
        );
    }
}
