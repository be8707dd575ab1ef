//! Every preset of the table: a valid request, a tampered one, a stale one (where the preset
//! has a timestamp), the header forms, and the cases where the entry differs from the plain
//! form. The registry-wide tests (`verify::tests`, `tests/integration/properties.rs`) add
//! round trips with rotation, bit flips and duplicate headers; `verify::vectors` the SDKs'.

use http::{HeaderMap, HeaderName, HeaderValue, Method, Uri};

use super::*;

/// Every entry of the table.
pub(crate) const ALL: &[&Spec] = &[
    &BITBUCKET_SPEC,
    &GITEA_SPEC,
    &FORGEJO_SPEC,
    &INTERCOM_SPEC,
    &TYPEFORM_SPEC,
    &PAGERDUTY_SPEC,
    &ZENDESK_SPEC,
    &HUBSPOT_SPEC,
    &TWITCH_SPEC,
    &SEGMENT_SPEC,
    &SENTRY_SPEC,
    &VERCEL_SPEC,
    &TERRAFORM_CLOUD_SPEC,
    &CALENDLY_SPEC,
    &RAZORPAY_SPEC,
    &MOLLIE_SPEC,
    &XERO_SPEC,
    &DOCUSIGN_SPEC,
    &BOX_SPEC,
    &FRAME_IO_SPEC,
    &LAUNCHDARKLY_SPEC,
    &CIRCLECI_SPEC,
    &BUILDKITE_SPEC,
    &MUX_SPEC,
    &CASTLE_SPEC,
    &PERSONA_SPEC,
    &LOB_SPEC,
    &MODERN_TREASURY_SPEC,
    &COINBASE_SPEC,
    &WOOCOMMERCE_SPEC,
    &TIKTOK_SPEC,
    &WEBEX_SPEC,
    &PUSHER_SPEC,
    &MICROSOFT_TEAMS_SPEC,
    &AUTODESK_SPEC,
    &CAL_COM_SPEC,
    &LEMON_SQUEEZY_SPEC,
    &NOTION_SPEC,
    &CLEARBIT_SPEC,
    &AFTERSHIP_SPEC,
    &ALCHEMY_SPEC,
    &BOLT_SPEC,
    &CHARGIFY_SPEC,
    &HEROKU_SPEC,
    &SONATYPE_SPEC,
    &ORB_SPEC,
    &SIGNAL_SCIENCES_SPEC,
];

const NOW: i64 = 1_735_689_600;
const BODY_TEXT: &[u8] = br#"{"event":"created","id":"evt_1","n":1}"#;
const PUBLIC: &str = "https://hooks.example.com";

fn secret_of(spec: &Spec) -> &'static str {
    match spec.key {
        Key::Text => "preset-secret-1",
        Key::Base64 => "cHJlc2V0LXNlY3JldC0x",
    }
}

fn options() -> SchemeOptions {
    SchemeOptions {
        public_url: Some(PUBLIC.into()),
        ..SchemeOptions::default()
    }
}

fn build(spec: &'static Spec, secrets: &[&str]) -> Template {
    let s: Vec<SecretMaterial> = secrets
        .iter()
        .enumerate()
        .map(|(i, k)| SecretMaterial {
            id: i.to_string(),
            bytes: k.as_bytes().to_vec(),
        })
        .collect();
    Template::new(spec, &options(), &s).unwrap_or_else(|e| panic!("{}: {e}", spec.name))
}

fn run(
    t: &Template,
    headers: &[(String, String)],
    body: &[u8],
    now: i64,
) -> Result<Verified, VerifyError> {
    let mut map = HeaderMap::new();
    for (n, v) in headers {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).expect("name"),
            HeaderValue::from_str(v).expect("value"),
        );
    }
    let uri: Uri = "/hooks/in?x=1".parse().expect("uri");
    t.verify(
        &Input {
            method: &Method::POST,
            uri: &uri,
            headers: &map,
            body: Body::new(body),
        },
        now,
        t.spec.tolerance,
    )
}

fn signed(spec: &'static Spec, ts: i64) -> Vec<(String, String)> {
    sign(
        spec,
        &SignRequest {
            options: &options(),
            secret: secret_of(spec).as_bytes(),
            id: Some("msg_1"),
            timestamp: ts,
            method: "POST",
            path_and_query: "/hooks/in?x=1",
            body: BODY_TEXT,
        },
    )
    .unwrap_or_else(|e| panic!("{}: {e}", spec.name))
}

