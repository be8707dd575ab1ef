//! Tests of the `jwt` engine: the Google Pub/Sub and Plaid presets, the algorithm allow-list
//! (`none` and HMAC refused), claims and leeway, token extraction, and the JWKS cache's
//! refetch and failure rules against a local HTTPS server.

use std::time::{Duration, Instant};

use base64::Engine as _;
use http::HeaderMap;
use ring::rand::SystemRandom;
use ring::signature::{self as sig, KeyPair as _};
use rustls::pki_types::pem::PemObject;
use serde_json::{json, Value};

use super::*;
use crate::fetch::testkit::{Canned, TestCa, TestServer, RSA_KEY_PEM};

const NOW: i64 = 1_767_000_000;
const AUD: &str = "https://hooks.example.com/pubsub";
const SA: &str = "push@proj.iam.gserviceaccount.com";

fn b64(b: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

enum Signer {
    Rsa(sig::RsaKeyPair),
    Ec(sig::EcdsaKeyPair),
    Ed(sig::Ed25519KeyPair),
}

impl Signer {
    fn rsa() -> Signer {
        let der =
            rustls::pki_types::PrivatePkcs8KeyDer::from_pem_slice(RSA_KEY_PEM.as_bytes()).unwrap();
        Signer::Rsa(sig::RsaKeyPair::from_pkcs8(der.secret_pkcs8_der()).unwrap())
    }

    fn ec() -> Signer {
        let rng = SystemRandom::new();
        let alg = &sig::ECDSA_P256_SHA256_FIXED_SIGNING;
        let pk8 = sig::EcdsaKeyPair::generate_pkcs8(alg, &rng).unwrap();
        Signer::Ec(sig::EcdsaKeyPair::from_pkcs8(alg, pk8.as_ref(), &rng).unwrap())
    }

    fn ed() -> Signer {
        let pk8 = sig::Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).unwrap();
        Signer::Ed(sig::Ed25519KeyPair::from_pkcs8(pk8.as_ref()).unwrap())
    }

    fn alg(&self) -> &'static str {
        match self {
            Signer::Rsa(_) => "RS256",
            Signer::Ec(_) => "ES256",
            Signer::Ed(_) => "EdDSA",
        }
    }

    /// The public JWK.
    fn jwk(&self, kid: &str) -> Value {
        match self {
            Signer::Rsa(k) => {
                let c = sig::RsaPublicKeyComponents::<Vec<u8>>::from(k.public());
                json!({"kty":"RSA","kid":kid,"use":"sig","alg":"RS256","n":b64(&c.n),"e":b64(&c.e)})
            }
            Signer::Ec(k) => {
                let p = k.public_key().as_ref();
                json!({"kty":"EC","crv":"P-256","kid":kid,"x":b64(&p[1..33]),"y":b64(&p[33..])})
            }
            Signer::Ed(k) => {
                json!({"kty":"OKP","crv":"Ed25519","kid":kid,"x":b64(k.public_key().as_ref())})
            }
        }
    }

    fn sign_raw(&self, msg: &[u8]) -> Vec<u8> {
        let rng = SystemRandom::new();
        match self {
            Signer::Rsa(k) => {
                let mut out = vec![0; k.public().modulus_len()];
                k.sign(&sig::RSA_PKCS1_SHA256, &rng, msg, &mut out).unwrap();
                out
            }
            Signer::Ec(k) => k.sign(&rng, msg).unwrap().as_ref().to_vec(),
            Signer::Ed(k) => k.sign(msg).as_ref().to_vec(),
        }
    }

    fn token(&self, header: &Value, claims: &Value) -> String {
        let input = format!(
            "{}.{}",
            b64(header.to_string().as_bytes()),
            b64(claims.to_string().as_bytes())
        );
        let s = self.sign_raw(input.as_bytes());
        format!("{input}.{}", b64(&s))
    }

    fn signed(&self, kid: &str, claims: &Value) -> String {
        self.token(
            &json!({"alg": self.alg(), "kid": kid, "typ": "JWT"}),
            claims,
        )
    }
}

