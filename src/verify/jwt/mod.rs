//! The `jwt` engine (SPEC "More schemes"): a JWS compact token in `Authorization: Bearer` or a
//! named header, verified with public keys from a JWKS document, then its claims checked.
//!
//! * Crypto is `ring` (already in the tree through rustls), JSON is serde_json, base64url is
//!   the `base64` crate: nothing hand-parsed. A JWT crate would add a second crypto stack
//!   (jsonwebtoken 10 builds on aws-lc-rs or RustCrypto, not ring) for three verify calls.
//! * Algorithms: `RS256` (RSA PKCS#1 v1.5, 2048–8192-bit keys), `ES256` (P-256, the JWS
//!   fixed `r‖s` form), `EdDSA` (Ed25519). An allow-list per route picks among them. Anything
//!   else — `none`, every HMAC algorithm (`HS256` signed with a public key as the secret is the
//!   classic confusion attack), RSA-PSS, other curves — is `bad_token`. The key must be of
//!   the algorithm's type, and a JWK that names its own `alg` is used only for that one.
//! * Order: token found, parsed (bounded: 16 KiB), algorithm allowed, key found (by `kid`;
//!   without `kid` only when the route does not require one, trying every key of the type),
//!   signature; only then are the claims read: `exp`, `nbf`, `iat` (with leeway), `iss`,
//!   `aud` (string or array: one must be allowed), required claim values, the body hash.
//! * `crit` in the header is refused (no extension is understood); `jku`, `x5u`, `jwk` and
//!   `x5c` are ignored: keys come only from the route's JWKS.
//! * Reasons: `bad_token`, `token_expired`, `claim_mismatch` (401), `keys_unavailable`
//!   (503), `missing_signature` (400) when there is no token at all.

use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Map, Value};
use sha2::Digest as _;

use super::Body;

mod jwks;
pub use jwks::{JwksCache, JwksOptions};

pub(crate) mod scheme;
#[cfg(test)]
mod tests;

/// Largest token accepted, in bytes.
pub const MAX_TOKEN_BYTES: usize = 16 * 1024;
/// Largest JWKS document accepted, in bytes.
pub const MAX_JWKS_BYTES: usize = 64 * 1024;
/// Largest number of keys read from a JWKS document.
const MAX_KEYS: usize = 32;

/// Google's JWKS for the tokens it signs (Pub/Sub push among them).
pub const GOOGLE_JWKS_URL: &str = "https://www.googleapis.com/oauth2/v3/certs";
/// The header Plaid sends its token in.
pub const PLAID_HEADER: &str = "Plaid-Verification";

/// A JWS algorithm this engine can verify.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// RSASSA-PKCS1-v1_5 with SHA-256.
    Rs256,
    /// ECDSA P-256 with SHA-256.
    Es256,
    /// Ed25519.
    EdDsa,
}

impl Algorithm {
    /// Every algorithm, the default allow-list.
    pub const ALL: [Algorithm; 3] = [Algorithm::Rs256, Algorithm::Es256, Algorithm::EdDsa];

    /// The JOSE name (`RS256`, `ES256`, `EdDSA`); `None` for every other name.
    pub fn parse(name: &str) -> Option<Algorithm> {
        match name {
            "RS256" => Some(Algorithm::Rs256),
            "ES256" => Some(Algorithm::Es256),
            "EdDSA" => Some(Algorithm::EdDsa),
            _ => None,
        }
    }

    /// The JOSE name.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Rs256 => "RS256",
            Algorithm::Es256 => "ES256",
            Algorithm::EdDsa => "EdDSA",
        }
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum JwtError {
    /// No token in the request.
    #[error("no token")]
    Missing,
    /// Unparseable, algorithm not allowed, unknown key, or a bad signature (the detail is
    /// for logs).
    #[error("bad token: {0}")]
    BadToken(&'static str),
    /// `exp` passed, `nbf` not reached, `iat` in the future or too old.
    #[error("token expired: {0}")]
    Expired(&'static str),
    /// `iss`, `aud`, a required claim or the body hash does not match (the claim's name).
    #[error("claim mismatch: {0}")]
    ClaimMismatch(String),
    /// No usable keys: the JWKS could not be fetched and no unexpired copy is cached.
    #[error("keys unavailable")]
    KeysUnavailable,
}

impl JwtError {
    /// The SPEC reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            JwtError::Missing => "missing_signature",
            JwtError::BadToken(_) => "bad_token",
            JwtError::Expired(_) => "token_expired",
            JwtError::ClaimMismatch(_) => "claim_mismatch",
            JwtError::KeysUnavailable => "keys_unavailable",
        }
    }

    /// The status hookseal answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            JwtError::Missing => StatusCode::BAD_REQUEST,
            JwtError::KeysUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            _ => StatusCode::UNAUTHORIZED,
        }
    }
}

