-- The job queue (DESIGN §4): one row per runnable run. A worker claims a row by leasing it (locked_by,
-- locked_until) and keeps the lease alive with heartbeats; an expired lease is reclaimed. `available_at` makes
-- durable timers (waits, backoff, expiry) plain rows.
CREATE TABLE run_jobs (
    job_id       INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id       TEXT NOT NULL UNIQUE,
    state        TEXT NOT NULL CHECK (state IN ('queued', 'running', 'done')),
    priority     INTEGER NOT NULL DEFAULT 0,
    attempts     INTEGER NOT NULL DEFAULT 0,
    available_at TEXT NOT NULL,
    locked_by    TEXT,
    locked_until TEXT,
    -- Set when the run was requeued (a decision, a timer) while a worker held it: finishing requeues it.
    rerun        INTEGER NOT NULL DEFAULT 0,
    updated_at   TEXT NOT NULL
) STRICT;
CREATE INDEX run_jobs_ready ON run_jobs (state, priority DESC, available_at, job_id);
CREATE INDEX run_jobs_leases ON run_jobs (state, locked_until);
