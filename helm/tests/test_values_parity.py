"""Every config key of hookseal can be set from the chart's values.

config_keys.txt (next to this file) lists every key of hookseal's config file. It is checked
against three sources, so that a key added anywhere shows up as a failure here until the chart
can set it:
  - the README's "Config reference" tables (what users read);
  - src/config/ and src/verify/: every key name passed to check_keys, and every scheme's own
    route keys (its `options` in the registry): what the binary accepts;
  - the config the chart renders from every-key-values.yaml, which must hold every key the
    list says values can set -- and which `hookseal check` must accept.
"""

import re
import tomllib
from pathlib import Path

import pytest
import yaml

from test_chart import (  # noqa: F401
    CHART, LIB, ROOT, config, dependencies, hookseal_check, render, tls_files, values_file,
)

HERE = Path(__file__).resolve().parent
KEYS_FILE = HERE / "config_keys.txt"
EVERY_KEY = HERE / "every-key-values.yaml"
README = ROOT / "README.md"
SOURCES = [*sorted((ROOT / "src" / "config").glob("*.rs")), *sorted((ROOT / "src" / "verify").rglob("*.rs"))]


def key_list():
    """{dotted key: owner}, owner "" (values), "chart" or "never: ..."."""
    out = {}
    for line in KEYS_FILE.read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        key, _, owner = line.partition(" ")
        assert key not in out, f"{key} twice in {KEYS_FILE.name}"
        out[key] = owner.strip()
    return out


def readme_config_rows():
    """{README key: text of its row} from the tables under "## Config reference"."""
    text = README.read_text()
    section = text.split("\n## Config reference", 1)[1].split("\n## ", 1)[0]
    rows = {}
    in_route = False
    for line in section.splitlines():
        if line.startswith("Each `[[route]]`"):
            in_route = True
        if not line.startswith("| `") and not line.startswith("| ["):
            continue
        first = line.split("|")[1]
        for name in re.findall(r"`\[?([a-z_.]+)\]?`", first):
            key = name if not in_route or name.startswith("route.") else f"route.{name}"
            rows[key] = line
    return rows


