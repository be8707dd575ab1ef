//! Signature verification: one file per scheme, each a [`SchemeDef`] listed once in the
//! registry (`registry.rs`); a route's [`Scheme`] holds the verifier its definition built.
//!
//! This module knows nothing about HTTP serving: it sees a request's method, URI, headers and
//! raw body, and answers [`Verified`] or a [`VerifyError`]. The proxy maps errors to statuses.
//!
//! # Common rules (every scheme)
//!
//! * Secrets are decoded and HMAC keys prepared once in [`Scheme::new`]; each request clones a
//!   keyed MAC state.
//! * Every configured secret is tried against every candidate signature; the *first* secret in
//!   config order that matches is reported as [`Verified::key_index`]. All secrets are always
//!   computed (no early exit on a match) and comparisons are constant-time (`subtle`): the
//!   computed MAC is encoded the way the sender encodes it (lowercase hex / padded base64) and
//!   compared as text, so non-canonical encodings (uppercase hex, trailing junk, base64url) are
//!   rejected exactly as the official SDKs reject them.
//! * Check order inside a scheme: required headers present (absent **or empty** →
//!   [`VerifyError::MissingSignature`]), parse ([`VerifyError::MalformedSignature`]; a header
//!   that is not valid visible ASCII is malformed), timestamp window (stale/future), then the
//!   signature ([`VerifyError::BadSignature`]). Linear is the exception: its timestamp lives in
//!   the signed JSON body and is only read after the MAC matched.
//! * Signature lists: a header with no parseable entry at all is *malformed*; a header with
//!   entries of which none has the accepted version (e.g. only `v2,...`, Stripe only `v0=`) is a
//!   *bad signature*. Single-value schemes with a literal prefix (`sha256=`, `v0=`, the generic
//!   `prefix`) treat a value without the prefix as malformed.
//! * The timestamp window is **symmetric** for every scheme (team decision) and inclusive:
//!   reject only if `now - ts > tolerance` (stale) or `ts - now > tolerance` (future); the
//!   reported skew is `ts - now`.
//! * A header the verifier reads (signature, timestamp, id, Twilio's settings) that appears
//!   several times is malformed: the app would see every copy while one was verified.
//! * Errors never carry a secret, a computed MAC or a presented signature.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use ::hmac::{Hmac, KeyInit, Mac};
use base64::Engine as _;
use bytes::Bytes;
use http::{HeaderMap, HeaderValue, Method, Uri};
use subtle::{Choice, ConditionallySelectable, ConstantTimeEq};

mod asana;
mod body_mac;
pub mod check;
mod contentful;
mod discord;
mod dropbox;
mod engine_options;
mod github;
mod gitlab;
mod hmac;
mod hotglue;
mod hygraph;
pub mod jwt;
mod linear;
mod mailgun;
mod mandrill;
mod meta;
mod msgraph;
mod okta;
mod paddle;
mod plivo;
mod postmark;
mod presets;
mod public_url;
pub mod registry;
mod sendgrid;
mod shopify;
pub mod sign;
mod slack;
pub mod sns;
mod square;
mod standard;
mod stripe;
mod timestamped;
mod twilio;
mod worldline;
mod x;
mod zoom;

#[cfg(test)]
mod defaults_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod vectors;

pub use check::{Check, Checked, Confirmation, Handshake};
pub use engine_options::{Confirm, EngineOptions, JwtRouteOptions, SnsRouteOptions};
pub use public_url::pins_path;
use registry::SCHEMES;
pub use registry::{
    option_defs, MessageId, OptionTable, OptionsDef, SchemeDef, SecretUse, SignRequest,
    SignedContent, Verifier, DEFAULT_TOLERANCE, NO_SCHEME,
};
pub use sign::sign;

/// The request as the verifier sees it.
#[derive(Debug, Clone, Copy)]
pub struct Input<'a> {
    /// Inbound method.
    pub method: &'a Method,
    /// Inbound URI (origin form: path and query as received).
    pub uri: &'a Uri,
    /// Inbound headers.
    pub headers: &'a HeaderMap,
    /// The exact raw body bytes.
    pub body: Body<'a>,
}