fn jwks(keys: &[Value]) -> Vec<u8> {
    json!({ "keys": keys }).to_string().into_bytes()
}

fn inline(keys: &[Value]) -> KeySource {
    KeySource::Inline(Arc::new(KeySet::from_jwks_json(&jwks(keys)).unwrap()))
}

fn bearer(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert("authorization", format!("Bearer {token}").parse().unwrap());
    h
}

fn google_claims() -> Value {
    json!({
        "iss": "https://accounts.google.com",
        "aud": AUD,
        "azp": "1234",
        "email": SA,
        "email_verified": true,
        "iat": NOW - 10,
        "exp": NOW + 3590,
        "sub": "1234"
    })
}

fn with(mut v: Value, key: &str, val: Value) -> Value {
    v[key] = val;
    v
}

fn without(mut v: Value, key: &str) -> Value {
    v.as_object_mut().unwrap().remove(key);
    v
}

struct Google {
    key: Signer,
    verifier: JwtVerifier,
}

fn google() -> Google {
    let key = Signer::rsa();
    let verifier = JwtVerifier::new(
        JwtPolicy::google_pubsub(AUD, &[SA.to_owned()]),
        inline(&[key.jwk("g1")]),
    )
    .unwrap();
    Google { key, verifier }
}

impl Google {
    async fn check(&self, token: &str) -> Result<JwtVerified, JwtError> {
        self.verifier
            .verify(&bearer(token), Body::new(b"{}"), NOW, Instant::now())
            .await
    }

    async fn claims(&self, claims: Value) -> Result<JwtVerified, JwtError> {
        self.check(&self.key.signed("g1", &claims)).await
    }
}

#[tokio::test]
async fn google_pubsub_accepts_its_token() {
    let g = google();
    let v = g.claims(google_claims()).await.unwrap();
    assert_eq!(v.alg, Algorithm::Rs256);
    assert_eq!(v.kid.as_deref(), Some("g1"));
    assert_eq!(v.issued_at, Some(NOW - 10));
    assert_eq!(v.claims["email"], SA);
    // the other issuer spelling, and aud as an array
    let c = with(google_claims(), "iss", json!("accounts.google.com"));
    let c = with(c, "aud", json!(["other", AUD]));
    g.claims(c).await.unwrap();
}

#[tokio::test]
async fn google_pubsub_refuses_wrong_claims() {
    let g = google();
    let mismatch = |c: &str| Err(JwtError::ClaimMismatch(c.to_owned()));
    let cases = [
        (
            with(google_claims(), "aud", json!("https://other.example/")),
            "aud",
        ),
        (with(google_claims(), "aud", json!(["a", "b"])), "aud"),
        (without(google_claims(), "aud"), "aud"),
        (
            with(google_claims(), "iss", json!("https://evil.example")),
            "iss",
        ),
        (without(google_claims(), "iss"), "iss"),
        (
            with(google_claims(), "email", json!("x@evil.example")),
            "email",
        ),
        (without(google_claims(), "email"), "email"),
        (
            with(google_claims(), "email_verified", json!(false)),
            "email_verified",
        ),
        (
            with(google_claims(), "email_verified", json!("true")),
            "email_verified",
        ),
    ];
    for (claims, which) in cases {
        assert_eq!(g.claims(claims.clone()).await, mismatch(which), "{claims}");
    }
}

