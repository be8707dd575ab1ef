//! Tests of the `sns` engine: v1 and v2 signatures of every message type, tampering, the topic
//! list and certificate URL checked before any fetch, and a certificate server that is down.

use std::time::{Duration, Instant};

use base64::Engine as _;
use ring::rand::SystemRandom;
use ring::signature as sig;
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use sha2::Digest as _;

use super::*;
use crate::fetch::testkit::{Canned, TestCa, TestServer, RSA_KEY_PEM};

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:orders";
const CERT_PATH: &str = "/SimpleNotificationService-0123456789abcdef.pem";
/// The SubscribeURL of the signed confirmations (the engine fetches nothing from it).
const SUB: &str = "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=arn:aws:sns:eu-west-1:123456789012:orders&Token=2336412f37fb687f";
/// 2026-12-01: inside the test certificates' default validity.
const NOW: i64 = 1_796_083_200;

fn rsa() -> sig::RsaKeyPair {
    let der =
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(RSA_KEY_PEM.as_bytes()).unwrap();
    sig::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
}

/// Signs `msg` (a JSON object without Signature) as SNS does, with SignatureVersion `v`.
fn sign(mut msg: Value, v: u8) -> Value {
    msg["SignatureVersion"] = json!(v.to_string());
    msg["Signature"] = json!("");
    let canonical = SnsMessage::parse(msg.to_string().as_bytes())
        .unwrap()
        .canonical();
    msg["Signature"] = json!(if v == 1 {
        sha1_signature(&canonical)
    } else {
        sha256_signature(&canonical)
    });
    msg
}

fn sha256_signature(canonical: &[u8]) -> String {
    let key = rsa();
    let mut out = vec![0; key.public().modulus_len()];
    key.sign(
        &sig::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        canonical,
        &mut out,
    )
    .unwrap();
    base64::engine::general_purpose::STANDARD.encode(out)
}

/// ring signs no SHA-1: the v1 signatures of the canonical strings these tests sign were made
/// once with `openssl dgst -sha1 -sign src/fetch/testdata/rsa2048.pem` (PKCS#1 v1.5 is
/// deterministic), keyed by the canonical string's hex SHA-256.
fn sha1_signature(canonical: &[u8]) -> String {
    let table: serde_json::Map<String, Value> =
        serde_json::from_str(include_str!("testdata/v1_signatures.json")).unwrap();
    let key = crate::verify::hex_lower(&sha2::Sha256::digest(canonical));
    table
        .get(&key)
        .and_then(Value::as_str)
        .unwrap_or_else(|| {
            panic!(
                "no v1 signature for {:?}",
                String::from_utf8_lossy(canonical)
            )
        })
        .to_owned()
}

fn notification(cert_url: &str, subject: Option<&str>) -> Value {
    let mut m = json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": TOPIC,
        "Message": "{\"order\":42}\nline two",
        "Timestamp": "2026-12-01T00:00:00.000Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://localhost/?Action=Unsubscribe"
    });
    if let Some(s) = subject {
        m["Subject"] = json!(s);
    }
    m
}

fn confirmation(kind: &str, cert_url: &str, subscribe_url: &str) -> Value {
    json!({
        "Type": kind,
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37fb687f5d51e6e241d09c805a5a57b30d712f794cc5f6a988666d92768dd60a747ba6f3beb71854e285d6ad02428b09ceece29417f1f02d609c582afbacc99c583a916b9981dd2728f4ae6fdb82efd087cc3b7849e05798d2d2785c03b0879594eeac82c01f235d0e717736",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic arn:aws:sns:eu-west-1:123456789012:orders.",
        "SubscribeURL": subscribe_url,
        "Timestamp": "2026-12-01T00:00:00.000Z",
        "SigningCertURL": cert_url
    })
}

struct Env {
    ca: TestCa,
    srv: TestServer,
    verifier: SnsVerifier,
}

async fn env() -> Env {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set(CERT_PATH, Canned::ok(ca.rsa_leaf_pem(&["localhost"], None)));
    let verifier = SnsVerifier::new(options(&srv), ca.fetcher()).unwrap();
    Env { ca, srv, verifier }
}

