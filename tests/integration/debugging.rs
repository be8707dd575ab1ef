//! The record of rejections (`/debug/rejections`, `hookseal rejections`) and OpenTelemetry
//! traces, over real sockets: caps, redaction, the trace context the app receives, the spans
//! an OTLP/HTTP receiver gets, and a collector that is down.

use std::time::Duration;

use http::{Method, StatusCode};
use sha2::{Digest, Sha256};

use crate::netkit::eventually;
use crate::support::*;

const SECRET: &str = "gh-Secret-Walnut-5531";
const MAC_SECRET: &str = "mac-Secret-Heron-2207";
const BODY: &[u8] = b"{\"card\":\"body-Marker-Fig-9034\"}";

fn routes() -> String {
    format!(
        "[[route]]\nname = \"gh\"\npath = \"/hooks/gh\"\nscheme = \"github\"\n\
         secrets = [{{ value = \"{SECRET}\" }}]\n\
         [[route]]\nname = \"mac\"\npath = \"/hooks/mac\"\nscheme = \"hmac\"\n\
         secrets = [{{ value = \"{MAC_SECRET}\" }}]\n\
         [route.hmac]\nheader = \"X-Delivery-Check\"\nalgorithm = \"sha256\"\nencoding = \"hex\"\n"
    )
}

fn hex_sha256(b: &[u8]) -> String {
    Sha256::digest(b)
        .iter()
        .map(|x| format!("{x:02x}"))
        .collect()
}

