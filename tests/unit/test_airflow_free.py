"""Airflow stays on the orchestration side: the logic package imports and runs without it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
IMPORT_ALL = """
import importlib, pkgutil, ragops
skip = ("ragops.orchestration", "ragops.__main__")
names = [m.name for m in pkgutil.walk_packages(ragops.__path__, "ragops.") if not m.name.startswith(skip)]
for name in names:
    importlib.import_module(name)
print(len(names))
"""


def _blocked(code: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RAGOPS_BLOCK_AIRFLOW="1",
               PYTHONPATH=os.pathsep.join([str(REPO / "tests" / "no_airflow"), str(REPO / "include")]))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)


def test_airflow_is_really_blocked():
    result = _blocked("import airflow")
    assert result.returncode != 0 and "blocked" in result.stderr


def test_every_logic_module_imports_without_airflow():
    result = _blocked(IMPORT_ALL)
    assert result.returncode == 0, result.stderr[-3000:]
    assert int(result.stdout.strip().splitlines()[-1]) > 40


def test_the_orchestration_side_does_need_it():
    """The blocker catches lazy imports too: making a DAG's Params needs Airflow."""
    result = _blocked("from ragops.orchestration import airflow_params\n"
                      "from ragops.indexing.params import IndexParams\nairflow_params(IndexParams)")
    assert result.returncode != 0 and "No module named 'airflow" in result.stderr