fn with(headers: &[(String, String)], name: &str, value: &str) -> Vec<(String, String)> {
    headers
        .iter()
        .map(|(n, v)| {
            if n.eq_ignore_ascii_case(name) {
                (n.clone(), value.to_owned())
            } else {
                (n.clone(), v.clone())
            }
        })
        .collect()
}

#[test]
fn the_table_and_the_registry_agree() {
    for spec in ALL {
        let def = crate::verify::SchemeName::parse(spec.name)
            .unwrap_or_else(|| panic!("{} is not in the registry", spec.name))
            .def();
        assert_eq!(def.headers, spec.headers, "{}", spec.name);
        assert_eq!(def.headers[0], spec.sig, "{}: signature first", spec.name);
        for h in spec.alt.iter().chain(spec.id) {
            assert!(spec.headers.contains(h), "{}: {h} not listed", spec.name);
        }
        if let Ts::Header(h, _) = spec.ts {
            assert!(spec.headers.contains(&h), "{}: {h} not listed", spec.name);
        }
        assert!(spec.payload.contains(&Part::Body), "{}", spec.name);
        assert_eq!(def.default_tolerance, spec.tolerance);
    }
}

#[test]
fn valid_tampered_and_stale_for_every_preset() {
    for spec in ALL {
        let older = if spec.key == Key::Base64 {
            "b2xkZXI="
        } else {
            "an-older-secret"
        };
        let t = build(spec, &[older, secret_of(spec)]);
        let hs = signed(spec, NOW);
        let v = run(&t, &hs, BODY_TEXT, NOW).unwrap_or_else(|e| panic!("{}: {e:?}", spec.name));
        assert_eq!(v.key_index, 1, "{}", spec.name);
        if spec.id.is_empty() {
            assert!(v.id.is_none());
        } else {
            assert_eq!(v.id.unwrap(), "msg_1", "{}", spec.name);
        }
        let has_ts = !matches!(spec.ts, Ts::None);
        assert_eq!(v.timestamp, has_ts.then_some(NOW), "{}", spec.name);

        // tampered body
        let mut body = BODY_TEXT.to_vec();
        body[10] ^= 1;
        assert_eq!(
            run(&t, &hs, &body, NOW).unwrap_err(),
            VerifyError::BadSignature,
            "{}",
            spec.name
        );
        // wrong secret
        let other = build(
            spec,
            &[if spec.key == Key::Base64 {
                "d3Jvbmc="
            } else {
                "wrong"
            }],
        );
        assert_eq!(
            run(&other, &hs, BODY_TEXT, NOW).unwrap_err(),
            VerifyError::BadSignature,
            "{}",
            spec.name
        );
        // stale and future, just outside the window; inside at the boundary
        let tol = i64::try_from(spec.tolerance.as_secs()).unwrap_or(300);
        if has_ts {
            assert!(
                matches!(
                    run(&t, &hs, BODY_TEXT, NOW + tol + 1),
                    Err(VerifyError::StaleTimestamp { .. })
                ),
                "{}",
                spec.name
            );
            assert!(
                matches!(
                    run(&t, &hs, BODY_TEXT, NOW - tol - 1),
                    Err(VerifyError::FutureTimestamp { .. })
                ),
                "{}",
                spec.name
            );
            assert!(run(&t, &hs, BODY_TEXT, NOW + tol).is_ok(), "{}", spec.name);
        } else {
            // no timestamp: any clock verifies
            assert!(
                run(&t, &hs, BODY_TEXT, NOW + 86_400).is_ok(),
                "{}",
                spec.name
            );
        }
        // the signature header missing / empty
        let without: Vec<_> = hs.iter().filter(|(n, _)| n != spec.sig).cloned().collect();
        assert_eq!(
            run(&t, &without, BODY_TEXT, NOW).unwrap_err(),
            VerifyError::MissingSignature(spec.sig),
            "{}",
            spec.name
        );
        // Strictness as the SDKs: the MAC's text is compared exactly.
        let sig = hs[0].1.clone();
        let mac = match spec.form {
            Form::Single(p) => sig.strip_prefix(p).unwrap().to_owned(),
            Form::List { sig: k, .. } => sig
                .split(',')
                .find_map(|e| e.strip_prefix(&format!("{k}=")))
                .unwrap()
                .to_owned(),
        };
        // Surrounding spaces: not trimmed (Persona's list separates groups by spaces).
        let spaced = matches!(spec.form, Form::List { seps, .. } if seps.contains(&' '));
        let mut variants = if spaced {
            vec![]
        } else {
            vec![format!(" {sig}"), format!("{sig} ")]
        };
        match spec.enc {
            // uppercase hex: the SDKs compare lowercase hexdigest text
            Enc::Hex => variants.push(sig.replace(&mac, &mac.to_uppercase())),
            // unpadded or URL-safe base64: the SDKs compare the padded standard text
            Enc::Base64 => {
                let raw = base64::Engine::decode(
                    &base64::engine::general_purpose::STANDARD,
                    mac.as_bytes(),
                )
                .unwrap();
                let url =
                    base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
                variants.push(sig.replace(&mac, mac.trim_end_matches('=')));
                if url != mac.trim_end_matches('=') {
                    variants.push(sig.replace(&mac, &url));
                }
            }
        }
        for bad in variants {
            assert!(
                run(&t, &with(&hs, spec.sig, &bad), BODY_TEXT, NOW).is_err(),
                "{}: {bad:?} accepted",
                spec.name
            );
        }
    }
}

