// Makes tests/vectors/hygraph.json with Hygraph's own npm package as signer and verifier.
//
//     npm install @hygraph/utils@1.2.1
//     node tests/vectors/gen_hygraph.mjs tests/vectors
//
// Valid cases are signed by generateWebhookSignature({rawPayload, secret, environmentName})
// with Date.now() pinned to the case's clock; every case's `expect` is the answer of
// verifyWebhookSignature({rawPayload, signature, secret}) for the body and header hookseal gets.
import { createRequire } from "node:module";
import { writeFileSync } from "node:fs";
import { join } from "node:path";

const require = createRequire(import.meta.url);
const utils = require("@hygraph/utils");
const OUT = process.argv[2] ?? ".";
const NOW = 1735689600;
const SECRET = "rCNwyiloY3oJYYkxgpBXaleIiUv5MYlx-hookseal";
const SDK = "npm:@hygraph/utils@1.2.1";
const BODY = '{"operation":"publish","data":{"__typename":"Post","id":"ckw1","title":"Héllo \\"w\\"\\n✓"}}';

function sign(body, { env = "master", ms = NOW * 1000, secret = SECRET } = {}) {
  const real = Date.now;
  Date.now = () => ms;
  try {
    return utils.generateWebhookSignature({ rawPayload: body, secret, environmentName: env });
  } finally {
    Date.now = real;
  }
}

function verdict(body, signature) {
  try {
    return utils.verifyWebhookSignature({ rawPayload: body, signature, secret: SECRET }) ? "valid" : "invalid";
  } catch {
    return "invalid";
  }
}

const cases = [];
function add(name, body, sig, reason, want, now = NOW) {
  const sdk = verdict(body, sig);
  if (sdk !== want) throw new Error(`hygraph/${name}: SDK says ${sdk}, built as ${want}`);
  cases.push({
    name: `hygraph/${name}`,
    scheme: "hygraph",
    category: "core",
    secret: SECRET,
    method: "POST",
    path: "/webhooks/hygraph",
    headers: [["gcms-signature", sig], ["Content-Type", "application/json"]],
    body,
    now,
    expect: sdk,
    reason,
    tolerance_s: null,
    sdk_verdict: { [SDK]: sdk },
  });
}

const good = sign(BODY);
add("valid_master", BODY, good, "base64 HMAC-SHA256 of the JSON of body, environment, timestamp", "valid");
add("valid_other_environment", BODY, sign(BODY, { env: "staging" }), "the environment is part of the signed JSON", "valid");
add("valid_escapes", '{"a":"\\u0001\\t"}\n', sign('{"a":"\\u0001\\t"}\n', { ms: NOW * 1000 + 250 }), "control characters escaped as JSON.stringify does; milliseconds as sent", "valid");
add("invalid_tampered_body", BODY.replace("ckw1", "ckw2"), good, "body changed", "invalid");
add("invalid_environment_changed", BODY, good.replace("env=master", "env=staging"), "environment changed", "invalid");
add("invalid_timestamp_changed", BODY, good.replace(/t=(\d+)$/, (_, t) => `t=${Number(t) + 1}`), "timestamp changed", "invalid");
add("invalid_wrong_secret", BODY, sign(BODY, { secret: "another-secret" }), "another secret", "invalid");

const doc = {
  scheme: "hygraph",
  spec: "https://hygraph.com/docs/api-reference/basics/webhooks",
  generated_by: ["gen_hygraph.mjs"],
  signer: `${SDK} generateWebhookSignature; verified by verifyWebhookSignature`,
  headers_format: "list of [name, value] pairs exactly as received",
  cases,
};
writeFileSync(join(OUT, "hygraph.json"), JSON.stringify(doc, null, 1) + "\n");
console.log(`hygraph: ${cases.length} cases`);
