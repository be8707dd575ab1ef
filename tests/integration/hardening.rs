//! Regression tests for what fuzzing and the threat model (SECURITY.md) turned up.

use std::path::Path;
use std::time::Duration;

use hookseal::config::Config;

use crate::netkit::{metric, within};
use crate::support::*;

/// `src/config.rs` bounds secret files at 64 KiB.
const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

fn no_env(_: &str) -> Option<String> {
    None
}

fn route_with_secret_file(file: &Path) -> String {
    format!(
        "[upstream]\nurl = \"http://127.0.0.1:8080\"\n[[route]]\nname = \"gh\"\npath = \"/gh\"\n\
         scheme = \"github\"\nsecrets = [{{ id = \"f\", file = \"{}\" }}]\n",
        file.display()
    )
}

fn secret_file_error(file: &Path) -> String {
    let dir = tempfile::tempdir().expect("tempdir");
    let text = route_with_secret_file(file);
    match Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env) {
        Ok(_) => panic!("config with secret file {} loaded", file.display()),
        Err(e) => e.to_string(),
    }
}

/// Found by the `config_parse` fuzz target's design review: `file = "/dev/zero"` used to read
/// without end. A device, FIFO or directory is refused without being read.
#[test]
fn secret_file_that_is_not_a_regular_file_is_refused() {
    let msg = secret_file_error(Path::new("/dev/zero"));
    assert!(msg.contains("route[0].secrets[0].file"), "{msg}");
    assert!(msg.contains("not a regular file"), "{msg}");
    let dir = tempfile::tempdir().expect("tempdir");
    let msg = secret_file_error(dir.path());
    assert!(msg.contains("not a regular file"), "{msg}");
}

/// A secret file over the bound is an error naming the bound, not a huge allocation.
#[test]
fn oversized_secret_file_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let big = dir.path().join("big");
    let len = usize::try_from(MAX_SECRET_FILE_BYTES).expect("bound") + 1;
    std::fs::write(&big, vec![b'a'; len]).expect("write");
    let msg = secret_file_error(&big);
    assert!(msg.contains("larger than 65536 bytes"), "{msg}");
    assert!(!msg.contains("aaaa"), "the content is never echoed: {msg}");

    // At the bound exactly it loads.
    std::fs::write(&big, vec![b'a'; len - 1]).expect("write");
    let text = route_with_secret_file(&big);
    let c = Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env);
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
}

/// A symlinked secret (how Kubernetes mounts a Secret) still resolves.
#[test]
fn symlinked_secret_file_still_loads() {
    let dir = tempfile::tempdir().expect("tempdir");
    let real = dir.path().join("real");
    std::fs::write(&real, "s3cret\n").expect("write");
    let link = dir.path().join("link");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let text = route_with_secret_file(&link);
    let c = Config::parse(&dir.path().join("hookseal.toml"), &text, &no_env);
    assert!(c.is_ok(), "{:?}", c.err().map(|e| e.to_string()));
}

/// Found by the `route_match` fuzz target: a `%` that starts no escape, followed by escapes
/// that decode to hex digits, built a new escape (`/%%36%31` → `/%61`), so normalizing twice
/// gave another path (`/a`). Such a `%` is now spelled `%25`: normalization is a fixed point,
/// and `/a%` matches like `/a%25`, which is the same path to the app.
#[test]
fn stray_percent_normalizes_to_a_fixed_point() {
    use hookseal::route::normalize_path;
    let once = normalize_path("/%%36%31").into_owned();
    assert_eq!(once, "/%2561");
    assert_eq!(normalize_path(&once), once);
    let crash = "/././33333333/%%33333333333333333333333833333333333333333./api/v1/items/!";
    let once = normalize_path(crash).into_owned();
    assert_eq!(normalize_path(&once), once);
    assert_eq!(normalize_path("/a%"), normalize_path("/a%25"));
    assert_eq!(normalize_path("/a%4"), "/a%254");
    assert_eq!(normalize_path("/a%2F"), "/a%2f");
    assert_eq!(normalize_path("/h%6Fok"), "/hook");
}