/// The exact raw body, as the frames it arrived in, in order. The proxy does not join large
/// frames (that would copy the whole body once more per request): a MAC runs over the pieces,
/// and a scheme that needs one slice (a JSON or form parser, Ed25519) asks for
/// [`Body::joined`].
#[derive(Debug, Clone, Copy)]
pub struct Body<'a>(BodyRepr<'a>);

#[derive(Debug, Clone, Copy)]
enum BodyRepr<'a> {
    One(&'a [u8]),
    Chunks(&'a [Bytes]),
}

impl<'a> Body<'a> {
    /// A body of no bytes.
    pub const EMPTY: Body<'static> = Body(BodyRepr::One(&[]));

    /// A body in one piece.
    pub fn new(bytes: &'a [u8]) -> Body<'a> {
        Body(BodyRepr::One(bytes))
    }

    /// A body in pieces: their concatenation is the body.
    pub fn chunked(chunks: &'a [Bytes]) -> Body<'a> {
        Body(BodyRepr::Chunks(chunks))
    }

    /// Its length in bytes.
    pub fn len(&self) -> usize {
        match self.0 {
            BodyRepr::One(b) => b.len(),
            BodyRepr::Chunks(c) => c.iter().map(Bytes::len).sum(),
        }
    }

    /// Whether it has no bytes.
    pub fn is_empty(&self) -> bool {
        match self.0 {
            BodyRepr::One(b) => b.is_empty(),
            BodyRepr::Chunks(c) => c.iter().all(Bytes::is_empty),
        }
    }

    /// The pieces, in order.
    pub fn pieces(&self) -> impl Iterator<Item = &'a [u8]> + 'a {
        let (one, chunks): (Option<&'a [u8]>, &'a [Bytes]) = match self.0 {
            BodyRepr::One(b) => (Some(b), &[]),
            BodyRepr::Chunks(c) => (None, c),
        };
        one.into_iter().chain(chunks.iter().map(|c| &c[..]))
    }

    /// `prefix` then the body, copied into one message (for signatures over the whole message,
    /// such as Ed25519's, which cannot be fed in pieces).
    pub(crate) fn after(&self, prefix: &[&[u8]]) -> Vec<u8> {
        let mut msg =
            Vec::with_capacity(prefix.iter().map(|p| p.len()).sum::<usize>() + self.len());
        for piece in prefix.iter().copied().chain(self.pieces()) {
            msg.extend_from_slice(piece);
        }
        msg
    }

    /// The body as one slice: borrowed when it is in one piece, else copied.
    pub fn joined(&self) -> Cow<'a, [u8]> {
        match self.0 {
            BodyRepr::One(b) => Cow::Borrowed(b),
            BodyRepr::Chunks([one]) => Cow::Borrowed(&one[..]),
            BodyRepr::Chunks(c) => Cow::Owned(c.concat()),
        }
    }
}

impl<'a> From<&'a [u8]> for Body<'a> {
    fn from(bytes: &'a [u8]) -> Body<'a> {
        Body::new(bytes)
    }
}

/// What a successful verification established.
#[derive(Debug, Clone)]
pub struct Verified {
    /// Index into the route's secrets of the first secret that matched.
    pub key_index: usize,
    /// The sender's message id, where the scheme carries one (dedupe key, `x-hookseal-id`).
    pub id: Option<HeaderValue>,
    /// The signed timestamp in unix seconds, where the scheme carries one.
    pub timestamp: Option<i64>,
}

/// Why verification failed. Never carries a signature, a secret or an expected value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    /// A required header is absent or empty.
    #[error("missing signature header {0}")]
    MissingSignature(&'static str),
    /// A header is present but cannot be parsed.
    #[error("malformed header {0}")]
    MalformedSignature(&'static str),
    /// The timestamp is older than the window. `skew` = sender clock minus ours, seconds.
    #[error("timestamp too old")]
    StaleTimestamp { skew: i64 },
    /// The timestamp is further in the future than the window.
    #[error("timestamp in the future")]
    FutureTimestamp { skew: i64 },
    /// No configured secret produced a matching signature.
    #[error("no secret matches")]
    BadSignature,
    /// SNS: the `TopicArn` is not on the route's `topics` (nothing was fetched).
    #[error("topic not allowed")]
    TopicNotAllowed,
    /// SNS: `SigningCertURL` is not https on the route's `cert_host` for the topic's region.
    #[error("signing certificate URL not allowed")]
    BadCertUrl,
    /// SNS: the signing certificate could not be fetched or verified.
    #[error("signing certificate unavailable")]
    CertUnavailable,
    /// JWT: unparseable, unknown key, bad signature, algorithm not allowed.
    #[error("bad token")]
    BadToken,
    /// JWT: `exp` passed, `nbf` not reached, `iat` in the future or too old.
    #[error("token expired")]
    TokenExpired,
    /// JWT: `iss`, `aud`, a required claim or the body hash does not match.
    #[error("claim mismatch")]
    ClaimMismatch,
    /// JWT: no usable keys (the JWKS could not be fetched and no unexpired copy is cached).
    #[error("keys unavailable")]
    KeysUnavailable,
    /// A handshake's verify token (Meta) or a notification's `clientState` (Microsoft Graph)
    /// does not match.
    #[error("bad verify token")]
    BadVerifyToken,
}

/// A scheme, as named in the config (`scheme = "..."`): a handle on its [`SchemeDef`] in the
/// registry. Compared by canonical name.
#[derive(Clone, Copy)]
pub struct SchemeName(&'static SchemeDef);

/// Options for the generic `hmac` scheme (`[route.hmac]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HmacOptions {
    pub header: String,
    pub algorithm: HmacAlgorithm,
    pub encoding: Encoding,
    pub prefix: String,
    pub timestamp_header: Option<String>,
    pub id_header: Option<String>,
    pub signed_payload: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HmacAlgorithm {
    Sha1,
    Sha256,
    Sha512,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Hex,
    Base64,
    Base64Url,
}

/// Everything a route says about its scheme besides the secrets.
#[derive(Debug, Clone, Default)]
pub struct SchemeOptions {
    /// `[route.hmac]`, required for `scheme = "hmac"`.
    pub hmac: Option<HmacOptions>,
    /// Timestamp window, past and future. `None`: the scheme's default.
    pub tolerance: Option<Duration>,
    /// The keys of the engines and handshakes (`topics`, `[route.jwt]`, `verify_token`, ...).
    pub engine: EngineOptions,
    /// The externally visible URL the provider calls (`public_url = "https://..."`), required
    /// for `twilio` and `square`, which sign the URL. See `public_url.rs` for how the signed URL
    /// is formed from it and the request. Ignored by the other schemes.
    pub public_url: Option<String>,
}

/// One configured secret, already resolved from value/env/file.
#[derive(Clone)]
pub struct SecretMaterial {
    /// The id reported as `x-hookseal-key` and in metrics.
    pub id: String,
    /// The raw configured bytes (the scheme decides how to read them, e.g. `whsec_` base64).
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for SecretMaterial {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SecretMaterial")
            .field("id", &self.id)
            .field("bytes", &"<redacted>")
            .finish()
    }
}

/// A configuration problem found while building a scheme.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SchemeError {
    /// Which secret was at fault, if one was.
    pub secret_index: Option<usize>,
    /// Human readable, never containing secret material.
    pub message: String,
}

impl SchemeError {
    pub(crate) fn config(message: impl Into<String>) -> SchemeError {
        SchemeError {
            secret_index: None,
            message: message.into(),
        }
    }

    pub(crate) fn secret(index: usize, message: impl Into<String>) -> SchemeError {
        SchemeError {
            secret_index: Some(index),
            message: message.into(),
        }
    }
}

impl PartialEq for SchemeName {
    fn eq(&self, other: &SchemeName) -> bool {
        self.0.name == other.0.name
    }
}

impl Eq for SchemeName {}

impl std::hash::Hash for SchemeName {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.0.name.hash(state);
    }
}

impl std::fmt::Debug for SchemeName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0.name)
    }
}

