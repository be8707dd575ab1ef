"""Makes tests/vectors/orb.json with Orb's Python SDK as the verifier.

    python3 -m venv v && v/bin/pip install orb-billing==4.90.0
    v/bin/python tests/vectors/gen_orb.py tests/vectors

Each case is signed with the standard library's hmac as Orb documents it (hex HMAC-SHA256 of
"v1:" + X-Orb-Timestamp + ":" + body, sent as "v1=<hex>") and handed to the SDK's
webhooks.verify_signature with the SDK's clock pinned to the case's `now`; its answer is the
case's `expect`."""

import hashlib
import hmac
import json
import os
import sys
from datetime import datetime, timezone

import orb.resources.webhooks.webhooks as orb_webhooks
from orb import Orb

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
NOW = 1735689600
SECRET = "orb-webhook-secret-Qm9yYiBzZWNyZXQ"
SDK = "python:orb-billing@4.90.0"
BODY = '{"id":"evt_1","type":"invoice.issued","created_at":"2025-01-01T00:00:00+00:00","properties":{}}'


class PinnedClock(datetime):
    @classmethod
    def now(cls, tz=None):
        return datetime.fromtimestamp(NOW, tz=tz or timezone.utc)


orb_webhooks.datetime = PinnedClock
client = Orb(api_key="unused", webhook_secret=SECRET)


def sign(ts, body, secret=SECRET):
    return "v1=" + hmac.new(secret.encode(), f"v1:{ts}:{body}".encode(), hashlib.sha256).hexdigest()


def verdict(ts, body, sig):
    try:
        client.webhooks.verify_signature(body, {"X-Orb-Timestamp": ts, "X-Orb-Signature": sig})
        return "valid"
    except Exception:
        return "invalid"


cases = []


def add(name, ts, body, sig, reason, want):
    sdk = verdict(ts, body, sig)
    if sdk != want:
        raise SystemExit(f"orb/{name}: SDK says {sdk}, built as {want}")
    cases.append({
        "name": f"orb/{name}",
        "scheme": "orb",
        "category": "core",
        "secret": SECRET,
        "method": "POST",
        "path": "/webhooks/orb",
        "headers": [["X-Orb-Signature", sig], ["X-Orb-Timestamp", ts], ["Content-Type", "application/json"]],
        "body": body,
        "now": NOW,
        "expect": sdk,
        "reason": reason,
        "tolerance_s": None,
        "sdk_verdict": {SDK: sdk},
    })


TS = "2025-01-01T00:00:00"
add("valid_basic", TS, BODY, sign(TS, BODY), "naive ISO timestamp (UTC), v1= hex", "valid")
TS2 = "2025-01-01T00:01:00.123456"
add("valid_fraction", TS2, BODY, sign(TS2, BODY), "fractional seconds, signed as sent", "valid")
TS3 = "2025-01-01T01:00:00+01:00"
add("valid_offset", TS3, BODY, sign(TS3, BODY), "an explicit offset", "valid")
add("valid_second_of_two", TS, BODY, "v1=" + "0" * 64 + " " + sign(TS, BODY), "space-separated signatures: any v1 one", "valid")
add("invalid_tampered_body", TS, BODY.replace("evt_1", "evt_2"), sign(TS, BODY), "body changed", "invalid")
add("invalid_wrong_secret", TS, BODY, sign(TS, BODY, "another"), "another secret", "invalid")
add("invalid_other_version", TS, BODY, sign(TS, BODY).replace("v1=", "v2="), "only v1 entries count", "invalid")
OLD = "2024-12-31T23:54:00"
add("invalid_stale", OLD, BODY, sign(OLD, BODY), "6 minutes old (5 minute window)", "invalid")
NEW = "2025-01-01T00:06:00"
add("invalid_future", NEW, BODY, sign(NEW, BODY), "6 minutes ahead", "invalid")

doc = {
    "scheme": "orb",
    "spec": "https://docs.withorb.com/integrations-and-exports/webhooks",
    "generated_by": ["gen_orb.py"],
    "signer": "python:hmac HMAC-SHA256 hex; verified by " + SDK + " webhooks.verify_signature",
    "headers_format": "list of [name, value] pairs exactly as received",
    "cases": cases,
}
with open(os.path.join(OUT, "orb.json"), "w") as f:
    f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"orb: {len(cases)} cases")
