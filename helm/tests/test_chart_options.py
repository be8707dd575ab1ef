"""The chart's optional objects and escape hatches: helm test behind any NetworkPolicy, Ingress,
HTTPRoute + BackendTLSPolicy, HPA, extraObjects, extra containers, cert-manager Certificate,
the required image, the chart README's values table, and the Secrets listed in the notes."""

import shutil
import subprocess
import sys
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from test_chart import (  # noqa: F401
    CHART, EXAMPLE, HELM_DIR, KUBE_VERSIONS, dependencies, helm, hook_pod, load_ci, one, pod_spec, render,
    sidecar, values_file,
)

DEFAULT = CHART / "ci" / "default-values.yaml"
FULL = CHART / "ci" / "full-values.yaml"
CLASSIC = CHART / "ci" / "classic-sidecar-values.yaml"
NAMESPACE_LABELS = {"kubernetes.io/metadata.name": "shop"}


# --- helm test behind the NetworkPolicy ------------------------------------------------------


def selects(selector, labels):
    """A LabelSelector (matchLabels only, as the chart and these tests use) against labels."""
    assert set(selector) <= {"matchLabels"}, selector
    return all(labels.get(k) == v for k, v in (selector.get("matchLabels") or {}).items())


def admitted(policy, pod_labels, port):
    """Whether the NetworkPolicy admits a pod with these labels, in the policy's namespace, to
    the port."""
    for rule in policy["spec"].get("ingress") or []:
        ports = [p["port"] for p in rule.get("ports") or []]
        if ports and port not in ports:
            continue
        peers = rule.get("from")
        if not peers:
            return True
        for peer in peers:
            if "ipBlock" in peer:
                continue
            ns_ok = selects(peer["namespaceSelector"], NAMESPACE_LABELS) if "namespaceSelector" in peer else True
            pod_ok = selects(peer["podSelector"], pod_labels) if "podSelector" in peer else True
            if ns_ok and pod_ok:
                return True
    return False


NETPOL_CASES = {
    "default": [],
    "https-from-ingress-namespace": ["networkPolicy.httpsFrom[0].namespaceSelector.matchLabels.name=ingress"],
    "https-from-pods": ["networkPolicy.httpsFrom[0].podSelector.matchLabels.app=gateway"],
    "https-from-ipblock": ["networkPolicy.httpsFrom[0].ipBlock.cidr=10.1.0.0/16"],
    "disabled": ["networkPolicy.enabled=false"],
}


@pytest.mark.parametrize("sets", NETPOL_CASES.values(), ids=NETPOL_CASES.keys())
def test_helm_test_pod_is_admitted_whatever_the_network_policy(sets):
    docs = render([DEFAULT], sets)
    pod = hook_pod(docs)
    labels = pod["metadata"]["labels"]
    policies = [d for d in docs if d["kind"] == "NetworkPolicy"]
    for np in policies:
        if selects(np["spec"]["podSelector"], one(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]):
            assert admitted(np, labels, 8443), (sets, np["spec"]["ingress"])
    # ...and it is not itself one of the release's pods.
    selector = one(docs, "Deployment")["spec"]["selector"]
    assert not selects(selector, labels)
    assert not all(labels.get(k) == v for k, v in one(docs, "Service", "rel-hookseal")["spec"]["selector"].items())


def test_network_policy_evaluator_refuses_strangers():
    """Guards the test above: with httpsFrom set, another pod of the namespace is not admitted,
    and without the test hook the test labels are not either."""
    sets = NETPOL_CASES["https-from-pods"]
    np = one(render([DEFAULT], sets), "NetworkPolicy")
    assert not admitted(np, {"app": "other"}, 8443)
    assert admitted(np, {"app": "gateway"}, 8443)
    test_labels = {"app.kubernetes.io/name": "hookseal-test", "app.kubernetes.io/instance": "rel"}
    assert admitted(np, test_labels, 8443) and not admitted(np, test_labels, 8080)
    np = one(render([DEFAULT], sets + ["tests.enabled=false"]), "NetworkPolicy")
    assert not admitted(np, test_labels, 8443)


# --- Ingress and Gateway API -------------------------------------------------------------------


def test_ingress_and_httproute_are_opt_in():
    assert not {"Ingress", "HTTPRoute", "BackendTLSPolicy", "HorizontalPodAutoscaler", "Certificate"} & {
        d["kind"] for d in render([DEFAULT])}


