//! `hookseal sign`: the headers a real sender of each scheme would send.

use sha2::Digest as _;

use super::{
    discord, github, hex_lower, hmac, hotglue, linear, paddle, shopify, slack, square, standard,
    stripe, twilio, SchemeError, SchemeName, SchemeOptions,
};

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
/// `none` cannot sign; missing options (`hmac` table, `public_url`); an unusable secret.
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
    if secret.is_empty() && name != SchemeName::None {
        return Err(SchemeError::secret(0, "secret is empty"));
    }
    let ts = timestamp.to_string();
    let h = |n: &str, v: String| (n.to_owned(), v);
    let mut out = Vec::new();
    match name {
        SchemeName::None => {
            return Err(SchemeError::config("scheme none does not sign requests"));
        }
        SchemeName::StandardWebhooks => {
            let id = match id {
                Some(i) => i.to_owned(),
                None => {
                    let d = sha2::Sha256::new()
                        .chain_update(ts.as_bytes())
                        .chain_update(b".")
                        .chain_update(body)
                        .finalize();
                    format!("msg_{}", &hex_lower(&d)[..24])
                }
            };
            let sig = standard::sign_value(secret, &id, timestamp, body)?;
            out.push(h("webhook-id", id));
            out.push(h("webhook-timestamp", ts));
            out.push(h("webhook-signature", sig));
        }
        SchemeName::Github => {
            out.push(h(github::SIG_HEADER, github::sign_value(secret, body)));
            if let Some(id) = id {
                out.push(h(github::ID_HEADER, id.to_owned()));
            }
        }
        SchemeName::Hotglue => out.push(h(hotglue::SIG_HEADER, hotglue::sign_value(secret, body))),
        SchemeName::Hmac => {
            return hmac::sign_headers(options, secret, id, timestamp, method, path_and_query, body)
        }
        SchemeName::Stripe => {
            out.push(h(
                stripe::SIG_HEADER,
                stripe::sign_value(secret, timestamp, body),
            ));
        }
        SchemeName::Slack => {
            let sig = slack::sign_value(secret, &ts, body);
            out.push(h(slack::TS_HEADER, ts));
            out.push(h(slack::SIG_HEADER, sig));
        }
        SchemeName::Shopify => {
            out.push(h(shopify::SIG_HEADER, shopify::sign_value(secret, body)));
            if let Some(id) = id {
                out.push(h(shopify::ID_HEADER, id.to_owned()));
            }
        }
        SchemeName::Twilio => {
            let sig = twilio::sign_value(secret, options, path_and_query, body)?;
            out.push(h(twilio::SIG_HEADER, sig));
            if let Some(id) = id {
                out.push(h(twilio::ID_HEADER, id.to_owned()));
            }
        }
        SchemeName::Square => {
            let url = square::public_url(options, "square")?.url(path_and_query);
            out.push(h(
                square::SIG_HEADER,
                square::sign_value(secret, &url, body),
            ));
        }
        SchemeName::Paddle => {
            out.push(h(
                paddle::SIG_HEADER,
                paddle::sign_value(secret, timestamp, body),
            ));
        }
        SchemeName::Linear => {
            out.push(h(linear::SIG_HEADER, linear::sign_value(secret, body)));
            if let Some(id) = id {
                out.push(h(linear::ID_HEADER, id.to_owned()));
            }
        }
        SchemeName::Discord => {
            let sig = discord::sign_value(secret, &ts, body)?;
            out.push(h(discord::SIG_HEADER, sig));
            out.push(h(discord::TS_HEADER, ts));
        }
    }
    Ok(out)
}
