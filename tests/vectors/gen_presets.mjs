// Makes tests/vectors/<preset>.json for the presets whose provider publishes an SDK that
// verifies signatures. Run in a scratch directory (node_modules is not committed):
//
//   npm install razorpay@2.9.8 coinbase-commerce-node@1.0.4 @mux/mux-node@15.3.0 \
//     @hubspot/api-client@13.5.0 box-node-sdk@10.12.0 svix@1.99.1 standardwebhooks@1.3.0 \
//     @sendgrid/eventwebhook@8.0.0 pusher@5.3.4 @contentful/node-apps-toolkit@3.16.1
//   node /path/to/tests/vectors/gen_presets.mjs /path/to/tests/vectors
//
// Every case is signed with node:crypto (or the SDK's own signer where it has one: svix,
// standardwebhooks) following the provider's documentation, then handed to the SDK's
// verifier, whose answer is recorded in `sdk_verdict`. A core case's `expect` is the SDK's
// answer; a quirk case is one where hookseal's answer differs, with both written down
// (`also_acceptable` is hookseal's) and the decision in QUIRKS of src/verify/vectors.rs.
import crypto from "node:crypto";
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.join(process.cwd(), "x.js"));
const out = process.argv[2] ?? ".";
const NOW = 1735689600;
const BODY = '{"event":"payment.captured","id":"evt_01J9Z","amount":4200,"note":"caf\u00e9 \u2713"}';

/** Runs `fn` with Date.now() pinned to `now` (unix seconds). */
async function at(now, fn) {
  const real = Date.now;
  Date.now = () => now * 1000;
  try {
    return await fn();
  } finally {
    Date.now = real;
  }
}

async function verdict(fn) {
  try {
    return (await fn()) === false ? "invalid" : "valid";
  } catch {
    return "invalid";
  }
}

const hmac = (alg, key, data, enc) => crypto.createHmac(alg, key).update(data, "utf8").digest(enc);
const lower = (h) => Object.fromEntries(h.map(([k, v]) => [k.toLowerCase(), v]));

function write(scheme, meta, cases) {
  const doc = {
    scheme,
    spec: meta.spec,
    generated_by: ["gen_presets.mjs"],
    signer: meta.signer,
    tolerance_s: meta.tolerance_s,
    headers_format: "list of [name, value] pairs exactly as received",
    cases: cases.map((c) => ({
      name: `${scheme}/${c.name}`,
      scheme,
      category: c.quirk ? "quirk" : "core",
      secret: c.secret,
      ...(c.additional_secrets ? { additional_secrets: c.additional_secrets } : {}),
      method: "POST",
      path: c.path ?? "/webhooks/in",
      ...(c.public_url ? { public_url: c.public_url } : {}),
      headers: c.headers,
      body: c.body,
      now: c.now,
      expect: c.sdk,
      ...(c.quirk ? { also_acceptable: c.ours } : {}),
      reason: c.reason,
      sdk_verdict: { [meta.sdk]: c.sdk },
    })),
  };
  for (const c of cases) {
    if (!c.quirk && c.want && c.want !== c.sdk) {
      throw new Error(`${scheme}/${c.name}: SDK says ${c.sdk}, the case was built as ${c.want}`);
    }
  }
  fs.writeFileSync(path.join(out, `${scheme}.json`), JSON.stringify(doc, null, 1) + "\n");
  console.log(`${scheme}: ${cases.length} cases`);
}

