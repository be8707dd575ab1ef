"""Makes tests/vectors/plivo.json with Plivo's Python SDK as signer and verifier.

    python3 -m venv v && v/bin/pip install plivo==4.63.0
    v/bin/python tests/vectors/gen_plivo.py tests/vectors

Each valid case is signed by plivo.utils.signature_v3.get_signature_v3 over the base URL the SDK
builds (construct_post_url / construct_get_url) and the nonce; every case's `expect` is the
answer of plivo.utils.validate_v3_signature for the request as hookseal receives it (the POST
parameters form-decoded from the body, as a framework hands them to the SDK)."""

import json
import os
import sys
from urllib.parse import parse_qs

from plivo.utils import validate_v3_signature
from plivo.utils.signature_v3 import construct_get_url, construct_post_url, get_signature_v3

OUT = sys.argv[1] if len(sys.argv) > 1 else "."
NOW = 1735689600
TOKEN = "MAZDQ1ZJIYMDZKMMZLYM-plivo-auth-token"
PUBLIC = "https://hooks.example.com"
SDK = "python:plivo@4.63.0"
BODY = "From=14155550100&To=14155550199&Text=H%C3%A9llo+w%C3%B6rld&Type=sms&MessageUUID=2d55bd8a-7e5e-11e4-a1c2-22000ac2b4a8"


def params_of(body):
    return {k: v if len(v) > 1 else v[0] for k, v in parse_qs(body, keep_blank_values=True).items()}


def sign(method, path, body, nonce, token=TOKEN):
    uri = PUBLIC + path
    base = construct_get_url(uri, {}) if method == "GET" else construct_post_url(uri, params_of(body))
    return get_signature_v3(token.encode(), base.decode(), nonce.encode()).decode()


def verdict(method, path, body, nonce, sig):
    ok = validate_v3_signature(method, PUBLIC + path, nonce, TOKEN, sig, params_of(body) if method == "POST" else None)
    return "valid" if ok else "invalid"


cases = []


def add(name, method, path, body, nonce, sig, reason, want):
    sdk = verdict(method, path, body, nonce, sig)
    if sdk != want:
        raise SystemExit(f"plivo/{name}: SDK says {sdk}, built as {want}")
    cases.append({
        "name": f"plivo/{name}",
        "scheme": "plivo",
        "category": "core",
        "secret": TOKEN,
        "method": method,
        "path": path,
        "headers": [
            ["X-Plivo-Signature-V3", sig],
            ["X-Plivo-Signature-V3-Nonce", nonce],
            ["Content-Type", "application/x-www-form-urlencoded"],
        ],
        "body": body,
        "now": NOW,
        "expect": sdk,
        "reason": reason,
        "public_url": PUBLIC + path,
        "tolerance_s": None,
        "sdk_verdict": {SDK: sdk},
    })


P = "/webhooks/plivo/sms"
good = sign("POST", P, BODY, "05429567804466091622")
add("valid_post_form", "POST", P, BODY, "05429567804466091622", good, "URL + sorted decoded params + '.' + nonce", "valid")
q = P + "?tenant=acme&b=%2F"
add("valid_post_with_query", "POST", q, BODY, "n2", sign("POST", q, BODY, "n2"), "sorted decoded query, '.', then the params", "valid")
add("valid_post_no_params", "POST", q, "", "n3", sign("POST", q, "", "n3"), "query only", "valid")
g = P + "?CallUUID=abc&From=1415"
add("valid_get", "GET", g, "", "n4", sign("GET", g, "", "n4"), "GET: URL + sorted query", "valid")
add("valid_second_of_list", "POST", P, BODY, "05429567804466091622", sign("POST", P, BODY, "05429567804466091622", "old-token") + "," + good, "comma-separated list: any entry", "valid")
add("invalid_tampered_body", "POST", P, BODY.replace("Type=sms", "Type=mms"), "05429567804466091622", good, "a parameter changed", "invalid")
add("invalid_other_nonce", "POST", P, BODY, "05429567804466091623", good, "the nonce is signed", "invalid")
add("invalid_other_path", "POST", P + "x", BODY, "05429567804466091622", good, "the path is signed", "invalid")
add("invalid_wrong_token", "POST", P, BODY, "05429567804466091622", sign("POST", P, BODY, "05429567804466091622", "another-token"), "another auth token", "invalid")

doc = {
    "scheme": "plivo",
    "spec": "https://www.plivo.com/docs/messaging/concepts/signature-validation",
    "generated_by": ["gen_plivo.py"],
    "signer": SDK + " signature_v3.get_signature_v3; verified by validate_v3_signature",
    "headers_format": "list of [name, value] pairs exactly as received",
    "cases": cases,
}
with open(os.path.join(OUT, "plivo.json"), "w") as f:
    f.write(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
print(f"plivo: {len(cases)} cases")
