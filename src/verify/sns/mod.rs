//! The `sns` engine (SPEC "More schemes"): AWS SNS HTTP/S deliveries, signed with the RSA key
//! of an X.509 certificate that SNS publishes at the message's `SigningCertURL`.
//!
//! Check order, each step before anything the next one needs:
//!
//! 1. The body is an SNS JSON message (serde, at most [`MAX_MESSAGE_BYTES`]) of type
//!    `Notification`, `SubscriptionConfirmation` or `UnsubscribeConfirmation`, with the
//!    fields its type signs → else `malformed_signature` (400).
//! 2. `TopicArn` is on the route's `topics` list (exact) → else `topic_not_allowed` (403).
//!    Nothing has been fetched yet: a foreign topic cannot make hookseal fetch anything.
//! 3. `SigningCertURL` is `https://<cert_host>/…` with `{region}` in the `cert_host` pattern
//!    replaced by the TopicArn's region (no userinfo, no other port than the pattern's) →
//!    else `bad_cert_url` (403).
//! 4. The certificate: from the cache, or fetched through [`Fetcher`] (no redirects,
//!    size-capped, timeouts). It is parsed as PEM (the leaf, then any intermediates) and
//!    verified, at every use, as a TLS server certificate (serverAuth) chaining to the roots,
//!    valid now, for one of the `cert_names` → else `cert_unavailable` (503: SNS retries).
//!    A failed fetch is remembered for [`RETRY_AFTER`], so a down endpoint is not hammered.
//! 5. The signature: base64 of RSA PKCS#1 v1.5 over the canonical string, SHA-1 for
//!    `SignatureVersion` 1, SHA-256 for 2 (keys of 2048–8192 bits) → else `bad_signature` (401).
//!
//! The canonical string is, for each signed field in this (alphabetical) order, the name, a
//! newline, the value, a newline: `Message`, `MessageId`, `Subject` (only when present and
//! not null), `Timestamp`, `TopicArn`, `Type` for a notification; `Message`, `MessageId`,
//! `SubscribeURL`, `Timestamp`, `Token`, `TopicArn`, `Type` for the two confirmations.
//!
//! Certificate names: AWS documents the regional host as the certificate's name, but
//! deployed SNS signing certificates have been seen to carry only `sns.amazonaws.com`; the
//! default `cert_names` accepts either. The host check of step 3 is what binds the
//! certificate to the region.
//!
//! The dedupe id is `MessageId`. [`SnsVerifier::confirm_subscription`] GETs a verified
//! `SubscriptionConfirmation`'s `SubscribeURL` (same host rule as the certificate URL).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use base64::Engine as _;
use http::StatusCode;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{
    alg_id, AlgorithmIdentifier, CertificateDer, InvalidSignature, ServerName,
    SignatureVerificationAlgorithm, UnixTime,
};
use serde::Deserialize;

use crate::fetch::{FetchError, Fetcher};

pub(crate) mod scheme;
#[cfg(test)]
mod tests;

/// Largest message parsed, in bytes (SNS messages are at most 256 KiB before JSON escaping).
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;
/// The default `cert_host` pattern.
pub const DEFAULT_CERT_HOST: &str = "sns.{region}.amazonaws.com";
/// A failed certificate fetch is not retried for this long.
pub const RETRY_AFTER: Duration = Duration::from_secs(5);

/// Why a message was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SnsError {
    /// Not an SNS message of a known type with its signed fields (detail for logs).
    #[error("malformed SNS message: {0}")]
    Malformed(&'static str),
    /// `TopicArn` is not on the route's list.
    #[error("topic not allowed")]
    TopicNotAllowed,
    /// `SigningCertURL` is not an https URL on the allowed host.
    #[error("signing certificate URL not allowed")]
    BadCertUrl,
    /// The certificate could not be fetched, parsed or verified to the roots.
    #[error("signing certificate unavailable")]
    CertUnavailable,
    /// The signature does not verify with the certificate's key.
    #[error("bad signature")]
    BadSignature,
}

impl SnsError {
    /// The SPEC reason code.
    pub fn reason(&self) -> &'static str {
        match self {
            SnsError::Malformed(_) => "malformed_signature",
            SnsError::TopicNotAllowed => "topic_not_allowed",
            SnsError::BadCertUrl => "bad_cert_url",
            SnsError::CertUnavailable => "cert_unavailable",
            SnsError::BadSignature => "bad_signature",
        }
    }

    /// The status hookseal answers with.
    pub fn status(&self) -> StatusCode {
        match self {
            SnsError::Malformed(_) => StatusCode::BAD_REQUEST,
            SnsError::TopicNotAllowed | SnsError::BadCertUrl => StatusCode::FORBIDDEN,
            SnsError::CertUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            SnsError::BadSignature => StatusCode::UNAUTHORIZED,
        }
    }
}

