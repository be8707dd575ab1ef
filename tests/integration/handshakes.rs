//! Handshakes answered by hookseal (SPEC "Handshakes"): each provider's fixture request as the
//! provider sends it gets the exact status, body and `Content-Type`; the app sees nothing;
//! a wrong token is refused; everything answers while the app is down. Signers here are
//! written independently of the code under test.

use base64::Engine;
use bytes::Bytes;
use hmac::{Hmac, Mac};
use http::{Method, StatusCode};
use sha2::Sha256;

use crate::netkit::metric;
use crate::support::{send, unix_now, Answer, Sidecar, Upstream};

const ROUTES: &str = r#"
[[route]]
name = "slack"
path = "/slack"
scheme = "slack"
secrets = [{ value = "slack-secret" }]

[[route]]
name = "zoom"
path = "/zoom"
scheme = "zoom"
secrets = [{ value = "zoom-old" }, { value = "zoom-secret" }]

[[route]]
name = "meta"
path = "/meta"
scheme = "meta"
secrets = [{ value = "meta-app-secret" }]
verify_token = { value = "vt-123" }

[[route]]
name = "graph"
path = "/graph"
scheme = "msgraph"
client_state = { value = "cs-secret" }

[[route]]
name = "okta"
path = "/okta"
scheme = "okta"
secrets = [{ value = "Bearer okta-key" }]

[[route]]
name = "x"
path = "/x"
scheme = "x"
secrets = [{ value = "consumer-secret" }]

[[route]]
name = "dropbox"
path = "/dropbox"
scheme = "dropbox"
secrets = [{ value = "dropbox-secret" }]

