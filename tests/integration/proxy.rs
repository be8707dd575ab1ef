//! The request path end to end: route, limits, verify, dedupe, forward (SPEC "A request, in order").

use std::time::Duration;

use bytes::Bytes;
use http::{Method, StatusCode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::netkit::post_head;
use crate::support::*;

const BODY: &[u8] =
    b"{\"type\":\"connection.created\",\"data\":{\"id\": 42,  \"spaces\" : true}}\n";

async fn sw_sidecar(up: &Upstream, extra_route: &str) -> Sidecar {
    Sidecar::start(up.addr, "", &sw_route(extra_route)).await
}

#[tokio::test]
async fn valid_request_is_forwarded_byte_identical_with_verified_headers() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let mut headers = sign_standard(WHSEC, "msg_valid1", unix_now(), BODY);
    headers.push(("content-type", "application/json".into()));
    headers.push(("x-custom", "kept".into()));
    let r = post(&sc.url("/hooks/sw?a=1&b=%20x"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(r.headers["x-upstream"], "yes", "upstream headers come back");

    assert_eq!(up.count(), 1);
    let got = up.last();
    assert_eq!(got.method, Method::POST);
    assert_eq!(got.uri, "/hooks/sw?a=1&b=%20x", "path and query as sent");
    assert_eq!(got.body, Bytes::from_static(BODY), "body byte-identical");
    let h = &got.headers;
    assert_eq!(h["x-hookseal-verified"], "true");
    assert_eq!(h["x-hookseal-route"], "sw");
    assert_eq!(h["x-hookseal-scheme"], "standard-webhooks");
    assert_eq!(h["x-hookseal-key"], "current");
    assert_eq!(h["x-hookseal-id"], "msg_valid1");
    assert!(h.contains_key("x-hookseal-timestamp"));
    assert_eq!(h["x-custom"], "kept");
    assert_eq!(h["content-type"], "application/json");
    assert_eq!(
        h["webhook-id"], "msg_valid1",
        "signature headers stay for the app"
    );
    assert_eq!(h["x-forwarded-for"], "127.0.0.1");
    assert_eq!(h["x-forwarded-proto"], "http");
    assert_eq!(h["x-forwarded-host"], sc.addr.to_string());
    assert!(h.contains_key("x-request-id"));
}

#[tokio::test]
async fn previous_secret_is_accepted_and_reported() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC_OLD, "msg_old", unix_now(), BODY);
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-hookseal-key"], "previous");
    let m = sc.metrics().await;
    assert!(
        m.lines()
            .any(|l| l.starts_with("hookseal_signature_key_total")
                && l.contains("key=\"previous\"")
                && l.ends_with(" 1")),
        "{m}"
    );
}

#[tokio::test]
async fn spoofed_hookseal_headers_are_stripped() {
    let up = Upstream::start().await;
    let routes = format!(
        "{}[[route]]\nname = \"open\"\npath = \"/open\"\nscheme = \"none\"\n",
        sw_route("")
    );
    let sc = Sidecar::start(up.addr, "", &routes).await;
    // On a verified route: the spoofed values are replaced.
    let mut headers = sign_standard(WHSEC, "msg_spoof", unix_now(), BODY);
    headers.push(("x-hookseal-key", "attacker".into()));
    headers.push(("X-Hookseal-Anything", "evil".into()));
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    let h = up.last().headers;
    assert_eq!(h.get_all("x-hookseal-key").iter().count(), 1);
    assert_eq!(h["x-hookseal-key"], "current");
    assert!(!h.contains_key("x-hookseal-anything"));

    // On a `none` route: an inbound x-hookseal-verified: true must never reach the app.
    let r = post(
        &sc.url("/open"),
        &[
            ("x-hookseal-verified", "true".into()),
            ("x-hookseal-route", "sw".into()),
            // CGI/WSGI/Rack servers map `_` and `-` to the same HTTP_X_HOOKSEAL_VERIFIED.
            ("x_hookseal_verified", "true".into()),
            ("X_Hookseal-Key", "current".into()),
        ],
        "hi",
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let h = up.last().headers;
    assert!(!h.contains_key("x_hookseal_verified"));
    assert!(!h.contains_key("x_hookseal-key"));
    assert_eq!(
        h["x-hookseal-verified"], "false",
        "none routes say they verified nothing"
    );
    assert_eq!(h["x-hookseal-route"], "open");
    assert_eq!(h.get_all("x-hookseal-route").iter().count(), 1);
}

#[tokio::test]
async fn hop_by_hop_headers_are_not_forwarded() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let mut headers = sign_standard(WHSEC, "msg_hop", unix_now(), BODY);
    headers.push(("connection", "keep-alive, x-drop-me".into()));
    headers.push(("x-drop-me", "1".into()));
    headers.push(("proxy-authorization", "Basic Zm9vOmJhcg==".into()));
    headers.push(("te", "trailers".into()));
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    let h = up.last().headers;
    assert!(
        !h.contains_key("x-drop-me"),
        "headers named by Connection are hop-by-hop"
    );
    assert!(!h.contains_key("proxy-authorization"));
    assert!(!h.contains_key("te"));
}

