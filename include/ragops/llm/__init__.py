"""rag_finetune_llm and rag_llm_rollback: the generator LLM's lifecycle, on the shape of the embedding finetune.

instruction data (``instructions``, ``data``) -> train a LoRA adapter (``steps``: a local process or a GPU
pod, ``training/train_llm.py`` either way) -> merge adapters into the base (``steps.merge``) -> evaluate
base, live and candidate (``evaluation``) -> gate (``gate``, ``promotion``) -> promote, or roll back.
Imports without Airflow; the heavy libraries (torch, transformers, peft) are imported inside the steps.
"""
