"""ragops: the logic of the RAG lifecycle DAG bundle.

A plain Python package: it imports without Airflow and is unit-tested on its own. The DAGs in
``dags/`` are thin wiring around the functions here.
"""

__version__ = "0.1.0"
