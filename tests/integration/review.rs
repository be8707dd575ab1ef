//! Regression tests of the second phase's security review (SECURITY.md rows 43-46): each
//! failed on the code before its fix.

use bytes::Bytes;
use http::{Method, StatusCode};

use crate::support::{send, Sidecar, Upstream};

/// X's CRC is unsigned and answers HMAC(consumer secret, token), and a POST's signature is
/// HMAC(consumer secret, body): the token must never be a body the app would take. JSON
/// scalars (`null`, `true`, `1`) are whole JSON documents in the CRC's character set; their
/// answer used to be a valid signature, and the POST reached the app as verified.
#[tokio::test]
async fn x_crc_never_signs_a_json_document() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"x\"\npath = \"/x\"\nscheme = \"x\"\n\
                  secrets = [{ value = \"consumer-secret\" }]\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    for body in ["null", "true", "false", "0", "1", "-2.5e3"] {
        let crc = send(
            Method::GET,
            &sc.url(&format!("/x?crc_token={body}")),
            &[],
            Bytes::new(),
        )
        .await;
        assert_eq!(crc.status, StatusCode::BAD_REQUEST, "{body}: {crc:?}");
        assert_eq!(crc.error(), "malformed_signature", "{body}");
    }
    assert_eq!(up.count(), 0);
    // A token as X sends them is still answered.
    let crc = send(
        Method::GET,
        &sc.url("/x?crc_token=9b4507b3-9040-4669-9ca3-6b94edb50553"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(crc.status, StatusCode::OK);
}

/// A `jwt` route reading its token from `[route.jwt] header`: the token (a bearer credential,
/// valid until its `exp`) was kept in clear in `/debug/rejections`, since only the scheme's
/// first header (`authorization`) and names on the deny-list were redacted.
#[tokio::test]
async fn a_jwt_in_a_custom_header_is_redacted_in_the_record_of_rejections() {
    let up = Upstream::start().await;
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"1","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YilurN5ZQsSq9D5-kqQ6rBV2ZfTK0Njvgs"}]}"#;
    let routes = format!(
        "[[route]]\nname = \"j\"\npath = \"/j\"\nscheme = \"jwt\"\n\
         [route.jwt]\nkeys = {{ value = '{jwks}' }}\naudiences = [\"a\"]\nheader = \"X-Push-Assertion\"\n"
    );
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let token = "eyJhbGciOiJFUzI1NiIsImtpZCI6IjEifQ.eyJhdWQiOiJhIn0.c2VjcmV0LXRva2VuLXNpZ25hdHVyZQ";
    let r = send(
        Method::POST,
        &sc.url("/j"),
        &[("x-push-assertion", token.into())],
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED, "{r:?}");
    let record = send(
        Method::GET,
        &format!("http://{}/debug/rejections", sc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(record.status, StatusCode::OK);
    let text = String::from_utf8_lossy(&record.body).into_owned();
    assert!(
        !text.contains("c2VjcmV0"),
        "the token is in the record: {text}"
    );
    let entries = record.json();
    assert_eq!(
        entries[0]["headers"]["x-push-assertion"], "<redacted>",
        "{text}"
    );
    assert_eq!(up.count(), 0);
}

/// The admin port's operator endpoints against a browser: a page re-pointing its name at
/// 127.0.0.1 (DNS rebinding) arrives from loopback with its own name in `Host`; a cross-site
/// POST without a preflight is `text/plain`. Both used to be served.
#[tokio::test]
async fn the_operator_endpoints_refuse_rebound_hosts_and_simple_posts() {
    let up = Upstream::start().await;
    let spool = tempfile::tempdir().unwrap();
    let queue = format!(
        "[queue]\npath = \"{}\"\n",
        spool.path().join("spool").display()
    );
    let routes = "[[route]]\nname = \"gh\"\npath = \"/gh\"\nscheme = \"github\"\n\
                  secrets = [{ value = \"s\" }]\n[route.delivery]\nmode = \"queued\"\n";
    let sc = Sidecar::start(up.addr, &queue, routes).await;
    let admin = |path: &str| format!("http://{}{path}", sc.admin);
    let purge = br#"{"route":"gh","dead":true}"#;

    for path in ["/debug/rejections", "/queue"] {
        let r = send(
            Method::GET,
            &admin(path),
            &[("host", "rebound.example:9090".into())],
            Bytes::new(),
        )
        .await;
        assert_eq!(r.status, StatusCode::FORBIDDEN, "{path}: {r:?}");
        assert_eq!(r.error(), "bad_host");
        let r = send(Method::GET, &admin(path), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{path} under the address itself");
    }
    let r = send(
        Method::POST,
        &admin("/queue/purge"),
        &[
            ("host", "rebound.example:9090".into()),
            ("content-type", "application/json".into()),
        ],
        Bytes::from_static(purge),
    )
    .await;
    assert_eq!(r.status, StatusCode::FORBIDDEN, "{r:?}");
    // `/metrics` stays open to any name (a scraper may use the pod's).
    let r = send(
        Method::GET,
        &admin("/metrics"),
        &[("host", "hookseal.example:9090".into())],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);

    for ctype in ["text/plain", "application/x-www-form-urlencoded", ""] {
        let headers: Vec<(&str, String)> = if ctype.is_empty() {
            vec![]
        } else {
            vec![("content-type", ctype.into())]
        };
        for path in ["/queue/purge", "/queue/retry"] {
            let r = send(
                Method::POST,
                &admin(path),
                &headers,
                Bytes::from_static(purge),
            )
            .await;
            assert_eq!(
                r.status,
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {ctype}: {r:?}"
            );
            assert_eq!(r.error(), "unsupported_media_type");
        }
    }
    let r = send(
        Method::POST,
        &admin("/queue/purge"),
        &[("content-type", "application/json".into())],
        Bytes::from_static(purge),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK, "{r:?}");
    assert_eq!(r.json()["purged"], 0);
}

/// Observe mode forwards what fails verification, but a GET on a route whose methods lack
/// GET reaches the route only as its scheme's handshake: a failed handshake (a wrong Meta
/// `verify_token`, a refused X `crc_token`, a Dropbox challenge sent twice) was forwarded to
/// the app as a GET the route table would have refused.
#[tokio::test]
async fn observe_mode_never_forwards_a_failed_get_handshake() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"meta\"\npath = \"/meta\"\nscheme = \"meta\"\nmode = \"observe\"\n\
                  secrets = [{ value = \"meta-app-secret\" }]\nverify_token = { value = \"vt-123\" }\n\
                  [[route]]\nname = \"x\"\npath = \"/x\"\nscheme = \"x\"\nmode = \"observe\"\n\
                  secrets = [{ value = \"consumer-secret\" }]\n\
                  [[route]]\nname = \"dropbox\"\npath = \"/dropbox\"\nscheme = \"dropbox\"\nmode = \"observe\"\n\
                  secrets = [{ value = \"dropbox-secret\" }]\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    for (target, status, reason) in [
        (
            "/meta?hub.mode=subscribe&hub.verify_token=wrong&hub.challenge=7",
            StatusCode::FORBIDDEN,
            "bad_verify_token",
        ),
        (
            "/x?crc_token=%7B%7D",
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
        (
            "/dropbox?challenge=a&challenge=b",
            StatusCode::BAD_REQUEST,
            "malformed_signature",
        ),
    ] {
        let r = send(Method::GET, &sc.url(target), &[], Bytes::new()).await;
        assert_eq!(
            (r.status, r.error()),
            (status, reason.to_owned()),
            "{target}"
        );
    }
    assert_eq!(up.count(), 0, "a failed GET handshake reached the app");
    // The handshake itself, and observe mode's POSTs, are as before.
    let r = send(
        Method::GET,
        &sc.url("/meta?hub.mode=subscribe&hub.verify_token=vt-123&hub.challenge=7"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!((r.status, &r.body[..]), (StatusCode::OK, &b"7"[..]));
    let r = send(
        Method::POST,
        &sc.url("/meta"),
        &[],
        Bytes::from_static(b"{}"),
    )
    .await;
    assert_eq!(
        r.status,
        StatusCode::OK,
        "observe mode forwards an unsigned POST"
    );
    assert_eq!(up.count(), 1);
}

/// An `okta` route without `secrets` checks nothing (SPEC: they are optional), so every
/// request to it reaches the app with `x-hookseal-verified: true`; `check` said nothing.
#[test]
fn check_warns_about_an_okta_route_without_secrets() {
    let run = |route: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookseal.toml");
        let text = format!(
            "[upstream]\nurl = \"http://127.0.0.1:8080\"\n\
             [[route]]\nname = \"okta\"\npath = \"/okta\"\nscheme = \"okta\"\n{route}"
        );
        std::fs::write(&path, text).unwrap();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
            .env_remove("HOOKSEAL_CONFIG")
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        assert!(out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let open = run("");
    assert!(
        open.lines()
            .any(|l| l.starts_with("warning: route okta: scheme okta without secrets")),
        "{open}"
    );
    let closed = run("secrets = [{ value = \"Bearer okta-key\" }]\n");
    assert!(!closed.contains("warning"), "{closed}");
    assert!(!closed.contains("okta-key"), "{closed}");
}

/// What held: reflected handshake values stay bodies of their declared type. CR/LF and HTML
/// in Graph's and Dropbox's unauthenticated echoes are `text/plain` with `nosniff`, no header
/// is added from them; Okta's is JSON-escaped; a byte that is not UTF-8 is replaced; and none
/// of it reaches the app.
#[tokio::test]
async fn reflected_handshake_values_stay_inert() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"graph\"\npath = \"/graph\"\nscheme = \"msgraph\"\n\
                  client_state = { value = \"cs\" }\n\
                  [[route]]\nname = \"dropbox\"\npath = \"/dropbox\"\nscheme = \"dropbox\"\n\
                  secrets = [{ value = \"d\" }]\n\
                  [[route]]\nname = \"okta\"\npath = \"/okta\"\nscheme = \"okta\"\n\
                  secrets = [{ value = \"Bearer k\" }]\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    let evil = "%3Cscript%3Ealert(1)%3C%2Fscript%3E%0D%0AX-Evil%3A%201%0D%0A%0D%0A";
    let decoded = "<script>alert(1)</script>\r\nX-Evil: 1\r\n\r\n";
    for (method, target) in [
        (Method::POST, format!("/graph?validationToken={evil}")),
        (Method::GET, format!("/dropbox?challenge={evil}")),
    ] {
        let r = send(method, &sc.url(&target), &[], Bytes::new()).await;
        assert_eq!(r.status, StatusCode::OK, "{target}");
        assert_eq!(r.headers["content-type"], "text/plain", "{target}");
        assert_eq!(r.headers["x-content-type-options"], "nosniff", "{target}");
        assert!(r.headers.get("x-evil").is_none(), "{target}");
        assert_eq!(&r.body[..], decoded.as_bytes(), "{target}");
    }
    let r = send(
        Method::POST,
        &sc.url("/graph?validationToken=%FF%FE"),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert!(std::str::from_utf8(&r.body).is_ok(), "{:?}", r.body);
    let r = send(
        Method::GET,
        &sc.url("/okta"),
        &[
            ("authorization", "Bearer k".into()),
            (
                "x-okta-verification-challenge",
                "\"}</script><script>alert(1)</script>".into(),
            ),
        ],
        Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.headers["content-type"], "application/json");
    assert_eq!(
        r.json()["verification"],
        "\"}</script><script>alert(1)</script>"
    );
    assert_eq!(up.count(), 0);
}

/// What held: a queued request's spoofed `x-hookseal-*` headers (both spellings, the
/// worker's own `x-hookseal-attempt` / `-queued-at` included) and its hop-by-hop headers never
/// reach the spool, so the app gets hookseal's values only, byte-identical body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queued_requests_carry_no_spoofed_or_hop_by_hop_headers() {
    use crate::netkit::eventually;
    use crate::support::{sign_standard, sw_route, unix_now, WHSEC};
    use std::time::Duration;

    let up = Upstream::start().await;
    let spool = tempfile::tempdir().unwrap();
    let queue = format!(
        "[queue]\npath = \"{}\"\n",
        spool.path().join("spool").display()
    );
    let route = sw_route("[route.delivery]\nmode = \"queued\"\n");
    let sc = Sidecar::start(up.addr, &queue, &route).await;
    let body = b"{\"spoof\":true}";
    let mut headers = sign_standard(WHSEC, "msg_spoof_1", unix_now(), body);
    for (name, value) in [
        ("x-hookseal-verified", "true"),
        ("x-hookseal-attempt", "99"),
        ("x-hookseal-queued-at", "1"),
        ("x-hookseal-id", "forged"),
        ("x_hookseal_route", "admin"),
        ("connection", "x-listed"),
        ("x-listed", "1"),
        ("keep-alive", "timeout=5"),
        ("proxy-connection", "keep-alive"),
        ("te", "trailers"),
    ] {
        headers.push((name, value.to_owned()));
    }
    let r = send(
        Method::POST,
        &sc.url("/hooks/sw"),
        &headers,
        Bytes::from_static(body),
    )
    .await;
    assert_eq!(r.status, StatusCode::ACCEPTED, "{r:?}");
    assert!(
        eventually(Duration::from_secs(15), || async { up.count() == 1 }).await,
        "delivered"
    );
    let got = up.last();
    assert_eq!(&got.body[..], body);
    let h = &got.headers;
    assert_eq!(h["x-hookseal-attempt"], "1");
    assert_eq!(h.get_all("x-hookseal-attempt").iter().count(), 1);
    let queued_at: i64 = h["x-hookseal-queued-at"].to_str().unwrap().parse().unwrap();
    assert!((unix_now() - queued_at).abs() < 60, "{queued_at}");
    assert_eq!(h["x-hookseal-id"], "msg_spoof_1");
    assert_eq!(h.get_all("x-hookseal-verified").iter().count(), 1);
    assert_eq!(h["x-hookseal-verified"], "true");
    for gone in [
        "x_hookseal_route",
        "x-listed",
        "keep-alive",
        "proxy-connection",
        "te",
    ] {
        assert!(h.get(gone).is_none(), "{gone} reached the app: {h:?}");
    }
    assert_eq!(h["x-hookseal-route"], "sw");
}

/// A C1 control sent as UTF-8 in a header value (obs-text to HTTP) reaches the record of
/// rejections as it is: the `hookseal rejections` CLI escapes it before the terminal sees it
/// (`sender_text_cannot_drive_the_terminal` in src/cli/rejections.rs).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_c1_control_in_a_header_reaches_the_record_and_the_cli_escapes_it() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"gh\"\npath = \"/gh\"\nscheme = \"github\"\n\
                  secrets = [{ value = \"s\" }]\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    let mut req = http::Request::post(sc.url("/gh"));
    req = req.header(
        "x-note",
        http::HeaderValue::from_bytes(b"\xc2\x9b2J\xc2\x9bHforged").unwrap(),
    );
    let resp = crate::support::client()
        .request(req.body(http_body_util::Full::new(Bytes::new())).unwrap())
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);
    let record = send(
        Method::GET,
        &format!("http://{}/debug/rejections", sc.admin),
        &[],
        Bytes::new(),
    )
    .await;
    assert_eq!(
        record.json()[0]["headers"]["x-note"],
        "\u{9b}2J\u{9b}Hforged"
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
        .env_remove("HOOKSEAL_CONFIG")
        .args(["rejections", "--admin", &format!("http://{}", sc.admin)])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('\u{9b}'), "{text:?}");
    assert!(text.contains("x-note: \\u{9b}2J\\u{9b}Hforged"), "{text}");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
        .env_remove("HOOKSEAL_CONFIG")
        .args([
            "rejections",
            "--json",
            "--admin",
            &format!("http://{}", sc.admin),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "{text}");
    assert!(!text.contains('\u{9b}'), "{text:?}");
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(json[0]["headers"]["x-note"], "\u{9b}2J\u{9b}Hforged");
}

/// What held: on routes whose `methods` lack GET, only a GET can be a handshake: HEAD,
/// OPTIONS, PUT and DELETE carrying a handshake's parameters are 405, never answered or
/// forwarded.
#[tokio::test]
async fn head_and_options_never_reach_a_handshake() {
    let up = Upstream::start().await;
    let routes = "[[route]]\nname = \"meta\"\npath = \"/meta\"\nscheme = \"meta\"\n\
                  secrets = [{ value = \"m\" }]\nverify_token = { value = \"vt\" }\n\
                  [[route]]\nname = \"dropbox\"\npath = \"/dropbox\"\nscheme = \"dropbox\"\n\
                  secrets = [{ value = \"d\" }]\n";
    let sc = Sidecar::start(up.addr, "", routes).await;
    for method in [Method::HEAD, Method::OPTIONS, Method::PUT, Method::DELETE] {
        for target in [
            "/meta?hub.mode=subscribe&hub.verify_token=vt&hub.challenge=7",
            "/dropbox?challenge=abc",
        ] {
            let r = send(method.clone(), &sc.url(target), &[], Bytes::new()).await;
            assert_eq!(
                r.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {target}"
            );
        }
    }
    assert_eq!(up.count(), 0);
}
