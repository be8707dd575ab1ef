//! Event types, the event filter and dedupe keys bound to the signed content (SPEC "Events and
//! dedupe keys"), through a real in-process hookseal in front of a recording upstream. The
//! Redis store's side is in `replay.rs` (real `redis-server`).

use bytes::Bytes;
use http::StatusCode;

use crate::support::*;

const GH_SECRET: &str = "gh-events-secret";

fn gh_route(extra: &str) -> String {
    format!(
        "[[route]]\nname = \"gh\"\npath = \"/hooks/gh\"\nscheme = \"github\"\n\
         secrets = [{{ id = \"new\", value = \"rotated-in\" }}, {{ id = \"cur\", value = \"{GH_SECRET}\" }}]\n{extra}\n"
    )
}

fn gh_headers(event: &str, delivery: &str, body: &[u8]) -> Vec<(&'static str, String)> {
    vec![
        ("x-hub-signature-256", sign_github(GH_SECRET, body)),
        ("x-github-event", event.to_owned()),
        ("x-github-delivery", delivery.to_owned()),
    ]
}

/// The value of the metric line that starts with `series`, or 0.
fn metric(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn a_filtered_type_never_reaches_the_app_and_is_counted() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &gh_route("events = [\"push\", \"release\"]")).await;
    let url = sc.url("/hooks/gh");
    let body = br#"{"ref":"refs/heads/main"}"#;

    // A listed type goes through, with its type for the app; a forged x-hookseal-event
    // from the sender is replaced.
    let mut h = gh_headers("push", "d-1", body);
    h.push(("x-hookseal-event", "release".to_owned()));
    let r = post(&url, &h, &body[..]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let seen = up.last();
    let events: Vec<_> = seen.headers.get_all("x-hookseal-event").iter().collect();
    assert_eq!(events, ["push"]);
    assert_eq!(seen.headers["x-hookseal-id"], "d-1");

    // Other types, and a request without one: 200 filtered, never forwarded.
    for (i, event) in ["issues", "ping"].iter().enumerate() {
        let r = post(&url, &gh_headers(event, &format!("f-{i}"), body), &body[..]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json(), serde_json::json!({"status": "filtered"}));
    }
    let h = vec![("x-hub-signature-256", sign_github(GH_SECRET, body))];
    let r = post(&url, &h, &body[..]).await;
    assert_eq!(r.json()["status"], "filtered");
    assert_eq!(up.count(), 1, "filtered requests reached the app");

    let m = sc.metrics().await;
    let c = |s: &str| metric(&m, s);
    assert_eq!(
        c("hookseal_events_total{event=\"push\",route=\"gh\"}"),
        1.0,
        "{m}"
    );
    assert_eq!(
        c("hookseal_events_total{event=\"_other\",route=\"gh\"}"),
        3.0
    );
    assert!(m.contains("hookseal_events_total{event=\"release\",route=\"gh\"} 0"));
    assert!(
        !m.contains("event=\"issues\""),
        "only listed types are labels"
    );
    assert_eq!(
        c("hookseal_requests_total{reason=\"ok\",result=\"filtered\",route=\"gh\"}"),
        3.0
    );
    assert_eq!(
        c("hookseal_requests_total{reason=\"ok\",result=\"forwarded\",route=\"gh\"}"),
        1.0
    );
}

#[tokio::test]
async fn an_allowed_type_without_a_valid_signature_is_rejected_as_before() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &gh_route("events = [\"push\"]")).await;
    let url = sc.url("/hooks/gh");
    let body = b"{}";
    let mut bad = gh_headers("push", "d-1", body);
    bad[0].1 = sign_github("not-the-secret", body);
    let r = post(&url, &bad, &body[..]).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
    // Unverified and of an unlisted type: still a rejection, never "filtered".
    bad[1].1 = "issues".into();
    let r = post(&url, &bad, &body[..]).await;
    assert_eq!(r.status, StatusCode::UNAUTHORIZED);
    let missing = vec![("x-github-event", "push".to_owned())];
    let r = post(&url, &missing, &body[..]).await;
    assert_eq!(
        (r.status, r.error()),
        (StatusCode::BAD_REQUEST, "missing_signature".into())
    );
    assert_eq!(up.count(), 0);
    let m = sc.metrics().await;
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"push\",route=\"gh\"}"),
        0.0
    );
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"_other\",route=\"gh\"}"),
        0.0
    );
}

