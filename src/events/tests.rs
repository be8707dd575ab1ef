use super::*;

fn ptr(s: &str) -> Pointer {
    Pointer::parse(s).unwrap()
}

#[test]
fn pointers_parse_as_rfc_6901() {
    assert_eq!(ptr("/a/b~1c/~0d").tokens, ["a", "b/c", "~d"]);
    assert_eq!(ptr("/").tokens, [""]);
    for bad in ["", "type", "/a~2", "/a~"] {
        assert!(Pointer::parse(bad).is_err(), "{bad}");
    }
    let deep = "/x".repeat(MAX_POINTER_TOKENS + 1);
    assert!(Pointer::parse(&deep).is_err());
}

#[test]
fn extract_finds_strings_and_integers_at_the_pointer() {
    let doc = br#"{"type":"sync.complete","data":{"id":"evt_1","n":7,"neg":-3,"list":[{"k":"a"},{"k":"b"}]},"a/b":"slash","m~n":"tilde","":"empty"}"#;
    let at = |p: &str| ptr(p).extract(doc);
    assert_eq!(at("/type").as_deref(), Some("sync.complete"));
    assert_eq!(at("/data/id").as_deref(), Some("evt_1"));
    assert_eq!(at("/data/n").as_deref(), Some("7"));
    assert_eq!(at("/data/neg").as_deref(), Some("-3"));
    assert_eq!(at("/data/list/1/k").as_deref(), Some("b"));
    assert_eq!(at("/a~1b").as_deref(), Some("slash"));
    assert_eq!(at("/m~0n").as_deref(), Some("tilde"));
    assert_eq!(at("/").as_deref(), Some("empty"));
    // Missing, out of range, not an index, a leading zero, not a scalar.
    for p in [
        "/nope",
        "/data/list/2/k",
        "/data/list/x",
        "/data/list/01/k",
        "/data/list/-",
        "/data",
        "/data/list",
        "/type/x",
    ] {
        assert_eq!(at(p), None, "{p}");
    }
}

