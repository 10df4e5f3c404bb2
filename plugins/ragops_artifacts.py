"""Airflow plugin: read-only browsing of ragops artifacts (evaluation charts and reports) in the UI.

A small FastAPI app mounted on the API server at ``/ragops-artifacts``: ``/`` lists the evaluation
reports and charts, ``/files/<path>`` serves one file under the artifact root. A "RAG artifacts"
entry in the UI's navigation opens the list.

Security, since the API server does not protect plugin apps itself (a mounted app inherits none of
the core API's dependencies):
- every route, the index included, needs a signed-in user whom the auth manager grants view
  access to the website (``requires_access_view(AccessView.WEBSITE)``, Airflow's own check for
  its pages): no credentials is 401, a user without that access 403;
- no ``/docs``, ``/redoc`` or ``/openapi.json``;
- paths that leave the root (``..``, symlinks, NUL bytes) are 404, as are unserved types;
- HTML and SVG, which a browser would run as pages of the Airflow origin, are only ever sent as
  downloads (``Content-Disposition: attachment``), with ``nosniff`` and a sandboxing CSP on all.

The artifact root is the tasks' setting: the Variable ``ragops_artifact_root``, else
``RAGOPS_ARTIFACT_ROOT``. An object-storage root is browsed through its own console instead.
"""

from __future__ import annotations

import html
import logging
import os
from pathlib import Path
from typing import Any

from airflow.plugins_manager import AirflowPlugin

log = logging.getLogger(__name__)

URL_PREFIX = "/ragops-artifacts"
ARTIFACT_ROOT_VARIABLE = "ragops_artifact_root"   # ragops.vocabulary.ARTIFACT_ROOT_VARIABLE, as the tasks read it
SERVED_SUFFIXES = frozenset({".png", ".svg", ".json", ".jsonl", ".csv", ".md", ".txt", ".html"})
# Types a browser renders as active content: served as downloads, never inline.
DOWNLOAD_ONLY = frozenset({".html", ".svg"})
SECURITY_HEADERS = {"X-Content-Type-Options": "nosniff", "Content-Security-Policy": "sandbox; default-src 'none'"}


def _variable(key: str) -> str | None:
    try:
        from airflow.models.variable import Variable

        return Variable.get(key, default_var=None)
    except Exception:
        log.warning("could not read the Variable %s; using RAGOPS_ARTIFACT_ROOT", key, exc_info=True)
        return None


def artifact_root() -> Path | None:
    """The local artifact root the tasks write to, or None when it is object storage (or unset)."""
    root = _variable(ARTIFACT_ROOT_VARIABLE) or os.environ.get("RAGOPS_ARTIFACT_ROOT", "")
    if not root or ("://" in root and not root.startswith("file://")):
        return None
    return Path(root.removeprefix("file://")).resolve()


def safe_file(root: Path, rel: str) -> Path | None:
    """The file for ``rel`` if it lies inside ``root`` (symlinks resolved) and is of a served type."""
    try:
        candidate = (root / rel).resolve()
        ok = candidate.is_relative_to(root) and candidate.is_file() and candidate.suffix.lower() in SERVED_SUFFIXES
    except (ValueError, OSError):  # a NUL byte, a name too long, a symlink loop: no such artifact
        return None
    return candidate if ok else None


def create_app(root: Path | None = None, *, authorize: bool = True) -> Any:
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse

    dependencies = []
    if authorize:
        from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
        from airflow.api_fastapi.core_api.security import requires_access_view

        dependencies.append(Depends(requires_access_view(AccessView.WEBSITE)))
    app = FastAPI(title="ragops artifacts", dependencies=dependencies, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def current_root() -> Path:
        found = root or artifact_root()
        if found is None:
            raise HTTPException(404, "the artifact root is not a local folder: browse it in its object-storage console")
        return found

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        base = current_root()
        evaluations = base / "evaluations"
        items = sorted(p.relative_to(base).as_posix() for p in evaluations.rglob("*")
                       if p.is_file() and p.suffix in {".png", ".json"}) if evaluations.exists() else []
        rows = "".join(f'<li><a href="{URL_PREFIX}/files/{html.escape(i)}">{html.escape(i)}</a></li>' for i in items)
        page = f"<html><body><h1>ragops evaluations</h1><ul>{rows or '<li>none yet</li>'}</ul></body></html>"
        return HTMLResponse(page, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/files/{rel:path}")
    def serve(rel: str) -> Any:
        found = safe_file(current_root(), rel)
        if found is None:
            raise HTTPException(404, "no such artifact")  # the path is not echoed back
        download = found.suffix.lower() in DOWNLOAD_ONLY
        return FileResponse(found, headers=SECURITY_HEADERS, filename=found.name if download else None,
                            content_disposition_type="attachment" if download else "inline")

    return app


class RagopsArtifactsPlugin(AirflowPlugin):
    name = "ragops_artifacts"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ragops artifacts"}]
    external_views = [{"name": "RAG artifacts", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "ragops-artifacts"}]
