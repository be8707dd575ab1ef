"""The chart's observability objects: the PrometheusRule and the Grafana dashboard ConfigMap.

Beyond their shape, three cross-checks tie them to the binary and to Prometheus:
  - every metric they query is one the real hookseal binary exports, with the right type
    (histogram suffixes only on histograms), and every label they group by exists;
  - every PromQL expression parses with Prometheus's own grammar (lezer-promql), and the
    PrometheusRule/PodMonitor/ServiceMonitor objects validate against the operator's CRD
    schemas (both through helm/tests/promcheck.mjs and the node modules install-tools.sh puts in
    .tools/node; missing is a failure when CI is set, a skip otherwise).
"""

import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest

from test_chart import CHART, ROOT, dependencies, hookseal_bin, one, render, tls_files  # noqa: F401

FULL = CHART / "ci" / "full-values.yaml"
DEFAULT = CHART / "ci" / "default-values.yaml"
DASHBOARD_FILE = CHART / "dashboards" / "hookseal.json"
NODE_MODULES = ROOT / ".tools" / "node" / "node_modules"
ALL_ALERTS = {
    "HooksealRejectionRatioHigh",
    "HooksealUpstream5xx",
    "HooksealUpstreamUnavailable",
    "HooksealReplayStoreErrors",
    "HooksealConfigReloadFailed",
    "HooksealTimestampSkewNearTolerance",
    "HooksealCertificateExpiresSoon",
    "HooksealCertificateExpiryCritical",
}
# Gauges the alerts use that the Rust side adds in the same issue (22) on another branch. Until
# that branch is merged the binary built from this one does not export them; the test below
# then accepts their absence but still checks their type when they are there. Empty this set
# once they are merged (nothing else may be missing).
# Labels hookseal puts on its series, plus what Prometheus adds when scraping a pod.
KNOWN_LABELS = {"route", "result", "reason", "scheme", "class", "key", "store", "version", "le",
                "namespace", "pod", "job", "instance"}