def test_ingress_targets_the_service_with_an_https_backend():
    docs = render([FULL])
    ing = one(docs, "Ingress")
    svc = one(docs, "Service", "rel-hookseal")
    backends = [p["backend"]["service"] for r in ing["spec"]["rules"] for p in r["http"]["paths"]]
    assert backends == [{"name": "rel-hookseal", "port": {"number": svc["spec"]["ports"][0]["port"]}}] * 2
    ann = ing["metadata"]["annotations"]
    assert ann["nginx.ingress.kubernetes.io/backend-protocol"] == "HTTPS"
    assert ann["nginx.ingress.kubernetes.io/proxy-body-size"] == "2m"
    assert ing["spec"]["ingressClassName"] == "nginx"
    assert ing["spec"]["tls"] == [{"secretName": "hooks-example-com-tls", "hosts": ["hooks.example.com"]}]


def test_ingress_without_tls_in_the_pod_has_no_https_annotation():
    docs = render([CLASSIC], ["ingress.enabled=true", "ingress.hosts[0].host=hooks.example.com"])
    ing = one(docs, "Ingress")
    assert "annotations" not in ing["metadata"]
    assert ing["spec"]["rules"][0]["http"]["paths"][0]["path"] == "/"
    kubernetes_validate.validate(ing, KUBE_VERSIONS[0], strict=True)


def test_ingress_annotations_override_the_https_default():
    docs = render([DEFAULT], ["ingress.enabled=true", "ingress.hosts[0].host=h.example.com",
                              "ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/backend-protocol=GRPCS"])
    assert one(docs, "Ingress")["metadata"]["annotations"]["nginx.ingress.kubernetes.io/backend-protocol"] == "GRPCS"


def test_ingress_needs_a_host():
    proc = render([DEFAULT], ["ingress.enabled=true"], check=False)
    assert proc.returncode != 0 and "ingress.hosts" in proc.stderr


def test_httproute_and_backend_tls_policy():
    docs = render([FULL])
    route = one(docs, "HTTPRoute")
    assert route["apiVersion"] == "gateway.networking.k8s.io/v1"
    assert route["spec"]["parentRefs"] == [{"name": "public", "namespace": "gateway-system", "sectionName": "https"}]
    rule = route["spec"]["rules"][0]
    assert rule["backendRefs"] == [{"name": "rel-hookseal", "port": 443}]
    assert rule["matches"] == [{"path": {"type": "PathPrefix", "value": "/webhooks"}}]
    policy = one(docs, "BackendTLSPolicy")
    assert policy["spec"]["targetRefs"] == [{"group": "", "kind": "Service", "name": "rel-hookseal"}]
    assert policy["spec"]["validation"] == {
        "hostname": "hooks.example.com",
        "caCertificateRefs": [{"group": "", "kind": "ConfigMap", "name": "orders-ca"}],
    }


def test_httproute_defaults_and_required_values():
    sets = ["httpRoute.enabled=true", "httpRoute.parentRefs[0].name=public"]
    proc = render([DEFAULT], sets, check=False)
    assert proc.returncode != 0 and "httpRoute.backendTLS.hostname is required" in proc.stderr
    docs = render([DEFAULT], sets + ["httpRoute.backendTLS.hostname=hooks.example.com"])
    assert one(docs, "HTTPRoute")["spec"]["rules"][0]["matches"] == [{"path": {"type": "PathPrefix", "value": "/"}}]
    assert one(docs, "BackendTLSPolicy")["spec"]["validation"] == {
        "hostname": "hooks.example.com", "wellKnownCACertificates": "System"}
    # Plain HTTP to the pod: no BackendTLSPolicy.
    docs = render([CLASSIC], sets)
    assert "BackendTLSPolicy" not in {d["kind"] for d in docs} and one(docs, "HTTPRoute")
    proc = render([DEFAULT], ["httpRoute.enabled=true"], check=False)
    assert proc.returncode != 0 and "httpRoute.parentRefs is required" in proc.stderr


# --- HPA, extra containers and objects -------------------------------------------------------------


def test_hpa_owns_the_replica_count():
    docs = render([FULL])
    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "rel-hookseal"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (3, 6)
    assert [(m["resource"]["name"], m["resource"]["target"]["averageUtilization"]) for m in hpa["spec"]["metrics"]] == [
        ("cpu", 75), ("memory", 80)]
    assert "replicas" not in one(docs, "Deployment")["spec"]
    assert "replicas" in one(render([DEFAULT]), "Deployment")["spec"]