impl SchemeName {
    /// Parses a config name (`"standard-webhooks"`, `"svix"`, `"github"`, ...). Exact,
    /// case-sensitive. `"none"` ([`NO_SCHEME`]) is not a scheme: the caller handles it.
    pub fn parse(s: &str) -> Option<SchemeName> {
        registry::lookup(s).map(SchemeName)
    }

    /// The canonical name (metric label, `x-hookseal-scheme`). `svix` maps to
    /// `standard-webhooks`.
    pub fn as_str(self) -> &'static str {
        self.0.name
    }

    /// The scheme's facts.
    pub fn def(self) -> &'static SchemeDef {
        self.0
    }

    /// Every scheme in the registry.
    pub fn all() -> impl Iterator<Item = SchemeName> {
        SCHEMES.iter().map(|d| SchemeName(d))
    }

    /// Every name a route's `scheme` accepts, aliases after their scheme, then `"none"`: for
    /// error messages and `sign --scheme`.
    pub fn all_names() -> &'static [&'static str] {
        static NAMES: OnceLock<Vec<&'static str>> = OnceLock::new();
        NAMES.get_or_init(|| {
            SCHEMES
                .iter()
                .flat_map(|d| std::iter::once(d.name).chain(d.aliases.iter().copied()))
                .chain([NO_SCHEME])
                .collect()
        })
    }

    /// The default timestamp window (also the dedupe window for schemes without a timestamp).
    pub fn default_tolerance(self) -> Duration {
        self.0.default_tolerance
    }
}

