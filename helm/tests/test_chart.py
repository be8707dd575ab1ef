"""Chart tests: the real `helm` renders the charts, and these tests assert on the objects.

Run through helm/ci/test.sh (which installs the tools). Environment:
  HELM          helm binary (default: <repo>/.tools/bin/helm)
  HOOKSEAL_BIN  hookseal binary for `hookseal check` (default: <repo>/target/debug/hookseal);
                missing is a failure when CI is set, a skip otherwise.
"""

import base64
import copy
import os
import re
import shutil
import subprocess
import tomllib
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

HELM_DIR = Path(__file__).resolve().parent.parent
ROOT = HELM_DIR.parent
CHART = HELM_DIR / "hookseal"
LIB = HELM_DIR / "hookseal-lib"
EXAMPLE = HELM_DIR / "examples" / "existing-app"
CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
HELM = os.environ.get("HELM", str(ROOT / ".tools" / "bin" / "helm"))
KUBE_VERSIONS = ["1.29.0", "1.37.0"]  # the oldest supported and the newest kubernetes-validate bundles
CRD_KINDS = {"PodMonitor", "ServiceMonitor", "PrometheusRule"}  # checked by test_observability.py
# Custom resources kubernetes-validate has no schema for: cert-manager and Gateway API (their
# shape is asserted in test_chart_options.py).
OTHER_CRD_KINDS = {"Certificate", "HTTPRoute", "BackendTLSPolicy"}
HOOKSEAL_PORT, ADMIN_PORT = 8443, 9090


# --- helpers -------------------------------------------------------------------------------


def helm(*args, check=True):
    proc = subprocess.run([HELM, *map(str, args)], capture_output=True, text=True)
    if check and proc.returncode != 0:
        raise AssertionError(f"helm {' '.join(map(str, args))} failed:\n{proc.stderr}")
    return proc


def render(values=(), sets=(), chart=CHART, extra=(), check=True):
    args = ["template", "rel", chart, "--namespace", "shop"]
    for v in values:
        args += ["-f", v]
    for s in sets:
        args += ["--set", s]
    proc = helm(*args, *extra, check=check)
    if not check:
        return proc
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


def values_file(tmp_path, data, name="values.yaml"):
    p = tmp_path / name
    p.write_text(yaml.safe_dump(data))
    return p


def load_ci(path):
    return yaml.safe_load(Path(path).read_text())


def one(docs, kind, name=None):
    found = [d for d in docs if d["kind"] == kind and (name is None or d["metadata"]["name"] == name)]
    assert len(found) == 1, f"expected one {kind}, got {[d['metadata']['name'] for d in found]}"
    return found[0]


def kinds(docs):
    return sorted(d["kind"] for d in docs)


def pod_spec(docs):
    return one(docs, "Deployment")["spec"]["template"]["spec"]


def sidecar(docs):
    spec = pod_spec(docs)
    found = [c for c in (spec.get("initContainers") or []) + spec["containers"] if c["name"] == "hookseal"]
    assert len(found) == 1
    return found[0]


def config(docs):
    cm = next(d for d in docs if d["kind"] == "ConfigMap" and "hookseal.toml" in d.get("data", {}))
    text = cm["data"]["hookseal.toml"]
    return tomllib.loads(text), text, cm


