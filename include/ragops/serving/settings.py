"""The service's settings, from the environment: bind address, API key (a secret), LLM endpoint.

- ``RAGOPS_SERVICE_API_KEY`` or ``RAGOPS_SERVICE_API_KEY_FILE`` (a file holding the key, e.g. a
  mounted Kubernetes Secret): the bearer key clients must send. It is held in ``ServiceSettings``
  out of its repr and never logged. Without a key the service refuses to start unless told
  ``--no-auth`` on a loopback address.
- ``RAGOPS_SERVICE_HOST`` (default 127.0.0.1: loopback only), ``RAGOPS_SERVICE_PORT`` (8000),
  ``RAGOPS_SERVICE_COLLECTION`` (the default alias, RagDocs), ``RAGOPS_SERVICE_TORCH_THREADS`` (torch
  intra-op threads, default 1: concurrent requests parallelise better than one tiny forward pass).
- The LLM for answers: ``RAGOPS_LLM_URL`` + ``RAGOPS_LLM_MODEL`` (+ ``RAGOPS_LLM_API_KEY`` or
  ``RAGOPS_LLM_API_KEY_FILE``), else the Airflow connection ``ragops_llm`` given as
  ``AIRFLOW_CONN_RAGOPS_LLM`` in its JSON form (host = base URL, password = key, extra.model),
  read without Airflow. Neither: answers are extractive (a named fallback).
"""

from __future__ import annotations

import ipaddress
import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ragops.errors import InvalidInput
from ragops.services import LLMEndpoint
from ragops.vocabulary import DEFAULT_ALIAS, LLM_CONN_ID

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000
# Request limits (the OpenAPI schema states them).
MAX_QUERY_CHARS = 1000
MAX_K = 50
MAX_RERANK_TOP_N = 200
MAX_SOURCES = 20


def read_secret(env: Mapping[str, str], name: str) -> str | None:
    """``name`` from the environment, else the contents of the file ``<name>_FILE`` names (stripped)."""
    value = (env.get(name) or "").strip()
    if value:
        return value
    path = (env.get(f"{name}_FILE") or "").strip()
    if not path:
        return None
    try:
        value = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise InvalidInput(f"{name}_FILE={path!r} cannot be read: {exc.strerror or exc}") from None
    if not value:
        raise InvalidInput(f"{name}_FILE={path!r} is empty")
    return value


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class ServiceSettings:
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    api_key: str | None = field(default=None, repr=False)
    collection: str = DEFAULT_ALIAS
    refresh_s: float = 1.0          # how stale the alias may be (swaps reach readers within this)
    min_similarity: float | None = None   # None: ragops.answers.MIN_SIMILARITY
    no_auth: bool = False           # only on loopback, only when asked for
    torch_threads: int | None = 1   # intra-op threads for query encoding (None: torch's default)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: object) -> ServiceSettings:
        env = dict(os.environ if env is None else env)
        values: dict[str, object] = {
            "host": env.get("RAGOPS_SERVICE_HOST") or DEFAULT_HOST,
            "port": int(env.get("RAGOPS_SERVICE_PORT") or DEFAULT_PORT),
            "api_key": read_secret(env, "RAGOPS_SERVICE_API_KEY"),
            "collection": env.get("RAGOPS_SERVICE_COLLECTION") or DEFAULT_ALIAS,
            "torch_threads": int(env["RAGOPS_SERVICE_TORCH_THREADS"]) if env.get("RAGOPS_SERVICE_TORCH_THREADS") else 1,
        }
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)  # type: ignore[arg-type]

    def check(self) -> None:
        """Refuses settings that would expose an unauthenticated service."""
        if self.api_key is None and not self.no_auth:
            raise InvalidInput("the service needs an API key: set RAGOPS_SERVICE_API_KEY or RAGOPS_SERVICE_API_KEY_FILE "
                               "(or pass --no-auth to serve without one on loopback)")
        if self.api_key is None and not is_loopback(self.host):
            raise InvalidInput(f"--no-auth is only allowed on a loopback address, not {self.host!r}")
        if self.api_key is not None and len(self.api_key) < 16:
            raise InvalidInput("RAGOPS_SERVICE_API_KEY is shorter than 16 characters: use a random key")


def llm_endpoint_from_env(env: Mapping[str, str] | None = None) -> LLMEndpoint | None:
    """The LLM endpoint for answers (see the module doc), or None."""
    env = dict(os.environ if env is None else env)
    url = (env.get("RAGOPS_LLM_URL") or "").strip()
    if url:
        extra = {"model": env["RAGOPS_LLM_MODEL"]} if env.get("RAGOPS_LLM_MODEL") else {}
        return LLMEndpoint(url, read_secret(env, "RAGOPS_LLM_API_KEY") or "not-needed", extra)
    conn = (env.get(f"AIRFLOW_CONN_{LLM_CONN_ID.upper()}") or "").strip()
    if not conn.startswith("{"):
        return None   # unset, or the URI form (read by Airflow itself; give RAGOPS_LLM_URL here)
    try:
        data = json.loads(conn)
    except ValueError as exc:
        raise InvalidInput(f"AIRFLOW_CONN_{LLM_CONN_ID.upper()} is not valid JSON: {exc}") from None
    host = str(data.get("host") or "")
    if not host:
        return None
    base_url = host if "://" in host else f"https://{host}"
    if data.get("port"):
        base_url = f"{base_url}:{data['port']}"
    if data.get("schema"):
        base_url = f"{base_url.rstrip('/')}/{str(data['schema']).strip('/')}"
    extra = data.get("extra") or {}
    if isinstance(extra, str):
        extra = json.loads(extra or "{}")
    return LLMEndpoint(base_url, str(data.get("password") or "not-needed"), dict(extra))
