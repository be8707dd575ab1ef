//! The scheme registry: every scheme hookseal knows, one line each.
//!
//! A scheme's facts (its names, default window, message id, the headers it reads, the route
//! options it takes, how to build its verifier and how to sign like its sender) are written once,
//! as a [`SchemeDef`] in the scheme's own file. The config, the CLI (`sign --scheme`, `check`),
//! the metrics labels and the tests enumerate `SCHEMES`; nothing else lists schemes.
//!
//! "No verification" (`scheme = "none"`) is not a scheme: a route without one has
//! `Option<Scheme>::None`. [`NO_SCHEME`] is only the word the config spells it with.

use std::sync::Arc;
use std::time::Duration;

use super::check::{Check, Checked};
use super::{
    asana, contentful, discord, dropbox, github, gitlab, hmac, hotglue, hygraph, jwt, linear,
    mailgun, mandrill, meta, msgraph, okta, paddle, plivo, postmark, presets, sendgrid, shopify,
    slack, sns, square, standard, stripe, twilio, worldline, x, zoom, Input, SchemeError,
    SchemeName, SchemeOptions, SecretMaterial, Verified, VerifyError,
};

/// Every scheme, in the order the CLI and error messages list them. One line per scheme.
pub(crate) static SCHEMES: &[&SchemeDef] = &[
    &standard::DEF,
    &github::DEF,
    &hotglue::DEF,
    &hmac::DEF,
    &stripe::DEF,
    &slack::DEF,
    &shopify::DEF,
    &twilio::DEF,
    &square::DEF,
    &paddle::DEF,
    &linear::DEF,
    &discord::DEF,
    &gitlab::DEF,
    &sns::scheme::DEF,
    &jwt::scheme::DEF,
    &jwt::scheme::GOOGLE_PUBSUB,
    &jwt::scheme::PLAID,
    &zoom::DEF,
    &meta::DEF,
    &msgraph::DEF,
    &okta::DEF,
    &x::DEF,
    &dropbox::DEF,
    &standard::CLERK,
    &standard::RESEND,
    &standard::BREX,
    &standard::REPLICATE,
    &presets::BITBUCKET,
    &presets::GITEA,
    &presets::FORGEJO,
    &presets::INTERCOM,
    &presets::TYPEFORM,
    &presets::PAGERDUTY,
    &presets::ZENDESK,
    &presets::HUBSPOT,
    &presets::TWITCH,
    &presets::SEGMENT,
    &presets::SENTRY,
    &presets::VERCEL,
    &presets::TERRAFORM_CLOUD,
    &presets::CALENDLY,
    &presets::RAZORPAY,
    &presets::MOLLIE,
    &presets::XERO,
    &presets::DOCUSIGN,
    &presets::BOX,
    &presets::FRAME_IO,
    &presets::LAUNCHDARKLY,
    &presets::CIRCLECI,
    &presets::BUILDKITE,
    &presets::MUX,
    &presets::CASTLE,
    &presets::PERSONA,
    &presets::LOB,
    &presets::MODERN_TREASURY,
    &presets::COINBASE,
    &presets::WOOCOMMERCE,
    &presets::TIKTOK,
    &presets::WEBEX,
    &presets::PUSHER,
    &presets::MICROSOFT_TEAMS,
    &presets::AUTODESK,
    &presets::CAL_COM,
    &presets::LEMON_SQUEEZY,
    &presets::NOTION,
    &presets::CLEARBIT,
    &presets::AFTERSHIP,
    &presets::ALCHEMY,
    &presets::BOLT,
    &presets::CHARGIFY,
    &presets::HEROKU,
    &presets::SONATYPE,
    &presets::ORB,
    &presets::SIGNAL_SCIENCES,
    &sendgrid::DEF,
    &postmark::DEF,
    &mailgun::DEF,
    &contentful::DEF,
    &hygraph::DEF,
    &plivo::DEF,
    &mandrill::DEF,
    &asana::DEF,
    &worldline::DEF,
];

/// The config word for "no verification" (`scheme = "none"`): the route has no scheme.
pub const NO_SCHEME: &str = "none";

/// The default timestamp window of most schemes, and the window of a route without a scheme.
pub const DEFAULT_TOLERANCE: Duration = Duration::from_secs(300);

/// Builds a route's verifier from its options and secrets.
pub type BuildFn = fn(&SchemeOptions, &[SecretMaterial]) -> Result<Arc<dyn Verifier>, SchemeError>;

