"""Issue 9, defect 8: cost and size are bounded by default; a user raises a cap on purpose."""

from __future__ import annotations

import pytest

from ragops.config import RagopsSettings
from ragops.errors import InvalidInput
from ragops.indexing.params import IndexParams
from ragops.services import LLMEndpoint, Services
from ragops.sources.core import MAX_FILE_BYTES_LIMIT
from ragops.synthetic.params import SyntheticParams


def test_llm_budget_defaults_to_a_finite_token_cap():
    params = SyntheticParams()
    assert 0 < params.budget_max_tokens < 10_000_000
    with pytest.raises(InvalidInput, match="budget_max_tokens"):
        SyntheticParams.from_mapping({"budget_max_tokens": 0})   # 0 no longer means "no cap"
    assert SyntheticParams.from_mapping({"budget_max_tokens": 50_000_000}).budget_max_tokens == 50_000_000


def test_sample_size_has_a_maximum():
    with pytest.raises(InvalidInput, match="sample_size"):
        SyntheticParams.from_mapping({"sample_size": 10_000_000})


def test_max_file_bytes_has_a_maximum_and_the_corpus_has_limits():
    with pytest.raises(InvalidInput, match="max_file_bytes"):
        IndexParams.from_mapping({"max_file_bytes": MAX_FILE_BYTES_LIMIT + 1})
    params = IndexParams()
    assert params.max_files > 0 and params.max_total_bytes > 0
    for name in ("max_files", "max_total_bytes"):
        with pytest.raises(InvalidInput, match=name):
            IndexParams.from_mapping({name: 0})


def _llm_services(extra: dict) -> Services:
    endpoint = LLMEndpoint("http://127.0.0.1:9/v1", "k", {"model": "m", **extra})
    return Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": "postgresql://unused"}), llm=endpoint)


def test_a_usd_cap_without_prices_is_refused():
    from ragops.synthetic.steps import priced_budget

    capped = SyntheticParams.from_mapping({"budget_max_usd": 2.5})
    with pytest.raises(InvalidInput, match="budget_max_usd=2.5 needs prices"):
        priced_budget(_llm_services({}), capped)
    assert priced_budget(_llm_services({"price_prompt_per_1m": 0.15}), capped).price_prompt_per_1m == 0.15
    priced = SyntheticParams.from_mapping({"budget_max_usd": 2.5, "price_completion_per_1m": 0.6})
    assert priced_budget(_llm_services({}), priced).price_completion_per_1m == 0.6
    assert priced_budget(_llm_services({}), SyntheticParams()).model == "m"   # no USD cap: no prices needed


def _folder(root, name: str, files: int):
    folder = root / name
    folder.mkdir()
    for i in range(files):
        (folder / f"page{i}.md").write_text(f"# Page {i} of {name}\n\nSome words about topic {i} in {name}.\n")
    return {"type": "folder", "name": name, "path": str(folder)}


@pytest.mark.parametrize("limit", [{"max_files": 3}, {"max_total_bytes": 150}])
def test_the_run_bounds_the_corpus_over_all_its_sources(registry, tmp_path, limit):
    from ragops.indexing.steps import load_documents
    from ragops.runs import open_run

    svc = Services(RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
                                            "RAGOPS_ARTIFACT_ROOT": str(tmp_path / "artifacts")}))
    sources = [_folder(tmp_path, "a", 2), _folder(tmp_path, "b", 2)]
    with pytest.raises(InvalidInput, match="max_files|max_total_bytes"):
        load_documents(svc, IndexParams(sources=sources, **limit), None)   # refused before anything is recorded
    params = IndexParams(sources=sources)
    snapshot = load_documents(svc, params, open_run(svc, "ragops_cli", "caps-ok", params.as_dict()))
    assert snapshot.documents == 4
