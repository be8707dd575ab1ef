//! `scheme = "sns"`: the [`SnsVerifier`] as a registry scheme (SPEC "More schemes"). AWS
//! documents the message format and signature in "Verifying the signatures of Amazon SNS
//! messages" and the subscription handshake in "Confirm the subscription" (Amazon SNS
//! Developer Guide); the engine's module doc gives the check order.
//!
//! * Route keys: `topics` (required), `cert_host` (default `sns.{region}.amazonaws.com`),
//!   `confirm = "auto" | "forward"` (default auto), `ca_file` (roots instead of the system
//!   store). No `secrets`: the key is AWS's certificate.
//! * Outbound hosts: only `cert_host` expanded with the TopicArn's region, for the
//!   certificate and the `SubscribeURL`.
//! * `x-amz-sns-message-type`, when sent, must name the verified `Type` (else malformed: an
//!   app that dispatches on the header must see what was verified).
//! * Id: `MessageId` (dedupe on by default). `confirm = "auto"`: a verified
//!   `SubscriptionConfirmation` is confirmed by hookseal once across replicas and answered
//!   `200 {"status":"confirmed"}` (`result="handshake"`); `"forward"`: it goes to the app.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http::HeaderValue;

use super::{HostPattern, MessageType, SnsError, SnsOptions, SnsVerifier};
use crate::verify::check::{Check, Checked};
use crate::verify::registry::SecretUse;
use crate::verify::{
    Confirm, Input, MessageId, SchemeDef, SchemeError, SchemeOptions, Verified, Verifier,
    VerifyError,
};

/// The header SNS names the message type in (`Notification`, ...).
const TYPE_HEADER: &str = "x-amz-sns-message-type";

pub(crate) static DEF: SchemeDef = SchemeDef {
    name: "sns",
    headers: &[TYPE_HEADER],
    message_id: MessageId::Configured,
    options: &["topics", "cert_host", "confirm", "ca_file"],
    build: |o, _| Ok(Arc::new(Sns::build(o)?)),
    sign: |_| {
        Err(SchemeError::config(
            "sns messages are signed with AWS's private key: hookseal cannot sign them",
        ))
    },
    secrets: SecretUse::Refused,
    handshakes: true,
    // The signed text is rebuilt from parsed JSON fields, so the raw body may vary (whitespace,
    // key order) under one valid signature: `SignedContent::Body` would give one delivery
    // several keys. `MessageId` (signed) is the dedupe key; no event type in the envelope.
    ..SchemeDef::BASE
};

#[derive(Debug)]
struct Sns {
    inner: Arc<SnsVerifier>,
    confirm: Confirm,
}

impl Sns {
    fn build(o: &SchemeOptions) -> Result<Sns, SchemeError> {
        let r = o
            .engine
            .sns
            .as_ref()
            .ok_or_else(|| SchemeError::config("scheme sns needs `topics`"))?;
        let mut options = SnsOptions::new(r.topics.clone());
        if let Some(host) = &r.cert_host {
            options.cert_host = HostPattern::parse(host).map_err(SchemeError::config)?;
        }
        let fetcher = o.engine.fetcher("sns_cert")?;
        let inner = SnsVerifier::new(options, fetcher).map_err(SchemeError::config)?;
        Ok(Sns {
            inner: Arc::new(inner),
            confirm: r.confirm,
        })
    }
}

fn reason(e: &SnsError) -> VerifyError {
    match e {
        SnsError::Malformed(_) => VerifyError::MalformedSignature("SNS message"),
        SnsError::TopicNotAllowed => VerifyError::TopicNotAllowed,
        SnsError::BadCertUrl => VerifyError::BadCertUrl,
        SnsError::CertUnavailable => VerifyError::CertUnavailable,
        SnsError::BadSignature => VerifyError::BadSignature,
    }
}

impl Verifier for Sns {
    /// Only the pipeline's [`Verifier::check`] can verify (the certificate is fetched).
    fn verify(&self, _: &Input<'_>, _: i64, _: Duration) -> Result<Verified, VerifyError> {
        Err(VerifyError::CertUnavailable)
    }

    fn configured_id(&self) -> bool {
        true
    }

    fn check<'a>(&'a self, input: Input<'a>, now: i64, _: Duration) -> Check<'a> {
        Check::Pending(Box::pin(async move {
            // SNS names the type in a header too; an app that reads it must read what was
            // verified (a header that says otherwise, or twice, is malformed).
            crate::verify::single(input.headers, TYPE_HEADER)?;
            let announced = input
                .headers
                .get(TYPE_HEADER)
                .map(|v| v.as_bytes().to_vec());
            let body = input.body.joined();
            let v = self
                .inner
                .verify(&body, now, Instant::now())
                .await
                .map_err(|e| reason(&e))?;
            if announced.is_some_and(|t| t != v.message.kind.as_str().as_bytes()) {
                return Err(VerifyError::MalformedSignature(TYPE_HEADER));
            }
            let id = HeaderValue::from_str(v.id())
                .map_err(|_| VerifyError::MalformedSignature("SNS message"))?;
            let verified = Verified {
                key_index: 0,
                id: Some(id),
                timestamp: None,
            };
            let confirmation = v.message.kind == MessageType::SubscriptionConfirmation;
            if confirmation && self.confirm == Confirm::Auto {
                let inner = Arc::clone(&self.inner);
                let run = async move {
                    inner
                        .confirm_subscription(&v)
                        .await
                        .map_err(|e| e.to_string())
                };
                return Ok(Checked::Confirm(verified, Box::pin(run)));
            }
            Ok(Checked::Verified(verified))
        }))
    }
}
