-- Fires get `seq` (the fires list pages by it; the newest N of a registration are kept by it: the fires of one
-- registration are serialized under its row lock, so their order is their commit order) and `dedupe_until`, when a
-- key stops deduping (NULL: as long as the row is kept), as in the SQLite store's migration 0010.
ALTER TABLE trigger_fires ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY;
ALTER TABLE trigger_fires ADD COLUMN dedupe_until timestamptz;
UPDATE trigger_fires SET dedupe_until = created_at WHERE cause_key LIKE 'manual:%' OR cause_key LIKE 'delivery:%';
UPDATE trigger_fires SET dedupe_until = created_at + interval '10 minutes' WHERE cause_key LIKE 'signature:%';
UPDATE trigger_fires SET dedupe_until = created_at + interval '24 hours' WHERE cause_key LIKE 'idempotency:%';
CREATE UNIQUE INDEX trigger_fires_by_seq ON trigger_fires (procedure_id, version, seq);