/** Cases for an HMAC-of-the-body preset, checked by `check(body, headerValue, secret)`. */
async function bodyPreset(scheme, meta, header, sign, check, extra = []) {
  const secret = meta.secret;
  const cases = [];
  const add = async (name, value, body, sec, want, reason, more = {}) => {
    const sdk = await verdict(() => check(body, value, sec));
    cases.push({ name, secret, headers: [[header, value], ["Content-Type", "application/json"]], body, now: NOW, sdk, want, reason, ...more });
  };
  const good = sign(BODY, secret);
  await add("valid_basic", good, BODY, secret, "valid", "HMAC of the raw body with the secret");
  await add("invalid_tampered_body", good, BODY.replace("4200", "4201"), secret, "invalid", "body changed after signing");
  await add("invalid_wrong_secret", sign(BODY, secret + "x"), BODY, secret, "invalid", "signed with another secret");
  await add("valid_empty_body", sign("", secret), "", secret, "valid", "an empty body is signed like any other");
  for (const e of extra) await add(e.name, e.value(good), BODY, secret, e.want, e.reason, e.more ?? {});
  write(scheme, meta, cases);
}

const upperHex = { name: "invalid_uppercase_hex", value: (g) => g.toUpperCase(), want: "invalid", reason: "the SDK compares lowercase hex text" };

// --- razorpay: X-Razorpay-Signature = hex HMAC-SHA256(body)
{
  const { validateWebhookSignature } = require("razorpay/dist/utils/razorpay-utils");
  await bodyPreset(
    "razorpay",
    { spec: "https://razorpay.com/docs/webhooks/validate-test/", signer: "node:crypto HMAC-SHA256 hex; verified by node:razorpay@2.9.8 validateWebhookSignature", sdk: "node:razorpay@2.9.8", secret: "rzp_wh_secret_9QpX2mR7tK", tolerance_s: null },
    "X-Razorpay-Signature",
    (b, s) => hmac("sha256", s, b, "hex"),
    (b, v, s) => validateWebhookSignature(b, v, s),
    [upperHex, { name: "invalid_trailing_space", value: (g) => g + " ", want: "invalid", reason: "compared exactly" }],
  );
}

// --- coinbase (Commerce): X-CC-Webhook-Signature = hex HMAC-SHA256(body)
{
  const { Webhook } = require("coinbase-commerce-node");
  await bodyPreset(
    "coinbase",
    { spec: "https://docs.cdp.coinbase.com/commerce/api-arcitecture/webhooks-security", signer: "node:crypto HMAC-SHA256 hex; verified by node:coinbase-commerce-node@1.0.4 Webhook.verifySigHeader", sdk: "node:coinbase-commerce-node@1.0.4", secret: "cc-shared-secret-5v9QpX2", tolerance_s: null },
    "X-CC-Webhook-Signature",
    (b, s) => hmac("sha256", s, b, "hex"),
    (b, v, s) => Webhook.verifySigHeader(b, v, s),
    [upperHex],
  );
}

// --- mux: Mux-Signature: t=<unix>,v1=<hex HMAC-SHA256(t.body)>
{
  const Mux = require("@mux/mux-node").default ?? require("@mux/mux-node");
  const mux = new Mux({ tokenId: "x", tokenSecret: "y" });
  const secret = "mux-signing-secret-4bN8cJ1eF6hA";
  const sign = (t, b, s = secret) => `t=${t},v1=${hmac("sha256", s, `${t}.${b}`, "hex")}`;
  const check = (b, v, now) => at(now, () => mux.webhooks.verifySignature(b, { "mux-signature": v }, secret));
  const cases = [];
  const add = async (name, value, body, now, want, reason, more = {}) => {
    const sdk = await verdict(() => check(body, value, now));
    cases.push({ name, secret, headers: [["Mux-Signature", value], ["Content-Type", "application/json"]], body, now, sdk, want, reason, ...more });
  };
  await add("valid_basic", sign(NOW, BODY), BODY, NOW, "valid", "HMAC-SHA256 of t.body");
  await add("invalid_tampered_body", sign(NOW, BODY), BODY + " ", NOW, "invalid", "body changed");
  await add("invalid_wrong_secret", sign(NOW, BODY, secret + "x"), BODY, NOW, "invalid", "another secret");
  await add("invalid_stale_301s", sign(NOW - 301, BODY), BODY, NOW, "invalid", "older than 300 s");
  await add("valid_age_300s", sign(NOW - 300, BODY), BODY, NOW, "valid", "exactly 300 s old");
  await add("valid_rotation_second_v1", `t=${NOW},v1=${"0".repeat(64)},v1=${sign(NOW, BODY).split("v1=")[1]}`, BODY, NOW, "valid", "any v1 may match");
  await add("invalid_uppercase_hex", sign(NOW, BODY).toUpperCase().replace("T=", "t=").replace("V1=", "v1="), BODY, NOW, "invalid", "hex compared as lowercase text");
  await add("quirk_future_timestamp_1h", sign(NOW + 3600, BODY), BODY, NOW, null, "the SDK bounds only the age; hookseal's window is symmetric", { quirk: true, ours: "invalid" });
  write("mux", { spec: "https://docs.mux.com/core/verify-webhook-signatures", signer: "node:crypto HMAC-SHA256 hex; verified by node:@mux/mux-node@15.3.0 webhooks.verifySignature (Date.now pinned)", sdk: "node:@mux/mux-node@15.3.0", tolerance_s: 300 }, cases);
}

