-- ckp_claim reads the claimed runs' checkpoints by run_id = ANY(array). PostgreSQL planned that statement on every
-- call: the generic plan's estimate for an array parameter (ten elements) always looks dearer than a custom plan's
-- for the few runs of a claim, so it never settles on the generic plan (pg_stat_statements with track_planning:
-- one plan per call, ~0.1 ms each, more than the statement's execution). The function now plans its statements
-- once per session; the generic plans are the same index scans.
ALTER FUNCTION ckp_claim(timestamptz, text[], timestamptz) SET plan_cache_mode = force_generic_plan;
