//! The engines that fetch (SPEC "More schemes"), through the real server: SNS messages signed
//! with a test certificate served by a local HTTPS server (test CA in the route's `ca_file`,
//! `cert_host` pointed at it), the subscription confirmed once across two replicas, and JWTs
//! (`jwt`, `google-pubsub`, `plaid`) with inline keys and with a JWKS URL.

use base64::Engine;
use bytes::Bytes;
use http::StatusCode;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};
use sha2::Digest;

use crate::netkit::metric;
use crate::support::{post, unix_now, Sidecar, Upstream};
use crate::tlskit::testkit::{Canned, TestCa, TestServer, RSA_KEY_PEM};
use hookseal::replay::testing::RedisServer;

const TOPIC: &str = "arn:aws:sns:eu-west-1:123456789012:orders";
const CERT_PATH: &str = "/SimpleNotificationService-0123456789abcdef.pem";

// === the library's test CA and HTTPS server (tests/integration/tlskit.rs) ===

/// The shared test server, with the canned-answer shape these tests write.
struct HttpsServer(TestServer);

impl HttpsServer {
    async fn start(ca: &TestCa) -> HttpsServer {
        HttpsServer(TestServer::start(ca).await)
    }

    fn set(&self, path: &str, status: u16, headers: &[(&str, &str)], body: impl Into<Vec<u8>>) {
        let mut canned = Canned::ok(body);
        canned.status = status;
        for (name, value) in headers {
            canned = canned.header(name, value);
        }
        self.0.set(path, canned);
    }
}

impl std::ops::Deref for HttpsServer {
    type Target = TestServer;

    fn deref(&self) -> &TestServer {
        &self.0
    }
}

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(b)
}