/// A ready-to-use verifier for one route.
#[derive(Debug, Clone)]
pub struct Scheme {
    name: SchemeName,
    tolerance: Duration,
    verifier: Arc<dyn Verifier>,
}

impl Scheme {
    /// Builds the verifier, decoding every secret once.
    ///
    /// # Errors
    /// A secret the scheme cannot use (empty, undecodable), no secret at all, or
    /// missing/invalid options (`hmac` without `[route.hmac]`, bad placeholders,
    /// `twilio`/`square` without `public_url`).
    pub fn new(
        name: SchemeName,
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Scheme, SchemeError> {
        match name.0.secrets {
            SecretUse::Required if secrets.is_empty() => {
                return Err(SchemeError::config(format!(
                    "scheme {} needs at least one secret",
                    name.as_str()
                )));
            }
            SecretUse::Refused if !secrets.is_empty() => {
                return Err(SchemeError::config(format!(
                    "scheme {} takes no secrets",
                    name.as_str()
                )));
            }
            _ => {}
        }
        if let Some(i) = secrets.iter().position(|s| s.bytes.is_empty()) {
            return Err(SchemeError::secret(i, "secret is empty"));
        }
        if let Some(t) = options.tolerance {
            if t.is_zero() {
                return Err(SchemeError::config("tolerance must be > 0"));
            }
        }
        let verifier = (name.0.build)(options, secrets)?;
        let tolerance = options
            .tolerance
            .unwrap_or_else(|| name.default_tolerance());
        Ok(Scheme {
            name,
            tolerance,
            verifier,
        })
    }

    /// The scheme's name.
    pub fn name(&self) -> SchemeName {
        self.name
    }

    /// Whether verified requests carry a message id (dedupe defaults on): see
    /// [`SchemeDef::message_id`]. Where the id header is optional (github, shopify, twilio,
    /// hmac without `{id}`), a request without it still verifies, with `id = None`.
    pub fn has_message_id(&self) -> bool {
        match self.name.0.message_id {
            MessageId::None => false,
            MessageId::Headers(_) => true,
            MessageId::Configured => self.verifier.configured_id(),
        }
    }

    /// Whether a verified timestamp is covered by the signature (the skew metric observes
    /// only those): every scheme with a timestamp, except an `hmac` route whose payload leaves
    /// `{timestamp}` out.
    pub fn timestamp_is_signed(&self) -> bool {
        self.verifier.timestamp_is_signed()
    }

    /// What `dedupe_key = "signature"` digests on this route.
    pub fn signed_content(&self) -> SignedContent {
        self.verifier
            .signed_content()
            .unwrap_or(self.name.0.signed_content)
    }

    /// Where the scheme's provider puts the event type.
    pub fn default_event(&self) -> crate::events::DefaultEvent {
        self.name.0.event
    }

    /// Removes request headers of the scheme's own family that the verifier did not read, so
    /// that the app sees only the ones that were verified: for Standard Webhooks, the
    /// `webhook-*` twin of each `svix-*` header present. Other schemes read one name each.
    pub fn strip_unread(&self, headers: &mut HeaderMap) {
        if let Some(strip) = self.name.0.strip_unread {
            strip(headers);
        }
    }

    /// The timestamp window in force (configured or the scheme's default).
    pub fn tolerance(&self) -> Duration {
        self.tolerance
    }

    /// Verifies one request at clock `now` (unix seconds).
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify(&self, input: &Input<'_>, now: i64) -> Result<Verified, VerifyError> {
        self.verifier.verify(input, now, self.tolerance)
    }

    /// The pipeline's check of one request: a delivery, a handshake, a subscription to
    /// confirm; ready now for every HMAC and token scheme, after a fetch for the others.
    pub fn check<'a>(&'a self, input: Input<'a>, now: i64) -> Check<'a> {
        self.verifier.check(input, now, self.tolerance)
    }
}

// ------------------------------------------------------------------------------------------
// Shared helpers
// ------------------------------------------------------------------------------------------

/// A keyed HMAC state, prepared once per secret and cloned per request.
#[derive(Clone)]
pub(crate) enum MacKey {
    Sha1(Hmac<sha1::Sha1>),
    Sha256(Hmac<sha2::Sha256>),
    Sha512(Hmac<sha2::Sha512>),
}

impl std::fmt::Debug for MacKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let alg = match self {
            MacKey::Sha1(_) => "sha1",
            MacKey::Sha256(_) => "sha256",
            MacKey::Sha512(_) => "sha512",
        };
        write!(f, "MacKey({alg}, <redacted>)")
    }
}

