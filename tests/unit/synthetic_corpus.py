"""A tiny, real-looking chunk set for the synthetic-data tests, registered as rag_index does."""

from __future__ import annotations

from typing import Any

from ragops.documents import Chunk
from ragops.hashing import hash_many
from ragops.vocabulary import DEFAULT_ALIAS, ArtifactKind, Status

TOPICS = {
    "postgres/vacuum.md": ("Routine vacuuming", [
        ("Routine vacuuming > Why vacuum", "PostgreSQL keeps old row versions after updates and deletes. "
         "The VACUUM command reclaims the space those dead tuples occupy. Without it, tables grow without bound "
         "and queries slow down. Autovacuum runs the command automatically in the background."),
        ("Routine vacuuming > Transaction ID wraparound", "Every transaction receives a 32-bit identifier. "
         "After about four billion transactions the counter wraps around. Old rows would then look like they "
         "come from the future. Freezing old tuples during vacuum prevents this data loss."),
    ]),
    "postgres/indexes.md": ("Index types", [
        ("Index types > B-tree indexes", "A B-tree index handles equality and range queries on sortable data. "
         "It is the default index type in PostgreSQL. The planner uses it for comparisons such as less than "
         "or between. It also helps ORDER BY clauses avoid a separate sort step."),
        ("Index types > GIN indexes", "GIN stands for generalized inverted index. It suits values that contain "
         "many elements, such as arrays and full-text documents. Lookups are fast while updates are slower. "
         "The fastupdate option batches pending entries to soften that cost."),
    ]),
    "airflow/pools.md": ("Pools", [
        ("Pools > Limiting concurrency", "Pools cap how many task instances run at once against a shared "
         "resource. Each pool has a number of slots. A task occupies one slot by default while it runs. "
         "Tasks wait in the queue when every slot of their pool is taken."),
        ("Pools > Priority weights", "When slots free up, the scheduler picks queued tasks by priority weight. "
         "Weights can be summed over upstream or downstream tasks. A higher weight moves a task ahead in "
         "the queue. Critical pipelines often get larger weights than reporting jobs."),
    ]),
    "airflow/assets.md": ("Asset scheduling", [
        ("Asset scheduling > Producers and consumers", "A task that declares an asset as an outlet updates it "
         "when the task succeeds. Consumer DAGs scheduled on that asset start after the update. This couples "
         "pipelines through data instead of through time. Skipped tasks emit no asset event."),
        ("Asset scheduling > Combining with time", "Some pipelines should run on a timetable and also when an "
         "asset changes. The AssetOrTimeSchedule timetable combines both conditions. A cron expression gives "
         "the regular runs. Asset events trigger extra runs in between."),
    ]),
    "ml/embeddings.md": ("Sentence embeddings", [
        ("Sentence embeddings > Contrastive training", "Embedding models learn by pulling matching pairs together "
         "and pushing others apart. In-batch negatives make the loss cheap to compute. Hard negatives from "
         "other documents sharpen the decision boundary. Large batches usually improve the final quality."),
        ("Sentence embeddings > Matryoshka dimensions", "Matryoshka training makes the leading dimensions of a "
         "vector useful on their own. Vectors can then be truncated to save memory. Retrieval quality degrades "
         "gracefully as dimensions are removed. Storage costs fall in proportion to the kept dimensions."),
    ]),
    "ml/chunking.md": ("Chunking documents", [
        ("Chunking documents > Structure-aware splitting", "Splitting at headings keeps each chunk about one "
         "topic. The heading path gives the chunk its context when embedded. Long sections are split again at "
         "paragraph boundaries. Tiny trailing pieces are merged into their neighbours."),
        ("Chunking documents > Overlap", "An overlap repeats a few tokens from the previous chunk at the start "
         "of the next one. It keeps sentences that straddle a boundary retrievable. Too much overlap inflates "
         "the index and duplicates results. A tenth of the chunk size is a common choice."),
    ]),
}


def chunk_rows() -> list[dict[str, Any]]:
    rows = []
    for doc_id, (title, sections) in TOPICS.items():
        for position, (heading_path, text) in enumerate(sections):
            chunk = Chunk(doc_id=doc_id, doc_hash=f"hash-{doc_id}", source="fixture", title=title,
                          heading_path=heading_path, position=position, text=text,
                          token_count=len(text.split()))
            rows.append(chunk.to_row())
    return rows


def register_chunk_set(registry: Any, artifacts: Any, alias: str = DEFAULT_ALIAS,
                       rows: list[dict[str, Any]] | None = None) -> Any:
    """Writes and records a chunk set the way rag_index does (kind "chunks", name = alias)."""
    import pyarrow as pa

    rows = rows if rows is not None else chunk_rows()
    content_hash = hash_many(r["chunk_id"] for r in rows)
    rel = f"chunks/{alias}/{content_hash}.parquet"
    uri = artifacts.write_table(rel, pa.Table.from_pylist(rows))
    return registry.record_artifact(ArtifactKind.CHUNKS, alias, content_hash, uri, metrics={"chunks": len(rows)},
                                    status=Status.VALIDATED)


def services(registry: Any, artifacts: Any, vector_dir: Any, llm: Any = None) -> Any:
    """``Services`` on the test's registry schema and artifact root (and an LLM endpoint, if given)."""
    from ragops.config import RagopsSettings
    from ragops.services import Services

    settings = RagopsSettings.from_env({"RAGOPS_PG_DSN": registry.dsn, "RAGOPS_SCHEMA": registry.schema,
                                        "RAGOPS_ARTIFACT_ROOT": artifacts.root_uri,
                                        "RAGOPS_VECTOR_DIR": str(vector_dir)})
    return Services(settings, llm=llm)
