//! Provider presets over one HMAC template engine: every provider that signs with an HMAC over
//! some arrangement of the body, a timestamp, an id, the method and the URL, written as one
//! [`Spec`] entry below (header, algorithm, encoding, header form, timestamp, id, signed
//! payload, key format, window) and one line in the registry.
//!
//! Every entry names its source (the provider's documentation page or SDK) in its doc comment.
//! Rules common to every entry (the provider's SDK does the same unless the entry says
//! otherwise):
//!
//! * **Key**: the secret's UTF-8 bytes as configured (`Key::Text`), or its base64 decoding
//!   (`Key::Base64`, where the provider hands out a base64 key and its SDK decodes it).
//! * **Encoding**, compared constant-time as text with the computed MAC: `Hex` is lowercase
//!   only (every SDK compares against `hexdigest()` / `digest('hex')`; uppercase → bad
//!   signature); `Base64` is the standard alphabet with padding (no URL-safe form, no missing
//!   padding: the SDKs compare the text).
//! * **Header forms**: `Single(prefix)` — the whole value is one signature after a literal
//!   prefix (none when empty); a value without the prefix is malformed; no trimming, so
//!   surrounding whitespace → bad signature. `List` — `key=value` elements split on the listed
//!   separators, not trimmed; elements without `=` ignored; every element under the signature
//!   key is a candidate (rotation); the first timestamp element wins; no signature element at
//!   all → bad signature; no timestamp element where one is needed → malformed.
//! * **Extra signature headers** (`alt`, DocuSign's `-2`, Box's secondary): optional; when
//!   present each is one more candidate, in the entry's form.
//! * **Timestamp**: `Secs` / `Millis` are strict integers (digits only), `Rfc3339` a full RFC
//!   3339 date-time (Twitch, Box, Zendesk). The signed text is the timestamp exactly as sent.
//!   The window is symmetric and inclusive (common rules, `verify/mod.rs`), checked before the
//!   MAC; the default window is the provider's documented one (5 minutes where it gives none).
//! * **Id**: the entry's id header. When the payload signs it, it is required; otherwise it
//!   is optional (a request without it verifies, with no id) and only a dedupe key.
//! * **URL**: entries that sign the URL (HubSpot) need the route's `public_url`, formed as for
//!   `twilio`/`square` (`public_url.rs`).

use std::sync::Arc;
use std::time::Duration;

use subtle::Choice;

use crate::events::DefaultEvent;

use super::public_url::{path_and_query, PublicUrl};
use super::{
    b64_decode_lenient, b64_std, check_window, ct_eq, first_match, hex_lower, optional_id,
    parse_unix, required, single, Body, HmacAlgorithm, Input, MacKey, MessageId, SchemeDef,
    SchemeError, SchemeOptions, SecretMaterial, SignRequest, SignedContent, Verified, Verifier,
    VerifyError,
};

/// How the MAC is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Enc {
    /// Lowercase hex.
    Hex,
    /// Standard base64 with padding.
    Base64,
}

/// How the signature header holds its signature(s).
#[derive(Debug, Clone, Copy)]
pub(crate) enum Form {
    /// One signature after a literal prefix (`""` for none).
    Single(&'static str),
    /// `key=value` elements split on any of `seps`: signatures under `sig`, the timestamp
    /// (with [`Ts::InList`]) under `ts`.
    List {
        seps: &'static [char],
        ts: &'static str,
        sig: &'static str,
    },
}

/// The text form of a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TsFmt {
    /// Unix seconds.
    Secs,
    /// Unix milliseconds.
    Millis,
    /// RFC 3339 date-time.
    Rfc3339,
    /// RFC 3339, or the same date-time without an offset, read as UTC (Orb; Python's
    /// `datetime.fromisoformat` with a naive value taken as UTC).
    IsoUtc,
}

/// Where the timestamp is.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Ts {
    None,
    /// Its own header.
    Header(&'static str, TsFmt),
    /// The `ts` element of a [`Form::List`] signature header.
    InList(TsFmt),
}

/// One piece of the signed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    Lit(&'static str),
    Body,
    /// The timestamp's text as sent.
    Ts,
    /// The id header's value.
    Id,
    /// The request method.
    Method,
    /// The public URL: `public_url`'s scheme and authority, the request's path and query.
    Url,
}

/// How the configured secret becomes the HMAC key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Key {
    /// Its UTF-8 bytes.
    Text,
    /// Its base64 decoding (padded or not).
    Base64,
}

/// One provider's rules.
#[derive(Debug)]
pub(crate) struct Spec {
    pub(crate) name: &'static str,
    /// The headers read: signature first, then `alt`, timestamp, id.
    pub(crate) headers: &'static [&'static str],
    pub(crate) sig: &'static str,
    pub(crate) alt: &'static [&'static str],
    pub(crate) alg: HmacAlgorithm,
    pub(crate) enc: Enc,
    pub(crate) form: Form,
    pub(crate) ts: Ts,
    /// The id header (none or one).
    pub(crate) id: &'static [&'static str],
    pub(crate) payload: &'static [Part],
    pub(crate) key: Key,
    pub(crate) tolerance: Duration,
    /// Headers that must carry exactly this value (Box's signature version and algorithm, as
    /// its SDK requires): absent → missing, another value → bad signature (a scheme hookseal
    /// cannot check).
    pub(crate) fixed: &'static [(&'static str, &'static str)],
}

impl Spec {
    const fn signs(&self, p: Part) -> bool {
        let mut i = 0;
        while i < self.payload.len() {
            if matches!(
                (self.payload[i], p),
                (Part::Id, Part::Id) | (Part::Url, Part::Url) | (Part::Ts, Part::Ts)
            ) {
                return true;
            }
            i += 1;
        }
        false
    }

    /// What `dedupe_key = "signature"` digests: the raw body (with the signed timestamp and,
    /// where signed, the id) when the payload is those parts and literals only; a payload that
    /// signs the method or URL (HubSpot), or a timestamp it does not sign, is not described by
    /// [`SignedContent::Body`], so the key is refused there.
    const fn signed_content(&self) -> SignedContent {
        let mut i = 0;
        while i < self.payload.len() {
            if matches!(self.payload[i], Part::Method | Part::Url) {
                return SignedContent::Unsupported;
            }
            i += 1;
        }
        if !matches!(self.ts, Ts::None) && !self.signs(Part::Ts) {
            return SignedContent::Unsupported;
        }
        SignedContent::Body {
            id: self.signs(Part::Id),
        }
    }