[[route]]
name = "asana"
path = "/asana"
scheme = "asana"
secrets = [{ value = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81" }]

[[route]]
name = "worldline"
path = "/worldline"
scheme = "worldline"
secrets = [{ value = "worldline-key" }]
"#;

const ASANA_SECRET: &str = "b537207f20cbfa02357cf448134da559e8bd39d61597dcd5631b8012eae53e81";

fn mac(secret: &str, parts: &[&[u8]]) -> Vec<u8> {
    let mut m = <Hmac<Sha256> as hmac::KeyInit>::new_from_slice(secret.as_bytes()).unwrap();
    for p in parts {
        m.update(p);
    }
    m.finalize().into_bytes().to_vec()
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn assert_answer(a: &Answer, status: u16, content_type: &str, body: &[u8]) {
    assert_eq!(a.status.as_u16(), status, "{a:?}");
    assert_eq!(a.headers["content-type"], content_type, "{a:?}");
    assert_eq!(&a.body[..], body, "{a:?}");
    if content_type == "text/plain" {
        // An echo of the sender's text is never sniffed into HTML by a browser.
        assert_eq!(a.headers["x-content-type-options"], "nosniff", "{a:?}");
    }
}

async fn get(sc: &Sidecar, path: &str, headers: &[(&str, String)]) -> Answer {
    send(Method::GET, &sc.url(path), headers, Bytes::new()).await
}

async fn post(sc: &Sidecar, path: &str, headers: &[(&str, String)], body: &[u8]) -> Answer {
    send(
        Method::POST,
        &sc.url(path),
        headers,
        Bytes::copy_from_slice(body),
    )
    .await
}

fn slack_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = unix_now().to_string();
    let sig = format!(
        "v0={}",
        hex(&mac(secret, &[b"v0:", ts.as_bytes(), b":", body]))
    );
    vec![
        ("x-slack-request-timestamp", ts),
        ("x-slack-signature", sig),
        ("content-type", "application/json".into()),
    ]
}

fn zoom_headers(secret: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    let ts = unix_now().to_string();
    let sig = format!(
        "v0={}",
        hex(&mac(secret, &[b"v0:", ts.as_bytes(), b":", body]))
    );
    vec![
        ("x-zm-request-timestamp", ts),
        ("x-zm-signature", sig),
        ("content-type", "application/json; charset=utf-8".into()),
    ]
}

/// Every handshake, as its provider sends it, with the exact answer. Run against a live app
/// (which must see nothing) and against an app that is down.
async fn every_handshake_is_answered(sc: &Sidecar) {
    // Slack url_verification, signed.
    let body = br#"{"token":"Jhj5dZrVaK7ZwHHjRyZWjbDl","challenge":"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P","type":"url_verification"}"#;
    let a = post(sc, "/slack", &slack_headers("slack-secret", body), body).await;
    assert_answer(
        &a,
        200,
        "text/plain",
        b"3eZbrw1aBm2rZgRNFdxV2595E9CY3gmdALWMmHkvFXO7tYXAYM8P",
    );

    // Zoom endpoint.url_validation, signed with the second secret: answered with it.
    let body = br#"{"payload":{"plainToken":"qgg8vlvZRS6UYooatFL8Aw"},"event_ts":1654503849680,"event":"endpoint.url_validation"}"#;
    let a = post(sc, "/zoom", &zoom_headers("zoom-secret", body), body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(a.headers["content-type"], "application/json");
    let v = a.json();
    assert_eq!(v["plainToken"], "qgg8vlvZRS6UYooatFL8Aw");
    assert_eq!(
        v["encryptedToken"],
        hex(&mac("zoom-secret", &[b"qgg8vlvZRS6UYooatFL8Aw"]))
    );
    assert_eq!(v.as_object().unwrap().len(), 2);

    // Meta: the challenge as raw text (never JSON-quoted), on a POST-only route.
    let a = get(
        sc,
        "/meta?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=1158201444",
        &[],
    )
    .await;
    assert_answer(&a, 200, "text/plain", b"1158201444");

    // Microsoft Graph: the token URL-decoded, as text.
    let a = post(
        sc,
        "/graph?validationToken=Validation%3A%20Testing%20client%20application",
        &[],
        b"",
    )
    .await;
    assert_answer(
        &a,
        200,
        "text/plain",
        b"Validation: Testing client application",
    );
    assert_eq!(a.headers["x-content-type-options"], "nosniff");

    // Okta: the header's challenge in JSON, with the hook's Authorization.
    let a = get(
        sc,
        "/okta",
        &[
            (
                "x-okta-verification-challenge",
                "X8o4Vw2XY5IqCH0vjEyGkU2xq".into(),
            ),
            ("authorization", "Bearer okta-key".into()),
        ],
    )
    .await;
    assert_answer(
        &a,
        200,
        "application/json",
        br#"{"verification":"X8o4Vw2XY5IqCH0vjEyGkU2xq"}"#,
    );

    // X CRC: sha256= base64 HMAC of the token with the consumer secret.
    let token = "9b4507b3-9040-4669-9ca3-6b94edb50553";
    let a = get(sc, &format!("/x?crc_token={token}"), &[]).await;
    let expected = format!(
        r#"{{"response_token":"sha256={}"}}"#,
        b64(&mac("consumer-secret", &[token.as_bytes()]))
    );
    assert_answer(&a, 200, "application/json", expected.as_bytes());

    // Dropbox: the challenge echoed, with nosniff.
    let a = get(sc, "/dropbox?challenge=abc123", &[]).await;
    assert_answer(&a, 200, "text/plain", b"abc123");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");

    // Asana: the configured X-Hook-Secret echoed in the header, empty body.
    let a = post(sc, "/asana", &[("x-hook-secret", ASANA_SECRET.into())], b"").await;
    assert_answer(&a, 200, "text/plain", b"");
    assert_eq!(a.headers["x-hook-secret"], ASANA_SECRET);

    // Worldline: the endpoint verification value echoed, with nosniff.
    let a = get(
        sc,
        "/worldline",
        &[("x-gcs-webhooks-endpoint-verification", "0ea1-77".into())],
    )
    .await;
    assert_answer(&a, 200, "text/plain", b"0ea1-77");
    assert_eq!(a.headers["x-content-type-options"], "nosniff");
}

#[tokio::test]
async fn handshakes_are_answered_exactly_and_never_forwarded() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", ROUTES).await;
    every_handshake_is_answered(&sc).await;
    assert_eq!(up.count(), 0, "the app saw a handshake");
    let m = sc.metrics().await;
    for route in [
        "slack",
        "zoom",
        "meta",
        "graph",
        "okta",
        "x",
        "dropbox",
        "asana",
        "worldline",
    ] {
        let series = format!(
            "hookseal_requests_total{{reason=\"ok\",result=\"handshake\",route=\"{route}\"}}"
        );
        assert_eq!(metric(&m, &series), 1.0, "{route}: {m}");
    }
}

#[tokio::test]
async fn handshakes_answer_while_the_app_is_down() {
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = dead.local_addr().unwrap();
    drop(dead);
    let sc = Sidecar::start(addr, "", ROUTES).await;
    every_handshake_is_answered(&sc).await;
    // A delivery does need the app.
    let body = br#"{"type":"event_callback"}"#;
    let a = post(&sc, "/slack", &slack_headers("slack-secret", body), body).await;
    assert_eq!(a.status, StatusCode::BAD_GATEWAY);
}

#[tokio::test]
async fn failed_handshakes_are_refused_with_their_reason() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", ROUTES).await;
    // Meta: wrong verify token, wrong mode → 403 bad_verify_token, the challenge never echoed.
    for q in [
        "hub.mode=subscribe&hub.verify_token=vt-124&hub.challenge=42",
        "hub.mode=subscribe&hub.verify_token=vt-12&hub.challenge=42",
        "hub.mode=unsubscribe&hub.verify_token=vt-123&hub.challenge=42",
    ] {
        let a = get(&sc, &format!("/meta?{q}"), &[]).await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{q}");
        assert_eq!(a.error(), "bad_verify_token", "{q}");
    }
    // A GET that is no handshake, on a route whose methods lack GET: 405 as before.
    let a = get(&sc, "/meta", &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    let a = get(&sc, "/slack", &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED);
    // Slack / Zoom: an unsigned (or wrongly signed) challenge is no handshake.
    let body = br#"{"challenge":"c","type":"url_verification"}"#;
    let a = post(&sc, "/slack", &slack_headers("other", body), body).await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
    let body = br#"{"payload":{"plainToken":"p"},"event":"endpoint.url_validation"}"#;
    let a = post(&sc, "/zoom", &zoom_headers("other", body), body).await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
    // Okta: the verification without the hook's Authorization.
    let a = get(
        &sc,
        "/okta",
        &[("x-okta-verification-challenge", "c".into())],
    )
    .await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    let a = get(
        &sc,
        "/okta",
        &[
            ("x-okta-verification-challenge", "c".into()),
            ("authorization", "Bearer wrong".into()),
        ],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // X: a CRC token shaped like a delivery body is not an HMAC oracle.
    let a = get(&sc, "/x?crc_token=%7B%22a%22%3A1%7D", &[]).await;
    assert_eq!(a.status, StatusCode::BAD_REQUEST);
    // Graph: a notification with a wrong clientState.
    let body =
        br#"{"value":[{"subscriptionId":"s","clientState":"cs-secreT","changeType":"created"}]}"#;
    let a = post(&sc, "/graph", &[], body).await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::FORBIDDEN, "bad_verify_token".into())
    );
    // Asana: a handshake with a secret hookseal was not given is refused and never echoed
    // (the handshake is unauthenticated: echoing any secret would hand the key to whoever sent it).
    let a = post(
        &sc,
        "/asana",
        &[("x-hook-secret", "attacker-chosen".into())],
        b"",
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::FORBIDDEN, "bad_verify_token".into())
    );
    assert!(!a.headers.contains_key("x-hook-secret"), "{a:?}");
    assert_eq!(up.count(), 0);
    let m = sc.metrics().await;
    assert_eq!(
        metric(&m, "hookseal_requests_total{reason=\"bad_verify_token\",result=\"rejected\",route=\"meta\"}"),
        3.0
    );
    // The GET that was no handshake is counted on its route, once.
    assert_eq!(
        metric(&m, "hookseal_requests_total{reason=\"method_not_allowed\",result=\"rejected\",route=\"meta\"}"),
        1.0,
        "{m}"
    );
}