#[test]
fn single_forms_need_their_prefix() {
    for spec in ALL {
        let Form::Single(prefix) = spec.form else {
            continue;
        };
        if prefix.is_empty() {
            continue;
        }
        let t = build(spec, &[secret_of(spec)]);
        let hs = signed(spec, NOW);
        let bare = hs[0].1.strip_prefix(prefix).unwrap().to_owned();
        assert_eq!(
            run(&t, &with(&hs, spec.sig, &bare), BODY_TEXT, NOW).unwrap_err(),
            VerifyError::MalformedSignature(spec.sig),
            "{}",
            spec.name
        );
    }
}

#[test]
fn lists_take_any_signature_and_the_first_timestamp() {
    for spec in ALL {
        let Form::List { ts, sig, seps } = spec.form else {
            continue;
        };
        // The entry's own separator (`,` for most, a space for Orb).
        let sep = seps[0];
        let t = build(spec, &[secret_of(spec)]);
        let hs = signed(spec, NOW);
        let mac = hs[0]
            .1
            .split(sep)
            .find_map(|e| e.strip_prefix(&format!("{sig}=")))
            .unwrap()
            .to_owned();
        let other = "0".repeat(mac.len());
        let head = if ts.is_empty() {
            String::new()
        } else {
            format!("{ts}={NOW}{sep}")
        };
        // rotation: ours second, an unknown version ignored
        let v = format!("{head}{sig}={other}{sep}v9={mac}{sep}{sig}={mac}");
        assert!(
            run(&t, &with(&hs, spec.sig, &v), BODY_TEXT, NOW).is_ok(),
            "{}: {v}",
            spec.name
        );
        // our MAC only under another key: bad signature, not malformed
        let v = format!("{head}v0={mac}");
        assert_eq!(
            run(&t, &with(&hs, spec.sig, &v), BODY_TEXT, NOW).unwrap_err(),
            VerifyError::BadSignature,
            "{}",
            spec.name
        );
        if !ts.is_empty() {
            // no timestamp element: malformed; a second one is ignored (the first wins)
            assert_eq!(
                run(
                    &t,
                    &with(&hs, spec.sig, &format!("{sig}={mac}")),
                    BODY_TEXT,
                    NOW
                )
                .unwrap_err(),
                VerifyError::MalformedSignature(spec.sig),
                "{}",
                spec.name
            );
            let v = format!("{ts}={},{ts}={NOW},{sig}={mac}", NOW + 1);
            assert_eq!(
                run(&t, &with(&hs, spec.sig, &v), BODY_TEXT, NOW).unwrap_err(),
                VerifyError::BadSignature,
                "{}",
                spec.name
            );
            let v = format!("{ts}=12x,{sig}={mac}");
            assert_eq!(
                run(&t, &with(&hs, spec.sig, &v), BODY_TEXT, NOW).unwrap_err(),
                VerifyError::MalformedSignature(spec.sig),
                "{}",
                spec.name
            );
        }
    }
}

