"""The control plane as a person uses it: signed in through Airflow's login page, opened from
Airflow's navigation, each page reached from the control plane's own navigation, and what each
page shows held against the lineage registry. A rollback clicked in the UI runs
rag_collection_rollback as the signed-in admin and moves the alias; a viewer reads every page
but is refused the rollback, and the alias stays where it was.
"""

from __future__ import annotations

import re
import warnings

import pytest
from playwright.sync_api import Frame, expect

from ragops.control_plane.actions import csrf_token
from ragops.lineage.registry import run_key_for
from ragops.vocabulary import CONTROL_PLANE_PREFIX, ArtifactKind, Relation
from tests.browser.ui import Person
from tests.e2e.cluster import wait_for

ROLLBACK_DAG = "rag_collection_rollback"
# The first test also waits for the session's Airflow and its lifecycle (several DAG runs): minutes
# on an idle 2-core machine, many more on a loaded one.
pytestmark = pytest.mark.timeout(2400)


def _open(person: Person, frame: Frame, page: str) -> None:
    """Follows the control plane's navigation link to ``page`` and keeps a screenshot."""
    frame.get_by_test_id(f"nav-{page}").click()
    frame.wait_for_url(re.compile(re.escape(f"{CONTROL_PLANE_PREFIX}/{page}")))
    frame.wait_for_load_state()
    person.shoot(page)


def _open_collection(person: Person, frame: Frame, alias: str) -> None:
    _open(person, frame, "collections")
    frame.get_by_test_id(f"collection-{alias}").click()
    frame.wait_for_url(re.compile(re.escape(f"/collections/{alias}")))
    expect(frame.get_by_test_id("live-version")).to_be_visible()
    person.shoot(f"collection-{alias}")


def _live_on_page(frame: Frame) -> tuple[int, int]:
    return (int(frame.get_by_test_id("live-version").inner_text().strip().removeprefix("v")),
            int(frame.get_by_test_id("live-collection-id").inner_text().strip()))


def _chunk_set_of(registry, collection_id: int) -> int:
    chunk_sets = [p.id for p, rel in registry.parents(collection_id) if rel == Relation.EMBEDDED_FROM]
    assert len(chunk_sets) == 1, chunk_sets
    return chunk_sets[0]


def _check_pages(person: Person, airflow_ui) -> None:
    """Every page from the control plane's navigation, its content held against the registry."""
    registry, lifecycle = airflow_ui.airflow.registry(), airflow_ui.lifecycle
    frame = person.open_control_plane()
    person.shoot("overview")

    _open_collection(person, frame, lifecycle.alias)
    live = registry.get_alias(ArtifactKind.COLLECTION, lifecycle.alias)
    assert _live_on_page(frame) == (live.version, live.id)

    # lineage: the live collection's graph has its chunk set as a node (an edge into the
    # collection), and every node links to that artifact's page
    frame.get_by_test_id(f"lineage-link-{live.id}").first.click()
    frame.wait_for_url(re.compile(re.escape(f"/lineage/{live.id}")))
    chunk_set = _chunk_set_of(registry, live.id)
    expect(frame.get_by_test_id(f"node-{live.id}")).to_be_visible()
    expect(frame.get_by_test_id(f"node-{chunk_set}")).to_be_visible()
    expect(frame.get_by_test_id(f"edge-{chunk_set}-{live.id}")).to_have_attribute("data-relation",
                                                                                   Relation.EMBEDDED_FROM)
    assert frame.get_by_test_id(f"node-{chunk_set}").get_attribute("href").endswith(f"/lineage/{chunk_set}")
    person.shoot("lineage")

    _open(person, frame, "models")
    model = registry.get_artifact(lifecycle.model_id)
    assert model.stage == "production"
    expect(frame.get_by_test_id(f"stage-{model.id}")).to_have_text(re.compile(rf"\b{model.stage}\b", re.I))

    _open(person, frame, "datasets")
    dataset = registry.get_artifact(lifecycle.dataset_id)
    rows = frame.get_by_test_id(f"dataset-rows-{dataset.id}").inner_text()
    assert int(rows) == _rows_in(airflow_ui.airflow, dataset), rows

    _open(person, frame, "runs")
    for dag_id, run_id in airflow_ui.airflow.triggered[:3]:
        expect(frame.get_by_test_id(f"run-{run_key_for(dag_id, run_id)}")).to_contain_text(run_id)

    _open(person, frame, "evaluations")
    if not lifecycle.evaluation_by_dag:
        warnings.warn(pytest.PytestWarning("the evaluation shown was recorded through the registry API: "
                                           "the bundle has no rag_evaluate DAG"), stacklevel=1)
    evaluation = registry.get_artifact(lifecycle.evaluation_id)
    eval_set, metrics = next(iter(sorted(evaluation.metrics["sets"].items())))
    metric = "ndcg@10" if "ndcg@10" in metrics else next(
        name for name, value in metrics.items() if name != "queries" and isinstance(value, float))
    point = frame.get_by_test_id(f"eval-point-{evaluation.id}-{eval_set}-{metric}")
    expect(point).to_be_attached()
    assert float(point.get_attribute("data-value")) == pytest.approx(metrics[metric], rel=1e-5), metrics