// === keys ===

#[derive(Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    /// The uncompressed point `04 ‖ x ‖ y`.
    P256(Vec<u8>),
    Ed25519([u8; 32]),
}

impl std::fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PublicKey::Rsa { .. } => "RSA",
            PublicKey::P256(_) => "P-256",
            PublicKey::Ed25519(_) => "Ed25519",
        })
    }
}

impl PublicKey {
    fn fits(&self, alg: Algorithm) -> bool {
        matches!(
            (self, alg),
            (PublicKey::Rsa { .. }, Algorithm::Rs256)
                | (PublicKey::P256(_), Algorithm::Es256)
                | (PublicKey::Ed25519(_), Algorithm::EdDsa)
        )
    }

    fn verify(&self, msg: &[u8], sig: &[u8]) -> bool {
        use ring::signature as s;
        match self {
            PublicKey::Rsa { n, e } => s::RsaPublicKeyComponents { n, e }
                .verify(&s::RSA_PKCS1_2048_8192_SHA256, msg, sig)
                .is_ok(),
            PublicKey::P256(point) => s::UnparsedPublicKey::new(&s::ECDSA_P256_SHA256_FIXED, point)
                .verify(msg, sig)
                .is_ok(),
            PublicKey::Ed25519(x) => s::UnparsedPublicKey::new(&s::ED25519, x)
                .verify(msg, sig)
                .is_ok(),
        }
    }
}

/// One public key of a JWKS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Jwk {
    kid: Option<String>,
    /// The one algorithm the JWK allows itself for, when it names one.
    alg: Option<Algorithm>,
    key: PublicKey,
}

impl Jwk {
    /// Its `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }
}

/// The usable keys of a JWKS document.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeySet {
    keys: Vec<Jwk>,
}

#[derive(Deserialize)]
struct RawJwks {
    keys: Vec<Value>,
}

#[derive(Deserialize)]
struct RawJwk {
    kty: String,
    kid: Option<String>,
    alg: Option<String>,
    #[serde(rename = "use")]
    use_: Option<String>,
    crv: Option<String>,
    n: Option<String>,
    e: Option<String>,
    x: Option<String>,
    y: Option<String>,
}

/// base64url as JWKs write it (no padding), tolerating padding.
fn b64url_lenient(s: &str) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::URL_SAFE,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    ENGINE.decode(s).ok()
}

fn strip_leading_zeros(mut b: Vec<u8>) -> Vec<u8> {
    let skip = b.iter().take_while(|&&x| x == 0).count();
    b.drain(..skip);
    b
}

impl Jwk {
    /// A JWK of a supported type, `None` for any other (skipped, not an error: a JWKS may
    /// hold keys for other uses).
    fn from_raw(raw: RawJwk) -> Option<Jwk> {
        if raw.use_.as_deref().is_some_and(|u| u != "sig") {
            return None;
        }
        let alg = match raw.alg.as_deref() {
            None => None,
            Some(a) => Some(Algorithm::parse(a)?),
        };
        let key = match (raw.kty.as_str(), raw.crv.as_deref()) {
            ("RSA", _) => {
                let n = strip_leading_zeros(b64url_lenient(raw.n.as_deref()?)?);
                let e = strip_leading_zeros(b64url_lenient(raw.e.as_deref()?)?);
                if n.len() < 256 || n.len() > 1024 || e.is_empty() || e.len() > 8 {
                    return None;
                }
                PublicKey::Rsa { n, e }
            }
            ("EC", Some("P-256")) => {
                let x = b64url_lenient(raw.x.as_deref()?)?;
                let y = b64url_lenient(raw.y.as_deref()?)?;
                if x.len() != 32 || y.len() != 32 {
                    return None;
                }
                let mut point = Vec::with_capacity(65);
                point.push(4);
                point.extend_from_slice(&x);
                point.extend_from_slice(&y);
                PublicKey::P256(point)
            }
            ("OKP", Some("Ed25519")) => {
                PublicKey::Ed25519(b64url_lenient(raw.x.as_deref()?)?.try_into().ok()?)
            }
            _ => return None,
        };
        if alg.is_some_and(|a| !key.fits(a)) {
            return None;
        }
        Some(Jwk {
            kid: raw.kid,
            alg,
            key,
        })
    }
}