// --- hubspot: X-HubSpot-Signature-v3 = base64 HMAC-SHA256(method + url + body + timestamp_ms)
{
  const { Signature } = require("@hubspot/api-client/lib/src/utils/signature");
  const secret = "hubspot-client-secret-7c1e";
  const publicUrl = "https://hooks.example.com";
  const reqPath = "/webhooks/hubspot?portal=62515";
  const url = publicUrl + reqPath;
  const sign = (ms, b, s = secret) => hmac("sha256", s, `POST${url}${b}${ms}`, "base64");
  const cases = [];
  const add = async (name, sig, ms, body, now, want, reason, more = {}) => {
    const sdk = await verdict(() =>
      at(now, () => Signature.isValid({ signatureVersion: "v3", signature: sig, method: "POST", clientSecret: secret, requestBody: body, url, timestamp: Number(ms) })),
    );
    cases.push({
      // public_url as registered with HubSpot (its path pins the route; the query is the
      // request's), so `hookseal sign --public-url` signs the same URL.
      name, secret, path: reqPath, public_url: url,
      headers: [["X-HubSpot-Signature-v3", sig], ["X-HubSpot-Request-Timestamp", String(ms)], ["Content-Type", "application/json"]],
      body, now, sdk, want, reason, ...more,
    });
  };
  const ms = NOW * 1000;
  await add("valid_basic", sign(ms, BODY), ms, BODY, NOW, "valid", "method + URL + body + timestamp(ms)");
  await add("invalid_tampered_body", sign(ms, BODY), ms, BODY + "x", NOW, "invalid", "body changed");
  await add("invalid_wrong_secret", sign(ms, BODY, "other"), ms, BODY, NOW, "invalid", "another secret");
  await add("invalid_stale_6min", sign(ms - 360000, BODY), ms - 360000, BODY, NOW, "invalid", "older than 5 minutes");
  await add("valid_age_299s", sign(ms - 299000, BODY), ms - 299000, BODY, NOW, "valid", "inside 5 minutes");
  await add("invalid_unpadded_base64", sign(ms, BODY).replace(/=+$/, ""), ms, BODY, NOW, "invalid", "base64 text compared exactly");
  await add("quirk_future_timestamp_1h", sign(ms + 3600000, BODY), ms + 3600000, BODY, NOW, null, "the SDK bounds only the age; hookseal's window is symmetric", { quirk: true, ours: "invalid" });
  write("hubspot", { spec: "https://developers.hubspot.com/docs/apps/developer-platform/build-apps/authentication/request-validation", signer: "node:crypto HMAC-SHA256 base64; verified by node:@hubspot/api-client@13.5.0 Signature.isValid v3 (Date.now pinned)", sdk: "node:@hubspot/api-client@13.5.0", tolerance_s: 300 }, cases);
}

