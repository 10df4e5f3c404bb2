"""The instruction dataset's data-quality suite (great-expectations through ``ragops.quality.run_suite``).

Checked on one table of both splits with derived columns:
- schema: ids, questions and answers are never null; every row has 1..10 numbered passages;
- answers: not blank, cite at least one passage, and cite only passages the prompt gave
  (``llm_eval.check_citations``), and the positive's number among them;
- duplicates: ``query_id`` is unique;
- leakage: a document's rows are all in one split (``doc_splits`` is 1);
- both splits hold rows (the test split is the gate's held-out set).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragops.llm.instructions import SPLITS, answer_text

SUITE_NAME = "llm_instructions"


def instructions_frame(splits: dict[str, Sequence[dict[str, Any]]]) -> Any:
    import pandas as pd

    from ragops.training.llm_eval import check_citations

    records = []
    for name in SPLITS:
        for r in splits.get(name, []):
            answer = answer_text(r)
            check = check_citations(answer, int(r["n_passages"]))
            records.append({"query_id": r.get("query_id"), "doc_id": r.get("doc_id"), "split": name,
                            "question": r.get("question"), "answer": answer, "n_passages": r.get("n_passages"),
                            "citations_valid": check["valid"], "cites_any": check["has_citation"],
                            "cites_positive": r.get("positive_index") in check["cited"]})
    columns = ["query_id", "doc_id", "split", "question", "answer", "n_passages", "citations_valid", "cites_any",
               "cites_positive"]
    df = pd.DataFrame(records, columns=columns)
    df["doc_splits"] = df.groupby("doc_id")["split"].transform("nunique").astype("int64") if len(df) else []
    return df


def instruction_expectations() -> list[dict[str, Any]]:
    return [
        {"type": "expect_table_row_count_to_be_between", "min_value": 1, "message": "the dataset has no rows"},
        {"type": "expect_column_unique_value_count_to_be_between", "column": "split", "min_value": len(SPLITS),
         "message": "a split is empty (the test split is the gate's held-out set)"},
        *({"type": "expect_column_values_to_not_be_null", "column": c, "message": f"{c} values are null"}
          for c in ("query_id", "doc_id", "question", "answer")),
        {"type": "expect_column_value_lengths_to_be_between", "column": "answer", "min_value": 1,
         "message": "blank answers"},
        {"type": "expect_column_values_to_be_between", "column": "n_passages", "min_value": 1, "max_value": 10,
         "message": "rows without 1..10 passages"},
        {"type": "expect_column_values_to_be_in_set", "column": "citations_valid", "value_set": [True],
         "message": "answers citing passages the prompt did not give"},
        {"type": "expect_column_values_to_be_in_set", "column": "cites_any", "value_set": [True],
         "message": "answers without a citation"},
        {"type": "expect_column_values_to_be_in_set", "column": "cites_positive", "value_set": [True],
         "message": "answers that do not cite the passage the question was written for"},
        {"type": "expect_column_values_to_be_unique", "column": "query_id", "message": "query_id values repeat"},
        {"type": "expect_column_values_to_be_between", "column": "doc_splits", "min_value": 1, "max_value": 1,
         "message": "documents with rows in both train and test (leakage)"},
    ]


def validate_instructions(splits: dict[str, Sequence[dict[str, Any]]]) -> Any:
    """Runs the suite; returns ``ragops.quality.DQResult`` (success, statistics, failures)."""
    from ragops.quality import run_suite

    df = instructions_frame(splits)
    result = run_suite(df, SUITE_NAME, instruction_expectations())
    result.statistics["documents"] = int(df["doc_id"].nunique()) if len(df) else 0
    return result
