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
``RAGOPS_ARTIFACT_ROOT``. A local folder is served from disk; an object-storage root
(``s3://conn_id@bucket/prefix``) through the same ``ArtifactStore`` the tasks use, on Airflow's
ObjectStoragePath, so its credentials come only from the connection the URI names.
"""

from __future__ import annotations

import html
import logging
import mimetypes
import os
from pathlib import Path, PurePosixPath
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


def artifact_root_uri() -> str | None:
    """The artifact root the tasks write to (a local folder or an object-storage URI), None when unset."""
    return _variable(ARTIFACT_ROOT_VARIABLE) or os.environ.get("RAGOPS_ARTIFACT_ROOT") or None


def is_remote(root: str) -> bool:
    return "://" in root and not root.startswith("file://")


def artifact_root() -> Path | None:
    """The local artifact root the tasks write to, or None when it is object storage (or unset)."""
    root = artifact_root_uri()
    if not root or is_remote(root):
        return None
    return Path(root.removeprefix("file://")).resolve()


def remote_store(root: str) -> Any:
    """The tasks' ArtifactStore on an object-storage root, through Airflow's ObjectStoragePath."""
    from airflow.sdk import ObjectStoragePath

    from ragops.artifacts import ArtifactStore

    return ArtifactStore(root, root_path=ObjectStoragePath(root))


def safe_rel(rel: str) -> str | None:
    """``rel`` as a plain relative key of a served type, or None (``..``, NUL bytes, empty parts)."""
    parts = PurePosixPath(rel).parts
    ok = (rel and "\x00" not in rel and len(rel) <= 1024 and not rel.startswith("/")
          and not any(p in ("..", ".") for p in parts) and "//" not in rel
          and PurePosixPath(rel).suffix.lower() in SERVED_SUFFIXES)
    return rel if ok else None


def safe_file(root: Path, rel: str) -> Path | None:
    """The file for ``rel`` if it lies inside ``root`` (symlinks resolved) and is of a served type."""
    try:
        candidate = (root / rel).resolve()
        ok = candidate.is_relative_to(root) and candidate.is_file() and candidate.suffix.lower() in SERVED_SUFFIXES
    except (ValueError, OSError):  # a NUL byte, a name too long, a symlink loop: no such artifact
        return None
    return candidate if ok else None


def create_app(root: Path | str | None = None, *, authorize: bool = True) -> Any:
    """``root``: a local folder or an object-storage URI; by default the tasks' setting, read per request."""
    from fastapi import Depends, FastAPI, HTTPException
    from fastapi.responses import FileResponse, HTMLResponse, Response

    dependencies = []
    if authorize:
        from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
        from airflow.api_fastapi.core_api.security import requires_access_view

        dependencies.append(Depends(requires_access_view(AccessView.WEBSITE)))
    app = FastAPI(title="ragops artifacts", dependencies=dependencies, docs_url=None, redoc_url=None,
                  openapi_url=None)

    def current_root() -> Path | str:
        found = root or artifact_root_uri()
        if not found:
            raise HTTPException(404, "no artifact root is configured")
        if isinstance(found, str) and not is_remote(found):
            return Path(found.removeprefix("file://")).resolve()
        return found

    def listing(base: Path | str) -> list[str]:
        if isinstance(base, Path):
            evaluations = base / "evaluations"
            return sorted(p.relative_to(base).as_posix() for p in evaluations.rglob("*")
                          if p.is_file() and p.suffix in {".png", ".json"}) if evaluations.exists() else []
        store = remote_store(base)
        evaluations = store.path("evaluations")
        prefix = str(store.path("x"))[:-1]
        return sorted(str(p).removeprefix(prefix) for p in evaluations.rglob("*")
                      if p.suffix in {".png", ".json"} and p.is_file()) if evaluations.exists() else []

    @app.get("/", response_class=HTMLResponse)
    def index() -> HTMLResponse:
        items = listing(current_root())
        rows = "".join(f'<li><a href="{URL_PREFIX}/files/{html.escape(i)}">{html.escape(i)}</a></li>' for i in items)
        page = f"<html><body><h1>ragops evaluations</h1><ul>{rows or '<li>none yet</li>'}</ul></body></html>"
        return HTMLResponse(page, headers={"X-Content-Type-Options": "nosniff"})

    @app.get("/files/{rel:path}")
    def serve(rel: str) -> Any:
        base = current_root()
        if isinstance(base, Path):
            found = safe_file(base, rel)
            if found is None:
                raise HTTPException(404, "no such artifact")  # the path is not echoed back
            download = found.suffix.lower() in DOWNLOAD_ONLY
            return FileResponse(found, headers=SECURITY_HEADERS, filename=found.name if download else None,
                                content_disposition_type="attachment" if download else "inline")
        key = safe_rel(rel)
        try:
            data = remote_store(base).read_bytes(key) if key else None
        except (FileNotFoundError, IsADirectoryError, ValueError):
            data = None
        if data is None or key is None:
            raise HTTPException(404, "no such artifact")
        name = PurePosixPath(key).name
        headers = dict(SECURITY_HEADERS)
        if PurePosixPath(key).suffix.lower() in DOWNLOAD_ONLY:
            headers["Content-Disposition"] = f'attachment; filename="{name.replace(chr(34), "")}"'
        media_type = mimetypes.guess_type(name)[0] or "application/octet-stream"
        return Response(data, media_type=media_type, headers=headers)

    return app


class RagopsArtifactsPlugin(AirflowPlugin):
    name = "ragops_artifacts"
    fastapi_apps = [{"app": create_app(), "url_prefix": URL_PREFIX, "name": "ragops artifacts"}]
    external_views = [{"name": "RAG artifacts", "href": f"{URL_PREFIX}/", "destination": "nav",
                       "category": "browse", "url_route": "ragops-artifacts"}]