// --- box: box-signature-primary = base64 HMAC-SHA256(body + box-delivery-timestamp)
{
  const { WebhooksManager } = require("box-node-sdk/lib/managers/webhooks");
  const primary = "box-primary-key-SamPL3kEy1";
  const secondary = "box-secondary-key-Z9x8W7";
  const iso = (t) => new Date(t * 1000).toISOString().replace(".000Z", "Z");
  const sign = (ts, b, k) => hmac("sha256", k, b + ts, "base64");
  const cases = [];
  const add = async (name, hs, body, now, want, reason, more = {}) => {
    const sdk = await verdict(() => at(now, () => WebhooksManager.validateMessage(body, lower(hs), primary, { secondaryKey: secondary })));
    cases.push({ name, secret: primary, additional_secrets: [secondary], headers: hs, body, now, sdk, want, reason, ...more });
  };
  const base = (ts, p, s) => [
    ["box-delivery-id", "f96bb54b-ee16-4fc5-aa65-8c2d9e5b546f"],
    ["box-delivery-timestamp", ts],
    ["box-signature-algorithm", "HmacSHA256"],
    ["box-signature-primary", p],
    ["box-signature-secondary", s],
    ["box-signature-version", "1"],
    ["Content-Type", "application/json"],
  ];
  const t = iso(NOW);
  await add("valid_basic", base(t, sign(t, BODY, primary), sign(t, BODY, secondary)), BODY, NOW, "valid", "body + timestamp, each key in its header");
  await add("valid_secondary_only", base(t, "AAAA", sign(t, BODY, secondary)), BODY, NOW, "valid", "the secondary key matches");
  await add("invalid_tampered_body", base(t, sign(t, BODY, primary), sign(t, BODY, secondary)), BODY + " ", NOW, "invalid", "body changed");
  await add("invalid_wrong_keys", base(t, sign(t, BODY, "x"), sign(t, BODY, "y")), BODY, NOW, "invalid", "other keys");
  const old = iso(NOW - 601);
  await add("invalid_stale_601s", base(old, sign(old, BODY, primary), sign(old, BODY, secondary)), BODY, NOW, "invalid", "older than 10 minutes");
  const tenMin = iso(NOW - 600);
  await add("valid_age_600s", base(tenMin, sign(tenMin, BODY, primary), sign(tenMin, BODY, secondary)), BODY, NOW, "valid", "exactly 10 minutes old");
  const v2 = base(t, sign(t, BODY, primary), sign(t, BODY, secondary)).map(([k, v]) => [k, k === "box-signature-version" ? "2" : v]);
  await add("invalid_signature_version_2", v2, BODY, NOW, "invalid", "the SDK checks only version 1 (HmacSHA256)");
  const fut = iso(NOW + 60);
  await add("quirk_future_timestamp_60s", base(fut, sign(fut, BODY, primary), sign(fut, BODY, secondary)), BODY, NOW, null, "the SDK refuses any future timestamp; hookseal's window is symmetric (10 min)", { quirk: true, ours: "valid" });
  write("box", { spec: "https://developer.box.com/guides/webhooks/v2/signatures-v2/", signer: "node:crypto HMAC-SHA256 base64; verified by node:box-node-sdk@10.12.0 WebhooksManager.validateMessage (Date.now pinned)", sdk: "node:box-node-sdk@10.12.0", tolerance_s: 600 }, cases);
}