def _rows_in(airflow, dataset) -> int:
    """A dataset version's rows, counted in the dataset itself (both splits) in the artifact store."""
    from ragops.artifacts import ArtifactStore
    from ragops.synthetic.dataset import dataset_rows

    store = ArtifactStore(airflow.root / "artifacts")
    return sum(len(rows) for rows in dataset_rows(store, store.rel_of(dataset.uri)).values())


def _rollback_runs(airflow) -> list[dict]:
    return airflow.api.dag_runs(ROLLBACK_DAG)


def test_admin_signs_in_and_reads_every_page_against_the_registry(person, airflow_ui):
    _check_pages(person("admin"), airflow_ui)


def test_admin_rolls_back_from_the_ui_and_the_alias_moves(person, airflow_ui):
    airflow, lifecycle = airflow_ui.airflow, airflow_ui.lifecycle
    registry = airflow.registry()
    version_1 = registry.get_artifact(lifecycle.collection_ids[0])
    assert registry.get_alias(ArtifactKind.COLLECTION, lifecycle.alias).id != version_1.id, "v1 is live already"
    before = {run["dag_run_id"] for run in _rollback_runs(airflow)}

    admin = person("admin")
    frame = admin.open_control_plane()
    _open_collection(admin, frame, lifecycle.alias)
    frame.get_by_test_id(f"rollback-{version_1.id}").click()
    expect(frame.get_by_text(ROLLBACK_DAG).first).to_be_visible()   # the page names the run it started
    admin.shoot("rollback-requested")

    new = wait_for("the rollback's DAG run", lambda: [r for r in _rollback_runs(airflow)
                                                      if r["dag_run_id"] not in before], 60)
    assert len(new) == 1, new
    run = airflow.wait(ROLLBACK_DAG, new[0]["dag_run_id"])
    assert run["conf"]["alias"] == lifecycle.alias and int(run["conf"]["version"]) == version_1.version, run["conf"]
    assert run["triggering_user_name"] == "admin", run   # triggered as the signed-in user, not as the plugin

    live = registry.get_alias(ArtifactKind.COLLECTION, lifecycle.alias)
    assert live.id == version_1.id
    _open_collection(admin, frame, lifecycle.alias)
    assert _live_on_page(frame) == (version_1.version, version_1.id)
    admin.shoot("after-rollback")


def test_viewer_reads_the_pages_but_cannot_roll_back(person, airflow_ui):
    airflow, lifecycle = airflow_ui.airflow, airflow_ui.lifecycle
    registry = airflow.registry()
    viewer = person("viewer")
    _check_pages(viewer, airflow_ui)

    live_before = registry.get_alias(ArtifactKind.COLLECTION, lifecycle.alias)
    target = next(cid for cid in lifecycle.collection_ids if cid != live_before.id)
    runs_before = {run["dag_run_id"] for run in _rollback_runs(airflow)}
    frame = viewer.open_control_plane()
    _open_collection(viewer, frame, lifecycle.alias)
    button = frame.get_by_test_id(f"rollback-{target}")
    if button.count():           # shown but refused: the action answers 403
        with viewer.page.expect_response(lambda r: r.request.method == "POST") as answer:
            button.click()
        assert answer.value.status == 403, (answer.value.status, answer.value.url)
        expect(frame.get_by_text(ROLLBACK_DAG).first).to_be_visible()
        viewer.shoot("rollback-refused")
    # a POST made by hand with the viewer's own session and form token is refused as well
    token = next(c["value"] for c in viewer.page.context.cookies() if c["name"] == "_token")
    direct = viewer.page.context.request.post(
        f"{airflow.base_url}{CONTROL_PLANE_PREFIX}/actions/collection-rollback",
        form={"artifact_id": str(target), "csrf_token": csrf_token(token)}, max_redirects=0)
    # refused for the permission (the answer names the DAG), not for a stale form
    assert direct.status == 403 and ROLLBACK_DAG in direct.text(), (direct.status, direct.text()[:500])

    assert {run["dag_run_id"] for run in _rollback_runs(airflow)} == runs_before
    assert registry.get_alias(ArtifactKind.COLLECTION, lifecycle.alias).id == live_before.id
