//! `scheme = "jwt"`, `"google-pubsub"`, `"plaid"`: the [`JwtVerifier`] as registry schemes
//! (SPEC "More schemes"). Rules from RFC 7519 (claims) and RFC 7515 (JWS); Google's
//! "Authentication for push subscriptions" (Pub/Sub docs: OIDC token in `Authorization:
//! Bearer`, `aud` the push endpoint unless the subscription sets another, `iss`
//! `accounts.google.com` or `https://accounts.google.com`, `email` the service account with
//! `email_verified`); Plaid's "Webhook verification" (`Plaid-Verification` ES256 JWT, key by
//! `kid`, `iat` at most 5 minutes old, `request_body_sha256`).
//!
//! * No `secrets`: keys come from `[route.jwt] jwks_url` (fetched, cached, only that host)
//!   or `keys` (a JWKS JSON text, from a value, env or file).
//! * `jwt` requires `audiences` (the engine would treat an empty list as unchecked) and one
//!   of `jwks_url`/`keys`.
//! * `google-pubsub`: the audience is `[route.jwt] audiences` or else the route's
//!   `public_url`; `claims.email` (the push service accounts) is required; keys default to
//!   Google's JWKS.
//! * `plaid`: keys from `jwks_url` or `keys` (Plaid serves its keys through an authenticated
//!   API call, not a public JWKS; fetch them with your client and give them here).
//! * Id: `jti` when present (`x-hookseal-id`); the timestamp is `iat`.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::{
    Algorithm, ClaimRule, JwksCache, JwksOptions, JwtError, JwtPolicy, JwtVerifier, KeySet,
    KeySource, GOOGLE_JWKS_URL, PLAID_HEADER,
};
use crate::verify::check::{Check, Checked};
use crate::verify::registry::SecretUse;
use crate::verify::{
    intern, Input, JwtRouteOptions, SchemeDef, SchemeError, SchemeOptions, Verified, Verifier,
    VerifyError,
};

const NO_SIGN: crate::verify::registry::SignFn = |_| {
    Err(SchemeError::config(
        "JWTs are signed with the provider's private key: hookseal cannot sign them",
    ))
};

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "jwt",
    headers: &["authorization"],
    options: &["jwt", "ca_file"],
    build: |o, _| build(o, Preset::Generic),
    sign: NO_SIGN,
    secrets: SecretUse::Refused,
    // `signed_content` stays `Unsupported`: a JWT is not a MAC over the raw body as
    // `SignedContent::Body` describes (Pub/Sub's token does not cover the body at all).
    ..SchemeDef::BASE
};

pub(crate) static GOOGLE_PUBSUB: SchemeDef = SchemeDef {
    name: "google-pubsub",
    headers: &["authorization"],
    options: &["jwt", "public_url", "ca_file"],
    build: |o, _| build(o, Preset::GooglePubsub),
    sign: NO_SIGN,
    secrets: SecretUse::Refused,
    // `signed_content` stays `Unsupported`: a JWT is not a MAC over the raw body as
    // `SignedContent::Body` describes (Pub/Sub's token does not cover the body at all).
    ..SchemeDef::BASE
};

