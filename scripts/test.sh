#!/usr/bin/env bash
# The whole test suite, as CI runs it: lint, types, layer contracts, pytest (every layer),
# and the policy-case corpus through the CLI. Installs what it needs into a cached venv.
set -euo pipefail
cd "$(dirname "$0")/.."

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