fn b64url(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

fn rsa_key() -> sig::RsaKeyPair {
    let der =
        rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(RSA_KEY_PEM.as_bytes()).unwrap();
    sig::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap()
}

// === SNS ===

/// The canonical string SNS signs (Amazon SNS Developer Guide, "Verifying the signatures").
fn canonical(m: &Value) -> Vec<u8> {
    let fields: &[&str] = if m["Type"] == "Notification" {
        &[
            "Message",
            "MessageId",
            "Subject",
            "Timestamp",
            "TopicArn",
            "Type",
        ]
    } else {
        &[
            "Message",
            "MessageId",
            "SubscribeURL",
            "Timestamp",
            "Token",
            "TopicArn",
            "Type",
        ]
    };
    let mut out = Vec::new();
    for f in fields {
        if let Some(v) = m.get(*f).and_then(Value::as_str) {
            out.extend_from_slice(format!("{f}\n{v}\n").as_bytes());
        }
    }
    out
}

/// Signs `m` as SNS does. ring signs no SHA-1: the v1 signatures come from the table the SNS
/// engine's tests made with `openssl dgst -sha1 -sign` over the same canonical strings.
fn sns_sign(mut m: Value, version: u8) -> Value {
    let c = canonical(&m);
    let signature = if version == 1 {
        let table: serde_json::Map<String, Value> = serde_json::from_str(include_str!(
            "../../src/verify/sns/testdata/v1_signatures.json"
        ))
        .unwrap();
        let key: String = sha2::Sha256::digest(&c)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        table[&key]
            .as_str()
            .expect("a v1 signature for this canonical string")
            .to_owned()
    } else {
        let key = rsa_key();
        let mut out = vec![0; key.public().modulus_len()];
        key.sign(&sig::RSA_PKCS1_SHA256, &SystemRandom::new(), &c, &mut out)
            .unwrap();
        b64(&out)
    };
    m["SignatureVersion"] = json!(version.to_string());
    m["Signature"] = json!(signature);
    m
}

/// The notification the SNS engine's tests signed with SHA-1 (same canonical fields).
fn notification(cert_url: &str, topic: &str) -> Value {
    json!({
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic,
        "Message": "{\"order\":42}\nline two",
        "Timestamp": "2026-12-01T00:00:00.000Z",
        "SigningCertURL": cert_url,
        "UnsubscribeURL": "https://localhost/?Action=Unsubscribe"
    })
}

struct SnsEnv {
    ca: TestCa,
    srv: HttpsServer,
    _dir: tempfile::TempDir,
    ca_file: String,
}

async fn sns_env() -> SnsEnv {
    let ca = TestCa::new();
    let srv = HttpsServer::start(&ca).await;
    srv.set(
        CERT_PATH,
        200,
        &[],
        ca.rsa_leaf_pem(&["sns.amazonaws.com"], None),
    );
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let ca_file = ca_file.display().to_string();
    SnsEnv {
        ca,
        srv,
        _dir: dir,
        ca_file,
    }
}

impl SnsEnv {
    fn route(&self, confirm: &str) -> String {
        format!(
            "[[route]]\nname = \"sns\"\npath = \"/sns\"\nscheme = \"sns\"\n\
             topics = [\"{TOPIC}\"]\ncert_host = \"{}\"\nconfirm = \"{confirm}\"\n\
             ca_file = \"{}\"\n",
            self.srv.authority(),
            self.ca_file
        )
    }
}

fn sns_headers(kind: &str) -> Vec<(&'static str, String)> {
    vec![
        ("x-amz-sns-message-type", kind.to_owned()),
        ("content-type", "text/plain; charset=UTF-8".to_owned()),
    ]
}

#[tokio::test]
async fn sns_v1_and_v2_notifications_are_forwarded_byte_exact() {
    let env = sns_env().await;
    let _ = &env.ca;
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &env.route("auto")).await;
    let cert_url = env.srv.url(CERT_PATH);
    for version in [1, 2] {
        let mut msg = notification(&cert_url, TOPIC);
        msg["MessageId"] = json!(format!("22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"));
        let body = sns_sign(msg, version).to_string();
        let a = post(&sc.url("/sns"), &sns_headers("Notification"), body.clone()).await;
        if version == 1 {
            assert_eq!(a.status, StatusCode::OK, "{a:?}");
            let seen = up.last();
            assert_eq!(seen.body, Bytes::from(body), "forwarded byte-exact");
            assert_eq!(seen.headers["x-hookseal-verified"], "true");
            assert_eq!(
                seen.headers["x-hookseal-id"],
                "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"
            );
        } else {
            // The same MessageId again: deduped on MessageId (the v2 signature verified).
            assert_eq!(a.json()["status"], "duplicate", "{a:?}");
        }
    }
    // A v2 message with its own id goes through too.
    let mut msg = notification(&cert_url, TOPIC);
    msg["MessageId"] = json!("a-second-message");
    let body = sns_sign(msg, 2).to_string();
    let a = post(&sc.url("/sns"), &sns_headers("Notification"), body.clone()).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(up.last().body, Bytes::from(body));
    assert_eq!(up.count(), 2);
    assert_eq!(env.srv.hits(CERT_PATH), 1, "the certificate is cached");
    // A type header that disagrees with the verified Type: 400, never forwarded.
    let mut msg = notification(&cert_url, TOPIC);
    msg["MessageId"] = json!("a-third-message");
    let body = sns_sign(msg, 2).to_string();
    let a = post(
        &sc.url("/sns"),
        &sns_headers("SubscriptionConfirmation"),
        body,
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::BAD_REQUEST, "malformed_signature".into())
    );
    assert_eq!(up.count(), 2);
    // Tampered: 401 bad_signature.
    let mut msg = sns_sign(notification(&cert_url, TOPIC), 2);
    msg["Message"] = json!("{\"order\":43}");
    let a = post(
        &sc.url("/sns"),
        &sns_headers("Notification"),
        msg.to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "bad_signature".into())
    );
}

#[tokio::test]
async fn a_foreign_topic_or_cert_host_is_refused_and_nothing_is_fetched() {
    let env = sns_env().await;
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &env.route("auto")).await;
    let cert_url = env.srv.url(CERT_PATH);
    let foreign = "arn:aws:sns:eu-west-1:999999999999:orders";
    let msg = sns_sign(notification(&cert_url, foreign), 2);
    let a = post(
        &sc.url("/sns"),
        &sns_headers("Notification"),
        msg.to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::FORBIDDEN, "topic_not_allowed".into())
    );
    for bad in [
        "https://sns.eu-west-1.amazonaws.com/cert.pem".to_owned(),
        format!("http://{}{CERT_PATH}", env.srv.authority()),
        format!("https://user@{}{CERT_PATH}", env.srv.authority()),
        format!("https://127.0.0.1:{}{CERT_PATH}", env.srv.port()),
    ] {
        let msg = sns_sign(notification(&bad, TOPIC), 2);
        let a = post(
            &sc.url("/sns"),
            &sns_headers("Notification"),
            msg.to_string(),
        )
        .await;
        assert_eq!(
            (a.status, a.error()),
            (StatusCode::FORBIDDEN, "bad_cert_url".into()),
            "{bad}"
        );
    }
    assert_eq!(env.srv.connections(), 0, "nothing was fetched");
    assert_eq!(up.count(), 0);
    // The certificate host down: 503 cert_unavailable, counted as a fetch failure.
    env.srv.set_down(true);
    let msg = sns_sign(notification(&cert_url, TOPIC), 2);
    let a = post(
        &sc.url("/sns"),
        &sns_headers("Notification"),
        msg.to_string(),
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "cert_unavailable".into())
    );
    let m = sc.metrics().await;
    assert!(
        metric(&m, "hookseal_fetch_failures_total{purpose=\"sns_cert\"}") >= 1.0,
        "{m}"
    );
}

