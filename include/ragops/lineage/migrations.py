"""The lineage schema's migrations: each applied once, in order, with its version row.

Appending is the only change allowed: a deployed schema is at some version N, and
``Registry.migrate`` applies what comes after it. ``Registry.require_current`` refuses to work on
a schema that is behind, with the command that brings it forward.
"""

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