/// Observe mode forwards what verification refuses, never a GET the route's methods lack:
/// a GET that is no handshake is 405 in both modes.
#[tokio::test]
async fn observe_mode_does_not_open_get_on_a_handshake_route() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"meta\"\npath = \"/meta\"\nscheme = \"meta\"\nmode = \"observe\"\n\
                  secrets = [{ value = \"meta-app-secret\" }]\nverify_token = { value = \"vt-123\" }\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    let a = get(&sc, "/meta?x=1", &[]).await;
    assert_eq!(a.status, StatusCode::METHOD_NOT_ALLOWED, "{a:?}");
    let a = get(
        &sc,
        "/meta?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=7",
        &[],
    )
    .await;
    assert_answer(&a, 200, "text/plain", b"7");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn deliveries_of_the_handshake_schemes_are_verified_and_forwarded() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", ROUTES).await;
    let body = br#"{"object":"whatsapp_business_account","entry":[]}"#;
    let sig = format!("sha256={}", hex(&mac("meta-app-secret", &[body])));
    let a = post(&sc, "/meta", &[("x-hub-signature-256", sig)], body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let body = br#"{"for_user_id":"1","tweet_create_events":[]}"#;
    let sig = format!("sha256={}", b64(&mac("consumer-secret", &[body])));
    let a = post(
        &sc,
        "/x",
        &[("x-twitter-webhooks-signature", sig.clone())],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = post(
        &sc,
        "/x",
        &[("x-twitter-webhooks-signature", sig)],
        &b"{}"[..],
    )
    .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let body = br#"{"list_folder":{"accounts":["dbid:1"]},"delta":{"users":[1]}}"#;
    let sig = hex(&mac("dropbox-secret", &[body]));
    let a = post(&sc, "/dropbox", &[("x-dropbox-signature", sig)], body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let body =
        br#"{"value":[{"subscriptionId":"s","clientState":"cs-secret","changeType":"created"}]}"#;
    let a = post(&sc, "/graph", &[], body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let body = br#"{"eventType":"com.okta.event_hook","data":{}}"#;
    let a = post(
        &sc,
        "/okta",
        &[("authorization", "Bearer okta-key".into())],
        body,
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let body = br#"{"events":[{"action":"changed","resource":{"gid":"1"}}]}"#;
    let sig = hex(&mac(ASANA_SECRET, &[body]));
    let a = post(&sc, "/asana", &[("x-hook-signature", sig.clone())], body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = post(&sc, "/asana", &[("x-hook-signature", sig)], &b"{}"[..]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let body = br#"{"event":"meeting.started","payload":{}}"#;
    let a = post(&sc, "/zoom", &zoom_headers("zoom-old", body), body).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(up.count(), 7);
    let last = up.last();
    assert_eq!(&last.body[..], body);
    assert_eq!(last.headers["x-hookseal-key"], "0");
}
