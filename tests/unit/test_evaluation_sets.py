"""Evaluation sets: `python -m ragops register-eval-set` (BEIR split or golden file, content-hashed
in the registry), and which sets a run sees (allowed roots respected: an outside set is skipped unread)."""

from __future__ import annotations

import json

import pytest

from ragops.cli import main
from ragops.config import RagopsSettings
from ragops.evaluation.sets import known_sets, load_set, register_eval_set
from ragops.services import Services
from ragops.vocabulary import EvalSetKind


def env_of(registry, tmp_path, **extra) -> dict[str, str]:
    return {"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
            "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"), "RAGOPS_VECTOR_DIR": str(tmp_path / "vectors"),
            "RAGOPS_VECTOR_BACKEND": "lancedb", **extra}


def beir_folder(root):
    folder = root / "minibeir"
    (folder / "qrels").mkdir(parents=True)
    (folder / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"question {i}"}) + "\n"
                                                  for i in range(3)))
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td2\t0\n")
    return folder


def golden(root, rows=(("how do I back up", "fx:backup.md"), ("what is the WAL", "fx:wal.md"))):
    path = root / "golden.jsonl"
    path.write_text("".join(json.dumps({"query": q, "doc_id": d}) + "\n" for q, d in rows))
    return path


def test_the_cli_registers_golden_files_and_beir_splits_by_content(registry, tmp_path, monkeypatch, capsys):
    for key, value in env_of(registry, tmp_path).items():
        monkeypatch.setenv(key, value)
    path = golden(tmp_path)
    assert main(["register-eval-set", "--golden", str(path)]) == 0
    assert main(["register-eval-set", "--golden", str(path)]) == 0          # the same content: the same version
    (art,) = registry.list_artifacts("eval_set")
    assert (art.name, art.version, art.uri, art.params["kind"], art.params["level"], art.metrics["queries"]) == (
        "golden-golden", 1, str(path.resolve()), "golden", "doc", 2)
    path.write_text(path.read_text() + json.dumps({"query": "new one", "doc_id": "fx:faq.txt"}) + "\n")
    assert main(["register-eval-set", "--golden", str(path)]) == 0
    assert [a.version for a in registry.list_artifacts("eval_set")] == [1, 2]

    folder = beir_folder(tmp_path)
    assert main(["register-eval-set", "--beir", str(folder), "--split", "test", "--name", "beir-mini"]) == 0
    beir = registry.find_artifact("eval_set", "beir-mini")
    assert beir.params["split"] == "test" and beir.params["kind"] == "beir" and beir.metrics["queries"] == 3
    assert "registered evaluation set" in capsys.readouterr().out

    assert main(["register-eval-set", "--beir", str(folder)]) == 2           # no split: one line, exit 2
    assert "--beir needs --split" in capsys.readouterr().err
    assert main(["register-eval-set", "--golden", str(tmp_path / "missing.jsonl")]) == 2
    with pytest.raises(SystemExit):
        main(["register-eval-set", "--golden", str(path), "--beir", str(folder)])


def test_a_run_sees_registered_sets_inside_the_allowed_roots_only(registry, tmp_path):
    inside, outside = tmp_path / "inside", tmp_path / "outside"
    inside.mkdir()
    outside.mkdir()
    cli = Services(RagopsSettings.from_env(env_of(registry, tmp_path)))
    register_eval_set(cli, golden=str(golden(inside)), name="golden-ok")
    register_eval_set(cli, beir=str(beir_folder(outside)), split="test", name="beir-outside")
    task = Services(RagopsSettings.from_env(env_of(registry, tmp_path, RAGOPS_ALLOWED_ROOTS=json.dumps([str(inside)]))))

    sets, skipped = known_sets(task, set(EvalSetKind), None)
    assert [s.name for s in sets] == ["golden-ok"] and set(skipped) == {"beir-outside"}
    assert "outside the folders runs may read" in skipped["beir-outside"]
    labelled = load_set(task, sets[0])
    assert sorted(labelled.queries.values()) == ["how do I back up", "what is the WAL"] and labelled.level == "doc"
    assert known_sets(task, {EvalSetKind.BEIR}, None) == ([], {"beir-outside": skipped["beir-outside"]})
    assert known_sets(task, {EvalSetKind.REVIEW}, None) == ([], {})         # no dataset: no dataset sets

    # with the folder allowed, the BEIR split is read (judged queries only) and sampled by seed
    wide = Services(RagopsSettings.from_env(env_of(registry, tmp_path, RAGOPS_ALLOWED_ROOTS=json.dumps([str(tmp_path)]))))
    sets, skipped = known_sets(wide, {EvalSetKind.BEIR}, None)
    assert skipped == {} and sets[0].split == "test"
    assert sorted(load_set(wide, sets[0]).qrels) == ["q0", "q1", "q2"]
    assert len(load_set(wide, sets[0], max_queries=2, seed=1).qrels) == 2


def test_the_latest_usable_dataset_gives_one_set_per_label_source_of_its_test_split(registry, tmp_path):
    from ragops.labels import labelled_hash, save_labelled
    from ragops.vocabulary import ArtifactKind, Status

    svc = Services(RagopsSettings.from_env(env_of(registry, tmp_path)))

    def row(i, source, split):
        return {"query_id": f"{split}{i}", "query": f"{split} question {i} {source}", "positive": "p", "negative": None,
                "doc_id": f"fx:d{i}", "chunk_id": f"c{i}", "kind": "imported" if source == "imported" else "llm",
                "label_source": source}

    splits = {"train": [row(0, "synthetic", "train"), row(1, "reviewed", "train")],
              "test": [row(2, "synthetic", "test"), row(3, "synthetic", "test"), row(4, "imported", "test")]}
    content_hash = labelled_hash(splits)
    rel = save_labelled(splits, svc, content_hash)
    art = registry.record_artifact(ArtifactKind.DATASET, "synthetic-queries", content_hash, svc.artifacts.uri(rel),
                                   status=Status.USABLE)
    sets, skipped = known_sets(svc, set(EvalSetKind), None)
    # the reviewed row is in train only: no review set (never evaluate on what was trained on)
    assert {s.name: (s.level, s.split, s.artifact_id) for s in sets} == {
        "synthetic-test": ("chunk", "test", art.id), "imported-test": ("doc", "test", art.id)} and skipped == {}
    synthetic = load_set(svc, next(s for s in sets if s.name == "synthetic-test"))
    assert sorted(synthetic.queries.values()) == ["test question 2 synthetic", "test question 3 synthetic"]
    assert sorted(ids for q in synthetic.qrels.values() for ids in q) == ["c2", "c3"]
    imported = load_set(svc, next(s for s in sets if s.name == "imported-test"))
    assert [list(q) for q in imported.qrels.values()] == [["fx:d4"]]
    assert [s.name for s in known_sets(svc, {EvalSetKind.SYNTHETIC}, None)[0]] == ["synthetic-test"]
