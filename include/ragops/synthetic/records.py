"""What flows between rag_synthetic_data's tasks: small records of ids, URIs and counts.

Tables (samples, queries, splits) stay in the artifact store; a record carries the URI of its
table (resolved with ``svc.artifacts.rel_of``) and what a reader needs to know about it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.models import ModelRef
from ragops.records import Record
from ragops.runs import RunRef
from ragops.vocabulary import DATASET_ASSET_URI, Generator, Status


@dataclass(frozen=True)
class ChunkSource(Record):
    """The chunk set queries are written for, and the live collection that holds it (if any)."""

    chunk_set_id: int
    version: int
    content_hash: str
    uri: str
    collection: str | None = None      # the live collection's name in the vector store
    collection_id: int | None = None
    collection_matches: bool = False   # the live collection was built from this very chunk set

    @property
    def searchable(self) -> str | None:
        """The collection to search for this chunk set's chunks, when the live one holds them."""
        return self.collection if self.collection_matches else None


@dataclass(frozen=True)
class SyntheticRun(Record):
    """The run as every generating step sees it: the lineage run, the chunks, the embedding model."""

    run: RunRef
    alias: str
    source: ChunkSource
    model: ModelRef                    # the model that embedded the live collection (queries are embedded alike)
    llm_available: bool                # the generator is the LLM (else the offline generator)

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class Sample(Record):
    uri: str
    chunks: int
    docs: int


@dataclass(frozen=True)
class Generated(Record):
    uri: str
    generator: Generator               # llm | offline
    chunks: int
    queries: int
    stats: dict[str, Any]              # LLM: calls, cache hits, tokens, cost, drops; offline: kinds
    prompt_id: int | None = None       # the prompt artifact (LLM only)
    prompt_version: str | None = None  # <name>.<version>@<content hash>
    llm_id: int | None = None          # the LLM artifact (LLM only)
    llm: dict[str, Any] | None = None  # the LLM settings as recorded: no key, URL credentials masked


@dataclass(frozen=True)
class Filtered(Record):
    uri: str
    input: int
    kept: int
    filter_counts: dict[str, int]      # dropped per filter
    round_trip_corpus: str | None = None   # "live collection" | "sampled chunks" | None (no round trip)


@dataclass(frozen=True)
class Negatives(Record):
    uri: str                           # the queries, with a negative each where one was mined
    enabled: bool
    mined: int = 0
    without_negative: int = 0
    corpus: str | None = None          # "live collection" | "sampled chunks"


@dataclass(frozen=True)
class Split(Record):
    """Train and test rows (one table, a ``split`` column), split by document."""

    uri: str
    content_hash: str                  # the dataset's identity: a hash of its rows
    rows_train: int
    docs_train: int
    negatives_train: int
    rows_test: int
    docs_test: int
    negatives_test: int


@dataclass(frozen=True)
class DatasetQuality(Record):
    """The dataset's data-quality suite; a failure is recorded with the dataset, not raised."""

    suite: str
    target: str
    success: bool
    failures: tuple[dict[str, Any], ...]
    statistics: dict[str, Any]


@dataclass(frozen=True)
class DatasetVersion(Record):
    """A dataset version as registered: ``usable``, or ``failed_dq`` (recorded, alerted, never used)."""

    dataset_id: int
    version: int
    content_hash: str
    uri: str
    status: Status
    new_version: bool                  # the first time this content is registered as usable
    rows_train: int
    rows_test: int

    @property
    def usable(self) -> bool:
        return self.status == Status.USABLE


@dataclass(frozen=True)
class ReviewExport(Record):
    dataset_id: int
    version: int
    uri: str | None                    # None: review_sample_size is 0
    rows: int = 0

    @property
    def skip_reason(self) -> str | None:
        return None if self.uri else "review_sample_size is 0: no review file"


@dataclass(frozen=True)
class ReviewImport(Record):
    """A labels file applied to a dataset version: the result is a new version."""

    review_id: int                     # the labels file's artifact
    reviewed_from: int                 # the dataset artifact the labels refer to
    counts: dict[str, int]             # accepted, rejected, edited
    dataset: DatasetVersion


@dataclass(frozen=True)
class Publication(Record):
    """The dataset asset's event: emitted for a new usable version only, else the task skips."""

    dataset: DatasetVersion | None
    reviewed: bool = False             # the version came from a review import

    @property
    def skip_reason(self) -> str | None:
        if self.dataset is None or not self.dataset.usable:
            return "no usable dataset from this run: nothing to publish"
        if not self.dataset.new_version:
            return f"dataset v{self.dataset.version} was already published: no new version"
        return None

    def asset_events(self) -> list[tuple[str, dict[str, Any]]]:
        if self.skip_reason or self.dataset is None:
            return []
        return [(DATASET_ASSET_URI, {"dataset_id": self.dataset.dataset_id, "version": self.dataset.version,
                                     "uri": self.dataset.uri})]