impl KeySet {
    /// Parses a JWKS document (`{"keys":[…]}`, at most [`MAX_JWKS_BYTES`]). Keys of other
    /// types, curves, algorithms or uses are skipped; a document with no usable key is an
    /// error.
    pub fn from_jwks_json(text: &[u8]) -> Result<KeySet, String> {
        if text.len() > MAX_JWKS_BYTES {
            return Err(format!("JWKS larger than {MAX_JWKS_BYTES} bytes"));
        }
        let raw: RawJwks =
            serde_json::from_slice(text).map_err(|e| format!("JWKS is not valid: {e}"))?;
        let keys: Vec<Jwk> = raw
            .keys
            .into_iter()
            .take(MAX_KEYS)
            .filter_map(|v| serde_json::from_value::<RawJwk>(v).ok())
            .filter_map(Jwk::from_raw)
            .collect();
        if keys.is_empty() {
            return Err("JWKS holds no RSA, P-256 or Ed25519 signing key".to_owned());
        }
        Ok(KeySet { keys })
    }

    /// The usable keys.
    pub fn keys(&self) -> &[Jwk] {
        &self.keys
    }

    /// Whether a key has this `kid`.
    pub fn has_kid(&self, kid: &str) -> bool {
        self.keys.iter().any(|k| k.kid.as_deref() == Some(kid))
    }

    /// Candidate keys for a token's `kid` and `alg`.
    fn candidates(&self, kid: Option<&str>, alg: Algorithm) -> Vec<&Jwk> {
        self.keys
            .iter()
            .filter(|k| {
                k.key.fits(alg)
                    && k.alg.is_none_or(|a| a == alg)
                    && kid.is_none_or(|want| k.kid.as_deref() == Some(want))
            })
            .collect()
    }
}

// === policy ===

/// A claim that must hold one of the listed values (JSON equality: `true` is not `"true"`).
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimRule {
    /// The claim's name.
    pub name: String,
    /// Its accepted values.
    pub one_of: Vec<Value>,
}

/// What a route accepts.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtPolicy {
    /// The header holding the bare token; `None`: `Authorization: Bearer <token>`.
    pub header: Option<String>,
    /// Accepted algorithms (never empty).
    pub algorithms: Vec<Algorithm>,
    /// Accepted `iss` values; empty: `iss` not checked.
    pub issuers: Vec<String>,
    /// Accepted `aud` values (one of the token's must be listed); empty: not checked.
    pub audiences: Vec<String>,
    /// Clock skew allowed on `exp`, `nbf` and an `iat` in the future.
    pub leeway: Duration,
    /// Whether a token without `exp` is refused.
    pub require_exp: bool,
    /// The oldest `iat` accepted (`now - iat > max_age` → expired; no leeway); when set, a
    /// token without `iat` is refused.
    pub max_age: Option<Duration>,
    /// Whether a token without `kid` is refused.
    pub require_kid: bool,
    /// Required claim values.
    pub claims: Vec<ClaimRule>,
    /// A claim that must equal the lowercase hex SHA-256 of the raw body (compared in
    /// constant time).
    pub body_sha256_claim: Option<String>,
}

