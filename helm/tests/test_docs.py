"""The docs stay true: every snippet of docs/PROVIDERS.md passes `hookseal check` (the TOML as a
config file, the Helm values through the chart), and no document links outside the repository
or to a file or section that does not exist."""

import re
import tomllib

import pytest
import yaml

from test_chart import (  # noqa: F401
    CHART, ROOT, config, dependencies, hookseal_check, load_ci, render, schema_schemes, tls_files, values_file,
)

PROVIDERS = ROOT / "docs" / "PROVIDERS.md"
DOCS = [ROOT / "README.md", ROOT / "CHANGELOG.md", ROOT / "SECURITY.md", ROOT / "BENCHMARKS.md",
        *sorted((ROOT / "docs").glob("*.md")), ROOT / "helm" / "README.md", CHART / "README.md"]
BASE_TOML = """[listen]
address = "127.0.0.1:0"
[admin]
address = "127.0.0.2:0"
[upstream]
url = "http://127.0.0.1:9"
[replay]
store = "memory"
"""


def blocks(lang):
    return re.findall(rf"^```{lang}\n(.*?)^```", PROVIDERS.read_text(), re.S | re.M)


def test_the_cookbook_covers_every_scheme():
    text = PROVIDERS.read_text()
    schemes = set(schema_schemes()) - {"none"}
    toml_schemes = {tomllib.loads(b)["route"][0]["scheme"] for b in blocks("toml")}
    yaml_schemes = {r["scheme"] for b in blocks("yaml") for r in yaml.safe_load(b)["proxy"]["routes"]}
    assert schemes - {"svix"} <= toml_schemes and schemes - {"svix"} <= yaml_schemes
    for scheme in schemes:
        assert f"`{scheme}`" in text, scheme
    # One `kubectl create secret` line per Helm snippet that names a Secret (sns and
    # google-pubsub need none).
    with_secret = [b for b in blocks("yaml") if "secretName" in b]
    assert len(re.findall(r"^`kubectl create secret generic ", text, re.M)) == len(with_secret)


@pytest.mark.parametrize("index", range(len(blocks("toml"))))
def test_cookbook_toml_passes_hookseal_check(index, tmp_path, tls_files):
    text = BASE_TOML + "\n" + blocks("toml")[index]
    cfg = tomllib.loads(text)
    hookseal_check(cfg, text, tmp_path, tls_files)


@pytest.mark.parametrize("index", range(len(blocks("yaml"))))
def test_cookbook_helm_values_render_and_pass_hookseal_check(index, tmp_path, tls_files):
    snippet = yaml.safe_load(blocks("yaml")[index])
    data = load_ci(CHART / "ci" / "default-values.yaml")
    data["proxy"].update(snippet["proxy"])
    cfg, text, _ = config(render([values_file(tmp_path, data)]))
    assert [r["name"] for r in cfg["route"]] == [r["name"] for r in snippet["proxy"]["routes"]]
    hookseal_check(cfg, text, tmp_path, tls_files)


def anchors(path):
    out = set()
    for line in path.read_text().splitlines():
        m = re.match(r"^#+\s+(.*)$", line)
        if m:
            title = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower().replace("`", ""))
            out.add(title.replace(" ", "-"))
    return out


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_no_links_outside_the_repository(doc):
    text = re.sub(r"```.*?```", "", doc.read_text(), flags=re.S)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        assert not re.match(r"^[a-z]+:", target), f"{doc.name} links outside the repository: {target}"
        path, _, anchor = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        assert dest.is_relative_to(ROOT), f"{doc.name}: {target} leaves the repository"
        assert dest.exists(), f"{doc.name}: {target} does not exist"
        if anchor and dest.suffix == ".md":
            assert anchor in anchors(dest), f"{doc.name}: no section #{anchor} in {dest.name}"


def test_rendered_config_points_nowhere_outside():
    _, text, _ = config(render([CHART / "ci" / "full-values.yaml"]))
    assert "SPEC.md" not in text and "shared/" not in text
    assert "README" in text
