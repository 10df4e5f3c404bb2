"""The control plane's Airflow side: who the user is, what the auth manager lets them do, where the
API server is, and the services read from Airflow's Connections and Variables.

Imports of Airflow stay inside the functions: the rest of the package (queries, pages, SVG)
imports and runs without Airflow.
"""

from __future__ import annotations

from typing import Any

from ragops.services import Services

# The UI's session cookie (airflow.api_fastapi.auth.managers.base_auth_manager.COOKIE_NAME_JWT_TOKEN).
SESSION_COOKIE = "_token"


def session_token(request: Any) -> str | None:
    """The caller's own JWT: the Authorization bearer first (as Airflow's get_user reads it), else the UI's cookie."""
    scheme, _, credentials = (request.headers.get("authorization") or "").partition(" ")
    if scheme.lower() == "bearer" and credentials.strip():
        return credentials.strip()
    return request.cookies.get(SESSION_COOKIE) or None


def view_dependency() -> Any:
    """Airflow's own check for its pages: a signed-in user with view access to the website."""
    from airflow.api_fastapi.auth.managers.models.resource_details import AccessView
    from airflow.api_fastapi.core_api.security import requires_access_view

    return requires_access_view(AccessView.WEBSITE)


def user_dependency() -> Any:
    from airflow.api_fastapi.core_api.security import get_user

    return get_user


def may_trigger(user: Any, dag_id: str) -> bool:
    """Whether the auth manager lets ``user`` create runs of ``dag_id`` (Airflow checks again on the trigger)."""
    from airflow.api_fastapi.app import get_auth_manager
    from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity, DagDetails

    return bool(get_auth_manager().is_authorized_dag(method="POST", access_entity=DagAccessEntity.RUN,
                                                     details=DagDetails(id=dag_id), user=user))


def user_name(user: Any) -> str:
    try:
        return str(user.get_name())
    except (AttributeError, NotImplementedError):  # a user without a name: the audit log has the token's
        return "unknown user"


def api_base_url() -> str:
    """The API server's own base URL: ``[api] base_url``, else its bind address on loopback."""
    from airflow.configuration import conf

    base = conf.get("api", "base_url", fallback="") or ""
    if base.startswith(("http://", "https://")):
        return base.rstrip("/")
    host = conf.get("api", "host", fallback="127.0.0.1") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
    return f"http://{host}:{conf.getint('api', 'port', fallback=8080)}"


def services_from_airflow() -> Services:
    """The tasks' services, read from Connections and Variables (the registry's Postgres, the artifact
    root through ObjectStoragePath): the pages show what the tasks wrote."""
    from ragops.orchestration import connections

    settings = connections.settings_from_airflow()
    return Services(settings, artifact_root_path=connections.artifact_root_path(settings))
