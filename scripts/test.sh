#!/usr/bin/env bash
# The test command (README, .ci/run): sets up, lints (ruff, with Airflow's rules), runs all tiers.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k chunking`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$RAGOPS_ROOT"
bash scripts/setup.sh
export PATH="$RAGOPS_VENV/bin:$PATH"
echo "[test] ruff check" >&2
ruff check .
echo "[test] pytest" >&2
set +e
python -m pytest -p no:cacheprovider "${@:-tests}"
rc=$?
set -e
# pytest's 5 means no test ran: that is a failure of the suite, not a pass.
[ "$rc" -eq 5 ] && { echo "[test] no tests ran" >&2; exit 1; }
exit "$rc"
