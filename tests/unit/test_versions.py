"""Collection versions: cleanup keeps rollback targets, swaps are compare-and-swap under a lock,
and a retry after a half-done swap still reports the change (so the asset event fires)."""

from __future__ import annotations

import pytest

from ragops.config import RagopsSettings
from ragops.errors import AliasMoved
from ragops.indexing import versions
from ragops.indexing.records import Plan
from ragops.runs import RunRef
from ragops.services import Services
from ragops.stores.base import VectorObject
from ragops.vocabulary import AliasKind, ArtifactKind, Status

RUN = RunRef("rag_index/r", "rag_index", "r")


@pytest.fixture
def svc(registry, tmp_path):
    registry.start_run("rag_index", "r")
    return Services(RagopsSettings.from_env({
        "RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
        "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "RAGOPS_VECTOR_DIR": str(tmp_path / "vectors")}))


def version(svc: Services, n: int, status: Status, objects: int = 1) -> Plan:
    name = f"Docs_{n:012d}"
    svc.store.create_collection(name, 2, {})
    svc.store.upsert(name, [VectorObject(id=f"{n}-{i}", properties={"text": "t"}, vector=[1.0, 0.0])
                            for i in range(objects)])
    art = svc.registry.record_artifact(ArtifactKind.COLLECTION, "Docs", str(n), name, status=status,
                                       metrics={"chunks": objects}, run_key=RUN.run_key)
    live = svc.registry.get_alias(AliasKind.COLLECTION, "Docs")
    return Plan("build", name, art.id, art.version, svc.store.get_alias("Docs"), live.id if live else None, (), {})


def _live_id(svc: Services) -> int | None:
    live = svc.registry.get_alias(AliasKind.COLLECTION, "Docs")
    return live.id if live else None


def test_gate_failures_never_push_rollback_targets_out(svc):
    good = [version(svc, i, Status.READY) for i in range(1, 4)]
    for plan in good:
        versions.swap_alias(svc, "Docs", RUN, plan.replace(live_before=svc.store.get_alias("Docs"),
                            live_before_id=_live_id(svc)))
    for i in (4, 5):  # two later builds that failed their gate
        version(svc, i, Status.FAILED_GATE)
    cleanup = versions.cleanup_versions(svc, "Docs", keep=2)
    assert set(cleanup.kept) == {good[2].collection, good[1].collection}
    assert set(cleanup.deleted) == {good[0].collection, "Docs_000000000004", "Docs_000000000005"}
    statuses = {a.uri: a.status for a in svc.registry.list_artifacts(ArtifactKind.COLLECTION, "Docs")}
    assert statuses[good[1].collection] == Status.SUPERSEDED and statuses["Docs_000000000005"] == Status.DELETED
    # The superseded version is still a rollback target.
    assert versions.rollback(svc, "Docs", good[1].version, RUN).collection == good[1].collection


def test_swap_refuses_an_alias_a_rollback_moved_meanwhile(svc):
    first = version(svc, 1, Status.READY)
    second = version(svc, 2, Status.READY)
    versions.swap_alias(svc, "Docs", RUN, first)
    versions.swap_alias(svc, "Docs", RUN, second.replace(live_before=first.collection, live_before_id=first.artifact_id))
    building = version(svc, 3, Status.READY)            # planned while v2 was live
    versions.rollback(svc, "Docs", first.version, RUN)   # then someone rolled back to v1
    with pytest.raises(AliasMoved, match="another run moved it"):
        versions.swap_alias(svc, "Docs", RUN, building)
    assert svc.store.get_alias("Docs") == first.collection
    assert svc.registry.get_alias(AliasKind.COLLECTION, "Docs").id == first.artifact_id
    assert second.collection != building.collection


def test_retry_after_store_moved_but_record_failed_still_reports_the_change(svc, monkeypatch):
    first = version(svc, 1, Status.READY)
    versions.swap_alias(svc, "Docs", RUN, first)
    plan = version(svc, 2, Status.READY)  # planned with v1 live

    def registry_down(*args, **kwargs):
        raise ConnectionError("postgres restarted")

    with monkeypatch.context() as m:
        m.setattr(type(svc.registry), "set_alias", registry_down)
        with pytest.raises(ConnectionError):
            versions.swap_alias(svc, "Docs", RUN, plan)
    assert svc.store.get_alias("Docs") == plan.collection  # the store moved, the registry did not
    retry = versions.swap_alias(svc, "Docs", RUN, plan)
    assert retry.moved is False and retry.registry_changed is True and retry.skip_reason is None
    assert [uri for uri, _ in retry.asset_events()] == ["ragops://collection/Docs"]
    again = versions.swap_alias(svc, "Docs", RUN, plan)
    assert again.skip_reason and again.asset_events() == []


def test_rollback_to_the_live_version_moves_nothing(svc):
    first = version(svc, 1, Status.READY)
    versions.swap_alias(svc, "Docs", RUN, first)
    swap = versions.rollback(svc, "Docs", first.version, RUN)
    assert swap.moved is False and swap.asset_events() == [] and swap.skip_reason
