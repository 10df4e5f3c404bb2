"""Airflow plugin: read-only browsing of ragops artifacts (evaluation charts and reports) in the UI.

A small FastAPI app mounted on the API server at ``/ragops-artifacts``: ``/`` lists the
evaluation reports and charts, ``/files/<path>`` serves one file under the artifact root. Only
signed-in Airflow users get through (the API server's own authentication); paths that leave the
root are refused. A "RAG artifacts" entry in the UI's navigation opens the list.

The artifact root is ``RAGOPS_ARTIFACT_ROOT`` (a local folder; an object-storage root is browsed
through its own console instead, and the app says so).
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

URL_PREFIX = "/ragops-artifacts"
SERVED_SUFFIXES = frozenset({".png", ".svg", ".json", ".jsonl", ".csv", ".md", ".txt", ".html"})


def artifact_root() -> Path | None:
    root = os.environ.get("RAGOPS_ARTIFACT_ROOT", "")
    if not root or ("://" in root and not root.startswith("file://")):
        return None
    return Path(root.removeprefix("file://")).resolve()


def safe_file(root: Path, rel: str) -> Path | None:
    """The file for ``rel`` if it lies inside ``root`` (symlinks resolved) and is of a served type."""
    candidate = (root / rel).resolve()
    if not candidate.is_relative_to(root) or not candidate.is_file() or candidate.suffix not in SERVED_SUFFIXES:
        return None
    return candidate


def create_app(root: Path | None = None, *, authenticate: bool = True) -> Any:
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    dependencies = []
    if authenticate:
        from airflow.api_fastapi.core_api.security import requires_authenticated

        dependencies.append(Depends(requires_authenticated()))
    app = FastAPI(title="ragops artifacts", dependencies=dependencies)

    def current_root() -> Path:
        found = root or artifact_root()
        if found is None:
            raise HTTPException(404, "the artifact root is not a local folder: browse it in its object-storage console")
        return found

    @app.get("/", response_class=HTMLResponse)
    def index() -> str:
        base = current_root()
        items = sorted(p.relative_to(base).as_posix() for p in (base / "evaluations").rglob("*")
                       if p.is_file() and p.suffix in {".png", ".json"}) if (base / "evaluations").exists() else []
        rows = "".join(f'<li><a href="{URL_PREFIX}/files/{html.escape(i)}">{html.escape(i)}</a></li>' for i in items)
        return f"<html><body><h1>ragops evaluations</h1><ul>{rows or '<li>none yet</li>'}</ul></body></html>"

    @app.get("/files/{rel:path}")
    def serve(rel: str) -> Any:
        found = safe_file(current_root(), rel)
        if found is None:
            raise HTTPException(404, f"no artifact {rel!r}")
        return FileResponse(found)

    return app


class RagopsArtifactsPlugin(AirflowPlugin):
    name = "ragops_artifacts"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ragops artifacts"}]
    external_views = [{"name": "RAG artifacts", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "ragops-artifacts"}]