/// Request smuggling: a request framed two ways (chunked *and* a Content-Length that would end
/// it elsewhere), or with two different Content-Lengths, followed by a second, unsigned request
/// hidden where one framing ends and the other does not. Whatever hyper makes of the framing,
/// the upstream sees at most the one signed body, byte for byte, re-framed with its own
/// Content-Length and no Transfer-Encoding, and never the hidden request.
#[tokio::test]
async fn conflicting_framing_is_never_forwarded_ambiguously() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const BODY: &[u8] = b"{\"type\":\"smuggle.test\"}";
    let hidden =
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\nx-smuggled: 1\r\ncontent-length: 2\r\n\r\n{}";
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("")).await;
    let signed = |id: &str| {
        sign_standard(WHSEC, id, unix_now(), BODY)
            .into_iter()
            .map(|(k, v)| format!("{k}: {v}\r\n"))
            .collect::<String>()
    };
    let chunked = format!(
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\n{}transfer-encoding: chunked\r\ncontent-length: {}\r\n\r\n\
         {:x}\r\n{}\r\n0\r\n\r\n{hidden}",
        signed("msg_te_cl"),
        BODY.len(),
        BODY.len(),
        String::from_utf8_lossy(BODY),
    );
    let two_lengths = format!(
        "POST /hooks/sw HTTP/1.1\r\nhost: x\r\n{}content-length: {}\r\ncontent-length: {}\r\n\r\n{}{hidden}",
        signed("msg_cl_cl"),
        BODY.len(),
        BODY.len() + hidden.len(),
        String::from_utf8_lossy(BODY),
    );
    for raw in [chunked, two_lengths] {
        let before = up.count();
        let mut tcp = tokio::net::TcpStream::connect(sc.addr)
            .await
            .expect("connect");
        tcp.write_all(raw.as_bytes()).await.expect("write");
        let mut answer = Vec::new();
        let _ = tokio::time::timeout(Duration::from_secs(3), tcp.read_to_end(&mut answer)).await;
        let text = String::from_utf8_lossy(&answer);
        assert!(text.starts_with("HTTP/1.1 "), "an answer: {text}");
        let seen = up.seen.lock().expect("seen").clone();
        assert!(up.count() <= before + 1, "one request at most: {text}");
        for r in &seen[before..] {
            assert!(
                !r.headers.contains_key("x-smuggled"),
                "the hidden request got through"
            );
            assert_eq!(&r.body[..], BODY);
            assert!(!r.headers.contains_key("transfer-encoding"));
            if let Some(cl) = r.headers.get("content-length") {
                assert_eq!(cl.to_str().ok(), Some(BODY.len().to_string().as_str()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Issue 17, findings 6-9.

const HBODY: &[u8] = br#"{"type":"hygiene.test"}"#;

/// A `none` catch-all beside the Standard Webhooks route (as `config.example.toml` has one).
fn sw_and_catch_all(extra: &str) -> String {
    format!(
        "{}[[route]]\nname = \"app\"\npath_prefix = \"/\"\nscheme = \"none\"\n",
        sw_route(extra)
    )
}

/// Sends one HTTP/2 request (prior knowledge) with exactly `fields` (pseudo-headers
/// included) and `body`; returns the response status.
async fn h2_request(addr: std::net::SocketAddr, fields: &[(&str, &str)], body: &[u8]) -> u16 {
    use crate::netkit::{h2_status, END_STREAM, H2, H2_DATA, H2_HEADERS, H2_RST_STREAM};
    let mut h2 = H2::connect(addr).await;
    h2.headers(1, fields, false).await;
    h2.send(H2_DATA, END_STREAM, 1, body).await;
    within(Duration::from_secs(20), async {
        loop {
            let f = h2.next().await.expect("connection closed before an answer");
            if f.stream == 1 && f.kind == H2_HEADERS {
                return h2_status(&f.payload).expect(":status");
            }
            assert!(
                !(f.stream == 1 && f.kind == H2_RST_STREAM),
                "stream reset instead of an answer"
            );
        }
    })
    .await
}

/// The fields of an HTTP/2 POST of `HBODY` to `path` with `headers`.
fn h2_fields<'a>(
    path: &'a str,
    len: &'a str,
    headers: &'a [(&str, String)],
) -> Vec<(&'a str, &'a str)> {
    let mut all = vec![
        (":method", "POST"),
        (":scheme", "http"),
        (":path", path),
        (":authority", "hookseal.test"),
        ("content-length", len),
    ];
    all.extend(headers.iter().map(|(k, v)| (*k, v.as_str())));
    all
}

/// Finding 6: with a small `[replay] capacity`, a flood of fresh ids on one route (here
/// signed, as an unsigned-id scheme allows anyone) used to evict another route's entries,
/// so a captured delivery to that route could be replayed. Each route now has its own share.
#[tokio::test]
async fn a_flood_of_fresh_ids_on_one_route_cannot_evict_another_routes_entries() {
    let up = Upstream::start().await;
    let flood_route = format!(
        "[[route]]\nname = \"flood\"\npath = \"/hooks/flood\"\nscheme = \"standard-webhooks\"\n\
         secrets = [{{ id = \"k\", value = \"{WHSEC}\" }}]\n"
    );
    let sc = Sidecar::start(
        up.addr,
        "[replay]\ncapacity = 20",
        &format!("{}{flood_route}", sw_route("")),
    )
    .await;
    let victim = sign_standard(WHSEC, "msg_victim", unix_now(), HBODY);
    assert_eq!(post(&sc.url("/hooks/sw"), &victim, HBODY).await.status, 200);
    for i in 0..60 {
        let h = sign_standard(WHSEC, &format!("msg_flood_{i}"), unix_now(), HBODY);
        assert_eq!(post(&sc.url("/hooks/flood"), &h, HBODY).await.status, 200);
    }
    assert_eq!(up.count(), 61);
    let replay = post(&sc.url("/hooks/sw"), &victim, HBODY).await;
    assert_eq!(
        replay.json()["status"],
        "duplicate",
        "the replay got through"
    );
    assert_eq!(up.count(), 61);
    // The flood evicted only its own entries (10 of the 20 are its share).
    let m = sc.metrics().await;
    assert_eq!(metric(&m, "hookseal_replay_evictions_total"), 50.0, "{m}");
}

/// Finding 7: observe mode said `x-hookseal-verified: true` on a duplicate (and an in-flight
/// or store-unavailable request): the signature verified, but the request failed a check.
#[tokio::test]
async fn observe_mode_marks_a_duplicate_and_an_unreachable_store_unverified() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("mode = \"observe\"")).await;
    let h = sign_standard(WHSEC, "msg_obs_dup", unix_now(), HBODY);
    post(&sc.url("/hooks/sw"), &h, HBODY).await;
    assert_eq!(up.last().headers["x-hookseal-verified"], "true");
    post(&sc.url("/hooks/sw"), &h, HBODY).await;
    let seen = up.last().headers;
    assert_eq!(seen["x-hookseal-verified"], "false");
    assert_eq!(seen["x-hookseal-reason"], "duplicate");

    // A Redis store nobody listens on: forwarded, unverified, with the reason.
    let dead = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = dead.local_addr().unwrap().port();
    drop(dead);
    let sc = Sidecar::start(
        up.addr,
        &format!(
            "[replay]\nstore = \"redis\"\nurl = \"redis://127.0.0.1:{port}\"\ncommand_timeout = \"300ms\""
        ),
        &sw_route("mode = \"observe\""),
    )
    .await;
    let h = sign_standard(WHSEC, "msg_obs_store", unix_now(), HBODY);
    assert_eq!(post(&sc.url("/hooks/sw"), &h, HBODY).await.status, 200);
    let seen = up.last().headers;
    assert_eq!(seen["x-hookseal-verified"], "false");
    assert_eq!(seen["x-hookseal-reason"], "replay_store_unavailable");
}

/// Finding 9: a sender's own `webhook-*` headers rode along untouched beside a verified
/// `svix-*` set. Only the family the verifier read reaches the app, on h1 and h2.
#[tokio::test]
async fn standard_webhooks_forwards_only_the_header_family_it_verified() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("")).await;
    for (i, h2) in [(0, false), (1, true)] {
        let id = format!("msg_family_{i}");
        let mut headers: Vec<(&str, String)> = sign_standard(WHSEC, &id, unix_now(), HBODY)
            .into_iter()
            .map(|(k, v)| {
                let svix = match k {
                    "webhook-id" => "svix-id",
                    "webhook-timestamp" => "svix-timestamp",
                    _ => "svix-signature",
                };
                (svix, v)
            })
            .collect();
        headers.push(("webhook-id", "msg_forged".into()));
        headers.push(("webhook-signature", "v1,Zm9yZ2Vk".into()));
        let status = if h2 {
            let len = HBODY.len().to_string();
            h2_request(sc.addr, &h2_fields("/hooks/sw", &len, &headers), HBODY).await
        } else {
            post(&sc.url("/hooks/sw"), &headers, HBODY)
                .await
                .status
                .as_u16()
        };
        assert_eq!(status, 200, "h2={h2}");
        let seen = up.last().headers;
        assert_eq!(seen["x-hookseal-verified"], "true");
        assert_eq!(seen["svix-id"], id.as_str());
        assert!(!seen.contains_key("webhook-id"), "h2={h2}: {seen:?}");
        assert!(!seen.contains_key("webhook-signature"), "h2={h2}: {seen:?}");
    }
}