fn subscription(cert_url: &str, subscribe_url: &str) -> Value {
    sns_sign(
        json!({
            "Type": "SubscriptionConfirmation",
            "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
            "Token": "2336412f37fb687f5d51e6e241d09c80",
            "TopicArn": TOPIC,
            "Message": "You have chosen to subscribe to the topic.",
            "SubscribeURL": subscribe_url,
            "Timestamp": "2026-12-01T00:00:00.000Z",
            "SigningCertURL": cert_url
        }),
        2,
    )
}

/// Two replicas on one redis-server: the confirmation GET is made once, both answer
/// `confirmed`, the app sees nothing. (Skips with a notice without `redis-server` outside
/// CI, as the replay tests do.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_subscription_is_confirmed_once_across_replicas() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let env = sns_env().await;
    let up = Upstream::start().await;
    let extra = format!("[replay]\nstore = \"redis\"\nurl = \"{}\"\n", redis.url());
    let a = Sidecar::start(up.addr, &extra, &env.route("auto")).await;
    let b = Sidecar::start(up.addr, &extra, &env.route("auto")).await;
    let confirm_path = "/?Action=ConfirmSubscription&Token=2336412f37fb687f";
    env.srv.set(
        confirm_path,
        200,
        &[("content-type", "text/xml")],
        "<ConfirmSubscriptionResponse/>",
    );
    let msg = subscription(&env.srv.url(CERT_PATH), &env.srv.url(confirm_path)).to_string();
    let h = sns_headers("SubscriptionConfirmation");
    let (ua, ub) = (a.url("/sns"), b.url("/sns"));
    let (ra, rb) = tokio::join!(post(&ua, &h, msg.clone()), post(&ub, &h, msg.clone()));
    let ok = [&ra, &rb]
        .iter()
        .filter(|r| r.status == StatusCode::OK)
        .count();
    // One confirmed it; the other was told confirmed (after) or in flight (409, SNS retries).
    assert!(ok >= 1, "{ra:?} {rb:?}");
    for r in [&ra, &rb] {
        if r.status == StatusCode::OK {
            assert_eq!(&r.body[..], br#"{"status":"confirmed"}"#);
            assert_eq!(r.headers["content-type"], "application/json");
        } else {
            assert_eq!(r.status, StatusCode::CONFLICT, "{r:?}");
        }
    }
    let again = post(&b.url("/sns"), &h, msg).await;
    assert_eq!(&again.body[..], br#"{"status":"confirmed"}"#);
    assert_eq!(
        env.srv.hits(confirm_path),
        1,
        "the SubscribeURL was fetched once"
    );
    assert_eq!(up.count(), 0, "the app saw no confirmation");
}

/// The replay store down: a confirmation fails closed (503) unless `on_store_error = "allow"`,
/// which confirms without a claim (as a delivery would be forwarded without dedupe).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sns_confirmation_with_the_store_down_follows_on_store_error() {
    let Some(mut redis) = RedisServer::start() else {
        return;
    };
    let env = sns_env().await;
    let up = Upstream::start().await;
    let store = |policy: &str| {
        format!(
            "[replay]\nstore = \"redis\"\nurl = \"{}\"\non_store_error = \"{policy}\"\n",
            redis.url()
        )
    };
    let strict = Sidecar::start(up.addr, &store("reject"), &env.route("auto")).await;
    let lenient = Sidecar::start(up.addr, &store("allow"), &env.route("auto")).await;
    redis.kill();
    let confirm_path = "/?Action=ConfirmSubscription&Token=2336412f37fb687f";
    env.srv
        .set(confirm_path, 200, &[], "<ConfirmSubscriptionResponse/>");
    let msg = subscription(&env.srv.url(CERT_PATH), &env.srv.url(confirm_path)).to_string();
    let h = sns_headers("SubscriptionConfirmation");
    let a = post(&strict.url("/sns"), &h, msg.clone()).await;
    assert_eq!(
        (a.status, a.error()),
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "replay_store_unavailable".into()
        )
    );
    assert_eq!(env.srv.hits(confirm_path), 0);
    let a = post(&lenient.url("/sns"), &h, msg).await;
    assert_eq!(&a.body[..], br#"{"status":"confirmed"}"#, "{a:?}");
    assert_eq!(env.srv.hits(confirm_path), 1);
    assert_eq!(up.count(), 0);
}

