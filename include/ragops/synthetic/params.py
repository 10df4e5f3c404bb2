"""rag_synthetic_data's params: the trigger form's fields, the CLI's flags and the steps' choices, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ragops.approval import approval_timeout_param, require_approval_param
from ragops.errors import InvalidInput
from ragops.params import ParamSpec, param
from ragops.synthetic.review import FORMATS
from ragops.synthetic.sampling import STRATEGIES
from ragops.vocabulary import ALIAS_PATTERN, DEFAULT_ALIAS, LLM_CONN_ID, PROMPT_NAME, Generator

if TYPE_CHECKING:
    from ragops.services import Services

MAX_SAMPLE_SIZE = 20_000             # chunks per run: the form's ceiling
DEFAULT_BUDGET_TOKENS = 2_000_000    # ~ the default run (200 chunks x 2 queries, retries included) several times over
MAX_BUDGET_TOKENS = 1_000_000_000

# The fallback a run names when generator="auto" finds no LLM endpoint.
OFFLINE_FALLBACK = {"service": f"LLM ({LLM_CONN_ID})", "using": "offline generator (headings + ICT)",
                    "reason": f"no {LLM_CONN_ID} connection"}


@dataclass(frozen=True)
class SyntheticParams(ParamSpec):
    alias: str = param(DEFAULT_ALIAS, "Collection alias whose live chunk set (and embedding model) is used.",
                       pattern=ALIAS_PATTERN)
    chunk_set: str = param("", "A chunk-set version of the alias (e.g. v3) instead of the live one; "
                               "empty = the chunk set of the live collection.", pattern=r"^(v?[0-9]+)?$")
    sample_size: int = param(200, "Chunks to generate queries for.", minimum=1, maximum=MAX_SAMPLE_SIZE)
    sample_strategy: str = param("stratified", "stratified: spread across documents (round robin); "
                                               "uniform: random chunks.", enum=list(STRATEGIES))
    min_chunk_words: int = param(8, "Chunks shorter than this are not sampled.", minimum=1)
    questions_per_chunk: int = param(2, "Queries asked per chunk.", minimum=1, maximum=20)
    generator: Generator = param(Generator.AUTO, f"auto: the LLM when the {LLM_CONN_ID} connection exists, else "
                                                 "offline; llm: fail without the connection; offline: headings + "
                                                 "Inverse Cloze Task.", enum=list(Generator))
    llm_model: str = param("", "LLM model name; empty = the connection extra 'model'.")
    temperature: float = param(0.7, "LLM sampling temperature.", minimum=0, maximum=2)
    max_tokens: int = param(512, "LLM completion token limit per call.", minimum=16)
    concurrency: int = param(4, "Concurrent LLM calls (threads).", minimum=1, maximum=64)
    json_attempts: int = param(3, "Calls per chunk while the answer is not valid JSON; then it is dropped.",
                               minimum=1, maximum=10)
    # Caps a user must raise on purpose (issue 9, defect 8): a run never spends without a bound.
    budget_max_tokens: int = param(DEFAULT_BUDGET_TOKENS, "Stop new LLM calls at this many tokens (prompt + "
                                                          "completion), cache hits free; raise it on purpose.",
                                   minimum=1, maximum=MAX_BUDGET_TOKENS)
    budget_max_usd: float = param(0.0, "Stop new LLM calls at this cost in USD; 0 = no USD cap (the token cap "
                                       "holds). Needs prices (the price params or the connection extra), else the run "
                                       "is refused.", minimum=0)
    price_prompt_per_1m: float | None = param(None, "USD per 1M prompt tokens; null = the connection extra (else 0).")
    price_completion_per_1m: float | None = param(
        None, "USD per 1M completion tokens; null = the connection extra (else 0).")
    prompt: str = param(PROMPT_NAME, "Prompt file <name>.<version> in ragops/prompts; recorded with its content hash.")
    min_query_words: int = param(3, "Filter: shorter queries are dropped.", minimum=1)
    max_query_words: int = param(64, "Filter: longer queries are dropped.", minimum=1)
    near_duplicate_jaccard: float = param(0.9, "Filter: token Jaccard at which a query duplicates an earlier one.",
                                          minimum=0.01, maximum=1)
    round_trip: bool = param(False, "Filter: keep a query only if it retrieves its own chunk in the top k.")
    round_trip_k: int = param(5, "k of the round-trip filter.", minimum=1)
    hard_negatives: bool = param(False, "Mine a hard negative per query from the live collection (other documents).")
    negatives_k: int = param(10, "Candidates searched per query for a negative.", minimum=1)
    test_ratio: float = param(0.2, "Share of documents (not queries) in the test split.", minimum=0, maximum=0.9)
    seed: int = param(13, "Seed of sampling, generation, the split and the review sample.")
    max_doc_share: float = param(0.2, "DQ: the largest share of rows one document may hold (or 2/documents "
                                      "when there are few documents).", minimum=0.01, maximum=1)
    review_sample_size: int = param(50, "Rows exported for human review (0 = none).", minimum=0)
    review_format: str = param("jsonl", "Format of the review file.", enum=list(FORMATS))
    # Import mode: these steer one run (it imports labels instead of generating), not the dataset.
    review_labels: str = param("", "Import mode: a filled-in review file (path in the artifact store, e.g. "
                                   "reviews/.../labels.jsonl); the run then only imports it as a new version.")
    review_dataset_id: int | None = param(None, "Import mode: the dataset artifact id the labels refer to.")
    # Human in the loop (opt-in): a person reviews a new version's labels before it is published.
    require_approval: bool | None = require_approval_param("the new dataset version's publication (accept all, "
                                                           "reject, or apply a filled-in review file)")
    approval_timeout_hours: float = approval_timeout_param()

    def check(self) -> None:
        if self.min_query_words > self.max_query_words:
            raise InvalidInput(f"min_query_words ({self.min_query_words}) must not exceed max_query_words "
                               f"({self.max_query_words})")
        if "." not in self.prompt:
            raise InvalidInput(f"prompt={self.prompt!r} must name a prompt file as <name>.<version>")
        from ragops.prompts import check_prompt_name

        check_prompt_name(*self.prompt_name_version)   # no absolute or '..' names (issue 9, defect 6)
        if self.review_labels and self.review_dataset_id is None:
            raise InvalidInput("param review_labels needs param review_dataset_id (the dataset it labels)")

    @property
    def imports_review(self) -> bool:
        """Import mode: the run applies ``review_labels`` to a dataset instead of generating one."""
        return bool(self.review_labels)

    @property
    def prompt_name_version(self) -> tuple[str, str]:
        name, _, version = self.prompt.rpartition(".")
        return name, version


def generator_fallbacks(svc: Services, params: SyntheticParams) -> list[dict[str, str]]:
    """The fallback a generating run names: ``auto`` without an LLM endpoint runs offline."""
    if params.generator == Generator.AUTO and svc.llm is None and not params.imports_review:
        return [dict(OFFLINE_FALLBACK)]
    return []


def first_task_of_mode(params: dict[str, Any]) -> str:
    """The DAG's branch: import mode (``review_labels`` set) imports labels, any other run generates."""
    return "import_review" if SyntheticParams.from_mapping(dict(params)).imports_review else "prepare"