def walk(node, path=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield f"{path}.{k}", k, v
            yield from walk(v, f"{path}.{k}")
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from walk(v, f"{path}[{i}]")


def ci_id(p):
    return Path(p).name.removesuffix("-values.yaml")


@pytest.fixture(scope="session", autouse=True)
def dependencies():
    for chart in (CHART, EXAMPLE):
        helm("dependency", "build", chart)


@pytest.fixture(scope="session")
def default_docs():
    return render([CHART / "ci" / "default-values.yaml"])


@pytest.fixture(scope="session")
def full_docs():
    return render([CHART / "ci" / "full-values.yaml"])


@pytest.fixture(scope="session")
def classic_docs():
    return render([CHART / "ci" / "classic-sidecar-values.yaml"])


# --- lint and Kubernetes schemas -----------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)
def test_lint_strict(values):
    out = helm("lint", "--strict", CHART, "-f", values).stdout
    assert "0 chart(s) failed" in out


def test_lint_strict_library_and_example():
    assert "0 chart(s) failed" in helm("lint", "--strict", LIB).stdout
    assert "0 chart(s) failed" in helm("lint", "--strict", EXAMPLE).stdout


RENDER_CASES = [(CHART, [v], []) for v in CI_VALUES] + [
    (EXAMPLE, [], []),
    (EXAMPLE, [], ["proxy.nativeSidecar=false"]),
]


@pytest.mark.parametrize("kube", KUBE_VERSIONS)
@pytest.mark.parametrize(
    "chart,values,sets", RENDER_CASES, ids=[ci_id(v) for v in CI_VALUES] + ["example", "example-classic"]
)
def test_kubernetes_schema(chart, values, sets, kube):
    docs = render(values, sets, chart=chart, extra=["--kube-version", kube])
    assert docs
    for doc in docs:
        if doc["kind"] in CRD_KINDS | OTHER_CRD_KINDS:
            continue
        kubernetes_validate.validate(doc, kube, strict=True)


def test_kube_version_below_129_is_refused():
    proc = render([CHART / "ci" / "default-values.yaml"], extra=["--kube-version", "1.28.9"], check=False)
    assert proc.returncode != 0 and "kubeVersion" in proc.stderr


def test_monitors_are_structurally_right(full_docs):
    pm = one(full_docs, "PodMonitor")
    assert pm["apiVersion"] == "monitoring.coreos.com/v1"
    assert pm["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    ep = pm["spec"]["podMetricsEndpoints"]
    assert [(e["port"], e["path"]) for e in ep] == [("admin", "/metrics")]
    assert pm["spec"]["selector"]["matchLabels"] == one(full_docs, "Deployment")["spec"]["selector"]["matchLabels"]
    sm = one(full_docs, "ServiceMonitor")
    assert sm["spec"]["endpoints"][0]["port"] == "admin" and sm["spec"]["endpoints"][0]["interval"] == "15s"
    metrics_svc = one(full_docs, "Service", "rel-hookseal-metrics")
    labels = metrics_svc["metadata"]["labels"]
    assert all(labels.get(k) == v for k, v in sm["spec"]["selector"]["matchLabels"].items())
    assert [p["port"] for p in metrics_svc["spec"]["ports"]] == [ADMIN_PORT]


# --- pod shape -------------------------------------------------------------------------------


def test_native_sidecar_by_default(default_docs):
    spec = pod_spec(default_docs)
    assert [c["name"] for c in spec["initContainers"]] == ["hookseal"]
    assert [c["name"] for c in spec["containers"]] == ["app"]
    hs = spec["initContainers"][0]
    assert hs["restartPolicy"] == "Always"
    assert hs["startupProbe"]["httpGet"] == {"path": "/readyz", "port": ADMIN_PORT}


def test_classic_sidecar(classic_docs):
    spec = pod_spec(classic_docs)
    assert "initContainers" not in spec
    assert [c["name"] for c in spec["containers"]] == ["hookseal", "app"]
    assert "restartPolicy" not in spec["containers"][0]


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)
def test_probes_on_admin_port(values):
    hs = sidecar(render([values]))
    assert hs["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": ADMIN_PORT}
    assert hs["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": ADMIN_PORT}
    assert {p["name"]: p["containerPort"] for p in hs["ports"]} == {"https": HOOKSEAL_PORT, "admin": ADMIN_PORT}
    assert hs["args"] == ["run", "--config", "/etc/hookseal/config/hookseal.toml"]


def test_probes_can_be_turned_off(default_docs, tmp_path):
    docs = render(
        [CHART / "ci" / "default-values.yaml"],
        ["proxy.startupProbe.enabled=false", "proxy.livenessProbe.enabled=false"],
    )
    hs = sidecar(docs)
    assert "startupProbe" not in hs and "livenessProbe" not in hs and "readinessProbe" in hs


@pytest.mark.parametrize("chart,values,sets", RENDER_CASES, ids=[ci_id(v) for v in CI_VALUES] + ["example", "example-classic"])
def test_no_subpath_anywhere(chart, values, sets):
    docs = render(values, sets, chart=chart)
    hits = [(d["kind"], path) for d in docs for path, key, _ in walk(d) if key == "subPath"]
    assert hits == []


def test_hardened_security_context(default_docs):
    hs = sidecar(default_docs)
    sc = hs["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["runAsUser"] == 65532
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["privileged"] is False
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    spec = pod_spec(default_docs)
    assert spec["automountServiceAccountToken"] is False
    assert spec["securityContext"]["runAsNonRoot"] is True
    app = next(c for c in spec["containers"] if c["name"] == "app")
    assert app["securityContext"]["allowPrivilegeEscalation"] is False
    assert app["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert one(default_docs, "ServiceAccount")["automountServiceAccountToken"] is False


def test_app_gets_prestop_sleep_and_loopback_upstream(full_docs):
    spec = pod_spec(full_docs)
    app = next(c for c in spec["containers"] if c["name"] == "app")
    assert app["lifecycle"]["preStop"] == {"sleep": {"seconds": 10}}
    assert app["ports"] == [{"name": "app", "containerPort": 3000, "protocol": "TCP"}]
    cfg, _, _ = config(full_docs)
    assert cfg["upstream"]["url"] == "http://127.0.0.1:3000"


def test_chart_owns_upstream_url(tmp_path):
    docs = render([CHART / "ci" / "default-values.yaml"], ["proxy.upstream.url=http://elsewhere:1", "app.port=9000"])
    cfg, _, _ = config(docs)
    assert cfg["upstream"]["url"] == "http://127.0.0.1:9000"


def test_app_port_clashing_with_proxy_is_refused():
    proc = render([CHART / "ci" / "default-values.yaml"], ["app.port=8443"], check=False)
    assert proc.returncode != 0 and "app.port must differ" in proc.stderr


# --- Service, NetworkPolicy, PDB -------------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)
def test_service_targets_proxy_only(values):
    docs = render([values])
    app_port = (load_ci(values).get("app") or {}).get("port", 8080)
    main = one(docs, "Service", "rel-hookseal")
    assert [(p["port"], p["targetPort"]) for p in main["spec"]["ports"]] == [(443, HOOKSEAL_PORT)]
    for svc in (d for d in docs if d["kind"] == "Service"):
        targets = {p["targetPort"] for p in svc["spec"]["ports"]}
        assert app_port not in targets and "app" not in targets
        assert all(isinstance(t, int) for t in targets), "numeric targetPort (native-sidecar named ports)"


def test_metrics_service_only_with_servicemonitor(default_docs):
    assert [d["metadata"]["name"] for d in default_docs if d["kind"] == "Service"] == ["rel-hookseal"]
    assert not {"PodMonitor", "ServiceMonitor"} & set(kinds(default_docs))


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)
def test_networkpolicy_never_opens_app_port(values):
    docs = render([values])
    app_port = (load_ci(values).get("app") or {}).get("port", 8080)
    np = one(docs, "NetworkPolicy")
    assert np["spec"]["policyTypes"] == ["Ingress"]
    assert np["spec"]["podSelector"]["matchLabels"] == one(docs, "Deployment")["spec"]["selector"]["matchLabels"]
    ports = [p["port"] for rule in np["spec"]["ingress"] for p in rule.get("ports", [])]
    assert app_port not in ports and "app" not in ports
    assert HOOKSEAL_PORT in ports and ADMIN_PORT in ports
    for rule in np["spec"]["ingress"]:
        assert rule.get("ports"), "a rule without ports would open every port, the app's too"


def test_networkpolicy_admin_restricted_by_default(default_docs):
    np = one(default_docs, "NetworkPolicy")
    admin_rule = next(r for r in np["spec"]["ingress"] if r["ports"][0]["port"] == ADMIN_PORT)
    assert admin_rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]


def test_pdb_only_with_more_than_one_replica(default_docs, classic_docs, full_docs):
    pdb = one(default_docs, "PodDisruptionBudget")
    assert pdb["spec"]["maxUnavailable"] == 1 and "minAvailable" not in pdb["spec"]
    assert "PodDisruptionBudget" not in kinds(classic_docs)  # replicaCount: 1
    assert one(full_docs, "PodDisruptionBudget")["spec"]["minAvailable"] == 2


# --- config TOML -----------------------------------------------------------------------------


def test_config_chart_owned_keys(full_docs):
    cfg, _, cm = config(full_docs)
    assert cfg["listen"]["address"] == f"0.0.0.0:{HOOKSEAL_PORT}"
    assert cfg["admin"]["address"] == f"0.0.0.0:{ADMIN_PORT}"
    assert cfg["listen"]["tls"] == {
        "cert": "/etc/hookseal/tls/tls.crt",
        "key": "/etc/hookseal/tls/tls.key",
        "client_ca": "/etc/hookseal/tls/ca.crt",
    }
    spec = pod_spec(full_docs)
    vols = {v["name"]: v for v in spec["volumes"]}
    assert vols["hookseal-config"]["configMap"]["name"] == cm["metadata"]["name"]
    assert vols["hookseal-tls"]["secret"]["secretName"] == "orders-tls"
    mounts = {m["name"]: m["mountPath"] for m in sidecar(full_docs)["volumeMounts"]}
    assert mounts["hookseal-tls"] == "/etc/hookseal/tls"
    # Every secret file in the config is a file the projected volume puts there.
    projected = {
        f"{mounts['hookseal-secrets']}/{item['path']}"
        for src in vols["hookseal-secrets"]["projected"]["sources"]
        for item in src["secret"]["items"]
    }
    files = {s["file"] for r in cfg["route"] for s in r.get("secrets", []) if "file" in s}
    assert files == projected
    assert len(projected) == 4


def test_config_values_and_types(full_docs):
    cfg, _, _ = config(full_docs)
    lim = cfg["limits"]
    assert lim == {
        "max_body_bytes": "2MiB",
        "header_timeout": "10s",
        "body_timeout": "15s",
        "max_connections": 1024,
        "shutdown_grace": "20s",
        "drain_delay": "5s",
        "idle_timeout": "60s",
        "max_headers": 100,
        "max_header_bytes": "64KiB",
        "max_concurrent_streams": 64,
        "write_timeout": "30s",
        "max_buffered_bytes": "64MiB",
    }
    assert cfg["replay"] == {
        "store": "redis",
        "url": "redis://redis.payments.svc:6379/0",
        "capacity": 100000,
        "on_store_error": "allow",
        "command_timeout": "250ms",
    }
    routes = {r["name"]: r for r in cfg["route"]}
    assert list(routes) == ["stripe", "supaglue", "slack", "synchub", "app"]
    assert routes["stripe"]["secrets"] == [
        {"id": "current", "file": "/etc/hookseal/secrets/stripe-webhook/current"},
        {"id": "previous", "file": "/etc/hookseal/secrets/stripe-webhook/previous"},
    ]
    assert routes["supaglue"]["max_body_bytes"] == 262144 and routes["supaglue"]["dedupe"] is True
    assert routes["slack"]["secrets"] == [{"env": "SLACK_SIGNING_SECRET"}] and routes["slack"]["mode"] == "observe"
    assert routes["synchub"]["hmac"] == {
        "header": "X-Synchub-Signature",
        "algorithm": "sha256",
        "encoding": "hex",
        "prefix": "sha256=",
        "timestamp_header": "X-Synchub-Timestamp",
        "id_header": "X-Synchub-Delivery",
        "signed_payload": "{timestamp}.{body}",
    }
    assert routes["synchub"]["methods"] == ["POST", "PUT"]
    assert routes["app"] == {"name": "app", "path_prefix": "/", "methods": ["GET", "POST", "PUT", "DELETE"], "scheme": "none"}


@pytest.mark.parametrize(
    "sets,expected",
    [
        ([], "64MiB"),  # half of the default 128Mi memory limit
        (["proxy.resources.limits.memory=512Mi"], "256MiB"),
        (["proxy.resources.limits.memory=1Gi"], "512MiB"),
        (["proxy.resources.limits.memory=200M"], "95MiB"),
        (["proxy.resources.limits=null"], "64MiB"),
        (["proxy.limits.maxBufferedBytes=16MiB"], "16MiB"),
        (["proxy.limits.maxBufferedBytes=33554432"], 33554432),
    ],
)
def test_max_buffered_bytes_fits_the_memory_limit(sets, expected):
    cfg, _, _ = config(render([CHART / "ci" / "default-values.yaml"], sets))
    assert cfg["limits"]["max_buffered_bytes"] == expected


def test_max_buffered_bytes_needs_a_memory_limit_it_can_read():
    proc = render([CHART / "ci" / "default-values.yaml"], ["proxy.resources.limits.memory=1.5Gi"], check=False)
    assert proc.returncode != 0 and "set proxy.limits.maxBufferedBytes" in proc.stderr, proc.stderr


def test_config_without_tls_has_no_tls_key(classic_docs):
    cfg, _, _ = config(classic_docs)
    assert "tls" not in cfg["listen"]
    assert "hookseal-tls" not in {v["name"] for v in pod_spec(classic_docs)["volumes"]}
    assert one(classic_docs, "Service")["spec"]["ports"][0]["appProtocol"] == "http"


def test_config_strings_are_escaped(tmp_path):
    weird = 'we"ird\\path\t<&>'
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"]["routes"].append(
        {"name": "odd", "path": "/odd", "scheme": "hmac", "secrets": [{"env": "ODD"}],
         "hmac": {"header": "X-Odd", "prefix": weird, "signedPayload": "{id}\n{body}"}}
    )
    cfg, _, _ = config(render([values_file(tmp_path, data)]))
    odd = cfg["route"][-1]
    assert odd["hmac"]["prefix"] == weird
    assert odd["hmac"]["signed_payload"] == "{id}\n{body}"


