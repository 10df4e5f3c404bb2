"""rag_index's logic: ``params`` and ``records`` (light: DAG files import them), ``steps`` (load,
validate, chunk, plan, embed), ``gate``, ``versions`` (swap, cleanup, rollback), ``summary`` and
``pipeline`` (the whole run in one process)."""
