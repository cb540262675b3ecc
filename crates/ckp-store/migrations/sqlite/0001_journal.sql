-- Runs, their events and their step records: what the engine's Journal needs.
-- Append-only: never edit a migration once applied; add the next one.
CREATE TABLE runs (
    run_id            TEXT PRIMARY KEY,
    procedure_id      TEXT NOT NULL,
    procedure_version TEXT NOT NULL,
    status            TEXT NOT NULL,
    checkpoint        TEXT NOT NULL,
    created_at        TEXT NOT NULL,
    updated_at        TEXT NOT NULL
) STRICT;
CREATE INDEX runs_status ON runs (status);

CREATE TABLE run_events (
    event_id   INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    event_type TEXT NOT NULL,
    node_id    TEXT,
    step_id    TEXT,
    payload    TEXT NOT NULL,
    created_at TEXT NOT NULL
) STRICT;
CREATE INDEX run_events_run ON run_events (run_id, event_id);

CREATE TABLE step_results (
    run_id     TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    key        TEXT NOT NULL,
    record     TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
) STRICT;