def test_checksum_follows_config():
    base = [CHART / "ci" / "default-values.yaml"]

    def checksum(sets):
        return one(render(base, sets), "Deployment")["spec"]["template"]["metadata"]["annotations"]["checksum/hookseal-config"]

    a = checksum([])
    assert re.fullmatch(r"[0-9a-f]{64}", a)
    assert checksum([]) == a
    assert checksum(["proxy.limits.bodyTimeout=20s"]) != a
    assert checksum(["replicaCount=5"]) == a


def test_existing_configmap_replaces_rendered_config():
    docs = render([CHART / "ci" / "default-values.yaml"], ["proxy.existingConfigMap=my-config"])
    assert not [d for d in docs if d["kind"] == "ConfigMap"]
    spec = pod_spec(docs)
    vol = next(v for v in spec["volumes"] if v["name"] == "hookseal-config")
    assert vol["configMap"]["name"] == "my-config"
    assert "checksum/hookseal-config" not in (one(docs, "Deployment")["spec"]["template"]["metadata"].get("annotations") or {})


# --- termination timing ----------------------------------------------------------------------


@pytest.mark.parametrize("values", CI_VALUES, ids=ci_id)
def test_grace_period_covers_drain(values):
    docs = render([values])
    cfg, _, _ = config(docs)

    def secs(d):
        n, unit = re.fullmatch(r"(\d+)(ms|s|m|h)", d).groups()
        return int(n) * {"ms": 0.001, "s": 1, "m": 60, "h": 3600}[unit]

    need = secs(cfg["limits"]["drain_delay"]) + secs(cfg["limits"]["shutdown_grace"])
    spec = pod_spec(docs)
    app = next(c for c in spec["containers"] if c["name"] == "app")
    prestop = app.get("lifecycle", {}).get("preStop", {}).get("sleep", {}).get("seconds", 0)
    assert spec["terminationGracePeriodSeconds"] > need + prestop


