#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, layer contracts, pytest (every layer),
# and the policy-case corpus through the CLI. Installs what it needs into a cached venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers for the integration tests (TESTING.md "Real servers"); the fixtures start them.
if ! command -v prometheus >/dev/null 2>&1 || ! command -v docker-registry >/dev/null 2>&1 \
  || ! command -v htpasswd >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
      prometheus docker-registry apache2-utils >/dev/null
  else
    echo "warning: a test server is missing; run:" \
      "sudo apt-get install prometheus docker-registry apache2-utils" >&2
  fi
fi

VENV="${TIDEGATE_VENV:-$HOME/.cache/tidegate/venv}"
if [ ! -x "$VENV/bin/python" ]; then
  python3 -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install --quiet --upgrade pip
"$VENV/bin/python" -m pip install --quiet -e '.[dev]'
export PATH="$VENV/bin:$PATH"

echo "== ruff"
ruff check .
ruff format --check .
echo "== mypy"
mypy
echo "== import contracts"
lint-imports
echo "== policy cases (tidegate test)"
tidegate test tests/policy_cases
echo "== test Kubernetes API (kube-apiserver + kubectl from tests/cluster/build.sh)"
if command -v go >/dev/null 2>&1; then
  build_start=$(date +%s)
  if ! TIDEGATE_KUBE_BIN="$(tests/cluster/build.sh)"; then
    echo "tests/cluster/build.sh failed (see above); the controller tests need it" >&2
    exit 1
  fi
  export TIDEGATE_KUBE_BIN
  echo "binaries in $TIDEGATE_KUBE_BIN ($(($(date +%s) - build_start)) s; the first build takes ~5 min)"
else
  echo "warning: go not found; the controller tests will fail: install Go >= 1.24" \
    "(https://go.dev/doc/install), then rerun (first build ~5 min, then cached)" >&2
fi
echo "== pytest"
set +e
python -m pytest "$@"
status=$?
set -e
if [ "$status" -eq 5 ]; then
  echo "pytest collected no tests: failing" >&2
  exit 1
fi
exit "$status"
