#!/usr/bin/env bash
# The test command (README, .ci/run): sets up, lints (ruff, with Airflow's rules), runs all tiers.
# Extra arguments go to pytest, e.g. `bash scripts/test.sh tests/unit -k chunking`.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$RAGOPS_ROOT"
mkdir -p "$RAGOPS_LOCAL"
# The Go builds of Weaviate and MinIO (minutes on a cold machine; Go's caches keep them) run
# beside setup's installs rather than after them.
bash scripts/services.sh build all >"$RAGOPS_LOCAL/services-build.log" 2>&1 &
build_pid=$!
bash scripts/setup.sh
wait "$build_pid" || echo "[test] the service build did not finish ($?): see $RAGOPS_LOCAL/services-build.log" >&2
export PATH="$RAGOPS_VENV/bin:$PATH"
echo "[test] ruff check" >&2
ruff check .
# A real Weaviate and MinIO for the session (scripts/services.sh: built once with Go, then run on
# 127.0.0.1); the ones started here are stopped on exit. Without Go: a loud warning, and the tests
# that need them skip (loudly, in pytest's summary).
started_services=()
stop_services() {
  for svc in ${started_services[@]+"${started_services[@]}"}; do bash scripts/services.sh stop "$svc" || true; done
}
trap stop_services EXIT
for svc in weaviate minio; do
  if bash scripts/services.sh status "$svc" 2>/dev/null; then
    eval "$(bash scripts/services.sh env "$svc")"
    continue
  fi
  set +e
  bash scripts/services.sh start "$svc"
  src=$?
  set -e
  if [ "$src" -eq 0 ]; then
    started_services+=("$svc")
    eval "$(bash scripts/services.sh env "$svc")"
  elif [ "$src" -eq 3 ]; then
    echo "[test] !!!!!!!! WARNING: Go is not installed, so no real $svc can be built: its tests will be SKIPPED !!!!!!!!" >&2
  else
    echo "[test] !!!!!!!! WARNING: scripts/services.sh start $svc failed ($src): its tests will try again and fail !!!!!!!!" >&2
  fi
done
# pytest's 5 means no test ran: that is a failure of the suite, not a pass.
run_pytest() { set +e; python -m pytest -p no:cacheprovider "$@"; local rc=$?; set -e
  [ "$rc" -eq 5 ] && { echo "[test] no tests ran: $*" >&2; return 1; }; return "$rc"; }
if [ $# -gt 0 ]; then
  echo "[test] pytest $*" >&2
  run_pytest "$@"; exit $?
fi
# Tier 2 (unit) runs with Airflow unimportable: the logic package must not need it.
echo "[test] pytest tests/unit (Airflow blocked)" >&2
unit_rc=0
RAGOPS_BLOCK_AIRFLOW=1 PYTHONPATH="$RAGOPS_ROOT/tests/no_airflow:$PYTHONPATH" run_pytest tests/unit || unit_rc=$?
echo "[test] pytest: every other tier (DAG integrity, orchestration, contract, integration, hostile, dag.test runs)" >&2
rest_rc=0
run_pytest tests --ignore=tests/unit || rest_rc=$?
[ "$unit_rc" -eq 0 ] && [ "$rest_rc" -eq 0 ] || { echo "[test] FAILED (unit: $unit_rc, others: $rest_rc)" >&2; exit 1; }
