#!/usr/bin/env python3
"""Writes the fuzz corpus seeds under fuzz/seeds/<target>/ from the SDK-made test vectors.

    python3 fuzz/make_seeds.py [VECTORS_DIR]     # default: ../shared/schemes/vectors

Deterministic: the same vectors give the same files (named by case). Cases whose body is over
4 KiB are left out to keep the seeds small; the fuzzer grows its own corpus in fuzz/corpus/.
"""
import hashlib
import hmac
import base64
import json
import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent
REPO = ROOT.parent
VECTORS = pathlib.Path(sys.argv[1]) if len(sys.argv) > 1 else REPO.parent / "shared" / "schemes" / "vectors"
OUT = ROOT / "seeds"
MAX_BODY = 4096

# file -> (scheme name in the config, hmac line or None), as src/verify/vectors.rs maps them
ROUTES = {
    "github_sha1": ("hmac", "hmac X-Hub-Signature sha1 hex sha1= - X-GitHub-Delivery {body}"),
    "github_sha256": ("github", None),
    "standard_webhooks": ("standard-webhooks", None),
}


def write(target, name, data):
    d = OUT / target
    d.mkdir(parents=True, exist_ok=True)
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name)
    (d / safe).write_bytes(data if isinstance(data, bytes) else data.encode())


def cases():
    for f in sorted(VECTORS.glob("*.json")):
        doc = json.loads(f.read_text())
        for c in doc["cases"]:
            yield f.stem, c


def header(c, name):
    for k, v in c["headers"]:
        if k.lower() == name.lower():
            return v
    return None


def verify_request_seed(stem, c):
    scheme, hmac_line = ROUTES.get(stem, (stem, None))
    tol = c.get("tolerance_s")
    lines = [f"{scheme} {c['now']} {tol if tol is not None else '-'} {c.get('public_url') or '-'}"]
    if hmac_line:
        lines.append(hmac_line)
    for s in [c["secret"]] + list(c.get("additional_secrets", [])):
        lines.append(f"secret {s}")
    lines.append(f"{c['method']} {c['path']}")
    lines += [f"{k}: {v}" for k, v in c["headers"]]
    return ("\n".join(lines) + "\n\n").encode() + c["body"].encode()