/// A failed confirmation GET is 502 `confirm_failed` and frees the id: SNS's next attempt
/// confirms.
#[tokio::test]
async fn a_failed_sns_confirmation_is_502_and_the_next_attempt_confirms() {
    let env = sns_env().await;
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &env.route("auto")).await;
    let confirm_path = "/?Action=ConfirmSubscription&Token=2336412f37fb687f";
    let msg = subscription(&env.srv.url(CERT_PATH), &env.srv.url(confirm_path)).to_string();
    let h = sns_headers("SubscriptionConfirmation");
    let a = post(&sc.url("/sns"), &h, msg.clone()).await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::BAD_GATEWAY, "confirm_failed".into())
    );
    env.srv
        .set(confirm_path, 200, &[], "<ConfirmSubscriptionResponse/>");
    let a = post(&sc.url("/sns"), &h, msg).await;
    assert_eq!(&a.body[..], br#"{"status":"confirmed"}"#, "{a:?}");
    assert_eq!(env.srv.hits(confirm_path), 2);
    assert_eq!(up.count(), 0);
    let m = sc.metrics().await;
    assert_eq!(
        metric(
            &m,
            "hookseal_requests_total{reason=\"ok\",result=\"handshake\",route=\"sns\"}"
        ),
        1.0,
        "{m}"
    );
    assert!(
        metric(&m, "hookseal_fetch_failures_total{purpose=\"sns_confirm\"}") >= 1.0,
        "{m}"
    );
}

#[tokio::test]
async fn sns_confirm_forward_passes_the_confirmation_to_the_app() {
    let env = sns_env().await;
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &env.route("forward")).await;
    let confirm_path = "/?Action=ConfirmSubscription&Token=2336412f37fb687f";
    let msg = subscription(&env.srv.url(CERT_PATH), &env.srv.url(confirm_path)).to_string();
    let a = post(
        &sc.url("/sns"),
        &sns_headers("SubscriptionConfirmation"),
        msg.clone(),
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(up.last().body, Bytes::from(msg));
    assert_eq!(env.srv.hits(confirm_path), 0);
}

// === JWT ===

struct Es256 {
    key: sig::EcdsaKeyPair,
    kid: String,
}

impl Es256 {
    fn new(kid: &str) -> Es256 {
        let rng = SystemRandom::new();
        let pkcs8 =
            sig::EcdsaKeyPair::generate_pkcs8(&sig::ECDSA_P256_SHA256_FIXED_SIGNING, &rng).unwrap();
        let key = sig::EcdsaKeyPair::from_pkcs8(
            &sig::ECDSA_P256_SHA256_FIXED_SIGNING,
            pkcs8.as_ref(),
            &rng,
        )
        .unwrap();
        Es256 {
            key,
            kid: kid.to_owned(),
        }
    }

    fn jwk(&self) -> Value {
        let p = self.key.public_key().as_ref();
        json!({"kty":"EC","crv":"P-256","kid":self.kid,"x":b64url(&p[1..33]),"y":b64url(&p[33..65])})
    }

    fn token(&self, claims: &Value) -> String {
        let header = json!({"alg":"ES256","typ":"JWT","kid":self.kid});
        let input = format!(
            "{}.{}",
            b64url(header.to_string().as_bytes()),
            b64url(claims.to_string().as_bytes())
        );
        let s = self
            .key
            .sign(&SystemRandom::new(), input.as_bytes())
            .unwrap();
        format!("{input}.{}", b64url(s.as_ref()))
    }
}

