"""The PrometheusRule, through Prometheus's own promtool (Debian's prometheus package, unpacked
into .tools/ by helm/ci/install-tools.sh; missing is a failure when CI is set, a skip otherwise):

  - `promtool check rules` on the rendered rules (full: annotations and their templates too);
  - `promtool test rules` with promtool/alerts.test.yaml: each alert fires when it should,
    stays quiet on forged or harmless traffic, and the reload alert does not clear itself;
  - every alert is needed by those tests: with any one alert turned off they fail.
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from test_chart import CHART, ROOT, dependencies, one, render  # noqa: F401

DEFAULT = CHART / "ci" / "default-values.yaml"
TESTS = Path(__file__).resolve().parent / "promtool" / "alerts.test.yaml"
ALERT_KEYS = ["rejectionRatio", "upstream5xx", "upstreamUnavailable", "replayStoreErrors", "reloadFailures",
              "timestampSkew", "certificateExpiry"]


def promtool():
    path = Path(os.environ.get("PROMTOOL", ROOT / ".tools" / "bin" / "promtool"))
    if not os.access(path, os.X_OK):
        msg = f"promtool not found at {path} (run helm/ci/install-tools.sh, or set PROMTOOL)"
        if os.environ.get("CI"):
            pytest.fail(msg)
        pytest.skip(msg)
    return path


def rule_groups(sets=()):
    docs = render([DEFAULT], ["prometheusRule.enabled=true", *sets])
    return one(docs, "PrometheusRule")["spec"]["groups"]


def write_rules(directory, groups, annotations=True):
    if not annotations:
        groups = [{**g, "rules": [{k: v for k, v in r.items() if k != "annotations"} for r in g["rules"]]}
                  for g in groups]
    (directory / "rules.yaml").write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    shutil.copy(TESTS, directory / TESTS.name)


def run(*args, cwd):
    return subprocess.run([promtool(), *map(str, args)], capture_output=True, text=True, cwd=cwd, timeout=120)


def test_promtool_check_rules(tmp_path):
    write_rules(tmp_path, rule_groups())
    proc = run("check", "rules", "rules.yaml", cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS: 8 rules found" in proc.stdout, proc.stdout


def test_promtool_check_rules_catches_errors(tmp_path):
    """Guards the check above: a broken expression is refused."""
    groups = rule_groups()
    groups[0]["rules"][0]["expr"] = "sum by (route (rate(x[5m]))"
    write_rules(tmp_path, groups)
    assert run("check", "rules", "rules.yaml", cwd=tmp_path).returncode != 0


def test_promtool_test_rules(tmp_path):
    write_rules(tmp_path, rule_groups(), annotations=False)
    proc = run("test", "rules", TESTS.name, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_has_a_test_that_needs_it():
    names = {r["alert"] for g in rule_groups() for r in g["rules"]}
    text = TESTS.read_text()
    for name in names:
        assert f"alertname: {name}\n" in text, f"no promtool test for {name}"


@pytest.mark.parametrize("key", ALERT_KEYS)
def test_promtool_tests_fail_without_each_alert(key, tmp_path):
    write_rules(tmp_path, rule_groups([f"prometheusRule.alerts.{key}.enabled=false"]), annotations=False)
    proc = run("test", "rules", TESTS.name, cwd=tmp_path)
    assert proc.returncode != 0, f"the promtool tests pass without the {key} alert"


def test_old_reload_alert_would_clear_itself(tmp_path):
    """The reload case really checks "does not clear itself": the previous rule (an increase
    of reload errors over 15m) fails it."""
    groups = rule_groups()
    for r in groups[0]["rules"]:
        if r["alert"] == "HooksealConfigReloadFailed":
            r["expr"] = ('sum by (namespace, pod) (increase(hookseal_config_reloads_total'
                         '{namespace="shop",pod=~"rel-hookseal-.*",result="error"}[15m])) > 0')
    write_rules(tmp_path, groups, annotations=False)
    proc = run("test", "rules", TESTS.name, cwd=tmp_path)
    assert proc.returncode != 0
    assert "reload failure fires and does not clear itself" in proc.stdout + proc.stderr


def test_runbook_urls_point_at_readme_sections():
    readme = (ROOT / "README.md").read_text()
    anchors = {line.lstrip("#").strip().lower() for line in readme.splitlines() if line.startswith("#### Hookseal")}
    for g in rule_groups():
        for r in g["rules"]:
            url = r["annotations"]["runbook_url"]
            assert url.startswith("https://github.com/hookseal/hookseal/blob/main/README.md#"), url
            assert url.split("#", 1)[1] in anchors, f"README has no runbook section for {r['alert']}"
    base = "https://wiki.example.com/hookseal"
    for g in rule_groups([f"prometheusRule.runbookBaseUrl={base}/"]):
        for r in g["rules"]:
            assert r["annotations"]["runbook_url"] == f"{base}#{r['alert'].lower()}"