impl Default for JwtPolicy {
    fn default() -> JwtPolicy {
        JwtPolicy {
            header: None,
            algorithms: Algorithm::ALL.to_vec(),
            issuers: Vec::new(),
            audiences: Vec::new(),
            leeway: Duration::from_secs(60),
            require_exp: true,
            max_age: None,
            require_kid: false,
            claims: Vec::new(),
            body_sha256_claim: None,
        }
    }
}

impl JwtPolicy {
    /// `google-pubsub`: Google-signed RS256 OIDC tokens in `Authorization: Bearer`; `iss`
    /// either spelling Google uses, `aud` = `audience` (the route's public URL unless the
    /// subscription sets another), `email` one of `emails` (the push service accounts) with
    /// `email_verified` true. Keys: [`GOOGLE_JWKS_URL`].
    pub fn google_pubsub(audience: &str, emails: &[String]) -> JwtPolicy {
        JwtPolicy {
            algorithms: vec![Algorithm::Rs256],
            issuers: vec![
                "accounts.google.com".to_owned(),
                "https://accounts.google.com".to_owned(),
            ],
            audiences: vec![audience.to_owned()],
            require_kid: true,
            claims: vec![
                ClaimRule {
                    name: "email".to_owned(),
                    one_of: emails.iter().map(|e| Value::String(e.clone())).collect(),
                },
                ClaimRule {
                    name: "email_verified".to_owned(),
                    one_of: vec![Value::Bool(true)],
                },
            ],
            ..JwtPolicy::default()
        }
    }

    /// `plaid`: the `Plaid-Verification` header, ES256 only, key by `kid`, `iat` at most
    /// 5 minutes old, `request_body_sha256` = hex SHA-256 of the body. Plaid's tokens carry no
    /// `exp`, `iss` or `aud`.
    pub fn plaid() -> JwtPolicy {
        JwtPolicy {
            header: Some(PLAID_HEADER.to_owned()),
            algorithms: vec![Algorithm::Es256],
            require_exp: false,
            max_age: Some(Duration::from_secs(5 * 60)),
            require_kid: true,
            body_sha256_claim: Some("request_body_sha256".to_owned()),
            ..JwtPolicy::default()
        }
    }
}

// === tokens ===

/// The token of a request: `Authorization: Bearer <token>` (scheme case-insensitive) or the
/// whole value of `header`. Absent or empty → [`JwtError::Missing`]; sent twice, not visible
/// ASCII, or another `Authorization` scheme → [`JwtError::BadToken`].
pub fn token_from_headers<'a>(
    headers: &'a HeaderMap,
    header: Option<&str>,
) -> Result<&'a str, JwtError> {
    let name = header.unwrap_or("authorization");
    let mut all = headers.get_all(name).iter();
    let value = all.next().ok_or(JwtError::Missing)?;
    if all.next().is_some() {
        return Err(JwtError::BadToken("token header sent twice"));
    }
    let text = value
        .to_str()
        .map_err(|_| JwtError::BadToken("token header not ASCII"))?
        .trim();
    if text.is_empty() {
        return Err(JwtError::Missing);
    }
    if header.is_some() {
        return Ok(text);
    }
    let (scheme, token) = text
        .split_once(' ')
        .ok_or(JwtError::BadToken("not a Bearer token"))?;
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Err(JwtError::BadToken("not a Bearer token"));
    }
    let token = token.trim_start();
    if token.is_empty() {
        return Err(JwtError::Missing);
    }
    Ok(token)
}

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    kid: Option<String>,
    crit: Option<Value>,
}

/// A token split and decoded, its signature not yet checked.
#[derive(Debug)]
pub struct ParsedToken {
    alg: Algorithm,
    kid: Option<String>,
    /// `header.payload`, the signed bytes.
    signing_input_len: usize,
    token: String,
    signature: Vec<u8>,
    claims: Map<String, Value>,
}

fn b64url_strict(s: &str) -> Result<Vec<u8>, JwtError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|_| JwtError::BadToken("not base64url"))
}