/// Finding 9: proxy headers a client sent (path and method overrides, `X-Real-IP`,
/// `Forwarded`, `X-Forwarded-Port`/`-Prefix`) passed through unchanged. The default policy
/// strips or rewrites them, on h1 and h2; `[forwarding] keep` passes a named one on.
#[tokio::test]
async fn proxy_headers_follow_the_forwarding_policy() {
    let up = Upstream::start().await;
    let spoofed: Vec<(&str, String)> = [
        ("x-original-url", "/hooks/sw"),
        ("x-rewrite-url", "/hooks/sw"),
        ("x-http-method-override", "DELETE"),
        ("x-http-method", "DELETE"),
        ("x-method-override", "DELETE"),
        ("x-forwarded-port", "443"),
        ("x-forwarded-prefix", "/admin"),
        ("x-real-ip", "10.9.9.9"),
        ("forwarded", "for=10.9.9.9;host=admin.internal"),
    ]
    .into_iter()
    .map(|(k, v)| (k, v.to_owned()))
    .collect();
    let sc = Sidecar::start(up.addr, "", &sw_and_catch_all("")).await;
    for h2 in [false, true] {
        let status = if h2 {
            let len = HBODY.len().to_string();
            h2_request(sc.addr, &h2_fields("/other", &len, &spoofed), HBODY).await
        } else {
            post(&sc.url("/other"), &spoofed, HBODY)
                .await
                .status
                .as_u16()
        };
        assert_eq!(status, 200, "h2={h2}");
        let seen = up.last().headers;
        for (name, _) in &spoofed[..7] {
            assert!(!seen.contains_key(*name), "h2={h2}: {name} forwarded");
        }
        assert_eq!(seen["x-real-ip"], "127.0.0.1", "h2={h2}");
        assert_eq!(seen.get_all("forwarded").iter().count(), 1);
        let host = seen["x-forwarded-host"].to_str().unwrap().to_owned();
        assert_eq!(
            seen["forwarded"].to_str().unwrap(),
            format!("for=127.0.0.1;proto=http;host=\"{host}\""),
            "h2={h2}"
        );
    }

    let sc = Sidecar::start(
        up.addr,
        "[forwarding]\nkeep = [\"X-Original-URL\", \"Forwarded\"]",
        &sw_and_catch_all(""),
    )
    .await;
    assert_eq!(post(&sc.url("/other"), &spoofed, HBODY).await.status, 200);
    let seen = up.last().headers;
    assert_eq!(seen["x-original-url"], "/hooks/sw");
    assert_eq!(seen["forwarded"], "for=10.9.9.9;host=admin.internal");
    assert!(!seen.contains_key("x-rewrite-url"));
    assert_eq!(seen["x-real-ip"], "127.0.0.1");
}

