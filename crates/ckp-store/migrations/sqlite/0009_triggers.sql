-- Trigger registrations, one per procedure version (LangOrch's UQ(procedure_id, version)), and the fires of each:
-- one row per cause (a schedule tick, a webhook delivery, an Idempotency-Key, a broker message id), written in
-- the transaction that creates the cause's run, so a cause replayed after a crash or by another process finds its
-- row and starts nothing. `config` is the registration's settings as JSON (the server's to read); `source` says
-- whether the CKP document (`ckp`) or an operator through the API (`api`) wrote them; `disabled_by` says why a
-- registration is off (`operator` survives a sync; `status`, `deleted`, `undeclared` are the sync's own).
CREATE TABLE triggers (
    id            INTEGER PRIMARY KEY,
    procedure_id  TEXT NOT NULL,
    version       TEXT NOT NULL,
    trigger_type  TEXT NOT NULL,
    config        TEXT NOT NULL,
    source        TEXT NOT NULL,
    enabled       INTEGER NOT NULL,
    disabled_by   TEXT,
    paused        INTEGER NOT NULL DEFAULT 0,
    pause_note    TEXT,
    cursor_at     TEXT,
    created_at    TEXT NOT NULL,
    updated_at    TEXT NOT NULL,
    UNIQUE (procedure_id, version)
) STRICT;

CREATE TABLE trigger_fires (
    procedure_id  TEXT NOT NULL,
    version       TEXT NOT NULL,
    cause_key     TEXT NOT NULL,
    run_id        TEXT,
    outcome       TEXT NOT NULL,
    reason        TEXT,
    scheduled_at  TEXT,
    created_at    TEXT NOT NULL,
    PRIMARY KEY (procedure_id, version, cause_key)
) STRICT;
CREATE INDEX trigger_fires_by_age ON trigger_fires (procedure_id, version, created_at);
