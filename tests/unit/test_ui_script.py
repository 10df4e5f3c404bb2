"""scripts/ui.sh serves the Airflow UI on loopback unless the user asks for another address."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

SCRIPTS = Path(__file__).resolve().parents[2] / "scripts"


@pytest.fixture
def fake_checkout(tmp_path):
    """ui.sh and env.sh in a scratch checkout whose setup.sh does nothing and whose `airflow`
    prints the address the API server would bind instead of starting."""
    (tmp_path / "scripts").mkdir()
    for name in ("ui.sh", "env.sh"):
        shutil.copy(SCRIPTS / name, tmp_path / "scripts" / name)
    (tmp_path / "scripts" / "setup.sh").write_text("#!/usr/bin/env bash\n")
    airflow = tmp_path / ".venv" / "bin" / "airflow"
    airflow.parent.mkdir(parents=True)
    airflow.write_text('#!/usr/bin/env bash\necho "host=${AIRFLOW__API__HOST:-<unset: 0.0.0.0>} args=$*"\n')
    airflow.chmod(0o755)
    home = tmp_path / ".local" / "airflow"
    home.mkdir(parents=True)
    (home / "simple_auth_manager_passwords.json.generated").write_text('{"admin": "x"}')
    return tmp_path


def run_ui(checkout: Path, **extra: str) -> str:
    # Only the basics of the environment: no RAGOPS_* or AIRFLOW* of the session running the tests.
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG")} | extra
    done = subprocess.run(["bash", str(checkout / "scripts" / "ui.sh")], env=env, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return done.stdout + done.stderr


def test_the_ui_binds_loopback_by_default(fake_checkout):
    out = run_ui(fake_checkout)
    assert "host=127.0.0.1 args=standalone" in out


def test_another_address_only_when_asked(fake_checkout):
    assert "host=0.0.0.0 " in run_ui(fake_checkout, RAGOPS_UI_HOST="0.0.0.0")
    assert "host=10.1.2.3 " in run_ui(fake_checkout, AIRFLOW__API__HOST="10.1.2.3")