fn options(srv: &TestServer) -> SnsOptions {
    let authority = srv.url("").trim_start_matches("https://").to_owned();
    SnsOptions {
        cert_host: HostPattern::parse(&authority).unwrap(),
        cert_names: vec![HostPattern::parse("localhost").unwrap()],
        ..SnsOptions::new(vec![TOPIC.to_owned()])
    }
}

impl Env {
    async fn check(&self, msg: &Value) -> Result<SnsVerified, SnsError> {
        self.verifier
            .verify(msg.to_string().as_bytes(), NOW, Instant::now())
            .await
    }
}

#[tokio::test]
async fn v1_and_v2_messages_of_every_type_verify() {
    let e = env().await;
    let cert = e.srv.url(CERT_PATH);
    let messages = [
        notification(&cert, None),
        notification(&cert, Some("Order placed")),
        confirmation("SubscriptionConfirmation", &cert, SUB),
        confirmation("UnsubscribeConfirmation", &cert, SUB),
    ];
    for m in &messages {
        for v in [1, 2] {
            let got = e.check(&sign(m.clone(), v)).await.unwrap();
            assert_eq!(got.id(), m["MessageId"].as_str().unwrap());
            assert_eq!(got.message.signature_version, v);
        }
    }
    // fetched once, then cached
    assert_eq!(e.srv.hits(CERT_PATH), 1);
}

#[tokio::test]
async fn a_tampered_field_fails() {
    let e = env().await;
    let cert = e.srv.url(CERT_PATH);
    for v in [1, 2] {
        let n = sign(notification(&cert, Some("s")), v);
        for (field, value) in [
            ("Message", json!("{\"order\":43}\nline two")),
            ("MessageId", json!("other")),
            ("Subject", json!("S")),
            ("Timestamp", json!("2026-12-01T00:00:01.000Z")),
        ] {
            let mut t = n.clone();
            t[field] = value;
            assert_eq!(e.check(&t).await, Err(SnsError::BadSignature), "{field}");
        }
        // dropping the Subject changes the canonical string too
        let mut t = n.clone();
        t.as_object_mut().unwrap().remove("Subject");
        assert_eq!(e.check(&t).await, Err(SnsError::BadSignature));
        // a v1 signature presented as v2 (and back)
        let mut t = n.clone();
        t["SignatureVersion"] = json!(if v == 1 { "2" } else { "1" });
        assert_eq!(e.check(&t).await, Err(SnsError::BadSignature));

        let c = sign(confirmation("SubscriptionConfirmation", &cert, SUB), v);
        for (field, value) in [
            ("Token", json!("00")),
            ("SubscribeURL", json!(e.srv.url("/?evil"))),
            ("Type", json!("UnsubscribeConfirmation")),
        ] {
            let mut t = c.clone();
            t[field] = value;
            assert_eq!(e.check(&t).await, Err(SnsError::BadSignature), "{field}");
        }
    }
    // unsigned fields (UnsubscribeURL) are not part of the signature
    let mut t = sign(notification(&cert, None), 2);
    t["UnsubscribeURL"] = json!("https://elsewhere/");
    e.check(&t).await.unwrap();
}

#[tokio::test]
async fn a_foreign_topic_is_refused_before_any_fetch() {
    let e = env().await;
    let mut m = notification(&e.srv.url(CERT_PATH), None);
    m["TopicArn"] = json!("arn:aws:sns:eu-west-1:999999999999:orders");
    let m = sign(m, 2);
    assert_eq!(e.check(&m).await, Err(SnsError::TopicNotAllowed));
    assert_eq!(SnsError::TopicNotAllowed.status(), 403);
    assert_eq!(e.srv.connections(), 0);
}

