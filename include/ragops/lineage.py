"""The lineage registry: runs, artifacts, edges, aliases and stages, data quality and alerts.

It lives in a Postgres schema of its own (default ``ragops``), reached through the Airflow
connection ``ragops_postgres`` and never through Airflow's metadata DB. Every write is an upsert
keyed by natural keys (an artifact by kind, name and content hash; a run by dag and run id), so a
retried task updates its rows instead of duplicating them. Timestamps are audit columns filled by
the database; no decision depends on them.
"""

from __future__ import annotations

import json
import re
from collections.abc import Generator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import psycopg2
import psycopg2.extras

from ragops.config import redact

_IDENT = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

# Each migration is applied once, in order, inside one transaction with its version row.
MIGRATIONS: list[str] = [
    # 1: the core model
    """
    CREATE TABLE runs (
        run_key      text PRIMARY KEY,
        dag_id       text NOT NULL,
        run_id       text NOT NULL,
        params       jsonb NOT NULL DEFAULT '{}',
        status       text NOT NULL DEFAULT 'running',
        summary      jsonb NOT NULL DEFAULT '{}',
        fallbacks    jsonb NOT NULL DEFAULT '[]',
        started_at   timestamptz NOT NULL DEFAULT now(),
        finished_at  timestamptz
    );
    CREATE TABLE artifacts (
        id            bigserial PRIMARY KEY,
        kind          text NOT NULL,
        name          text NOT NULL,
        version       integer NOT NULL,
        content_hash  text NOT NULL,
        uri           text NOT NULL,
        params        jsonb NOT NULL DEFAULT '{}',
        metrics       jsonb NOT NULL DEFAULT '{}',
        status        text NOT NULL DEFAULT 'created',
        stage         text,
        run_key       text REFERENCES runs(run_key),
        created_at    timestamptz NOT NULL DEFAULT now(),
        updated_at    timestamptz NOT NULL DEFAULT now(),
        UNIQUE (kind, name, content_hash),
        UNIQUE (kind, name, version)
    );
    CREATE TABLE artifact_edges (
        parent_id  bigint NOT NULL REFERENCES artifacts(id),
        child_id   bigint NOT NULL REFERENCES artifacts(id),
        relation   text NOT NULL,
        PRIMARY KEY (parent_id, child_id, relation),
        CHECK (parent_id <> child_id)
    );
    CREATE TABLE aliases (
        kind         text NOT NULL,
        alias        text NOT NULL,
        artifact_id  bigint NOT NULL REFERENCES artifacts(id),
        updated_at   timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (kind, alias)
    );
    CREATE TABLE alias_history (
        id                bigserial PRIMARY KEY,
        kind              text NOT NULL,
        alias             text NOT NULL,
        from_artifact_id  bigint REFERENCES artifacts(id),
        to_artifact_id    bigint NOT NULL REFERENCES artifacts(id),
        reason            text NOT NULL,
        run_key           text REFERENCES runs(run_key),
        changed_at        timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE stage_history (
        id           bigserial PRIMARY KEY,
        artifact_id  bigint NOT NULL REFERENCES artifacts(id),
        from_stage   text,
        to_stage     text NOT NULL,
        reason       text NOT NULL,
        run_key      text REFERENCES runs(run_key),
        changed_at   timestamptz NOT NULL DEFAULT now()
    );
    CREATE TABLE dq_results (
        id           bigserial PRIMARY KEY,
        run_key      text NOT NULL REFERENCES runs(run_key),
        suite        text NOT NULL,
        target       text NOT NULL,
        success      boolean NOT NULL,
        statistics   jsonb NOT NULL DEFAULT '{}',
        failures     jsonb NOT NULL DEFAULT '[]',
        recorded_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (run_key, suite, target)
    );
    CREATE TABLE alerts (
        id           bigserial PRIMARY KEY,
        run_key      text REFERENCES runs(run_key),
        severity     text NOT NULL,
        title        text NOT NULL,
        message      text NOT NULL,
        context      jsonb NOT NULL DEFAULT '{}',
        channels     jsonb NOT NULL DEFAULT '[]',
        recorded_at  timestamptz NOT NULL DEFAULT now(),
        UNIQUE (run_key, title)
    );
    CREATE INDEX artifacts_kind_name ON artifacts (kind, name, version DESC);
    CREATE INDEX edges_child ON artifact_edges (child_id);
    """,
    # 2: views that answer "what is live, what produced it, with which params, how it compared"
    """
    CREATE VIEW v_live AS
      SELECT al.kind AS alias_kind, al.alias, a.id AS artifact_id, a.kind, a.name, a.version,
             a.uri, a.content_hash, a.params, a.metrics, a.status, a.run_key, r.dag_id, r.run_id,
             al.updated_at AS live_since
        FROM aliases al JOIN artifacts a ON a.id = al.artifact_id
        LEFT JOIN runs r ON r.run_key = a.run_key
      UNION ALL
      SELECT 'stage', a.name, a.id, a.kind, a.name, a.version, a.uri, a.content_hash, a.params,
             a.metrics, a.status, a.run_key, r.dag_id, r.run_id, a.updated_at
        FROM artifacts a LEFT JOIN runs r ON r.run_key = a.run_key
       WHERE a.stage = 'production';
    CREATE VIEW v_lineage AS
      WITH RECURSIVE up(child_id, ancestor_id, relation, depth) AS (
        SELECT child_id, parent_id, relation, 1 FROM artifact_edges
        UNION ALL
        SELECT up.child_id, e.parent_id, e.relation, up.depth + 1
          FROM up JOIN artifact_edges e ON e.child_id = up.ancestor_id
         WHERE up.depth < 32)
      SELECT up.child_id, up.ancestor_id, up.relation, up.depth, a.kind, a.name, a.version,
             a.uri, a.params, a.metrics
        FROM up JOIN artifacts a ON a.id = up.ancestor_id;
    """,
    # 3: the LLM call cache: a retried or resumed run never pays for the same call twice
    """
    CREATE TABLE llm_cache (
        cache_key          text PRIMARY KEY,
        model              text NOT NULL,
        prompt_version     text NOT NULL,
        response           jsonb NOT NULL,
        prompt_tokens      integer NOT NULL DEFAULT 0,
        completion_tokens  integer NOT NULL DEFAULT 0,
        cost_usd           double precision NOT NULL DEFAULT 0,
        created_at         timestamptz NOT NULL DEFAULT now()
    );
    """,
]


