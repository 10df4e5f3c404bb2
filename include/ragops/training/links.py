"""Browser links to artifacts, served by the ``ragops_artifacts`` Airflow plugin (plugins/ragops_artifacts.py)."""

from __future__ import annotations

import os
from urllib.parse import quote

# Must equal plugins/ragops_artifacts.py URL_PREFIX (a test checks it).
ARTIFACTS_URL_PREFIX = "/ragops-artifacts"


def api_base_url() -> str:
    """The Airflow API server's public URL ([api] base_url), as the UI's links use it."""
    return (os.environ.get("AIRFLOW__API__BASE_URL") or "http://localhost:8080").rstrip("/")


def artifact_url(rel: str, base_url: str | None = None) -> str:
    """The URL where the plugin serves an artifact of a local store (``rel`` relative to the root)."""
    return f"{(base_url or api_base_url()).rstrip('/')}{ARTIFACTS_URL_PREFIX}/files/{quote(rel.strip('/'))}"