/// (what, method, path, headers, body, expected status, reason, route in the JSON body)
type Case = (
    &'static str,
    Method,
    &'static str,
    Vec<(&'static str, String)>,
    Bytes,
    StatusCode,
    &'static str,
    Option<&'static str>,
);

/// Every rejection: status, JSON reason, route, and nothing reaches the upstream.
#[tokio::test]
async fn rejections_have_status_and_reason_and_are_not_forwarded() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "max_body_bytes = 100").await;
    let now = unix_now();
    let good = sign_standard(WHSEC, "msg_r", now, BODY);
    let with = |name: &str, value: &str| -> Vec<(&'static str, String)> {
        good.iter()
            .map(|(k, v)| {
                (
                    *k,
                    if *k == name {
                        value.to_owned()
                    } else {
                        v.clone()
                    },
                )
            })
            .collect()
    };
    let without = |name: &str| -> Vec<(&'static str, String)> {
        good.iter().filter(|(k, _)| *k != name).cloned().collect()
    };
    let other_secret = sign_standard(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        "msg_r",
        now,
        BODY,
    );
    let stale = sign_standard(WHSEC, "msg_r", now - 301, BODY);
    // A minute past the window, so a slow run cannot bring it back inside.
    let future = sign_standard(WHSEC, "msg_r", now + 360, BODY);

    let cases: Vec<Case> = vec![
        (
            "no route",
            Method::POST,
            "/nowhere",
            good.clone(),
            BODY.into(),
            StatusCode::NOT_FOUND,
            "no_route",
            None,
        ),
        (
            "wrong method",
            Method::GET,
            "/hooks/sw",
            good.clone(),
            Bytes::new(),
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            None,
        ),
        (
            "missing signature",
            Method::POST,
            "/hooks/sw",
            without("webhook-signature"),
            BODY.into(),
            StatusCode::BAD_REQUEST,
            "missing_signature",
            Some("sw"),
        ),
        (
            "missing timestamp",
            Method::POST,
            "/hooks/sw",
            without("webhook-timestamp"),
            BODY.into(),
            StatusCode::BAD_REQUEST,
            "missing_signature",
            Some("sw"),
        ),
        (
            "malformed timestamp",
            Method::POST,
            "/hooks/sw",
            with("webhook-timestamp", "soon"),
            BODY.into(),
            StatusCode::BAD_REQUEST,
            "malformed_signature",
            Some("sw"),
        ),
        (
            "stale",
            Method::POST,
            "/hooks/sw",
            stale,
            BODY.into(),
            StatusCode::UNAUTHORIZED,
            "stale_timestamp",
            Some("sw"),
        ),
        (
            "future",
            Method::POST,
            "/hooks/sw",
            future,
            BODY.into(),
            StatusCode::UNAUTHORIZED,
            "future_timestamp",
            Some("sw"),
        ),
        (
            "wrong secret",
            Method::POST,
            "/hooks/sw",
            other_secret,
            BODY.into(),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            Some("sw"),
        ),
        (
            "body changed",
            Method::POST,
            "/hooks/sw",
            good.clone(),
            Bytes::from(&b"{\"type\":\"connection.created\"}"[..]),
            StatusCode::UNAUTHORIZED,
            "bad_signature",
            Some("sw"),
        ),
        (
            "too large",
            Method::POST,
            "/hooks/sw",
            good.clone(),
            Bytes::from(vec![b'x'; 101]),
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            Some("sw"),
        ),
    ];
    for (what, method, path, headers, body, status, reason, route) in cases {
        let r = send(method, &sc.url(path), &headers, body).await;
        assert_eq!(r.status, status, "{what}");
        let j = r.json();
        assert_eq!(j["error"], reason, "{what}");
        assert_eq!(j["route"].as_str(), route, "{what}");
        assert_eq!(r.headers["content-type"], "application/json", "{what}");
        let text = String::from_utf8_lossy(&r.body);
        assert!(
            !text.contains("v1,"),
            "{what}: a rejection never echoes a signature"
        );
    }
    assert_eq!(up.count(), 0, "nothing rejected was forwarded");
    let m = sc.metrics().await;
    assert!(
        m.contains(
            "hookseal_requests_total{reason=\"bad_signature\",result=\"rejected\",route=\"sw\"} 2"
        ),
        "{m}"
    );
    assert!(m.contains("hookseal_requests_total{reason=\"no_route\",result=\"rejected\",route=\"_unmatched\"} 1"), "{m}");
}

