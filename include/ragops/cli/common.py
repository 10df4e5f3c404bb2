"""What every command shares: services from the environment, run ids, printing."""

from __future__ import annotations

import json
import time
from typing import Any

from ragops.config import RagopsSettings
from ragops.services import Services


def services() -> Services:
    """Services from the environment. The CLI migrates the lineage schema (its user owns it)."""
    return Services(RagopsSettings.from_env(), migrate=True)


def run_id(given: str | None) -> str:
    return given or f"cli__{time.strftime('%Y%m%dT%H%M%S')}"


def show(title: str, value: Any) -> None:
    print(f"## {title}")
    print(json.dumps(value, indent=2, default=str))
