"""A real Airflow cluster on loopback, for the e2e tier: processes, their logs, and a REST client.

``Cluster`` starts each component as its own process group (logs under ``<root>/logs/``) and
stops them all, SIGTERM then SIGKILL, whatever happened; ``AirflowApi`` speaks the public REST
API with a JWT from the API server's ``/auth/token``, the way the UI's Trigger button does.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

TERMINAL = {"success", "failed"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ComponentDied(RuntimeError):
    """A component's process exited: waiting longer cannot help."""


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 1.0,
              diagnose: Callable[[], str] | None = None) -> Any:
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = check()
            if result:
                return result
        except ComponentDied:
            raise
        except Exception as exc:  # noqa: BLE001 - retried until the deadline
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"{what}: not ready after {timeout:.0f}s (last error: {last!r})"
                       + (f"\n{diagnose()}" if diagnose else ""))


# What a test process's environment must not leak into Airflow components started for a tier
# (they get the tier's own settings): the e2e cluster and the browser tier's stack alike.
SCRUB_PREFIXES = ("AIRFLOW", "RAGOPS_", "WEAVIATE_", "MINIO_", "AWS_", "PYTHONPATH")


def scrubbed_environ() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith(SCRUB_PREFIXES)}


def describe_run(api: AirflowApi, dag_id: str, run_id: str, log_dirs: list[Path]) -> str:
    """A run's task states and hosts, with the task logs of whatever failed (read from ``log_dirs``)."""
    lines = [f"{dag_id} {run_id}:"]
    try:
        tis = api.task_instances(dag_id, run_id)
    except Exception as exc:  # noqa: BLE001 - a diagnosis must not hide the failure
        return f"{lines[0]} (task instances unreadable: {exc!r})"
    for ti in sorted(tis, key=lambda t: (t["task_id"], t["map_index"])):
        lines.append(f"  {ti['task_id']}[{ti['map_index']}] {ti['state']} on {ti.get('hostname')} "
                     f"try {ti.get('try_number')}")
        if ti["state"] in {"failed", "up_for_retry"}:
            for logs in log_dirs:
                for log in logs.glob(f"dag_id={dag_id}/run_id={run_id}/task_id={ti['task_id']}/**/*.log"):
                    lines.append(f"  --- {log}:\n{log.read_text(errors='replace')[-4000:]}")
    return "\n".join(lines)


@dataclass
class Process:
    name: str
    popen: subprocess.Popen
    log: Path
    args: list[str] = field(default_factory=list)   # how to start it again (a supervisor's restart)
    env: dict[str, str] = field(default_factory=dict, repr=False)
    cwd: Path | None = None

    def tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class Cluster:
    root: Path
    processes: list[Process] = field(default_factory=list)

    def start(self, name: str, args: list[str], env: dict[str, str], cwd: Path) -> Process:
        (self.root / "logs").mkdir(parents=True, exist_ok=True)
        log = self.root / "logs" / f"{name}.log"
        with log.open("ab") as out:  # a restarted component appends to its log
            popen = subprocess.Popen(args, env=env, cwd=cwd, stdout=out, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, start_new_session=True)
        proc = Process(name, popen, log, list(args), dict(env), cwd)
        self.processes.append(proc)
        return proc

    def process(self, name: str) -> Process:
        return next(p for p in self.processes if p.name == name)

    def kill(self, name: str) -> None:
        """SIGKILL to the component and every process it started, as a host or container crash
        would; no clean-up runs. (Airflow's task supervisor puts each task process in a process
        group of its own, so the component's group alone would leave the task running.)"""
        import psutil

        proc = self.process(name)
        try:
            tree = [psutil.Process(proc.popen.pid), *psutil.Process(proc.popen.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            tree = []
        for member in tree:
            with contextlib.suppress(psutil.NoSuchProcess):
                member.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.popen.pid, signal.SIGKILL)
        proc.popen.wait(timeout=30)
        psutil.wait_procs(tree, timeout=30)

    def restart(self, name: str) -> Process:
        """Starts a (dead or killed) component again with its command and environment."""
        proc = self.process(name)
        if proc.popen.poll() is None:
            self.kill(name)
        self.processes.remove(proc)
        return self.start(name, proc.args, proc.env, proc.cwd or Path.cwd())

    def revive(self) -> list[str]:
        """What a supervisor (compose's ``restart: unless-stopped``) does: restarts every component
        that exited. Returns their names."""
        dead = [p.name for p in self.processes if p.popen.poll() is not None]
        for name in dead:
            self.restart(name)
        return dead

    def check_alive(self) -> None:
        dead = [p for p in self.processes if p.popen.poll() is not None]
        if dead:
            raise ComponentDied("; ".join(f"{p.name} exited with {p.popen.returncode}:\n{p.tail()}" for p in dead))

    def stop(self, grace: float = 25.0) -> list[str]:
        """SIGTERM to every process group, then SIGKILL to what is left; returns what needed SIGKILL."""
        for proc in reversed(self.processes):
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for proc in self.processes:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=max(0.1, deadline - time.monotonic()))
        killed = []
        for proc in self.processes:
            # the group may outlive its leader (celery's pool processes, task supervisors)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.popen.pid, signal.SIGKILL)
                if proc.popen.poll() is None:
                    killed.append(proc.name)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.popen.wait(timeout=10)
        self.processes.clear()
        return killed


class AirflowApi:
    """The public REST API (/api/v2) with a SimpleAuthManager JWT."""

    def __init__(self, base_url: str, username: str, password: str):
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=60)
        token = self.http.post("/auth/token", json={"username": username, "password": password})
        token.raise_for_status()
        self.http.headers["Authorization"] = f"Bearer {token.json()['access_token']}"

    def close(self) -> None:
        self.http.close()

    def get(self, path: str, **params: Any) -> Any:
        response = self.http.get(f"/api/v2{path}", params=params)
        response.raise_for_status()
        return response.json()

    def call(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.request(method, f"/api/v2{path}", **kwargs)

    def set_paused(self, dag_id: str, paused: bool) -> None:
        self.call("PATCH", f"/dags/{dag_id}", json={"is_paused": paused}).raise_for_status()

    def asset_events(self, **params: Any) -> list[dict[str, Any]]:
        return self.get("/assets/events", limit=100, **params)["asset_events"]

    def trigger(self, dag_id: str, run_id: str, conf: dict[str, Any]) -> dict[str, Any]:
        response = self.call("POST", f"/dags/{dag_id}/dagRuns",
                             json={"dag_run_id": run_id, "logical_date": None, "conf": conf,
                                   "note": "triggered by tests/e2e through the REST API"})
        if response.status_code >= 400:
            raise AssertionError(f"trigger {dag_id}: {response.status_code} {response.text}")
        return response.json()

    def dag_run(self, dag_id: str, run_id: str) -> dict[str, Any]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}")

    def dag_runs(self, dag_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns", limit=100)["dag_runs"]

    def task_instances(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances", limit=500)["task_instances"]

    def xcom_entries(self, dag_id: str, run_id: str) -> list[dict[str, Any]]:
        return self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/~/xcomEntries", limit=500)["xcom_entries"]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        entry = self.get(f"/dags/{dag_id}/dagRuns/{run_id}/taskInstances/{task_id}/xcomEntries/{key}",
                         map_index=map_index, deserialize=True)
        return entry["value"]