fn rs256_jwk(kid: &str) -> Value {
    let key = rsa_key();
    let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(key.public());
    json!({"kty":"RSA","kid":kid,"n":b64url(&c.n),"e":b64url(&c.e),"alg":"RS256"})
}

fn rs256_token(kid: &str, claims: &Value) -> String {
    let header = json!({"alg":"RS256","typ":"JWT","kid":kid});
    let input = format!(
        "{}.{}",
        b64url(header.to_string().as_bytes()),
        b64url(claims.to_string().as_bytes())
    );
    let key = rsa_key();
    let mut out = vec![0; key.public().modulus_len()];
    key.sign(
        &sig::RSA_PKCS1_SHA256,
        &SystemRandom::new(),
        input.as_bytes(),
        &mut out,
    )
    .unwrap();
    format!("{input}.{}", b64url(&out))
}

fn bearer(token: &str) -> Vec<(&'static str, String)> {
    vec![("authorization", format!("Bearer {token}"))]
}

#[tokio::test]
async fn jwt_tokens_are_checked_with_a_reason_each() {
    let es = Es256::new("k1");
    let jwks = json!({"keys":[es.jwk(), rs256_jwk("r1")]}).to_string();
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("jwks.json");
    std::fs::write(&keys, &jwks).unwrap();
    let public_url = "https://hooks.example.com/pubsub";
    let routes = format!(
        "[[route]]\nname = \"jwt\"\npath = \"/jwt\"\nscheme = \"jwt\"\n\
         [route.jwt]\nkeys = {{ file = \"{}\" }}\nissuers = [\"https://issuer.example\"]\n\
         audiences = [\"hookseal-test\"]\nleeway = \"5s\"\n\
         [[route]]\nname = \"pubsub\"\npath = \"/pubsub\"\nscheme = \"google-pubsub\"\n\
         public_url = \"{public_url}\"\n\
         [route.jwt]\nkeys = {{ file = \"{}\" }}\nclaims = {{ email = [\"push@proj.iam.gserviceaccount.com\"] }}\n\
         [[route]]\nname = \"plaid\"\npath = \"/plaid\"\nscheme = \"plaid\"\n\
         [route.jwt]\nkeys = {{ file = \"{}\" }}\n",
        keys.display(),
        keys.display(),
        keys.display()
    );
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let now = unix_now();
    let good = json!({"iss":"https://issuer.example","aud":"hookseal-test","exp":now + 300,"iat":now,"jti":"tok-1"});
    let a = post(&sc.url("/jwt"), &bearer(&es.token(&good)), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(up.last().headers["x-hookseal-id"], "tok-1");

    let with = |k: &str, v: Value| {
        let mut c = good.clone();
        c[k] = v;
        c
    };
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "wrong aud",
            es.token(&with("aud", json!("someone-else"))),
            "claim_mismatch",
        ),
        (
            "wrong iss",
            es.token(&with("iss", json!("https://evil.example"))),
            "claim_mismatch",
        ),
        (
            "expired",
            es.token(&with("exp", json!(now - 60))),
            "token_expired",
        ),
        (
            "not yet valid",
            es.token(&with("nbf", json!(now + 600))),
            "token_expired",
        ),
        ("unknown kid", Es256::new("k1").token(&good), "bad_token"),
        (
            "alg none",
            {
                let h = b64url(br#"{"alg":"none","typ":"JWT"}"#);
                format!("{h}.{}.", b64url(good.to_string().as_bytes()))
            },
            "bad_token",
        ),
        (
            "HS256 keyed with the public key",
            {
                let h = b64url(br#"{"alg":"HS256","typ":"JWT","kid":"r1"}"#);
                let input = format!("{h}.{}", b64url(good.to_string().as_bytes()));
                let k = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, jwks.as_bytes());
                format!(
                    "{input}.{}",
                    b64url(ring::hmac::sign(&k, input.as_bytes()).as_ref())
                )
            },
            "bad_token",
        ),
    ];
    for (what, token, reason) in cases {
        let a = post(&sc.url("/jwt"), &bearer(&token), "{}").await;
        assert_eq!(
            (a.status, a.error()),
            (StatusCode::UNAUTHORIZED, reason.to_owned()),
            "{what}"
        );
    }

    // google-pubsub: aud = public_url, email allow-list with email_verified.
    let claims = json!({"iss":"https://accounts.google.com","aud":public_url,"exp":now+300,"iat":now,
        "email":"push@proj.iam.gserviceaccount.com","email_verified":true});
    let a = post(
        &sc.url("/pubsub"),
        &bearer(&rs256_token("r1", &claims)),
        "{}",
    )
    .await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let mut other = claims.clone();
    other["email"] = json!("attacker@proj.iam.gserviceaccount.com");
    let a = post(
        &sc.url("/pubsub"),
        &bearer(&rs256_token("r1", &other)),
        "{}",
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "claim_mismatch".into())
    );

    // plaid: the body's SHA-256 is signed; a tampered body is refused.
    let body = br#"{"webhook_type":"TRANSACTIONS","webhook_code":"SYNC_UPDATES_AVAILABLE"}"#;
    let hash: String = sha2::Sha256::digest(body)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let token = es.token(&json!({"iat": now, "request_body_sha256": hash}));
    let h = [("plaid-verification", token)];
    let a = post(&sc.url("/plaid"), &h, &body[..]).await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = post(
        &sc.url("/plaid"),
        &h,
        &br#"{"webhook_type":"TRANSACTIONS","webhook_code":"X"}"#[..],
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "claim_mismatch".into())
    );
    let stale = es.token(&json!({"iat": now - 600, "request_body_sha256": hash}));
    let a = post(
        &sc.url("/plaid"),
        &[("plaid-verification", stale)],
        &body[..],
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "token_expired".into())
    );
    assert_eq!(up.count(), 3);
}