def main():
    n = {}
    paths = set()
    for stem, c in cases():
        paths.add(c["path"])
        if len(c["body"].encode()) > MAX_BODY:
            continue
        write("verify_request", c["name"], verify_request_seed(stem, c))
        n["verify_request"] = n.get("verify_request", 0) + 1
        for h, target, prefix in [
            ("webhook-signature", "standard_signature", b""),
            ("svix-signature", "standard_signature", b""),
            ("Stripe-Signature", "stripe_signature", b""),
            ("X-Hub-Signature-256", "hmac_signature", b"\x00"),  # sha256= hex
            ("X-Shopify-Hmac-Sha256", "hmac_signature", b"\x07"),  # no prefix, base64
        ]:
            v = header(c, h)
            if v is not None:
                write(target, c["name"], prefix + v.encode())
                n[target] = n.get(target, 0) + 1

    # Genuine signatures for the fixed requests of the signature targets (see their sources).
    body = b'{"test": 2432232314}'
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    mac = hmac.new(key, b"msg_p5jXN8AQM9LWM0D4loKWxJek.1614265330." + body, hashlib.sha256).digest()
    v1 = "v1," + base64.b64encode(mac).decode()
    write("standard_signature", "genuine_v1", v1)
    write("standard_signature", "genuine_in_list", f"v2,abc  v1,AAAA {v1} v1a,xyz")

    now = 1735689600
    sbody = b'{"id":"evt_1","object":"event"}'
    skey = b"whsec_Ky7mQ2pV9sT4wX1zB6nD3fH8jL0cR5eA"
    sig = hmac.new(skey, f"{now}.".encode() + sbody, hashlib.sha256).hexdigest()
    write("stripe_signature", "genuine", f"t={now},v1={sig}")
    write("stripe_signature", "genuine_rotated", f"t={now},v1={'0' * 64},v0=ff,v1={sig}")

    hbody = b'{"event":"ping"}'
    for i, secret in enumerate([b"previous-secret", b"current-secret"]):
        d = hmac.new(secret, hbody, hashlib.sha256).digest()
        write("hmac_signature", f"genuine_hex_{i}", b"\x00sha256=" + d.hex().encode())
        write("hmac_signature", f"genuine_b64_{i}", b"\x04v1," + base64.b64encode(d))
        write("hmac_signature", f"genuine_b64url_{i}", b"\x08" + base64.urlsafe_b64encode(d).rstrip(b"="))
    write("hmac_signature", "list", b"\x00sha256=00, sha1=ab sha256=" + hmac.new(b"current-secret", hbody, hashlib.sha256).hexdigest().encode())

    # Config loader: the example config, and one small config per vector file.
    write("config_parse", "config.example.toml", (REPO / "config.example.toml").read_bytes())
    seen = set()
    for stem, c in cases():
        if stem in seen:
            continue
        seen.add(stem)
        scheme, hmac_line = ROUTES.get(stem, (stem, None))
        text = (
            '[listen]\naddress = "127.0.0.1:8443"\ntrusted_proxies = ["10.0.0.0/8", "::1"]\n'
            '[limits]\nmax_body_bytes = "64KiB"\nbody_timeout = "250ms"\n'
            '[upstream]\nurl = "http://127.0.0.1:8080"\n'
            f'[[route]]\nname = "{stem}"\npath_prefix = "{c["path"].split("?")[0]}/"\nscheme = "{scheme}"\n'
            f'secrets = [{{ id = "a", value = {json.dumps(c["secret"])} }}, {{ env = "FUZZ_SECRET" }}]\n'
            'tolerance = "5m"\nallow_from = ["192.0.2.0/24"]\n'
        )
        if c.get("public_url"):
            text += f'public_url = "{c["public_url"]}"\n'
        if hmac_line:
            f = hmac_line.split(" ")
            text += (f'[route.hmac]\nheader = "{f[1]}"\nalgorithm = "{f[2]}"\nencoding = "{f[3]}"\n'
                     f'prefix = "{f[4]}"\nid_header = "{f[6]}"\nsigned_payload = "{f[7]}"\n')
        text += '[[route]]\nname = "app"\npath_prefix = "/"\nmethods = ["GET", "POST"]\nscheme = "none"\n'
        write("config_parse", f"vector_{stem}.toml", text)

    # Route matching: every path the vectors use, and spellings that must not dodge a route.
    tricky = ["/Hooks/GitHub/", "/hooks//github", "/hooks/%67ithub", "/x/../hooks/github",
              "/hooks/github%2F", "/webhooks/%2e%2e/api", "/api;x=1", "//", "", "*", "/%", "/%4",
              "/webhooks", "/webhooks/", "/apix", "/./././api/v1/items/",
              # The readings of issue 17: authority, format, NUL/whitespace, %3B, front
              # controllers, Unicode look-alikes.
              "//evil.example/hooks/github", "//x:1@y/./hooks/github", "/\\x/hooks/github",
              "/hooks/github.json", "/hooks/github.", "/hooks/github%2ejson", "/hooks/github%00",
              "/hooks/github%20", "/hooks/github%09", "/hooks/github%3Bx", "/?/hooks/github",
              "/index.php?%2Fhooks%2Fgithub&a=1", "/index.php/hooks/github",
              "/hooks%EF%BC%8Fgithub", "/\uff48ooks/github", "/hoo\u212as/github"]
    for i, p in enumerate(sorted(paths) + tricky):
        write("route_match", f"path_{i:03}", p)

    # X-Forwarded-For: first byte the peer, second the trusted networks, then the values.
    for i, (peer, nets, xff) in enumerate([
        (0, 0b00001, b"203.0.113.9"),
        (0, 0b01001, b"1.1.1.1, 192.0.2.7, 10.1.1.1"),
        (3, 0b00100, b"[2001:db8::1]:443, ::1"),
        (4, 0b00001, b"10.0.0.9\n198.51.100.4:8080"),
        (1, 0b00010, b"garbage, 127.0.0.1"),
        (5, 0b10000, b" , ,2001:db8::2"),
    ]):
        write("client_ip", f"xff_{i}", bytes([peer, nets]) + xff)

    # JWT: tokens (RS256-shaped, none, HS256, crit, wrong part counts), Bearer values, JWKS.
    def b64u(b):
        return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
    claims = b64u(b'{"iss":"https://accounts.google.com","aud":"https://h/x","exp":1767000000,'
                  b'"email":"a@b","email_verified":true}')
    for i, header in enumerate([b'{"alg":"RS256","kid":"k1","typ":"JWT"}', b'{"alg":"none"}',
                                b'{"alg":"HS256","kid":"k1"}', b'{"alg":"ES256","crit":["x"]}',
                                b'{"alg":"EdDSA"}']):
        write("jwt_parse", f"token_{i}", f"{b64u(header)}.{claims}.{b64u(bytes(range(64)))}")
    write("jwt_parse", "bearer", f"Bearer {b64u(b'{}')}.{claims}.AA")
    write("jwt_parse", "parts", "a.b.c.d")
    write("jwt_parse", "jwks", json.dumps({"keys": [
        {"kty": "EC", "crv": "P-256", "kid": "e", "x": b64u(bytes(32)), "y": b64u(bytes(32))},
        {"kty": "OKP", "crv": "Ed25519", "kid": "d", "x": b64u(bytes(32))},
        {"kty": "RSA", "kid": "r", "alg": "RS256", "n": b64u(b"\x01" * 256), "e": "AQAB"},
        {"kty": "oct", "k": "c2VjcmV0"}]}))

    # SNS: the three message types, with and without Subject, and a null Subject.
    topic = "arn:aws:sns:eu-west-1:123456789012:orders"
    base = {"MessageId": "m-1", "TopicArn": topic, "Message": "{\"a\":1}\nx",
            "Timestamp": "2026-12-01T00:00:00.000Z", "SignatureVersion": "1",
            "Signature": base64.b64encode(bytes(256)).decode(),
            "SigningCertURL": "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-x.pem"}
    confirm = {"SubscribeURL": "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription",
               "Token": "2336412f"}
    for name, extra in [("notification", {"Type": "Notification"}),
                        ("notification_subject", {"Type": "Notification", "Subject": "s"}),
                        ("notification_null_subject", {"Type": "Notification", "Subject": None,
                                                       "SignatureVersion": "2"}),
                        ("subscription", {"Type": "SubscriptionConfirmation", **confirm}),
                        ("unsubscribe", {"Type": "UnsubscribeConfirmation", **confirm})]:
        write("sns_message", name, json.dumps({**base, **extra}, indent=2))

    # trace_context: first byte even = traceparent, odd = tracestate (the W3C examples).
    for name, v in [("tp_sampled", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
                    ("tp_unsampled", b"00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"),
                    ("tp_later_version", b"cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-x")]:
        write("trace_context", name, b"\x00" + v)
    for name, v in [("ts_one", b"congo=t61rcWkgMzE"),
                    ("ts_two_blanks", b"rojo=00f067aa0ba902b7 , congo=t61rcWkgMzE"),
                    ("ts_tenant", b"t@vendor=x,,k=v")]:
        write("trace_context", name, b"\x01" + v)

    total = sum(1 for _ in OUT.rglob("*") if _.is_file())
    print(f"wrote {total} seed files under {OUT.relative_to(REPO)}: {n}")


if __name__ == "__main__":
    main()