/// A computed MAC (up to SHA-512 size).
pub(crate) struct MacOut {
    buf: [u8; 64],
    len: usize,
}

impl MacOut {
    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.buf[..self.len]
    }
}

impl MacKey {
    pub(crate) fn new(alg: HmacAlgorithm, key: &[u8]) -> MacKey {
        // HMAC accepts keys of any length: `new_from_slice` cannot fail; the fallbacks below
        // are unreachable but keep this free of panics.
        match alg {
            HmacAlgorithm::Sha1 => MacKey::Sha1(
                <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| <Hmac<sha1::Sha1> as KeyInit>::new(&Default::default())),
            ),
            HmacAlgorithm::Sha256 => MacKey::Sha256(
                <Hmac<sha2::Sha256> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| <Hmac<sha2::Sha256> as KeyInit>::new(&Default::default())),
            ),
            HmacAlgorithm::Sha512 => MacKey::Sha512(
                <Hmac<sha2::Sha512> as KeyInit>::new_from_slice(key)
                    .unwrap_or_else(|_| <Hmac<sha2::Sha512> as KeyInit>::new(&Default::default())),
            ),
        }
    }

    /// MAC over the concatenation of `parts`.
    pub(crate) fn compute(&self, parts: &[&[u8]]) -> MacOut {
        self.compute_body(parts, Body::EMPTY)
    }

    /// The MAC of `prefix` followed by `body`.
    pub(crate) fn compute_body(&self, prefix: &[&[u8]], body: Body<'_>) -> MacOut {
        fn run<M: Mac + Clone>(m: &M, prefix: &[&[u8]], body: Body<'_>) -> MacOut {
            let mut m = m.clone();
            for p in prefix.iter().copied().chain(body.pieces()) {
                m.update(p);
            }
            let out = m.finalize().into_bytes();
            let mut buf = [0u8; 64];
            let len = out.len().min(64);
            buf[..len].copy_from_slice(&out[..len]);
            MacOut { buf, len }
        }
        match self {
            MacKey::Sha1(m) => run(m, prefix, body),
            MacKey::Sha256(m) => run(m, prefix, body),
            MacKey::Sha512(m) => run(m, prefix, body),
        }
    }
}