impl ParsedToken {
    /// Splits and decodes a compact JWS (`header.payload.signature`, base64url without
    /// padding, JSON header and payload objects). The algorithm must be one this engine
    /// verifies; whether the route allows it is checked in [`JwtVerifier::verify`].
    pub fn parse(token: &str) -> Result<ParsedToken, JwtError> {
        if token.len() > MAX_TOKEN_BYTES {
            return Err(JwtError::BadToken("token too long"));
        }
        let mut parts = token.split('.');
        let (Some(h), Some(p), Some(s), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(JwtError::BadToken("not three parts"));
        };
        let header: RawHeader = serde_json::from_slice(&b64url_strict(h)?)
            .map_err(|_| JwtError::BadToken("header not JSON"))?;
        if header.crit.is_some() {
            return Err(JwtError::BadToken("crit header not supported"));
        }
        let alg =
            Algorithm::parse(&header.alg).ok_or(JwtError::BadToken("algorithm not allowed"))?;
        let claims: Map<String, Value> = serde_json::from_slice(&b64url_strict(p)?)
            .map_err(|_| JwtError::BadToken("payload not a JSON object"))?;
        let signature = b64url_strict(s)?;
        if signature.is_empty() {
            return Err(JwtError::BadToken("no signature"));
        }
        Ok(ParsedToken {
            alg,
            kid: header.kid,
            signing_input_len: h.len() + 1 + p.len(),
            token: token.to_owned(),
            signature,
            claims,
        })
    }

    /// The `alg`.
    pub fn alg(&self) -> Algorithm {
        self.alg
    }

    /// The `kid`.
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Which key of `keys` signed it: `Ok(None)` when no key has its `kid` (and type), `Err`
    /// when a candidate key exists but none verifies.
    fn signer<'k>(&self, keys: &'k KeySet) -> Result<Option<&'k Jwk>, JwtError> {
        let msg = &self.token.as_bytes()[..self.signing_input_len];
        let mut any = false;
        for k in keys.candidates(self.kid.as_deref(), self.alg) {
            any = true;
            if k.key.verify(msg, &self.signature) {
                return Ok(Some(k));
            }
        }
        if any {
            Err(JwtError::BadToken("bad signature"))
        } else {
            Ok(None)
        }
    }
}

/// A verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct JwtVerified {
    /// The algorithm it was signed with.
    pub alg: Algorithm,
    /// The signing key's `kid`.
    pub kid: Option<String>,
    /// `jti`, when a string (a dedupe id).
    pub id: Option<String>,
    /// `iat`, when present.
    pub issued_at: Option<i64>,
    /// Every claim.
    pub claims: Map<String, Value>,
}

/// A NumericDate claim: absent → `Ok(None)`; a number (fraction dropped) → seconds.
fn numeric_date(claims: &Map<String, Value>, name: &'static str) -> Result<Option<i64>, JwtError> {
    let Some(v) = claims.get(name) else {
        return Ok(None);
    };
    let n = v.as_number().ok_or(JwtError::BadToken(name))?;
    if let Some(i) = n.as_i64() {
        return Ok(Some(i));
    }
    match n.as_f64() {
        #[allow(clippy::cast_possible_truncation)]
        Some(f) if f.is_finite() && f.abs() < 9.0e15 => Ok(Some(f.floor() as i64)),
        _ => Err(JwtError::BadToken(name)),
    }
}

fn secs(d: Duration) -> i64 {
    i64::try_from(d.as_secs()).unwrap_or(i64::MAX)
}

