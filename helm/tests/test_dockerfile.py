"""The Dockerfile cannot be built here (no container engine); check the rules that matter for
the chart: the final stage runs hookseal as the uid the chart expects, with no shell needed.
hadolint (run by helm/ci/test.sh) covers general Dockerfile practice."""

import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"


def instructions():
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            op, _, rest = line.partition(" ")
            out.append((op.upper(), rest.strip()))
    return out


def final_stage():
    ins = instructions()
    last_from = max(i for i, (op, _) in enumerate(ins) if op == "FROM")
    return ins[last_from:]


def test_multi_stage_with_distroless_or_static_final_image():
    froms = [rest for op, rest in instructions() if op == "FROM"]
    assert len(froms) >= 2
    assert re.match(r"(gcr\.io/distroless/|scratch\b)", froms[-1]), froms[-1]


def test_final_stage_runs_non_root_as_the_chart_expects():
    users = [rest for op, rest in final_stage() if op == "USER"]
    assert users, "final stage must set USER"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "numeric non-root uid (runAsNonRoot needs a number)"
    lib = yaml.safe_load((ROOT / "helm" / "hookseal-lib" / "values.yaml").read_text())
    assert int(uid) == lib["securityContext"]["runAsUser"]


def test_exec_form_entrypoint_without_shell():
    stage = dict(final_stage())
    assert stage["ENTRYPOINT"] == '["/usr/local/bin/hookseal"]'
    assert stage["CMD"].startswith('["run"')
    assert not any(op == "RUN" for op, _ in final_stage()), "no RUN in the final stage: it has no shell"


def test_exposes_the_chart_ports():
    lib = yaml.safe_load((ROOT / "helm" / "hookseal-lib" / "values.yaml").read_text())
    exposed = {int(p) for op, rest in final_stage() if op == "EXPOSE" for p in rest.split()}
    assert exposed == {lib["ports"]["https"], lib["ports"]["admin"]}


def test_oci_labels():
    labels = " ".join(rest for op, rest in final_stage() if op == "LABEL")
    for key in ("title", "description", "licenses", "source", "version", "revision"):
        assert f"org.opencontainers.image.{key}=" in labels


def test_build_is_locked_and_release():
    runs = " ".join(rest for op, rest in instructions() if op == "RUN")
    assert "cargo build --release --locked" in runs


def test_the_pgo_build_is_the_default_and_what_it_needs_reaches_the_build():
    """The build stage runs benches/pgo.sh unless PGO=0, and the build context keeps what
    that script builds and runs (an ignored benches/ or examples/ would fail the image build,
    which nothing here can run)."""
    assert "PGO=1" in [rest for op, rest in instructions() if op == "ARG"]
    runs = " ".join(rest for op, rest in instructions() if op == "RUN")
    assert "bash benches/pgo.sh" in runs
    pgo = (ROOT / "benches" / "pgo.sh").read_text()
    for step in ("-Cprofile-generate=", "--example pgo_train", "-Cprofile-use=", "--release --locked"):
        assert step in pgo, step
    ignored = {
        line.strip().strip("/").split("/")[0]
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    needed = {"benches", "examples", "src", "build.rs", "layout.ld", "Cargo.toml", "Cargo.lock"}
    assert not needed & ignored, needed & ignored