async fn rejections(sc: &Sidecar, query: &str) -> Vec<serde_json::Value> {
    let r = send(
        Method::GET,
        &format!("http://{}/debug/rejections{query}", sc.admin),
        &[],
        bytes::Bytes::new(),
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    r.json().as_array().unwrap().clone()
}

#[tokio::test]
async fn rejections_are_kept_bounded_redacted_and_newest_first() {
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "[debug]\nrejections = 40\n", &routes()).await;
    let wrong = sign_github("not-the-secret", BODY);
    let good_mac = hex_hmac_sha256_text(MAC_SECRET, BODY);
    let n = 150;
    for i in 0..n {
        let id = format!("rid-{i}");
        let r = match i % 3 {
            0 => {
                post(
                    &sc.url("/hooks/gh"),
                    &[
                        ("x-hub-signature-256", wrong.clone()),
                        ("x-request-id", id),
                        ("authorization", format!("Bearer {SECRET}")),
                        ("x-api-key", SECRET.into()),
                        ("cookie", format!("s={SECRET}")),
                        ("x-github-delivery", format!("d-{i}")),
                    ],
                    BODY,
                )
                .await
            }
            // The right MAC on the wrong body: its value is a signature all the same.
            1 => {
                post(
                    &sc.url("/hooks/mac"),
                    &[("x-delivery-check", good_mac.clone()), ("x-request-id", id)],
                    &b"other"[..],
                )
                .await
            }
            _ => post(&sc.url("/nowhere"), &[("x-request-id", id)], BODY).await,
        };
        assert!(r.status.is_client_error(), "{i}: {}", r.status);
    }
    assert_eq!(up.count(), 0);

    let all = rejections(&sc, "").await;
    assert_eq!(all.len(), 40, "the entry cap");
    assert_eq!(
        all[0]["request_id"],
        format!("rid-{}", n - 1),
        "newest first"
    );
    let ids: Vec<u32> = all
        .iter()
        .map(|e| e["request_id"].as_str().unwrap()[4..].parse().unwrap())
        .collect();
    assert!(ids.windows(2).all(|w| w[0] > w[1]), "newest first: {ids:?}");
    // Three routes rejected in turn share the cap: the latest dozen or so of each.
    assert!(ids.iter().all(|i| *i >= n - 43), "{ids:?}");

    let text = serde_json::to_string(&all).unwrap();
    for needle in [
        SECRET,
        MAC_SECRET,
        wrong.as_str(),
        &wrong[7..],
        good_mac.as_str(),
        "body-Marker-Fig-9034",
    ] {
        assert!(!text.contains(needle), "{needle} in /debug/rejections");
    }

    let gh = rejections(&sc, "?route=gh&reason=bad_signature").await;
    assert!(!gh.is_empty());
    for e in &gh {
        assert_eq!(e["route"], "gh");
        assert_eq!(e["reason"], "bad_signature");
        assert_eq!(e["status"], 401);
        assert!(e["peer"].as_str().unwrap().starts_with("127.0.0.1:"));
        let h = &e["headers"];
        for name in [
            "x-hub-signature-256",
            "authorization",
            "x-api-key",
            "cookie",
        ] {
            assert_eq!(h[name], "<redacted>", "{name}");
        }
        assert!(h["x-github-delivery"].as_str().unwrap().starts_with("d-"));
        assert_eq!(e["body_bytes"], BODY.len());
        assert_eq!(e["body_sha256"], hex_sha256(BODY));
    }
    let mac = rejections(&sc, "?route=mac").await;
    assert!(!mac.is_empty());
    for e in &mac {
        assert_eq!(e["reason"], "bad_signature");
        assert_eq!(e["headers"]["x-delivery-check"], "<redacted>");
        assert_eq!(e["body_sha256"], hex_sha256(b"other"));
    }
    let unmatched = rejections(&sc, "?route=_unmatched&limit=2").await;
    assert_eq!(unmatched.len(), 2);
    assert_eq!(unmatched[0]["reason"], "no_route");
    assert!(unmatched[0]["body_bytes"].is_null(), "not read");

    // The CLI over the same endpoint: text and JSON, filtered, no secret either.
    let admin = format!("http://{}", sc.admin);
    let out = tokio::task::spawn_blocking(move || {
        let run = |extra: &[&str]| {
            let o = std::process::Command::new(env!("CARGO_BIN_EXE_hookseal"))
                .args([
                    "rejections",
                    "--admin",
                    &admin,
                    "--route",
                    "gh",
                    "--limit",
                    "2",
                ])
                .args(extra)
                .output()
                .unwrap();
            assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
            String::from_utf8(o.stdout).unwrap()
        };
        (run(&[]), run(&["--json"]))
    })
    .await
    .unwrap();
    let (plain, json) = out;
    assert_eq!(
        plain.matches("401 bad_signature  route=gh").count(),
        2,
        "{plain}"
    );
    assert!(plain.contains("x-hub-signature-256: <redacted>"), "{plain}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v.as_array().unwrap().len(), 2);
    for t in [&plain, &json] {
        assert!(!t.contains(SECRET) && !t.contains(&wrong[7..]), "{t}");
    }
}

/// Lowercase hex HMAC-SHA256 of `body`.
fn hex_hmac_sha256_text(secret: &str, body: &[u8]) -> String {
    sign_github(secret, body)
        .trim_start_matches("sha256=")
        .to_owned()
}

#[tokio::test]
async fn spans_continue_the_incoming_trace_and_the_app_gets_the_same_trace_id() {
    let app = Upstream::start().await;
    let collector = Upstream::start().await;
    let extra = format!(
        "[tracing]\notlp_endpoint = \"http://{}\"\nservice_name = \"hs-test\"\n",
        collector.addr
    );
    let sc = Sidecar::start(app.addr, &extra, &routes()).await;
    let trace = "4bf92f3577b34da6a3ce929d0e0e4736";
    let parent = "00f067aa0ba902b7";
    let good = sign_github(SECRET, BODY);
    let r = post(
        &sc.url("/hooks/gh"),
        &[
            ("x-hub-signature-256", good.clone()),
            ("x-github-delivery", "d-trace-1".into()),
            ("traceparent", format!("00-{trace}-{parent}-01")),
            ("tracestate", "congo=t61rcWkgMzE".into()),
            ("authorization", format!("Bearer {SECRET}")),
        ],
        BODY,
    )
    .await;
    assert_eq!(r.status, StatusCode::OK);
    // A rejected one, without a trace context: a new trace.
    let bad = post(
        &sc.url("/hooks/gh"),
        &[("x-hub-signature-256", sign_github("nope", BODY))],
        BODY,
    )
    .await;
    assert_eq!(bad.error(), "bad_signature");

    let seen = app.last();
    let tp = seen.headers["traceparent"].to_str().unwrap().to_owned();
    let parts: Vec<&str> = tp.split('-').collect();
    assert_eq!(parts.len(), 4, "{tp}");
    assert_eq!((parts[0], parts[1], parts[3]), ("00", trace, "01"), "{tp}");
    assert_ne!(parts[2], parent, "hookseal's span is the app's parent");
    assert_eq!(seen.headers["tracestate"], "congo=t61rcWkgMzE");
    let app_parent = parts[2].to_owned();

    // An invalid traceparent starts a new trace (its tracestate goes with it); a parent that is
    // not sampled is passed on as it came, and nothing is recorded for it.
    let forwarded = |tp: &'static str, id: &'static str| {
        let sc_url = sc.url("/hooks/gh");
        let sig = good.clone();
        async move {
            let r = post(
                &sc_url,
                &[
                    ("x-hub-signature-256", sig),
                    ("x-github-delivery", id.into()),
                    ("traceparent", tp.into()),
                    ("tracestate", "congo=t61rcWkgMzE".into()),
                ],
                BODY,
            )
            .await;
            assert_eq!(r.status, StatusCode::OK);
        }
    };
    forwarded("00-zzzz-00f067aa0ba902b7-01", "d-trace-2").await;
    let h = app.last().headers;
    let tp = h["traceparent"].to_str().unwrap();
    assert!(
        tp.starts_with("00-") && tp.ends_with("-01") && tp.len() == 55,
        "{tp}"
    );
    assert!(
        !tp.contains(trace) && !h.contains_key("tracestate"),
        "{h:?}"
    );
    let unsampled = "00-11111111111111111111111111111111-2222222222222222-00";
    forwarded(unsampled, "d-trace-3").await;
    let h = app.last().headers;
    assert_eq!(h["traceparent"], unsampled);
    assert_eq!(h["tracestate"], "congo=t61rcWkgMzE");

    // The collector gets receive, verify, replay_store and forward of the first request, and
    // receive and verify of the second.
    let spans = || -> Vec<serde_json::Value> {
        let mut out = Vec::new();
        for rec in collector.seen.lock().unwrap().iter() {
            assert_eq!(rec.uri, "/v1/traces");
            assert_eq!(rec.headers["content-type"], "application/json");
            let v: serde_json::Value = serde_json::from_slice(&rec.body).unwrap();
            let rs = &v["resourceSpans"][0];
            assert_eq!(
                rs["resource"]["attributes"][0]["value"]["stringValue"],
                "hs-test"
            );
            out.extend(
                rs["scopeSpans"][0]["spans"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .cloned(),
            );
        }
        out
    };
    assert!(
        eventually(Duration::from_secs(20), || async { spans().len() >= 6 }).await,
        "spans: {:?}",
        spans()
    );
    let all = spans();
    let named = |name: &str, trace_id: &str| {
        all.iter()
            .find(|s| s["name"] == name && s["traceId"] == trace_id)
            .unwrap_or_else(|| panic!("no {name} span in {trace_id}: {all:?}"))
            .clone()
    };
    let receive = named("receive", trace);
    assert_eq!(receive["parentSpanId"], parent);
    assert_eq!(receive["kind"], 2);
    assert_eq!(receive["traceState"], "congo=t61rcWkgMzE");
    let forward = named("forward", trace);
    assert_eq!(forward["spanId"], app_parent.as_str());
    assert_eq!(forward["parentSpanId"], receive["spanId"]);
    for name in ["verify", "replay_store"] {
        assert_eq!(
            named(name, trace)["parentSpanId"],
            receive["spanId"],
            "{name}"
        );
    }
    let attr = |s: &serde_json::Value, key: &str| {
        s["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["key"] == key)
            .map(|a| a["value"].clone())
    };
    assert_eq!(
        attr(&receive, "hookseal.route").unwrap()["stringValue"],
        "gh"
    );
    assert_eq!(
        attr(&receive, "hookseal.scheme").unwrap()["stringValue"],
        "github"
    );
    assert_eq!(
        attr(&receive, "hookseal.reason").unwrap()["stringValue"],
        "ok"
    );
    assert_eq!(
        attr(&receive, "http.response.status_code").unwrap()["intValue"],
        "200"
    );
    let rejected = all
        .iter()
        .find(|s| {
            s["name"] == "receive"
                && s["traceId"] != trace
                && attr(s, "hookseal.reason").is_some_and(|r| r["stringValue"] == "bad_signature")
        })
        .unwrap_or_else(|| panic!("no rejected receive span: {all:?}"));
    // No parent: absent, or (as `opentelemetry-proto` encodes empty bytes) "".
    assert!(
        rejected.get("parentSpanId").is_none_or(|p| p == ""),
        "a new trace: {rejected}"
    );
    assert_eq!(rejected["status"]["code"], 2);

    // No secret, signature, header value or body in anything exported.
    let exported: String = collector
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        !exported.contains("1111111111111111"),
        "an unsampled trace is not recorded"
    );
    for needle in [
        SECRET,
        &good[7..],
        "body-Marker-Fig-9034",
        "d-trace-1",
        "/hooks/gh",
    ] {
        assert!(!exported.contains(needle), "{needle} exported");
    }
    let m = sc.metrics().await;
    assert!(m.contains("hookseal_trace_spans_exported_total "), "{m}");
    assert!(
        !m.contains("hookseal_trace_spans_exported_total 0\n"),
        "{m}"
    );
}

#[tokio::test]
async fn a_collector_that_is_down_loses_spans_not_requests() {
    let app = Upstream::start().await;
    // An address nothing listens on.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let down = closed.local_addr().unwrap();
    drop(closed);
    let extra = format!("[tracing]\notlp_endpoint = \"http://{down}\"\n");
    let sc = Sidecar::start(app.addr, &extra, &routes()).await;
    for i in 0..20 {
        let r = post(
            &sc.url("/hooks/gh"),
            &[
                ("x-hub-signature-256", sign_github(SECRET, BODY)),
                ("x-github-delivery", format!("d-down-{i}")),
            ],
            BODY,
        )
        .await;
        assert_eq!(r.status, StatusCode::OK, "{i}");
        assert_eq!(r.body, "upstream-ok");
    }
    assert_eq!(app.count(), 20);
    let dropped = || async {
        let m = sc.metrics().await;
        m.lines()
            .find_map(|l| {
                l.strip_prefix("hookseal_trace_spans_dropped_total{reason=\"export_failed\"} ")
            })
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    assert!(
        eventually(Duration::from_secs(20), || async {
            dropped().await >= 80.0
        })
        .await,
        "4 spans per request dropped: {}",
        dropped().await
    );
}

#[tokio::test]
async fn spans_queued_at_shutdown_are_sent_before_the_exit() {
    let app = Upstream::start().await;
    let collector = Upstream::start().await;
    let extra = format!("[tracing]\notlp_endpoint = \"http://{}\"\n", collector.addr);
    let mut sc = Sidecar::start(app.addr, &extra, &routes()).await;
    let r = post(&sc.url("/nowhere"), &[], BODY).await;
    assert_eq!(r.status, StatusCode::NOT_FOUND);
    // Shut down at once, well inside the one-second export interval: the spans are sent by the
    // final flush, before `run` returns.
    sc.shutdown().await;
    let bodies: Vec<String> = collector
        .seen
        .lock()
        .unwrap()
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect();
    assert!(
        bodies.iter().any(|b| b.contains("\"no_route\"")),
        "{bodies:?}"
    );
}
