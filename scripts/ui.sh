#!/usr/bin/env bash
# Starts the Airflow UI (api-server, scheduler, dag-processor, triggerer) with the bundle loaded:
# http://127.0.0.1:8080 (loopback only unless RAGOPS_UI_HOST says otherwise), user `admin`, password
# printed below. Stop it with Ctrl-C (SIGINT).
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$RAGOPS_ROOT"
bash scripts/setup.sh
export PATH="$RAGOPS_VENV/bin:$PATH"
export AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS="${AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS:-admin:admin}"
export AIRFLOW__API__PORT="${AIRFLOW__API__PORT:-8080}"
# Loopback only: Airflow's default (0.0.0.0) would serve the UI and API to the whole network.
# RAGOPS_UI_HOST=0.0.0.0 (or AIRFLOW__API__HOST) serves on other interfaces, on purpose.
export AIRFLOW__API__HOST="${AIRFLOW__API__HOST:-${RAGOPS_UI_HOST:-127.0.0.1}}"
pw="$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated"
( for _ in $(seq 60); do [ -s "$pw" ] && { echo "[ui] login: $(cat "$pw")" >&2; break; }; sleep 2; done ) &
exec airflow standalone
