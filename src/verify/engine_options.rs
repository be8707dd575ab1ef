//! Route keys of the fetching engines and of the handshakes (SPEC "Handshakes", "More
//! schemes"), as the config parsed them (`src/config/engines.rs`); each scheme's `build`
//! turns them into its verifier.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::CertificateDer;
use rustls::RootCertStore;

use super::SchemeError;
use crate::fetch::{FetchOptions, Fetcher};

/// What the route says beyond `secrets`, `tolerance`, `hmac` and `public_url`.
#[derive(Clone, Default)]
pub struct EngineOptions {
    /// `sns`: `topics`, `cert_host`, `confirm`.
    pub sns: Option<SnsRouteOptions>,
    /// `[route.jwt]`.
    pub jwt: Option<JwtRouteOptions>,
    /// `meta`: the GET handshake's `hub.verify_token` (resolved secret source).
    pub verify_token: Option<Vec<u8>>,
    /// `msgraph`: the subscription's `clientState` (resolved secret source).
    pub client_state: Option<Vec<u8>>,
    /// `ca_file`: PEM roots the outbound fetches (and SNS signing certificates) must chain to,
    /// instead of the system store.
    pub ca_pem: Option<Vec<u8>>,
}

impl std::fmt::Debug for EngineOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let redacted = |v: &Option<Vec<u8>>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("EngineOptions")
            .field("sns", &self.sns)
            .field("jwt", &self.jwt)
            .field("verify_token", &redacted(&self.verify_token))
            .field("client_state", &redacted(&self.client_state))
            .field("ca_file", &self.ca_pem.is_some())
            .finish()
    }
}

/// `confirm = "auto" | "forward"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Confirm {
    /// hookseal GETs `SubscribeURL`, once across replicas, and answers SNS itself.
    #[default]
    Auto,
    /// The verified confirmation goes to the app.
    Forward,
}

/// The `sns` route keys.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnsRouteOptions {
    pub topics: Vec<String>,
    /// `None`: `sns.{region}.amazonaws.com`.
    pub cert_host: Option<String>,
    pub confirm: Confirm,
}

/// `[route.jwt]`.
#[derive(Clone, Default, PartialEq)]
pub struct JwtRouteOptions {
    pub jwks_url: Option<String>,
    /// JWKS JSON text (`keys = { value | env | file }`).
    pub keys: Option<Vec<u8>>,
    /// `None`: the scheme's default.
    pub algorithms: Option<Vec<String>>,
    pub issuers: Vec<String>,
    pub audiences: Vec<String>,
    pub leeway: Option<Duration>,
    /// Required claim values, in config order.
    pub claims: Vec<(String, Vec<serde_json::Value>)>,
    /// The header holding the bare token; `None`: `Authorization: Bearer`.
    pub header: Option<String>,
}

impl std::fmt::Debug for JwtRouteOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("JwtRouteOptions")
            .field("jwks_url", &self.jwks_url)
            .field("keys", &self.keys.as_ref().map(|k| k.len()))
            .field("algorithms", &self.algorithms)
            .field("issuers", &self.issuers)
            .field("audiences", &self.audiences)
            .field("leeway", &self.leeway)
            .field("claims", &self.claims)
            .field("header", &self.header)
            .finish()
    }
}

impl EngineOptions {
    /// The outbound client of a route that fetches: the route's `ca_file` roots, else the
    /// system store (loaded once per process).
    pub(crate) fn fetcher(&self, purpose: &'static str) -> Result<Fetcher, SchemeError> {
        let roots = match &self.ca_pem {
            Some(pem) => Arc::new(roots_from_pem(pem).map_err(SchemeError::config)?),
            None => system_roots()?,
        };
        Ok(Fetcher::new(FetchOptions::default(), roots).for_purpose(purpose))
    }
}

/// A root store of every certificate in a PEM text (at least one).
pub(crate) fn roots_from_pem(pem: &[u8]) -> Result<RootCertStore, String> {
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(pem) {
        let cert = cert.map_err(|e| format!("ca_file: {e}"))?;
        roots
            .add(cert)
            .map_err(|e| format!("ca_file: not a usable root certificate: {e}"))?;
    }
    if roots.is_empty() {
        return Err("ca_file: no certificate in the PEM".to_owned());
    }
    Ok(roots)
}

fn system_roots() -> Result<Arc<RootCertStore>, SchemeError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, String>> = OnceLock::new();
    ROOTS
        .get_or_init(|| crate::fetch::public_roots().map(Arc::new))
        .clone()
        .map_err(SchemeError::config)
}
