"""Actions: each triggers a DAG through Airflow's REST API as the signed-in user.

The control plane changes nothing itself. An action is a DAG run of the DAG that does the work
(``rag_collection_rollback``, ``rag_model_rollback`` and its LLM/reranker siblings, ``rag_index``,
``rag_evaluate``), with a conf built from the registry and validated by that DAG's own
``ParamSpec``. The request carries the user's own token, so Airflow's permissions, its audit log
and the run's "triggered by" name the person, not the plugin.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from ragops.control_plane.queries import (
    COLLECTION_ROLLBACK_DAG,
    EVALUATE_DAG,
    INDEX_DAG,
    MODEL_ROLLBACK_DAGS,
)
from ragops.errors import InvalidInput
from ragops.services import Services
from ragops.vocabulary import NEVER_LIVE, AliasKind, ArtifactKind, Stage

TRIGGER_TIMEOUT_S = 30.0
NOTE = "triggered from the ragops control plane"


class ActionRefused(Exception):
    """Airflow (or the control plane's own check) said no: ``status`` is the HTTP status to show."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Trigger:
    """A DAG run to create: which DAG, with which conf, and what it is for (shown to the user)."""

    dag_id: str
    conf: dict[str, Any] = field(default_factory=dict)
    purpose: str = ""


@dataclass(frozen=True)
class TriggeredRun:
    dag_id: str
    run_id: str
    state: str
    purpose: str

    @property
    def ui_path(self) -> str:
        """The run's page in the Airflow UI."""
        return f"/dags/{quote(self.dag_id, safe='')}/runs/{quote(self.run_id, safe='')}"


def _artifact(svc: Services, artifact_id: int, kind: str) -> Any:
    art = svc.registry.get_artifact(artifact_id)
    if art is None or art.kind != kind:
        raise InvalidInput(f"artifact {artifact_id} is not a {kind}")
    return art


def collection_rollback(svc: Services, artifact_id: int) -> Trigger:
    from ragops.indexing.params import CollectionRollbackParams

    art = _artifact(svc, artifact_id, ArtifactKind.COLLECTION)
    if art.status in NEVER_LIVE:
        raise InvalidInput(f"collection {art.name} v{art.version} has status {art.status!r} and cannot go live")
    params = CollectionRollbackParams.from_mapping({"alias": art.name, "version": art.version})
    return Trigger(COLLECTION_ROLLBACK_DAG, params.as_dict(), f"roll {art.name} back to v{art.version}")


def model_rollback(svc: Services, artifact_id: int, user: str) -> Trigger:
    from ragops.training.params import ModelRollbackParams

    art = _artifact(svc, artifact_id, ArtifactKind.MODEL)
    dag_id = MODEL_ROLLBACK_DAGS.get(art.name)
    if dag_id is None:
        raise InvalidInput(f"no rollback DAG serves the model {art.name!r}")
    if art.stage != Stage.ARCHIVED:
        raise InvalidInput(f"model {art.name} v{art.version} is {art.stage or 'unstaged'}, not an archived version")
    # The three rollback DAGs share this shape (to_version, reason); the embedding one validates it.
    params = ModelRollbackParams.from_mapping({"to_version": art.version,
                                               "reason": f"rollback to v{art.version} from the control plane by {user}"})
    return Trigger(dag_id, params.as_dict(), f"put {art.name} v{art.version} back in production")


def reindex(svc: Services, alias: str) -> Trigger:
    """Re-index the alias from the sources its live version was built from (else the DAG's defaults)."""
    from ragops.indexing.params import IndexParams

    values: dict[str, Any] = {"alias": alias}
    live = svc.registry.get_alias(AliasKind.COLLECTION, alias)
    corpus = svc.registry.corpus_of(live.id) if live is not None else None
    if corpus and corpus["params"].get("sources"):
        values["sources"] = corpus["params"]["sources"]
    params = IndexParams.from_mapping(values)
    return Trigger(INDEX_DAG, {k: params.as_dict()[k] for k in values}, f"re-index {alias}")


def evaluate(svc: Services, alias: str) -> Trigger:
    from ragops.evaluation.params import EvaluateParams

    params = EvaluateParams.from_mapping({"alias": alias})
    return Trigger(EVALUATE_DAG, {"alias": params.alias}, f"evaluate the live version of {alias}")


def trigger(api_base_url: str, token: str, action: Trigger, *, transport: Any = None) -> TriggeredRun:
    """``POST /api/v2/dags/{dag_id}/dagRuns`` on the API server, with the user's own bearer token."""
    import httpx

    url = f"{api_base_url.rstrip('/')}/api/v2/dags/{quote(action.dag_id, safe='')}/dagRuns"
    body = {"logical_date": None, "conf": action.conf, "note": NOTE}
    try:
        with httpx.Client(timeout=TRIGGER_TIMEOUT_S, transport=transport) as client:
            response = client.post(url, json=body, headers={"Authorization": f"Bearer {token}"})
    except httpx.HTTPError as exc:
        raise ActionRefused(502, f"the Airflow API could not be reached: {type(exc).__name__}") from exc
    if response.status_code not in (200, 201):
        raise ActionRefused(response.status_code, f"Airflow refused to trigger {action.dag_id}: "
                                                  f"{_detail(response)}")
    run = response.json()
    return TriggeredRun(action.dag_id, str(run["dag_run_id"]), str(run.get("state") or "queued"), action.purpose)


def _detail(response: Any) -> str:
    try:
        detail = response.json().get("detail")
    except ValueError:
        detail = None
    return str(detail or response.reason_phrase or response.status_code)[:300]


def csrf_token(session_token: str) -> str:
    """The form token of a session: derived from the user's own JWT, which another site never sees,
    so it is the same on every API server worker and needs no server state."""
    return hmac.new(session_token.encode(), b"ragops-control-plane-form", hashlib.sha256).hexdigest()


def csrf_ok(session_token: str, submitted: str | None) -> bool:
    return bool(submitted) and hmac.compare_digest(csrf_token(session_token), submitted or "")