pub(crate) static PLAID: SchemeDef = SchemeDef {
    name: "plaid",
    headers: &[PLAID_HEADER],
    options: &["jwt", "ca_file"],
    build: |o, _| build(o, Preset::Plaid),
    sign: NO_SIGN,
    secrets: SecretUse::Refused,
    // `signed_content` stays `Unsupported`: a JWT is not a MAC over the raw body as
    // `SignedContent::Body` describes (Pub/Sub's token does not cover the body at all).
    ..SchemeDef::BASE
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Preset {
    Generic,
    GooglePubsub,
    Plaid,
}

fn build(o: &SchemeOptions, preset: Preset) -> Result<Arc<dyn Verifier>, SchemeError> {
    let empty = JwtRouteOptions::default();
    let r = o.engine.jwt.as_ref().unwrap_or(&empty);
    let mut policy = match preset {
        Preset::Generic => {
            if r.audiences.is_empty() {
                return Err(SchemeError::config(
                    "scheme jwt needs [route.jwt] audiences (an unchecked audience accepts \
                     any token the issuer signed for anyone)",
                ));
            }
            JwtPolicy::default()
        }
        Preset::GooglePubsub => {
            let audience = r
                .audiences
                .first()
                .cloned()
                .or_else(|| o.public_url.clone())
                .ok_or_else(|| {
                    SchemeError::config(
                        "scheme google-pubsub needs public_url (the push endpoint) or \
                         [route.jwt] audiences",
                    )
                })?;
            let emails: Vec<String> = r
                .claims
                .iter()
                .find(|(k, _)| k == "email")
                .map(|(_, v)| {
                    v.iter()
                        .filter_map(|e| e.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default();
            if emails.is_empty() {
                return Err(SchemeError::config(
                    "scheme google-pubsub needs [route.jwt] claims.email (the push service \
                     accounts)",
                ));
            }
            let mut p = JwtPolicy::google_pubsub(&audience, &emails);
            p.audiences.extend(r.audiences.iter().skip(1).cloned());
            p
        }
        Preset::Plaid => JwtPolicy::plaid(),
    };
    if preset != Preset::Plaid {
        if let Some(h) = &r.header {
            policy.header = Some(h.to_ascii_lowercase());
        }
    }
    if let Some(names) = &r.algorithms {
        let mut algs = Vec::new();
        for n in names {
            let a = Algorithm::parse(n).ok_or_else(|| {
                SchemeError::config(format!(
                    "[route.jwt] algorithms: {n:?} is not one of RS256, ES256, EdDSA"
                ))
            })?;
            algs.push(a);
        }
        policy.algorithms = algs;
    }
    if !r.issuers.is_empty() {
        policy.issuers.clone_from(&r.issuers);
    }
    if preset == Preset::Generic {
        policy.audiences.clone_from(&r.audiences);
    }
    if let Some(l) = r.leeway {
        policy.leeway = l;
    }
    for (name, values) in &r.claims {
        if preset == Preset::GooglePubsub && name == "email" {
            continue;
        }
        policy.claims.push(ClaimRule {
            name: name.clone(),
            one_of: values.clone(),
        });
    }
    let keys = match (&r.jwks_url, &r.keys) {
        (Some(_), Some(_)) => {
            return Err(SchemeError::config(
                "[route.jwt]: give jwks_url or keys, not both",
            ))
        }
        (None, Some(text)) => KeySource::Inline(Arc::new(
            KeySet::from_jwks_json(text).map_err(|e| SchemeError::config(format!("keys: {e}")))?,
        )),
        (url, None) => {
            let url = match (url, preset) {
                (Some(u), _) => u.as_str(),
                (None, Preset::GooglePubsub) => GOOGLE_JWKS_URL,
                (None, _) => return Err(SchemeError::config("[route.jwt] needs jwks_url or keys")),
            };
            let fetcher = o.engine.fetcher("jwks")?;
            KeySource::Remote(Arc::new(
                JwksCache::new(fetcher, url, JwksOptions::default())
                    .map_err(|e| SchemeError::config(format!("jwks_url: {e}")))?,
            ))
        }
    };
    let header: &'static str = intern(policy.header.as_deref().unwrap_or("authorization"));
    let inner = JwtVerifier::new(policy, keys).map_err(SchemeError::config)?;
    Ok(Arc::new(Jwt { inner, header }))
}

#[derive(Debug)]
struct Jwt {
    inner: JwtVerifier,
    /// The token's header, for `missing_signature`.
    header: &'static str,
}

impl Jwt {
    fn reason(&self, e: &JwtError) -> VerifyError {
        match e {
            JwtError::Missing => VerifyError::MissingSignature(self.header),
            JwtError::BadToken(_) => VerifyError::BadToken,
            JwtError::Expired(_) => VerifyError::TokenExpired,
            JwtError::ClaimMismatch(_) => VerifyError::ClaimMismatch,
            JwtError::KeysUnavailable => VerifyError::KeysUnavailable,
        }
    }
}

impl Verifier for Jwt {
    /// Only the pipeline's [`Verifier::check`] can verify (the keys may be fetched).
    fn verify(&self, _: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        Err(VerifyError::KeysUnavailable)
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, _: Duration) -> Check<'a> {
        Check::Pending(Box::pin(async move {
            let v = self
                .inner
                .verify(input.headers, input.body, now, Instant::now())
                .await
                .map_err(|e| self.reason(&e))?;
            Ok(Checked::Verified(Verified {
                key_index: 0,
                id: v.id.and_then(|id| HeaderValue::from_str(&id).ok()),
                timestamp: v.issued_at,
            }))
        }))
    }
}