/// Finding 9: a duplicate or empty `Host`, userinfo in the authority, and an h2 `host` that
/// disagrees with `:authority` were forwarded (the last two becoming the app's Host). Each is
/// now a 400 `bad_host`, never forwarded, on h1 and h2.
#[tokio::test]
async fn a_bad_host_is_refused_and_never_forwarded() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_and_catch_all("")).await;
    let h1 = |head: &str| {
        let mut raw = head.replace('\n', "\r\n").into_bytes();
        raw.extend_from_slice(b"{}");
        raw
    };
    for raw in [
        "POST /other HTTP/1.1\nhost: a.example\nhost: b.example\ncontent-length: 2\n\n",
        "POST /other HTTP/1.1\nhost:\ncontent-length: 2\n\n",
        "POST /other HTTP/1.1\nhost: user:pw@a.example\ncontent-length: 2\n\n",
        "POST http://user:pw@a.example/other HTTP/1.1\nhost: a.example\ncontent-length: 2\n\n",
        "POST http://a.example/other HTTP/1.1\nhost: b.example\ncontent-length: 2\n\n",
    ] {
        let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, h1(raw)).await;
        assert_eq!(r.status, 400, "{raw:?}");
        if !r.body.is_empty() {
            assert_eq!(r.error(), "bad_host", "{raw:?}");
        }
    }
    // Over h2: `host` against `:authority`, and userinfo in `:authority`.
    for (authority, host) in [
        ("hookseal.test", Some("evil.example")),
        ("user:pw@hookseal.test", None),
    ] {
        let mut fields = vec![
            (":method", "POST"),
            (":scheme", "http"),
            (":path", "/other"),
            (":authority", authority),
            ("content-length", "2"),
        ];
        if let Some(h) = host {
            fields.push(("host", h));
        }
        let status = h2_request(sc.addr, &fields, b"{}").await;
        assert_eq!(status, 400, "{authority} / {host:?}");
    }
    assert_eq!(up.count(), 0, "nothing forwarded");
    let m = sc.metrics().await;
    assert!(
        metric(
            &m,
            "hookseal_requests_total{reason=\"bad_host\",result=\"rejected\",route=\"app\"}"
        ) >= 5.0,
        "{m}"
    );

    // The same requests spelled well are forwarded.
    let ok = "POST http://a.example/other HTTP/1.1\nhost: A.example\ncontent-length: 2\n\n";
    let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, h1(ok)).await;
    assert_eq!(r.status, 200);
    assert_eq!(up.last().headers["host"], "A.example");
}