    /// The [`SchemeDef`] of this preset, with the provider's event type source.
    pub(crate) const fn def(
        &'static self,
        event: DefaultEvent,
        build: super::registry::BuildFn,
        sign: super::registry::SignFn,
    ) -> SchemeDef {
        SchemeDef {
            name: self.name,
            default_tolerance: self.tolerance,
            message_id: if self.id.is_empty() {
                MessageId::None
            } else {
                MessageId::Headers(self.id)
            },
            headers: self.headers,
            options: if self.signs(Part::Url) {
                &["public_url"]
            } else {
                &[]
            },
            build,
            sign,
            id_signed: self.signs(Part::Id),
            signed_content: self.signed_content(),
            event,
            ..SchemeDef::BASE
        }
    }
}

/// `static NAME: SchemeDef = preset!(SPEC);` for a `const SPEC: Spec` whose provider names no
/// event type hookseal can read; `preset!(SPEC, Header("X-Event-Key"))` / `preset!(SPEC,
/// Json("/type"))` where its documentation says where the event type is.
macro_rules! preset {
    ($spec:ident) => {
        preset!(@ $spec, DefaultEvent::None)
    };
    ($spec:ident, $kind:ident($src:literal)) => {
        preset!(@ $spec, DefaultEvent::$kind($src))
    };
    (@ $spec:ident, $event:expr) => {
        $spec.def(
            $event,
            |o, s| Ok(Arc::new(Template::new(&$spec, o, s)?)),
            |r| sign(&$spec, r),
        )
    };
}

const MIN5: Duration = Duration::from_secs(300);
const SHA1: HmacAlgorithm = HmacAlgorithm::Sha1;
const SHA256: HmacAlgorithm = HmacAlgorithm::Sha256;
const SHA512: HmacAlgorithm = HmacAlgorithm::Sha512;
const BODY: &[Part] = &[Part::Body];

/// A plain "HMAC of the body" preset: `hdr` holds `prefix` + the MAC, optional id header.
const fn body_mac(
    name: &'static str,
    headers: &'static [&'static str],
    alg: HmacAlgorithm,
    enc: Enc,
    prefix: &'static str,
    id: &'static [&'static str],
) -> Spec {
    Spec {
        name,
        headers,
        sig: headers[0],
        alt: &[],
        alg,
        enc,
        form: Form::Single(prefix),
        ts: Ts::None,
        id,
        payload: BODY,
        key: Key::Text,
        tolerance: MIN5,
        fixed: &[],
    }
}

// ------------------------------------------------------------------------------------------
// The presets, one entry each (alphabetical). Registry lines: `registry.rs`.
// ------------------------------------------------------------------------------------------

/// Bitbucket Cloud: `X-Hub-Signature: sha256=<hex HMAC-SHA256(body)>`; id `X-Request-UUID`.
/// Source: Bitbucket Cloud "Manage webhooks" / "Secure webhooks" (bitbucket.org/blog/enhanced-webhook-security).
static BITBUCKET_SPEC: Spec = body_mac(
    "bitbucket",
    &["X-Hub-Signature", "X-Request-UUID"],
    SHA256,
    Enc::Hex,
    "sha256=",
    &["X-Request-UUID"],
);
pub(crate) static BITBUCKET: SchemeDef = preset!(BITBUCKET_SPEC, Header("X-Event-Key"));

/// Gitea: `X-Gitea-Signature: <hex HMAC-SHA256(body)>`, no prefix; id `X-Gitea-Delivery`.
/// Source: Gitea docs "Webhooks" (docs.gitea.com/usage/webhooks).
static GITEA_SPEC: Spec = body_mac(
    "gitea",
    &["X-Gitea-Signature", "X-Gitea-Delivery"],
    SHA256,
    Enc::Hex,
    "",
    &["X-Gitea-Delivery"],
);
pub(crate) static GITEA: SchemeDef = preset!(GITEA_SPEC, Header("X-Gitea-Event"));

/// Forgejo: `X-Forgejo-Signature: <hex HMAC-SHA256(body)>` (it also sends the same value as
/// `X-Gitea-Signature`, which the app may ignore); id `X-Forgejo-Delivery`.
/// Source: Forgejo docs "Webhooks" (forgejo.org/docs/latest/user/webhooks).
static FORGEJO_SPEC: Spec = body_mac(
    "forgejo",
    &["X-Forgejo-Signature", "X-Forgejo-Delivery"],
    SHA256,
    Enc::Hex,
    "",
    &["X-Forgejo-Delivery"],
);
pub(crate) static FORGEJO: SchemeDef = preset!(FORGEJO_SPEC, Header("X-Forgejo-Event"));

/// Intercom: `X-Hub-Signature: sha1=<hex HMAC-SHA1(body)>` keyed with the app's client secret.
/// Source: Intercom developer docs "Webhooks — Signed notifications" (developers.intercom.com).
static INTERCOM_SPEC: Spec = body_mac(
    "intercom",
    &["X-Hub-Signature"],
    SHA1,
    Enc::Hex,
    "sha1=",
    &[],
);
pub(crate) static INTERCOM: SchemeDef = preset!(INTERCOM_SPEC, Json("/topic"));

/// Typeform: `Typeform-Signature: sha256=<base64 HMAC-SHA256(body)>`.
/// Source: Typeform "Secure your webhooks" (typeform.com/developers/webhooks/secure-your-webhooks).
static TYPEFORM_SPEC: Spec = body_mac(
    "typeform",
    &["Typeform-Signature"],
    SHA256,
    Enc::Base64,
    "sha256=",
    &[],
);
pub(crate) static TYPEFORM: SchemeDef = preset!(TYPEFORM_SPEC, Json("/event_type"));

/// PagerDuty v3: `X-PagerDuty-Signature: v1=<hex>[,v1=<hex>]` = HMAC-SHA256(body), one per
/// active secret; id `X-Webhook-Id`. Source: PagerDuty "Verifying Signatures"
/// (developer.pagerduty.com/docs/webhooks/v3-overview) and go-pagerduty `webhookv3`.
static PAGERDUTY_SPEC: Spec = Spec {
    name: "pagerduty",
    headers: &["X-PagerDuty-Signature", "X-Webhook-Id"],
    sig: "X-PagerDuty-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "",
        sig: "v1",
    },
    ts: Ts::None,
    id: &["X-Webhook-Id"],
    payload: BODY,
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static PAGERDUTY: SchemeDef = preset!(PAGERDUTY_SPEC, Json("/event/event_type"));