// --- Svix / Standard Webhooks senders: signed by the SDK itself
for (const [scheme, pkg, prefix, spec] of [
  ["clerk", "svix", "svix", "https://clerk.com/docs/webhooks/sync-data"],
  ["resend", "svix", "svix", "https://resend.com/docs/dashboard/webhooks/verify-webhooks-requests"],
  ["brex", "standardwebhooks", "webhook", "https://developer.brex.com/docs/webhooks/"],
  ["replicate", "standardwebhooks", "webhook", "https://replicate.com/docs/topics/webhooks/verify-webhook"],
]) {
  const { Webhook } = require(pkg);
  const version = JSON.parse(fs.readFileSync(require.resolve(`${pkg}/package.json`))).version;
  const secret = "whsec_" + Buffer.from(`${scheme}-endpoint-secret-0123456789`).toString("base64");
  const wh = new Webhook(secret);
  const id = "msg_2mR7tK4bN8cJ1eF6hA3dG0sL";
  const hs = (ts, sig, i = id) => [[`${prefix}-id`, i], [`${prefix}-timestamp`, String(ts)], [`${prefix}-signature`, sig], ["Content-Type", "application/json"]];
  const sign = (ts, b, w = wh, i = id) => w.sign(i, new Date(ts * 1000), b);
  const cases = [];
  const add = async (name, h, body, now, want, reason, more = {}) => {
    const sdk = await verdict(() => at(now, () => wh.verify(body, Object.fromEntries(h))));
    cases.push({ name, secret, headers: h, body, now, sdk, want, reason, ...more });
  };
  await add("valid_basic", hs(NOW, sign(NOW, BODY)), BODY, NOW, "valid", "v1 over id.timestamp.body, key = base64 after whsec_");
  await add("invalid_tampered_body", hs(NOW, sign(NOW, BODY)), BODY.replace("4200", "4300"), NOW, "invalid", "body changed");
  await add("invalid_changed_id", hs(NOW, sign(NOW, BODY), "msg_other"), BODY, NOW, "invalid", "the id is signed");
  const other = new Webhook("whsec_" + Buffer.from("another-secret-value-000000").toString("base64"));
  await add("invalid_wrong_secret", hs(NOW, sign(NOW, BODY, other)), BODY, NOW, "invalid", "another secret");
  await add("invalid_stale_301s", hs(NOW - 301, sign(NOW - 301, BODY)), BODY, NOW, "invalid", "older than 5 minutes");
  await add("valid_rotation_second_entry", hs(NOW, `${sign(NOW, BODY, other)} ${sign(NOW, BODY)}`), BODY, NOW, "valid", "space-separated list, any v1");
  write(scheme, { spec, signer: `node:${pkg}@${version} Webhook.sign; verified by the same SDK (Date.now pinned)`, sdk: `node:${pkg}@${version}`, tolerance_s: 300 }, cases);
}

// --- sendgrid: base64 DER ECDSA P-256/SHA-256 over timestamp + body; the secret is the public
// key as SendGrid shows it (base64 SubjectPublicKeyInfo). ECDSA is randomized: each run makes
// other signatures (and another key), all verified by the SDK.
{
  const { EventWebhook } = require("@sendgrid/eventwebhook");
  const version = JSON.parse(fs.readFileSync(require.resolve("@sendgrid/eventwebhook/package.json"))).version;
  const ew = new EventWebhook();
  const { privateKey, publicKey } = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const other = crypto.generateKeyPairSync("ec", { namedCurve: "prime256v1" });
  const spki = publicKey.export({ type: "spki", format: "der" }).toString("base64");
  const pem = `-----BEGIN PUBLIC KEY-----\n${spki}\n-----END PUBLIC KEY-----`;
  const sign = (ts, b, k = privateKey) => crypto.sign("sha256", Buffer.from(`${ts}${b}`, "utf8"), { key: k, dsaEncoding: "der" }).toString("base64");
  const body = '[{"email":"a@example.com","event":"delivered","sg_event_id":"ZGVsaXZlcmVk","timestamp":1735689600}]\r\n';
  const cases = [];
  const add = async (name, sig, ts, b, now, want, reason, more = {}) => {
    const sdk = await verdict(() => ew.verifySignature(ew.convertPublicKeyToECDSA(pem), b, sig, ts));
    cases.push({
      name, secret: spki,
      headers: [["X-Twilio-Email-Event-Webhook-Signature", sig], ["X-Twilio-Email-Event-Webhook-Timestamp", String(ts)], ["Content-Type", "application/json"]],
      body: b, now, sdk, want, reason, ...more,
    });
  };
  await add("valid_basic", sign(NOW, body), NOW, body, NOW, "valid", "ECDSA P-256 SHA-256 over timestamp + body, DER, base64");
  await add("invalid_tampered_body", sign(NOW, body), NOW, body.replace("delivered", "bounce"), NOW, "invalid", "body changed");
  await add("invalid_other_timestamp", sign(NOW, body), NOW + 1, body, NOW, "invalid", "the timestamp is signed");
  await add("invalid_other_key", sign(NOW, body, other.privateKey), NOW, body, NOW, "invalid", "signed by another key");
  await add("quirk_stale_timestamp_not_checked", sign(NOW - 3600, body), NOW - 3600, body, NOW, null, "the SDK checks no time; hookseal applies its 5-minute window", { quirk: true, ours: "invalid" });
  write("sendgrid", { spec: "https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-webhook-security-features", signer: "node:crypto ECDSA P-256 SHA-256 (DER, base64); verified by node:@sendgrid/eventwebhook@" + version + " verifySignature", sdk: `node:@sendgrid/eventwebhook@${version}`, tolerance_s: 300 }, cases);
}