def test_grace_period_too_small_is_refused():
    proc = render([CHART / "ci" / "default-values.yaml"], ["terminationGracePeriodSeconds=30"], check=False)
    assert proc.returncode != 0 and "must exceed" in proc.stderr
    docs = render([CHART / "ci" / "default-values.yaml"], ["terminationGracePeriodSeconds=31"])
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 31


def test_duration_parsing_in_grace_period():
    docs = render([CHART / "ci" / "default-values.yaml"],
                  ["proxy.limits.drainDelay=1500ms", "proxy.limits.shutdownGrace=2m", "app.preStopSleepSeconds=0"])
    assert pod_spec(docs)["terminationGracePeriodSeconds"] == 2 + 120 + 5


# --- values validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "sets,needle",
    [
        (["proxy.nativeSideCar=true"], "nativeSideCar"),
        (["replicaCuont=2"], "replicaCuont"),
        (["proxy.limits.drainDelay=5"], "drainDelay"),
        (["proxy.limits.drainDelay=5 seconds"], "drainDelay"),
        (["service.type=Ingress"], "type"),
        (["proxy.image.digest=latest"], "digest"),
        (["proxy.routes[0].mode=audit"], "mode"),
        (["proxy.routes[0].scheme=gihtub"], "scheme"),
        (["proxy.routes[0].secrets[0].value=hunter2"], "value"),
        (["proxy.routes[0].secrets[0].env=GH"], "secrets"),
        (["metrics.podMonitor.interval=30"], "interval"),
    ],
)
def test_schema_rejects(sets, needle):
    proc = render([CHART / "ci" / "default-values.yaml"], sets, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr or "oneOf" in proc.stderr or "allOf" in proc.stderr, proc.stderr


@pytest.mark.parametrize(
    "sets,message",
    [
        (["proxy.tls.existingSecret="], "proxy.tls.existingSecret is required"),
        (["app.image.repository="], "app.image.repository is required"),
        (["proxy.routes=null"], "proxy.routes is empty"),
        (["proxy.replay.store=redis"], "proxy.replay.url (or urlSecret) is required"),
        (["proxy.replay.store=redis", "proxy.replay.url=redis://r:6379/0", "proxy.replay.urlSecret.name=redis"],
         "set url or urlSecret, not both"),
    ],
)
def test_required_values_have_clear_messages(sets, message):
    proc = render([CHART / "ci" / "default-values.yaml"], sets, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_no_secret_values_in_defaults():
    text = (CHART / "values.yaml").read_text() + (LIB / "values.yaml").read_text()
    rendered = yaml.safe_load((LIB / "values.yaml").read_text())
    assert rendered["routes"] == [] and rendered["tls"]["existingSecret"] == ""
    assert not re.search(r"^\s*value:\s*\S", text, re.M)


# --- helm test hook --------------------------------------------------------------------------


def hook_pod(docs):
    return next(d for d in docs if d["kind"] == "Pod" and d["metadata"].get("annotations", {}).get("helm.sh/hook") == "test")


@pytest.mark.parametrize(
    "values,url,header",
    [
        ("default", "https://rel-hookseal.shop.svc:443/webhooks/github", '-H "X-Hub-Signature-256: sha256=' + "0" * 64),
        ("full", "https://rel-hookseal.shop.svc:443/webhooks/stripe", '-H "Stripe-Signature: t=$now,v1=' + "0" * 64),
        ("classic-sidecar", "http://rel-hookseal.shop.svc:443/webhooks/shopify", '-H "X-Shopify-Hmac-Sha256: ' + "A" * 43 + '="'),
    ],
)
def test_helm_test_sends_unsigned_and_wrongly_signed(values, url, header):
    pod = hook_pod(render([CHART / "ci" / f"{values}-values.yaml"]))
    script = pod["spec"]["containers"][0]["args"][0]
    assert f"url='{url}'" in script
    assert 'check 400 "no signature"\n' in script
    wrong = next(line for line in script.splitlines() if line.strip().startswith("check 401"))
    assert header in wrong
    assert "exit $fails" in script
    assert pod["spec"]["restartPolicy"] == "Never"
    assert pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalation"] is False


def test_helm_test_skips_observe_and_unknown_schemes(tmp_path):
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"]["routes"] = [
        {"name": "watch", "path": "/w", "scheme": "github", "mode": "observe", "secrets": [{"env": "A"}]},
        {"name": "other", "path": "/o", "scheme": "none"},
    ]
    docs = render([values_file(tmp_path, data)])
    assert not [d for d in docs if d["kind"] == "Pod"]
    data["proxy"]["routes"].append(
        {"name": "b64", "pathPrefix": "/h/", "scheme": "hmac", "secrets": [{"env": "C"}],
         "hmac": {"header": "X-Sig", "algorithm": "sha1", "encoding": "base64", "timestampHeader": "X-Ts"}}
    )
    script = hook_pod(render([values_file(tmp_path, data)]))["spec"]["containers"][0]["args"][0]
    assert "/h/helm-test'" in script
    # 20 zero bytes in base64: 27 'A' and one '='.
    assert '-H "X-Sig: ' + "A" * 27 + '=" -H "X-Ts: $now"' in script


@pytest.mark.parametrize(
    "route,header",
    [
        ({"scheme": "twilio", "publicUrl": "https://x.example/t"}, '-H "X-Twilio-Signature: ' + "A" * 27 + '="'),
        ({"scheme": "square", "publicUrl": "https://x.example/t"}, '-H "x-square-hmacsha256-signature: ' + "A" * 43 + '="'),
        ({"scheme": "paddle"}, '-H "Paddle-Signature: ts=$now;h1=' + "0" * 64 + '"'),
        ({"scheme": "linear"}, '-H "Linear-Signature: ' + "0" * 64 + '"'),
        ({"scheme": "discord"}, '-H "X-Signature-Ed25519: ' + "0" * 128 + '" -H "X-Signature-Timestamp: $now"'),
        ({"scheme": "slack"}, '-H "X-Slack-Request-Timestamp: $now" -H "X-Slack-Signature: v0=' + "0" * 64 + '"'),
        ({"scheme": "svix"}, '-H "webhook-signature: v1,' + "A" * 43 + '="'),
    ],
)
def test_helm_test_fakes_a_wrong_signature_for_each_scheme(tmp_path, route, header):
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"]["routes"] = [{"name": "only", "path": "/t", "secrets": [{"env": "S"}], **route}]
    script = hook_pod(render([values_file(tmp_path, data)]))["spec"]["containers"][0]["args"][0]
    wrong = next(line for line in script.splitlines() if line.strip().startswith("check 401"))
    assert header in wrong, wrong


# --- example "existing" chart ----------------------------------------------------------------


def test_example_existing_chart_gets_the_same_sidecar(default_docs):
    docs = render(chart=EXAMPLE)
    spec = pod_spec(docs)
    assert [c["name"] for c in spec["initContainers"]] == ["hookseal"]
    assert [c["name"] for c in spec["containers"]] == ["orders"]
    cm = one(docs, "ConfigMap")
    vol = next(v for v in spec["volumes"] if v["name"] == "hookseal-config")
    assert vol["configMap"]["name"] == cm["metadata"]["name"]
    assert one(docs, "Service")["spec"]["ports"][0]["targetPort"] == HOOKSEAL_PORT
    assert spec["terminationGracePeriodSeconds"] == 35
    # Same container as the application chart's, apart from per-chart values.
    mine, theirs = copy.deepcopy(spec["initContainers"][0]), copy.deepcopy(sidecar(default_docs))
    assert mine.keys() == theirs.keys()
    assert mine["securityContext"] == theirs["securityContext"] and mine["ports"] == theirs["ports"]
    classic = pod_spec(render(sets=["proxy.nativeSidecar=false"], chart=EXAMPLE))
    assert "initContainers" not in classic
    assert [c["name"] for c in classic["containers"]] == ["hookseal", "orders"]


def test_library_schema_applies_to_the_example():
    proc = render(sets=["proxy.tls.mountpath=/x"], chart=EXAMPLE, check=False)
    assert proc.returncode != 0 and "mountpath" in proc.stderr


# --- the binary agrees with the chart ----------------------------------------------------------


def hookseal_bin():
    path = Path(os.environ.get("HOOKSEAL_BIN", ROOT / "target" / "debug" / "hookseal"))
    if not path.is_absolute():
        path = ROOT / path
    if not os.access(path, os.X_OK):
        msg = f"hookseal binary not found at {path} (build it with `cargo build`, or set HOOKSEAL_BIN)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("tls")
    openssl = shutil.which("openssl")
    assert openssl, "openssl is needed to make a test certificate"
    subprocess.run(
        [openssl, "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
         "-keyout", d / "tls.key", "-out", d / "tls.crt", "-days", "2", "-subj", "/CN=hookseal.test",
         "-addext", "subjectAltName=DNS:hookseal.test"],
        check=True, capture_output=True,
    )
    shutil.copy(d / "tls.crt", d / "ca.crt")
    return d


# RFC 7517 appendix A.1's P-256 public key, as a JWKS.
CHART_TEST_JWKS = ('{"keys":[{"kty":"EC","crv":"P-256","kid":"1","use":"sig",'
                   '"x":"MKBCTNIcKUSDii11ySs3526iDZ8AiTo7Tu6KPAqv7D4",'
                   '"y":"4Etl6SRW2YilurN5ZQsSq9D5-kqQ6rBV2ZfTK0Njvgs"}]}')


def secret_for(scheme):
    if scheme in ("standard-webhooks", "svix", "clerk", "resend", "brex", "replicate"):
        return "whsec_" + base64.b64encode(b"chart-test-secret-0123456789abcd").decode()
    if scheme == "discord":
        # an Ed25519 public key (RFC 8032 test 1), as Discord's portal shows it: 64 hex
        return "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a"
    if scheme == "contentful":
        return "chart-test-contentful-signing-secret-0123456789abcdef01234567890"
    if scheme == "postmark":
        return "hooks:chart-test-secret"
    if scheme == "sendgrid":
        # a P-256 public key as SendGrid shows it (base64 SubjectPublicKeyInfo DER)
        return "MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEvhqbMnyotWjn1tkySRSDdu8AwzedPmLPAGXRojof6B6wpFglaVStA8o2kwWgavW7aiPvrb4L41rCEueLje6HYw=="
    if scheme == "microsoft-teams":
        # Teams shows a base64 security token
        return base64.b64encode(b"chart-test-secret").decode()
    return "chart-test-secret"


def schema_schemes():
    schema = yaml.safe_load((LIB / "values.schema.json").read_text())
    return schema["properties"]["routes"]["items"]["properties"]["scheme"]["enum"]


def test_scheme_enum_matches_the_binary():
    """The values schema lists exactly the scheme names `hookseal` accepts (its error message for
    an unknown scheme lists them all)."""
    proc = subprocess.run([hookseal_bin(), "sign", "--scheme", "no-such-scheme", "--secret", "x"],
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode != 0
    m = re.search(r"possible values: ([^\]]*)\]", proc.stderr)
    assert m, proc.stderr
    binary = sorted(n.strip() for n in m.group(1).split(","))
    assert sorted(schema_schemes()) == binary


def every_scheme_values(tmp_path):
    """default-values.yaml with one route per scheme in the schema, each as a user would write
    it (public URL for the URL-signing schemes, [route.hmac] for hmac)."""
    data = load_ci(CHART / "ci" / "default-values.yaml")
    routes = []
    for i, scheme in enumerate(schema_schemes()):
        r = {"name": f"r-{scheme}", "path": f"/hooks/{scheme}", "scheme": scheme}
        if scheme not in ("none", "sns", "jwt", "google-pubsub", "plaid", "msgraph"):
            r["secrets"] = [{"secretName": f"{scheme}-webhook", "key": "secret"}, {"id": "previous", "env": f"S_{i}"}]
        if scheme == "sns":
            r["topics"] = ["arn:aws:sns:eu-west-1:123456789012:orders"]
        if scheme == "meta":
            r["verifyToken"] = {"secretName": "meta-verify", "key": "token"}
        if scheme == "msgraph":
            r["clientState"] = {"env": f"CS_{i}"}
        if scheme in ("jwt", "google-pubsub", "plaid"):
            r["jwt"] = {"keys": {"secretName": f"{scheme}-jwks", "key": "jwks"}}
        if scheme == "jwt":
            r["jwt"]["audiences"] = ["https://hooks.example.com/hooks/jwt"]
        if scheme == "google-pubsub":
            r["publicUrl"] = "https://hooks.example.com/hooks/google-pubsub"
            r["jwt"]["claims"] = {"email": ["push@example.iam.gserviceaccount.com"]}
        if scheme in ("twilio", "square", "hubspot", "plivo", "mandrill"):
            r["publicUrl"] = f"https://hooks.example.com/hooks/{scheme}"
        if scheme == "hmac":
            r["hmac"] = {"header": "X-Sig", "algorithm": "sha512", "encoding": "base64", "prefix": "v1=",
                         "timestampHeader": "X-Ts", "idHeader": "X-Id", "signedPayload": "{id}.{timestamp}.{body}"}
        routes.append(r)
    data["proxy"]["routes"] = routes
    # ...and a Redis replay store whose URL (with its password) comes from a Secret.
    data["proxy"]["replay"] = {"store": "redis", "urlSecret": {"name": "redis-auth", "key": "url"}}
    return values_file(tmp_path, data, "every-scheme.yaml")


def test_replay_url_from_a_secret_never_reaches_the_configmap(tmp_path):
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"]["replay"] = {"store": "redis", "urlSecret": {"name": "redis-auth", "key": "url"}}
    docs = render([values_file(tmp_path, data)])
    cfg, text, _ = config(docs)
    assert cfg["replay"]["url"] == {"file": "/etc/hookseal/secrets/redis-auth/url"}
    spec = pod_spec(docs)
    projected = next(v for v in spec["volumes"] if v["name"] == "hookseal-secrets")["projected"]
    assert {"secret": {"name": "redis-auth", "items": [{"key": "url", "path": "redis-auth/url"}]}} in projected["sources"]
    assert "redis://" not in text



def queued_values(tmp_path, queue=None):
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"]["routes"][0]["delivery"] = {"mode": "queued", "rate": 20}
    if queue is not None:
        data["proxy"]["queue"] = queue
    return render([values_file(tmp_path, data)])


def test_a_queued_route_gets_a_spool_volume_emptydir_by_default(tmp_path):
    docs = queued_values(tmp_path)
    cfg, _, _ = config(docs)
    assert cfg["queue"]["store"] == "disk" and cfg["queue"]["path"] == "/var/lib/hookseal/spool"
    assert cfg["route"][0]["delivery"] == {"mode": "queued", "rate": 20}
    spec = pod_spec(docs)
    vol = next(v for v in spec["volumes"] if v["name"] == "hookseal-spool")
    assert vol == {"name": "hookseal-spool", "emptyDir": {"sizeLimit": "2Gi"}}
    sidecar = next(c for c in spec["initContainers"] + spec["containers"] if any(
        m["name"] == "hookseal-spool" for m in c.get("volumeMounts", [])))
    mount = next(m for m in sidecar["volumeMounts"] if m["name"] == "hookseal-spool")
    assert mount["mountPath"] == "/var/lib/hookseal/spool" and not mount.get("readOnly")


def test_the_spool_can_be_a_persistent_volume_claim_at_its_own_path(tmp_path):
    docs = queued_values(tmp_path, {"persistentVolumeClaim": "orders-spool", "path": "/spool"})
    cfg, _, _ = config(docs)
    assert cfg["queue"]["path"] == "/spool"
    spec = pod_spec(docs)
    vol = next(v for v in spec["volumes"] if v["name"] == "hookseal-spool")
    assert vol["persistentVolumeClaim"] == {"claimName": "orders-spool"}


def test_no_queued_route_no_queue_section_and_no_spool_volume(tmp_path):
    docs = render([CHART / "ci" / "default-values.yaml"])
    cfg, _, _ = config(docs)
    assert "queue" not in cfg
    assert all(v["name"] != "hookseal-spool" for v in pod_spec(docs)["volumes"])


def test_a_redis_spool_mounts_no_volume_and_reads_its_url_from_a_secret(tmp_path):
    docs = queued_values(tmp_path, {"store": "redis", "urlSecret": {"name": "q-auth", "key": "url"}})
    cfg, text, _ = config(docs)
    assert cfg["queue"]["url"] == {"file": "/etc/hookseal/secrets/q-auth/url"}
    spec = pod_spec(docs)
    assert all(v["name"] != "hookseal-spool" for v in spec["volumes"])
    projected = next(v for v in spec["volumes"] if v["name"] == "hookseal-secrets")["projected"]
    assert {"secret": {"name": "q-auth", "items": [{"key": "url", "path": "q-auth/url"}]}} in projected["sources"]


CHECK_CASES = [(CHART, [v], []) for v in CI_VALUES] + [(EXAMPLE, [], []), (CHART, "every-scheme", [])]


@pytest.mark.parametrize("chart,values,sets", CHECK_CASES,
                         ids=[ci_id(v) for v in CI_VALUES] + ["example", "every-scheme"])
def test_hookseal_check_accepts_rendered_config(chart, values, sets, tmp_path, tls_files):
    """The chart's configs pass `hookseal check` (see hookseal_check)."""
    if values == "every-scheme":
        values = [every_scheme_values(tmp_path)]
    cfg, text, _ = config(render(values, sets, chart=chart))
    hookseal_check(cfg, text, tmp_path, tls_files)


def hookseal_check(cfg, text, tmp_path, tls_files):
    """Runs `hookseal check` on a rendered config; returns its stdout. Every file path in the
    config is moved under a temp root where this puts a real file (certificates from openssl,
    secrets per scheme); env secrets go in the env."""
    binary = hookseal_bin()
    root = tmp_path / "root"
    env = dict(os.environ)
    paths = {}
    for key in ("cert", "key", "client_ca"):
        if key in cfg["listen"].get("tls", {}):
            p = cfg["listen"]["tls"][key]
            paths[p] = (tls_files / Path(p).name).read_bytes()
    url = cfg["replay"].get("url")
    if isinstance(url, dict) and "file" in url:
        paths[url["file"]] = b"redis://:chart-test-password@127.0.0.1:6379/0\n"
    qurl = cfg.get("queue", {}).get("url")
    if isinstance(qurl, dict) and "file" in qurl:
        paths[qurl["file"]] = b"redis://:chart-test-password@127.0.0.1:6379/1\n"
    for route in cfg["route"]:
        for s in route.get("secrets", []):
            if "file" in s:
                paths[s["file"]] = (secret_for(route["scheme"]) + "\n").encode()
            if "env" in s:
                env[s["env"]] = secret_for(route["scheme"])
        # The engines' and handshakes' own sources: tokens, a JWKS, roots.
        jwt_keys = route.get("jwt", {}).get("keys", {})
        for src, content in [(route.get("verify_token", {}), "chart-test-token"),
                             (route.get("client_state", {}), "chart-test-token"),
                             (jwt_keys, CHART_TEST_JWKS)]:
            if "file" in src:
                paths[src["file"]] = (content + "\n").encode()
            if "env" in src:
                env[src["env"]] = content
        if "ca_file" in route:
            paths[route["ca_file"]] = (tls_files / "ca.crt").read_bytes()
    for p, content in paths.items():
        dest = root / p.lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.write_bytes(content)
        text = text.replace(f'"{p}"', f'"{dest}"')
    conf = tmp_path / "hookseal.toml"
    conf.write_text(text)
    proc = subprocess.run([binary, "check", "--config", conf], capture_output=True, text=True, env=env, timeout=30)
    assert proc.returncode == 0, f"hookseal check rejected the chart's config:\n{proc.stdout}{proc.stderr}\n{text}"
    for route in cfg["route"]:
        assert route["name"] in proc.stdout
    for content in paths.values():
        assert content.strip().decode(errors="ignore") not in proc.stdout + proc.stderr or b"BEGIN" in content
    return proc.stdout


def test_hookseal_check_rejects_a_broken_config(tmp_path):
    """Guards the test above: the binary really reads the file (an unknown key is an error)."""
    binary = hookseal_bin()
    _, text, _ = config(render([CHART / "ci" / "classic-sidecar-values.yaml"]))
    conf = tmp_path / "hookseal.toml"
    conf.write_text(text.replace("[limits]\n", "[limits]\nmax_bodybytes = 1\n"))
    proc = subprocess.run([binary, "check", "--config", conf], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 1
    assert re.search(r"hookseal\.toml:\d+", proc.stdout + proc.stderr), proc.stdout + proc.stderr
