"""Synthetic training data for the embedding model: (query, positive[, negative]) pairs.

Queries come from an OpenAI-compatible LLM (``generation``, ``llm``, ``cache``) or, without one,
from the chunks themselves (``offline``: headings and the Inverse Cloze Task). They are filtered
(``filters``), optionally given hard negatives (``negatives``), split by document (``split``),
checked (``quality``), saved as a Hugging Face ``DatasetDict`` and registered (``dataset``), and
can go through human review (``review``).

The DAG's side: ``params`` and ``records`` (light: the DAG file imports them), ``steps`` (prepare,
sample, generate, filter, negatives, split), ``publish`` (validate, register, export a review
sample, publish), ``review.import_review``, ``summary`` and ``pipeline`` (the whole run in one
process).
"""