/// Why a subscription was not confirmed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfirmError {
    /// The message is not a `SubscriptionConfirmation`.
    #[error("not a subscription confirmation")]
    NotConfirmation,
    /// `SubscribeURL` is not an https URL on the allowed host.
    #[error("SubscribeURL not allowed")]
    BadUrl,
    /// The GET failed.
    #[error("confirmation GET failed: {0}")]
    Fetch(FetchError),
}

/// The type of an SNS message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    /// A published message.
    Notification,
    /// A subscription waiting for its `SubscribeURL` to be visited.
    SubscriptionConfirmation,
    /// The endpoint was unsubscribed.
    UnsubscribeConfirmation,
}

impl MessageType {
    fn parse(s: &str) -> Option<MessageType> {
        match s {
            "Notification" => Some(MessageType::Notification),
            "SubscriptionConfirmation" => Some(MessageType::SubscriptionConfirmation),
            "UnsubscribeConfirmation" => Some(MessageType::UnsubscribeConfirmation),
            _ => None,
        }
    }

    /// The `Type` text (also the `x-amz-sns-message-type` header value).
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::Notification => "Notification",
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct RawMessage {
    #[serde(rename = "Type")]
    kind: String,
    message_id: String,
    topic_arn: String,
    subject: Option<String>,
    message: String,
    timestamp: String,
    signature_version: String,
    signature: String,
    #[serde(rename = "SigningCertURL")]
    signing_cert_url: String,
    #[serde(rename = "SubscribeURL")]
    subscribe_url: Option<String>,
    token: Option<String>,
}

/// An SNS message, parsed, its signature not yet checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsMessage {
    /// `Type`.
    pub kind: MessageType,
    /// `MessageId`.
    pub message_id: String,
    /// `TopicArn`.
    pub topic_arn: String,
    /// `Subject` (notifications; absent or null → `None`).
    pub subject: Option<String>,
    /// `Message`.
    pub message: String,
    /// `Timestamp`.
    pub timestamp: String,
    /// `SignatureVersion` (1 or 2).
    pub signature_version: u8,
    /// `Signature`, decoded.
    pub signature: Vec<u8>,
    /// `SigningCertURL`.
    pub signing_cert_url: String,
    /// `SubscribeURL` (confirmations).
    pub subscribe_url: Option<String>,
    /// `Token` (confirmations).
    pub token: Option<String>,
}

impl SnsMessage {
    /// Parses an SNS JSON message. Unknown fields are ignored; the signed fields of its type
    /// must be present.
    pub fn parse(body: &[u8]) -> Result<SnsMessage, SnsError> {
        if body.len() > MAX_MESSAGE_BYTES {
            return Err(SnsError::Malformed("message too large"));
        }
        let raw: RawMessage =
            serde_json::from_slice(body).map_err(|_| SnsError::Malformed("not an SNS message"))?;
        let kind = MessageType::parse(&raw.kind).ok_or(SnsError::Malformed("Type"))?;
        let signature_version = match raw.signature_version.as_str() {
            "1" => 1,
            "2" => 2,
            _ => return Err(SnsError::Malformed("SignatureVersion")),
        };
        let signature = base64::engine::general_purpose::STANDARD
            .decode(raw.signature.as_bytes())
            .map_err(|_| SnsError::Malformed("Signature"))?;
        if kind != MessageType::Notification && (raw.subscribe_url.is_none() || raw.token.is_none())
        {
            return Err(SnsError::Malformed("SubscribeURL/Token"));
        }
        Ok(SnsMessage {
            kind,
            message_id: raw.message_id,
            topic_arn: raw.topic_arn,
            subject: raw.subject.filter(|_| kind == MessageType::Notification),
            message: raw.message,
            timestamp: raw.timestamp,
            signature_version,
            signature,
            signing_cert_url: raw.signing_cert_url,
            subscribe_url: raw.subscribe_url,
            token: raw.token,
        })
    }

