"""Loads airflow_settings.yaml into an Airflow home: connections, variables and pools (idempotent).

Usage: python scripts/apply_airflow_settings.py [airflow_settings.yaml]
       python scripts/apply_airflow_settings.py --export-json DIR   (files for dag.test(conn_file_path=...))
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def load(path: Path) -> dict:
    return yaml.safe_load(path.read_text())["airflow"]


def connection_dict(conn: dict) -> dict:
    extra = conn.get("conn_extra") or None
    return {k: v for k, v in {
        "conn_type": conn["conn_type"], "host": conn.get("conn_host"), "port": conn.get("conn_port"),
        "schema": conn.get("conn_schema"), "login": conn.get("conn_login"),
        "password": conn.get("conn_password"), "extra": json.dumps(extra) if extra else None,
    }.items() if v is not None}


def export_json(settings: dict, out_dir: Path) -> None:
    out_dir.mkdir(parents=True, exist_ok=True)
    conns = {c["conn_id"]: connection_dict(c) for c in settings.get("connections") or []}
    (out_dir / "connections.json").write_text(json.dumps(conns, indent=2))
    variables = {v["variable_name"]: v["variable_value"] for v in settings.get("variables") or []}
    (out_dir / "variables.json").write_text(json.dumps(variables, indent=2))


def apply(settings: dict) -> None:
    def airflow(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["airflow", *args], capture_output=True, text=True)

    for conn in settings.get("connections") or []:
        airflow("connections", "delete", conn["conn_id"])
        result = airflow("connections", "add", conn["conn_id"], "--conn-json", json.dumps(connection_dict(conn)))
        if result.returncode:
            sys.exit(f"could not add connection {conn['conn_id']}: {result.stderr.strip()[-500:]}")
    for var in settings.get("variables") or []:
        result = airflow("variables", "set", var["variable_name"], str(var["variable_value"]))
        if result.returncode:
            sys.exit(f"could not set variable {var['variable_name']}: {result.stderr.strip()[-500:]}")
    for pool in settings.get("pools") or []:
        result = airflow("pools", "set", pool["pool_name"], str(pool["pool_slot"]), pool.get("pool_description", ""))
        if result.returncode:
            sys.exit(f"could not set pool {pool['pool_name']}: {result.stderr.strip()[-500:]}")
    print(f"applied {len(settings.get('connections') or [])} connections, "
          f"{len(settings.get('variables') or [])} variables, {len(settings.get('pools') or [])} pools")


if __name__ == "__main__":
    args = sys.argv[1:]
    if args[:1] == ["--export-json"]:
        export_json(load(ROOT / "airflow_settings.yaml"), Path(args[1]))
    else:
        apply(load(Path(args[0]) if args else ROOT / "airflow_settings.yaml"))