#[tokio::test]
async fn a_bad_cert_url_is_refused_before_any_fetch() {
    let e = env().await;
    let port = e.srv.url("").rsplit(':').next().unwrap().to_owned();
    for url in [
        format!("http://localhost:{port}{CERT_PATH}"),
        format!("https://127.0.0.1:{port}{CERT_PATH}"),
        format!("https://localhost{CERT_PATH}"),
        format!("https://localhost:{port}.evil.example{CERT_PATH}"),
        format!("https://user@localhost:{port}{CERT_PATH}"),
        format!("https://sns.eu-west-1.amazonaws.com{CERT_PATH}"),
        "not a url".to_owned(),
    ] {
        let m = sign(notification(&url, None), 1);
        assert_eq!(e.check(&m).await, Err(SnsError::BadCertUrl), "{url}");
    }
    assert_eq!(SnsError::BadCertUrl.status(), 403);
    assert_eq!(e.srv.connections(), 0);
}

#[test]
fn cert_url_host_tricks_are_refused() {
    // The second phase's review: spellings that some URL parsers read as the allowed host.
    let expected = "sns.eu-west-1.amazonaws.com";
    for bad in [
        "https://sns.eu-west-1.amazonaws.com./x.pem",
        "https://sns.eu-west-1.amazonaws.com:443/x.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/x.pem",
        "https://sns.eu-west-1.amazonaws.com%2eevil.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com%40evil.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com@evil.com/x.pem",
        "https://evil.com@sns.eu-west-1.amazonaws.com/x.pem",
        "https://evil.com\\@sns.eu-west-1.amazonaws.com/x.pem",
        "https://evil.com#@sns.eu-west-1.amazonaws.com/x.pem",
        "https://evil.com?@sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com\\.evil.com/x.pem",
        "https://xn--sns-eu-west-1-amazonaws-com.evil/x.pem",
        "https://sns.eu-west-1.amazonaws.com /x.pem",
        " https://sns.eu-west-1.amazonaws.com/x.pem",
        "https://sns.eu-west-1.amazonaws.com/x.pem\n",
        "https:sns.eu-west-1.amazonaws.com/x.pem",
        "https:///sns.eu-west-1.amazonaws.com/x.pem",
        "//sns.eu-west-1.amazonaws.com/x.pem",
        "ftp://sns.eu-west-1.amazonaws.com/x.pem",
        "https://[::1]/x.pem",
    ] {
        assert!(allowed_host(bad, expected).is_none(), "{bad}");
    }
    assert_eq!(
        allowed_host("https://SNS.EU-WEST-1.amazonaws.com/x.pem", expected).as_deref(),
        Some(expected)
    );
}

#[tokio::test]
async fn the_region_comes_from_the_topic() {
    let opts = SnsOptions::new(vec![TOPIC.to_owned()]);
    let region = topic_region(TOPIC).unwrap();
    assert_eq!(region, "eu-west-1");
    let expected = opts.cert_host.expand(region);
    assert_eq!(expected, "sns.eu-west-1.amazonaws.com");
    assert!(allowed_host(
        "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem",
        &expected
    )
    .is_some());
    for bad in [
        "https://sns.us-east-1.amazonaws.com/SimpleNotificationService-x.pem",
        "https://sns.eu-west-1.amazonaws.com.evil.com/x.pem",
        "https://evil.com/sns.eu-west-1.amazonaws.com/x.pem",
        "http://sns.eu-west-1.amazonaws.com/x.pem",
    ] {
        assert!(allowed_host(bad, &expected).is_none(), "{bad}");
    }
    for arn in [
        "arn:aws:sns:EU:1:t",
        "arn:aws:sqs:eu-west-1:1:t",
        "arn:aws:sns::1:t",
        "x",
    ] {
        assert!(topic_region(arn).is_none(), "{arn}");
    }
    assert!(HostPattern::parse("sns.{region}.amazonaws.com.cn").is_ok());
    assert!(HostPattern::parse("sns.{region}.{x}.com").is_err());
    assert!(HostPattern::parse("a/b").is_err());
    assert!(SnsOptions::new(vec![]).validate().is_err());
    assert!(SnsOptions::new(vec!["orders".into()]).validate().is_err());
}

