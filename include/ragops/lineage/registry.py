"""The lineage registry: runs, artifacts, edges, aliases and stages, data quality, alerts, LLM cache.

It lives in a Postgres schema of its own (default ``ragops``), reached through the Airflow
connection ``ragops_postgres`` and never through Airflow's metadata DB. Every write is an upsert
keyed by natural keys (an artifact by kind, name and content hash; a run by dag and run id), so a
retried task updates its rows instead of duplicating them. Timestamps are audit columns filled by
the database; no decision depends on them. All SQL of ragops is in this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Iterable, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras

from ragops.config import redact
from ragops.errors import AliasMoved, SchemaBehind
from ragops.lineage.migrations import MIGRATIONS
from ragops.vocabulary import AliasKind, ArtifactKind, Stage

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")
_ARTIFACT_COLS = "id, kind, name, version, content_hash, uri, params, metrics, status, stage, run_key"
_A_COLS = ", ".join(f"a.{c.strip()}" for c in _ARTIFACT_COLS.split(","))


@dataclass(frozen=True)
class Artifact:
    id: int
    kind: str
    name: str
    version: int
    content_hash: str
    uri: str
    params: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    status: str = "created"
    stage: str | None = None
    run_key: str | None = None

    def summary(self) -> dict[str, Any]:
        """The compact form that goes into XCom and lineage summaries."""
        return {"id": self.id, "kind": self.kind, "name": self.name, "version": self.version,
                "hash": self.content_hash[:12], "uri": self.uri, "status": self.status,
                "stage": self.stage}

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _artifact(row: dict[str, Any] | None) -> Artifact | None:
    return Artifact(**{k: row[k] for k in Artifact.__dataclass_fields__}) if row else None


def run_key_for(dag_id: str, run_id: str) -> str:
    return f"{dag_id}/{run_id}"


class Registry:
    """Postgres-backed lineage registry. ``dsn`` is a libpq URI; ``schema`` isolates deployments."""

    def __init__(self, dsn: str, schema: str = "ragops"):
        if not _IDENT.match(schema):
            raise ValueError(f"lineage schema name {schema!r} is not a plain lower-case identifier")
        self.dsn = dsn
        self.schema = schema

    @contextmanager
    def transaction(self) -> Generator[Any, None, None]:
        """A cursor whose rows are dicts, in one transaction (committed on leaving)."""
        conn = psycopg2.connect(self.dsn, options=f"-c search_path={self.schema}")
        try:
            with conn, conn.cursor(cursor_factory=psycopg2.extras.RealDictCursor) as cur:
                yield cur
        finally:
            conn.close()

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> int:
        """Creates or upgrades the schema; returns the schema version now. Safe to call concurrently."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ragops-migrate-{self.schema}",))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())")
            current = self._version(cur)
            for version, ddl in enumerate(MIGRATIONS, start=1):
                if version > current:
                    cur.execute(ddl)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            return self._version(cur)

    def schema_version(self) -> int:
        """The schema's migration version; 0 when the schema does not exist yet."""
        with self.transaction() as cur:
            cur.execute("SELECT to_regclass(%s) AS t", (f'"{self.schema}".schema_migrations',))
            if cur.fetchone()["t"] is None:
                return 0
            return self._version(cur)

    def require_current(self) -> None:
        """Refuses a schema behind this code (tasks never migrate: a least-privilege role can't)."""
        have, need = self.schema_version(), len(MIGRATIONS)
        if have < need:
            raise SchemaBehind(f"the lineage schema {self.schema!r} is at version {have}, this code needs {need}: "
                               "run `python -m ragops migrate` (as a role that may create in it)")

    @staticmethod
    def _version(cur: Any) -> int:
        cur.execute("SELECT coalesce(max(version), 0) AS v FROM schema_migrations")
        return int(cur.fetchone()["v"])

    def drop(self) -> None:
        """Drops the whole schema (tests and teardown only)."""
        with self.transaction() as cur:
            cur.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')

    # -- runs -------------------------------------------------------------------------------
    def start_run(self, dag_id: str, run_id: str, params: dict[str, Any] | None = None,
                  fallbacks: list[dict[str, str]] | None = None) -> str:
        key = run_key_for(dag_id, run_id)
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO runs (run_key, dag_id, run_id, params, fallbacks)
                   VALUES (%s, %s, %s, %s, %s)
                   ON CONFLICT (run_key) DO UPDATE SET params = EXCLUDED.params,
                       fallbacks = EXCLUDED.fallbacks, status = 'running', finished_at = NULL""",
                (key, dag_id, run_id, _json(redact(params or {})), _json(fallbacks or [])),
            )
        return key

    def finish_run(self, run_key: str, status: str, summary: dict[str, Any] | None = None) -> None:
        with self.transaction() as cur:
            cur.execute("UPDATE runs SET status = %s, summary = %s, finished_at = now() WHERE run_key = %s",
                        (status, _json(redact(summary or {})), run_key))
            if cur.rowcount != 1:
                raise KeyError(f"run {run_key!r} was never started in the lineage registry")

    def get_run(self, run_key: str) -> dict[str, Any] | None:
        with self.transaction() as cur:
            cur.execute("SELECT run_key, dag_id, run_id, params, status, summary, fallbacks FROM runs"
                        " WHERE run_key = %s", (run_key,))
            row = cur.fetchone()
        return dict(row) if row else None

    def recent_runs(self, limit: int = 20) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT run_key, dag_id, status, fallbacks, started_at, finished_at FROM runs"
                        " ORDER BY started_at DESC LIMIT %s", (limit,))
            return [dict(r) for r in cur.fetchall()]

    # -- artifacts --------------------------------------------------------------------------
    def record_artifact(
        self, kind: str, name: str, content_hash: str, uri: str, *,
        params: dict[str, Any] | None = None, metrics: dict[str, Any] | None = None,
        status: str = "created", stage: str | None = None, run_key: str | None = None,
        parents: Sequence[tuple[int, str]] = (),
    ) -> Artifact:
        """Upserts an artifact keyed by (kind, name, content hash) and its parent edges.

        A new content hash gets the next version number; the same hash (a retry, a re-run)
        updates the existing row, keeping its version. Params and metrics are merged.
        """
        with self.transaction() as cur:
            # Serialise version assignment per (kind, name) so that concurrent tasks never clash.
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}:{kind}:{name}",))
            cur.execute(
                f"""INSERT INTO artifacts (kind, name, version, content_hash, uri, params, metrics,
                                          status, stage, run_key)
                    VALUES (%s, %s, (SELECT coalesce(max(version), 0) + 1 FROM artifacts
                                      WHERE kind = %s AND name = %s),
                            %s, %s, %s, %s, %s, %s, %s)
                    ON CONFLICT (kind, name, content_hash) DO UPDATE SET
                        uri = EXCLUDED.uri,
                        params = artifacts.params || EXCLUDED.params,
                        metrics = artifacts.metrics || EXCLUDED.metrics,
                        status = EXCLUDED.status,
                        stage = coalesce(artifacts.stage, EXCLUDED.stage),
                        run_key = coalesce(EXCLUDED.run_key, artifacts.run_key),
                        updated_at = now()
                    RETURNING {_ARTIFACT_COLS}""",
                (kind, name, kind, name, content_hash, uri, _json(redact(params or {})),
                 _json(metrics or {}), status, stage, run_key),
            )
            art = _artifact(cur.fetchone())
            assert art is not None
            for parent_id, relation in parents:
                cur.execute(
                    "INSERT INTO artifact_edges (parent_id, child_id, relation) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING", (parent_id, art.id, relation))
        return art

    def update_artifact(self, artifact_id: int, *, metrics: dict[str, Any] | None = None,
                        status: str | None = None, params: dict[str, Any] | None = None) -> Artifact:
        with self.transaction() as cur:
            cur.execute(
                f"""UPDATE artifacts SET metrics = metrics || %s, params = params || %s,
                        status = coalesce(%s, status), updated_at = now()
                     WHERE id = %s RETURNING {_ARTIFACT_COLS}""",
                (_json(metrics or {}), _json(redact(params or {})), status, artifact_id))
            art = _artifact(cur.fetchone())
        if art is None:
            raise KeyError(f"artifact {artifact_id} does not exist")
        return art

    def get_artifact(self, artifact_id: int) -> Artifact | None:
        with self.transaction() as cur:
            cur.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = %s", (artifact_id,))
            return _artifact(cur.fetchone())

    def find_artifact(self, kind: str, name: str, *, content_hash: str | None = None,
                      version: int | None = None) -> Artifact | None:
        where, args = ["kind = %s", "name = %s"], [kind, name]
        if content_hash is not None:
            where.append("content_hash = %s")
            args.append(content_hash)
        if version is not None:
            where.append("version = %s")
            args.append(version)
        with self.transaction() as cur:
            cur.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE {' AND '.join(where)}"
                        " ORDER BY version DESC LIMIT 1", args)
            return _artifact(cur.fetchone())

    def list_artifacts(self, kind: str, name: str | None = None, status: str | None = None) -> list[Artifact]:
        where, args = ["kind = %s"], [kind]
        if name is not None:
            where.append("name = %s")
            args.append(name)
        if status is not None:
            where.append("status = %s")
            args.append(status)
        with self.transaction() as cur:
            cur.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE {' AND '.join(where)}"
                        " ORDER BY name, version", args)
            return [a for a in map(_artifact, cur.fetchall()) if a is not None]

    def add_edge(self, parent_id: int, child_id: int, relation: str) -> None:
        with self.transaction() as cur:
            cur.execute("INSERT INTO artifact_edges (parent_id, child_id, relation) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING", (parent_id, child_id, relation))

    def parents(self, artifact_id: int) -> list[tuple[Artifact, str]]:
        with self.transaction() as cur:
            cur.execute(f"SELECT {_A_COLS}, e.relation FROM artifact_edges e JOIN artifacts a ON a.id = e.parent_id"
                        " WHERE e.child_id = %s ORDER BY a.kind, a.id", (artifact_id,))
            return [(_artifact(r), r["relation"]) for r in cur.fetchall()]  # type: ignore[misc]

    def parent(self, artifact_id: int, relation: str) -> Artifact | None:
        """The first parent of an artifact by one relation (a collection's model, a model's dataset...)."""
        return next((p for p, rel in self.parents(artifact_id) if rel == relation), None)

    def children(self, artifact_id: int) -> list[tuple[Artifact, str]]:
        """What was made from an artifact: evaluations of a collection, collections of a chunk set..."""
        with self.transaction() as cur:
            cur.execute(f"SELECT {_A_COLS}, e.relation FROM artifact_edges e JOIN artifacts a ON a.id = e.child_id"
                        " WHERE e.parent_id = %s ORDER BY a.id", (artifact_id,))
            return [(_artifact(r), r["relation"]) for r in cur.fetchall()]  # type: ignore[misc]

    def ancestors(self, artifact_id: int) -> list[dict[str, Any]]:
        """The whole upstream lineage of an artifact, nearest first."""
        with self.transaction() as cur:
            cur.execute("SELECT DISTINCT ON (ancestor_id) ancestor_id AS id, relation, depth, kind, name, version,"
                        " uri, params, metrics FROM v_lineage WHERE child_id = %s"
                        " ORDER BY ancestor_id, depth", (artifact_id,))
            rows = [dict(r) for r in cur.fetchall()]
        return sorted(rows, key=lambda r: (r["depth"], r["id"]))

    # -- aliases (collections) and stages (models) ------------------------------------------
    @contextmanager
    def alias_lock(self, alias: str, kind: str = AliasKind.COLLECTION) -> Generator[None, None, None]:
        """Holds the alias' lock: everything that moves an alias or deletes its collections takes
        it (index runs, rollbacks, the CLI), so none of them acts on a view the other changed."""
        conn = psycopg2.connect(self.dsn)
        try:
            with conn.cursor() as cur:
                cur.execute("SELECT pg_advisory_lock(hashtext(%s))", (f"{self.schema}:alias:{kind}:{alias}",))
            yield
        finally:
            conn.close()  # ends the session, which releases the lock even on a crash

    def set_alias(self, kind: str, alias: str, artifact_id: int, *, reason: str,
                  run_key: str | None = None, expected: int | None | type[Ellipsis] = ...) -> int | None:
        """Points an alias at an artifact in one transaction, with history. Returns the previous
        target. Setting the alias to where it already points records nothing new. With
        ``expected`` (an artifact id, or None for "no alias yet"), it is a compare-and-swap:
        ``AliasMoved`` is raised if the alias no longer points there."""
        with self.transaction() as cur:
            cur.execute("SELECT artifact_id FROM aliases WHERE kind = %s AND alias = %s FOR UPDATE",
                        (kind, alias))
            row = cur.fetchone()
            previous = row["artifact_id"] if row else None
            if previous == artifact_id:
                return previous
            if expected is not ... and previous != expected:
                raise AliasMoved(f"alias {alias!r} points at artifact {previous}, not {expected} as planned: "
                                 "another run moved it; nothing was changed")
            cur.execute("""INSERT INTO aliases (kind, alias, artifact_id) VALUES (%s, %s, %s)
                           ON CONFLICT (kind, alias) DO UPDATE SET artifact_id = EXCLUDED.artifact_id,
                               updated_at = now()""", (kind, alias, artifact_id))
            cur.execute("""INSERT INTO alias_history (kind, alias, from_artifact_id, to_artifact_id, reason, run_key)
                           VALUES (%s, %s, %s, %s, %s, %s)""",
                        (kind, alias, previous, artifact_id, reason, run_key))
            return previous

    def get_alias(self, kind: str, alias: str) -> Artifact | None:
        with self.transaction() as cur:
            cur.execute(f"SELECT {_A_COLS} FROM aliases al JOIN artifacts a ON a.id = al.artifact_id"
                        " WHERE al.kind = %s AND al.alias = %s", (kind, alias))
            return _artifact(cur.fetchone())

    def alias_history(self, kind: str, alias: str) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT from_artifact_id, to_artifact_id, reason, run_key FROM alias_history"
                        " WHERE kind = %s AND alias = %s ORDER BY id", (kind, alias))
            return [dict(r) for r in cur.fetchall()]

    def set_stage(self, artifact_id: int, stage: str, *, reason: str, run_key: str | None = None,
                  exclusive: bool = False) -> list[int]:
        """Moves an artifact to a stage in one transaction, with history.

        With ``exclusive`` (``production``), every other artifact of the same kind and name in
        that stage is archived in the same transaction. Returns the ids that were archived.
        """
        archived: list[int] = []
        with self.transaction() as cur:
            cur.execute("SELECT kind, name, stage FROM artifacts WHERE id = %s FOR UPDATE", (artifact_id,))
            row = cur.fetchone()
            if row is None:
                raise KeyError(f"artifact {artifact_id} does not exist")
            kind, name, current = row["kind"], row["name"], row["stage"]
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}:stage:{kind}:{name}",))
            if exclusive:
                cur.execute("SELECT id FROM artifacts WHERE kind = %s AND name = %s AND stage = %s AND id <> %s"
                            " FOR UPDATE", (kind, name, stage, artifact_id))
                archived = [r["id"] for r in cur.fetchall()]
                for other in archived:
                    cur.execute("UPDATE artifacts SET stage = %s, updated_at = now() WHERE id = %s",
                                (Stage.ARCHIVED, other))
                    cur.execute("INSERT INTO stage_history (artifact_id, from_stage, to_stage, reason, run_key)"
                                " VALUES (%s, %s, %s, %s, %s)",
                                (other, stage, Stage.ARCHIVED, f"superseded by artifact {artifact_id}", run_key))
            if current != stage:
                cur.execute("UPDATE artifacts SET stage = %s, updated_at = now() WHERE id = %s", (stage, artifact_id))
                cur.execute("INSERT INTO stage_history (artifact_id, from_stage, to_stage, reason, run_key)"
                            " VALUES (%s, %s, %s, %s, %s)", (artifact_id, current, stage, reason, run_key))
        return archived

    def in_stage(self, kind: str, name: str, stage: str) -> Artifact | None:
        with self.transaction() as cur:
            cur.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE kind = %s AND name = %s AND stage = %s"
                        " ORDER BY version DESC LIMIT 1", (kind, name, stage))
            return _artifact(cur.fetchone())

    def stage_history(self, artifact_id: int) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT from_stage, to_stage, reason, run_key FROM stage_history WHERE artifact_id = %s"
                        " ORDER BY id", (artifact_id,))
            return [dict(r) for r in cur.fetchall()]

    def stage_history_of(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Every stage change of every version of (kind, name), oldest first."""
        with self.transaction() as cur:
            cur.execute("SELECT a.version, h.from_stage, h.to_stage, h.reason, h.run_key FROM stage_history h"
                        " JOIN artifacts a ON a.id = h.artifact_id WHERE a.kind = %s AND a.name = %s ORDER BY h.id",
                        (kind, name))
            return [dict(r) for r in cur.fetchall()]

    # -- data quality and alerts ------------------------------------------------------------
    def record_dq(self, run_key: str, suite: str, target: str, success: bool,
                  statistics: dict[str, Any] | None = None, failures: list[Any] | None = None) -> int:
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO dq_results (run_key, suite, target, success, statistics, failures)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (run_key, suite, target) DO UPDATE SET success = EXCLUDED.success,
                       statistics = EXCLUDED.statistics, failures = EXCLUDED.failures, recorded_at = now()
                   RETURNING id""",
                (run_key, suite, target, success, _json(statistics or {}), _json(failures or [])))
            return int(cur.fetchone()["id"])

    def dq_results(self, run_key: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """A run's data-quality results in order, or the latest of all runs (newest first)."""
        with self.transaction() as cur:
            if run_key is None:
                cur.execute("SELECT run_key, suite, target, success, statistics, failures FROM dq_results"
                            " ORDER BY id DESC LIMIT %s", (limit or 20,))
            else:
                cur.execute("SELECT run_key, suite, target, success, statistics, failures FROM dq_results"
                            " WHERE run_key = %s ORDER BY id", (run_key,))
            return [dict(r) for r in cur.fetchall()]

    def record_alert(self, run_key: str | None, severity: str, title: str, message: str,
                     context: dict[str, Any] | None = None, channels: list[str] | None = None) -> int:
        with self.transaction() as cur:
            cur.execute(
                """INSERT INTO alerts (run_key, severity, title, message, context, channels)
                   VALUES (%s, %s, %s, %s, %s, %s)
                   ON CONFLICT (run_key, title) DO UPDATE SET severity = EXCLUDED.severity,
                       message = EXCLUDED.message, context = EXCLUDED.context,
                       channels = EXCLUDED.channels, recorded_at = now()
                   RETURNING id""",
                (run_key, severity, title, message, _json(redact(context or {})), _json(channels or [])))
            return int(cur.fetchone()["id"])

    def alerts(self, run_key: str | None = None, limit: int | None = None) -> list[dict[str, Any]]:
        """A run's alerts in order, or all alerts (the latest ``limit``, newest first)."""
        cols = "SELECT run_key, severity, title, message, context, channels FROM alerts"
        with self.transaction() as cur:
            if run_key is not None:
                cur.execute(f"{cols} WHERE run_key = %s ORDER BY id", (run_key,))
            elif limit is not None:
                cur.execute(f"{cols} ORDER BY id DESC LIMIT %s", (limit,))
            else:
                cur.execute(f"{cols} ORDER BY id")
            return [dict(r) for r in cur.fetchall()]

    # -- the LLM answer cache (a resumed run never pays twice) ------------------------------
    def llm_cache_get(self, keys: Iterable[str]) -> dict[str, dict[str, Any]]:
        keys = list(dict.fromkeys(keys))
        if not keys:
            return {}
        with self.transaction() as cur:
            cur.execute("SELECT cache_key, response, prompt_tokens, completion_tokens, cost_usd FROM llm_cache"
                        " WHERE cache_key = ANY(%s)", (keys,))
            return {r["cache_key"]: dict(r) for r in cur.fetchall()}

    def llm_cache_put(self, key: str, *, model: str, prompt_version: str, response: dict[str, Any],
                      prompt_tokens: int, completion_tokens: int, cost_usd: float) -> None:
        """Stores one answer; a second write of the same key keeps the first (it was paid first)."""
        with self.transaction() as cur:
            cur.execute("INSERT INTO llm_cache (cache_key, model, prompt_version, response, prompt_tokens,"
                        " completion_tokens, cost_usd) VALUES (%s, %s, %s, %s, %s, %s, %s)"
                        " ON CONFLICT (cache_key) DO NOTHING",
                        (key, model, prompt_version, _json(response), prompt_tokens, completion_tokens, cost_usd))

    def llm_cache_count(self, prompt_version: str | None = None) -> int:
        with self.transaction() as cur:
            cur.execute("SELECT count(*) AS n FROM llm_cache WHERE %s IS NULL OR prompt_version = %s",
                        (prompt_version, prompt_version))
            return int(cur.fetchone()["n"])

    # -- reports ----------------------------------------------------------------------------
    def live(self) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT alias_kind, alias, artifact_id, kind, name, version, uri, params, metrics,"
                        " dag_id, run_id FROM v_live ORDER BY alias_kind, alias")
            return [dict(r) for r in cur.fetchall()]

    def corpus_of(self, collection_id: int) -> dict[str, Any] | None:
        """The corpus snapshot a collection was built from (through its chunk set)."""
        return next((a for a in self.ancestors(collection_id) if a["kind"] == ArtifactKind.CORPUS), None)

    # -- read-only views for the control plane (ragops.control_plane) -----------------------
    def artifacts_by_id(self, ids: Iterable[int]) -> dict[int, Artifact]:
        ids = sorted(set(ids))
        with self.transaction() as cur:
            cur.execute(f"SELECT {_ARTIFACT_COLS} FROM artifacts WHERE id = ANY(%s)", (ids,))
            return {a.id: a for a in map(_artifact, cur.fetchall()) if a is not None}

    def created_at(self, ids: Iterable[int]) -> dict[int, Any]:
        """When each artifact was first recorded (an audit time: shown, never decided on)."""
        with self.transaction() as cur:
            cur.execute("SELECT id, created_at FROM artifacts WHERE id = ANY(%s)", (sorted(set(ids)),))
            return {r["id"]: r["created_at"] for r in cur.fetchall()}

    def artifact_names(self, kind: str) -> list[str]:
        with self.transaction() as cur:
            cur.execute("SELECT DISTINCT name FROM artifacts WHERE kind = %s ORDER BY name", (kind,))
            return [r["name"] for r in cur.fetchall()]

    def aliases(self, kind: str = AliasKind.COLLECTION) -> list[str]:
        with self.transaction() as cur:
            cur.execute("SELECT alias FROM aliases WHERE kind = %s ORDER BY alias", (kind,))
            return [r["alias"] for r in cur.fetchall()]

    def alias_timeline(self, kind: str, alias: str | None = None) -> list[dict[str, Any]]:
        """Alias moves with their times (of one alias, or all of a kind), oldest first."""
        with self.transaction() as cur:
            cur.execute("SELECT alias, from_artifact_id, to_artifact_id, reason, run_key, changed_at FROM alias_history"
                        " WHERE kind = %s AND (%s IS NULL OR alias = %s) ORDER BY id", (kind, alias, alias))
            return [dict(r) for r in cur.fetchall()]

    def stage_timeline(self, kind: str) -> list[dict[str, Any]]:
        """Every stage change of every artifact of ``kind``, with its time, oldest first."""
        with self.transaction() as cur:
            cur.execute("SELECT h.artifact_id, a.name, a.version, h.from_stage, h.to_stage, h.reason, h.run_key,"
                        " h.changed_at FROM stage_history h JOIN artifacts a ON a.id = h.artifact_id"
                        " WHERE a.kind = %s ORDER BY h.id", (kind,))
            return [dict(r) for r in cur.fetchall()]

    def neighbourhood(self, artifact_id: int) -> tuple[set[int], list[dict[str, Any]]]:
        """An artifact's whole upstream and downstream lineage: the artifact ids, and the edges among them."""
        with self.transaction() as cur:
            cur.execute("SELECT ancestor_id AS id FROM v_lineage WHERE child_id = %s"
                        " UNION SELECT child_id FROM v_lineage WHERE ancestor_id = %s", (artifact_id, artifact_id))
            ids = {artifact_id} | {r["id"] for r in cur.fetchall()}
            cur.execute("SELECT parent_id, child_id, relation FROM artifact_edges"
                        " WHERE parent_id = ANY(%s) AND child_id = ANY(%s) ORDER BY parent_id, child_id",
                        (sorted(ids), sorted(ids)))
            return ids, [dict(r) for r in cur.fetchall()]

    def run_log(self, limit: int = 50) -> list[dict[str, Any]]:
        """The latest runs, newest first, with their summaries and fallbacks."""
        with self.transaction() as cur:
            cur.execute("SELECT run_key, dag_id, run_id, status, summary, fallbacks, started_at, finished_at"
                        " FROM runs ORDER BY started_at DESC, run_key LIMIT %s", (limit,))
            return [dict(r) for r in cur.fetchall()]


def _json(obj: Any) -> psycopg2.extras.Json:
    return psycopg2.extras.Json(_without_nul(json.loads(json.dumps(obj, default=str))))


def _without_nul(value: Any) -> Any:
    """Postgres' jsonb refuses U+0000 (a data-quality failure example can quote a document holding
    one): it becomes U+FFFD, the replacement character, in keys and values alike."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(k): _without_nul(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_without_nul(v) for v in value]
    return value
