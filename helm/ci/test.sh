#!/usr/bin/env bash
# Chart and image checks, offline after the first tool install:
#   1. install the tools into .tools/ (idempotent)
#   2. hadolint on the Dockerfile
#   3. helm lint --strict on every helm/<chart>/ci/*-values.yaml, and the library and example
#   4. pytest helm/tests: rendering, Kubernetes schemas (1.29 and 1.37), assertions on the
#      objects, the values schema, `hookseal check` on the rendered config (every config key
#      set), `promtool check rules` / `promtool test rules` on the PrometheusRule -- with helm
#      v4, then again with helm v3
# Env: HOOKSEAL_BIN (default target/debug/hookseal; required when CI is set), HELM_V3=0 to
# skip the helm v3 pass.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cd "$ROOT"
export HELM_V3=${HELM_V3:-1}
bash helm/ci/install-tools.sh
T=$ROOT/.tools
PY=$T/venv/bin/python

echo "== hadolint Dockerfile"
"$T/bin/hadolint" Dockerfile

helm_versions=("$T/bin/helm")
[ "$HELM_V3" = 1 ] && helm_versions+=("$T/bin/helm3")

status=0
for helm in "${helm_versions[@]}"; do
    echo "== $("$helm" version --short): dependency build and lint --strict"
    for chart in helm/hookseal helm/examples/existing-app; do
        "$helm" dependency build "$chart" >/dev/null
    done
    for values in helm/*/ci/*-values.yaml; do
        chart=$(dirname "$(dirname "$values")")
        "$helm" lint --strict --quiet "$chart" -f "$values" >/dev/null \
            || { echo "lint failed: $chart -f $values"; "$helm" lint --strict "$chart" -f "$values"; status=1; }
    done
    "$helm" lint --strict --quiet helm/hookseal-lib >/dev/null || { echo "lint failed: hookseal-lib"; status=1; }
    "$helm" lint --strict --quiet helm/examples/existing-app >/dev/null || { echo "lint failed: example"; status=1; }

    echo "== pytest with $("$helm" version --short)"
    HELM=$helm "$PY" -m pytest -q -p no:cacheprovider helm/tests || status=1
done
exit $status
