-- A run started again with other inputs names the run it reruns (POST /api/runs/{id}/retry with a body). No
-- foreign key: deleting or cleaning up the original leaves the rerun with its id, as a link that no longer resolves.
-- The ended_at index serves the run statistics (runs that ended in a window).
ALTER TABLE runs ADD COLUMN rerun_of TEXT;
CREATE INDEX runs_rerun_of ON runs (rerun_of) WHERE rerun_of IS NOT NULL;
CREATE INDEX runs_ended ON runs (ended_at) WHERE ended_at IS NOT NULL;
