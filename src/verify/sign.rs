//! `hookseal sign`: the headers a real sender of each scheme would send.

use super::{SchemeError, SchemeName, SchemeOptions, SignRequest};

/// Signs `body` as a sender of scheme `name` would, and returns the headers to send
/// (`(name, value)` pairs, signature header first).
///
/// * `secret` is what the **sender** holds. For the HMAC schemes that is the same secret the
///   verifier is configured with (`whsec_...` for standard-webhooks and stripe, the raw
///   string for the others). For the Ed25519 schemes it is the **private key**:
///   standard-webhooks `whsk_<base64 of a 32-byte seed or a 64-byte keypair>` (emits a `v1a`
///   signature; the verifier is configured with the matching `whpk_` public key), discord the
///   32-byte seed as 64 hex chars (the verifier takes the public key as 64 hex chars).
/// * `id`: the message id, where the scheme sends one (standard-webhooks `webhook-id`,
///   github `X-GitHub-Delivery`, shopify `X-Shopify-Webhook-Id`, linear `Linear-Delivery`,
///   twilio `I-Twilio-Idempotency-Token`, hmac `id_header`). Standard Webhooks requires an id:
///   without one, `msg_<24 hex of SHA-256(timestamp.body)>` is used (deterministic).
/// * `timestamp`: unix seconds, for the schemes that sign one. Linear's timestamp lives in
///   the body (`webhookTimestamp`, ms): the body is signed as given, never rewritten.
/// * `method`, `path_and_query`: used by `hmac` (`{method}`, `{path}`) and by twilio/square,
///   whose signed URL is formed from `options.public_url` and `path_and_query` exactly as the
///   verifier forms it. For Twilio JSON bodies put `bodySHA256=<hex sha256 of body>` in the
///   query; otherwise the body is signed as form parameters.
///
/// # Errors
/// Missing options (`hmac` table, `public_url`); an unusable secret.
#[allow(clippy::too_many_arguments)]
pub fn sign(
    name: SchemeName,
    options: &SchemeOptions,
    secret: &[u8],
    id: Option<&str>,
    timestamp: i64,
    method: &str,
    path_and_query: &str,
    body: &[u8],
) -> Result<Vec<(String, String)>, SchemeError> {
    if secret.is_empty() {
        return Err(SchemeError::secret(0, "secret is empty"));
    }
    (name.def().sign)(&SignRequest {
        options,
        secret,
        id,
        timestamp,
        method,
        path_and_query,
        body,
    })
}
