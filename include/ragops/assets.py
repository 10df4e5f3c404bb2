"""Asset URIs: the contracts between DAGs.

rag_index emits a collection asset when an alias moves; rag_synthetic_data emits the dataset
asset when a new dataset version is usable; rag_finetune_embeddings emits the model asset when a
model is promoted (rag_index re-embeds on it). A task that produced nothing new skips, so no
event is emitted and the loop index -> data -> model -> index settles instead of spinning.
"""

from __future__ import annotations


def collection_asset_uri(alias: str) -> str:
    return f"ragops://collection/{alias}"


DATASET_ASSET_URI = "ragops://dataset/synthetic-queries"
MODEL_ASSET_URI = "ragops://model/embeddings"
