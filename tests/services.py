"""Real servers for the tests: a local Weaviate and MinIO, through scripts/services.sh.

``ensure_service(config, "weaviate")`` returns the variables a test session uses to reach the
server (``services.sh env``), starting it first (and building it with Go the first time) unless
it already runs; a server this session started is stopped at the session's end. Without Go the
server cannot be built: the caller skips, and the skip is reported loudly (a PytestWarning and a
red line in the terminal summary), never silently.
"""

from __future__ import annotations

import shlex
import subprocess
import time
import warnings
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SERVICES = REPO / "scripts" / "services.sh"
GO_MISSING = 3  # services.sh's exit status when Go is not installed
BUILD_AND_START_TIMEOUT = 1800  # a cold Weaviate build takes ~6 minutes on 2 cores


class ServiceUnavailable(Exception):
    """The server cannot run here (no Go to build it): skip, loudly."""


def _run(*args: str, timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["bash", str(SERVICES), *args], capture_output=True, text=True, timeout=timeout,
                          cwd=REPO)


def service_env(name: str) -> dict[str, str]:
    """The ``export NAME='value'`` lines of ``services.sh env NAME`` as a dict."""
    out = _run("env", name, timeout=60).stdout
    env: dict[str, str] = {}
    for line in out.splitlines():
        if line.startswith("export "):
            key, _, value = line.removeprefix("export ").partition("=")
            env[key] = shlex.split(value)[0] if value else ""
    return env


def ensure_service(config: pytest.Config, name: str) -> dict[str, str]:
    """Starts ``name`` (building it if needed) unless it runs; registers its stop at session end
    when this session started it. Raises ServiceUnavailable without Go, RuntimeError otherwise."""
    already = _run("status", name, timeout=60).returncode == 0
    if not already:
        started = time.monotonic()
        result = _run("start", name, timeout=BUILD_AND_START_TIMEOUT)
        if result.returncode == GO_MISSING:
            raise ServiceUnavailable(f"Go is not installed, so scripts/services.sh cannot build {name}")
        if result.returncode != 0:
            raise RuntimeError(f"scripts/services.sh start {name} failed ({result.returncode}):\n"
                               f"{result.stderr[-4000:]}")
        _reporter(config).started.append(f"{name} started by this session in {time.monotonic() - started:.1f}s")
        config.add_cleanup(lambda: _run("stop", name, timeout=120))
    return service_env(name)


def skip_loudly(config: pytest.Config, name: str, reason: str, hint: str = "") -> None:
    """Skips the current test and makes sure the run's summary says so in red."""
    reporter = _reporter(config)
    if name not in reporter.skipped:
        reporter.skipped[name] = f"{reason}{'; ' + hint if hint else ''}"
        warnings.warn(pytest.PytestWarning(f"NOT TESTED against a real {name}: {reason}"), stacklevel=2)
    pytest.skip(f"NOT TESTED against a real {name}: {reason}")


class _LoudReporter:
    def __init__(self) -> None:
        self.skipped: dict[str, str] = {}
        self.started: list[str] = []

    def pytest_terminal_summary(self, terminalreporter) -> None:
        for line in self.started:
            terminalreporter.write_line(f"[services] {line}")
        for name, reason in self.skipped.items():
            terminalreporter.write_sep("!", f"{name} tests SKIPPED: {reason}", red=True, bold=True)
            terminalreporter.write_line(
                f"  The tests against a real {name} did not run. Install Go (https://go.dev/dl/) and re-run: "
                "scripts/services.sh builds and starts the server.", red=True)


def _reporter(config: pytest.Config) -> _LoudReporter:
    reporter = config.pluginmanager.get_plugin("ragops-services")
    if reporter is None:
        reporter = _LoudReporter()
        config.pluginmanager.register(reporter, "ragops-services")
    return reporter
