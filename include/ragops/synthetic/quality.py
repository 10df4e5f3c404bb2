"""The synthetic dataset's data-quality suite (great-expectations through ``ragops.quality.run_suite``).

Checked on one table of both splits (a ``split`` column added) with derived columns, because
great-expectations checks columns, not relations between splits:
- schema: every dataset column exists; ids, queries, positives and documents are never null;
- lengths: queries within the word bounds the filters used; positives not blank;
- duplicates: ``query_id`` and the normalised query are unique;
- leakage: ``doc_splits`` (how many splits a document appears in) is exactly 1;
- balance: ``doc_share`` (a document's share of all rows) stays below ``max_doc_share``, or
  twice the fair share ``2 / documents`` when there are too few documents for the cap to make sense.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ragops.synthetic.dataset import COLUMNS, SPLITS
from ragops.synthetic.filters import normalise, tokens

SUITE_NAME = "synthetic_dataset"


def dataset_frame(splits: dict[str, Sequence[dict[str, Any]]]) -> Any:
    import pandas as pd

    rows = [{**{c: r.get(c) for c in COLUMNS}, "split": name} for name in SPLITS for r in splits[name]]
    df = pd.DataFrame(rows, columns=[*COLUMNS, "split"])
    df["query_words"] = [len(tokens(q or "")) for q in df["query"]]
    df["query_norm"] = [normalise(q or "") for q in df["query"]]
    df["doc_splits"] = df.groupby("doc_id")["split"].transform("nunique").astype("int64")
    df["doc_share"] = (df.groupby("doc_id")["query_id"].transform("size") / max(1, len(df))).astype("float64")
    return df


def doc_share_cap(n_docs: int, max_doc_share: float) -> float:
    return max(max_doc_share, 2.0 / n_docs) if n_docs else 1.0


def dataset_expectations(*, min_words: int, max_words: int, cap: float) -> list[dict[str, Any]]:
    return [
        {"type": "expect_table_row_count_to_be_between", "min_value": 1, "message": "the dataset has no rows"},
        *({"type": "expect_column_to_exist", "column": c, "message": f"dataset column {c!r} is missing"}
          for c in COLUMNS),
        *({"type": "expect_column_values_to_not_be_null", "column": c, "message": f"{c} values are null"}
          for c in ("query_id", "query", "positive", "doc_id", "chunk_id")),
        {"type": "expect_column_values_to_be_between", "column": "query_words", "min_value": min_words,
         "max_value": max_words, "message": f"queries outside {min_words}..{max_words} words"},
        {"type": "expect_column_value_lengths_to_be_between", "column": "positive", "min_value": 1,
         "message": "blank positives"},
        {"type": "expect_column_values_to_be_unique", "column": "query_id", "message": "query_id values repeat"},
        {"type": "expect_column_values_to_be_unique", "column": "query_norm", "message": "duplicated queries"},
        {"type": "expect_column_values_to_be_between", "column": "doc_splits", "min_value": 1, "max_value": 1,
         "message": "documents with queries in both train and test (leakage)"},
        {"type": "expect_column_max_to_be_between", "column": "doc_share", "max_value": cap,
         "message": f"a document holds more than {cap:.0%} of the rows"},
    ]


def validate_dataset(splits: dict[str, Sequence[dict[str, Any]]], *, min_words: int = 3, max_words: int = 64,
                     max_doc_share: float = 0.2) -> Any:
    """Runs the suite; returns ``ragops.quality.DQResult`` (success, statistics, failures)."""
    from ragops.quality import run_suite

    df = dataset_frame(splits)
    cap = doc_share_cap(df["doc_id"].nunique(), max_doc_share)
    result = run_suite(df, SUITE_NAME, dataset_expectations(min_words=min_words, max_words=max_words, cap=cap))
    result.statistics["doc_share_cap"] = round(cap, 4)
    result.statistics["documents"] = int(df["doc_id"].nunique())
    return result
