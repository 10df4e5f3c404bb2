"""Synthetic training data for the embedding model: (query, positive[, negative]) pairs.

Queries come from an OpenAI-compatible LLM (``generation``) or, without one, from the chunks
themselves (``offline``: headings and the Inverse Cloze Task). They are filtered (``filters``),
optionally given hard negatives (``negatives``), split by document (``split``), checked
(``quality``), saved as a Hugging Face ``DatasetDict`` and registered (``dataset``), and can go
through human review (``review``). ``pipeline`` holds the steps the DAG calls.
"""
