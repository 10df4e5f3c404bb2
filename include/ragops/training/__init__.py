"""Embedding finetuning, the logic of rag_finetune_embeddings and rag_model_rollback (no Airflow here).

- ``params``, ``records``: the params specs and the records between tasks (light: DAG files import them);
- ``steps``: resolve the inputs, train, register the candidate; ``compute``: where the trainer runs
  (local process, or a GPU pod described as data) and ``train_embeddings.py``, the trainer itself
  (self-contained for the GPU image);
- ``evaluation``: the evaluate step, on the shared evaluator ``evaluate``;
- ``promotion``: the gate step on the rule in ``gate``, promotion and rollback (``ragops.models``);
- ``summary``: the runs' lineage summaries; ``pipeline``: the whole run in one process (the CLI).
"""
