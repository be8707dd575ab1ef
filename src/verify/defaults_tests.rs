//! Every scheme's `dedupe_key = "signature"` content and default event source, written out
//! by hand: a new scheme fails [`every_scheme_has_a_deliberate_default`] until it is listed
//! here with the choice its author made (see `SchemeDef::signed_content` / `event`).

use super::registry::SCHEMES;
use super::SignedContent as SC;
use crate::events::DefaultEvent as DE;

const BODY: SC = SC::Body { id: false };
const B_ID: SC = SC::Body { id: true };
const NO: SC = SC::Unsupported;

/// `(name, signed content, event)`, in registry order. `hmac` is per route (its verifier
/// decides from the payload); the value here is its `DEF`'s.
const EXPECTED: &[(&str, SC, DE)] = &[
    ("standard-webhooks", B_ID, DE::Json("/type")),
    ("github", BODY, DE::Header("X-GitHub-Event")),
    ("hotglue", BODY, DE::Json("/status")),
    ("hmac", NO, DE::None),
    ("stripe", BODY, DE::Json("/type")),
    ("slack", BODY, DE::Json("/event/type")),
    ("shopify", BODY, DE::Header("X-Shopify-Topic")),
    ("twilio", SC::Header("X-Twilio-Signature"), DE::None),
    ("square", BODY, DE::Json("/type")),
    ("paddle", BODY, DE::Json("/event_type")),
    ("linear", BODY, DE::Header("Linear-Event")),
    ("discord", BODY, DE::Json("/type")),
    ("gitlab", NO, DE::Header("X-Gitlab-Event")),
    ("sns", NO, DE::None),
    ("jwt", NO, DE::None),
    ("google-pubsub", NO, DE::None),
    ("plaid", NO, DE::None),
    ("zoom", BODY, DE::Json("/event")),
    ("meta", BODY, DE::None),
    ("msgraph", NO, DE::None),
    ("okta", NO, DE::None),
    ("x", BODY, DE::None),
    ("dropbox", BODY, DE::None),
    ("clerk", B_ID, DE::Json("/type")),
    ("resend", B_ID, DE::Json("/type")),
    ("brex", B_ID, DE::Json("/type")),
    ("replicate", B_ID, DE::Json("/type")),
    ("bitbucket", BODY, DE::Header("X-Event-Key")),
    ("gitea", BODY, DE::Header("X-Gitea-Event")),
    ("forgejo", BODY, DE::Header("X-Forgejo-Event")),
    ("intercom", BODY, DE::Json("/topic")),
    ("typeform", BODY, DE::Json("/event_type")),
    ("pagerduty", BODY, DE::Json("/event/event_type")),
    ("zendesk", BODY, DE::Json("/type")),
    ("hubspot", NO, DE::None),
    (
        "twitch",
        B_ID,
        DE::Header("Twitch-Eventsub-Subscription-Type"),
    ),
    ("segment", BODY, DE::Json("/type")),
    ("sentry", BODY, DE::Header("Sentry-Hook-Resource")),
    ("vercel", BODY, DE::Json("/type")),
    ("terraform-cloud", BODY, DE::None),
    ("calendly", BODY, DE::Json("/event")),
    ("razorpay", BODY, DE::Json("/event")),
    ("mollie", BODY, DE::None),
    ("xero", BODY, DE::None),
    ("docusign", BODY, DE::Json("/event")),
    ("box", BODY, DE::Json("/trigger")),
    ("frame-io", BODY, DE::Json("/type")),
    ("launchdarkly", BODY, DE::None),
    ("circleci", BODY, DE::Header("circleci-event-type")),
    ("buildkite", BODY, DE::Header("X-Buildkite-Event")),
    ("mux", BODY, DE::Json("/type")),
    ("castle", BODY, DE::None),
    ("persona", BODY, DE::Json("/data/attributes/name")),
    ("lob", BODY, DE::None),
    ("modern-treasury", BODY, DE::None),
    ("coinbase", BODY, DE::Json("/event/type")),
    ("woocommerce", BODY, DE::Header("X-WC-Webhook-Topic")),
    ("tiktok", BODY, DE::None),
    ("webex", BODY, DE::None),
    ("pusher", BODY, DE::None),
    ("microsoft-teams", BODY, DE::None),
    ("autodesk", BODY, DE::None),
    ("cal-com", BODY, DE::Json("/triggerEvent")),
    ("lemon-squeezy", BODY, DE::Header("X-Event-Name")),
    ("notion", BODY, DE::Json("/type")),
    ("clearbit", BODY, DE::None),
    ("aftership", BODY, DE::Json("/event")),
    ("alchemy", BODY, DE::Json("/type")),
    ("bolt", BODY, DE::Json("/type")),
    ("chargify", BODY, DE::None),
    ("heroku", BODY, DE::Header("Heroku-Webhook-Event")),
    ("sonatype", BODY, DE::Header("X-Nexus-Webhook-Id")),
    ("orb", BODY, DE::Json("/type")),
    ("signal-sciences", BODY, DE::Json("/type")),
    ("sendgrid", BODY, DE::None),
    ("postmark", NO, DE::Json("/RecordType")),
    // The signature covers `timestamp` + `token` only, never the event data; `event-data.event`
    // is not signed, so no default reads it.
    ("mailgun", NO, DE::None),
    ("contentful", NO, DE::Header("X-Contentful-Topic")),
    // The body is signed inside a JSON document with the environment and the timestamp.
    ("hygraph", BODY, DE::Json("/operation")),
    // Signed URL + nonce + parsed form fields: no raw-body or single canonical key.
    ("plivo", NO, DE::None),
    // Signed URL + sorted form fields: one canonical signature value per delivery.
    ("mandrill", SC::Header("X-Mandrill-Signature"), DE::None),
    ("asana", BODY, DE::None),
    ("worldline", BODY, DE::Json("/type")),
];

#[test]
fn every_scheme_has_a_deliberate_default() {
    let names: Vec<&str> = SCHEMES.iter().map(|d| d.name).collect();
    let listed: Vec<&str> = EXPECTED.iter().map(|e| e.0).collect();
    assert_eq!(
        names, listed,
        "a scheme was added, removed or moved: list its defaults here"
    );
    for (def, (name, content, event)) in SCHEMES.iter().zip(EXPECTED) {
        assert_eq!(def.signed_content, *content, "{name}: signed_content");
        assert_eq!(def.event, *event, "{name}: event");
    }
}

#[test]
fn token_schemes_never_key_on_the_signature() {
    // A token is the same for every delivery: a signature key would merge them all.
    for def in SCHEMES.iter().filter(|d| !d.body_signed) {
        assert_eq!(def.signed_content, NO, "{}", def.name);
    }
}

#[test]
fn id_is_in_the_key_only_where_the_id_is_signed() {
    for def in SCHEMES {
        if let SC::Body { id: true } = def.signed_content {
            assert!(
                def.id_signed,
                "{}: an unsigned id would let a replay pick a new key",
                def.name
            );
        }
    }
}