/// Keys for every configured secret, in config order.
pub(crate) fn mac_keys(alg: HmacAlgorithm, secrets: &[SecretMaterial]) -> Vec<MacKey> {
    secrets.iter().map(|s| MacKey::new(alg, &s.bytes)).collect()
}

/// Constant-time equality of two byte strings (the length is not secret): the differences of
/// all the bytes ORed together eight at a time, through an optimization barrier after each
/// word (no early exit), then `subtle`'s constant-time test of that against zero. `subtle`'s
/// own slice comparison puts its barrier on every byte: eight times the work for the 64
/// digits of a hex SHA-256, on every verified request.
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> Choice {
    if a.len() != b.len() {
        return Choice::from(0);
    }
    let word = |c: &[u8]| u64::from_ne_bytes(c.try_into().unwrap_or_default());
    let (mut wa, mut wb) = (a.chunks_exact(8), b.chunks_exact(8));
    let mut diff: u64 = 0;
    for (x, y) in (&mut wa).zip(&mut wb) {
        diff = std::hint::black_box(diff | (word(x) ^ word(y)));
    }
    for (x, y) in wa.remainder().iter().zip(wb.remainder()) {
        diff = std::hint::black_box(diff | u64::from(x ^ y));
    }
    diff.ct_eq(&0)
}

/// Runs `check` for every index (no early exit) and returns the first index that matched.
pub(crate) fn first_match(n: usize, mut check: impl FnMut(usize) -> Choice) -> Option<usize> {
    let mut found = Choice::from(0);
    let mut idx: u64 = 0;
    for i in 0..n {
        let m = check(i);
        let take = m & !found;
        idx.conditional_assign(&(i as u64), take);
        found |= m;
    }
    if bool::from(found) {
        usize::try_from(idx).ok()
    } else {
        None
    }
}

/// For each key, computes the MAC over `prefix` then `body`, encodes it with `encode` and
/// compares it with every candidate (constant-time). Returns the first key index that matched
/// any candidate.
pub(crate) fn match_encoded(
    keys: &[MacKey],
    prefix: &[&[u8]],
    body: Body<'_>,
    candidates: &[&[u8]],
    encode: impl Fn(&[u8]) -> String,
) -> Option<usize> {
    first_match(keys.len(), |i| {
        let mac = keys[i].compute_body(prefix, body);
        let text = encode(mac.as_bytes());
        let mut any = Choice::from(0);
        for c in candidates {
            any |= ct_eq(text.as_bytes(), c);
        }
        any
    })
}

/// A header the verifier reads must come at most once: with two copies the app would see both
/// (or their comma-joined value) while only one was verified.
pub(crate) fn single(headers: &HeaderMap, name: &'static str) -> Result<(), VerifyError> {
    once(headers, name).map(|_| ())
}

/// The first value of `name`, or the malformed error of [`single`] when it came twice: one
/// lookup (a name given as text is parsed and hashed at each lookup).
fn once<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<Option<&'a HeaderValue>, VerifyError> {
    once_by(headers, name, name)
}

/// [`once`] with the name looked up as `key`: a [`http::HeaderName`] constant is not parsed again
/// at each lookup, as its text (`name`, for the error) would be.
fn once_by<'a>(
    headers: &'a HeaderMap,
    key: impl http::header::AsHeaderName,
    name: &'static str,
) -> Result<Option<&'a HeaderValue>, VerifyError> {
    let mut all = headers.get_all(key).iter();
    let first = all.next();
    if all.next().is_some() {
        return Err(VerifyError::MalformedSignature(name));
    }
    Ok(first)
}

/// A required header: absent or empty → missing; sent twice or not visible ASCII → malformed.
pub(crate) fn required<'a>(
    headers: &'a HeaderMap,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    required_by(headers, name, name)
}