@dataclass
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


_ARTIFACT_COLS = "id, kind, name, version, content_hash, uri, params, metrics, status, stage, run_key"


def _artifact(row: Sequence[Any] | None) -> Artifact | None:
    return Artifact(*row) if row else None


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
        conn = psycopg2.connect(self.dsn, options=f"-c search_path={self.schema}")
        try:
            with conn, conn.cursor() as cur:
                yield cur
        finally:
            conn.close()

    # -- schema -----------------------------------------------------------------------------
    def migrate(self) -> int:
        """Creates or upgrades the schema; returns the schema version. Safe to call concurrently."""
        with self.transaction() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"ragops-migrate-{self.schema}",))
            cur.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            cur.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version integer PRIMARY KEY,"
                        " applied_at timestamptz NOT NULL DEFAULT now())")
            cur.execute("SELECT coalesce(max(version), 0) FROM schema_migrations")
            current = cur.fetchone()[0]
            for version, ddl in enumerate(MIGRATIONS, start=1):
                if version > current:
                    cur.execute(ddl)
                    cur.execute("INSERT INTO schema_migrations (version) VALUES (%s)", (version,))
            return len(MIGRATIONS)

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
        keys = ("run_key", "dag_id", "run_id", "params", "status", "summary", "fallbacks")
        return dict(zip(keys, row, strict=True)) if row else None

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
            for parent_id, relation in parents:
                cur.execute(
                    "INSERT INTO artifact_edges (parent_id, child_id, relation) VALUES (%s, %s, %s)"
                    " ON CONFLICT DO NOTHING", (parent_id, art.id, relation))
        assert art is not None
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
            return [_artifact(r) for r in cur.fetchall()]  # type: ignore[misc]

    def add_edge(self, parent_id: int, child_id: int, relation: str) -> None:
        with self.transaction() as cur:
            cur.execute("INSERT INTO artifact_edges (parent_id, child_id, relation) VALUES (%s, %s, %s)"
                        " ON CONFLICT DO NOTHING", (parent_id, child_id, relation))

    def parents(self, artifact_id: int) -> list[tuple[Artifact, str]]:
        with self.transaction() as cur:
            cur.execute(f"SELECT {', '.join('a.' + c.strip() for c in _ARTIFACT_COLS.split(','))}, e.relation"
                        " FROM artifact_edges e JOIN artifacts a ON a.id = e.parent_id"
                        " WHERE e.child_id = %s ORDER BY a.kind, a.id", (artifact_id,))
            return [(Artifact(*row[:-1]), row[-1]) for row in cur.fetchall()]

    def children(self, artifact_id: int) -> list[tuple[Artifact, str]]:
        """What was made from an artifact: evaluations of a collection, collections of a chunk set..."""
        with self.transaction() as cur:
            cur.execute(f"SELECT {', '.join('a.' + c.strip() for c in _ARTIFACT_COLS.split(','))}, e.relation"
                        " FROM artifact_edges e JOIN artifacts a ON a.id = e.child_id"
                        " WHERE e.parent_id = %s ORDER BY a.id", (artifact_id,))
            return [(Artifact(*row[:-1]), row[-1]) for row in cur.fetchall()]

    def ancestors(self, artifact_id: int) -> list[dict[str, Any]]:
        """The whole upstream lineage of an artifact, nearest first."""
        with self.transaction() as cur:
            cur.execute("SELECT DISTINCT ON (ancestor_id) ancestor_id, relation, depth, kind, name, version,"
                        " uri, params, metrics FROM v_lineage WHERE child_id = %s"
                        " ORDER BY ancestor_id, depth", (artifact_id,))
            keys = ("id", "relation", "depth", "kind", "name", "version", "uri", "params", "metrics")
            rows = [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]
        return sorted(rows, key=lambda r: (r["depth"], r["id"]))

    # -- aliases (collections) and stages (models) ------------------------------------------
    def set_alias(self, kind: str, alias: str, artifact_id: int, *, reason: str,
                  run_key: str | None = None) -> int | None:
        """Points an alias at an artifact in one transaction, with history. Returns the previous
        target. Setting the alias to where it already points records nothing new."""
        with self.transaction() as cur:
            cur.execute("SELECT artifact_id FROM aliases WHERE kind = %s AND alias = %s FOR UPDATE",
                        (kind, alias))
            row = cur.fetchone()
            previous = row[0] if row else None
            if previous == artifact_id:
                return previous
            cur.execute("""INSERT INTO aliases (kind, alias, artifact_id) VALUES (%s, %s, %s)
                           ON CONFLICT (kind, alias) DO UPDATE SET artifact_id = EXCLUDED.artifact_id,
                               updated_at = now()""", (kind, alias, artifact_id))
            cur.execute("""INSERT INTO alias_history (kind, alias, from_artifact_id, to_artifact_id, reason, run_key)
                           VALUES (%s, %s, %s, %s, %s, %s)""",
                        (kind, alias, previous, artifact_id, reason, run_key))
            return previous

    def get_alias(self, kind: str, alias: str) -> Artifact | None:
        with self.transaction() as cur:
            cur.execute(f"SELECT {', '.join('a.' + c.strip() for c in _ARTIFACT_COLS.split(','))}"
                        " FROM aliases al JOIN artifacts a ON a.id = al.artifact_id"
                        " WHERE al.kind = %s AND al.alias = %s", (kind, alias))
            return _artifact(cur.fetchone())

    def alias_history(self, kind: str, alias: str) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT from_artifact_id, to_artifact_id, reason, run_key FROM alias_history"
                        " WHERE kind = %s AND alias = %s ORDER BY id", (kind, alias))
            keys = ("from_artifact_id", "to_artifact_id", "reason", "run_key")
            return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]

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
            kind, name, current = row
            cur.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"{self.schema}:stage:{kind}:{name}",))
            if exclusive:
                cur.execute("SELECT id FROM artifacts WHERE kind = %s AND name = %s AND stage = %s AND id <> %s"
                            " FOR UPDATE", (kind, name, stage, artifact_id))
                archived = [r[0] for r in cur.fetchall()]
                for other in archived:
                    cur.execute("UPDATE artifacts SET stage = 'archived', updated_at = now() WHERE id = %s", (other,))
                    cur.execute("INSERT INTO stage_history (artifact_id, from_stage, to_stage, reason, run_key)"
                                " VALUES (%s, %s, 'archived', %s, %s)",
                                (other, stage, f"superseded by artifact {artifact_id}", run_key))
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
            keys = ("from_stage", "to_stage", "reason", "run_key")
            return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]

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
            return cur.fetchone()[0]

    def dq_results(self, run_key: str) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT suite, target, success, statistics, failures FROM dq_results WHERE run_key = %s"
                        " ORDER BY id", (run_key,))
            keys = ("suite", "target", "success", "statistics", "failures")
            return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]

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
            return cur.fetchone()[0]

    def alerts(self, run_key: str | None = None) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            if run_key is None:
                cur.execute("SELECT run_key, severity, title, message, context, channels FROM alerts ORDER BY id")
            else:
                cur.execute("SELECT run_key, severity, title, message, context, channels FROM alerts"
                            " WHERE run_key = %s ORDER BY id", (run_key,))
            keys = ("run_key", "severity", "title", "message", "context", "channels")
            return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]

    # -- reports ----------------------------------------------------------------------------
    def live(self) -> list[dict[str, Any]]:
        with self.transaction() as cur:
            cur.execute("SELECT alias_kind, alias, artifact_id, kind, name, version, uri, params, metrics,"
                        " dag_id, run_id FROM v_live ORDER BY alias_kind, alias")
            keys = ("alias_kind", "alias", "artifact_id", "kind", "name", "version", "uri", "params",
                    "metrics", "dag_id", "run_id")
            return [dict(zip(keys, r, strict=True)) for r in cur.fetchall()]


def _json(obj: Any) -> psycopg2.extras.Json:
    return psycopg2.extras.Json(json.loads(json.dumps(obj, default=str)))
