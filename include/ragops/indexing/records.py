"""What flows between rag_index's tasks: small records of ids, URIs and counts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ragops.models import ModelRef
from ragops.records import Record
from ragops.runs import RunRef
from ragops.vocabulary import collection_asset_uri


@dataclass(frozen=True)
class IndexRun(Record):
    """The run as every step sees it: the lineage run, the model, and where vectors go."""

    run: RunRef
    alias: str
    model: ModelRef
    max_tokens: int
    backend: str

    @property
    def run_key(self) -> str:
        return self.run.run_key


@dataclass(frozen=True)
class CorpusSnapshot(Record):
    corpus_id: int
    version: int
    content_hash: str
    uri: str
    documents: int
    bad_inputs: int
    chars: int
    reused: bool = False          # an unchanged snapshot: its files were not parsed again
    seconds: float = 0.0


@dataclass(frozen=True)
class ChunkSet(Record):
    chunk_set_id: int
    version: int
    content_hash: str
    uri: str
    chunks: int
    documents: int
    mean_tokens: float
    max_tokens: int
    reused: bool = False          # the same snapshot was chunked the same way before
    seconds: float = 0.0


@dataclass(frozen=True)
class Quality(Record):
    """A data-quality suite that passed (a failure raises DataQualityError instead)."""

    suite: str
    target: str
    statistics: dict[str, Any]
    reused: bool = False          # the artifact passed the same suite before


@dataclass(frozen=True)
class Shard(Record):
    collection: str
    plan_uri: str
    index: int
    size: int

    @property
    def label(self) -> str:
        return f"shard {self.index} of {self.collection}"


@dataclass(frozen=True)
class Plan(Record):
    """The target collection and what it still needs: copied vectors, shards to embed."""

    action: str                   # "build" or "noop" (the collection is live already)
    collection: str
    artifact_id: int
    version: int
    live_before: str | None
    live_before_id: int | None    # the registry's alias target when planned (for compare-and-swap)
    shards: tuple[Shard, ...]
    stats: dict[str, Any]
    dimension: int | None = None


@dataclass(frozen=True)
class ShardResult(Record):
    shard: int
    embedded: int
    encode_seconds: float
    write_seconds: float


@dataclass(frozen=True)
class GateReport(Record):
    collection: str
    passed: bool
    evaluation_id: int
    report_uri: str
    checks: dict[str, Any]        # check -> observed value


@dataclass(frozen=True)
class Swap(Record):
    """The alias moved (or already pointed there: a retry after the switch)."""

    alias: str
    collection: str
    artifact_id: int
    previous: str | None
    moved: bool
    registry_changed: bool        # the registry's alias changed in this call

    @property
    def skip_reason(self) -> str | None:
        return None if self.moved or self.registry_changed else f"alias already points at {self.collection}"

    def asset_events(self) -> list[tuple[str, dict[str, Any]]]:
        # An event whenever the recorded alias changed, also on a retry whose store move had
        # happened before a crash: downstream must hear of every change, once.
        if not (self.moved or self.registry_changed):
            return []
        return [(collection_asset_uri(self.alias), {"collection": self.collection, "artifact_id": self.artifact_id,
                                                    "previous": self.previous})]


@dataclass(frozen=True)
class Cleanup(Record):
    kept: tuple[str, ...]
    deleted: tuple[str, ...]