// --- pusher: X-Pusher-Signature = hex HMAC-SHA256(body) with the app secret; the SDK also
// wants X-Pusher-Key to be the app key and the body to be JSON with a JSON content type.
{
  const Pusher = require("pusher");
  const version = JSON.parse(fs.readFileSync(require.resolve("pusher/package.json"))).version;
  const appKey = "278d425bdf160c739803";
  const secret = "7ad3773142a6692b25b8";
  const pusher = new Pusher({ appId: "1", key: appKey, secret, cluster: "eu" });
  const body = '{"time_ms":1735689600000,"events":[{"name":"channel_occupied","channel":"presence-room"}]}';
  const sign = (b, s = secret) => hmac("sha256", s, b, "hex");
  const cases = [];
  const add = async (name, sig, b, key, want, reason, more = {}, ct = "application/json") => {
    const headers = [["X-Pusher-Key", key], ["X-Pusher-Signature", sig], ["Content-Type", ct]];
    const sdk = await verdict(() => pusher.webhook({ headers: lower(headers), rawBody: b }).isValid());
    cases.push({ name, secret, headers, body: b, now: NOW, sdk, want, reason, ...more });
  };
  await add("valid_basic", sign(body), body, appKey, "valid", "HMAC-SHA256 of the body with the app secret");
  await add("invalid_tampered_body", sign(body), body.replace("occupied", "vacated"), appKey, "invalid", "body changed");
  await add("invalid_wrong_secret", sign(body, "another-secret"), body, appKey, "invalid", "another secret");
  await add("invalid_uppercase_hex", sign(body).toUpperCase(), body, appKey, "invalid", "hex compared as lowercase text");
  await add("quirk_other_app_key", sign(body), body, "0000000000other0key0", null, "the SDK also matches X-Pusher-Key; the key is not secret, hookseal checks the MAC only", { quirk: true, ours: "valid" });
  await add("quirk_text_body", sign("not json"), "not json", appKey, null, "the SDK only accepts a JSON body; hookseal authenticates any body", { quirk: true, ours: "valid" }, "text/plain");
  write("pusher", { spec: "https://pusher.com/docs/channels/server_api/webhooks/", signer: `node:crypto HMAC-SHA256 hex; verified by node:pusher@${version} webhook().isValid`, sdk: `node:pusher@${version}`, tolerance_s: null }, cases);
}