/// Zendesk: `X-Zendesk-Webhook-Signature: <base64 HMAC-SHA256(timestamp + body)>` with
/// `X-Zendesk-Webhook-Signature-Timestamp` (RFC 3339, e.g. `2021-07-07T18:55:52Z`); id
/// `X-Zendesk-Webhook-Invocation-Id`. Source: Zendesk "Verifying webhook authenticity"
/// (developer.zendesk.com/documentation/webhooks/verifying).
static ZENDESK_SPEC: Spec = Spec {
    name: "zendesk",
    headers: &[
        "X-Zendesk-Webhook-Signature",
        "X-Zendesk-Webhook-Signature-Timestamp",
        "X-Zendesk-Webhook-Invocation-Id",
    ],
    sig: "X-Zendesk-Webhook-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Base64,
    form: Form::Single(""),
    ts: Ts::Header("X-Zendesk-Webhook-Signature-Timestamp", TsFmt::Rfc3339),
    id: &["X-Zendesk-Webhook-Invocation-Id"],
    payload: &[Part::Ts, Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static ZENDESK: SchemeDef = preset!(ZENDESK_SPEC, Json("/type"));

/// HubSpot v3: `X-HubSpot-Signature-v3: <base64 HMAC-SHA256(method + URL + body + timestamp)>`
/// with `X-HubSpot-Request-Timestamp` in milliseconds, rejected when older than 5 minutes; the
/// URL is the public one (`public_url`), with the escapes HubSpot lists decoded (see
/// [`hubspot_url`]). Source: HubSpot "Validating requests — v3"
/// (developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation).
static HUBSPOT_SPEC: Spec = Spec {
    name: "hubspot",
    headers: &["X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp"],
    sig: "X-HubSpot-Signature-v3",
    alt: &[],
    alg: SHA256,
    enc: Enc::Base64,
    form: Form::Single(""),
    ts: Ts::Header("X-HubSpot-Request-Timestamp", TsFmt::Millis),
    id: &[],
    payload: &[Part::Method, Part::Url, Part::Body, Part::Ts],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static HUBSPOT: SchemeDef = preset!(HUBSPOT_SPEC);

/// Twitch EventSub: `Twitch-Eventsub-Message-Signature: sha256=<hex HMAC-SHA256(id +
/// timestamp + body)>`, `Twitch-Eventsub-Message-Id` (signed, deduplicated) and
/// `Twitch-Eventsub-Message-Timestamp` (RFC 3339 with nanoseconds); Twitch says to reject
/// messages older than 10 minutes. The `webhook_callback_verification` challenge is signed
/// like any message and forwarded to the app. Source: Twitch "Handling webhook events —
/// Verifying the event message" (dev.twitch.tv/docs/eventsub/handling-webhook-events).
static TWITCH_SPEC: Spec = Spec {
    name: "twitch",
    headers: &[
        "Twitch-Eventsub-Message-Signature",
        "Twitch-Eventsub-Message-Timestamp",
        "Twitch-Eventsub-Message-Id",
    ],
    sig: "Twitch-Eventsub-Message-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::Single("sha256="),
    ts: Ts::Header("Twitch-Eventsub-Message-Timestamp", TsFmt::Rfc3339),
    id: &["Twitch-Eventsub-Message-Id"],
    payload: &[Part::Id, Part::Ts, Part::Body],
    key: Key::Text,
    tolerance: Duration::from_secs(600),
    fixed: &[],
};
pub(crate) static TWITCH: SchemeDef =
    preset!(TWITCH_SPEC, Header("Twitch-Eventsub-Subscription-Type"));

/// Segment (webhook destination): `X-Signature: <hex HMAC-SHA1(body)>` with the destination's
/// shared secret. Source: Segment "Webhooks destination — Authentication"
/// (segment.com/docs/connections/destinations/catalog/webhooks).
static SEGMENT_SPEC: Spec = body_mac("segment", &["X-Signature"], SHA1, Enc::Hex, "", &[]);
pub(crate) static SEGMENT: SchemeDef = preset!(SEGMENT_SPEC, Json("/type"));

/// Sentry integration platform: `Sentry-Hook-Signature: <hex HMAC-SHA256(body)>` keyed with
/// the integration's client secret; id `Request-ID`. `Sentry-Hook-Timestamp` is not signed,
/// so it is not checked. Source: Sentry "Integration platform — Webhooks"
/// (docs.sentry.io/integrations/integration-platform/webhooks).
static SENTRY_SPEC: Spec = body_mac(
    "sentry",
    &["Sentry-Hook-Signature", "Request-ID"],
    SHA256,
    Enc::Hex,
    "",
    &["Request-ID"],
);
pub(crate) static SENTRY: SchemeDef = preset!(SENTRY_SPEC, Header("Sentry-Hook-Resource"));

/// Vercel: `x-vercel-signature: <hex HMAC-SHA1(body)>` with the integration's client secret
/// or the webhook secret. Source: Vercel "Webhooks — Securing webhooks"
/// (vercel.com/docs/webhooks/webhooks-api#securing-webhooks).
static VERCEL_SPEC: Spec = body_mac("vercel", &["x-vercel-signature"], SHA1, Enc::Hex, "", &[]);
pub(crate) static VERCEL: SchemeDef = preset!(VERCEL_SPEC, Json("/type"));

/// Terraform Cloud / HCP Terraform notifications: `X-TFE-Notification-Signature: <hex
/// HMAC-SHA512(body)>` with the notification token. Source: HCP Terraform "Notification
/// configurations — Notification authenticity" (developer.hashicorp.com/terraform/cloud-docs/api-docs/notification-configurations).
static TERRAFORM_CLOUD_SPEC: Spec = body_mac(
    "terraform-cloud",
    &["X-TFE-Notification-Signature"],
    SHA512,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static TERRAFORM_CLOUD: SchemeDef = preset!(TERRAFORM_CLOUD_SPEC);

/// Calendly: `Calendly-Webhook-Signature: t=<unix>,v1=<hex HMAC-SHA256(t + "." + body)>`,
/// 3-minute window as in Calendly's example. Source: Calendly "Webhook signatures"
/// (developer.calendly.com/api-docs/ZG9jOjM2MzE2MDM4-webhook-signatures).
static CALENDLY_SPEC: Spec = Spec {
    name: "calendly",
    headers: &["Calendly-Webhook-Signature"],
    sig: "Calendly-Webhook-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "t",
        sig: "v1",
    },
    ts: Ts::InList(TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: Duration::from_secs(180),
    fixed: &[],
};
pub(crate) static CALENDLY: SchemeDef = preset!(CALENDLY_SPEC, Json("/event"));

/// Razorpay: `X-Razorpay-Signature: <hex HMAC-SHA256(body)>` with the webhook secret; id
/// `x-razorpay-event-id`. Source: Razorpay "Validate webhooks"
/// (razorpay.com/docs/webhooks/validate-test) and razorpay-node `validateWebhookSignature`.
static RAZORPAY_SPEC: Spec = body_mac(
    "razorpay",
    &["X-Razorpay-Signature", "x-razorpay-event-id"],
    SHA256,
    Enc::Hex,
    "",
    &["x-razorpay-event-id"],
);
pub(crate) static RAZORPAY: SchemeDef = preset!(RAZORPAY_SPEC, Json("/event"));

/// Mollie (next-gen webhooks): `X-Mollie-Signature: sha256=<hex HMAC-SHA256(body)>`. Mollie's
/// classic webhooks carry only a resource id and are not signed (the app fetches the
/// resource): not covered. Known limit: while a secret is rotated Mollie is reported to send
/// the header twice for 24 hours (hookdeck's webhook-skills); hookseal refuses a repeated
/// signature header (malformed, the common rule), so rotate with the old secret removed from
/// Mollie first. Source: Mollie "Webhooks: Best practices — How to verify HMAC signature"
/// (docs.mollie.com/reference/webhooks-best-practices).
static MOLLIE_SPEC: Spec = body_mac(
    "mollie",
    &["X-Mollie-Signature"],
    SHA256,
    Enc::Hex,
    "sha256=",
    &[],
);
pub(crate) static MOLLIE: SchemeDef = preset!(MOLLIE_SPEC);

/// Xero: `x-xero-signature: <base64 HMAC-SHA256(body)>` with the webhook key; Xero's "intent
/// to receive" check expects 401 for a bad signature, which hookseal answers. Source: Xero
/// "Webhooks — Signature" (developer.xero.com/documentation/guides/webhooks/configuring-your-server).
static XERO_SPEC: Spec = body_mac("xero", &["x-xero-signature"], SHA256, Enc::Base64, "", &[]);
pub(crate) static XERO: SchemeDef = preset!(XERO_SPEC);

/// DocuSign Connect: `X-DocuSign-Signature-1: <base64 HMAC-SHA256(body)>`, and
/// `X-DocuSign-Signature-2` when a second key is active (either may match). Source: DocuSign
/// "HMAC security for Connect" (developers.docusign.com/platform/webhooks/connect/hmac).
static DOCUSIGN_SPEC: Spec = Spec {
    name: "docusign",
    headers: &["X-DocuSign-Signature-1", "X-DocuSign-Signature-2"],
    sig: "X-DocuSign-Signature-1",
    alt: &["X-DocuSign-Signature-2"],
    alg: SHA256,
    enc: Enc::Base64,
    form: Form::Single(""),
    ts: Ts::None,
    id: &[],
    payload: BODY,
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static DOCUSIGN: SchemeDef = preset!(DOCUSIGN_SPEC, Json("/event"));

/// Box: `box-signature-primary` (and `box-signature-secondary` during rotation) =
/// base64 HMAC-SHA256(body + `box-delivery-timestamp`), the timestamp RFC 3339, 10-minute
/// window; id `box-delivery-id`; `box-signature-version: 1` and `box-signature-algorithm:
/// HmacSHA256` required, as `box-node-sdk`'s `validateMessage` requires them. Each configured key may match either header (Box pairs the
/// primary key with the primary header; the SDK tries both keys). Source: Box "Signatures —
/// Verify webhook signatures" (developer.box.com/guides/webhooks/v2/signatures-v2).
static BOX_SPEC: Spec = Spec {
    name: "box",
    headers: &[
        "box-signature-primary",
        "box-signature-secondary",
        "box-delivery-timestamp",
        "box-delivery-id",
        "box-signature-version",
        "box-signature-algorithm",
    ],
    sig: "box-signature-primary",
    alt: &["box-signature-secondary"],
    alg: SHA256,
    enc: Enc::Base64,
    form: Form::Single(""),
    ts: Ts::Header("box-delivery-timestamp", TsFmt::Rfc3339),
    id: &["box-delivery-id"],
    payload: &[Part::Body, Part::Ts],
    key: Key::Text,
    tolerance: Duration::from_secs(600),
    fixed: &[
        ("box-signature-version", "1"),
        ("box-signature-algorithm", "HmacSHA256"),
    ],
};
pub(crate) static BOX: SchemeDef = preset!(BOX_SPEC, Json("/trigger"));

/// Frame.io: `X-Frameio-Signature: v0=<hex HMAC-SHA256("v0:" + timestamp + ":" + body)>` with
/// `X-Frameio-Request-Timestamp` (unix seconds), 5-minute window. Source: Frame.io
/// "Webhooks — Security and verification" (developer.frame.io/docs/automations-webhooks/webhooks-overview).
static FRAME_IO_SPEC: Spec = Spec {
    name: "frame-io",
    headers: &["X-Frameio-Signature", "X-Frameio-Request-Timestamp"],
    sig: "X-Frameio-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::Single("v0="),
    ts: Ts::Header("X-Frameio-Request-Timestamp", TsFmt::Secs),
    id: &[],
    payload: &[Part::Lit("v0:"), Part::Ts, Part::Lit(":"), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static FRAME_IO: SchemeDef = preset!(FRAME_IO_SPEC, Json("/type"));

/// LaunchDarkly: `X-LD-Signature: <hex HMAC-SHA256(body)>` with the webhook's secret.
/// Source: LaunchDarkly "Webhooks — Signing webhooks" (docs.launchdarkly.com/home/connecting/webhooks).
static LAUNCHDARKLY_SPEC: Spec = body_mac(
    "launchdarkly",
    &["X-LD-Signature"],
    SHA256,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static LAUNCHDARKLY: SchemeDef = preset!(LAUNCHDARKLY_SPEC);

/// CircleCI: `circleci-signature: v1=<hex HMAC-SHA256(body)>` (a comma-separated list of
/// versioned signatures; only `v1` counts); id `circleci-event-type`-independent, none.
/// Source: CircleCI "Outbound webhooks — Validate webhooks" (circleci.com/docs/webhooks).
static CIRCLECI_SPEC: Spec = Spec {
    name: "circleci",
    headers: &["circleci-signature"],
    sig: "circleci-signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "",
        sig: "v1",
    },
    ts: Ts::None,
    id: &[],
    payload: BODY,
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static CIRCLECI: SchemeDef = preset!(CIRCLECI_SPEC, Header("circleci-event-type"));

/// Buildkite (signature mode): `X-Buildkite-Signature: timestamp=<unix>,signature=<hex
/// HMAC-SHA256(timestamp + "." + body)>`. Buildkite's token mode (`X-Buildkite-Token`) is not
/// this preset. Source: Buildkite "Webhooks — Webhook signature"
/// (buildkite.com/docs/apis/webhooks#webhook-signature).
static BUILDKITE_SPEC: Spec = Spec {
    name: "buildkite",
    headers: &["X-Buildkite-Signature"],
    sig: "X-Buildkite-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "timestamp",
        sig: "signature",
    },
    ts: Ts::InList(TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static BUILDKITE: SchemeDef = preset!(BUILDKITE_SPEC, Header("X-Buildkite-Event"));

/// Mux: `Mux-Signature: t=<unix>,v1=<hex HMAC-SHA256(t + "." + body)>`, 5-minute window as
/// `@mux/mux-node`'s `webhooks.verifySignature`. Source: Mux "Verify webhook signatures"
/// (docs.mux.com/core/verify-webhook-signatures).
static MUX_SPEC: Spec = Spec {
    name: "mux",
    headers: &["Mux-Signature"],
    sig: "Mux-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "t",
        sig: "v1",
    },
    ts: Ts::InList(TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static MUX: SchemeDef = preset!(MUX_SPEC, Json("/type"));

/// Castle: `X-Castle-Signature: <base64 HMAC-SHA256(body)>` keyed with the API secret.
/// Source: Castle "Webhooks — Verifying" (docs.castle.io/docs/webhooks).
static CASTLE_SPEC: Spec = body_mac(
    "castle",
    &["X-Castle-Signature"],
    SHA256,
    Enc::Base64,
    "",
    &[],
);
pub(crate) static CASTLE: SchemeDef = preset!(CASTLE_SPEC);

/// Persona: `Persona-Signature: t=<unix>,v1=<hex HMAC-SHA256(t + "." + body)>`; during secret
/// rotation several `t=..,v1=..` groups separated by spaces. Source: Persona "Webhooks —
/// Checking signatures" (docs.withpersona.com/docs/webhooks-best-practices).
static PERSONA_SPEC: Spec = Spec {
    name: "persona",
    headers: &["Persona-Signature"],
    sig: "Persona-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[',', ' '],
        ts: "t",
        sig: "v1",
    },
    ts: Ts::InList(TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static PERSONA: SchemeDef = preset!(PERSONA_SPEC, Json("/data/attributes/name"));

/// Lob: `Lob-Signature: <hex HMAC-SHA256(timestamp + "." + body)>` with
/// `Lob-Signature-Timestamp` (unix seconds); Lob suggests rejecting after 5 minutes.
/// Source: Lob "Webhooks — Security" (docs.lob.com/#tag/Webhooks).
static LOB_SPEC: Spec = Spec {
    name: "lob",
    headers: &["Lob-Signature", "Lob-Signature-Timestamp"],
    sig: "Lob-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::Single(""),
    ts: Ts::Header("Lob-Signature-Timestamp", TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static LOB: SchemeDef = preset!(LOB_SPEC);

/// Modern Treasury: `X-Signature: <hex HMAC-SHA256(body)>` with the webhook key; id
/// `X-Webhook-ID`. Source: Modern Treasury "Webhooks — Verifying webhooks"
/// (docs.moderntreasury.com/platform/reference/webhooks-signatures).
static MODERN_TREASURY_SPEC: Spec = body_mac(
    "modern-treasury",
    &["X-Signature", "X-Webhook-ID"],
    SHA256,
    Enc::Hex,
    "",
    &["X-Webhook-ID"],
);
pub(crate) static MODERN_TREASURY: SchemeDef = preset!(MODERN_TREASURY_SPEC);

/// Coinbase Commerce: `X-CC-Webhook-Signature: <hex HMAC-SHA256(body)>` with the shared
/// secret. Source: Coinbase Commerce "Webhooks — Securing webhooks"
/// (docs.cdp.coinbase.com/commerce-onchain/docs/webhooks-security).
static COINBASE_SPEC: Spec = body_mac(
    "coinbase",
    &["X-CC-Webhook-Signature"],
    SHA256,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static COINBASE: SchemeDef = preset!(COINBASE_SPEC, Json("/event/type"));

/// WooCommerce: `X-WC-Webhook-Signature: <base64 HMAC-SHA256(body)>`; id
/// `X-WC-Webhook-Delivery-ID`. Source: WooCommerce REST API docs "Webhooks — Delivery/payload"
/// (woocommerce.github.io/woocommerce-rest-api-docs/#webhooks).
static WOOCOMMERCE_SPEC: Spec = body_mac(
    "woocommerce",
    &["X-WC-Webhook-Signature", "X-WC-Webhook-Delivery-ID"],
    SHA256,
    Enc::Base64,
    "",
    &["X-WC-Webhook-Delivery-ID"],
);
pub(crate) static WOOCOMMERCE: SchemeDef = preset!(WOOCOMMERCE_SPEC, Header("X-WC-Webhook-Topic"));

/// TikTok: `TikTok-Signature: t=<unix>,s=<hex HMAC-SHA256(t + "." + body)>` keyed with the
/// app's client secret. Source: TikTok for Developers "Webhooks — Verification"
/// (developers.tiktok.com/doc/webhooks-verification).
static TIKTOK_SPEC: Spec = Spec {
    name: "tiktok",
    headers: &["TikTok-Signature"],
    sig: "TikTok-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[','],
        ts: "t",
        sig: "s",
    },
    ts: Ts::InList(TsFmt::Secs),
    id: &[],
    payload: &[Part::Ts, Part::Lit("."), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static TIKTOK: SchemeDef = preset!(TIKTOK_SPEC);

/// Webex: `X-Spark-Signature: <hex HMAC-SHA1(body)>` with the webhook's secret. Source: Webex
/// developer docs "Webhooks — Auth and security" (developer.webex.com/docs/webhooks).
static WEBEX_SPEC: Spec = body_mac("webex", &["X-Spark-Signature"], SHA1, Enc::Hex, "", &[]);
pub(crate) static WEBEX: SchemeDef = preset!(WEBEX_SPEC);

/// Pusher Channels webhooks: `X-Pusher-Signature: <hex HMAC-SHA256(body)>` keyed with the
/// app secret (`X-Pusher-Key` names the app key; not checked). Source: Pusher "Webhooks —
/// Authentication" (pusher.com/docs/channels/server_api/webhooks).
static PUSHER_SPEC: Spec = body_mac("pusher", &["X-Pusher-Signature"], SHA256, Enc::Hex, "", &[]);
pub(crate) static PUSHER: SchemeDef = preset!(PUSHER_SPEC);

/// Microsoft Teams outgoing webhooks: `Authorization: HMAC <base64 HMAC-SHA256(body)>` keyed
/// with the base64-decoded security token Teams shows. Source: Microsoft Learn "Create
/// outgoing webhooks — Verify the HMAC token" (learn.microsoft.com/microsoftteams/platform).
static MICROSOFT_TEAMS_SPEC: Spec = Spec {
    name: "microsoft-teams",
    headers: &["Authorization"],
    sig: "Authorization",
    alt: &[],
    alg: SHA256,
    enc: Enc::Base64,
    form: Form::Single("HMAC "),
    ts: Ts::None,
    id: &[],
    payload: BODY,
    key: Key::Base64,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static MICROSOFT_TEAMS: SchemeDef = preset!(MICROSOFT_TEAMS_SPEC);

/// Autodesk Platform Services (Forge) webhooks: `x-adsk-signature: sha1hash=<hex
/// HMAC-SHA1(body)>` with the hook's token. Source: APS "Webhooks — Secret token"
/// (aps.autodesk.com/en/docs/webhooks/v1/developers_guide/basics).
static AUTODESK_SPEC: Spec = body_mac(
    "autodesk",
    &["x-adsk-signature"],
    SHA1,
    Enc::Hex,
    "sha1hash=",
    &[],
);
pub(crate) static AUTODESK: SchemeDef = preset!(AUTODESK_SPEC);

/// Cal.com: `X-Cal-Signature-256: <hex HMAC-SHA256(body)>` with the webhook's secret.
/// Source: Cal.com docs "Webhooks — Verifying the authenticity" (cal.com/docs/developing/guides/automation/webhooks).
static CAL_COM_SPEC: Spec = body_mac(
    "cal-com",
    &["X-Cal-Signature-256"],
    SHA256,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static CAL_COM: SchemeDef = preset!(CAL_COM_SPEC, Json("/triggerEvent"));

/// Lemon Squeezy: `X-Signature: <hex HMAC-SHA256(body)>` with the signing secret.
/// Source: Lemon Squeezy "Signing requests" (docs.lemonsqueezy.com/help/webhooks/signing-requests).
static LEMON_SQUEEZY_SPEC: Spec =
    body_mac("lemon-squeezy", &["X-Signature"], SHA256, Enc::Hex, "", &[]);
pub(crate) static LEMON_SQUEEZY: SchemeDef = preset!(LEMON_SQUEEZY_SPEC, Header("X-Event-Name"));

/// Notion: `X-Notion-Signature: sha256=<hex HMAC-SHA256(body)>` keyed with the
/// `verification_token` Notion sends once when the subscription is created. That first
/// request is unsigned (it carries the token that becomes the key), so it is refused like any
/// unsigned request: read the token from Notion's "Resend token" with the route briefly on
/// `scheme = "none"` or from the app's logs, then configure it. Source: Notion "Webhooks —
/// Validating event payloads" (developers.notion.com/reference/webhooks).
static NOTION_SPEC: Spec = body_mac(
    "notion",
    &["X-Notion-Signature"],
    SHA256,
    Enc::Hex,
    "sha256=",
    &[],
);
pub(crate) static NOTION: SchemeDef = preset!(NOTION_SPEC, Json("/type"));

/// Clearbit: `X-Request-Signature: sha1=<hex HMAC-SHA1(body)>` keyed with the API key.
/// Source: Clearbit "Webhooks — Securing webhooks" (clearbit.com/docs#webhooks).
static CLEARBIT_SPEC: Spec = body_mac(
    "clearbit",
    &["X-Request-Signature"],
    SHA1,
    Enc::Hex,
    "sha1=",
    &[],
);
pub(crate) static CLEARBIT: SchemeDef = preset!(CLEARBIT_SPEC);

/// AfterShip Tracking: `aftership-hmac-sha256: <base64 HMAC-SHA256(body)>` keyed with the
/// webhook secret (Settings → Webhooks). AfterShip's Returns/Warranty products sign the same
/// way under `as-signature-hmac-sha256` (use `hmac` for those). Source: AfterShip Tracking API
/// "Webhook signature" (aftership.com/docs/tracking/webhook/webhook-signature).
static AFTERSHIP_SPEC: Spec = body_mac(
    "aftership",
    &["aftership-hmac-sha256"],
    SHA256,
    Enc::Base64,
    "",
    &[],
);
pub(crate) static AFTERSHIP: SchemeDef = preset!(AFTERSHIP_SPEC, Json("/event"));

/// Alchemy Notify: `X-Alchemy-Signature: <hex HMAC-SHA256(body)>` keyed with the webhook's
/// signing key (no prefix, no timestamp). Source: Alchemy "Notify API quickstart — validate
/// the signature" (alchemy.com/docs/reference/notify-api-quickstart).
static ALCHEMY_SPEC: Spec = body_mac(
    "alchemy",
    &["X-Alchemy-Signature"],
    SHA256,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static ALCHEMY: SchemeDef = preset!(ALCHEMY_SPEC, Json("/type"));

/// Bolt: `X-Bolt-Hmac-Sha256: <base64 HMAC-SHA256(body)>` keyed with the merchant's signing
/// secret (Administration → API). Source: Bolt "How to verify webhooks"
/// (help.bolt.com/developers/webhooks/hook-verification).
static BOLT_SPEC: Spec = body_mac(
    "bolt",
    &["X-Bolt-Hmac-Sha256"],
    SHA256,
    Enc::Base64,
    "",
    &[],
);
pub(crate) static BOLT: SchemeDef = preset!(BOLT_SPEC, Json("/type"));

/// Chargify / Maxio Advanced Billing: `X-Chargify-Webhook-Signature-Hmac-Sha-256: <hex
/// HMAC-SHA256(body)>` keyed with the site's shared key; id `X-Chargify-Webhook-Id`. Source:
/// Chargify "Webhooks reference — Webhook signature"
/// (chargify.zendesk.com/hc/en-us/articles/4407905415963-Webhooks-Reference).
static CHARGIFY_SPEC: Spec = body_mac(
    "chargify",
    &[
        "X-Chargify-Webhook-Signature-Hmac-Sha-256",
        "X-Chargify-Webhook-Id",
    ],
    SHA256,
    Enc::Hex,
    "",
    &["X-Chargify-Webhook-Id"],
);
pub(crate) static CHARGIFY: SchemeDef = preset!(CHARGIFY_SPEC);

/// Heroku app webhooks: `Heroku-Webhook-Hmac-SHA256: <base64 HMAC-SHA256(body)>` keyed with the
/// subscription's secret; id `Heroku-Webhook-Id`. Source: Heroku Dev Center "App webhooks —
/// Securing webhook requests" (devcenter.heroku.com/articles/app-webhooks).
static HEROKU_SPEC: Spec = body_mac(
    "heroku",
    &["Heroku-Webhook-Hmac-SHA256", "Heroku-Webhook-Id"],
    SHA256,
    Enc::Base64,
    "",
    &["Heroku-Webhook-Id"],
);
pub(crate) static HEROKU: SchemeDef = preset!(HEROKU_SPEC, Header("Heroku-Webhook-Event"));

/// Sonatype Nexus Repository / IQ: `X-Nexus-Webhook-Signature: <hex HMAC-SHA1(body)>` keyed
/// with the capability's secret key; id `X-Nexus-Webhook-Delivery`, event type
/// `X-Nexus-Webhook-Id`. Source: Sonatype "Webhooks — Working with HMAC payloads" and "Example
/// headers and payloads" (help.sonatype.com).
static SONATYPE_SPEC: Spec = body_mac(
    "sonatype",
    &["X-Nexus-Webhook-Signature", "X-Nexus-Webhook-Delivery"],
    SHA1,
    Enc::Hex,
    "",
    &["X-Nexus-Webhook-Delivery"],
);
pub(crate) static SONATYPE: SchemeDef = preset!(SONATYPE_SPEC, Header("X-Nexus-Webhook-Id"));

/// Orb: `X-Orb-Signature: v1=<hex HMAC-SHA256("v1:" + timestamp + ":" + body)>` (several
/// space-separated entries allowed, any `v1` one matching), `X-Orb-Timestamp` an ISO 8601
/// date-time (without an offset it is UTC), 5-minute window both ways. Source: Orb "Webhooks —
/// Verifying signatures"; `orb-billing` Python SDK `webhooks.verify_signature` (which also
/// refuses a body that is not UTF-8; hookseal verifies the bytes as signed).
static ORB_SPEC: Spec = Spec {
    name: "orb",
    headers: &["X-Orb-Signature", "X-Orb-Timestamp"],
    sig: "X-Orb-Signature",
    alt: &[],
    alg: SHA256,
    enc: Enc::Hex,
    form: Form::List {
        seps: &[' '],
        ts: "",
        sig: "v1",
    },
    ts: Ts::Header("X-Orb-Timestamp", TsFmt::IsoUtc),
    id: &[],
    payload: &[Part::Lit("v1:"), Part::Ts, Part::Lit(":"), Part::Body],
    key: Key::Text,
    tolerance: MIN5,
    fixed: &[],
};
pub(crate) static ORB: SchemeDef = preset!(ORB_SPEC, Json("/type"));

/// Signal Sciences (Fastly Next-Gen WAF) generic webhooks: `X-SigSci-Signature: <hex
/// HMAC-SHA256(body)>` keyed with the integration's signing key. Source: Fastly "Signal
/// Sciences — Generic webhooks" (docs.fastly.com/signalsciences/integrations/generic-webhooks).
static SIGNAL_SCIENCES_SPEC: Spec = body_mac(
    "signal-sciences",
    &["X-SigSci-Signature"],
    SHA256,
    Enc::Hex,
    "",
    &[],
);
pub(crate) static SIGNAL_SCIENCES: SchemeDef = preset!(SIGNAL_SCIENCES_SPEC, Json("/type"));

// ------------------------------------------------------------------------------------------
// The engine
// ------------------------------------------------------------------------------------------

/// A built preset for one route.
#[derive(Clone)]
struct Template {
    spec: &'static Spec,
    keys: Vec<MacKey>,
    url: Option<PublicUrl>,
}

impl std::fmt::Debug for Template {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}({} keys, <redacted>)",
            self.spec.name,
            self.keys.len()
        )
    }
}

fn key_bytes(spec: &Spec, i: usize, secret: &[u8]) -> Result<Vec<u8>, SchemeError> {
    match spec.key {
        Key::Text => Ok(secret.to_vec()),
        Key::Base64 => b64_decode_lenient(secret)
            .filter(|k| !k.is_empty())
            .ok_or_else(|| {
                SchemeError::secret(
                    i,
                    format!(
                        "{} secret must be base64 (as the provider shows it)",
                        spec.name
                    ),
                )
            }),
    }
}

fn url_option(spec: &Spec, options: &SchemeOptions) -> Result<Option<PublicUrl>, SchemeError> {
    if !spec.signs(Part::Url) {
        return Ok(None);
    }
    let u = options.public_url.as_deref().ok_or_else(|| {
        SchemeError::config(format!(
            "scheme {} needs public_url (the URL the provider calls)",
            spec.name
        ))
    })?;
    PublicUrl::parse(u).map(Some)
}

impl Template {
    fn new(
        spec: &'static Spec,
        options: &SchemeOptions,
        secrets: &[SecretMaterial],
    ) -> Result<Template, SchemeError> {
        let keys = secrets
            .iter()
            .enumerate()
            .map(|(i, s)| Ok(MacKey::new(spec.alg, &key_bytes(spec, i, &s.bytes)?)))
            .collect::<Result<Vec<_>, SchemeError>>()?;
        Ok(Template {
            spec,
            keys,
            url: url_option(spec, options)?,
        })
    }
}

/// The signature candidates of one header value, and the timestamp text of a list form.
fn candidates<'a>(
    spec: &Spec,
    name: &'static str,
    value: &'a str,
    out: &mut Vec<&'a [u8]>,
) -> Result<Option<&'a str>, VerifyError> {
    match spec.form {
        Form::Single(prefix) => {
            let sig = value
                .strip_prefix(prefix)
                .ok_or(VerifyError::MalformedSignature(name))?;
            out.push(sig.as_bytes());
            Ok(None)
        }
        Form::List { seps, ts, sig } => {
            let mut t = None;
            for (k, v) in value.split(seps).filter_map(|e| e.split_once('=')) {
                if !ts.is_empty() && k == ts {
                    t = t.or(Some(v));
                } else if k == sig {
                    out.push(v.as_bytes());
                }
            }
            Ok(t)
        }
    }
}

/// Parses a timestamp text into unix seconds.
fn parse_ts(fmt: TsFmt, text: &str) -> Option<i64> {
    match fmt {
        TsFmt::Secs => parse_unix(text),
        TsFmt::Millis => parse_unix(text).map(|ms| ms.div_euclid(1000)),
        TsFmt::Rfc3339 => {
            let t =
                time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
                    .ok()?;
            Some(t.unix_timestamp())
        }
        TsFmt::IsoUtc => parse_ts(TsFmt::Rfc3339, text).or_else(|| {
            // An ISO 8601 date-time without an offset (`2025-01-01T00:00:00.143045`): UTC.
            let t = time::PrimitiveDateTime::parse(
                text,
                &time::format_description::well_known::Iso8601::DEFAULT,
            )
            .ok()?;
            Some(t.assume_utc().unix_timestamp())
        }),
    }
}

/// HubSpot's v3 URL: the escapes HubSpot lists are decoded before signing (its docs: `%3A`
/// `%2F` `%3F` `%40` `%21` `%24` `%27` `%28` `%29` `%2A` `%2C` `%3B`, either case); every
/// other escape stays as sent.
pub(crate) fn hubspot_url(url: &str) -> String {
    const DECODED: &[u8] = b":/?@!$'()*,;";
    let b = url.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let mut one = [0u8; 1];
            if crate::hex::decode_into(&b[i + 1..i + 3], &mut one) && DECODED.contains(&one[0]) {
                out.push(one[0]);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap_or_else(|_| url.to_owned())
}

/// The signed payload's pieces before and after the body.
fn parts<'a>(
    spec: &Spec,
    method: &'a str,
    url: &'a str,
    ts: &'a str,
    id: &'a str,
    body: Body<'a>,
) -> Vec<&'a [u8]> {
    let mut out = Vec::with_capacity(spec.payload.len() + 2);
    for p in spec.payload {
        match p {
            Part::Lit(l) => out.push(l.as_bytes()),
            Part::Body => out.extend(body.pieces()),
            Part::Ts => out.push(ts.as_bytes()),
            Part::Id => out.push(id.as_bytes()),
            Part::Method => out.push(method.as_bytes()),
            Part::Url => out.push(url.as_bytes()),
        }
    }
    out
}

fn encode(enc: Enc, mac: &[u8]) -> String {
    match enc {
        Enc::Hex => hex_lower(mac),
        Enc::Base64 => b64_std(mac),
    }
}

impl Verifier for Template {
    fn verify(&self, input: &Input<'_>, now: i64, tol: Duration) -> Result<Verified, VerifyError> {
        let spec = self.spec;
        let h = input.headers;
        let value = required(h, spec.sig)?;
        let mut cands: Vec<&[u8]> = Vec::with_capacity(2);
        let list_ts = candidates(spec, spec.sig, value, &mut cands)?;
        for alt in spec.alt {
            single(h, alt)?;
            if let Some(v) = h.get(*alt).filter(|v| !v.is_empty()) {
                let v = v
                    .to_str()
                    .map_err(|_| VerifyError::MalformedSignature(alt))?;
                candidates(spec, alt, v, &mut cands)?;
            }
        }
        for (name, want) in spec.fixed {
            if required(h, name)? != *want {
                return Err(VerifyError::BadSignature);
            }
        }
        let ts = match spec.ts {
            Ts::None => None,
            Ts::Header(name, fmt) => {
                let text = required(h, name)?;
                let t = parse_ts(fmt, text).ok_or(VerifyError::MalformedSignature(name))?;
                Some((text, t))
            }
            Ts::InList(fmt) => {
                let text = list_ts.ok_or(VerifyError::MalformedSignature(spec.sig))?;
                let t = parse_ts(fmt, text).ok_or(VerifyError::MalformedSignature(spec.sig))?;
                Some((text, t))
            }
        };
        let id_header = spec.id.first().copied();
        let signed_id = match id_header {
            Some(n) if spec.signs(Part::Id) => Some(required(h, n)?),
            _ => None,
        };
        if let Some((_, t)) = ts {
            check_window(t, now, tol)?;
        }
        let url = match &self.url {
            Some(u) => {
                let pq = path_and_query(input.uri);
                if !u.allows(pq) {
                    return Err(VerifyError::BadSignature);
                }
                hubspot_url(&u.url(pq))
            }
            None => String::new(),
        };
        let ps = parts(
            spec,
            input.method.as_str(),
            &url,
            ts.map_or("", |(text, _)| text),
            signed_id.unwrap_or(""),
            input.body,
        );
        let key_index = first_match(self.keys.len(), |i| {
            let text = encode(spec.enc, self.keys[i].compute(&ps).as_bytes());
            let mut any = Choice::from(0);
            for c in &cands {
                any |= ct_eq(text.as_bytes(), c);
            }
            any
        })
        .ok_or(VerifyError::BadSignature)?;
        Ok(Verified {
            key_index,
            id: match id_header {
                Some(n) => optional_id(h, n)?,
                None => None,
            },
            timestamp: ts.map(|(_, t)| t),
        })
    }
}

/// The timestamp text a sender of `fmt` sends for unix second `ts`.
fn ts_text(fmt: TsFmt, ts: i64) -> Result<String, SchemeError> {
    match fmt {
        TsFmt::Secs => Ok(ts.to_string()),
        TsFmt::Millis => Ok((i128::from(ts) * 1000).to_string()),
        // As Orb sends it: no offset, UTC.
        TsFmt::IsoUtc => {
            let t = time::OffsetDateTime::from_unix_timestamp(ts)
                .map_err(|_| SchemeError::config("timestamp out of range"))?;
            Ok(format!(
                "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
                t.year(),
                u8::from(t.month()),
                t.day(),
                t.hour(),
                t.minute(),
                t.second()
            ))
        }
        TsFmt::Rfc3339 => time::OffsetDateTime::from_unix_timestamp(ts)
            .ok()
            .and_then(|t| {
                t.format(&time::format_description::well_known::Rfc3339)
                    .ok()
            })
            .ok_or_else(|| SchemeError::config("timestamp out of range")),
    }
}

/// The headers a sender of `spec` sends (`hookseal sign`).
fn sign(spec: &'static Spec, r: &SignRequest<'_>) -> Result<Vec<(String, String)>, SchemeError> {
    let key = key_bytes(spec, 0, r.secret)?;
    let mac = MacKey::new(spec.alg, &key);
    let url = match url_option(spec, r.options)? {
        Some(u) => hubspot_url(&u.url(r.path_and_query)),
        None => String::new(),
    };
    let fmt = match spec.ts {
        Ts::None => TsFmt::Secs,
        Ts::Header(_, f) | Ts::InList(f) => f,
    };
    let ts = ts_text(fmt, r.timestamp)?;
    let id_header = spec.id.first().copied();
    // A scheme that signs its id always sends one: without `--id`, a deterministic one
    // (`msg_` + 24 hex of SHA-256(timestamp.body)), as for standard-webhooks.
    let made_id;
    let id = match r.id {
        Some(i) => Some(i),
        None if spec.signs(Part::Id) => {
            use sha2::Digest as _;
            let d = sha2::Sha256::new()
                .chain_update(ts.as_bytes())
                .chain_update(b".")
                .chain_update(r.body)
                .finalize();
            made_id = format!("msg_{}", &hex_lower(&d)[..24]);
            Some(made_id.as_str())
        }
        None => None,
    };
    let ps = parts(
        spec,
        r.method,
        &url,
        &ts,
        id.unwrap_or(""),
        Body::new(r.body),
    );
    let sig = encode(spec.enc, mac.compute(&ps).as_bytes());
    let value = match spec.form {
        Form::Single(prefix) => format!("{prefix}{sig}"),
        Form::List {
            ts: tk, sig: sk, ..
        } if matches!(spec.ts, Ts::InList(_)) => {
            format!("{tk}={ts},{sk}={sig}")
        }
        Form::List { sig: sk, .. } => format!("{sk}={sig}"),
    };
    let mut out = vec![SignRequest::header(spec.sig, value)];
    if let Ts::Header(name, _) = spec.ts {
        out.push(SignRequest::header(name, ts));
    }
    if let (Some(n), Some(id)) = (id_header, id) {
        out.push(SignRequest::header(n, id));
    }
    out.extend(spec.fixed.iter().map(|(n, v)| SignRequest::header(n, *v)));
    Ok(out)
}

#[cfg(test)]
mod tests;