/// A JSON pointer on a body that is not JSON, is huge, or nests deeply: no type (so
/// `_other`, filtered by a list), no panic, and the server keeps serving.
#[tokio::test]
async fn a_json_pointer_on_a_body_that_is_not_clean_json_fails_safe() {
    let up = Upstream::start().await;
    let routes = format!(
        "{}{}",
        sw_route("events = [\"invoice.paid\"]"),
        "[[route]]\nname = \"sw-all\"\npath = \"/hooks/sw-all\"\nscheme = \"standard-webhooks\"\n\
         secrets = [{ value = \"whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw\" }]\nevent = { json = \"/type\" }\n"
    );
    let sc = Sidecar::start(up.addr, "[limits]\nmax_body_bytes = \"4MiB\"\n", &routes).await;
    let deep = format!("{{\"x\":{}1{}}}", "[".repeat(1 << 20), "]".repeat(1 << 20));
    let huge = format!(
        "{{\"pad\":\"{}\",\"type\":\"invoice.paid\"}}",
        "a".repeat(3 << 20)
    );
    let cases: [(&str, Vec<u8>); 5] = [
        ("text", b"type=invoice.paid".to_vec()),
        ("truncated", br#"{"type":"invoice.paid""#.to_vec()),
        (
            "duplicate",
            br#"{"type":"invoice.paid","type":"x"}"#.to_vec(),
        ),
        ("deep", deep.into_bytes()),
        ("empty", Vec::new()),
    ];
    for (i, (what, body)) in cases.iter().enumerate() {
        let h = sign_standard(WHSEC, &format!("m-{i}"), unix_now(), body);
        let r = post(&sc.url("/hooks/sw"), &h, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{what}");
        assert_eq!(r.json()["status"], "filtered", "{what}");
        // Without a list: forwarded, without a type header.
        let h = sign_standard(WHSEC, &format!("a-{i}"), unix_now(), body);
        let r = post(&sc.url("/hooks/sw-all"), &h, body.clone()).await;
        assert_eq!(r.status, StatusCode::OK, "{what}");
        assert!(
            !up.last().headers.contains_key("x-hookseal-event"),
            "{what}"
        );
    }
    // A huge, clean body: the type after 3 MiB is found.
    let h = sign_standard(WHSEC, "big", unix_now(), huge.as_bytes());
    let r = post(&sc.url("/hooks/sw"), &h, huge.clone()).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(up.last().headers["x-hookseal-event"], "invoice.paid");
    assert_eq!(up.count(), cases.len() + 1);
    let m = sc.metrics().await;
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"_other\",route=\"sw\"}"),
        cases.len() as f64
    );
}

#[tokio::test]
async fn observe_mode_forwards_every_type() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "",
        &gh_route("events = [\"push\"]\nmode = \"observe\""),
    )
    .await;
    let body = b"{}";
    let r = post(
        &sc.url("/hooks/gh"),
        &gh_headers("issues", "o-1", body),
        &body[..],
    )
    .await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let seen = up.last();
    assert_eq!(seen.headers["x-hookseal-event"], "issues");
    assert_eq!(seen.headers["x-hookseal-verified"], "true");
    assert!(!seen.headers.contains_key("x-hookseal-reason"));
    // An unlisted type still gets the replay check: its repeat is marked a duplicate.
    let h = gh_headers("issues", "o-1", body);
    let r = post(&sc.url("/hooks/gh"), &h, &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let seen = up.last();
    assert_eq!(seen.headers["x-hookseal-reason"], "duplicate");
    assert_eq!(seen.headers["x-hookseal-verified"], "false");
    let m = sc.metrics().await;
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"_other\",route=\"gh\"}"),
        2.0
    );
    assert!(!m.contains("result=\"filtered\""), "{m}");
}