// --- contentful: the toolkit signs (signRequest) and verifies (verifyRequest, TTL 30 s).
{
  const { signRequest, verifyRequest } = require("@contentful/node-apps-toolkit");
  const version = JSON.parse(fs.readFileSync(path.join(process.cwd(), "node_modules/@contentful/node-apps-toolkit/package.json"))).version;
  const secret = "ctfl-signing-secret-5v9QpX2mR7tK4bN8cJ1eF6hA3dG0sL-0123456789abc";
  if (secret.length !== 64) throw new Error("contentful secret length");
  const body = '{"sys":{"type":"Entry","id":"5KsDBWseXY6QegucYAoacS"},"fields":{"title":{"en-US":"Caf\u00e9 \u2713"}}}';
  const extra = { "Content-Type": "application/vnd.contentful.management.v1+json", "X-Contentful-Topic": "ContentManagement.Entry.publish" };
  const sign = (path, ms, b = body, s = secret) => signRequest(s, { method: "POST", path, headers: extra, body: b }, ms);
  const cases = [];
  const add = async (name, path, signed, b, now, want, reason, more = {}) => {
    const headers = [...Object.entries(extra), ...Object.entries(signed)];
    const sdk = await verdict(() => at(now, () => verifyRequest(secret, { method: "POST", path, headers: Object.fromEntries(headers), body: b })));
    cases.push({ name, secret, path, headers, body: b, now, sdk, want, reason, ...more });
  };
  const ms = NOW * 1000;
  await add("valid_signed_topic_and_type", "/webhooks/contentful", sign("/webhooks/contentful", ms), body, NOW, "valid", "canonical request: method, path, signed headers, body");
  await add("valid_query", "/webhooks/contentful?env=master&x=a%20b", sign("/webhooks/contentful?env=master&x=a%20b", ms), body, NOW, "valid", "the query escaped twice, as the toolkit signs it");
  {
    // Only the two headers every request signs: what `hookseal sign` emits.
    const signed = signRequest(secret, { method: "POST", path: "/webhooks/contentful", body }, ms);
    const headers = Object.entries(signed);
    const sdk = await verdict(() => at(NOW, () => verifyRequest(secret, { method: "POST", path: "/webhooks/contentful", headers: signed, body })));
    cases.push({ name: "valid_basic", secret, path: "/webhooks/contentful", headers, body, now: NOW, sdk, want: "valid", reason: "only x-contentful-signed-headers and x-contentful-timestamp signed" });
  }
  await add("valid_age_29s", "/webhooks/contentful", sign("/webhooks/contentful", ms - 29000), body, NOW, "valid", "inside the 30 s TTL");
  await add("invalid_stale_31s", "/webhooks/contentful", sign("/webhooks/contentful", ms - 31000), body, NOW, "invalid", "older than the 30 s TTL");
  await add("invalid_tampered_body", "/webhooks/contentful", sign("/webhooks/contentful", ms), body.replace("Entry", "Asset"), NOW, "invalid", "body changed");
  await add("invalid_other_path", "/webhooks/other", sign("/webhooks/contentful", ms), body, NOW, "invalid", "the path is signed");
  await add("invalid_wrong_secret", "/webhooks/contentful", sign("/webhooks/contentful", ms, body, "z".repeat(64)), body, NOW, "invalid", "another secret");
  {
    const signed = sign("/webhooks/contentful", ms);
    const headers = [...Object.entries({ ...extra, "X-Contentful-Topic": "ContentManagement.Entry.delete" }), ...Object.entries(signed)];
    const sdk = await verdict(() => verifyRequest(secret, { method: "POST", path: "/webhooks/contentful", headers: Object.fromEntries(headers), body }, 0));
    cases.push({ name: "invalid_changed_signed_header", secret, path: "/webhooks/contentful", headers, body, now: NOW, sdk, want: "invalid", reason: "a listed header is signed" });
  }
  await add("quirk_future_timestamp_1h", "/webhooks/contentful", sign("/webhooks/contentful", ms + 3600000), body, NOW, null, "the toolkit bounds only the age; hookseal's window is symmetric", { quirk: true, ours: "invalid" });
  write("contentful", { spec: "https://www.contentful.com/developers/docs/extensibility/app-framework/request-verification/", signer: `node:@contentful/node-apps-toolkit@${version} signRequest; verified by its verifyRequest (Date.now pinned)`, sdk: `node:@contentful/node-apps-toolkit@${version}`, tolerance_s: 30 }, cases);
}
