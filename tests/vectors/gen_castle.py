"""Makes tests/vectors/castle.json with Castle's Python SDK (castle 7.3.0) as the verifier.

    python3 -m venv v && v/bin/pip install castle==7.3.0
    v/bin/python tests/vectors/gen_castle.py tests/vectors

Each case is signed with the standard library's hmac (base64 HMAC-SHA256 of the body with the
API secret, as Castle documents) and handed to castle.webhooks.verify.WebhooksVerify; its answer
is the case's `expect`, or, for a quirk, the SDK's answer next to hookseal's."""

import base64
import hashlib
import hmac
import json
import os
import sys
from types import SimpleNamespace

from castle.configuration import configuration
from castle.webhooks.verify import WebhooksVerify

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
NOW = 1735689600
SECRET = "castle-api-secret-Kp4Rz8Qw2Lm6Tn0Vx"
SDK = "python:castle@7.3.0"
BODY = '{"type":"$incident.confirmed","created_at":"2025-01-01T00:00:00.000Z","data":{"user_id":"u_42","device_token":"eyJ0b2tlbiI6IjEyMyJ9"}}'


def sign(body, secret=SECRET):
    return base64.b64encode(hmac.new(secret.encode(), body.encode(), hashlib.sha256).digest()).decode()


def verdict(body, sig):
    configuration.api_secret = SECRET
    webhook = SimpleNamespace(data=body.encode(), headers={"X-Castle-Signature": sig})
    try:
        WebhooksVerify.call(webhook)
        return "valid"
    except Exception:  # the SDK raises on any refusal
        return "invalid"


cases = []


def add(name, body, sig, reason, want=None, ours=None):
    sdk = verdict(body, sig)
    if want is not None and sdk != want:
        raise SystemExit(f"castle/{name}: SDK says {sdk}, built as {want}")
    case = {
        "name": f"castle/{name}",
        "scheme": "castle",
        "category": "quirk" if ours else "core",
        "secret": SECRET,
        "method": "POST",
        "path": "/webhooks/castle",
        "headers": [["X-Castle-Signature", sig], ["Content-Type", "application/json"]],
        "body": body,
        "now": NOW,
        "expect": sdk,
        "reason": reason,
        "sdk_verdict": {SDK: sdk},
    }
    if ours:
        case["also_acceptable"] = ours
    cases.append(case)


good = sign(BODY)
add("valid_basic", BODY, good, "base64 HMAC-SHA256 of the body with the API secret", "valid")
add("invalid_tampered_body", BODY.replace("u_42", "u_43"), good, "body changed", "invalid")
add("invalid_wrong_secret", BODY, sign(BODY, "another-secret"), "another secret", "invalid")
add("invalid_unpadded_base64", BODY, good.rstrip("="), "base64 text compared exactly", "invalid")
add("invalid_hex_instead_of_base64", BODY, hmac.new(SECRET.encode(), BODY.encode(), hashlib.sha256).hexdigest(), "base64, not hex", "invalid")
add("quirk_empty_body", "", sign(""), "the SDK refuses an empty body before the MAC; hookseal forwards an authentic empty body", ours="valid")

doc = {
    "scheme": "castle",
    "spec": "https://docs.castle.io/docs/webhooks",
    "generated_by": ["gen_castle.py"],
    "signer": "python:hmac HMAC-SHA256 base64; verified by " + SDK + " WebhooksVerify.call",
    "tolerance_s": None,
    "headers_format": "list of [name, value] pairs exactly as received",
    "cases": cases,
}
with open(os.path.join(OUT, "castle.json"), "w") as f:
    f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"castle: {len(cases)} cases")