/// Finding 9: `Transfer-Encoding: gzip, chunked` was de-chunked and the gzip coding dropped,
/// so the app got compressed bytes it was not told about. Any coding but one `chunked` is now
/// a 501 `unsupported_transfer_coding`, never forwarded.
#[tokio::test]
async fn transfer_codings_other_than_chunked_are_refused() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_and_catch_all("")).await;
    for te in ["gzip, chunked", "chunked, chunked", "identity, chunked"] {
        let raw = format!(
            "POST /other HTTP/1.1\r\nhost: x\r\ntransfer-encoding: {te}\r\n\r\n2\r\n{{}}\r\n0\r\n\r\n"
        );
        let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, raw.into_bytes()).await;
        assert!(r.status == 501 || r.status == 400, "{te}: {}", r.status);
        if r.status == 501 {
            assert_eq!(r.error(), "unsupported_transfer_coding");
        }
    }
    assert_eq!(up.count(), 0, "nothing forwarded");
    let raw =
        "POST /other HTTP/1.1\r\nhost: x\r\ntransfer-encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n";
    let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, raw.as_bytes().to_vec()).await;
    assert_eq!(r.status, 200);
    assert_eq!(&up.last().body[..], b"{}");
}

/// Finding 9: `Connection: webhook-signature` (or the id, or the timestamp) had the verified
/// header removed after verification, so the app got a request without it, marked verified.
/// Hop-by-hop headers now go before verification: the check fails and nothing is forwarded.
#[tokio::test]
async fn a_connection_header_cannot_remove_what_was_verified() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &sw_route("")).await;
    for (i, named) in [
        "webhook-signature",
        "webhook-id",
        "Webhook-Timestamp, keep-alive",
    ]
    .into_iter()
    .enumerate()
    {
        let mut headers = sign_standard(WHSEC, &format!("msg_conn_{i}"), unix_now(), HBODY);
        headers.push(("connection", named.to_owned()));
        let raw = crate::netkit::request_bytes("POST", "/hooks/sw", &headers, HBODY);
        let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, raw).await;
        assert_eq!(r.status, 400, "{named}");
        assert_eq!(r.error(), "missing_signature", "{named}");
    }
    assert_eq!(up.count(), 0, "nothing forwarded");
    // A Connection header naming something else still works, and that header goes.
    let mut headers = sign_standard(WHSEC, "msg_conn_ok", unix_now(), HBODY);
    headers.push(("connection", "x-hop".to_owned()));
    headers.push(("x-hop", "1".to_owned()));
    let raw = crate::netkit::request_bytes("POST", "/hooks/sw", &headers, HBODY);
    let r = crate::netkit::exchange_from("127.0.0.1", sc.addr, raw).await;
    assert_eq!(r.status, 200);
    let seen = up.last().headers;
    assert!(!seen.contains_key("x-hop"));
    assert_eq!(seen["x-hookseal-verified"], "true");
    assert!(seen.contains_key("webhook-signature"));
}