/// Sends `body` to the sidecar in writes of `sizes` (cycled), with a pause after each so that
/// the proxy reads them as separate frames; chunked framing (one chunk per write) when
/// `chunked`, else a Content-Length. Returns the status line.
async fn post_in_pieces(
    sc: &Sidecar,
    id: &str,
    body: &[u8],
    sizes: &[usize],
    chunked: bool,
) -> String {
    let framing = if chunked {
        "transfer-encoding: chunked".to_owned()
    } else {
        format!("content-length: {}", body.len())
    };
    let head = post_head(
        "/hooks/sw",
        &framing,
        &sign_standard(WHSEC, id, unix_now(), body),
    );
    let mut tcp = TcpStream::connect(sc.addr).await.unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.write_all(head.as_bytes()).await.unwrap();
    let mut at = 0;
    for size in sizes.iter().cycle() {
        if at == body.len() {
            break;
        }
        let piece = &body[at..(at + size).min(body.len())];
        at += piece.len();
        if chunked {
            let framed = [format!("{:x}\r\n", piece.len()).as_bytes(), piece, b"\r\n"].concat();
            tcp.write_all(&framed).await.unwrap();
        } else {
            tcp.write_all(piece).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    if chunked {
        tcp.write_all(b"0\r\n\r\n").await.unwrap();
    }
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(10), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]).into_owned();
    text.lines().next().unwrap_or_default().to_owned()
}

/// Large frames are kept as they arrived and small ones copied together (src/body.rs): however
/// a body is cut up on the wire, it is verified over, and forwarded as, exactly its bytes.
#[tokio::test]
async fn bodies_in_pieces_of_any_size_are_verified_and_forwarded_byte_identical() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nmax_body_bytes = \"2MiB\"",
        &sw_route(""),
    )
    .await;
    // Not valid UTF-8, every byte value, no repeating period a split could line up with.
    let body: Vec<u8> = (0..300_001u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let patterns: [&[usize]; 5] = [
        &[1, 100, 20_000, 3, 70_000],
        &[16 * 1024, 16 * 1024 - 1, 16 * 1024 + 1],
        &[40_000],
        &[7, 5_000],
        &[300_001],
    ];
    let mut n = 0;
    for chunked in [false, true] {
        for (i, sizes) in patterns.iter().enumerate() {
            let id = format!("msg_pieces_{chunked}_{i}");
            let status = post_in_pieces(&sc, &id, &body, sizes, chunked).await;
            assert!(
                status.starts_with("HTTP/1.1 200"),
                "{sizes:?} chunked={chunked}: {status}"
            );
            n += 1;
            assert_eq!(up.count(), n);
            let got = up.last();
            assert_eq!(got.headers["x-hookseal-verified"], "true");
            assert_eq!(got.headers["content-length"], body.len().to_string());
            assert!(
                got.body == body,
                "{sizes:?} chunked={chunked}: body changed on the way"
            );
        }
    }
    // One byte changed anywhere, in any piece, is still caught.
    let mut bad = body.clone();
    bad[250_000] ^= 1;
    let headers = sign_standard(WHSEC, "msg_pieces_bad", unix_now(), &body);
    let r = post(&sc.url("/hooks/sw"), &headers, bad).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    assert_eq!(up.count(), n);
}