#[tokio::test]
async fn jwks_unknown_kids_are_rate_limited_and_cached_keys_outlive_an_outage() {
    let ca = TestCa::new();
    let srv = HttpsServer::start(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let es = Es256::new("k1");
    srv.set(
        "/jwks",
        200,
        &[("cache-control", "max-age=3600")],
        json!({"keys":[es.jwk()]}).to_string(),
    );
    let routes = format!(
        "[[route]]\nname = \"jwt\"\npath = \"/jwt\"\nscheme = \"jwt\"\nca_file = \"{}\"\n\
         [route.jwt]\njwks_url = \"{}\"\naudiences = [\"a\"]\n",
        ca_file.display(),
        srv.url("/jwks")
    );
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let now = unix_now();
    let claims = json!({"aud":"a","exp":now + 300});
    let a = post(&sc.url("/jwt"), &bearer(&es.token(&claims)), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(srv.hits("/jwks"), 1);
    // Unknown kids within the refetch interval (60 s) of the last fetch: no fetch at all,
    // whatever their number (a flood of made-up kids is no flood of fetches). The one refetch
    // after the interval runs on a moved clock in the engine's test
    // `unknown_kid_refetches_once_per_interval`.
    for i in 0..5 {
        let token = Es256::new(&format!("new-{i}")).token(&claims);
        let a = post(&sc.url("/jwt"), &bearer(&token), "{}").await;
        assert_eq!(
            (a.status, a.error()),
            (StatusCode::UNAUTHORIZED, "bad_token".into())
        );
    }
    assert_eq!(
        srv.hits("/jwks"),
        1,
        "rate-limited: no fetch for the unknown kids"
    );
    // The JWKS endpoint down: the cached keys still serve.
    srv.set_down(true);
    let a = post(&sc.url("/jwt"), &bearer(&es.token(&claims)), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    // A route whose JWKS cannot be fetched at all fails closed: 503 keys_unavailable.
    let routes = format!(
        "[[route]]\nname = \"jwt\"\npath = \"/jwt\"\nscheme = \"jwt\"\nca_file = \"{}\"\n\
         [route.jwt]\njwks_url = \"{}\"\naudiences = [\"a\"]\n",
        ca_file.display(),
        srv.url("/jwks")
    );
    let cold = Sidecar::start(up.addr, "", &routes).await;
    let a = post(&cold.url("/jwt"), &bearer(&es.token(&claims)), "{}").await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable".into())
    );
    let m = cold.metrics().await;
    assert!(
        metric(&m, "hookseal_fetch_failures_total{purpose=\"jwks\"}") >= 1.0,
        "{m}"
    );
}

/// Polls `post` on `path` every 500 ms until its answer has `status`; returns the time it
/// took from `since`, or panics after `limit`.
async fn poll_until(
    sc: &Sidecar,
    path: &str,
    token: &str,
    status: StatusCode,
    since: std::time::Instant,
    limit: std::time::Duration,
) -> std::time::Duration {
    loop {
        let a = post(&sc.url(path), &bearer(token), "{}").await;
        if a.status == status {
            return since.elapsed();
        }
        assert!(
            since.elapsed() < limit,
            "{path}: still {:?} after {limit:?}: {a:?}",
            a.status
        );
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// The JWKS cache with the real binary, across its real (default) bounds: an unknown `kid`
/// makes exactly one refetch once `refetch_interval` (60 s) has passed since the last fetch,
/// and is then accepted, while another unknown `kid` inside the interval makes none; and with
/// the JWKS server down, the cached keys serve until they expire (`min_ttl`, 60 s, for a
/// `no-store` answer), then the route fails closed with 503 `keys_unavailable`.
///
/// This test waits about a minute, on purpose: both bounds are fixed (`JwksOptions::default()`,
/// no config key — an operator has no reason to fetch a provider's keys more often, and a
/// shorter `min_ttl` would only weaken the rate limit), and only the real clock shows them in
/// the binary. The two routes run their minute side by side, so the wait is paid once; it runs
/// in parallel with the rest of the suite; every wait is a bounded poll.
#[tokio::test]
async fn jwks_refetch_after_the_interval_and_fail_closed_after_expiry() {
    let ca = TestCa::new();
    let rotating = HttpsServer::start(&ca).await;
    let failing = HttpsServer::start(&ca).await;
    let dir = tempfile::tempdir().unwrap();
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();
    let old = Es256::new("old");
    let new = Es256::new("new");
    let cached = Es256::new("cached");
    rotating.set(
        "/jwks",
        200,
        &[("cache-control", "max-age=3600")],
        json!({"keys":[old.jwk()]}).to_string(),
    );
    // `no-store`: kept for min_ttl only.
    failing.set(
        "/jwks",
        200,
        &[("cache-control", "no-store")],
        json!({"keys":[cached.jwk()]}).to_string(),
    );
    let route = |name: &str, url: String| {
        format!(
            "[[route]]\nname = \"{name}\"\npath = \"/{name}\"\nscheme = \"jwt\"\nca_file = \"{}\"\n\
             [route.jwt]\njwks_url = \"{url}\"\naudiences = [\"a\"]\n",
            ca_file.display()
        )
    };
    let routes = route("rotating", rotating.url("/jwks")) + &route("failing", failing.url("/jwks"));
    let up = Upstream::start().await;
    let sc = Sidecar::start(up.addr, "", &routes).await;
    let claims = json!({"aud":"a","exp":unix_now() + 600});
    let (old_t, new_t, cached_t) = (
        old.token(&claims),
        new.token(&claims),
        cached.token(&claims),
    );

    // The first use of each route fetches its JWKS once.
    let start = std::time::Instant::now();
    let a = post(&sc.url("/rotating"), &bearer(&old_t), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    let a = post(&sc.url("/failing"), &bearer(&cached_t), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!((rotating.hits("/jwks"), failing.hits("/jwks")), (1, 1));

    // The provider rotates in a new key; the other JWKS server goes down.
    rotating.set(
        "/jwks",
        200,
        &[("cache-control", "max-age=3600")],
        json!({"keys":[old.jwk(), new.jwk()]}).to_string(),
    );
    failing.set_down(true);
    let failing_connections = failing.connections();

    // Within the interval the new kid is unknown and fetches nothing; the cached key of the
    // failing route serves without a connection.
    let a = post(&sc.url("/rotating"), &bearer(&new_t), "{}").await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "bad_token".into())
    );
    let a = post(&sc.url("/failing"), &bearer(&cached_t), "{}").await;
    assert_eq!(a.status, StatusCode::OK, "{a:?}");
    assert_eq!(rotating.hits("/jwks"), 1);
    assert_eq!(failing.connections(), failing_connections);

    // Both routes over the same minute: the rotating one refetches once the interval has
    // passed and accepts the new key; the failing one serves its cached key until it expires,
    // then answers 503.
    let limit = std::time::Duration::from_secs(120);
    let (refetched_after, closed_after) = tokio::join!(
        poll_until(&sc, "/rotating", &new_t, StatusCode::OK, start, limit),
        poll_until(
            &sc,
            "/failing",
            &cached_t,
            StatusCode::SERVICE_UNAVAILABLE,
            start,
            limit
        ),
    );
    // Neither happened before its 60 s bound (measured from before the first fetch).
    assert!(refetched_after.as_secs() >= 59, "{refetched_after:?}");
    assert!(closed_after.as_secs() >= 59, "{closed_after:?}");
    assert_eq!(
        rotating.hits("/jwks"),
        2,
        "exactly one refetch for the new kid"
    );
    // Another unknown kid right after that refetch: no fetch, 401.
    let a = post(
        &sc.url("/rotating"),
        &bearer(&Es256::new("other").token(&claims)),
        "{}",
    )
    .await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::UNAUTHORIZED, "bad_token".into())
    );
    assert_eq!(rotating.hits("/jwks"), 2);
    // The failing route stays closed, with its reason, and counts the failed fetch.
    let a = post(&sc.url("/failing"), &bearer(&cached_t), "{}").await;
    assert_eq!(
        (a.status, a.error()),
        (StatusCode::SERVICE_UNAVAILABLE, "keys_unavailable".into())
    );
    let m = sc.metrics().await;
    assert!(
        metric(&m, "hookseal_fetch_failures_total{purpose=\"jwks\"}") >= 1.0,
        "{m}"
    );
}

/// The route keys of the engines are checked at load time, with file:line:key.
#[test]
fn engine_keys_are_checked_when_the_config_loads() {
    let base = "[listen]\naddress = \"127.0.0.1:0\"\n[admin]\naddress = \"127.0.0.2:0\"\n\
                [upstream]\nurl = \"http://127.0.0.1:9\"\n";
    let load = |route: &str| {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hookseal.toml");
        std::fs::write(
            &path,
            format!("{base}[[route]]\nname = \"r\"\npath = \"/r\"\n{route}"),
        )
        .unwrap();
        hookseal::config::Config::load_with_env(&path, &|_| None)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let jwks = r#"{"keys":[{"kty":"EC","crv":"P-256","kid":"1","x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4","y":"4Etl6SRW2YilurN5ZQsSq9D5-kqQ6rBV2ZfTK0Njvgs"}]}"#;
    let jwt = |extra: &str| {
        format!("scheme = \"jwt\"\n[route.jwt]\nkeys = {{ value = '{jwks}' }}\n{extra}")
    };
    assert_eq!(load(&jwt("audiences = [\"a\"]\n")), Ok(()));
    // A generic jwt route without audiences would accept a token issued for anyone.
    let e = load(&jwt("")).unwrap_err();
    assert!(
        e.contains("route[0].scheme") && e.contains("audiences"),
        "{e}"
    );
    for (route, needle) in [
        ("scheme = \"meta\"\nsecrets = [{ value = \"s\" }]\n", "verify_token"),
        ("scheme = \"msgraph\"\n", "client_state"),
        ("scheme = \"msgraph\"\nclient_state = { value = \"c\" }\nsecrets = [{ value = \"s\" }]\n", "takes no secrets"),
        ("scheme = \"sns\"\n", "topics"),
        ("scheme = \"sns\"\ntopics = [\"not-an-arn\"]\n", "not an SNS topic ARN"),
        ("scheme = \"sns\"\ntopics = [\"arn:aws:sns:eu-west-1:1:t\"]\nconfirm = \"maybe\"\n", "confirm"),
        ("scheme = \"github\"\nsecrets = [{ value = \"s\" }]\ntopics = [\"arn:aws:sns:eu-west-1:1:t\"]\n", "only allowed with scheme sns"),
        ("scheme = \"github\"\nsecrets = [{ value = \"s\" }]\nverify_token = { value = \"t\" }\n", "only allowed with scheme meta"),
        ("scheme = \"jwt\"\n[route.jwt]\naudiences = [\"a\"]\n", "jwks_url or keys"),
        ("scheme = \"jwt\"\n[route.jwt]\naudiences = [\"a\"]\njwks_url = \"http://x/jwks\"\n", "jwks_url"),
        ("scheme = \"jwt\"\n[route.jwt]\naudiences = [\"a\"]\nalgorithms = [\"HS256\"]\njwks_url = \"https://x/j\"\n", "HS256"),
        ("scheme = \"google-pubsub\"\npublic_url = \"https://h/p\"\n", "claims.email"),
    ] {
        let e = load(route).expect_err(route);
        assert!(e.contains(needle), "{route}: {e}");
    }
    // okta: secrets optional.
    assert_eq!(load("scheme = \"okta\"\n"), Ok(()));
}