def rules(docs):
    return [r for g in one(docs, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]


def dashboard_cm(docs):
    found = [d for d in docs if d["kind"] == "ConfigMap" and "hookseal.json" in d.get("data", {})]
    assert len(found) == 1
    return found[0]


def dashboard_exprs(dash):
    out = []
    for p in dash["panels"]:
        for t in p.get("targets", []):
            out.append(t["expr"])
    return out


@pytest.fixture(scope="module")
def full_docs():
    return render([FULL])


@pytest.fixture(scope="module")
def all_alert_docs():
    return render([DEFAULT], ["prometheusRule.enabled=true", "grafanaDashboard.enabled=true"])


# --- shape ------------------------------------------------------------------------------------


def test_observability_objects_are_opt_in():
    docs = render([DEFAULT])
    assert "PrometheusRule" not in {d["kind"] for d in docs}
    assert not [d for d in docs if d["kind"] == "ConfigMap" and "hookseal.json" in d.get("data", {})]


def test_every_alert_by_default_scoped_to_the_release(all_alert_docs):
    rs = rules(all_alert_docs)
    assert {r["alert"] for r in rs} == ALL_ALERTS
    for r in rs:
        assert r["labels"]["severity"] in ("warning", "critical"), r
        assert r["annotations"]["summary"] and r["annotations"]["description"], r
        assert re.fullmatch(r"[0-9]+[smh]", r["for"]), r
        # Every selector of a hookseal metric is limited to this release's pods.
        for sel in re.findall(r"hookseal_[a-z_]+\{([^}]*)\}", r["expr"]):
            assert 'namespace="shop"' in sel and 'pod=~"rel-hookseal-.*"' in sel, (r["alert"], sel)
    by_name = {r["alert"]: r for r in rs}
    assert "hookseal_config_last_reload_successful" in by_name["HooksealConfigReloadFailed"]["expr"]
    assert by_name["HooksealConfigReloadFailed"]["expr"].endswith("== 0")
    assert 'class="5xx"' in by_name["HooksealUpstream5xx"]["expr"]
    skew = by_name["HooksealTimestampSkewNearTolerance"]["expr"]
    assert "0.8 * max by (namespace, route) (hookseal_timestamp_tolerance_seconds" in skew
    assert "histogram_quantile(0.99" in skew and "histogram_quantile(0.01" not in skew
    assert "< 14 * 86400" in by_name["HooksealCertificateExpiresSoon"]["expr"]
    assert "< 3 * 86400" in by_name["HooksealCertificateExpiryCritical"]["expr"]
    for r in rs:
        assert r["annotations"]["runbook_url"].endswith("#" + r["alert"].lower()), r
    assert ") > 0.05" in by_name["HooksealRejectionRatioHigh"]["expr"]


def test_alert_values_are_used(full_docs):
    pr = one(full_docs, "PrometheusRule")
    assert pr["metadata"]["namespace"] == "shop"
    assert pr["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    rs = rules(full_docs)
    names = [r["alert"] for r in rs]
    assert "HooksealUpstreamUnavailable" not in names, "disabled in full-values"
    assert names[-1] == "HooksealDown", "extraRules are appended"
    by_name = {r["alert"]: r for r in rs}
    assert ") > 0.1" in by_name["HooksealRejectionRatioHigh"]["expr"]
    # The annotations keep Prometheus's templates for Prometheus (not rendered by helm).
    assert "{{ $labels.route }}" in by_name["HooksealRejectionRatioHigh"]["annotations"]["summary"]


def test_selector_can_be_replaced():
    docs = render([DEFAULT], ["prometheusRule.enabled=true", 'prometheusRule.selector=job="hooks"'])
    for r in rules(docs):
        for sel in re.findall(r"hookseal_[a-z_]+\{([^}]*)\}", r["expr"]):
            assert sel.startswith('job="hooks"') and "namespace=" not in sel, sel


def test_dashboard_configmap(full_docs):
    cm = dashboard_cm(full_docs)
    assert cm["metadata"]["namespace"] == "monitoring"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["metadata"]["annotations"] == {"grafana_folder": "Webhooks"}
    dash = json.loads(cm["data"]["hookseal.json"])
    assert dash == json.loads(DASHBOARD_FILE.read_text()), "the ConfigMap carries the shipped file"
    assert dash["uid"] == "hookseal" and dash["title"] == "hookseal"
    variables = {v["name"]: v for v in dash["templating"]["list"]}
    assert set(variables) == {"datasource", "namespace", "route"}
    ids = [p["id"] for p in dash["panels"]]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for p in dash["panels"]:
        if p["type"] == "row":
            continue
        assert p["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, p["title"]
        assert p["targets"], p["title"]
        g = p["gridPos"]
        assert 0 <= g["x"] and g["x"] + g["w"] <= 24, p["title"]
    # What the issue asks the dashboard to show.
    exprs = " ".join(dashboard_exprs(dash))
    for needed in ["hookseal_signature_key_total", "hookseal_timestamp_skew_seconds_bucket",
                   "hookseal_timestamp_tolerance_seconds", 'result="rejected"', "hookseal_upstream_duration_seconds_bucket",
                   "hookseal_replay_store_errors_total", "hookseal_config_reloads_total"]:
        assert needed in exprs, needed


def test_dashboard_default_namespace_is_the_release_namespace(all_alert_docs):
    cm = dashboard_cm(all_alert_docs)
    assert cm["metadata"]["namespace"] == "shop"
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"


@pytest.mark.parametrize(
    "sets,needle",
    [
        (["prometheusRule.alerts.rejectionRatio.threshold=2"], "threshold"),
        (["prometheusRule.alerts.timestampSkew.window=30"], "window"),
        (["prometheusRule.alerts.replayStoreError.enabled=true"], "replayStoreError"),
        (["grafanaDashboard.label.x=y"], "label"),
    ],
)
def test_schema_rejects_observability_typos(sets, needle):
    proc = render([DEFAULT], sets, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr or "allOf" in proc.stderr or "oneOf" in proc.stderr, proc.stderr


# --- the binary exports what the rules and the dashboard query -------------------------------


@pytest.fixture(scope="module")
def exported(tmp_path_factory, tls_files):
    """name -> type, from the `# TYPE` lines of the real binary's /metrics (with TLS on, so the
    certificate gauges are there too)."""
    binary = hookseal_bin()
    d = tmp_path_factory.mktemp("metrics")
    conf = d / "hookseal.toml"
    conf.write_text(
        '[listen]\naddress = "127.0.0.1:0"\n'
        f'tls = {{ cert = "{tls_files / "tls.crt"}", key = "{tls_files / "tls.key"}" }}\n'
        '[admin]\naddress = "127.0.0.2:0"\n'
        '[upstream]\nurl = "http://127.0.0.1:9"\n'
        '[[route]]\nname = "gh"\npath = "/gh"\nscheme = "github"\nsecrets = [{ value = "x" }]\n'
    )
    proc = subprocess.Popen([binary, "run", "--config", conf], stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "HOOKSEAL_LOG": "info", "HOOKSEAL_LOG_FORMAT": "json"})
    try:
        admin = None
        deadline = time.time() + 60
        while admin is None and time.time() < deadline:
            line = proc.stderr.readline()
            if not line:
                break
            event = json.loads(line)
            if event.get("message") == "hookseal serving":
                admin = event["admin"]
        assert admin, "no 'hookseal serving' line"
        text = urllib.request.urlopen(f"http://{admin}/metrics", timeout=10).read().decode()
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.M))


def all_exprs(docs):
    return [r["expr"] for r in rules(docs)] + dashboard_exprs(json.loads(dashboard_cm(docs)["data"]["hookseal.json"]))


def test_queries_use_only_exported_metrics_and_labels(all_alert_docs, exported):
    assert "hookseal_requests_total" in exported and exported["hookseal_timestamp_skew_seconds"] == "histogram"
    used = set()
    for expr in all_exprs(all_alert_docs):
        for name in re.findall(r"\bhookseal_[a-z_]+", expr):
            used.add(name)
            base = re.sub(r"_(bucket|sum|count)$", "", name)
            if base != name and base in exported:
                assert exported[base] == "histogram", f"{name}: {base} is a {exported[base]}"
            else:
                assert name in exported, f"{name} in {expr!r} is not exported by the binary"
        for group in re.findall(r"\b(?:by|on)\s*\(([^)]*)\)", expr):
            for label in (x.strip() for x in group.split(",")):
                assert label in KNOWN_LABELS, f"label {label!r} in {expr!r}"
        for label in re.findall(r"[{,]\s*([a-z_]+)\s*(?:=~|!=|=)", expr):
            assert label in KNOWN_LABELS, f"label {label!r} in {expr!r}"
    # The SPEC families an operator needs are all looked at somewhere.
    for family in ["hookseal_requests_total", "hookseal_upstream_responses_total", "hookseal_signature_key_total",
                   "hookseal_replay_store_errors_total", "hookseal_config_reloads_total", "hookseal_build_info",
                   "hookseal_inflight_requests", "hookseal_connections", "hookseal_tls_handshake_errors_total"]:
        assert family in used, family


# --- PromQL grammar and CRD schemas ---------------------------------------------------------


def promcheck(objects, exprs):
    node = shutil.which("node")
    if not node or not NODE_MODULES.is_dir():
        msg = f"node or {NODE_MODULES} missing (run helm/ci/install-tools.sh)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    proc = subprocess.run(
        [node, Path(__file__).with_name("promcheck.mjs")],
        input=json.dumps({"objects": objects, "exprs": exprs}),
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "HOOKSEAL_NODE_MODULES": str(NODE_MODULES)},
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_promcheck_catches_errors():
    """Guards the checks below: a broken expression and a broken rule are reported."""
    out = promcheck(
        [{"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule", "metadata": {"name": "x"},
          "spec": {"groups": [{"name": "g", "rules": [{"alert": "A", "expr": "up", "for": 5}]}]}}],
        ["sum by (route (rate(x[5m]))", "rate(hookseal_requests_total[5m])"],
    )
    assert out["objects"][0]["error"] and "for" in out["objects"][0]["error"]
    assert out["exprs"][0]["errors"] and out["exprs"][1]["errors"] == []


@pytest.mark.parametrize("values,sets", [([FULL], []), ([DEFAULT], ["prometheusRule.enabled=true", "grafanaDashboard.enabled=true"])],
                         ids=["full", "default-all-alerts"])
def test_promql_parses_and_monitoring_objects_match_their_crds(values, sets):
    docs = render(values, sets)
    crs = [d for d in docs if d["apiVersion"].startswith("monitoring.coreos.com/")]
    assert "PrometheusRule" in {d["kind"] for d in crs}
    exprs = all_exprs(docs)
    out = promcheck(crs, exprs)
    bad_objects = [o for o in out["objects"] if o["error"]]
    assert bad_objects == []
    bad_exprs = [(e["expr"], e["errors"]) for e in out["exprs"] if e["errors"]]
    assert bad_exprs == []
    assert len(out["exprs"]) == len(exprs) > 20