#[test]
fn persona_rotation_groups_are_space_separated() {
    let t = build(&PERSONA_SPEC, &["persona-new"]);
    let ours = sign(
        &PERSONA_SPEC,
        &SignRequest {
            options: &options(),
            secret: b"persona-new",
            id: None,
            timestamp: NOW,
            method: "POST",
            path_and_query: "/",
            body: BODY_TEXT,
        },
    )
    .unwrap();
    let theirs = signed(&PERSONA_SPEC, NOW);
    let v = format!("{} {}", theirs[0].1, ours[0].1);
    assert!(run(&t, &with(&theirs, "Persona-Signature", &v), BODY_TEXT, NOW).is_ok());
}

#[test]
fn alt_headers_are_candidates_too() {
    for spec in [&DOCUSIGN_SPEC, &BOX_SPEC] {
        let t = build(spec, &[secret_of(spec)]);
        let hs = signed(spec, NOW);
        let (primary, alt) = (spec.sig, spec.alt[0]);
        // ours in the alt header, garbage in the primary
        let mut moved = with(&hs, primary, "AAAA");
        moved.push((alt.to_owned(), hs[0].1.clone()));
        assert!(run(&t, &moved, BODY_TEXT, NOW).is_ok(), "{}", spec.name);
        // the alt header twice: malformed
        let mut twice = hs.clone();
        twice.push((alt.to_owned(), "AAAA".into()));
        twice.push((alt.to_owned(), "BBBB".into()));
        assert_eq!(
            run(&t, &twice, BODY_TEXT, NOW).unwrap_err(),
            VerifyError::MalformedSignature(alt),
            "{}",
            spec.name
        );
    }
}

#[test]
fn rfc3339_and_millisecond_timestamps() {
    assert_eq!(parse_ts(TsFmt::Rfc3339, "2025-01-01T00:00:00Z"), Some(NOW));
    // Orb's ISO 8601: with an offset as RFC 3339, without one as UTC.
    for t in [
        "2025-01-01T00:00:00Z",
        "2025-01-01T00:00:00",
        "2025-01-01T00:00:00.143045",
        "2025-01-01T01:00:00+01:00",
    ] {
        assert_eq!(parse_ts(TsFmt::IsoUtc, t), Some(NOW), "{t}");
    }
    for bad in [
        "2025-01-01 00:00:00",
        "1735689600",
        "2025-01-01T00:00:00Zjunk",
        "",
    ] {
        assert_eq!(parse_ts(TsFmt::IsoUtc, bad), None, "{bad}");
    }
    assert_eq!(
        parse_ts(TsFmt::Rfc3339, "2025-01-01T01:00:00.123456789+01:00"),
        Some(NOW)
    );
    for bad in ["2025-01-01", "2025-01-01T00:00:00", "1735689600", ""] {
        assert_eq!(parse_ts(TsFmt::Rfc3339, bad), None, "{bad}");
    }
    assert_eq!(parse_ts(TsFmt::Millis, "1735689600999"), Some(NOW));
    assert_eq!(parse_ts(TsFmt::Millis, "-1"), None);
    // a bad timestamp header is malformed, named
    let t = build(&ZENDESK_SPEC, &["z"]);
    let hs = signed(&ZENDESK_SPEC, NOW);
    assert_eq!(
        run(
            &t,
            &with(&hs, "X-Zendesk-Webhook-Signature-Timestamp", "yesterday"),
            BODY_TEXT,
            NOW
        )
        .unwrap_err(),
        VerifyError::MalformedSignature("X-Zendesk-Webhook-Signature-Timestamp")
    );
}

#[test]
fn twitch_signs_its_id() {
    let t = build(&TWITCH_SPEC, &["twitch-secret"]);
    let hs = sign(
        &TWITCH_SPEC,
        &SignRequest {
            options: &options(),
            secret: b"twitch-secret",
            id: Some("e7a1"),
            timestamp: NOW,
            method: "POST",
            path_and_query: "/",
            body: BODY_TEXT,
        },
    )
    .unwrap();
    assert!(run(&t, &hs, BODY_TEXT, NOW).is_ok());
    let changed = with(&hs, "Twitch-Eventsub-Message-Id", "e7a2");
    assert_eq!(
        run(&t, &changed, BODY_TEXT, NOW).unwrap_err(),
        VerifyError::BadSignature
    );
    let gone: Vec<_> = hs
        .iter()
        .filter(|(n, _)| n != "Twitch-Eventsub-Message-Id")
        .cloned()
        .collect();
    assert_eq!(
        run(&t, &gone, BODY_TEXT, NOW).unwrap_err(),
        VerifyError::MissingSignature("Twitch-Eventsub-Message-Id")
    );
    let mut no_id_req = SignRequest {
        options: &options(),
        secret: b"twitch-secret",
        id: None,
        timestamp: NOW,
        method: "POST",
        path_and_query: "/",
        body: BODY_TEXT,
    };
    // without an id, sign() makes a deterministic one and sends it
    let made = sign(&TWITCH_SPEC, &no_id_req).unwrap();
    assert_eq!(made, sign(&TWITCH_SPEC, &no_id_req).unwrap());
    assert!(made[2].1.starts_with("msg_"), "{made:?}");
    assert!(run(&t, &made, BODY_TEXT, NOW).is_ok());
    no_id_req.id = Some("x");
    assert_ne!(sign(&TWITCH_SPEC, &no_id_req).unwrap()[0], made[0]);
}

