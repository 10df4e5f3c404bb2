"""Embedding finetuning: the training entrypoint (``train_embeddings.py``, self-contained for the GPU
image), where it runs (``pod``), the shared evaluator (``evaluate``), the promotion gate (``gate``)
and the DAG's steps (``pipeline``). Promotion and rollback live in ``ragops.models``."""
