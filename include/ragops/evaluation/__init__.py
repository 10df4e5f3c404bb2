"""rag_evaluate: the live query path measured on every evaluation set the registry knows.

- ``sets``: which sets exist (golden queries, review / imported / synthetic test rows of the latest
  usable dataset, registered BEIR qrels splits) and their registration (kind ``eval_set``);
- ``metrics``: nDCG@10, MRR@10 and Recall@k per set and per source;
- ``generation``: answers on a fixed seeded sample, non-LLM checks, and the LLM judge (cached, capped);
- ``trends``: the rolling baseline and the regressions against it;
- ``params``, ``records``, ``steps``, ``summary``: the DAG's spec, records, steps and summary.
"""