#[tokio::test]
async fn cert_server_down_is_cert_unavailable() {
    let e = env().await;
    e.srv.set_down(true);
    let m = sign(notification(&e.srv.url(CERT_PATH), None), 2);
    assert_eq!(e.check(&m).await, Err(SnsError::CertUnavailable));
    assert_eq!(SnsError::CertUnavailable.status(), 503);
    // the failure is remembered: no new connection within RETRY_AFTER
    let seen = e.srv.connections();
    assert_eq!(e.check(&m).await, Err(SnsError::CertUnavailable));
    assert_eq!(e.srv.connections(), seen);
    // after it, the next message fetches again and succeeds
    e.srv.set_down(false);
    let later = Instant::now() + RETRY_AFTER;
    e.verifier
        .verify(m.to_string().as_bytes(), NOW, later)
        .await
        .unwrap();
}

#[tokio::test]
async fn certificates_that_do_not_verify_are_unavailable() {
    let e = env().await;
    let other = TestCa::new();
    let cases = [
        ("/foreign.pem", other.rsa_leaf_pem(&["localhost"], None)),
        (
            "/wrong-name.pem",
            e.ca.rsa_leaf_pem(&["sns.evil.example"], None),
        ),
        (
            "/expired.pem",
            e.ca.rsa_leaf_pem(&["localhost"], Some(((2020, 1, 1), (2021, 1, 1)))),
        ),
        ("/garbage.pem", "not a certificate".to_owned()),
    ];
    for (path, pem) in cases {
        e.srv.set(path, Canned::ok(pem));
        let m = sign(notification(&e.srv.url(path), None), 2);
        assert_eq!(e.check(&m).await, Err(SnsError::CertUnavailable), "{path}");
    }
    // a 404 and an oversize certificate too
    let m = sign(notification(&e.srv.url("/absent.pem"), None), 2);
    assert_eq!(e.check(&m).await, Err(SnsError::CertUnavailable));
}

#[tokio::test]
async fn a_cached_certificate_is_rechecked_at_each_use() {
    // Valid until 2027-01-01: verifies at NOW, refused once the clock passes notAfter, even
    // though it is still in the cache.
    let e = env().await;
    e.srv.set(
        "/short.pem",
        Canned::ok(e.ca.rsa_leaf_pem(&["localhost"], Some(((2026, 1, 1), (2027, 1, 1))))),
    );
    let m = sign(notification(&e.srv.url("/short.pem"), None), 1);
    let body = m.to_string();
    let t0 = Instant::now();
    e.verifier.verify(body.as_bytes(), NOW, t0).await.unwrap();
    assert_eq!(
        e.verifier.verify(body.as_bytes(), 1_798_761_601, t0).await,
        Err(SnsError::CertUnavailable)
    );
    assert_eq!(e.srv.hits("/short.pem"), 1);
}

#[tokio::test]
async fn the_cache_is_bounded_and_expires() {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let pem = ca.rsa_leaf_pem(&["localhost"], None);
    for i in 0..3 {
        srv.set(&format!("/c{i}.pem"), Canned::ok(pem.clone()));
    }
    let verifier = SnsVerifier::new(
        SnsOptions {
            cert_cache_entries: 2,
            cert_max_age: Duration::from_secs(600),
            ..options(&srv)
        },
        ca.fetcher(),
    )
    .unwrap();
    let t0 = Instant::now();
    let run = |i: usize, at: Instant| {
        let m = sign(notification(&srv.url(&format!("/c{i}.pem")), None), 2).to_string();
        let v = &verifier;
        async move { v.verify(m.as_bytes(), NOW, at).await }
    };
    run(0, t0).await.unwrap();
    run(1, t0 + Duration::from_secs(1)).await.unwrap();
    run(2, t0 + Duration::from_secs(2)).await.unwrap(); // evicts c0
    assert_eq!(verifier.lock().len(), 2);
    run(1, t0 + Duration::from_secs(3)).await.unwrap();
    assert_eq!(srv.hits("/c1.pem"), 1);
    run(0, t0 + Duration::from_secs(4)).await.unwrap();
    assert_eq!(srv.hits("/c0.pem"), 2);
    // past max age: fetched again
    run(1, t0 + Duration::from_secs(700)).await.unwrap();
    assert_eq!(srv.hits("/c1.pem"), 2);
}

