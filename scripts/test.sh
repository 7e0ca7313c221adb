#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, layer contracts, pytest (every layer),
# and the policy-case corpus through the CLI. Installs what it needs into a cached venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# Real servers for the integration tests (TESTING.md "Real servers"); the fixtures start them.
if ! command -v prometheus >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq prometheus >/dev/null
  else
    echo "warning: prometheus is not installed; run: sudo apt-get install prometheus" >&2
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
