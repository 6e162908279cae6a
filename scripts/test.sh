#!/usr/bin/env bash
# The whole check: set-up, lint, types, tests. `make test` and CI run exactly this.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --system || { echo "test: set-up failed" >&2; exit 1; }

status=0
echo "== ruff"; .venv/bin/ruff check . && .venv/bin/ruff format --check . || status=1
echo "== mypy --strict"; .venv/bin/mypy || status=1
echo "== import-linter"; .venv/bin/lint-imports || status=1
echo "== pytest"
.venv/bin/pytest "$@"
rc=$?
if [[ $rc -eq 5 ]]; then
    echo "test: pytest collected no tests: the set-up is broken" >&2
    exit 1
fi
[[ $rc -ne 0 ]] && status=$rc
exit $status