/// Checks the claims of a token whose signature verified.
fn check_claims(
    policy: &JwtPolicy,
    claims: &Map<String, Value>,
    body: Body<'_>,
    now: i64,
) -> Result<Option<i64>, JwtError> {
    let leeway = secs(policy.leeway);
    let exp = numeric_date(claims, "exp")?;
    let nbf = numeric_date(claims, "nbf")?;
    let iat = numeric_date(claims, "iat")?;
    match exp {
        Some(exp) if now.saturating_sub(leeway) >= exp => return Err(JwtError::Expired("exp")),
        None if policy.require_exp => return Err(JwtError::BadToken("no exp")),
        _ => {}
    }
    if nbf.is_some_and(|nbf| now.saturating_add(leeway) < nbf) {
        return Err(JwtError::Expired("nbf"));
    }
    if iat.is_some_and(|iat| now.saturating_add(leeway) < iat) {
        return Err(JwtError::Expired("iat"));
    }
    if let Some(max_age) = policy.max_age {
        let iat = iat.ok_or(JwtError::BadToken("no iat"))?;
        if now.saturating_sub(iat) > secs(max_age) {
            return Err(JwtError::Expired("iat"));
        }
    }
    if !policy.issuers.is_empty() {
        let ok = claims
            .get("iss")
            .and_then(Value::as_str)
            .is_some_and(|iss| policy.issuers.iter().any(|i| i == iss));
        if !ok {
            return Err(JwtError::ClaimMismatch("iss".to_owned()));
        }
    }
    if !policy.audiences.is_empty() {
        let allowed = |a: &Value| {
            a.as_str()
                .is_some_and(|a| policy.audiences.iter().any(|x| x == a))
        };
        let ok = match claims.get("aud") {
            Some(Value::Array(list)) => list.iter().any(allowed),
            Some(v) => allowed(v),
            None => false,
        };
        if !ok {
            return Err(JwtError::ClaimMismatch("aud".to_owned()));
        }
    }
    for rule in &policy.claims {
        let ok = claims
            .get(&rule.name)
            .is_some_and(|v| rule.one_of.contains(v));
        if !ok {
            return Err(JwtError::ClaimMismatch(rule.name.clone()));
        }
    }
    if let Some(name) = &policy.body_sha256_claim {
        let mut h = sha2::Sha256::new();
        for piece in body.pieces() {
            h.update(piece);
        }
        let want = super::hex_lower(&h.finalize());
        let got = claims.get(name).and_then(Value::as_str).unwrap_or("");
        if !bool::from(super::ct_eq(want.as_bytes(), got.as_bytes())) {
            return Err(JwtError::ClaimMismatch(name.clone()));
        }
    }
    Ok(iat)
}

/// Where a route's keys come from.
#[derive(Debug, Clone)]
pub enum KeySource {
    /// A JWKS given in the config.
    Inline(Arc<KeySet>),
    /// A JWKS fetched and cached.
    Remote(Arc<JwksCache>),
}

/// The `jwt` engine of one route.
#[derive(Debug, Clone)]
pub struct JwtVerifier {
    policy: JwtPolicy,
    keys: KeySource,
}

impl JwtVerifier {
    /// A verifier; the policy must allow at least one algorithm.
    pub fn new(policy: JwtPolicy, keys: KeySource) -> Result<JwtVerifier, String> {
        if policy.algorithms.is_empty() {
            return Err("jwt: `algorithms` is empty".to_owned());
        }
        Ok(JwtVerifier { policy, keys })
    }

    /// Its policy.
    pub fn policy(&self) -> &JwtPolicy {
        &self.policy
    }

    /// Verifies a request's token. `now` is unix seconds (the claims' clock), `mono` the
    /// monotonic clock of the key cache.
    pub async fn verify(
        &self,
        headers: &HeaderMap,
        body: Body<'_>,
        now: i64,
        mono: std::time::Instant,
    ) -> Result<JwtVerified, JwtError> {
        let token = token_from_headers(headers, self.policy.header.as_deref())?;
        let parsed = ParsedToken::parse(token)?;
        if !self.policy.algorithms.contains(&parsed.alg) {
            return Err(JwtError::BadToken("algorithm not allowed"));
        }
        if self.policy.require_kid && parsed.kid.is_none() {
            return Err(JwtError::BadToken("no kid"));
        }
        let keys = match &self.keys {
            KeySource::Inline(k) => Arc::clone(k),
            KeySource::Remote(cache) => cache.keys(mono, parsed.kid()).await?,
        };
        let signer = parsed
            .signer(&keys)?
            .ok_or(JwtError::BadToken("unknown key"))?;
        let issued_at = check_claims(&self.policy, &parsed.claims, body, now)?;
        Ok(JwtVerified {
            alg: parsed.alg,
            kid: signer.kid.clone(),
            id: parsed
                .claims
                .get("jti")
                .and_then(Value::as_str)
                .map(str::to_owned),
            issued_at,
            claims: parsed.claims,
        })
    }
}
