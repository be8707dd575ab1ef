"""Makes tests/vectors/twitch.json with the twitchAPI package (4.5.0) as the verifier.

    python3 -m venv v && v/bin/pip install twitchAPI==4.5.0
    v/bin/python tests/vectors/gen_twitch.py tests/vectors

Each case is signed with the standard library's hmac as Twitch documents ("sha256=" + hex
HMAC-SHA256 of message id + timestamp + body) and handed to twitchAPI's
EventSubWebhook._verify_signature (what its webhook server calls on every message). That
function checks no time (Twitch's docs say to refuse messages older than 10 minutes): a stale
message is a quirk, refused by hookseal."""

import asyncio
import hashlib
import hmac
import json
import os
import sys
from types import SimpleNamespace

from twitchAPI.eventsub.webhook import EventSubWebhook

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
NOW = 1735689600
SECRET = "twitch-eventsub-secret-4bN8cJ1eF6"
SDK = "python:twitchAPI@4.5.0"
BODY = '{"subscription":{"id":"f1c2a387-161a-49f9-a165-0f21d7a4e1c4","type":"channel.follow","version":"2"},"event":{"user_login":"caf\u00e9_fan","broadcaster_user_id":"1337"}}'
MSG_ID = "e76c6bd4-55c9-4987-8304-da1588d8988b"


def ts(t, nanos=True):
    # RFC 3339 with nanoseconds, as Twitch sends it (without: as `hookseal sign` does)
    import datetime

    d = datetime.datetime.fromtimestamp(t, datetime.timezone.utc)
    return d.strftime("%Y-%m-%dT%H:%M:%S") + (".123456789Z" if nanos else "Z")


def sign(msg_id, stamp, body, secret=SECRET):
    mac = hmac.new(secret.encode(), (msg_id + stamp + body).encode(), hashlib.sha256).hexdigest()
    return "sha256=" + mac


class Req:
    def __init__(self, headers, body):
        self.headers = dict(headers)
        self._body = body

    async def text(self):
        return self._body


def verdict(headers, body):
    me = SimpleNamespace(secret=SECRET)
    try:
        ok = asyncio.run(EventSubWebhook._verify_signature(me, Req(headers, body)))
    except Exception:
        ok = False
    return "valid" if ok else "invalid"


cases = []


def add(name, headers, body, reason, want=None, ours=None):
    sdk = verdict(headers, body)
    if want is not None and sdk != want:
        raise SystemExit(f"twitch/{name}: SDK says {sdk}, built as {want}")
    case = {
        "name": f"twitch/{name}",
        "scheme": "twitch",
        "category": "quirk" if ours else "core",
        "secret": SECRET,
        "method": "POST",
        "path": "/webhooks/twitch",
        "headers": [list(h) for h in headers] + [["Content-Type", "application/json"]],
        "body": body,
        "now": NOW,
        "expect": sdk,
        "reason": reason,
        "sdk_verdict": {SDK: sdk},
    }
    if ours:
        case["also_acceptable"] = ours
    cases.append(case)


def hs(msg_id, stamp, sig):
    return [
        ("Twitch-Eventsub-Message-Id", msg_id),
        ("Twitch-Eventsub-Message-Timestamp", stamp),
        ("Twitch-Eventsub-Message-Signature", sig),
        ("Twitch-Eventsub-Message-Type", "notification"),
    ]


plain = ts(NOW, nanos=False)
add("valid_basic", hs(MSG_ID, plain, sign(MSG_ID, plain, BODY)), BODY, "id + timestamp + body, sha256= hex", "valid")
t = ts(NOW)
add("valid_nanosecond_timestamp", hs(MSG_ID, t, sign(MSG_ID, t, BODY)), BODY, "the timestamp text is signed as sent, nanoseconds included", "valid")
add("invalid_tampered_body", hs(MSG_ID, t, sign(MSG_ID, t, BODY)), BODY.replace("1337", "1338"), "body changed", "invalid")
add("invalid_changed_id", hs(MSG_ID[:-1] + "c", t, sign(MSG_ID, t, BODY)), BODY, "the id is signed", "invalid")
add("invalid_wrong_secret", hs(MSG_ID, t, sign(MSG_ID, t, BODY, "another-secret-value")), BODY, "another secret", "invalid")
add("invalid_uppercase_hex", hs(MSG_ID, t, "sha256=" + sign(MSG_ID, t, BODY)[7:].upper()), BODY, "compared as lowercase text", "invalid")
old = ts(NOW - 601)
add("quirk_stale_timestamp_not_checked", hs(MSG_ID, old, sign(MSG_ID, old, BODY)), BODY, "the SDK checks no time; Twitch says to refuse messages older than 10 minutes, as hookseal does", ours="invalid")

doc = {
    "scheme": "twitch",
    "spec": "https://dev.twitch.tv/docs/eventsub/handling-webhook-events/#verifying-the-event-message",
    "generated_by": ["gen_twitch.py"],
    "signer": "python:hmac HMAC-SHA256 hex; verified by " + SDK + " EventSubWebhook._verify_signature",
    "tolerance_s": 600,
    "headers_format": "list of [name, value] pairs exactly as received",
    "cases": cases,
}
with open(os.path.join(OUT, "twitch.json"), "w") as f:
    f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"twitch: {len(cases)} cases")
