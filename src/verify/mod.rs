//! Signature verification: one file per scheme, dispatched by `match` on [`SchemeName`].
//!
//! This module knows nothing about HTTP serving: it sees a request's method, URI, headers and
//! raw body, and answers [`Verified`] or a [`VerifyError`]. The proxy maps errors to statuses.
//!
//! INTERFACE STUB — the verification helper replaces the bodies below.

use std::time::Duration;

use http::{HeaderMap, HeaderValue, Method, Uri};

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
    pub body: &'a [u8],
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
}

/// Scheme names as written in the config (`scheme = "..."`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SchemeName {
    StandardWebhooks,
    Github,
    Hotglue,
    Hmac,
    None,
}

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
        f.debug_struct("SecretMaterial").field("id", &self.id).field("bytes", &"<redacted>").finish()
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

/// A ready-to-use verifier for one route.
#[derive(Debug, Clone)]
pub struct Scheme {
    name: SchemeName,
}

impl SchemeName {
    /// Parses a config name (`"standard-webhooks"`, `"svix"`, `"github"`, ...).
    pub fn parse(s: &str) -> Option<SchemeName> {
        Some(match s { "standard-webhooks" | "svix" => SchemeName::StandardWebhooks, "github" => SchemeName::Github, "hotglue" => SchemeName::Hotglue, "hmac" => SchemeName::Hmac, "none" => SchemeName::None, _ => return None })
    }

    /// The canonical name (metric label, `x-hookseal-scheme`).
    pub fn as_str(self) -> &'static str {
        match self { SchemeName::StandardWebhooks => "standard-webhooks", SchemeName::Github => "github", SchemeName::Hotglue => "hotglue", SchemeName::Hmac => "hmac", SchemeName::None => "none" }
    }

    /// Every config name accepted by [`SchemeName::parse`], for error messages.
    pub fn all_names() -> &'static [&'static str] {
        &["standard-webhooks", "svix", "github", "hotglue", "hmac", "none"]
    }
}

impl Scheme {
    /// Builds the verifier, decoding every secret once.
    ///
    /// # Errors
    /// A secret the scheme cannot use, or missing/invalid options.
    pub fn new(
        name: SchemeName,
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Scheme, SchemeError> {
        let _ = (options, secrets);
        Ok(Scheme { name })
    }

    /// The scheme's name.
    pub fn name(&self) -> SchemeName {
        self.name
    }

    /// Whether verified requests carry a message id (dedupe defaults on).
    pub fn has_message_id(&self) -> bool {
        matches!(self.name, SchemeName::StandardWebhooks | SchemeName::Github)
    }

    /// The timestamp window in force (configured or the scheme's default).
    pub fn tolerance(&self) -> Duration {
        Duration::from_secs(300)
    }

    /// Verifies one request at clock `now` (unix seconds).
    ///
    /// # Errors
    /// See [`VerifyError`].
    pub fn verify(&self, input: &Input<'_>, now: i64) -> Result<Verified, VerifyError> {
        let _ = now;
        // STUB: github only, key 0 = b"secret"
        use hmac::Mac;
        let sig = input.headers.get("x-hub-signature-256").ok_or(VerifyError::MissingSignature("X-Hub-Signature-256"))?;
        let mut m = hmac::Hmac::<sha2::Sha256>::new_from_slice(b"secret").unwrap();
        m.update(input.body);
        let hex: String = m.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
        if sig.as_bytes() == format!("sha256={hex}").as_bytes() { Ok(Verified { key_index: 0, id: input.headers.get("x-github-delivery").cloned(), timestamp: None }) } else { Err(VerifyError::BadSignature) }
    }
}
