"""Collection versions behind an alias: swap, clean up, roll back.

Everything that moves an alias or deletes a collection holds the alias' lock (a Postgres
advisory lock: index runs, rollbacks and the CLI may run on different hosts), and a swap is a
compare-and-swap against what the run's plan saw: a rollback made while a run was building is
never silently undone.
"""

from __future__ import annotations

import logging

from ragops.errors import AliasMoved, InvalidInput
from ragops.indexing.records import Cleanup, Plan, Swap
from ragops.runs import RunRef
from ragops.services import Services
from ragops.vocabulary import NEVER_LIVE, AliasKind, ArtifactKind, RunStatus, Status

log = logging.getLogger(__name__)

# Versions that count toward keep_versions: they are, were or may be live (rollback targets).
USABLE = frozenset({Status.LIVE, Status.SUPERSEDED, Status.READY})
# Versions that never will be: removed from the store at the next cleanup.
FAILED = frozenset({Status.FAILED_GATE, Status.FAILED_DQ})


def swap_alias(svc: Services, alias: str, run: RunRef, plan: Plan, reason: str = "gate passed") -> Swap:
    """Points the alias at the gated collection (one atomic switch in the store), then records it.

    A retry finds the alias already moved and completes the record; the swap says whether the
    registry's alias changed, so the asset event is emitted exactly when it did."""
    with svc.registry.alias_lock(alias):
        current = svc.store.get_alias(alias)
        if current not in (plan.live_before, plan.collection):
            raise AliasMoved(f"alias {alias!r} points at {current}, not {plan.live_before} as when this run planned: "
                             f"another run moved it; {plan.collection} was not made live")
        previous = svc.store.set_alias(alias, plan.collection)
        return _record_swap(svc, alias, run, plan.artifact_id, plan.collection, previous, reason,
                            expected=plan.live_before_id)


def _record_swap(svc: Services, alias: str, run: RunRef | None, artifact_id: int, collection: str,
                 previous: str | None, reason: str, expected: int | None | type[Ellipsis] = ...) -> Swap:
    registry = svc.registry
    before = registry.get_alias(AliasKind.COLLECTION, alias)
    registry.set_alias(AliasKind.COLLECTION, alias, artifact_id, reason=reason,
                       run_key=run.run_key if run else None,
                       expected=expected if before is None or before.id != artifact_id else ...)
    registry.update_artifact(artifact_id, status=Status.LIVE)
    if before is not None and before.id != artifact_id:
        registry.update_artifact(before.id, status=Status.SUPERSEDED)
    return Swap(alias, collection, artifact_id, previous, moved=previous != collection,
                registry_changed=before is None or before.id != artifact_id)


def cleanup_versions(svc: Services, alias: str, keep: int) -> Cleanup:
    """Keeps the live version and the newest ``keep`` usable ones (live, superseded, ready);
    deletes older usable ones, failed ones, and builds abandoned by runs that have ended."""
    store, registry = svc.store, svc.registry
    kept: list[str] = []
    deleted: list[str] = []
    with registry.alias_lock(alias):
        live = store.get_alias(alias)
        existing = set(store.list_collections(prefix=f"{alias}_"))
        for art in sorted(registry.list_artifacts(ArtifactKind.COLLECTION, alias), key=lambda a: -a.version):
            if art.uri not in existing:
                continue
            if art.uri == live or (art.status in USABLE and len(kept) < keep):
                kept.append(art.uri)
                continue
            if art.status == Status.BUILDING and _still_running(svc, art.run_key):
                continue  # another run is building it right now
            store.delete_collection(art.uri)
            registry.update_artifact(art.id, status=Status.DELETED)
            deleted.append(art.uri)
    return Cleanup(tuple(kept), tuple(deleted))


def _still_running(svc: Services, run_key: str | None) -> bool:
    run = svc.registry.get_run(run_key) if run_key else None
    return run is not None and run["status"] == RunStatus.RUNNING


def rollback(svc: Services, alias: str, version: int, run: RunRef | None = None) -> Swap:
    """Points the alias back at an earlier version, after checking it is still whole."""
    registry, store = svc.registry, svc.store
    art = registry.find_artifact(ArtifactKind.COLLECTION, alias, version=version)
    if art is None:
        raise InvalidInput(f"collection alias {alias!r} has no version {version} in the lineage registry")
    if art.status in NEVER_LIVE:
        raise InvalidInput(f"collection {art.uri} (v{version}) has status {art.status!r} and cannot go live")
    with registry.alias_lock(alias):
        if not store.collection_exists(art.uri):
            raise InvalidInput(f"collection {art.uri} (v{version}) no longer exists in the vector store")
        expected = (art.metrics or {}).get("chunks")
        count = store.count(art.uri)
        if expected is not None and count != expected:
            raise InvalidInput(f"collection {art.uri} holds {count} objects, expected {expected}")
        previous = store.set_alias(alias, art.uri)
        return _record_swap(svc, alias, run, art.id, art.uri, previous, f"rollback to v{version}")