/// A 5 MiB chunked body on a 1 MiB route is cut off at the limit, with no Content-Length to go by.
#[tokio::test]
async fn streamed_body_over_the_limit_is_cut_off() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "[limits]\nmax_body_bytes = \"1MiB\"",
        &sw_route(""),
    )
    .await;
    let headers = sign_standard(WHSEC, "msg_big", unix_now(), b"");
    let mut tcp = TcpStream::connect(sc.addr).await.unwrap();
    let head = post_head("/hooks/sw", "transfer-encoding: chunked", &headers);
    tcp.write_all(head.as_bytes()).await.unwrap();
    let chunk = vec![b'a'; 64 * 1024];
    let mut sent = 0usize;
    // Write up to 5 MiB; the proxy answers 413 and may close before all of it is written.
    while sent < 5 * 1024 * 1024 {
        let framed = [format!("{:x}\r\n", chunk.len()).as_bytes(), &chunk, b"\r\n"].concat();
        if tcp.write_all(&framed).await.is_err() {
            break;
        }
        sent += chunk.len();
    }
    let _ = tcp.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), tcp.read_to_end(&mut resp)).await;
    let text = String::from_utf8_lossy(&resp);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"error\":\"body_too_large\""), "{text}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn declared_content_length_over_the_limit_is_refused_before_reading() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "max_body_bytes = \"1KiB\"").await;
    let headers = sign_standard(WHSEC, "msg_cl", unix_now(), b"");
    let mut tcp = TcpStream::connect(sc.addr).await.unwrap();
    let head = post_head("/hooks/sw", "content-length: 10000000", &headers);
    tcp.write_all(head.as_bytes()).await.unwrap();
    // No body is sent at all: the answer must come from the header alone.
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn slow_body_gets_408() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "[limits]\nbody_timeout = \"300ms\"", &sw_route("")).await;
    let headers = sign_standard(WHSEC, "msg_slow", unix_now(), BODY);
    let mut tcp = TcpStream::connect(sc.addr).await.unwrap();
    let head = post_head(
        "/hooks/sw",
        &format!("content-length: {}", BODY.len()),
        &headers,
    );
    tcp.write_all(head.as_bytes()).await.unwrap();
    tcp.write_all(&BODY[..5]).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), tcp.read(&mut buf))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&buf[..n]);
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("body_timeout"), "{text}");
    assert_eq!(up.count(), 0);
}

#[tokio::test]
async fn duplicate_is_answered_without_forwarding() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC, "msg_dup", unix_now(), BODY);
    let first = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(first.status, StatusCode::OK);
    let second = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(second.status, StatusCode::OK);
    assert_eq!(second.json()["status"], "duplicate");
    assert_eq!(second.headers["x-hookseal-duplicate"], "true");
    assert_eq!(up.count(), 1);
    // Same id on another route is a different key; a different id on this route is forwarded.
    let other = sign_standard(WHSEC, "msg_dup2", unix_now(), BODY);
    assert_eq!(
        post(&sc.url("/hooks/sw"), &other, BODY).await.status,
        StatusCode::OK
    );
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn concurrent_deliveries_of_one_id_reach_the_upstream_once() {
    let up = Upstream::start().await;
    up.set(|b| b.delay = Duration::from_millis(300));
    let sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC, "msg_race", unix_now(), BODY);
    let url = sc.url("/hooks/sw");
    let (a, b) = tokio::join!(post(&url, &headers, BODY), post(&url, &headers, BODY));
    let mut statuses = [a.status.as_u16(), b.status.as_u16()];
    statuses.sort();
    assert_eq!(statuses, [200, 409], "one forwarded, one in flight");
    let conflict = if a.status == StatusCode::CONFLICT {
        a
    } else {
        b
    };
    assert_eq!(conflict.error(), "in_flight");
    assert_eq!(up.count(), 1);
}

#[tokio::test]
async fn failed_delivery_can_be_retried() {
    let up = Upstream::start().await;
    up.set(|b| b.status = StatusCode::INTERNAL_SERVER_ERROR);
    let sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC, "msg_retry", unix_now(), BODY);
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(
        r.status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "the app's answer goes back as is"
    );
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    up.set(|b| b.status = StatusCode::OK);
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.count(), 2, "the retry was forwarded again");
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.json()["status"], "duplicate");
    assert_eq!(up.count(), 2);
}

#[tokio::test]
async fn upstream_down_is_502_and_retry_is_allowed() {
    // A port with nothing listening: bind, read the port, drop.
    let dead = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let sc = Sidecar::start(dead, "", &sw_route("")).await;
    let headers = sign_standard(WHSEC, "msg_down", unix_now(), BODY);
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::BAD_GATEWAY);
    assert_eq!(r.error(), "upstream_unavailable");
    assert_eq!(r.json()["route"], "sw");
    // The mark was removed: the same delivery is tried again, not called a duplicate.
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.error(), "upstream_unavailable");
}