#[tokio::test]
async fn expiry_and_not_before_with_leeway() {
    let g = google();
    // exp within the 60 s leeway still passes, beyond it is expired
    g.claims(with(google_claims(), "exp", json!(NOW - 59)))
        .await
        .unwrap();
    assert_eq!(
        g.claims(with(google_claims(), "exp", json!(NOW - 60)))
            .await,
        Err(JwtError::Expired("exp"))
    );
    assert_eq!(
        g.claims(with(google_claims(), "exp", json!(NOW - 7200)))
            .await,
        Err(JwtError::Expired("exp"))
    );
    assert_eq!(
        g.claims(without(google_claims(), "exp")).await,
        Err(JwtError::BadToken("no exp"))
    );
    assert_eq!(
        g.claims(with(google_claims(), "exp", json!("soon"))).await,
        Err(JwtError::BadToken("exp"))
    );
    // fractional NumericDate
    g.claims(with(google_claims(), "exp", json!(NOW as f64 + 10.5)))
        .await
        .unwrap();
    // not yet valid
    g.claims(with(google_claims(), "nbf", json!(NOW + 60)))
        .await
        .unwrap();
    assert_eq!(
        g.claims(with(google_claims(), "nbf", json!(NOW + 61)))
            .await,
        Err(JwtError::Expired("nbf"))
    );
    assert_eq!(
        g.claims(with(google_claims(), "iat", json!(NOW + 3600)))
            .await,
        Err(JwtError::Expired("iat"))
    );
}