def flatten(node, prefix=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from flatten(v, f"{prefix}.{k}" if prefix else k)
    elif isinstance(node, list) and node and all(isinstance(x, dict) for x in node):
        for x in node:
            yield from flatten(x, prefix)
    else:
        yield prefix


def test_key_list_matches_the_readme():
    keys = key_list()
    rows = readme_config_rows()
    assert len(rows) > 30, "the README's config tables were not found"
    for key in keys:
        if key in rows:
            continue
        parent = key.rsplit(".", 1)[0]
        assert parent in rows, f"{key} ({KEYS_FILE.name}) is not in the README's config reference"
        leaf = key.rsplit(".", 1)[1]
        assert f"`{leaf}" in rows[parent] or f" {leaf} " in rows[parent] or f"{leaf} =" in rows[parent], (
            f"{key}: the README row of {parent} does not mention {leaf}")
    for key in rows:
        assert key in keys or any(k.startswith(key + ".") for k in keys), (
            f"README config key {key} is missing from {KEYS_FILE.name}")


def test_key_list_matches_what_the_binary_accepts():
    source = "".join(p.read_text() for p in SOURCES)
    calls = re.findall(r"check_keys\(\s*[^,]+,\s*&\[(.*?)\]", source, re.S)
    assert len(calls) >= 8, "check_keys calls not found in src/config/"
    # A scheme's own route keys (`hmac`, `public_url`, `topics`, ...) are its registry options.
    calls += re.findall(r"\boptions:\s*&\[(.*?)\]", source, re.S)
    accepted = {name for call in calls for name in re.findall(r'"([a-z_]+)"', call)}
    components = {part for key in key_list() for part in key.split(".")}
    missing = sorted(accepted - components)
    assert missing == [], f"src/config/ accepts keys that {KEYS_FILE.name} does not list: {missing}"


def every_key_renders(tmp_path):
    """The every-key values as they are (replay URL from a Secret), and with the URL inline."""
    first = render([EVERY_KEY])
    data = yaml.safe_load(EVERY_KEY.read_text())
    data["proxy"]["replay"].pop("urlSecret")
    data["proxy"]["replay"]["url"] = "redis://redis.shop.svc:6379/0"
    data["proxy"]["queue"].pop("urlSecret")
    data["proxy"]["queue"]["url"] = "redis://redis.shop.svc:6379/1"
    second = render([values_file(tmp_path, data, "inline-url.yaml")])
    return [config(first), config(second)]


def test_every_settable_key_is_rendered(tmp_path):
    keys = key_list()
    rendered = set()
    for cfg, _, _ in every_key_renders(tmp_path):
        rendered |= set(flatten(cfg))
    settable = {k for k, owner in keys.items() if not owner.startswith("never")}
    assert sorted(settable - rendered) == [], "keys that every-key-values.yaml does not reach"
    assert sorted(rendered - set(keys)) == [], f"rendered keys missing from {KEYS_FILE.name}"
    never = {k for k, owner in keys.items() if owner.startswith("never")}
    assert rendered & never == set()


def test_every_key_values_differ_from_the_defaults(tmp_path):
    """A value equal to hookseal's default would not show that the key reaches the binary."""
    cfg, _, _ = config(render([EVERY_KEY]))
    assert cfg["listen"]["trusted_proxies"] == ["10.0.0.0/8", "fd00::/8"]
    assert cfg["limits"] == {
        "max_body_bytes": "512KiB", "header_timeout": "5s", "body_timeout": "10s",
        "max_connections": 2048, "max_headers": 64, "max_header_bytes": "32KiB",
        "shutdown_grace": "20s", "drain_delay": "3s", "idle_timeout": "30s",
        "max_concurrent_streams": 32, "write_timeout": "20s", "max_buffered_bytes": "48MiB",
    }
    assert cfg["upstream"] == {
        "url": "http://127.0.0.1:8080", "connect_timeout": "2s", "timeout": "10s", "max_connections": 128,
    }
    assert cfg["forwarding"] == {"keep": ["X-Real-IP"]}
    assert cfg["debug"] == {"rejections": 200}
    assert cfg["tracing"] == {
        "otlp_endpoint": "http://otel-collector.monitoring:4318", "service_name": "shop-hookseal",
        "sample_ratio": 0.25,
    }
    assert cfg["route"][1]["replay_capacity"] == 1000
    assert cfg["replay"]["command_timeout"] == "500ms" and cfg["replay"]["capacity"] == 50000
    gh = cfg["route"][0]
    assert gh["allow_from"] == ["192.30.252.0/22", "2a0a:a440::/29"] and gh["dedupe"] is False


def test_hookseal_check_accepts_every_key(tmp_path, tls_files):
    for i, (cfg, text, _) in enumerate(every_key_renders(tmp_path)):
        d = tmp_path / str(i)
        d.mkdir()
        out = hookseal_check(cfg, text, d, tls_files)
        assert "github" in out and "partner" in out


def test_unset_keys_are_left_to_hookseal(tmp_path):
    """A key removed from the values (null) is not written, so hookseal's default applies."""
    docs = render([CHART / "ci" / "default-values.yaml"],
                  ["proxy.limits.maxHeaders=null", "proxy.replay.commandTimeout=null"])
    cfg, _, _ = config(docs)
    assert "max_headers" not in cfg["limits"] and "command_timeout" not in cfg["replay"]
    assert cfg["limits"]["max_header_bytes"] == "64KiB"


@pytest.mark.parametrize(
    "sets,needle",
    [
        (["proxy.listen.trustedProxies[0]=everyone"], "trustedProxies"),
        (["proxy.listen.trustedProxy[0]=10.0.0.0/8"], "trustedProxy"),
        (["proxy.limits.maxHeaders=0"], "maxHeaders"),
        (["proxy.limits.maxHeaderBytes=1024"], "maxHeaderBytes"),
        (["proxy.replay.commandTimeout=250"], "commandTimeout"),
        (["proxy.routes[0].allowFrom[0]=github"], "allowFrom"),
    ],
)
def test_schema_checks_the_new_keys(sets, needle):
    proc = render([CHART / "ci" / "default-values.yaml"], sets, check=False)
    assert proc.returncode != 0
    assert needle in proc.stderr or "oneOf" in proc.stderr or "allOf" in proc.stderr, proc.stderr


def test_new_sections_render_from_the_key_table(tmp_path):
    """The mechanism a future section uses: a block in hookseal.configKeys renders
    [<section>] from proxy.<section>. Checked on a copy of the library with one more block."""
    import shutil
    lib = tmp_path / "hookseal-lib"
    shutil.copytree(LIB, lib)
    tpl = lib / "templates" / "_config.tpl"
    tpl.write_text(tpl.read_text().replace("route:\n  - methods list", "exampleSection:\n  - someKey int\nroute:\n  - methods list", 1))
    app = tmp_path / "hookseal"
    shutil.copytree(CHART, app, ignore=shutil.ignore_patterns("charts", "Chart.lock"))
    chart_yaml = app / "Chart.yaml"
    chart_yaml.write_text(chart_yaml.read_text().replace("file://../hookseal-lib", f"file://{lib}"))
    from test_chart import helm
    schema = lib / "values.schema.json"
    schema.write_text(schema.read_text().replace('"properties": {\n    "global"', '"properties": {\n    "exampleSection": {"type": "object"},\n    "global"', 1))
    helm("dependency", "build", app)
    docs = render([CHART / "ci" / "default-values.yaml"], ["proxy.exampleSection.someKey=7"], chart=app)
    cfg, _, _ = config(docs)
    assert cfg["example_section"] == {"some_key": 7}
    cfg, _, _ = config(render([CHART / "ci" / "default-values.yaml"], chart=app))
    assert "example_section" not in cfg