#[tokio::test]
async fn made_up_cert_urls_do_not_evict_a_cached_certificate() {
    // The SigningCertURL's path is the sender's: anyone who knows an allowed topic can send
    // messages naming made-up certificates on the allowed host. Their failures must not push
    // the genuine certificate out of the cache (every genuine message would fetch again,
    // queued behind the made-up fetches).
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set(
        "/good.pem",
        Canned::ok(ca.rsa_leaf_pem(&["localhost"], None)),
    );
    let verifier = SnsVerifier::new(
        SnsOptions {
            cert_cache_entries: 2,
            ..options(&srv)
        },
        ca.fetcher(),
    )
    .unwrap();
    let t0 = Instant::now();
    let genuine = sign(notification(&srv.url("/good.pem"), None), 2).to_string();
    verifier.verify(genuine.as_bytes(), NOW, t0).await.unwrap();
    for i in 0..4u64 {
        let forged = notification(&srv.url(&format!("/made-up-{i}.pem")), None);
        let forged = sign(forged, 2).to_string();
        let at = t0 + Duration::from_secs(i + 1);
        assert_eq!(
            verifier.verify(forged.as_bytes(), NOW, at).await,
            Err(SnsError::CertUnavailable)
        );
    }
    let later = t0 + Duration::from_secs(10);
    verifier
        .verify(genuine.as_bytes(), NOW, later)
        .await
        .unwrap();
    assert_eq!(
        srv.hits("/good.pem"),
        1,
        "the genuine certificate was fetched again"
    );
    assert!(verifier.lock().len() <= 2);
}

