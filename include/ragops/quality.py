"""Data-quality suites over the documents and chunk tables, run with great-expectations 1.x.

The runner takes expectations as plain dicts (``{"type": "expect_column_values_to_be_unique",
"column": "doc_id"}``) so callers need not import great-expectations, whose import is slow: it
happens lazily inside ``run_suite``. Each suite runs on an in-memory (ephemeral) context with
progress bars and analytics off. Results come back as compact, JSON-ready failure dicts that
``Registry.record_dq`` stores as they are.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import asdict, dataclass, field
from typing import Any

log = logging.getLogger(__name__)

# U+FFFD marks bytes a decoder could not read; C0 controls other than \t \n \r never belong in text.
BAD_ENCODING_REGEX = "[\ufffd\x00-\x08\x0b\x0c\x0e-\x1f\x7f]"
# Site chrome that slipped through a loader: cookie banners, legal footers, "enable JavaScript".
BOILERPLATE_PATTERNS = (
    r"we use cookies", r"accept (?:all )?cookies", r"cookie (?:policy|settings|preferences)",
    r"all rights reserved", r"javascript is (?:disabled|required|not enabled)", r"enable javascript",
    r"skip to (?:main )?content", r"subscribe to our newsletter", r"this site uses cookies",
)
# Non-capturing groups only: pandas warns about capture groups in str.contains.
BOILERPLATE_REGEX = "(?i)(?:" + "|".join(BOILERPLATE_PATTERNS) + ")"
BLANK_REGEX = r"^\s*$"


@dataclass(frozen=True)
class DQThresholds:
    """What "good enough" means for a corpus and its chunks (the DAG passes these from params).

    min_doc_chars / max_doc_chars: bounds on a document's text length; ``doc_length_mostly`` is the
        share of documents that must lie inside them (a few stub pages are normal in real docs).
    max_duplicate_ratio: the most documents (as a share) whose content repeats another's; the suite
        expects distinct content hashes >= 1 - ratio (copies crowd search results).
    max_boilerplate_share: the most documents (as a share) that may match BOILERPLATE_PATTERNS.
    max_bad_encoding_share: the most documents/chunks (as a share) that may hold U+FFFD or control
        characters; real corpora carry a few damaged records (SciFact: 3 of 5,183).
    min_chunk_chars / max_chunk_chars: bounds on a chunk's text length (all chunks).
    max_chunk_duplicate_ratio: the same for chunks (content hash = heading path + text).
    """

    min_doc_chars: int = 20
    max_doc_chars: int = 2_000_000
    doc_length_mostly: float = 0.98
    max_duplicate_ratio: float = 0.02
    max_boilerplate_share: float = 0.02
    max_bad_encoding_share: float = 0.001
    min_chunk_chars: int = 1
    max_chunk_chars: int = 8_000
    max_chunk_duplicate_ratio: float = 0.05

    def __post_init__(self) -> None:
        for name in ("doc_length_mostly", "max_duplicate_ratio", "max_boilerplate_share",
                     "max_bad_encoding_share", "max_chunk_duplicate_ratio"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"DQ threshold {name}={value!r} must be between 0 and 1")
        if self.min_doc_chars > self.max_doc_chars:
            raise ValueError(f"DQ threshold min_doc_chars={self.min_doc_chars} exceeds max_doc_chars")
        if self.min_chunk_chars > self.max_chunk_chars:
            raise ValueError(f"DQ threshold min_chunk_chars={self.min_chunk_chars} exceeds max_chunk_chars")

    @classmethod
    def from_params(cls, params: dict[str, Any] | None) -> DQThresholds:
        params = dict(params or {})
        unknown = sorted(set(params) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown DQ thresholds {unknown}; known: {sorted(cls.__dataclass_fields__)}")
        return cls(**params)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class DQResult:
    suite: str
    success: bool
    statistics: dict[str, Any]
    failures: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if self.success:
            return f"DQ suite {self.suite}: all {self.statistics.get('evaluated_expectations', 0)} expectations met"
        return f"DQ suite {self.suite}: " + "; ".join(f["message"] for f in self.failures)


def _snake_to_class(name: str) -> str:
    return "".join(part.capitalize() for part in name.split("_"))


def _build_expectation(gx: Any, spec: Any) -> tuple[Any, str | None]:
    """A gx Expectation from a dict {"type": ..., **kwargs, "message": optional} (or passes one through)."""
    if not isinstance(spec, dict):
        return spec, None
    spec = dict(spec)
    kind = spec.pop("type", None)
    message = spec.pop("message", None)
    cls = getattr(gx.expectations, _snake_to_class(kind or ""), None)
    if cls is None:
        raise ValueError(f"unknown expectation type {kind!r} in DQ suite spec {spec!r}")
    return cls(**spec), message


def _ge_quiet() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    for name in ("great_expectations", "great_expectations.core", "great_expectations.data_context"):
        logging.getLogger(name).setLevel(logging.ERROR)
    import great_expectations as gx

    return gx


def run_suite(df: Any, suite_name: str, expectations: list[Any]) -> DQResult:
    """Validates a pandas DataFrame against expectations (dicts or gx Expectation objects)."""
    gx = _ge_quiet()
    from great_expectations.data_context.types.base import ProgressBarsConfig

    name = re.sub(r"[^A-Za-z0-9_]+", "_", suite_name)
    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    batch_definition = (context.data_sources.add_pandas(f"{name}_source")
                        .add_dataframe_asset(f"{name}_table")
                        .add_batch_definition_whole_dataframe(f"{name}_batch"))
    suite = context.suites.add(gx.ExpectationSuite(name=name))
    messages: list[str | None] = []
    for spec in expectations:
        expectation, message = _build_expectation(gx, spec)
        suite.add_expectation(expectation)
        messages.append(message)
    validation = context.validation_definitions.add(
        gx.ValidationDefinition(name=f"{name}_validation", data=batch_definition, suite=suite))
    outcome = validation.run(batch_parameters={"dataframe": df}, result_format="SUMMARY")
    # Results come back in suite order; map the caller's messages by expectation id.
    message_by_id = {exp.id: msg for exp, msg in zip(suite.expectations, messages)}
    failures = [_failure(r, message_by_id.get(r.expectation_config.id)) for r in outcome.results if not r.success]
    stats = {k: (round(v, 2) if isinstance(v, float) else v) for k, v in dict(outcome.statistics).items()}
    stats["rows"] = len(df)
    result = DQResult(suite=suite_name, success=bool(outcome.success), statistics=stats, failures=failures)
    (log.info if result.success else log.warning)("%s", result.summary())
    return result


def _failure(result: Any, message: str | None) -> dict[str, Any]:
    config = result.expectation_config
    kwargs = {k: v for k, v in config.kwargs.items() if k != "batch_id"}
    details = result.result or {}
    if result.exception_info and result.exception_info.get("raised_exception"):
        observed: Any = {"error": str(result.exception_info.get("exception_message"))[:300]}
    elif "observed_value" in details:
        observed = details["observed_value"]
    else:
        observed = {"unexpected_count": details.get("unexpected_count"),
                    "unexpected_percent": round(float(details.get("unexpected_percent") or 0.0), 3),
                    "examples": [str(v)[:80] for v in (details.get("partial_unexpected_list") or [])[:3]]}
    column = kwargs.get("column")
    text = message or f"{config.type}"
    where = f" on column {column!r}" if column else ""
    return {"expectation": config.type, "column": column, "observed": _jsonable(observed),
            "kwargs": _jsonable({k: v for k, v in kwargs.items() if k != "column"}),
            "message": f"{text}{where}: observed {_jsonable(observed)}"}


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, float | int | str | bool) or value is None:
        return value
    if hasattr(value, "item"):  # numpy scalars
        return value.item()
    return str(value)


def document_expectations(t: DQThresholds) -> list[dict[str, Any]]:
    return [
        {"type": "expect_table_row_count_to_be_between", "min_value": 1, "message": "the corpus has no documents"},
        {"type": "expect_column_values_to_not_be_null", "column": "doc_id", "message": "documents without an id"},
        {"type": "expect_column_values_to_be_unique", "column": "doc_id", "message": "doc_id values repeat"},
        {"type": "expect_column_values_to_not_be_null", "column": "text", "message": "documents without text"},
        {"type": "expect_column_values_to_not_match_regex", "column": "text", "regex": BLANK_REGEX,
         "message": "documents with blank text"},
        {"type": "expect_column_value_lengths_to_be_between", "column": "text", "min_value": t.min_doc_chars,
         "max_value": t.max_doc_chars, "mostly": t.doc_length_mostly,
         "message": f"too many documents outside {t.min_doc_chars}..{t.max_doc_chars} chars"},
        {"type": "expect_column_proportion_of_unique_values_to_be_between", "column": "content_hash",
         "min_value": 1.0 - t.max_duplicate_ratio, "message": "too many duplicated documents (unique content share)"},
        {"type": "expect_column_values_to_not_match_regex", "column": "text", "regex": BAD_ENCODING_REGEX,
         "mostly": 1.0 - t.max_bad_encoding_share,
         "message": "documents with replacement or control characters (encoding damage)"},
        {"type": "expect_column_values_to_not_match_regex", "column": "text", "regex": BOILERPLATE_REGEX,
         "mostly": 1.0 - t.max_boilerplate_share, "message": "too many documents hold site boilerplate"},
    ]


def chunk_expectations(max_tokens: int, t: DQThresholds) -> list[dict[str, Any]]:
    return [
        {"type": "expect_table_row_count_to_be_between", "min_value": 1, "message": "the chunk set is empty"},
        {"type": "expect_column_values_to_not_be_null", "column": "chunk_id", "message": "chunks without an id"},
        {"type": "expect_column_values_to_be_unique", "column": "chunk_id", "message": "chunk_id values repeat"},
        {"type": "expect_column_values_to_not_be_null", "column": "text", "message": "chunks without text"},
        {"type": "expect_column_values_to_be_between", "column": "token_count", "min_value": 1,
         "max_value": max_tokens, "message": f"chunks outside 1..{max_tokens} model tokens (would be truncated)"},
        {"type": "expect_column_value_lengths_to_be_between", "column": "text", "min_value": t.min_chunk_chars,
         "max_value": t.max_chunk_chars, "message": f"chunks outside {t.min_chunk_chars}..{t.max_chunk_chars} chars"},
        {"type": "expect_column_proportion_of_unique_values_to_be_between", "column": "content_hash",
         "min_value": 1.0 - t.max_chunk_duplicate_ratio, "message": "too many duplicated chunks (unique content share)"},
        {"type": "expect_column_values_to_not_match_regex", "column": "text", "regex": BAD_ENCODING_REGEX,
         "mostly": 1.0 - t.max_bad_encoding_share,
         "message": "chunks with replacement or control characters (encoding damage)"},
    ]


def validate_documents(df: Any, thresholds: DQThresholds | None = None) -> DQResult:
    """The documents suite on a table of ``Document.to_row()`` rows."""
    return run_suite(df, "documents", document_expectations(thresholds or DQThresholds()))


def validate_chunks(df: Any, max_tokens: int, thresholds: DQThresholds | None = None) -> DQResult:
    """The chunks suite on a table of ``Chunk.to_row()`` rows; ``max_tokens`` is the model's limit."""
    return run_suite(df, "chunks", chunk_expectations(max_tokens, thresholds or DQThresholds()))