    /// The bytes SNS signed.
    pub fn canonical(&self) -> Vec<u8> {
        let mut fields: Vec<(&str, &str)> =
            vec![("Message", &self.message), ("MessageId", &self.message_id)];
        match self.kind {
            MessageType::Notification => {
                if let Some(s) = &self.subject {
                    fields.push(("Subject", s));
                }
                fields.push(("Timestamp", &self.timestamp));
            }
            _ => {
                fields.push(("SubscribeURL", self.subscribe_url.as_deref().unwrap_or("")));
                fields.push(("Timestamp", &self.timestamp));
                fields.push(("Token", self.token.as_deref().unwrap_or("")));
            }
        }
        fields.push(("TopicArn", &self.topic_arn));
        fields.push(("Type", self.kind.as_str()));
        let mut out = Vec::with_capacity(fields.iter().map(|(k, v)| k.len() + v.len() + 2).sum());
        for (k, v) in fields {
            out.extend_from_slice(k.as_bytes());
            out.push(b'\n');
            out.extend_from_slice(v.as_bytes());
            out.push(b'\n');
        }
        out
    }

    /// The region of `TopicArn` (`arn:<partition>:sns:<region>:<account>:<name>`).
    pub fn region(&self) -> Option<&str> {
        topic_region(&self.topic_arn)
    }
}

/// The region of a topic ARN, when it is one (`arn:<partition>:sns:<region>:<account>:<name>`,
/// the region lowercase letters, digits and `-`).
pub fn topic_region(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (Some("arn"), Some(partition), Some("sns"), Some(region), Some(account), Some(name)) = (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) else {
        return None;
    };
    let region_ok = !region.is_empty()
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    (region_ok && !partition.is_empty() && !account.is_empty() && !name.is_empty())
        .then_some(region)
}

/// A host pattern: lowercase host (optionally `:port`) with at most one `{region}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPattern(String);

impl HostPattern {
    /// Validates a pattern: letters, digits, `.`, `-`, an optional `:port`, and `{region}`.
    pub fn parse(pattern: &str) -> Result<HostPattern, String> {
        let lower = pattern.to_ascii_lowercase();
        let bare = lower.replacen("{region}", "r", 1);
        let ok = !bare.is_empty()
            && !bare.contains('{')
            && bare
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b':'));
        if !ok {
            return Err(format!(
                "host pattern {pattern:?}: expected a host name with an optional {{region}}"
            ));
        }
        Ok(HostPattern(lower))
    }

    /// The pattern with `{region}` replaced.
    pub fn expand(&self, region: &str) -> String {
        self.0.replace("{region}", region)
    }
}

/// The host of `url` when it is `https://<expected>/…` exactly (authority compared
/// case-insensitively, no userinfo).
fn allowed_host(url: &str, expected: &str) -> Option<String> {
    let uri: http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("https") {
        return None;
    }
    let authority = uri.authority()?;
    if authority.as_str().contains('@') || !authority.as_str().eq_ignore_ascii_case(expected) {
        return None;
    }
    Some(authority.host().to_ascii_lowercase())
}

/// Route settings of the `sns` engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsOptions {
    /// Accepted `TopicArn`s (exact).
    pub topics: Vec<String>,
    /// The host `SigningCertURL` and `SubscribeURL` must have.
    pub cert_host: HostPattern,
    /// Names the signing certificate must be valid for (one of them; `{region}` expanded).
    pub cert_names: Vec<HostPattern>,
    /// Longest time a certificate is cached (it is also re-verified at every use, so one
    /// past its notAfter is never used).
    pub cert_max_age: Duration,
    /// Most certificates cached (SNS rotates them rarely; one or two per region).
    pub cert_cache_entries: usize,
}

impl SnsOptions {
    /// The defaults around a topic list: AWS's commercial partition host, certificates valid
    /// for the regional host or `sns.amazonaws.com`, cached up to a day, 16 entries.
    pub fn new(topics: Vec<String>) -> SnsOptions {
        SnsOptions {
            topics,
            cert_host: HostPattern(DEFAULT_CERT_HOST.to_owned()),
            cert_names: vec![
                HostPattern(DEFAULT_CERT_HOST.to_owned()),
                HostPattern("sns.amazonaws.com".to_owned()),
            ],
            cert_max_age: Duration::from_secs(24 * 3600),
            cert_cache_entries: 16,
        }
    }

    /// Checks the settings: at least one topic, each a valid SNS topic ARN, at least one name.
    pub fn validate(&self) -> Result<(), String> {
        if self.topics.is_empty() {
            return Err("sns: `topics` is empty".to_owned());
        }
        if let Some(bad) = self.topics.iter().find(|t| topic_region(t).is_none()) {
            return Err(format!("sns: {bad:?} is not an SNS topic ARN"));
        }
        if self.cert_names.is_empty() || self.cert_cache_entries == 0 {
            return Err("sns: no certificate names or no cache entries".to_owned());
        }
        Ok(())
    }
}