def test_pdb_follows_the_hpa_minimum():
    docs = render([CLASSIC], ["autoscaling.enabled=true", "autoscaling.minReplicas=2"])
    assert one(docs, "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    docs = render([DEFAULT], ["autoscaling.enabled=true", "autoscaling.minReplicas=1"])
    assert "PodDisruptionBudget" not in {d["kind"] for d in docs}


def test_hpa_needs_a_target():
    proc = render([DEFAULT], ["autoscaling.enabled=true", "autoscaling.targetCPUUtilizationPercentage=null"], check=False)
    assert proc.returncode != 0 and "autoscaling: set" in proc.stderr


def test_extra_containers_and_init_containers(tmp_path):
    spec = pod_spec(render([FULL]))
    assert [c["name"] for c in spec["initContainers"]] == ["migrate", "hookseal"]
    assert [c["name"] for c in spec["containers"]] == ["app", "log-shipper"]
    data = load_ci(CLASSIC)
    data["extraInitContainers"] = [{"name": "wait", "image": "busybox:1.36"}]
    data["extraContainers"] = [{"name": "shipper", "image": "busybox:1.36"}]
    spec = pod_spec(render([values_file(tmp_path, data, "classic-extra.yaml")]))
    assert [c["name"] for c in spec["initContainers"]] == ["wait"]
    assert [c["name"] for c in spec["containers"]] == ["hookseal", "app", "shipper"]


def test_extra_objects_go_through_tpl():
    docs = render([FULL])
    extra = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ConfigMap" and d["metadata"]["name"].startswith("rel-extra")}
    assert extra["rel-extra"]["data"] == {"release": "rel"}
    assert extra["rel-extra-string"]["data"] == {"namespace": "shop"}


# --- cert-manager --------------------------------------------------------------------------------


def test_cert_manager_certificate_names_the_mounted_secret():
    sets = ["proxy.tls.existingSecret=", "proxy.tls.certManager.enabled=true",
            "proxy.tls.certManager.issuerRef.name=letsencrypt", "proxy.tls.certManager.issuerRef.kind=ClusterIssuer",
            "proxy.tls.certManager.dnsNames[0]=hooks.example.com"]
    docs = render([DEFAULT], sets)
    cert = one(docs, "Certificate")
    assert cert["apiVersion"] == "cert-manager.io/v1"
    assert cert["spec"]["secretName"] == "rel-hookseal-tls"
    assert cert["spec"]["issuerRef"] == {"name": "letsencrypt", "kind": "ClusterIssuer", "group": "cert-manager.io"}
    assert cert["spec"]["dnsNames"] == ["hooks.example.com"]
    assert cert["spec"]["privateKey"] == {"rotationPolicy": "Always", "algorithm": "ECDSA", "size": 256}
    vol = next(v for v in pod_spec(docs)["volumes"] if v["name"] == "hookseal-tls")
    assert vol["secret"]["secretName"] == "rel-hookseal-tls"
    # The same from the library, in the example chart.
    ex = render(sets=[s for s in sets], chart=EXAMPLE)
    assert one(ex, "Certificate")["spec"]["secretName"] == "rel-hookseal-tls"
    assert next(v for v in pod_spec(ex)["volumes"] if v["name"] == "hookseal-tls")["secret"]["secretName"] == "rel-hookseal-tls"


@pytest.mark.parametrize("sets,message", [
    (["proxy.tls.certManager.enabled=true", "proxy.tls.certManager.dnsNames[0]=h.example.com"],
     "proxy.tls.certManager.issuerRef.name is required"),
    (["proxy.tls.certManager.enabled=true", "proxy.tls.certManager.issuerRef.name=ca"],
     "proxy.tls.certManager.dnsNames is required"),
    (["proxy.tls.existingSecret="], "certManager.enabled=true"),
])
def test_cert_manager_required_values(sets, message):
    proc = render([DEFAULT], sets, check=False)
    assert proc.returncode != 0 and message in proc.stderr, proc.stderr


def test_no_certificate_without_tls():
    docs = render([CLASSIC], ["proxy.tls.certManager.enabled=true"])
    assert "Certificate" not in {d["kind"] for d in docs}


# --- image -------------------------------------------------------------------------------------


def test_hookseal_image_is_required():
    proc = render([DEFAULT], ["proxy.image.repository="], check=False)
    assert proc.returncode != 0 and "proxy.image.repository is required" in proc.stderr
    assert "Dockerfile" in proc.stderr
    assert sidecar(render([DEFAULT]))["image"] == "registry.example.com/hookseal:0.1.0"


# --- chart README and notes -----------------------------------------------------------------------


def test_helm_show_readme_prints_the_values_table():
    out = helm("show", "readme", CHART).stdout
    assert "# hookseal Helm chart" in out and "docker build" in out
    proc = subprocess.run([sys.executable, HELM_DIR / "ci" / "values-table.py"], capture_output=True, text=True, check=True)
    assert proc.stdout in out, "helm/hookseal/README.md is out of date: run helm/ci/values-table.py --write"


def test_values_table_covers_every_value():
    table = subprocess.run([sys.executable, HELM_DIR / "ci" / "values-table.py"], capture_output=True, text=True,
                           check=True).stdout
    keys = {line.split("`")[1] for line in table.splitlines()[2:]}

    def leaves(node, prefix=""):
        for k, v in node.items():
            path = f"{prefix}{k}"
            yield path
            if isinstance(v, dict) and v:
                yield from leaves(v, path + ".")

    app = yaml.safe_load((CHART / "values.yaml").read_text())
    lib = yaml.safe_load((HELM_DIR / "hookseal-lib" / "values.yaml").read_text())
    app.pop("proxy")
    everything = set(leaves(app)) | {f"proxy.{k}" for k in leaves(lib)}
    for key in everything:
        covered = key in keys or any(key.startswith(k + ".") for k in keys) or any(k.startswith(key + ".") for k in keys)
        assert covered, f"{key} is not in the values table"
    for key in keys:
        assert key in everything, f"values table row {key} is not a value"


@pytest.fixture(scope="module")
def notes_chart(tmp_path_factory):
    """A copy of the chart with a template that holds the notes (helm template does not render
    NOTES.txt, and helm v3's install --dry-run needs a cluster)."""
    chart = tmp_path_factory.mktemp("notes") / "hookseal"
    shutil.copytree(CHART, chart, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    (chart / "Chart.yaml").write_text((chart / "Chart.yaml").read_text().replace(
        "file://../hookseal-lib", f"file://{HELM_DIR / 'hookseal-lib'}"))
    (chart / "templates" / "zz-notes.yaml").write_text(
        'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\ndata:\n  notes: {{ include "hookseal-app.notes" . | toJson }}\n')
    helm("dependency", "build", chart)
    return chart


def notes(chart, values, sets=()):
    """NOTES.txt as rendered (NOTES.txt is only an include of hookseal-app.notes)."""
    assert (CHART / "templates" / "NOTES.txt").read_text().strip() == '{{ include "hookseal-app.notes" . }}'
    docs = render(values, sets, chart=chart)
    return one(docs, "ConfigMap", "notes")["data"]["notes"]


def test_notes_list_every_secret_with_a_create_line(notes_chart):
    text = notes(notes_chart, [FULL])
    assert "orders-tls: kubernetes.io/tls, issued and renewed by cert-manager" in text
    assert ("kubectl -n shop create secret generic stripe-webhook --from-literal=current='...' "
            "--from-literal=previous='...'") in text
    assert "kubectl -n shop create secret generic supaglue --from-literal=signing-secret='...'" in text
    assert "kubectl -n shop create secret generic synchub --from-literal=key='...'" in text
    assert "$SLACK_SIGNING_SECRET (route slack)" in text
    text = notes(notes_chart, [DEFAULT])
    assert "kubectl -n shop create secret tls orders-tls --cert=server.crt --key=server.key" in text
    assert "kubectl -n shop create secret generic github-webhook --from-literal=secret='...'" in text
    text = notes(notes_chart, [DEFAULT], ["proxy.tls.clientCA=true", "proxy.replay.store=redis",
                             "proxy.replay.urlSecret.name=redis-auth"])
    assert "--from-file=ca.crt=client-ca.crt" in text
    assert "kubectl -n shop create secret generic redis-auth --from-literal=url='...'" in text
    text = notes(notes_chart, [CLASSIC])
    assert "kubernetes.io/tls" not in text
    assert "/var/run/extra/hooks-secret (route hooks)" in text
