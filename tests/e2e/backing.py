"""The e2e tier's own backing servers: a Postgres cluster, a Weaviate and a MinIO on free loopback
ports, with data under ``.local/e2e-backing``, so that the fault tests may restart and stop them
without touching the shared servers other test sessions use (127.0.0.1:54329, :8079, :9010).

They are started the way the shared ones are (``scripts/postgres.sh`` and ``scripts/services.sh``
with their port and data-dir variables overridden), and stopped, restarted or frozen the way an
operator or a crash would.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from tests.e2e.cluster import free_port

REPO = Path(__file__).resolve().parents[2]
BACKING_ROOT = REPO / ".local" / "e2e-backing"
SCRIPTS = REPO / "scripts"


def _pg_bin() -> Path:
    return sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name))[-1]


@dataclass
class Backing:
    root: Path = BACKING_ROOT
    ports: dict[str, int] = field(default_factory=dict)

    # -- the environment each script reads (scripts/env.sh's variables, overridden) ---------------
    def script_env(self) -> dict[str, str]:
        p = self.ports
        env = {k: v for k, v in os.environ.items() if not k.startswith(("RAGOPS_", "WEAVIATE_", "MINIO_"))}
        env.update(
            RAGOPS_LOCAL=str(self.root), RAGOPS_PGPORT=str(p["pg"]), RAGOPS_PGDATA=str(self.root / "pgdata"),
            RAGOPS_WEAVIATE_PORT=str(p["weaviate"]), RAGOPS_WEAVIATE_GRPC_PORT=str(p["weaviate_grpc"]),
            RAGOPS_WEAVIATE_GOSSIP_PORT=str(p["gossip"]), RAGOPS_WEAVIATE_DATA_PORT=str(p["gossip_data"]),
            RAGOPS_WEAVIATE_RAFT_PORT=str(p["raft"]), RAGOPS_WEAVIATE_RAFT_RPC_PORT=str(p["raft_rpc"]),
            RAGOPS_MINIO_PORT=str(p["minio"]), RAGOPS_MINIO_CONSOLE_PORT=str(p["minio_console"]),
            RAGOPS_MINIO_BROWSER="off")
        return env

    @property
    def pg_dsn(self) -> str:
        return f"postgresql://ragops:ragops@127.0.0.1:{self.ports['pg']}/ragops"

    def service_env(self, name: str) -> dict[str, str]:
        out = self._services("env", name).stdout
        env: dict[str, str] = {}
        for line in out.splitlines():
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = value.strip("'")
        return env

    # -- lifecycle ------------------------------------------------------------------------------
    def build(self) -> int:
        """``services.sh build all`` (once; Go caches it): its exit status (3: no Go)."""
        return subprocess.run(["bash", str(SCRIPTS / "services.sh"), "build", "all"], cwd=REPO, capture_output=True,
                              timeout=1800).returncode

    def start(self) -> Backing:
        shutil.rmtree(self.root, ignore_errors=True)
        self.root.mkdir(parents=True)
        for name in ("pg", "weaviate", "weaviate_grpc", "gossip", "gossip_data", "raft", "raft_rpc", "minio",
                     "minio_console"):
            self.ports[name] = free_port()
        self._run(["bash", str(SCRIPTS / "postgres.sh")], "scripts/postgres.sh")
        self._services("start", "all")
        return self

    def stop(self) -> None:
        with contextlib.suppress(Exception):
            self._services("stop", "all")
        with contextlib.suppress(Exception):
            self._pg_ctl("stop", "-m", "immediate")

    # -- faults ---------------------------------------------------------------------------------
    def restart_postgres(self) -> float:
        """``pg_ctl restart -m fast``: every connection is cut (Airflow's metadata DB included)."""
        started = time.monotonic()
        # without -o, pg_ctl restarts with the options of the running server (postmaster.opts)
        self._pg_ctl("restart", "-m", "fast", "-w", "-t", "60", "-l", str(self.root / "pgdata" / "server.log"))
        return time.monotonic() - started

    def stop_service(self, name: str) -> None:
        self._services("stop", name)

    def start_service(self, name: str) -> None:
        self._services("start", name)

    # -- helpers --------------------------------------------------------------------------------
    def _services(self, *args: str) -> subprocess.CompletedProcess[str]:
        return self._run(["bash", str(SCRIPTS / "services.sh"), *args], f"services.sh {' '.join(args)}")

    def _pg_ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        user = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
        return self._run([*user, str(_pg_bin() / "pg_ctl"), "-D", str(self.root / "pgdata"), *args], "pg_ctl")

    def _run(self, args: list[str], what: str) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(args, env=self.script_env(), cwd=REPO, capture_output=True, text=True, timeout=600)
        if result.returncode:
            raise RuntimeError(f"{what} failed ({result.returncode}):\n{(result.stdout + result.stderr)[-3000:]}")
        return result