/// A verified message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsVerified {
    /// The message (its fields).
    pub message: SnsMessage,
}

impl SnsVerified {
    /// The dedupe id: `MessageId`.
    pub fn id(&self) -> &str {
        &self.message.message_id
    }
}

#[derive(Debug)]
enum Cached {
    Cert {
        chain: Vec<CertificateDer<'static>>,
        fetched: Instant,
    },
    Failed {
        at: Instant,
    },
}

/// The `sns` engine of one route.
#[derive(Debug)]
pub struct SnsVerifier {
    options: SnsOptions,
    fetcher: Fetcher,
    cache: Mutex<HashMap<String, Cached>>,
    /// One certificate fetch at a time.
    fetching: tokio::sync::Mutex<()>,
}

/// RSA PKCS#1 v1.5 with SHA-1 (SignatureVersion 1), over the certificate's key. Used only
/// for message signatures, never to verify certificates.
#[derive(Debug)]
struct RsaSha1;

impl SignatureVerificationAlgorithm for RsaSha1 {
    fn verify_signature(
        &self,
        public_key: &[u8],
        message: &[u8],
        signature: &[u8],
    ) -> Result<(), InvalidSignature> {
        ring::signature::UnparsedPublicKey::new(
            &ring::signature::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY,
            public_key,
        )
        .verify(message, signature)
        .map_err(|_| InvalidSignature)
    }

    fn public_key_alg_id(&self) -> AlgorithmIdentifier {
        alg_id::RSA_ENCRYPTION
    }

    fn signature_alg_id(&self) -> AlgorithmIdentifier {
        // Not used: message signatures carry no algorithm identifier.
        alg_id::RSA_PKCS1_SHA256
    }
}

impl SnsVerifier {
    /// A verifier fetching certificates through `fetcher` and verifying them to its roots.
    pub fn new(options: SnsOptions, fetcher: Fetcher) -> Result<SnsVerifier, String> {
        options.validate()?;
        Ok(SnsVerifier {
            options,
            fetcher,
            cache: Mutex::new(HashMap::new()),
            fetching: tokio::sync::Mutex::new(()),
        })
    }