#[tokio::test]
async fn alg_none_is_refused() {
    let g = google();
    let header = b64(br#"{"alg":"none","kid":"g1"}"#);
    let body = b64(google_claims().to_string().as_bytes());
    for token in [format!("{header}.{body}."), format!("{header}.{body}.AAAA")] {
        assert_eq!(
            g.check(&token).await,
            Err(JwtError::BadToken("algorithm not allowed")),
            "{token}"
        );
    }
    // and a generic policy that allows every algorithm refuses it just as well
    let v = JwtVerifier::new(JwtPolicy::default(), inline(&[g.key.jwk("g1")])).unwrap();
    let token = format!("{header}.{body}.");
    assert_eq!(
        v.verify(&bearer(&token), Body::EMPTY, NOW, Instant::now())
            .await,
        Err(JwtError::BadToken("algorithm not allowed"))
    );
}

#[tokio::test]
async fn hs256_signed_with_the_public_key_is_refused() {
    use hmac::{KeyInit as _, Mac as _};
    let g = google();
    let jwk = g.key.jwk("g1");
    // Every form an attacker might feed as the HMAC secret: the JWK text, the modulus.
    let secrets: Vec<Vec<u8>> = vec![
        jwk.to_string().into_bytes(),
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(jwk["n"].as_str().unwrap())
            .unwrap(),
    ];
    for secret in secrets {
        let input = format!(
            "{}.{}",
            b64(br#"{"alg":"HS256","kid":"g1","typ":"JWT"}"#),
            b64(google_claims().to_string().as_bytes())
        );
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(&secret).unwrap();
        mac.update(input.as_bytes());
        let token = format!("{input}.{}", b64(&mac.finalize().into_bytes()));
        assert_eq!(
            g.check(&token).await,
            Err(JwtError::BadToken("algorithm not allowed"))
        );
    }
}

#[tokio::test]
async fn signature_and_key_checks() {
    let g = google();
    let good = g.key.signed("g1", &google_claims());
    // a payload byte changed after signing
    let parts: Vec<&str> = good.split('.').collect();
    let forged = with(google_claims(), "email", json!("x@evil.example"));
    let tampered = format!(
        "{}.{}.{}",
        parts[0],
        b64(forged.to_string().as_bytes()),
        parts[2]
    );
    assert_eq!(
        g.check(&tampered).await,
        Err(JwtError::BadToken("bad signature"))
    );
    // unknown kid (inline keys: no refetch)
    assert_eq!(
        g.check(&g.key.signed("other", &google_claims())).await,
        Err(JwtError::BadToken("unknown key"))
    );
    // the route allows RS256 only: an ES256 token, even with a known kid, is refused
    let ec = Signer::ec();
    assert_eq!(
        g.check(&ec.signed("g1", &google_claims())).await,
        Err(JwtError::BadToken("algorithm not allowed"))
    );
    // google requires a kid
    let no_kid = g.key.token(&json!({"alg":"RS256"}), &google_claims());
    assert_eq!(g.check(&no_kid).await, Err(JwtError::BadToken("no kid")));
    // crit is refused
    let crit = g.key.token(
        &json!({"alg":"RS256","kid":"g1","crit":["exp"]}),
        &google_claims(),
    );
    assert_eq!(
        g.check(&crit).await,
        Err(JwtError::BadToken("crit header not supported"))
    );
    // shapes
    for bad in ["", "a.b", "a.b.c.d", "!!.e30.AA", &good.replace('.', "..")] {
        assert!(
            matches!(g.check(bad).await, Err(JwtError::BadToken(_))),
            "{bad}"
        );
    }
    let padded = format!("{good}=");
    assert!(matches!(g.check(&padded).await, Err(JwtError::BadToken(_))));
}

#[tokio::test]
async fn es256_and_eddsa_with_a_generic_policy() {
    let (ec, ed) = (Signer::ec(), Signer::ed());
    let policy = JwtPolicy {
        issuers: vec!["me".into()],
        audiences: vec!["you".into()],
        claims: vec![ClaimRule {
            name: "tier".into(),
            one_of: vec![json!("gold"), json!(3)],
        }],
        ..JwtPolicy::default()
    };
    let v = JwtVerifier::new(policy, inline(&[ec.jwk("e"), ed.jwk("d")])).unwrap();
    let claims = json!({"iss":"me","aud":"you","exp":NOW+60,"tier":3,"jti":"abc"});
    for s in [&ec, &ed] {
        let kid = if s.alg() == "ES256" { "e" } else { "d" };
        let got = v
            .verify(
                &bearer(&s.signed(kid, &claims)),
                Body::EMPTY,
                NOW,
                Instant::now(),
            )
            .await
            .unwrap();
        assert_eq!(got.id.as_deref(), Some("abc"));
        // without kid: every key of the type is tried
        let t = s.token(&json!({"alg": s.alg()}), &claims);
        v.verify(&bearer(&t), Body::EMPTY, NOW, Instant::now())
            .await
            .unwrap();
    }
    let bad = with(claims.clone(), "tier", json!("silver"));
    assert_eq!(
        v.verify(
            &bearer(&ec.signed("e", &bad)),
            Body::EMPTY,
            NOW,
            Instant::now()
        )
        .await,
        Err(JwtError::ClaimMismatch("tier".into()))
    );
    // a kid naming a key of another type is an unknown key for this algorithm
    assert_eq!(
        v.verify(
            &bearer(&ec.signed("d", &claims)),
            Body::EMPTY,
            NOW,
            Instant::now()
        )
        .await,
        Err(JwtError::BadToken("unknown key"))
    );
    // empty algorithm list is a config error
    assert!(JwtVerifier::new(
        JwtPolicy {
            algorithms: vec![],
            ..JwtPolicy::default()
        },
        inline(&[ec.jwk("e")])
    )
    .is_err());
}

fn plaid_headers(token: &str) -> HeaderMap {
    let mut h = HeaderMap::new();
    h.insert(PLAID_HEADER, token.parse().unwrap());
    h
}

fn body_sha256(body: &[u8]) -> String {
    crate::verify::hex_lower(&sha2::Sha256::digest(body))
}

#[tokio::test]
async fn plaid_preset() {
    let key = Signer::ec();
    let v = JwtVerifier::new(JwtPolicy::plaid(), inline(&[key.jwk("6c5516e1")])).unwrap();
    let body = b"{\n  \"webhook_type\": \"TRANSACTIONS\",\n  \"webhook_code\": \"SYNC_UPDATES_AVAILABLE\"\n}";
    let claims = json!({"iat": NOW - 30, "request_body_sha256": body_sha256(body)});
    let run = |token: String, body: &'static [u8]| {
        let v = v.clone();
        async move {
            v.verify(&plaid_headers(&token), Body::new(body), NOW, Instant::now())
                .await
        }
    };
    let ok = run(key.signed("6c5516e1", &claims), body).await.unwrap();
    assert_eq!(ok.issued_at, Some(NOW - 30));
    // body split in frames hashes the same
    let chunks = [
        bytes::Bytes::from_static(&body[..7]),
        bytes::Bytes::from_static(&body[7..]),
    ];
    v.verify(
        &plaid_headers(&key.signed("6c5516e1", &claims)),
        Body::chunked(&chunks),
        NOW,
        Instant::now(),
    )
    .await
    .unwrap();
    // tampered body
    let tampered: &'static [u8] =
        b"{\n  \"webhook_type\": \"TRANSACTIONS\",\n  \"webhook_code\": \"DEFAULT_UPDATE\"\n}";
    assert_eq!(
        run(key.signed("6c5516e1", &claims), tampered).await,
        Err(JwtError::ClaimMismatch("request_body_sha256".into()))
    );
    // the hash in uppercase is not what Plaid sends
    let upper = with(
        claims.clone(),
        "request_body_sha256",
        json!(body_sha256(body).to_uppercase()),
    );
    assert_eq!(
        run(key.signed("6c5516e1", &upper), body).await,
        Err(JwtError::ClaimMismatch("request_body_sha256".into()))
    );
    // iat: 5 min old passes, older does not; no iat is refused
    run(
        key.signed("6c5516e1", &with(claims.clone(), "iat", json!(NOW - 300))),
        body,
    )
    .await
    .unwrap();
    assert_eq!(
        run(
            key.signed("6c5516e1", &with(claims.clone(), "iat", json!(NOW - 301))),
            body
        )
        .await,
        Err(JwtError::Expired("iat"))
    );
    assert_eq!(
        run(
            key.signed("6c5516e1", &without(claims.clone(), "iat")),
            body
        )
        .await,
        Err(JwtError::BadToken("no iat"))
    );
    // ES256 only: an EdDSA token with a matching kid is refused
    let ed = Signer::ed();
    assert_eq!(
        run(ed.signed("6c5516e1", &claims), body).await,
        Err(JwtError::BadToken("algorithm not allowed"))
    );
    // the token is in Plaid-Verification, not Authorization
    assert_eq!(
        v.verify(
            &bearer(&key.signed("6c5516e1", &claims)),
            Body::new(body),
            NOW,
            Instant::now()
        )
        .await,
        Err(JwtError::Missing)
    );
}

#[test]
fn token_extraction() {
    let mut h = HeaderMap::new();
    assert_eq!(token_from_headers(&h, None), Err(JwtError::Missing));
    h.insert("authorization", "bearer   abc.def.ghi".parse().unwrap());
    assert_eq!(token_from_headers(&h, None), Ok("abc.def.ghi"));
    h.insert("authorization", "Basic dXNlcjpwYXNz".parse().unwrap());
    assert!(matches!(
        token_from_headers(&h, None),
        Err(JwtError::BadToken(_))
    ));
    h.insert("authorization", "Bearer".parse().unwrap());
    assert!(matches!(
        token_from_headers(&h, None),
        Err(JwtError::BadToken(_))
    ));
    h.insert("authorization", "Bearer a".parse().unwrap());
    h.append("authorization", "Bearer b".parse().unwrap());
    assert_eq!(
        token_from_headers(&h, None),
        Err(JwtError::BadToken("token header sent twice"))
    );
    h.insert("x-token", "".parse().unwrap());
    assert_eq!(
        token_from_headers(&h, Some("x-token")),
        Err(JwtError::Missing)
    );
}

#[test]
fn jwks_parsing() {
    let (ec, ed, rsa) = (Signer::ec(), Signer::ed(), Signer::rsa());
    let set = KeySet::from_jwks_json(&jwks(&[
        ec.jwk("e"),
        ed.jwk("d"),
        rsa.jwk("r"),
        json!({"kty":"oct","k":"c2VjcmV0","kid":"h"}),
        json!({"kty":"EC","crv":"P-384","x":"AA","y":"AA","kid":"p384"}),
        with(ec.jwk("enc"), "use", json!("enc")),
        with(ec.jwk("hs"), "alg", json!("HS256")),
        with(ec.jwk("mismatch"), "alg", json!("RS256")),
        json!("not an object"),
    ]))
    .unwrap();
    let kids: Vec<_> = set.keys().iter().filter_map(Jwk::kid).collect();
    assert_eq!(kids, ["e", "d", "r"]);
    assert!(KeySet::from_jwks_json(&jwks(&[json!({"kty":"oct","k":"AA"})])).is_err());
    assert!(KeySet::from_jwks_json(b"[]").is_err());
    assert!(KeySet::from_jwks_json(&vec![b' '; MAX_JWKS_BYTES + 1]).is_err());
}

#[test]
fn reasons_and_statuses() {
    assert_eq!(JwtError::BadToken("x").reason(), "bad_token");
    assert_eq!(JwtError::Expired("exp").reason(), "token_expired");
    assert_eq!(
        JwtError::ClaimMismatch("aud".into()).reason(),
        "claim_mismatch"
    );
    assert_eq!(JwtError::KeysUnavailable.reason(), "keys_unavailable");
    assert_eq!(JwtError::KeysUnavailable.status(), 503);
    assert_eq!(JwtError::Expired("exp").status(), 401);
    assert_eq!(JwtError::Missing.status(), 400);
}

// === remote keys ===

struct Remote {
    _ca: TestCa,
    srv: TestServer,
    cache: Arc<JwksCache>,
    verifier: JwtVerifier,
}

const JWKS_PATH: &str = "/oauth2/v3/certs";

async fn remote(keys: &[Value], cache_control: &str) -> Remote {
    let ca = TestCa::new();
    let srv = TestServer::start(&ca).await;
    srv.set(
        JWKS_PATH,
        Canned::ok(jwks(keys)).header("cache-control", cache_control),
    );
    let cache = Arc::new(
        JwksCache::new(
            ca.fetcher(),
            &srv.url(JWKS_PATH),
            JwksOptions {
                min_ttl: Duration::from_secs(60),
                max_ttl: Duration::from_secs(3600),
                default_ttl: Duration::from_secs(300),
                refetch_interval: Duration::from_secs(30),
            },
        )
        .unwrap(),
    );
    let verifier =
        JwtVerifier::new(JwtPolicy::default(), KeySource::Remote(Arc::clone(&cache))).unwrap();
    Remote {
        _ca: ca,
        srv,
        cache,
        verifier,
    }
}

impl Remote {
    async fn check(&self, token: &str, at: Instant) -> Result<JwtVerified, JwtError> {
        self.verifier
            .verify(&bearer(token), Body::EMPTY, NOW, at)
            .await
    }
}

fn claims() -> Value {
    json!({"exp": NOW + 60})
}

#[tokio::test]
async fn unknown_kid_refetches_once_per_interval() {
    let (k1, k2) = (Signer::ec(), Signer::ec());
    let r = remote(&[k1.jwk("k1")], "max-age=600").await;
    let t0 = Instant::now();
    r.check(&k1.signed("k1", &claims()), t0).await.unwrap();
    r.check(&k1.signed("k1", &claims()), t0).await.unwrap();
    assert_eq!(r.srv.hits(JWKS_PATH), 1, "cached");

    // k2 is published; a token with it triggers exactly one refetch
    r.srv.set(
        JWKS_PATH,
        Canned::ok(jwks(&[k1.jwk("k1"), k2.jwk("k2")])).header("cache-control", "max-age=600"),
    );
    let t1 = t0 + Duration::from_secs(31);
    r.check(&k2.signed("k2", &claims()), t1).await.unwrap();
    assert_eq!(r.srv.hits(JWKS_PATH), 2);
    r.check(&k2.signed("k2", &claims()), t1).await.unwrap();
    assert_eq!(r.srv.hits(JWKS_PATH), 2);

    // made-up kids: one refetch, then none until the interval passed
    let bogus = Signer::ec();
    for i in 0..5 {
        assert_eq!(
            r.check(
                &bogus.signed(&format!("nope{i}"), &claims()),
                t1 + Duration::from_secs(40)
            )
            .await,
            Err(JwtError::BadToken("unknown key"))
        );
    }
    assert_eq!(r.srv.hits(JWKS_PATH), 3);
    r.check(
        &bogus.signed("nope", &claims()),
        t1 + Duration::from_secs(71),
    )
    .await
    .unwrap_err();
    assert_eq!(r.srv.hits(JWKS_PATH), 4);
    assert_eq!(r.cache.fetches(), 4);
}

#[tokio::test]
async fn concurrent_unknown_kids_share_one_fetch() {
    let k1 = Signer::ec();
    let r = remote(&[k1.jwk("k1")], "max-age=600").await;
    let t0 = Instant::now();
    let tokens: Vec<String> = (0..8).map(|_| k1.signed("k1", &claims())).collect();
    let all = futures_join(tokens.iter().map(|t| r.check(t, t0))).await;
    assert!(all.iter().all(Result::is_ok));
    assert_eq!(r.srv.hits(JWKS_PATH), 1);
}

async fn futures_join<F: std::future::Future>(futs: impl Iterator<Item = F>) -> Vec<F::Output> {
    // A small join without another crate: poll every future to completion in turn would
    // serialise them; a JoinSet needs 'static. Pin them and poll them together.
    let mut futs: Vec<std::pin::Pin<Box<F>>> = futs.map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = futs.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, o) in futs.iter_mut().zip(out.iter_mut()) {
            if o.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *o = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().map(Option::unwrap).collect()
}

#[tokio::test]
async fn endpoint_down_cached_keys_serve_until_expiry_then_keys_unavailable() {
    let k1 = Signer::ec();
    // max-age below min_ttl is raised to it (60 s)
    let r = remote(&[k1.jwk("k1")], "max-age=5").await;
    let t0 = Instant::now();
    let token = k1.signed("k1", &claims());
    r.check(&token, t0).await.unwrap();
    r.srv.set_down(true);

    // an unknown kid while down: one failed refetch, the cached keys still serve
    let other = Signer::ec();
    assert_eq!(
        r.check(&other.signed("k9", &claims()), t0 + Duration::from_secs(31))
            .await,
        Err(JwtError::BadToken("unknown key"))
    );
    assert_eq!(r.cache.failures(), 1);
    r.check(&token, t0 + Duration::from_secs(59)).await.unwrap();

    // expired: one attempt, then fail closed
    assert_eq!(
        r.check(&token, t0 + Duration::from_secs(61)).await,
        Err(JwtError::KeysUnavailable)
    );
    assert_eq!(r.cache.failures(), 2);
    // within the interval no new attempt is made
    let before = r.srv.connections();
    assert_eq!(
        r.check(&token, t0 + Duration::from_secs(70)).await,
        Err(JwtError::KeysUnavailable)
    );
    assert_eq!(r.srv.connections(), before);

    // back up: the next attempt (after the interval) recovers
    r.srv.set_down(false);
    r.check(&token, t0 + Duration::from_secs(92)).await.unwrap();
    assert_eq!(r.srv.hits(JWKS_PATH), 2);
}

#[tokio::test]
async fn first_fetch_failing_is_keys_unavailable() {
    let k1 = Signer::ec();
    let r = remote(&[k1.jwk("k1")], "max-age=600").await;
    r.srv.set(JWKS_PATH, Canned::ok("not json"));
    assert_eq!(
        r.check(&k1.signed("k1", &claims()), Instant::now()).await,
        Err(JwtError::KeysUnavailable)
    );
    assert!(JwksCache::new(
        TestCa::new().fetcher(),
        "http://x/keys",
        JwksOptions::default()
    )
    .is_err());
}

/// The second phase's review, what held: keys named or carried by the token's header are
/// never used, a `kid` is only a name, duplicate header members and nested or huge tokens are
/// refused, and `aud` may be an array holding the allowed audience among others (RFC 7519).
#[tokio::test]
async fn review_header_keys_and_token_shapes_are_not_trusted() {
    let g = google();
    let generic = JwtVerifier::new(
        JwtPolicy {
            audiences: vec![AUD.to_owned()],
            ..JwtPolicy::default()
        },
        inline(&[g.key.jwk("g1")]),
    )
    .unwrap();
    let check = |t: String| {
        let v = &generic;
        async move {
            v.verify(&bearer(&t), Body::new(b"{}"), NOW, Instant::now())
                .await
        }
    };
    let evil = Signer::ec();
    for (name, value) in [
        ("jwk", evil.jwk("g1")),
        ("jku", json!("https://evil.example/jwks.json")),
        ("x5u", json!("https://evil.example/cert.pem")),
        ("x5c", json!(["MIIBevil"])),
    ] {
        let mut h = json!({"alg": "ES256", "kid": "g1"});
        h[name] = value;
        let t = evil.token(&h, &google_claims());
        assert_eq!(
            check(t).await,
            Err(JwtError::BadToken("unknown key")),
            "{name}"
        );
    }
    for kid in [
        "../../jwks",
        "https://evil.example/k",
        "g1\u{0}",
        "g1/../g1",
        "G1",
    ] {
        assert_eq!(
            g.check(&g.key.signed(kid, &google_claims())).await,
            Err(JwtError::BadToken("unknown key")),
            "{kid:?}"
        );
    }
    // A header with `alg` twice (one parser reads `none`, another `RS256`).
    let raw = |header: &str, claims: &str| {
        let input = format!("{}.{}", b64(header.as_bytes()), b64(claims.as_bytes()));
        let s = g.key.sign_raw(input.as_bytes());
        format!("{input}.{}", b64(&s))
    };
    let claims = google_claims().to_string();
    let dup = raw(r#"{"alg":"none","alg":"RS256","kid":"g1"}"#, &claims);
    assert_eq!(
        g.check(&dup).await,
        Err(JwtError::BadToken("header not JSON"))
    );
    // A nested JWS (`cty: JWT`, the payload a token) is no claims object.
    let inner = g.key.signed("g1", &google_claims());
    let nested = raw(
        r#"{"alg":"RS256","kid":"g1","cty":"JWT"}"#,
        &json!(inner).to_string(),
    );
    assert_eq!(
        g.check(&nested).await,
        Err(JwtError::BadToken("payload not a JSON object"))
    );
    // Over 16 KiB: refused before any decoding.
    let pad = "x".repeat(MAX_TOKEN_BYTES);
    let huge = g
        .key
        .signed("g1", &with(google_claims(), "pad", json!(pad)));
    assert_eq!(
        g.check(&huge).await,
        Err(JwtError::BadToken("token too long"))
    );
    // `aud` as an array: one allowed member is enough; none is a mismatch.
    let aud = json!(["https://other.example", AUD]);
    assert!(g.claims(with(google_claims(), "aud", aud)).await.is_ok());
    let aud = json!(["https://other.example", [AUD], {"aud": AUD}]);
    assert_eq!(
        g.claims(with(google_claims(), "aud", aud)).await,
        Err(JwtError::ClaimMismatch("aud".to_owned()))
    );
}
