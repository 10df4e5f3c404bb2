"""Tier 1: every DAG imports cleanly and follows the bundle's conventions."""

from __future__ import annotations

import ast
import json
from datetime import timedelta
from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
# The trigger form's params of every DAG before the params specs existed: the specs must generate
# exactly these (users' saved confs and muscle memory depend on them).
TRIGGER_FORM = json.loads((Path(__file__).parent / "snapshots" / "trigger_form_params.json").read_text())
# What starts each DAG (its timetable's summary): a change here is a change users see.
SCHEDULES = {
    "rag_index": ("0 2 * * *", ["ragops://model/embeddings"]),
    "rag_synthetic_data": ("0 4 * * 0", ["ragops://collection/RagDocs"]),
    "rag_finetune_embeddings": (None, ["ragops://dataset/synthetic-queries"]),
    "rag_collection_rollback": (None, []),
    "rag_model_rollback": (None, []),
    "rag_train_reranker": ("0 5 * * 1", ["ragops://dataset/synthetic-queries"]),
    "rag_finetune_llm": (None, ["ragops://dataset/synthetic-queries"]),
    "rag_llm_rollback": (None, []),
    "rag_evaluate": ("0 6 * * *", ["ragops://collection/RagDocs", "ragops://model/embeddings", "ragops://model/reranker"]),
    "rag_reranker_rollback": (None, []),
}


def schedule_of(dag) -> tuple[str | None, list[str]]:
    """A DAG's cron (if any) and the asset URIs that trigger it."""
    import re

    timetable = dag.timetable
    cron = getattr(getattr(timetable, "timetable", None), "expression", None)
    condition = getattr(timetable, "asset_condition", None)
    return cron, sorted(re.findall(r"uri='([^']+)'", repr(condition))) if condition is not None else []


HEAVY = {"torch", "sentence_transformers", "transformers", "lancedb", "weaviate", "great_expectations",
         "datasets", "pandas", "numpy", "openai", "pyarrow"}


@pytest.fixture(scope="module")
def dagbag(airflow_home):
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def dag_files() -> list[Path]:
    return sorted(p for p in DAGS.glob("*.py") if not p.name.startswith("_"))


def test_no_import_errors(dagbag):
    assert dagbag.import_errors == {}
    assert len(dagbag.dags) == len(dag_files())


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_dag_conventions(dagbag, path):
    dag = dagbag.get_dag(path.stem)
    assert dag is not None, f"{path.name} must define the DAG {path.stem!r} (file stem = dag_id)"
    assert dag.doc_md and dag.doc_md.strip().startswith(f"# {path.stem}"), "doc_md must be the module docstring"
    assert "Connections" in dag.doc_md or "connections" in dag.doc_md
    assert "Params" in dag.doc_md or "params" in dag.doc_md
    assert dag.tags and "ragops" in dag.tags
    assert dag.catchup is False
    assert dag.start_date.tzinfo is not None
    assert schedule_of(dag) == SCHEDULES[path.stem]
    assert dag.default_args.get("retries", 0) >= 1
    assert isinstance(dag.default_args.get("retry_delay"), timedelta)
    for name, param in dag.params.items():
        assert param.description, f"{path.stem}: param {name!r} needs a description"


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_no_top_level_work(path):
    """No heavy imports, Variable.get or connections at module level: parsing stays cheap."""
    tree = ast.parse(path.read_text())
    for node in tree.body:
        if isinstance(node, ast.Import | ast.ImportFrom):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            for name in names:
                assert name.split(".")[0] not in HEAVY, f"{path.name} imports {name} at top level"
    # Calls evaluated at parse time: anything outside function bodies (decorator arguments included).
    parse_time_calls = []
    for node in tree.body:
        nodes = [*node.decorator_list, *node.args.defaults] if isinstance(node, ast.FunctionDef) else [node]
        for part in nodes:
            parse_time_calls += [c for c in ast.walk(part) if isinstance(c, ast.Call)]
    names = {ast.unparse(c.func) for c in parse_time_calls}
    assert not {n for n in names if n.endswith(("Variable.get", "get_connection", "Connection.get"))}, names


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_trigger_form_unchanged(dagbag, path):
    """The params spec generates the trigger form of the snapshot: names, defaults, descriptions
    and JSON schemas, value types included (as JSON: 0 is not 0.0 in the form)."""
    params = dagbag.get_dag(path.stem).params
    form = {name: {"default": params.get_param(name).value, "description": params.get_param(name).description,
                   "schema": params.get_param(name).schema} for name in params}
    want = TRIGGER_FORM[path.stem]
    assert sorted(form) == sorted(want)
    for name in want:
        assert json.dumps(form[name], sort_keys=True) == json.dumps(want[name], sort_keys=True), name


@pytest.mark.parametrize("path", dag_files(), ids=lambda p: p.stem)
def test_task_bodies_are_one_call_into_the_logic_package(path):
    """Each task body: an optional docstring, lazy imports, then one return of one call into the
    logic package (a map label may be set first). Plumbing lives in the runtime, logic in ragops."""
    tree = ast.parse(path.read_text())
    (dag_fn,) = [n for n in tree.body if isinstance(n, ast.FunctionDef)]
    tasks = [n for n in dag_fn.body if isinstance(n, ast.FunctionDef)]
    assert tasks, f"{path.name} defines no tasks"
    for fn in tasks:
        body = [n for n in fn.body if not isinstance(n, ast.Import | ast.ImportFrom)
                and not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        labels = [n for n in body if isinstance(n, ast.Assign) and "context" in ast.unparse(n.targets[0])]
        work = [n for n in body if n not in labels]
        assert len(work) == 1 and isinstance(work[0], ast.Return), f"{path.stem}.{fn.name}:\n{ast.unparse(fn)}"
        calls = [c for c in ast.walk(work[0]) if isinstance(c, ast.Call)]
        assert len(calls) <= 1, f"{path.stem}.{fn.name} does more than one call: {ast.unparse(work[0])}"
