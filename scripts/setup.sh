#!/usr/bin/env bash
# Sets up everything the bundle needs locally, idempotently (a second run takes seconds):
# Debian packages (PostgreSQL and the demo corpus), the virtualenv, a private Postgres on
# 127.0.0.1, an Airflow home inside the checkout, and airflow_settings.yaml loaded into it.
set -euo pipefail
source "$(dirname "$0")/env.sh"
cd "$RAGOPS_ROOT"
mkdir -p "$RAGOPS_LOCAL" "$AIRFLOW_HOME"

need_apt=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || need_apt+=(postgresql)
[ -d /usr/share/doc/postgresql-doc-15/html ] || need_apt+=(postgresql-doc-15)
python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || need_apt+=(python3-venv)
command -v redis-server >/dev/null 2>&1 || need_apt+=(redis-server)  # the Celery broker of tests/e2e
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)  # the browser of tests/browser (Playwright drives it)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "[setup] apt-get install ${need_apt[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null 2>&1 || {
    apt-get update -q >/dev/null && apt-get install -y -q --no-install-recommends "${need_apt[@]}" >/dev/null; }
fi

stamp="$RAGOPS_LOCAL/.requirements.sha256"
want="$(cat requirements.txt requirements-dev.txt constraints.txt | sha256sum | cut -d' ' -f1)"
if [ ! -x "$RAGOPS_VENV/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[setup] installing the virtualenv (first time: a few minutes)" >&2
  [ -x "$RAGOPS_VENV/bin/python" ] || python3 -m venv "$RAGOPS_VENV"
  "$RAGOPS_VENV/bin/pip" install -q --upgrade "pip==26.3"
  # constraints.txt is the full known-good resolution (Airflow's recommended install method);
  # torch==2.13.0 resolves to the CPU wheel on this machine.
  "$RAGOPS_VENV/bin/pip" install -q -r requirements-dev.txt -c constraints.txt
  echo "$want" > "$stamp"
fi
export PATH="$RAGOPS_VENV/bin:$PATH"

bash scripts/postgres.sh
# Tasks never migrate the lineage schema (a least-privilege role could not): setup does, once.
python -m ragops migrate >&2

astamp="$RAGOPS_LOCAL/.airflow_settings.sha256"
awant="$( (cat airflow_settings.yaml; echo "$AIRFLOW_HOME") | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$astamp" 2>/dev/null)" != "$awant" ]; then
  echo "[setup] migrating the Airflow metadata DB and loading airflow_settings.yaml" >&2
  airflow db migrate >"$RAGOPS_LOCAL/airflow-migrate.log" 2>&1 || { tail -50 "$RAGOPS_LOCAL/airflow-migrate.log"; exit 1; }
  python scripts/apply_airflow_settings.py
  echo "$awant" > "$astamp"
fi
echo "[setup] ready: venv $RAGOPS_VENV, AIRFLOW_HOME $AIRFLOW_HOME" >&2
