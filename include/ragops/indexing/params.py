"""rag_index's params: the trigger form's fields, the CLI's flags and the steps' choices, once."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.approval import approval_timeout_param, require_approval_param
from ragops.errors import InvalidInput
from ragops.params import ParamSpec, param
from ragops.sources.core import DEFAULT_MAX_FILES, DEFAULT_MAX_TOTAL_BYTES, MAX_FILE_BYTES_LIMIT
from ragops.vocabulary import ALIAS_PATTERN, DEFAULT_ALIAS, EmbedCompute, SearchMode

MODES = ("incremental", "full")
STRATEGIES = ("structure", "fixed")
ON_BAD_INPUT = ("skip", "fail")
MAX_FILES_LIMIT = 2_000_000                     # the form's ceiling for max_files
MAX_TOTAL_BYTES_LIMIT = 64 * 1024 ** 3          # ... and for max_total_bytes (64 GiB)


@dataclass(frozen=True)
class IndexParams(ParamSpec):
    sources: list[dict[str, Any]] = param(
        description="Source specs: {type: folder, path, name, root?, include?} for Markdown, "
                    "reStructuredText, HTML and text (a git checkout is a folder); {type: beir, "
                    "path, name} for a BEIR corpus.jsonl; {type: demo, subset: N|null} for the "
                    "PostgreSQL manual (null = all ~1,200 pages).",
        factory=lambda: [{"type": "demo", "subset": 60}], cli=False)
    alias: str = param(DEFAULT_ALIAS, "The collection alias readers query; versions are named <alias>_<hash>.",
                       pattern=ALIAS_PATTERN)
    mode: str = param("incremental", "incremental copies vectors of unchanged chunks from the live collection; "
                                     "full re-embeds everything.", enum=list(MODES))
    chunk_strategy: str = param("structure", "structure: headings, paragraphs and code blocks; fixed: token windows.",
                                enum=list(STRATEGIES))
    chunk_size: int = param(200, "Target chunk size in tokens.", minimum=16, maximum=512)
    chunk_overlap: int = param(32, "Overlap in tokens.", minimum=0, maximum=256)
    embedding_model: str = param("production", "production (the registry's production model, else the base model), "
                                               "base, v<N> (a registered version) or a model folder path.")
    keep_versions: int = param(3, "Collection versions kept for rollback.", minimum=1)
    on_bad_input: str = param("skip", "skip: record bad files and go on; fail: stop at the first bad file.",
                              enum=list(ON_BAD_INPUT))
    # Caps a user must raise on purpose (issue 9, defect 8): they bound what one run reads.
    max_file_bytes: int = param(5_000_000, "Files above this are rejected.", minimum=1, maximum=MAX_FILE_BYTES_LIMIT)
    max_files: int = param(DEFAULT_MAX_FILES, "The most files one run reads, over all sources; past it the run "
                                              "fails (raise it on purpose).", minimum=1, maximum=MAX_FILES_LIMIT)
    max_total_bytes: int = param(DEFAULT_MAX_TOTAL_BYTES, "The most bytes one run reads, over all sources; past it "
                                                          "the run fails (raise it on purpose).",
                                 minimum=1, maximum=MAX_TOTAL_BYTES_LIMIT)
    shard_size: int = param(1024, "Chunks per mapped embedding task.", minimum=1)
    batch_size: int = param(64, "Texts per encode/upsert batch.", minimum=1)
    embed_compute: str = param(EmbedCompute.WORKER.value, "Where shards are encoded: worker (in the task, CPU), "
                                                          "local (embed_shard.py in a local process) or kubernetes "
                                                          "(one GPU pod per shard, configured by ragops_training).",
                               enum=[c.value for c in EmbedCompute])
    # The smoke check catches a broken collection (vectors not matching their objects, a wrong
    # model), which scores near 0; real collections score 0.85-0.95 (bench/README.md). 50 samples
    # keep the sampling noise well below the gap. Quality regressions are the golden check's job.
    smoke_sample: int = param(50, "Chunks sampled for the retrieval smoke check.", minimum=1)
    smoke_k: int = param(10, "Top k of the smoke check.", minimum=1)
    smoke_min_hit_rate: float = param(0.7, "Share of sampled chunks their first sentence must find in the top k.",
                                      minimum=0, maximum=1)
    golden_queries: str | None = param(None, "JSONL of golden queries {query, doc_id|chunk_id}: gates nDCG@10 vs live.")
    golden_mode: str = param("hybrid", "Retrieval mode of the golden check.", enum=[m.value for m in SearchMode])
    ndcg_tolerance: float = param(0.02, "Allowed nDCG@10 drop against live.", minimum=0)
    max_duplicate_ratio: float = param(0.2, "Data quality: the largest share of duplicate documents or chunks.",
                                       minimum=0, maximum=1)
    # Human in the loop (opt-in): a person confirms the swap; unanswered, nothing moves.
    require_approval: bool | None = require_approval_param("the alias swap")
    approval_timeout_hours: float = approval_timeout_param()

    def check(self) -> None:
        if self.chunk_overlap >= self.chunk_size:
            raise InvalidInput(f"chunk_overlap ({self.chunk_overlap}) must be below chunk_size ({self.chunk_size})")
        if not self.sources:
            raise InvalidInput("sources is empty: name at least one source to index")


@dataclass(frozen=True)
class CollectionRollbackParams(ParamSpec):
    alias: str = param(DEFAULT_ALIAS, "The alias to move.", pattern=ALIAS_PATTERN)
    version: int = param(1, "The collection version to make live again.", minimum=1)
