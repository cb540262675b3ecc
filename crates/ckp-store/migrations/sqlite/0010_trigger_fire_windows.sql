-- Fires get `seq`, increasing in the order they are recorded (the fires list pages by it, newest first; the newest N
-- of a registration are kept by it), and `dedupe_until`, when a key stops deduping: a webhook body hash at the end
-- of its window, a timestamped signature when it goes stale, an Idempotency-Key after 24 hours, a fire through the
-- API or an unkeyed delivery at once (it dedupes nothing), a file version when the file changes or goes. NULL: as
-- long as the row is kept (schedule ticks, a file version still on disk). A known key past its time is no duplicate
-- (the new fire replaces its row), and only rows that dedupe nothing any more are pruned.
ALTER TABLE trigger_fires ADD COLUMN seq INTEGER;
ALTER TABLE trigger_fires ADD COLUMN dedupe_until TEXT;
UPDATE trigger_fires SET seq = rowid;
-- Rows written before: fires through the API and unkeyed deliveries dedupe nothing; signatures are stale 5 minutes
-- after their time (10 minutes after the fire is safe); Idempotency-Keys keep their 24 hours.
UPDATE trigger_fires SET dedupe_until = created_at WHERE cause_key LIKE 'manual:%' OR cause_key LIKE 'delivery:%';
UPDATE trigger_fires SET dedupe_until = strftime('%Y-%m-%dT%H:%M:%f', created_at, '+600 seconds') || '000Z'
    WHERE cause_key LIKE 'signature:%';
UPDATE trigger_fires SET dedupe_until = strftime('%Y-%m-%dT%H:%M:%f', created_at, '+86400 seconds') || '000Z'
    WHERE cause_key LIKE 'idempotency:%';
CREATE UNIQUE INDEX trigger_fires_by_seq ON trigger_fires (procedure_id, version, seq);
CREATE INDEX trigger_fires_seq ON trigger_fires (seq);
