"""The lineage registry (``registry``) and its schema (``migrations``)."""

from ragops.lineage.migrations import MIGRATIONS
from ragops.lineage.registry import Artifact, Registry, run_key_for

__all__ = ["MIGRATIONS", "Artifact", "Registry", "run_key_for"]