#[test]
fn extract_fails_safe_on_what_is_not_one_clean_value() {
    let p = ptr("/type");
    for body in [
        &b""[..],
        b"not json",
        b"{\"type\":\"a\"",                 // truncated
        b"{\"type\":\"a\"} trailing",       // trailing data
        b"{\"type\":\"a\",\"type\":\"b\"}", // duplicate key: parser-dependent
        b"{\"type\":1.5}",
        b"{\"type\":true}",
        b"{\"type\":null}",
        b"[\"type\"]",
        b"\xff\xfe",
    ] {
        assert_eq!(p.extract(body), None, "{}", String::from_utf8_lossy(body));
    }
    // Not UTF-8 inside a skipped value (fuzz target json_pointer, first run): not JSON.
    let crash = b"{\"type\":\"sync.complete\",\"data\":{\"Fi\xffd\":\"evt_1\"}}";
    assert_eq!(p.extract(crash), None);
    let frames = [
        bytes::Bytes::from_static(&crash[..20]),
        bytes::Bytes::from_static(&crash[20..]),
    ];
    assert_eq!(p.extract_body(Body::chunked(&frames)), None);
    // A lone surrogate escape in a skipped string is read past (as JavaScript and Python
    // parsers do); in the value itself it is refused.
    assert_eq!(
        p.extract(br#"{"type":"a","x":"\udada!"}"#).as_deref(),
        Some("a")
    );
    assert_eq!(p.extract(br#"{"type":"\udada!"}"#), None);
    // So is a number out of f64's range (JavaScript reads Infinity).
    assert_eq!(
        p.extract(br#"{"x":1e999,"type":"a"}"#).as_deref(),
        Some("a")
    );
    // A character split between frames is still one character.
    let split = "{\"type\":\"ok\",\"x\":\"caf\u{e9}\u{1f600}\"}".as_bytes();
    for cut in 0..split.len() {
        let frames = [
            bytes::Bytes::copy_from_slice(&split[..cut]),
            bytes::Bytes::copy_from_slice(&split[cut..]),
        ];
        assert_eq!(
            p.extract_body(Body::chunked(&frames)).as_deref(),
            Some("ok"),
            "cut at {cut}"
        );
        assert!(utf8(Body::chunked(&frames)));
    }
    let bad = [
        bytes::Bytes::from_static(b"{\"a\":\"\xf0\x9f"),
        bytes::Bytes::from_static(b"\x98\""),
    ];
    assert!(!utf8(Body::chunked(&bad)), "a 4-byte character cut short");
    // An escaped key is the key the app's parser reads.
    assert_eq!(p.extract(br#"{"t\u0079pe":"x"}"#).as_deref(), Some("x"));
    // Deep nesting: past serde_json's limit along the path, or anywhere in what is skipped.
    let deep = format!("{}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested = format!("{{\"type\":\"ok\",\"x\":{deep}}}");
    assert_eq!(p.extract(nested.as_bytes()).as_deref(), Some("ok"));
    let path = ptr(&"/0".repeat(MAX_POINTER_TOKENS));
    assert_eq!(path.extract(deep.as_bytes()), None);
    let long = format!("{{\"type\":\"{}\"}}", "a".repeat(MAX_ID_LEN + 1));
    assert_eq!(p.extract(long.as_bytes()), None);
}

#[test]
fn event_types_are_printable_ascii_of_bounded_length() {
    let json = EventSource::Json(ptr("/type"));
    let read = |body: &str| json.read(&HeaderMap::new(), Body::new(body.as_bytes()));
    assert_eq!(read(r#"{"type":"Push Hook"}"#).unwrap(), "Push Hook");
    assert_eq!(read(r#"{"type":2}"#).unwrap(), "2");
    assert_eq!(read(r#"{"type":""}"#), None);
    assert_eq!(read(r#"{"type":"a\nb"}"#), None);
    assert_eq!(read(r#"{"type":"é"}"#), None);
    let long = format!(r#"{{"type":"{}"}}"#, "a".repeat(MAX_EVENT_LEN + 1));
    assert_eq!(read(&long), None);
    let header = EventSource::Header(HeaderName::from_static("x-github-event"));
    let mut h = HeaderMap::new();
    assert_eq!(header.read(&h, Body::EMPTY), None);
    h.insert("x-github-event", HeaderValue::from_static("push"));
    assert_eq!(header.read(&h, Body::EMPTY).unwrap(), "push");
    h.append("x-github-event", HeaderValue::from_static("ping"));
    assert_eq!(header.read(&h, Body::EMPTY), None, "sent twice");
}

#[test]
fn allow_list_and_windows() {
    let mut r = RouteEvents::default();
    assert!(r.allows(None));
    r.allow = Some(vec!["push".into()]);
    assert!(r.allows(Some(&HeaderValue::from_static("push"))));
    assert!(!r.allows(Some(&HeaderValue::from_static("Push"))));
    assert!(!r.allows(None), "no type: not in the list");
    let tol = Duration::from_secs(300);
    assert_eq!(r.done_ttl(tol, true), tol * 2);
    assert_eq!(r.done_ttl(tol, false), DEFAULT_DEDUPE_WINDOW);
    r.dedupe_window = Some(Duration::from_secs(60));
    assert_eq!(
        r.done_ttl(tol, true),
        tol * 2,
        "never shorter than the window"
    );
    assert_eq!(r.done_ttl(tol, false), Duration::from_secs(60));
    r.dedupe_window = Some(Duration::from_secs(3600));
    assert_eq!(r.done_ttl(tol, true), Duration::from_secs(3600));
}

fn verified(id: Option<&'static str>, ts: Option<i64>, key_index: usize) -> Verified {
    Verified {
        key_index,
        id: id.map(HeaderValue::from_static),
        timestamp: ts,
    }
}

#[test]
fn signature_keys_depend_on_the_signed_content_only() {
    let h = HeaderMap::new();
    let body = br#"{"id":"evt_1","type":"push"}"#;
    let key = |v: &Verified, content, ts_signed, body: &[u8]| {
        let input = KeyInput {
            verified: v,
            content,
            timestamp_signed: ts_signed,
            headers: &h,
            body: Body::new(body),
        };
        dedupe_key("gh", &DedupeKey::Signature, &input)
    };
    let github = SignedContent::Body { id: false };
    let a = key(&verified(Some("d-1"), None, 0), github, true, body).unwrap();
    // A fresh unsigned id header, or another of the route's secrets: the same key.
    assert_eq!(
        key(&verified(Some("d-2"), None, 1), github, true, body),
        Some(a)
    );
    assert_eq!(key(&verified(None, None, 0), github, true, body), Some(a));
    // Other content, another route: another key.
    assert_ne!(key(&verified(None, None, 0), github, true, b"{}"), Some(a));
    let input = KeyInput {
        verified: &verified(None, None, 0),
        content: github,
        timestamp_signed: true,
        headers: &h,
        body: Body::new(body),
    };
    assert_ne!(dedupe_key("other", &DedupeKey::Signature, &input), Some(a));
    // A body in pieces is the same body.
    let chunks = [
        bytes::Bytes::from_static(&body[..5]),
        bytes::Bytes::from_static(&body[5..]),
    ];
    let input = KeyInput {
        body: Body::chunked(&chunks),
        ..input
    };
    assert_eq!(dedupe_key("gh", &DedupeKey::Signature, &input), Some(a));
    // A signed timestamp and a signed id are part of the content; unsigned ones are not.
    let std = SignedContent::Body { id: true };
    let s1 = key(&verified(Some("m1"), Some(10), 0), std, true, body);
    assert_ne!(s1, key(&verified(Some("m2"), Some(10), 0), std, true, body));
    assert_ne!(s1, key(&verified(Some("m1"), Some(11), 0), std, true, body));
    let unsigned_ts = key(&verified(None, Some(10), 0), github, false, body);
    assert_eq!(
        unsigned_ts,
        key(&verified(None, Some(99), 0), github, false, body)
    );
    // Unsupported: no key (check refuses the setting; this is the fail-safe behind it).
    assert_eq!(
        key(
            &verified(None, None, 0),
            SignedContent::Unsupported,
            true,
            body
        ),
        None
    );
}

#[test]
fn twilio_keys_on_its_one_canonical_signature_value() {
    let mut h = HeaderMap::new();
    let v = verified(Some("idem-1"), None, 0);
    let key = |h: &HeaderMap, body: &[u8]| {
        let input = KeyInput {
            verified: &v,
            content: SignedContent::Header("X-Twilio-Signature"),
            timestamp_signed: false,
            headers: h,
            body: Body::new(body),
        };
        dedupe_key("tw", &DedupeKey::Signature, &input)
    };
    assert_eq!(key(&h, b"a=1&b=2"), None);
    h.insert("x-twilio-signature", HeaderValue::from_static("c2ln"));
    // Reordered form fields sign the same: the key does not follow the raw body.
    assert_eq!(key(&h, b"a=1&b=2"), key(&h, b"b=2&a=1"));
    assert!(key(&h, b"").is_some());
}

#[test]
fn json_keys_read_the_signed_body_and_fall_back_to_the_content() {
    let h = HeaderMap::new();
    let content = SignedContent::Body { id: false };
    let key = |id: Option<&'static str>, body: &[u8]| {
        let v = verified(id, None, 0);
        let input = KeyInput {
            verified: &v,
            content,
            timestamp_signed: false,
            headers: &h,
            body: Body::new(body),
        };
        dedupe_key("st", &DedupeKey::Json(ptr("/id")), &input)
    };
    let a = key(Some("h1"), br#"{"id":"evt_1","retry":1}"#);
    // The same id in another body (a sender's retry): the same key, whatever the id header.
    assert_eq!(a, key(Some("h2"), br#"{"id":"evt_1","retry":2}"#));
    assert_ne!(a, key(Some("h1"), br#"{"id":"evt_2"}"#));
    // Not the message-id key of the same text.
    let id_key = {
        let v = verified(Some("evt_1"), None, 0);
        let input = KeyInput {
            verified: &v,
            content,
            timestamp_signed: false,
            headers: &h,
            body: Body::EMPTY,
        };
        dedupe_key("st", &DedupeKey::Id, &input)
    };
    assert_ne!(a, id_key);
    assert_eq!(id_key, Some(Key::new("st", b"evt_1")), "id keys as before");
    // No id in the body: the signed content's key.
    let none = key(None, b"not json");
    assert!(none.is_some());
    assert_eq!(none, key(Some("x"), b"not json"));
}

mod props {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Arbitrary bytes: no panic, and a found value is one a real parser finds there.
        #[test]
        fn extract_agrees_with_serde_json_on_arbitrary_bytes(
            body in proptest::collection::vec(any::<u8>(), 0..256),
            p in prop_oneof![Just("/type"), Just("/a/0"), Just("/"), Just("/0")],
        ) {
            let pointer = ptr(p);
            if let Some(found) = pointer.extract(&body) {
                let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
                let at = v.pointer(p).unwrap();
                let text = at.as_str().map(str::to_owned).unwrap_or_else(|| at.to_string());
                prop_assert_eq!(found, text);
            }
        }

        /// A body in frames reads as the same body joined.
        #[test]
        fn extract_over_frames_agrees_with_one_slice(
            ty in "[ -~]{0,20}",
            cuts in proptest::collection::vec(any::<proptest::sample::Index>(), 0..4),
            junk in any::<bool>(),
        ) {
            let mut body = serde_json::to_vec(&serde_json::json!({"a": [1, {"b": 2}], "type": ty})).unwrap();
            if junk {
                body.extend_from_slice(b" x");
            }
            let mut at: Vec<usize> = cuts.iter().map(|i| i.index(body.len() + 1)).collect();
            at.sort_unstable();
            let mut frames = Vec::new();
            let mut last = 0;
            for c in at.into_iter().chain([body.len()]) {
                frames.push(bytes::Bytes::copy_from_slice(&body[last..c]));
                last = c;
            }
            let p = ptr("/type");
            let joined = p.extract(&body);
            prop_assert_eq!(p.extract_body(Body::chunked(&frames)), joined.clone());
            prop_assert_eq!(joined.is_some(), !junk);
        }

        /// JSON-shaped documents: extraction agrees with serde_json's own pointer lookup
        /// (strings and integers), and finds nothing where serde_json finds no scalar.
        #[test]
        fn extract_agrees_with_serde_json_on_documents(
            ty in "[ -~]{0,20}",
            n in any::<i64>(),
            pad in proptest::collection::vec("[a-z]{1,4}", 0..5),
        ) {
            let mut obj = serde_json::Map::new();
            for (i, k) in pad.iter().enumerate() {
                obj.insert(k.clone(), serde_json::json!([i, {"x": k}]));
            }
            obj.insert("type".into(), serde_json::json!(ty));
            obj.insert("n".into(), serde_json::json!(n));
            let body = serde_json::to_vec(&serde_json::Value::Object(obj)).unwrap();
            prop_assert_eq!(ptr("/type").extract(&body), Some(ty.clone()));
            prop_assert_eq!(ptr("/n").extract(&body), Some(n.to_string()));
            for k in &pad {
                let p = format!("/{k}/1/x");
                if k != "type" && k != "n" {
                    prop_assert_eq!(ptr(&p).extract(&body), Some(k.clone()));
                }
            }
        }
    }
}
