"""Shared fixtures: the real Postgres (a fresh schema per test), local artifact files, the model."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO / "tests" / "fixtures"
SCIFACT = REPO.parent / "shared" / "data" / "scifact-dev"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def pg_dsn() -> str:
    import psycopg2

    dsn = os.environ.get("RAGOPS_PG_DSN", "postgresql://ragops:ragops@127.0.0.1:54329/ragops")
    try:
        psycopg2.connect(dsn, connect_timeout=5).close()
    except psycopg2.OperationalError as exc:
        pytest.exit(f"the tests need the private Postgres ({dsn}); start it with scripts/postgres.sh: {exc}", 3)
    return dsn


@pytest.fixture
def registry(pg_dsn):
    """A migrated lineage registry in a schema of its own, dropped afterwards."""
    from ragops.lineage import Registry

    reg = Registry(pg_dsn, schema=f"t_{uuid.uuid4().hex[:12]}")
    reg.migrate()
    yield reg
    reg.drop()


@pytest.fixture
def artifact_store(tmp_path):
    from ragops.artifacts import ArtifactStore

    return ArtifactStore(tmp_path / "artifacts")


@pytest.fixture(scope="session")
def base_model_path() -> str:
    from ragops.config import base_model_path as path

    return path()


@pytest.fixture(scope="session")
def embedder(base_model_path):
    """The real base model, loaded once per session (a few seconds)."""
    from ragops.embedding import Embedder

    return Embedder(base_model_path, batch_size=32)