#[tokio::test]
async fn slow_upstream_is_504() {
    let up = Upstream::start().await;
    up.set(|b| b.delay = Duration::from_secs(3));
    // Sidecar::start sets upstream.timeout = "2s".
    let sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC, "msg_slowup", unix_now(), BODY);
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(r.error(), "upstream_timeout");
    let m = sc.metrics().await;
    assert!(
        m.contains("hookseal_upstream_responses_total{class=\"timeout\",route=\"sw\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "dedupe = false").await;
    for i in 0..5 {
        let headers = sign_standard(WHSEC, &format!("msg_pool{i}"), unix_now(), BODY);
        assert_eq!(
            post(&sc.url("/hooks/sw"), &headers, BODY).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(up.count(), 5);
    assert_eq!(
        up.connections(),
        1,
        "one pooled keep-alive connection served all five"
    );
}

#[tokio::test]
async fn github_hotglue_and_hmac_routes_verify() {
    let up = Upstream::start().await;
    let routes = r#"
[[route]]
name = "gh"
path = "/gh"
scheme = "github"
secrets = [{ id = "k1", value = "It's a Secret to Everybody" }]

[[route]]
name = "hg"
path = "/hg"
scheme = "hotglue"
secrets = [{ value = "hg-secret" }]

[[route]]
name = "sh"
path_prefix = "/sh/"
scheme = "hmac"
secrets = [{ id = "a", value = "first" }, { id = "b", value = "second" }]
[route.hmac]
header = "X-Synchub-Signature"
algorithm = "sha512"
encoding = "base64url"
prefix = "v="
timestamp_header = "X-Synchub-Timestamp"
id_header = "X-Synchub-Delivery"
signed_payload = "{method} {path} {id} {timestamp} {body}"
"#;
    let sc = Sidecar::start(up.addr, "", routes).await;

    // GitHub: X-Hub-Signature-256; the legacy SHA-1 header alone is not enough.
    let sig = sign_github("It's a Secret to Everybody", BODY);
    let r = post(
        &sc.url("/gh"),
        &[
            ("x-hub-signature-256", sig),
            ("x-github-delivery", "d-1".into()),
        ],
        BODY,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let h = up.last().headers;
    assert_eq!(
        (
            h["x-hookseal-scheme"].to_str().unwrap(),
            h["x-hookseal-id"].to_str().unwrap()
        ),
        ("github", "d-1")
    );
    let sha1 = hex_hmac_sha1(b"It's a Secret to Everybody", BODY);
    let r = post(
        &sc.url("/gh"),
        &[("x-hub-signature", format!("sha1={sha1}"))],
        BODY,
    )
    .await;
    assert_eq!(
        (r.status, r.error().as_str()),
        (StatusCode::BAD_REQUEST, "missing_signature")
    );

    // hotglue: bare hex HMAC-SHA1, and `sha1=` too.
    let sig = hex_hmac_sha1(b"hg-secret", BODY);
    assert_eq!(
        post(&sc.url("/hg"), &[("x-hub-signature", sig.clone())], BODY)
            .await
            .status,
        StatusCode::OK
    );
    assert_eq!(
        post(
            &sc.url("/hg"),
            &[("x-hub-signature", format!("sha1={sig}"))],
            BODY
        )
        .await
        .status,
        StatusCode::OK
    );
    let r = post(
        &sc.url("/hg"),
        &[("x-hub-signature", sig)],
        &b"tampered"[..],
    )
    .await;
    assert_eq!(r.error(), "bad_signature");

    // Generic HMAC, every placeholder, second secret, several signatures in the header.
    use base64::Engine;
    use hmac::{Hmac, KeyInit, Mac};
    let ts = unix_now();
    let payload = [format!("POST /sh/x?q=1 d-9 {ts} ").as_bytes(), BODY].concat();
    let mut mac = Hmac::<sha2::Sha512>::new_from_slice(b"second").unwrap();
    mac.update(&payload);
    let good = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
    let headers = vec![
        ("x-synchub-signature", format!("v=AAAA, v={good}")),
        ("x-synchub-timestamp", ts.to_string()),
        ("x-synchub-delivery", "d-9".into()),
    ];
    let r = post(&sc.url("/sh/x?q=1"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK, "{:?}", r.body);
    let h = up.last().headers;
    assert_eq!(h["x-hookseal-key"], "b");
    assert_eq!(h["x-hookseal-id"], "d-9");
    let r = post(&sc.url("/sh/x?q=1"), &headers, BODY).await;
    assert_eq!(
        r.json()["status"],
        "duplicate",
        "hmac routes dedupe on id_header"
    );
}

#[tokio::test]
async fn observe_mode_forwards_with_the_verdict() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "mode = \"observe\"").await;
    let r = post(&sc.url("/hooks/sw"), &[], BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    let h = up.last().headers;
    assert_eq!(h["x-hookseal-verified"], "false");
    assert_eq!(h["x-hookseal-reason"], "missing_signature");
    let m = sc.metrics().await;
    assert!(m.contains("result=\"observed\""), "{m}");
}

#[tokio::test]
async fn svix_header_names_are_accepted() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let headers: Vec<(&str, String)> = sign_standard(WHSEC, "msg_svix", unix_now(), BODY)
        .into_iter()
        .map(|(k, v)| {
            (
                match k {
                    "webhook-id" => "svix-id",
                    "webhook-timestamp" => "svix-timestamp",
                    _ => "svix-signature",
                },
                v,
            )
        })
        .collect();
    let r = post(&sc.url("/hooks/sw"), &headers, BODY).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.last().headers["x-hookseal-id"], "msg_svix");
}

#[tokio::test]
async fn admin_health_and_metrics() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(&up, "").await;
    let h = send(
        Method::GET,
        &format!("http://{}/healthz", sc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(h.status, StatusCode::OK);
    let r = send(
        Method::GET,
        &format!("http://{}/readyz", sc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    let headers = sign_standard(WHSEC, "msg_metrics", unix_now(), BODY);
    post(&sc.url("/hooks/sw"), &headers, BODY).await;
    let m = sc.metrics().await;
    for family in [
        "hookseal_requests_total{reason=\"ok\",result=\"forwarded\",route=\"sw\"} 1",
        "hookseal_request_duration_seconds_bucket",
        "hookseal_verify_duration_seconds_bucket",
        "hookseal_upstream_duration_seconds_bucket",
        "hookseal_upstream_responses_total{class=\"2xx\",route=\"sw\"} 1",
        "hookseal_request_body_bytes_bucket",
        "hookseal_timestamp_skew_seconds_bucket",
        "hookseal_inflight_requests",
        "hookseal_connections",
        "hookseal_build_info{version=",
    ] {
        assert!(m.contains(family), "missing {family} in\n{m}");
    }
}

#[tokio::test]
async fn shutdown_lets_in_flight_requests_finish() {
    let up = Upstream::start().await;
    up.set(|b| b.delay = Duration::from_millis(500));
    let mut sc = sw_sidecar(&up, "").await;
    let headers = sign_standard(WHSEC, "msg_drain", unix_now(), BODY);
    let url = sc.url("/hooks/sw");
    let pending = tokio::spawn(async move { post(&url, &headers, BODY).await });
    tokio::time::sleep(Duration::from_millis(150)).await;
    let drained = sc.shutdown().await;
    assert_eq!(drained.cut_off, 0);
    let r = pending.await.unwrap();
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(up.count(), 1);
}

/// The `sw` route and a catch-all `none` route, as `config.example.toml` has them.
async fn catch_all_sidecar(up: &Upstream) -> Sidecar {
    sw_sidecar(
        up,
        "[[route]]\nname = \"app\"\npath_prefix = \"/\"\nmethods = [\"POST\"]\nscheme = \"none\"\n",
    )
    .await
}

/// Sends each target as an unsigned POST over HTTP/1.1 and over HTTP/2 (`:path`), and checks
/// both are refused 400 `ambiguous_path` and the app saw nothing; then that the catch-all
/// still forwards a plain path of its own.
async fn assert_ambiguous(targets: &[&str]) {
    use crate::netkit::{h2_status, within, END_STREAM, H2, H2_DATA, H2_HEADERS};
    let up = Upstream::start().await;
    let sc = catch_all_sidecar(&up).await;
    for target in targets {
        let req = crate::netkit::request_bytes("POST", target, &[], BODY);
        let resp = crate::netkit::exchange_from("127.0.0.1", sc.addr, req).await;
        assert_eq!(
            (resp.status, resp.error().as_str()),
            (400, "ambiguous_path"),
            "HTTP/1.1 {target}"
        );
        let mut h2 = H2::connect(sc.addr).await;
        h2.post(1, target, &[], BODY).await;
        let (mut status, mut body) = (None, Vec::new());
        within(Duration::from_secs(30), async {
            while let Some(f) = h2.next().await {
                if f.stream != 1 {
                    continue;
                }
                if f.kind == H2_HEADERS {
                    status = h2_status(&f.payload);
                } else if f.kind == H2_DATA {
                    body.extend_from_slice(&f.payload);
                }
                if f.flags & END_STREAM != 0 {
                    break;
                }
            }
        })
        .await;
        let body: serde_json::Value = serde_json::from_slice(&body).expect("h2 JSON body");
        assert_eq!(status, Some(400), "HTTP/2 {target}");
        assert_eq!(body["error"], "ambiguous_path", "HTTP/2 {target}");
        assert!(body["route"].is_null(), "HTTP/2 {target}");
    }
    assert_eq!(up.count(), 0, "nothing reached the app unverified");
    let ok = post(&sc.url("/app/a%2Fb"), &[], BODY).await;
    assert_eq!(ok.status, StatusCode::OK);
    assert_eq!(up.last().uri, "/app/a%2Fb");
}

/// A path that app servers read as the verifying route's (WSGI decodes `%2F`, Spring strips
/// `;params`, some servers take `\` for `/`, some leave dot segments) must not reach the app
/// through the catch-all `none` route unverified.
#[tokio::test]
async fn ambiguous_spellings_of_a_verifying_path_are_not_forwarded_unverified() {
    assert_ambiguous(&[
        "/hooks%2Fsw",
        "/hooks%2fsw",
        "/hooks\\sw",
        "/hooks/sw;x=1",
        "/x/../hooks/sw",
    ])
    .await;
}

/// Issue 17, finding 1: Node's `new URL(req.url, base)`, Python's `urlparse` and PHP's
/// `parse_url` take a leading `//` as an authority and read the rest as the path.
#[tokio::test]
async fn a_leading_double_slash_authority_is_not_forwarded_unverified() {
    assert_ambiguous(&[
        "//evil.example/hooks/sw",
        "//x:1/hooks/sw",
        "//x@y/hooks/sw",
        "//x/./hooks/sw",
        "//x:1@y:2/hooks/sw",
        "/\\evil.example/hooks/sw",
    ])
    .await;
}

/// Issue 17, finding 2: Rails appends `(.:format)` to every route, Spring matched suffixes.
#[tokio::test]
async fn a_format_suffix_is_not_forwarded_unverified() {
    assert_ambiguous(&[
        "/hooks/sw.json",
        "/hooks/sw.xml",
        "/hooks/sw.",
        "/hooks/sw%2ejson",
    ])
    .await;
}

/// Issue 17, finding 2: C-string handling cuts at NUL, `strip()` drops trailing whitespace.
#[tokio::test]
async fn a_trailing_nul_or_whitespace_is_not_forwarded_unverified() {
    assert_ambiguous(&[
        "/hooks/sw%00",
        "/hooks/sw%00.png",
        "/hooks/sw%20",
        "/hooks/sw%09",
    ])
    .await;
}

/// Issue 17, finding 2: servers that decode `%3B` before splitting off `;params`.
#[tokio::test]
async fn an_encoded_semicolon_is_not_forwarded_unverified() {
    assert_ambiguous(&["/hooks/sw%3Bx", "/hooks/sw%3bx=1"]).await;
}

/// Issue 17, finding 2: PHP front controllers route by the query (`index.php?/route`) or by
/// PATH_INFO after the script name.
#[tokio::test]
async fn front_controller_routes_are_not_forwarded_unverified() {
    assert_ambiguous(&[
        "/?/hooks/sw",
        "/index.php?/hooks/sw",
        "/index.php?/hooks/sw&a=1",
        "/index.php?%2Fhooks%2Fsw",
        "/index.php/hooks/sw",
    ])
    .await;
}

/// Issue 17, finding 2: frameworks that fold Unicode compatibility characters (NFKC) read a
/// fullwidth solidus as `/`, fullwidth letters and the Kelvin sign as ASCII.
#[tokio::test]
async fn unicode_look_alikes_are_not_forwarded_unverified() {
    assert_ambiguous(&[
        "/hooks%EF%BC%8Fsw",
        "/hooks/%EF%BD%93w",
        "/hoo%E2%84%AAs/sw",
        "/hooks/sw%EF%BC%8Ejson",
    ])
    .await;
}

/// The catch-all keeps serving its own paths that use the same spellings, when no verifying
/// route could read them as its own.
#[tokio::test]
async fn the_catch_all_still_forwards_its_own_paths() {
    let up = Upstream::start().await;
    let sc = catch_all_sidecar(&up).await;
    let paths = [
        "/app/file.json",
        "//cdn.example/app/x",
        "/app/x%20",
        "/index.php?/app/x",
        "/index.php/app/x",
        "/app/%EF%BD%93w",
        "/?a=/hooks/sw",
    ];
    for path in paths {
        let req = crate::netkit::request_bytes("POST", path, &[], BODY);
        let resp = crate::netkit::exchange_from("127.0.0.1", sc.addr, req).await;
        assert_eq!(resp.status, 200, "{path}");
        assert_eq!(up.last().uri, path, "forwarded as received");
        assert_eq!(up.last().headers["x-hookseal-route"], "app");
    }
    assert_eq!(up.count(), paths.len());
}

/// A method the verifying route does not list is 405 there, even when the catch-all `none`
/// route allows it: otherwise an app whose webhook handler ignores the method would process an
/// unsigned `PUT /hooks/sw`.
#[tokio::test]
async fn a_method_the_verifying_route_refuses_never_falls_through_to_the_catch_all() {
    let up = Upstream::start().await;
    let sc = sw_sidecar(
        &up,
        "[[route]]\nname = \"app\"\npath_prefix = \"/\"\n\
         methods = [\"GET\", \"PUT\", \"PATCH\", \"DELETE\"]\nscheme = \"none\"\n",
    )
    .await;
    for method in ["GET", "PUT", "PATCH", "DELETE"] {
        let req = crate::netkit::request_bytes(method, "/hooks/sw", &[], BODY);
        let resp = crate::netkit::exchange_from("127.0.0.1", sc.addr, req).await;
        assert_eq!(resp.status, 405, "{method}");
        assert_eq!(resp.error(), "method_not_allowed", "{method}");
    }
    assert_eq!(up.count(), 0, "nothing reached the app unverified");
    // Paths the verifying route does not own still reach the catch-all.
    let req = crate::netkit::request_bytes("PUT", "/app/x", &[], BODY);
    let resp = crate::netkit::exchange_from("127.0.0.1", sc.addr, req).await;
    assert_eq!(resp.status, 200);
    assert_eq!(up.count(), 1);
}

/// Issue 17, finding 3: Twilio and Square sign the URL but no timestamp. A genuine delivery
/// for `/twilio/sms` replayed to another path of the same `path_prefix` route must be refused,
/// whether `public_url` names the path (the issue's config) or only the host.
#[tokio::test]
async fn a_url_signed_delivery_replayed_to_another_path_is_refused() {
    use base64::Engine as _;
    use hmac::{Hmac, KeyInit, Mac};
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let up = Upstream::start().await;
    let cases = [
        // (route, prefix, scheme, public_url)
        (
            "tw",
            "/twilio/",
            "twilio",
            "https://hooks.example.com/twilio/sms",
        ),
        ("twb", "/twb/", "twilio", "https://hooks.example.com"),
        (
            "sq",
            "/square/",
            "square",
            "https://hooks.example.com/square/sms",
        ),
        ("sqb", "/sqb/", "square", "https://hooks.example.com"),
    ];
    let mut routes = String::new();
    for (name, prefix, scheme, public) in cases {
        routes.push_str(&format!(
            "[[route]]\nname = \"{name}\"\npath_prefix = \"{prefix}\"\nscheme = \"{scheme}\"\n\
             secrets = [{{ value = \"k-{name}\" }}]\npublic_url = \"{public}\"\n"
        ));
    }
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let form = b"To=%2B15550001&From=%2B15550002&Body=delete+everything";
    let json = br#"{"type":"payment.updated","data":{"id":"p_1"}}"#;
    for (i, (name, prefix, scheme, _)) in cases.iter().enumerate() {
        // What the provider signs: the URL it called, https://hooks.example.com/<prefix>sms.
        let url = format!("https://hooks.example.com{prefix}sms");
        let key = format!("k-{name}");
        let (headers, body): (Vec<(&str, String)>, &[u8]) = if *scheme == "twilio" {
            let mut mac = Hmac::<sha1::Sha1>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(format!("{url}Bodydelete everythingFrom+15550002To+15550001").as_bytes());
            let sig = b64(&mac.finalize().into_bytes());
            (vec![("x-twilio-signature", sig)], form)
        } else {
            let mut mac = Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
            mac.update(url.as_bytes());
            mac.update(json);
            let sig = b64(&mac.finalize().into_bytes());
            (vec![("x-square-hmacsha256-signature", sig)], json)
        };
        let genuine = post(&sc.url(&format!("{prefix}sms")), &headers, body.to_vec()).await;
        assert_eq!(
            genuine.status,
            StatusCode::OK,
            "{name}: the genuine delivery"
        );
        assert_eq!(up.count(), i + 1);
        assert_eq!(up.last().headers["x-hookseal-verified"], "true");
        for other in ["admin/delete-all", "SMS", "sms/x"] {
            let replay = post(
                &sc.url(&format!("{prefix}{other}")),
                &headers,
                body.to_vec(),
            )
            .await;
            assert_eq!(
                (replay.status, replay.error().as_str()),
                (StatusCode::UNAUTHORIZED, "bad_signature"),
                "{name}: replayed to {prefix}{other}"
            );
        }
        assert_eq!(up.count(), i + 1, "{name}: a replay reached the app");
    }
}