/// [`required`], looked up as `key` (see [`once_by`]).
pub(crate) fn required_by<'a>(
    headers: &'a HeaderMap,
    key: impl http::header::AsHeaderName,
    name: &'static str,
) -> Result<&'a str, VerifyError> {
    let v = once_by(headers, key, name)?.ok_or(VerifyError::MissingSignature(name))?;
    if v.is_empty() {
        return Err(VerifyError::MissingSignature(name));
    }
    v.to_str()
        .map_err(|_| VerifyError::MalformedSignature(name))
}

/// An optional id header: `Some` only when present and non-empty; sent twice → malformed.
pub(crate) fn optional_id(
    headers: &HeaderMap,
    name: &'static str,
) -> Result<Option<HeaderValue>, VerifyError> {
    optional_id_by(headers, name, name)
}

/// [`optional_id`], looked up as `key` (see [`once_by`]).
pub(crate) fn optional_id_by(
    headers: &HeaderMap,
    key: impl http::header::AsHeaderName,
    name: &'static str,
) -> Result<Option<HeaderValue>, VerifyError> {
    Ok(once_by(headers, key, name)?
        .filter(|v| !v.is_empty())
        .cloned())
}

/// A `key=value` list separated by `sep` (Stripe `,`, Paddle `;`): elements are not trimmed,
/// elements without `=` are ignored, each is split on its first `=`. Returns the first value
/// of `ts_key` and every value of `sig_key`, in order.
pub(crate) fn ts_and_signatures<'a>(
    header: &'a str,
    sep: char,
    ts_key: &str,
    sig_key: &str,
) -> (Option<&'a str>, Vec<&'a [u8]>) {
    let mut ts: Option<&str> = None;
    let mut sigs: Vec<&[u8]> = Vec::new();
    for (k, v) in header.split(sep).filter_map(|e| e.split_once('=')) {
        if k == ts_key {
            ts = ts.or(Some(v));
        } else if k == sig_key {
            sigs.push(v.as_bytes());
        }
    }
    (ts, sigs)
}

/// Strict unix-seconds parser: ASCII digits only (leading zeros allowed), no sign, no
/// fraction, no whitespace, must fit in `i64`.
pub(crate) fn parse_unix(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 40 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse::<i64>().ok()
}

/// The window check, in seconds. Inclusive boundary; symmetric.
pub(crate) fn check_window(ts: i64, now: i64, tolerance: Duration) -> Result<(), VerifyError> {
    let tol = i128::from(tolerance.as_secs());
    let skew = i128::from(ts) - i128::from(now);
    let skew_i64 = i64::try_from(skew).unwrap_or(if skew < 0 { i64::MIN } else { i64::MAX });
    if -skew > tol {
        return Err(VerifyError::StaleTimestamp { skew: skew_i64 });
    }
    if skew > tol {
        return Err(VerifyError::FutureTimestamp { skew: skew_i64 });
    }
    Ok(())
}

pub(crate) use crate::hex::{decode_into as hex_decode_into, encode as hex_lower};

/// Standard base64 with padding (what every base64 sender here emits).
pub(crate) fn b64_std(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Standard-alphabet base64 decoder that accepts padded and unpadded input (secrets).
pub(crate) fn b64_decode_lenient(s: &[u8]) -> Option<Vec<u8>> {
    use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    LENIENT.decode(s).ok()
}

/// Interns a configured header name so it can be reported in a [`VerifyError`]. Bounded by
/// the set of distinct names ever configured (reloads do not grow it for unchanged names).
pub(crate) fn intern(s: &str) -> &'static str {
    static SET: OnceLock<Mutex<HashSet<&'static str>>> = OnceLock::new();
    let set = SET.get_or_init(|| Mutex::new(HashSet::new()));
    let mut guard = match set.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    };
    if let Some(existing) = guard.get(s) {
        return existing;
    }
    let leaked: &'static str = Box::leak(s.to_owned().into_boxed_str());
    guard.insert(leaked);
    leaked
}