#[test]
fn hubspot_signs_method_url_and_decodes_listed_escapes() {
    assert_eq!(
        hubspot_url("https://h.example/a%3Ab%2fc?d=%40e%20f%2C%zz%"),
        "https://h.example/a:b/c?d=@e%20f,%zz%"
    );
    let t = build(&HUBSPOT_SPEC, &["hs"]);
    let hs = sign(
        &HUBSPOT_SPEC,
        &SignRequest {
            options: &options(),
            secret: b"hs",
            id: None,
            timestamp: NOW,
            method: "POST",
            path_and_query: "/hooks/in?x=1",
            body: BODY_TEXT,
        },
    )
    .unwrap();
    assert_eq!(hs[1].1, "1735689600000");
    assert!(run(&t, &hs, BODY_TEXT, NOW).is_ok());
    // another path (the request's is signed)
    let mut map = HeaderMap::new();
    for (n, v) in &hs {
        map.append(
            HeaderName::from_bytes(n.as_bytes()).unwrap(),
            HeaderValue::from_str(v).unwrap(),
        );
    }
    let uri: Uri = "/hooks/other?x=1".parse().unwrap();
    let e = t
        .verify(
            &Input {
                method: &Method::POST,
                uri: &uri,
                headers: &map,
                body: Body::new(BODY_TEXT),
            },
            NOW,
            MIN5,
        )
        .unwrap_err();
    assert_eq!(e, VerifyError::BadSignature);
    // no public_url: a configuration error
    let e = Template::new(
        &HUBSPOT_SPEC,
        &SchemeOptions::default(),
        &[SecretMaterial {
            id: "0".into(),
            bytes: b"hs".to_vec(),
        }],
    )
    .unwrap_err();
    assert!(e.message.contains("public_url"), "{e}");
}

#[test]
fn base64_keys_are_checked_and_nothing_leaks_in_debug() {
    let e = Template::new(
        &MICROSOFT_TEAMS_SPEC,
        &options(),
        &[SecretMaterial {
            id: "0".into(),
            bytes: b"not base64!".to_vec(),
        }],
    )
    .unwrap_err();
    assert_eq!(e.secret_index, Some(0));
    for spec in ALL {
        let t = build(spec, &[secret_of(spec)]);
        let d = format!("{t:?}");
        assert!(!d.contains(secret_of(spec)), "{d}");
    }
}

#[test]
fn box_requires_its_version_and_algorithm_headers() {
    let t = build(&BOX_SPEC, &["box-key"]);
    let hs = sign(
        &BOX_SPEC,
        &SignRequest {
            options: &options(),
            secret: b"box-key",
            id: None,
            timestamp: NOW,
            method: "POST",
            path_and_query: "/",
            body: BODY_TEXT,
        },
    )
    .unwrap();
    assert!(run(&t, &hs, BODY_TEXT, NOW).is_ok());
    for (name, other) in [
        ("box-signature-version", "2"),
        ("box-signature-algorithm", "HmacSHA512"),
    ] {
        assert_eq!(
            run(&t, &with(&hs, name, other), BODY_TEXT, NOW).unwrap_err(),
            VerifyError::BadSignature,
            "{name}"
        );
        let gone: Vec<_> = hs.iter().filter(|(n, _)| n != name).cloned().collect();
        let e = run(&t, &gone, BODY_TEXT, NOW).unwrap_err();
        assert!(
            matches!(e, VerifyError::MissingSignature(n) if n == name),
            "{e:?}"
        );
    }
}
