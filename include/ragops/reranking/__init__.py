"""The second stage, trained on our own data: rerankers behind the ``Reranker`` protocol.

- ``features`` + ``ltr``: LightGBM LambdaRank over first-stage features (scores, ranks, overlaps,
  position, length): a few milliseconds per query on CPU, no GPU.
- ``cross_encoder`` + ``train_cross_encoder`` (the self-contained entrypoint of the GPU pod or a
  local process): a cross-encoder from the MiniLM backbone, with sentence-transformers'
  ``CrossEncoderTrainer``.
- ``mining``: training candidates from the live collection's first stage, hard negatives with
  false negatives dropped by a margin.
- ``registry``: rerankers as registry versions (name ``reranker``), ``reranker_for`` for the
  ``Retriever`` (the production reranker, re-read without a restart).
- ``params``, ``records``, ``steps``, ``evaluation``, ``gate``, ``promotion``, ``summary``,
  ``pipeline``: the ``rag_train_reranker`` DAG's shape.
"""