#[tokio::test]
async fn a_route_without_a_list_labels_the_types_it_sees_up_to_a_cap() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(
        up.addr,
        "",
        &gh_route("event = { header = \"X-GitHub-Event\" }"),
    )
    .await;
    let cap = hookseal::events::DISCOVERED_LABELS;
    for i in 0..cap + 3 {
        let body = format!("{{\"n\":{i}}}");
        let h = gh_headers(&format!("type-{i}"), &format!("l-{i}"), body.as_bytes());
        assert_eq!(
            post(&sc.url("/hooks/gh"), &h, body).await.status,
            StatusCode::OK
        );
    }
    assert_eq!(up.count(), cap + 3);
    let m = sc.metrics().await;
    let labels = m
        .lines()
        .filter(|l| l.starts_with("hookseal_events_total{") && l.contains("route=\"gh\""))
        .count();
    assert_eq!(labels, cap + 1, "{m}");
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"type-0\",route=\"gh\"}"),
        1.0
    );
    assert_eq!(
        metric(&m, "hookseal_events_total{event=\"_other\",route=\"gh\"}"),
        3.0
    );
}

/// A GitHub delivery replayed verbatim with a fresh `X-GitHub-Delivery` (not signed) is a
/// duplicate with `dedupe_key = "signature"`; with the default id key it went through.
#[tokio::test]
async fn a_signature_key_catches_a_replay_with_a_fresh_delivery_id() {
    let up = Upstream::start().await;
    let routes = format!(
        "{}{}",
        gh_route("dedupe_key = \"signature\""),
        gh_route("")
            .replace("\"gh\"", "\"gh-id\"")
            .replace("/hooks/gh", "/hooks/gh-id")
    );
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let body = br#"{"action":"opened","number":7}"#;
    let url = sc.url("/hooks/gh");
    let r = post(&url, &gh_headers("issues", "d-1", body), &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(
        up.last().headers["x-hookseal-id"],
        "d-1",
        "the id header stays the message id"
    );
    for replay_id in ["d-2", "d-3"] {
        let r = post(&url, &gh_headers("issues", replay_id, body), &body[..]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["status"], "duplicate");
        assert_eq!(r.headers["x-hookseal-duplicate"], "true");
    }
    // Without the id header at all: still the same delivery.
    let h = vec![("x-hub-signature-256", sign_github(GH_SECRET, body))];
    assert_eq!(
        post(&url, &h, &body[..]).await.json()["status"],
        "duplicate"
    );
    assert_eq!(up.count(), 1);
    // Another body is another delivery.
    let other = br#"{"action":"closed","number":7}"#;
    let r = post(&url, &gh_headers("issues", "d-4", other), &other[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(up.count(), 2);

    // The residual risk this closes: the id key lets the same replay through.
    let url = sc.url("/hooks/gh-id");
    for id in ["d-1", "d-2"] {
        let r = post(&url, &gh_headers("issues", id, body), &body[..]).await;
        assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    }
    assert_eq!(up.count(), 4);
}

/// `{ json = "/id" }`: the id inside the signed body; a changed id header does not make a
/// new delivery, a new body id does.
#[tokio::test]
async fn a_json_key_dedupes_on_the_id_in_the_signed_body() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &gh_route("dedupe_key = { json = \"/id\" }")).await;
    let url = sc.url("/hooks/gh");
    let first = br#"{"id":"evt_1","attempt":1}"#;
    let r = post(&url, &gh_headers("push", "h-1", first), &first[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let r = post(&url, &gh_headers("push", "h-2", first), &first[..]).await;
    assert_eq!(r.json()["status"], "duplicate");
    // The sender's own retry, re-signed with another body but the same event id.
    let retry = br#"{"id":"evt_1","attempt":2}"#;
    let r = post(&url, &gh_headers("push", "h-3", retry), &retry[..]).await;
    assert_eq!(r.json()["status"], "duplicate");
    let next = br#"{"id":"evt_2","attempt":1}"#;
    let r = post(&url, &gh_headers("push", "h-4", next), &next[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(up.count(), 2);
}

/// A delivery the app did not take (5xx) frees its key: the sender's retry, under any id
/// header, is forwarded again; once taken, it is a duplicate.
#[tokio::test]
async fn a_failed_delivery_frees_its_signature_key() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &gh_route("dedupe_key = \"signature\"")).await;
    let url = sc.url("/hooks/gh");
    let body = br#"{"zen":"Keep it logically awesome."}"#;
    up.set(|b| b.status = StatusCode::INTERNAL_SERVER_ERROR);
    let r = post(&url, &gh_headers("ping", "p-1", body), &body[..]).await;
    assert_eq!(r.status, StatusCode::INTERNAL_SERVER_ERROR);
    up.set(|b| b.status = StatusCode::OK);
    let r = post(&url, &gh_headers("ping", "p-2", body), &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let r = post(&url, &gh_headers("ping", "p-3", body), &body[..]).await;
    assert_eq!(r.json()["status"], "duplicate");
    assert_eq!(up.count(), 2);
}

/// `hookseal check` refuses event and dedupe settings that cannot mean anything.
#[test]
fn check_refuses_nonsense_event_and_dedupe_settings() {
    let base = "[upstream]\nurl = \"http://127.0.0.1:1\"\n";
    let route = |scheme: &str, secret: &str, extra: &str| {
        format!(
            "{base}[[route]]\nname = \"r\"\npath = \"/r\"\nscheme = \"{scheme}\"\n{secret}\n{extra}\n"
        )
    };
    let token = "secrets = [{ value = \"t0ken\" }]";
    let sec = "secrets = [{ value = \"s3cret\" }]";
    let cases = [
        (
            route("gitlab", token, "dedupe_key = \"signature\""),
            "constant token",
        ),
        (
            route("none", "", "dedupe_key = \"signature\""),
            "verifying scheme",
        ),
        (route("none", "", "events = [\"a\"]"), "verifying scheme"),
        (
            route("hotglue", sec, "dedupe_key = \"id\""),
            "no message id",
        ),
        (
            route(
                "twilio",
                sec,
                "public_url = \"https://x.example/r\"\nevents = [\"a\"]",
            ),
            "names no event type",
        ),
        (
            route("github", sec, "dedupe = false\ndedupe_key = \"signature\""),
            "does not dedupe",
        ),
        (
            route("github", sec, "dedupe = false\ndedupe_window = \"7d\""),
            "only for a route that dedupes",
        ),
        (route("github", sec, "events = []"), "1 to 64"),
        (route("github", sec, "events = [\"_other\"]"), "_other"),
        (route("github", sec, "events = [\"a\", \"a\"]"), "distinct"),
        (
            route("github", sec, "event = { json = \"type\" }"),
            "JSON pointer",
        ),
        (
            route("github", sec, "event = { header = \"a b\" }"),
            "header name",
        ),
        (
            route("github", sec, "event = { header = \"A\", json = \"/a\" }"),
            "exactly one",
        ),
        (
            route("github", sec, "dedupe_key = \"body\""),
            "\"signature\"",
        ),
        (
            route("github", sec, "dedupe_window = \"0s\""),
            "at least 1s",
        ),
    ];
    for (text, want) in cases {
        let err = hookseal::config::Config::parse(std::path::Path::new("h.toml"), &text, &|_| None)
            .expect_err(&text)
            .to_string();
        assert!(err.contains(want), "{text}\n--\n{err}");
    }
    // And what is fine: hotglue (no id) dedupes by default once keyed on its signature.
    let ok = route(
        "hotglue",
        sec,
        "dedupe_key = \"signature\"\ndedupe_window = \"30d\"\nevents = [\"JOB_COMPLETED\"]",
    );
    let c =
        hookseal::config::Config::parse(std::path::Path::new("h.toml"), &ok, &|_| None).unwrap();
    let r = &c.routes[0];
    assert!(r.dedupe);
    assert_eq!(
        r.events.dedupe_window,
        Some(std::time::Duration::from_secs(30 * 86_400))
    );
    assert_eq!(r.events.dedupe_key, hookseal::events::DedupeKey::Signature);
}

/// `hookseal check` shows a route's event and dedupe settings (and nothing for a route
/// without them).
#[test]
fn check_prints_the_event_and_dedupe_settings() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("hookseal.toml");
    std::fs::write(
        &path,
        "[upstream]\nurl = \"http://127.0.0.1:1\"\n\
         [[route]]\nname = \"gh\"\npath = \"/gh\"\nscheme = \"github\"\nsecrets = [{ value = \"s\" }]\n\
         events = [\"push\", \"ping\"]\ndedupe_key = \"signature\"\ndedupe_window = \"30d\"\n\
         [[route]]\nname = \"plain\"\npath = \"/p\"\nscheme = \"github\"\nsecrets = [{ value = \"s\" }]\n",
    )
    .unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
        .args(["check", "--config"])
        .arg(&path)
        .env_remove("HOOKSEAL_CONFIG")
        .output()
        .unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(
            "mode=enforce delivery=direct event=header:x-github-event events=[push,ping] dedupe_key=signature dedupe_window=720h"
        ),
        "{stdout}"
    );
    let plain = stdout.lines().find(|l| l.contains("route plain")).unwrap();
    assert!(plain.ends_with("mode=enforce delivery=direct"), "{plain}");
}

/// A preset with the defaults set here: Bitbucket (HMAC of the raw body, unsigned
/// `X-Request-UUID`). Its event type comes from `X-Event-Key` without any `event` setting, and
/// with `dedupe_key = "signature"` a verbatim replay under a fresh request id is a duplicate.
#[tokio::test]
async fn a_preset_keys_on_its_signature_and_reads_its_default_event() {
    const SECRET: &str = "bb-events-secret";
    let up = Upstream::start().await;
    let routes = format!(
        "[[route]]\nname = \"bb\"\npath = \"/hooks/bb\"\nscheme = \"bitbucket\"\n\
         secrets = [{{ id = \"cur\", value = \"{SECRET}\" }}]\ndedupe_key = \"signature\"\nevents = [\"repo:push\"]\n"
    );
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let url = sc.url("/hooks/bb");
    let h = |event: &str, uuid: &str, body: &[u8]| {
        vec![
            ("x-hub-signature", sign_github(SECRET, body)),
            ("x-event-key", event.to_owned()),
            ("x-request-uuid", uuid.to_owned()),
        ]
    };
    let body = br#"{"push":{"changes":[]}}"#;
    let r = post(&url, &h("repo:push", "u-1", body), &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    let got = up.last();
    assert_eq!(got.headers["x-hookseal-event"], "repo:push");
    assert_eq!(got.headers["x-hookseal-id"], "u-1");
    for replay in ["u-2", "u-3"] {
        let r = post(&url, &h("repo:push", replay, body), &body[..]).await;
        assert_eq!(r.status, StatusCode::OK);
        assert_eq!(r.json()["status"], "duplicate");
    }
    assert_eq!(up.count(), 1);
    // Another type from the default header is filtered, after verification.
    let other = br#"{"pullrequest":{}}"#;
    let r = post(&url, &h("pullrequest:created", "u-4", other), &other[..]).await;
    assert_eq!(r.json()["status"], "filtered");
    assert_eq!(up.count(), 1);
}

/// A filtered delivery is settled by hookseal's answer: replayed with an allowed (unsigned)
/// event type and the same id, it is a duplicate, never a first delivery (SECURITY.md row 50).
/// Before the fix a filtered request claimed no key, and this replay reached the app.
#[tokio::test]
async fn a_filtered_delivery_replayed_with_an_allowed_type_is_a_duplicate() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &gh_route("events = [\"push\"]")).await;
    let url = sc.url("/hooks/gh");
    let body = br#"{"action":"opened","number":7}"#;
    let r = post(&url, &gh_headers("issues", "d-1", body), &body[..]).await;
    assert_eq!(r.json()["status"], "filtered");
    let r = post(&url, &gh_headers("push", "d-1", body), &body[..]).await;
    assert_eq!(r.status, StatusCode::OK);
    assert_eq!(r.json()["status"], "duplicate");
    // Its repeat with the filtered type is still filtered; a new delivery of an allowed type
    // goes through.
    let r = post(&url, &gh_headers("issues", "d-1", body), &body[..]).await;
    assert_eq!(r.json()["status"], "filtered");
    let r = post(&url, &gh_headers("push", "d-2", body), &body[..]).await;
    assert_eq!(r.body, Bytes::from_static(b"upstream-ok"));
    assert_eq!(
        up.count(),
        1,
        "only the new allowed delivery reached the app"
    );
}