    /// Its settings.
    pub fn options(&self) -> &SnsOptions {
        &self.options
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        match self.cache.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Verifies a delivery's body. `now` is unix seconds (certificate validity), `mono` the
    /// cache's monotonic clock.
    pub async fn verify(
        &self,
        body: &[u8],
        now: i64,
        mono: Instant,
    ) -> Result<SnsVerified, SnsError> {
        let msg = SnsMessage::parse(body)?;
        if !self.options.topics.contains(&msg.topic_arn) {
            return Err(SnsError::TopicNotAllowed);
        }
        let region = msg.region().ok_or(SnsError::TopicNotAllowed)?;
        let expected = self.options.cert_host.expand(region);
        let host = allowed_host(&msg.signing_cert_url, &expected).ok_or(SnsError::BadCertUrl)?;
        let chain = self.certificate(&msg.signing_cert_url, &host, mono).await?;
        let time = UnixTime::since_unix_epoch(Duration::from_secs(u64::try_from(now).unwrap_or(0)));
        let leaf = self.trusted_leaf(&chain, region, time)?;
        let alg: &dyn SignatureVerificationAlgorithm = match msg.signature_version {
            1 => &RsaSha1,
            _ => webpki::ring::RSA_PKCS1_2048_8192_SHA256,
        };
        leaf.verify_signature(alg, &msg.canonical(), &msg.signature)
            .map_err(|_| SnsError::BadSignature)?;
        Ok(SnsVerified { message: msg })
    }

    /// The leaf, verified as a server certificate valid at `time` for one of the names.
    fn trusted_leaf<'c>(
        &self,
        chain: &'c [CertificateDer<'static>],
        region: &str,
        time: UnixTime,
    ) -> Result<webpki::EndEntityCert<'c>, SnsError> {
        let (leaf, intermediates) = chain.split_first().ok_or(SnsError::CertUnavailable)?;
        let ee = webpki::EndEntityCert::try_from(leaf).map_err(|_| SnsError::CertUnavailable)?;
        ee.verify_for_usage(
            webpki::ALL_VERIFICATION_ALGS,
            &self.fetcher.roots().roots,
            intermediates,
            time,
            webpki::KeyUsage::server_auth(),
            None,
            None,
        )
        .map_err(|e| {
            tracing::warn!(error = %e, "SNS signing certificate does not verify");
            SnsError::CertUnavailable
        })?;
        let named = self.options.cert_names.iter().any(|p| {
            ServerName::try_from(p.expand(region))
                .is_ok_and(|n| ee.verify_is_valid_for_subject_name(&n).is_ok())
        });
        if !named {
            tracing::warn!("SNS signing certificate is not valid for the expected names");
            return Err(SnsError::CertUnavailable);
        }
        Ok(ee)
    }

    /// The certificate chain at `url`, cached.
    async fn certificate(
        &self,
        url: &str,
        host: &str,
        mono: Instant,
    ) -> Result<Vec<CertificateDer<'static>>, SnsError> {
        if let Some(hit) = self.cached(url, mono)? {
            return Ok(hit);
        }
        // One fetch at a time, and a bounded wait for it: the URLs are the sender's, so a
        // crowd of made-up ones must not hold every waiting request (and its connection) for
        // as long as the line is. Past one fetch's total time: 503, SNS retries.
        let wait = self.fetcher.options().total_timeout;
        let Ok(_one) = tokio::time::timeout(wait, self.fetching.lock()).await else {
            tracing::warn!("SNS signing certificate: waited too long behind other fetches");
            return Err(SnsError::CertUnavailable);
        };
        if let Some(hit) = self.cached(url, mono)? {
            return Ok(hit);
        }
        let fetched = self
            .fetcher
            .get(url, &[host])
            .await
            .map_err(|e| e.to_string())
            .and_then(|got| parse_pem_chain(&got.body));
        let mut cache = self.lock();
        cache.retain(|_, c| !self.expired(c, mono));
        if cache.len() >= self.options.cert_cache_entries {
            // A failure is given up before any certificate: the URL's path is the sender's
            // choice, so made-up URLs on the allowed host (404s) must not push the genuine
            // certificate out and send every genuine message back to a fetch.
            let oldest = cache
                .iter()
                .min_by_key(|(_, c)| match c {
                    Cached::Cert { fetched, .. } => (1, *fetched),
                    Cached::Failed { at } => (0, *at),
                })
                .map(|(k, _)| k.clone());
            if let Some(k) = oldest {
                cache.remove(&k);
            }
        }
        match fetched {
            Ok(chain) => {
                cache.insert(
                    url.to_owned(),
                    Cached::Cert {
                        chain: chain.clone(),
                        fetched: mono,
                    },
                );
                Ok(chain)
            }
            Err(why) => {
                tracing::warn!(url, error = %why, "SNS signing certificate fetch failed");
                cache.insert(url.to_owned(), Cached::Failed { at: mono });
                Err(SnsError::CertUnavailable)
            }
        }
    }

    fn expired(&self, c: &Cached, mono: Instant) -> bool {
        match c {
            Cached::Cert { fetched, .. } => {
                mono.saturating_duration_since(*fetched) >= self.options.cert_max_age
            }
            Cached::Failed { at } => mono.saturating_duration_since(*at) >= RETRY_AFTER,
        }
    }

    /// `Ok(Some)` a cached chain, `Err` a recent failure, `Ok(None)` nothing usable.
    fn cached(
        &self,
        url: &str,
        mono: Instant,
    ) -> Result<Option<Vec<CertificateDer<'static>>>, SnsError> {
        let cache = self.lock();
        match cache.get(url) {
            Some(c) if self.expired(c, mono) => Ok(None),
            Some(Cached::Cert { chain, .. }) => Ok(Some(chain.clone())),
            Some(Cached::Failed { .. }) => Err(SnsError::CertUnavailable),
            None => Ok(None),
        }
    }

    /// GETs the `SubscribeURL` of a verified `SubscriptionConfirmation` (`confirm = "auto"`).
    /// The URL must be `https://<cert_host>/…` for the topic's region.
    pub async fn confirm_subscription(&self, verified: &SnsVerified) -> Result<(), ConfirmError> {
        let msg = &verified.message;
        if msg.kind != MessageType::SubscriptionConfirmation {
            return Err(ConfirmError::NotConfirmation);
        }
        let url = msg.subscribe_url.as_deref().ok_or(ConfirmError::BadUrl)?;
        let region = msg.region().ok_or(ConfirmError::BadUrl)?;
        let host = allowed_host(url, &self.options.cert_host.expand(region))
            .ok_or(ConfirmError::BadUrl)?;
        self.fetcher
            .clone()
            .for_purpose("sns_confirm")
            .get(url, &[host.as_str()])
            .await
            .map(|_| ())
            .map_err(ConfirmError::Fetch)
    }
}

/// The certificates of a PEM document, leaf first (at most 8).
fn parse_pem_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .take(8)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no certificate in the PEM".to_owned());
    }
    Ok(chain)
}
