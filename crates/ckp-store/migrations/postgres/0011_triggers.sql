-- Trigger registrations and their fires, as in the SQLite store's migration 0009: one registration per procedure
-- version; one fire row per cause, written in the transaction that creates the cause's run (the registration's
-- row is locked first, so fires of one trigger from any process are serialized and a replayed cause starts
-- nothing).
CREATE TABLE triggers (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    procedure_id  text NOT NULL,
    version       text NOT NULL,
    trigger_type  text NOT NULL,
    config        text NOT NULL,
    source        text NOT NULL,
    enabled       boolean NOT NULL,
    disabled_by   text,
    paused        boolean NOT NULL DEFAULT false,
    pause_note    text,
    cursor_at     timestamptz,
    created_at    timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL,
    UNIQUE (procedure_id, version)
);

CREATE TABLE trigger_fires (
    procedure_id  text NOT NULL,
    version       text NOT NULL,
    cause_key     text NOT NULL,
    run_id        text,
    outcome       text NOT NULL,
    reason        text,
    scheduled_at  timestamptz,
    created_at    timestamptz NOT NULL,
    PRIMARY KEY (procedure_id, version, cause_key)
);
CREATE INDEX trigger_fires_by_age ON trigger_fires (procedure_id, version, created_at);
