"""Issue 9, defect 6: a run's params read only inside the allowed roots, and the prompt param stays
in the prompts folder. No Postgres needed: every check runs before anything is read or listed."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

from ragops.config import RagopsSettings, parse_roots, within_roots
from ragops.errors import InvalidInput
from ragops.services import Services


def services(tmp_path: Path, roots: list[str] | None) -> Services:
    env = {"RAGOPS_PG_DSN": "postgresql://unused", "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts"),
           "RAGOPS_VECTOR_DIR": str(tmp_path / "vectors")}
    if roots is not None:
        env["RAGOPS_ALLOWED_ROOTS"] = ":".join(roots)
    return Services(RagopsSettings.from_env(env))


@pytest.fixture
def allowed(tmp_path) -> Path:
    folder = tmp_path / "data"
    (folder / "docs").mkdir(parents=True)
    (folder / "docs" / "a.md").write_text("# A\n\nSome text about allowed things.\n")
    return folder


def test_roots_parse_from_json_or_pathsep():
    assert parse_roots('["/a", "/b c"]') == ("/a", "/b c")
    assert parse_roots(f"/a{os.pathsep}/b") == ("/a", "/b")
    with pytest.raises(ValueError):
        parse_roots('["/a", 3]')


def test_within_roots_resolves_dotdot_and_symlinks(allowed, tmp_path):
    assert within_roots(allowed / "docs", (str(allowed),))
    assert not within_roots(allowed / ".." / "elsewhere", (str(allowed),))
    (allowed / "escape").symlink_to("/etc")
    assert not within_roots(allowed / "escape", (str(allowed),))
    assert not within_roots("/etc/passwd", (str(allowed),))


@pytest.mark.parametrize("source, param", [
    ({"type": "folder", "name": "etc", "path": "/etc"}, "sources[0].path"),
    ({"type": "folder", "name": "x", "path": "{allowed}/docs", "root": "/"}, "sources[0].root"),
    ({"type": "folder", "name": "x", "path": "{allowed}/../../../etc"}, "sources[0].path"),
    ({"type": "beir", "name": "b", "path": "/etc/passwd"}, "sources[0].path"),
])
def test_index_sources_outside_the_roots_are_refused_naming_the_param(allowed, tmp_path, source, param):
    from ragops.indexing.params import IndexParams
    from ragops.indexing.steps import load_documents

    svc = services(tmp_path, [str(allowed)])
    source = {k: v.format(allowed=allowed) if isinstance(v, str) else v for k, v in source.items()}
    params = IndexParams(sources=[source])
    with pytest.raises(InvalidInput, match=rf"param {re.escape(param)}.*outside"):
        load_documents(svc, params, None)  # refused before the registry is touched or a file is listed


def test_index_golden_queries_and_model_folder_outside_are_refused(allowed, tmp_path):
    from ragops.indexing.params import IndexParams
    from ragops.indexing.steps import check_paths, prepare

    svc = services(tmp_path, [str(allowed)])
    ok = [{"type": "folder", "name": "docs", "path": str(allowed / "docs")}]
    check_paths(svc, IndexParams(sources=ok, golden_queries=str(allowed / "golden.jsonl")))  # inside: fine
    with pytest.raises(InvalidInput, match="param golden_queries"):
        prepare(svc, IndexParams(sources=ok, golden_queries="/etc/passwd"), None)
    with pytest.raises(InvalidInput, match="param embedding_model"):
        prepare(svc, IndexParams(sources=ok, embedding_model="/usr/lib"), None)
    for ref in ("production", "base", "v3"):
        assert svc.allowed_model("embedding_model", ref) == ref


def test_the_artifact_root_and_the_demo_corpus_are_always_allowed(allowed, tmp_path):
    svc = services(tmp_path, [str(allowed)])
    assert svc.allowed_path("p", str(tmp_path / "artifacts" / "models" / "x")).endswith("x")
    assert svc.allowed_path("p", "/usr/share/doc/postgresql-doc-15/html")


def test_the_cli_without_an_allow_list_reads_its_users_folders(tmp_path):
    svc = services(tmp_path, None)
    assert svc.allowed_roots is None
    assert svc.allowed_path("sources[0].path", "/etc") == "/etc"


def test_finetune_paths_outside_the_roots_are_refused(allowed, tmp_path):
    from ragops.training.params import FinetuneParams
    from ragops.training.steps import resolve_inputs

    svc = services(tmp_path, [str(allowed)])
    for name, value in (("base_model", "/usr/lib"), ("golden_queries", "/etc/passwd"), ("beir_folder", "/etc")):
        with pytest.raises(InvalidInput, match=f"param {name}"):
            resolve_inputs(svc, FinetuneParams(**{name: value}), None)


@pytest.mark.parametrize("prompt", ["../../../etc/passwd.v1", "/etc/passwd.v1", "..\\x.v1", "query_generation./v1",
                                    "sub/dir.v1", "a..v1"])
def test_prompt_names_cannot_leave_the_prompts_folder(prompt):
    from ragops.synthetic.params import SyntheticParams

    with pytest.raises(InvalidInput, match="param prompt"):
        SyntheticParams.from_mapping({"prompt": prompt})


def test_a_missing_prompt_error_lists_no_files(tmp_path):
    from ragops.prompts import load_prompt

    (tmp_path / "secret-name.v1.txt").write_text("### system\nx\n### user\ny\n")
    with pytest.raises(InvalidInput) as info:
        load_prompt("nothing", "v9", directory=tmp_path)
    assert "secret-name" not in str(info.value)
    with pytest.raises(InvalidInput) as info:
        load_prompt("..", "v1")
    assert "query_generation" not in str(info.value) and "answer" not in str(info.value)
