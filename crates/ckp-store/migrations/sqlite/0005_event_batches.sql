-- Run events stored one row per commit: the commit's events as a deflate-compressed JSON array (DESIGN §6 storage
-- budget: a run's ~90 events cost ~18 KB as rows, ~1–2 KB as batches). An event's id is
-- (batch_id << 20) | its index in the batch: monotonic, and it locates the batch. Existing rows are converted by
-- the store when this migration is applied (one batch per run) and the old table is dropped.
CREATE TABLE run_event_batches (
    batch_id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id   TEXT NOT NULL REFERENCES runs (run_id) ON DELETE CASCADE,
    events   INTEGER NOT NULL,
    data     BLOB NOT NULL
) STRICT;
CREATE INDEX run_event_batches_run ON run_event_batches (run_id, batch_id);
