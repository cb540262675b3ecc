-- The server's tables (issue 5): what the REST API lists and filters. Run columns below are kept in step with the
-- checkpoint by every journal commit, in the same transaction, so a read never sees one without the other.
ALTER TABLE runs ADD COLUMN input_vars TEXT;
ALTER TABLE runs ADD COLUMN output_vars TEXT;
ALTER TABLE runs ADD COLUMN started_at TEXT;
ALTER TABLE runs ADD COLUMN ended_at TEXT;
ALTER TABLE runs ADD COLUMN error_message TEXT;
ALTER TABLE runs ADD COLUMN last_node_id TEXT;
ALTER TABLE runs ADD COLUMN prompt_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN completion_tokens INTEGER NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN cost_usd REAL NOT NULL DEFAULT 0;
ALTER TABLE runs ADD COLUMN parent_run_id TEXT;
ALTER TABLE runs ADD COLUMN project_id TEXT;
ALTER TABLE runs ADD COLUMN case_id TEXT;
ALTER TABLE runs ADD COLUMN trigger_type TEXT;
ALTER TABLE runs ADD COLUMN triggered_by TEXT;
ALTER TABLE runs ADD COLUMN cancellation_requested INTEGER NOT NULL DEFAULT 0;
-- Journal commits applied to this run: the id of its current checkpoint.
ALTER TABLE runs ADD COLUMN commits INTEGER NOT NULL DEFAULT 0;
CREATE INDEX runs_created ON runs (created_at, run_id);
CREATE INDEX runs_procedure ON runs (procedure_id, created_at);
CREATE INDEX runs_project ON runs (project_id, created_at);
CREATE INDEX runs_parent ON runs (parent_run_id);

ALTER TABLE procedures ADD COLUMN provenance TEXT;
ALTER TABLE procedures ADD COLUMN retrieval_metadata TEXT;
ALTER TABLE procedures ADD COLUMN trigger_config TEXT;
ALTER TABLE procedures ADD COLUMN release_channel TEXT;
CREATE INDEX procedures_project ON procedures (project_id);

CREATE TABLE projects (
    project_id  TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    description TEXT,
    created_at  TEXT NOT NULL
) STRICT;

-- One row per approval a top-level run waited for. `approval_key` is the engine's decision key (routing through
-- subflow children as `child>key`); `approval_id` is derived from it (ckp_engine::journal::approval_id).
CREATE TABLE approvals (
    approval_id      TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    approval_key     TEXT NOT NULL,
    node_id          TEXT NOT NULL,
    node_name        TEXT,
    prompt           TEXT NOT NULL,
    decision_type    TEXT NOT NULL,
    options          TEXT,
    context_data     TEXT,
    status           TEXT NOT NULL,
    decided_by       TEXT,
    decision_payload TEXT,
    created_at       TEXT NOT NULL,
    decided_at       TEXT,
    expires_at       TEXT,
    updated_at       TEXT NOT NULL,
    UNIQUE (run_id, approval_key)
) STRICT;
CREATE INDEX approvals_status ON approvals (status, created_at);
CREATE INDEX approvals_expiry ON approvals (expires_at) WHERE status = 'pending';

CREATE TABLE agents (
    agent_id             TEXT PRIMARY KEY,
    name                 TEXT NOT NULL,
    channel              TEXT NOT NULL,
    base_url             TEXT NOT NULL,
    status               TEXT NOT NULL,
    concurrency_limit    INTEGER NOT NULL,
    resource_key         TEXT NOT NULL,
    pool_id              TEXT,
    capabilities         TEXT NOT NULL,
    consecutive_failures INTEGER NOT NULL DEFAULT 0,
    circuit_open_at      TEXT,
    last_heartbeat_at    TEXT,
    updated_at           TEXT NOT NULL
) STRICT;
CREATE INDEX agents_channel ON agents (channel);

CREATE TABLE leases (
    lease_id     TEXT PRIMARY KEY,
    resource_key TEXT NOT NULL,
    run_id       TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    node_id      TEXT,
    step_id      TEXT,
    acquired_at  TEXT NOT NULL,
    expires_at   TEXT NOT NULL,
    released_at  TEXT
) STRICT;
CREATE INDEX leases_resource ON leases (resource_key, released_at);
CREATE INDEX leases_run ON leases (run_id);

CREATE TABLE artifacts (
    artifact_id TEXT PRIMARY KEY,
    run_id      TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    node_id     TEXT,
    step_id     TEXT,
    kind        TEXT NOT NULL,
    uri         TEXT NOT NULL,
    name        TEXT,
    mime_type   TEXT,
    size_bytes  INTEGER,
    created_at  TEXT NOT NULL
) STRICT;
CREATE INDEX artifacts_run ON artifacts (run_id, created_at);
