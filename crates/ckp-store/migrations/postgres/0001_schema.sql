-- ckp's schema on PostgreSQL: the same tables as the SQLite store after its migration 0005, with PostgreSQL
-- types (timestamptz, bigint, boolean, bytea). Append-only: never edit a migration once applied; add the next one.
-- JSON documents are kept as text: the store never queries inside them, and text costs the server no parsing.

CREATE TABLE runs (
    run_id                 text PRIMARY KEY,
    procedure_id           text NOT NULL,
    procedure_version      text NOT NULL,
    status                 text NOT NULL,
    checkpoint             text NOT NULL,
    created_at             timestamptz NOT NULL,
    updated_at             timestamptz NOT NULL,
    input_vars             text,
    output_vars            text,
    started_at             timestamptz,
    ended_at               timestamptz,
    error_message          text,
    last_node_id           text,
    prompt_tokens          bigint NOT NULL DEFAULT 0,
    completion_tokens      bigint NOT NULL DEFAULT 0,
    cost_usd               double precision NOT NULL DEFAULT 0,
    parent_run_id          text,
    project_id             text,
    case_id                text,
    trigger_type           text,
    triggered_by           text,
    cancellation_requested boolean NOT NULL DEFAULT false,
    -- Journal commits applied to this run: the id of its current checkpoint.
    commits                bigint NOT NULL DEFAULT 0
);
CREATE INDEX runs_status ON runs (status);
CREATE INDEX runs_created ON runs (created_at, run_id);
CREATE INDEX runs_procedure ON runs (procedure_id, created_at);
CREATE INDEX runs_project ON runs (project_id, created_at);
CREATE INDEX runs_parent ON runs (parent_run_id);

-- A commit's events as one deflate-compressed JSON array; an event's id is (batch_id << 20) | its index. Every
-- commit locks its run row before taking a batch id, so one run's batch ids grow in commit order.
CREATE TABLE run_event_batches (
    batch_id bigserial PRIMARY KEY,
    run_id   text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    events   bigint NOT NULL,
    data     bytea NOT NULL
);
CREATE INDEX run_event_batches_run ON run_event_batches (run_id, batch_id);

CREATE TABLE step_results (
    run_id     text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    key        text NOT NULL,
    record     text NOT NULL,
    updated_at timestamptz NOT NULL,
    PRIMARY KEY (run_id, key)
);

-- The job queue (DESIGN §4). Claims take the best ready row with FOR UPDATE SKIP LOCKED.
CREATE TABLE run_jobs (
    job_id       bigserial PRIMARY KEY,
    run_id       text NOT NULL UNIQUE,
    state        text NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    priority     bigint NOT NULL DEFAULT 0,
    attempts     bigint NOT NULL DEFAULT 0,
    available_at timestamptz NOT NULL,
    locked_by    text,
    locked_until timestamptz,
    rerun        boolean NOT NULL DEFAULT false,
    updated_at   timestamptz NOT NULL
);
CREATE INDEX run_jobs_ready ON run_jobs (priority DESC, available_at, job_id) WHERE state = 'queued';
CREATE INDEX run_jobs_leases ON run_jobs (locked_until) WHERE state = 'running';

CREATE TABLE procedures (
    id                 bigserial UNIQUE,
    procedure_id       text NOT NULL,
    version            text NOT NULL,
    name               text NOT NULL,
    status             text NOT NULL,
    effective_date     text,
    description        text,
    project_id         text,
    ckp_json           text NOT NULL,
    provenance         text,
    retrieval_metadata text,
    trigger_config     text,
    release_channel    text,
    created_at         timestamptz NOT NULL,
    updated_at         timestamptz NOT NULL,
    PRIMARY KEY (procedure_id, version)
);
CREATE INDEX procedures_by_age ON procedures (procedure_id, created_at);
CREATE INDEX procedures_project ON procedures (project_id);

CREATE TABLE projects (
    project_id  text PRIMARY KEY,
    name        text NOT NULL,
    description text,
    created_at  timestamptz NOT NULL
);

CREATE TABLE approvals (
    approval_id      text PRIMARY KEY,
    run_id           text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    approval_key     text NOT NULL,
    node_id          text NOT NULL,
    node_name        text,
    prompt           text NOT NULL,
    decision_type    text NOT NULL,
    options          text,
    context_data     text,
    status           text NOT NULL,
    decided_by       text,
    decision_payload text,
    created_at       timestamptz NOT NULL,
    decided_at       timestamptz,
    expires_at       timestamptz,
    updated_at       timestamptz NOT NULL,
    UNIQUE (run_id, approval_key)
);
CREATE INDEX approvals_status ON approvals (status, created_at);
CREATE INDEX approvals_expiry ON approvals (expires_at) WHERE status = 'pending';

CREATE TABLE agents (
    agent_id             text PRIMARY KEY,
    name                 text NOT NULL,
    channel              text NOT NULL,
    base_url             text NOT NULL,
    status               text NOT NULL,
    concurrency_limit    bigint NOT NULL,
    resource_key         text NOT NULL,
    pool_id              text,
    capabilities         text NOT NULL,
    consecutive_failures bigint NOT NULL DEFAULT 0,
    circuit_open_at      timestamptz,
    last_heartbeat_at    timestamptz,
    updated_at           timestamptz NOT NULL
);
CREATE INDEX agents_channel ON agents (channel);

CREATE TABLE leases (
    lease_id     text PRIMARY KEY,
    resource_key text NOT NULL,
    run_id       text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    node_id      text,
    step_id      text,
    acquired_at  timestamptz NOT NULL,
    expires_at   timestamptz NOT NULL,
    released_at  timestamptz
);
CREATE INDEX leases_resource ON leases (resource_key, released_at);
CREATE INDEX leases_run ON leases (run_id);

CREATE TABLE artifacts (
    artifact_id text PRIMARY KEY,
    run_id      text NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    node_id     text,
    step_id     text,
    kind        text NOT NULL,
    uri         text NOT NULL,
    name        text,
    mime_type   text,
    size_bytes  bigint,
    created_at  timestamptz NOT NULL
);
CREATE INDEX artifacts_run ON artifacts (run_id, created_at);