/// How a scheme reads the route options it owns (a table like `[route.hmac]`, or keys of the
/// route itself) into [`SchemeOptions`]: written in the scheme's file, shared by the schemes
/// that take the same options (`twilio` and `square` share `public_url`).
pub struct OptionsDef {
    /// Reads the options from the route's table. Called on every route, whatever its scheme,
    /// so a problem inside them is reported even when the scheme is wrong. Returns `false`
    /// when it reported a problem.
    pub parse: fn(&mut dyn OptionTable, &mut SchemeOptions) -> bool,
    /// Once the route's scheme is known (`None`: `"none"`) and the options parsed: whether
    /// they fit it (`[route.hmac]` required by `hmac`, refused elsewhere). An error is
    /// `(key under the route, message)`, reported at the route's `scheme`.
    pub check: fn(&SchemeOptions, Option<SchemeName>) -> Result<(), OptionsMisfit>,
}

/// Options that do not fit the route's scheme: `(key under the route, message)`.
pub type OptionsMisfit = (&'static str, String);

/// A route's TOML table as a scheme's option parser reads it: the config walker's typed reads,
/// each reporting its own problem as `file:line: key: message`.
pub trait OptionTable {
    /// The table's dotted key, for messages (`route[0]`, `route[0].hmac`).
    fn path(&self) -> &str;
    /// Where the table starts (a missing key is reported there).
    fn start(&self) -> usize;
    /// Reports every key not in `known` as unknown (with a "did you mean" hint).
    fn check_keys(&mut self, known: &[&str]);
    /// An optional string: `(offset, value)`. A wrong type is reported and reads as absent.
    fn opt_str(&mut self, name: &str) -> Option<(usize, String)>;
    /// The table under `name`, if there is one; a value that is not a table is reported and
    /// reads as absent.
    fn subtable(&mut self, name: &str) -> Option<Box<dyn OptionTable + '_>>;
    /// Reports a problem at `offset` about `key` (a full dotted key).
    fn err(&mut self, offset: usize, key: &str, message: String);
}

/// Every scheme's [`OptionsDef`], once each: the config runs them on every route, in registry
/// order.
pub fn option_defs() -> impl Iterator<Item = &'static OptionsDef> {
    SCHEMES.iter().enumerate().filter_map(|(i, d)| {
        let def = d.parse_options?;
        let earlier = SCHEMES[..i]
            .iter()
            .any(|e| e.parse_options.is_some_and(|o| std::ptr::eq(o, def)));
        (!earlier).then_some(def)
    })
}

/// The headers a sender would send: `(name, value)` pairs.
pub type SignFn = fn(&SignRequest<'_>) -> Result<Vec<(String, String)>, SchemeError>;

/// One scheme's facts, written once in the scheme's file.
pub struct SchemeDef {
    /// The canonical name (config, metric label, `x-hookseal-scheme`).
    pub name: &'static str,
    /// Other config names for the same scheme (`svix`).
    pub aliases: &'static [&'static str],
    /// The timestamp window when the route sets no `tolerance` (also the dedupe window of
    /// schemes without a timestamp).
    pub default_tolerance: Duration,
    /// Where the sender's message id comes from.
    pub message_id: MessageId,
    /// The request headers the verifier reads, signature first.
    pub headers: &'static [&'static str],
    /// The route keys the scheme reads besides `secrets` and `tolerance` (`hmac`,
    /// `public_url`); a scheme without `hmac` here refuses a `[route.hmac]` table.
    pub options: &'static [&'static str],
    /// Reads and checks those options (see [`OptionsDef`]).
    pub parse_options: Option<&'static OptionsDef>,
    /// Builds the verifier for one route, decoding every secret once. Called with at least
    /// one secret, none of them empty.
    pub build: BuildFn,
    /// The headers a sender of this scheme would send (`hookseal sign`), signature first.
    pub sign: SignFn,
    /// Removes request headers of the scheme's own family that the verifier did not read
    /// (Standard Webhooks' `webhook-*` twin of a `svix-*` header), if the scheme has any.
    pub strip_unread: Option<fn(&mut http::HeaderMap)>,
    /// Whether a verified request's body is authenticated. `false` for token schemes (a shared
    /// secret sent as is, no MAC): the token proves the sender, not the content.
    pub body_signed: bool,
    /// What identifies a delivery's signed content for `dedupe_key = "signature"`
    /// ([`SignedContent::Unsupported`]: the key is refused by `check`).
    pub signed_content: SignedContent,
    /// Where the provider puts the event type, for a route that reads one without `event`.
    pub event: crate::events::DefaultEvent,
    /// Whether the message id header is covered by the signature (Standard Webhooks, Twitch):
    /// a changed id is then a forgery, not another delivery of the same message.
    pub id_signed: bool,
    /// Whether the route's `secrets` are required (HMAC and token schemes), optional (`okta`)
    /// or refused (`sns`, `jwt`, `msgraph`: keys come from elsewhere).
    pub secrets: SecretUse,
    /// The scheme's GET handshake (`meta`, `okta`, `x`, `dropbox`), named by the query
    /// parameter or header that marks it: a route of the scheme then accepts GET even when
    /// its `methods` do not list it, for the handshake only (a GET without the marker is
    /// still 405 there).
    pub get_handshake: Option<&'static str>,
    /// Whether it may answer a handshake at all (the `result="handshake"` metric series).
    pub handshakes: bool,
}

