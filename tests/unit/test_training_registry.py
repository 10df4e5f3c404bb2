"""Model promotion and rollback in the real lineage registry (Postgres, a schema per test)."""

from __future__ import annotations

import pytest

from ragops.errors import InvalidInput
from ragops.models import (
    materialize,
    promote,
    register_base_model,
    register_candidate,
    resolve_embedding_model,
    rollback,
)
from ragops.vocabulary import MODEL_NAME, ArtifactKind, Stage

MODEL_KIND = ArtifactKind.MODEL


def fake_model(tmp_path, name: str) -> str:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    return str(folder)


def production(registry):
    return registry.in_stage(MODEL_KIND, MODEL_NAME, Stage.PRODUCTION)


def test_promotion_archives_the_previous_version_with_history(registry, artifact_store, tmp_path):
    run_key = registry.start_run("rag_finetune_embeddings", "r1")
    base = register_base_model(registry, run_key=run_key)
    c1 = register_candidate(registry, fake_model(tmp_path, "c1"), "1" * 64, run_key=run_key,
                            parents=[(base.id, "finetuned_from")])
    c2 = register_candidate(registry, fake_model(tmp_path, "c2"), "2" * 64, run_key=run_key)
    assert c1.stage == c2.stage == "candidate" and (c1.version, c2.version) == (base.version + 1, base.version + 2)

    first = promote(registry, c1.id, run_key, "gate approved")
    assert first.promoted and first.previous_artifact_id is None and production(registry).id == c1.id
    assert first.skip_reason is None and first.asset_events()[0][1]["artifact_id"] == c1.id
    second = promote(registry, c2.id, run_key, "gate approved again")
    assert second.previous_artifact_id == c1.id and second.archived == (c1.id,)
    assert production(registry).id == c2.id and registry.get_artifact(c1.id).stage == "archived"
    assert [a.id for a in registry.list_artifacts(MODEL_KIND, "embeddings") if a.stage == "production"] == [c2.id]
    assert [(h["from_stage"], h["to_stage"]) for h in registry.stage_history(c1.id)] == [
        ("candidate", "production"), ("production", "archived")]
    # Promoting the live version again changes nothing and records nothing.
    again = promote(registry, c2.id, run_key, "again")
    assert again.promoted is False and "already production" in again.skip_reason and again.asset_events() == []
    assert len(registry.stage_history(c2.id)) == 1
    # The live model resolves to the promoted version.
    live = resolve_embedding_model("production", registry)
    assert live.artifact_id == c2.id and live.model_id == f"embeddings:v{c2.version}"
    # Re-registering the production weights (a re-run) keeps the stage.
    assert register_candidate(registry, c2.uri, c2.content_hash).stage == "production"


def test_rollback_restores_an_earlier_production_version(registry, artifact_store, tmp_path):
    base = register_base_model(registry)
    c1 = register_candidate(registry, fake_model(tmp_path, "c1"), "1" * 64)
    c2 = register_candidate(registry, fake_model(tmp_path, "c2"), "2" * 64)
    never = register_candidate(registry, fake_model(tmp_path, "c3"), "3" * 64)
    promote(registry, c1.id, None, "gate approved")
    promote(registry, c2.id, None, "gate approved")

    run_key = registry.start_run("rag_model_rollback", "manual__1")
    result = rollback(registry, c1.version, run_key=run_key, reason="c2 hurts recall")
    assert result.rollback and result.promoted and result.previous_version == c2.version
    assert result.asset_events()[0][1]["rollback"] is True
    assert production(registry).id == c1.id and registry.get_artifact(c2.id).stage == "archived"
    history = registry.stage_history_of(MODEL_KIND, MODEL_NAME)
    assert history[-2:] == [
        {"version": c2.version, "from_stage": "production", "to_stage": "archived",
         "reason": f"superseded by artifact {c1.id}", "run_key": run_key},
        {"version": c1.version, "from_stage": "archived", "to_stage": "production", "reason": "c2 hurts recall",
         "run_key": run_key},
    ]
    # The base model is always a valid target; a version that never went live is not.
    assert rollback(registry, base.version).model.model_id == f"embeddings:v{base.version}"
    live = resolve_embedding_model("production", registry)
    assert materialize(live, artifact_store, tmp_path / "cache").endswith("model")
    with pytest.raises(InvalidInput, match="never in production"):
        rollback(registry, never.version)
    with pytest.raises(InvalidInput, match="no version 99"):
        rollback(registry, 99)
    assert production(registry).id == base.id


def test_promote_refuses_what_is_not_a_model(registry):
    other = registry.record_artifact("dataset", "synthetic-queries", "d" * 64, "/data/x", status="usable")
    with pytest.raises(InvalidInput, match="not a registered 'model'"):
        promote(registry, other.id, None, "oops")
    assert registry.in_stage("dataset", "synthetic-queries", "production") is None