#[tokio::test]
async fn waiting_behind_other_fetches_is_bounded() {
    // Made-up certificate URLs that answer slowly, many at once: a message behind them waits
    // at most one fetch's total time for its turn (then 503), not for the whole line.
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    let slow = Canned {
        status: 404,
        delay: Duration::from_millis(900),
        ..Canned::ok("no")
    };
    for i in 0..6 {
        srv.set(&format!("/slow-{i}.pem"), slow.clone());
    }
    srv.set(
        "/good.pem",
        Canned::ok(ca.rsa_leaf_pem(&["localhost"], None)),
    );
    let fetcher = crate::fetch::Fetcher::new(
        crate::fetch::FetchOptions {
            connect_timeout: Duration::from_secs(5),
            total_timeout: Duration::from_secs(1),
            max_bytes: 64 * 1024,
        },
        ca.roots(),
    );
    let verifier = std::sync::Arc::new(SnsVerifier::new(options(&srv), fetcher).unwrap());
    let mut crowd = Vec::new();
    for i in 0..6 {
        let v = std::sync::Arc::clone(&verifier);
        let m = sign(notification(&srv.url(&format!("/slow-{i}.pem")), None), 2).to_string();
        crowd.push(tokio::spawn(async move {
            v.verify(m.as_bytes(), NOW, Instant::now()).await
        }));
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let genuine = sign(notification(&srv.url("/good.pem"), None), 2).to_string();
    let t = std::time::Instant::now();
    let got = verifier
        .verify(genuine.as_bytes(), NOW, Instant::now())
        .await;
    let waited = t.elapsed();
    // The line is 6 x 900 ms long; the wait is cut at the 1 s total time.
    assert!(waited < Duration::from_millis(3000), "waited {waited:?}");
    assert_eq!(got, Err(SnsError::CertUnavailable));
    for c in crowd {
        assert!(c.await.unwrap().is_err());
    }
    // Once the line is gone the genuine message verifies.
    verifier
        .verify(genuine.as_bytes(), NOW, Instant::now())
        .await
        .unwrap();
}

#[tokio::test]
async fn malformed_messages() {
    let e = env().await;
    let cert = e.srv.url(CERT_PATH);
    let good = sign(notification(&cert, None), 2);
    let mut cases: Vec<Value> = Vec::new();
    for field in [
        "Type",
        "MessageId",
        "TopicArn",
        "Message",
        "Timestamp",
        "Signature",
        "SigningCertURL",
        "SignatureVersion",
    ] {
        let mut m = good.clone();
        m.as_object_mut().unwrap().remove(field);
        cases.push(m);
    }
    for (field, value) in [
        ("Type", json!("Other")),
        ("SignatureVersion", json!("3")),
        ("SignatureVersion", json!(2)),
        ("Signature", json!("***")),
        ("Message", json!(42)),
    ] {
        let mut m = good.clone();
        m[field] = value;
        cases.push(m);
    }
    let mut c = confirmation("SubscriptionConfirmation", &cert, "https://x/");
    c.as_object_mut().unwrap().remove("Token");
    c["SignatureVersion"] = json!("1");
    c["Signature"] = json!("");
    cases.push(c);
    for m in cases {
        assert!(
            matches!(e.check(&m).await, Err(SnsError::Malformed(_))),
            "{m}"
        );
    }
    assert!(matches!(
        SnsMessage::parse(b"[]"),
        Err(SnsError::Malformed(_))
    ));
    assert!(matches!(
        SnsMessage::parse(&vec![b' '; MAX_MESSAGE_BYTES + 1]),
        Err(SnsError::Malformed(_))
    ));
    assert_eq!(SnsError::Malformed("x").reason(), "malformed_signature");
    assert_eq!(e.srv.connections(), 0);
}

#[test]
fn canonical_strings() {
    let n = SnsMessage::parse(
        br#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Subject":"s","Message":"a\nb","Timestamp":"ts","SignatureVersion":"1","Signature":"","SigningCertURL":"u"}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(n.canonical()).unwrap(),
        "Message\na\nb\nMessageId\nm\nSubject\ns\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    );
    // a null Subject is no Subject
    let n = SnsMessage::parse(
        br#"{"Type":"Notification","MessageId":"m","TopicArn":"t","Subject":null,"Message":"x","Timestamp":"ts","SignatureVersion":"2","Signature":"","SigningCertURL":"u"}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(n.canonical()).unwrap(),
        "Message\nx\nMessageId\nm\nTimestamp\nts\nTopicArn\nt\nType\nNotification\n"
    );
    let c = SnsMessage::parse(
        br#"{"Type":"SubscriptionConfirmation","MessageId":"m","TopicArn":"t","Message":"x","Timestamp":"ts","Token":"k","SubscribeURL":"s","SignatureVersion":"1","Signature":"","SigningCertURL":"u"}"#,
    )
    .unwrap();
    assert_eq!(
        String::from_utf8(c.canonical()).unwrap(),
        "Message\nx\nMessageId\nm\nSubscribeURL\ns\nTimestamp\nts\nToken\nk\nTopicArn\nt\nType\nSubscriptionConfirmation\n"
    );
}

#[tokio::test]
async fn subscription_confirmation_helper() {
    let e = env().await;
    let cert = e.srv.url(CERT_PATH);
    let path = "/?Action=ConfirmSubscription&TopicArn=orders&Token=2336";
    e.srv
        .set(path, Canned::ok("<ConfirmSubscriptionResponse/>"));
    let ok = e
        .check(&sign(
            confirmation("SubscriptionConfirmation", &cert, &e.srv.url(path)),
            2,
        ))
        .await
        .unwrap();
    e.verifier.confirm_subscription(&ok).await.unwrap();
    assert_eq!(e.srv.hits(path), 1);

    // a SubscribeURL on another host is never fetched, even in a signed message
    let port = e.srv.url("").rsplit(':').next().unwrap().to_owned();
    let foreign = format!("https://127.0.0.1:{port}{path}");
    let signed = e
        .check(&sign(
            confirmation("SubscriptionConfirmation", &cert, &foreign),
            2,
        ))
        .await
        .unwrap();
    assert_eq!(
        e.verifier.confirm_subscription(&signed).await,
        Err(ConfirmError::BadUrl)
    );
    assert_eq!(e.srv.hits(path), 1);

    // only confirmations are confirmed; a failed GET is reported
    let n = e.check(&sign(notification(&cert, None), 2)).await.unwrap();
    assert_eq!(
        e.verifier.confirm_subscription(&n).await,
        Err(ConfirmError::NotConfirmation)
    );
    let gone = e
        .check(&sign(
            confirmation("SubscriptionConfirmation", &cert, &e.srv.url("/gone")),
            2,
        ))
        .await
        .unwrap();
    assert_eq!(
        e.verifier.confirm_subscription(&gone).await,
        Err(ConfirmError::Fetch(FetchError::Status(404)))
    );
}