/// What `dedupe_key = "signature"` digests: only content an attacker cannot vary without the
/// signature failing, so that one delivery always has one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignedContent {
    /// No such content: a token scheme (the "signature" is a constant), or a scheme whose
    /// signed text is not the raw bytes (not yet described).
    Unsupported,
    /// The raw body is signed byte for byte, with the timestamp when it is signed and, with
    /// `id: true`, the message id.
    Body { id: bool },
    /// The signed text is rebuilt from parsed parts (Twilio's sorted form fields: the raw body
    /// may vary), but this header carries the one canonical signature value.
    Header(&'static str),
}

/// How a scheme uses the route's `secrets`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretUse {
    Required,
    Optional,
    Refused,
}

impl SchemeDef {
    /// What a scheme's `DEF` leaves out (`..SchemeDef::BASE`): no alias, the 5-minute window, no
    /// message id, no options, nothing to strip, the body signed. `name`, `headers`, `build`
    /// and `sign` are always given (the registry tests build and sign every scheme).
    pub const BASE: SchemeDef = SchemeDef {
        name: "",
        aliases: &[],
        default_tolerance: DEFAULT_TOLERANCE,
        message_id: MessageId::None,
        headers: &[],
        options: &[],
        parse_options: None,
        build: |_, _| Err(SchemeError::config("scheme without a verifier")),
        sign: |_| Err(SchemeError::config("scheme without a signer")),
        strip_unread: None,
        body_signed: true,
        signed_content: SignedContent::Unsupported,
        event: crate::events::DefaultEvent::None,
        id_signed: false,
        secrets: SecretUse::Required,
        get_handshake: None,
        handshakes: false,
    };
}

impl std::fmt::Debug for SchemeDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

/// Where a scheme's message id (dedupe key, `x-hookseal-id`) comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageId {
    /// The scheme carries none.
    None,
    /// These headers (the first present wins); where the header is optional, a request
    /// without it still verifies, with no id.
    Headers(&'static [&'static str]),
    /// The verifier says ([`Verifier::configured_id`]): the generic `hmac` scheme (its route
    /// options), and the schemes that read the id from the body (`sns`, `mailgun`).
    Configured,
}

/// A built verifier for one route: the only per-request dynamic call.
pub trait Verifier: std::fmt::Debug + Send + Sync {
    /// Verifies one request at clock `now` (unix seconds) with window `tolerance`.
    ///
    /// # Errors
    /// See [`VerifyError`].
    fn verify(
        &self,
        input: &Input<'_>,
        now: i64,
        tolerance: Duration,
    ) -> Result<Verified, VerifyError>;

    /// For [`MessageId::Configured`] schemes: whether this route's options name an id.
    fn configured_id(&self) -> bool {
        false
    }

    /// Whether a verified timestamp was covered by the signature (not for an `hmac` route
    /// whose payload leaves `{timestamp}` out).
    fn timestamp_is_signed(&self) -> bool {
        true
    }

    /// For a scheme whose signed content depends on the route's options (`hmac`): what
    /// `dedupe_key = "signature"` digests; `None`: [`SchemeDef::signed_content`].
    fn signed_content(&self) -> Option<SignedContent> {
        None
    }

    /// The pipeline's check: [`Verifier::verify`], ready now (no allocation). Schemes with a
    /// handshake or a fetch override it.
    fn check<'a>(&'a self, input: Input<'a>, now: i64, tolerance: Duration) -> Check<'a> {
        Check::Ready(self.verify(&input, now, tolerance).map(Checked::Verified))
    }
}

/// What `hookseal sign` asks a scheme to sign. See [`super::sign`].
#[derive(Debug, Clone, Copy)]
pub struct SignRequest<'a> {
    pub options: &'a SchemeOptions,
    /// What the sender holds (non-empty).
    pub secret: &'a [u8],
    pub id: Option<&'a str>,
    pub timestamp: i64,
    pub method: &'a str,
    pub path_and_query: &'a str,
    pub body: &'a [u8],
}

impl SignRequest<'_> {
    /// `(name, value)` for one header.
    pub(crate) fn header(name: &str, value: impl Into<String>) -> (String, String) {
        (name.to_owned(), value.into())
    }

    /// `first`, then `(id_name, id)` when an id was given.
    pub(crate) fn with_id(&self, first: (String, String), id_name: &str) -> Vec<(String, String)> {
        std::iter::once(first)
            .chain(self.id.map(|id| Self::header(id_name, id)))
            .collect()
    }
}

/// The scheme a config name names (canonical or alias). Exact, case-sensitive.
pub(crate) fn lookup(name: &str) -> Option<&'static SchemeDef> {
    SCHEMES
        .iter()
        .copied()
        .find(|d| d.name == name || d.aliases.contains(&name))
}
