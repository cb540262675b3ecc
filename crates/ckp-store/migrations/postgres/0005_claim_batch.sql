-- A process claims jobs for all its idle workers at once, and reads each claimed run with the claim: one
-- statement instead of a claim and a load per job, and no claim per idle worker on every wake-up.
-- Returns, in this order: one row per claimed job (job_id set; worker = index into p_workers, 1-based), the
-- claimed runs' checkpoints (run_id and record set), their step records (run_id, step_key and record set), and,
-- when fewer jobs than workers were claimed, one row with when the next queued job becomes available (next_at).
-- The reads are statements of their own, so they see every commit made before the claim took its rows.
CREATE FUNCTION ckp_claim(p_now timestamptz, p_workers text[], p_until timestamptz)
RETURNS TABLE (job_id bigint, run_id text, attempts bigint, worker bigint, next_at timestamptz, step_key text,
               record text)
LANGUAGE plpgsql AS $$
DECLARE
    c_jobs bigint[];
    c_runs text[];
    c_attempts bigint[];
    c_workers bigint[];
BEGIN
    WITH picked AS (
        SELECT q.job_id, row_number() OVER () AS i FROM (
            SELECT j.job_id FROM run_jobs j WHERE j.state = 'queued' AND j.available_at <= p_now
            ORDER BY j.priority DESC, j.available_at, j.job_id
            LIMIT cardinality(p_workers) FOR UPDATE SKIP LOCKED) q
    ), claimed AS (
        UPDATE run_jobs j SET state = 'running', attempts = j.attempts + 1, locked_by = p_workers[p.i],
            locked_until = p_until, updated_at = p_now
        FROM picked p WHERE j.job_id = p.job_id
        RETURNING j.job_id, j.run_id, j.attempts, p.i)
    SELECT array_agg(c.job_id), array_agg(c.run_id), array_agg(c.attempts), array_agg(c.i)
    INTO c_jobs, c_runs, c_attempts, c_workers FROM claimed c;
    IF c_jobs IS NOT NULL THEN
        RETURN QUERY SELECT u.j, u.r, u.a, u.w, NULL::timestamptz, NULL::text, NULL::text
            FROM unnest(c_jobs, c_runs, c_attempts, c_workers) AS u(j, r, a, w);
        RETURN QUERY SELECT NULL::bigint, r.run_id, NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::text,
                r.checkpoint
            FROM runs r WHERE r.run_id = ANY(c_runs);
        RETURN QUERY SELECT NULL::bigint, s.run_id, NULL::bigint, NULL::bigint, NULL::timestamptz, s.key, s.record
            FROM step_results s WHERE s.run_id = ANY(c_runs);
    END IF;
    IF coalesce(cardinality(c_jobs), 0) < cardinality(p_workers) THEN
        RETURN QUERY SELECT NULL::bigint, NULL::text, NULL::bigint, NULL::bigint, min(j.available_at), NULL::text,
                NULL::text
            FROM run_jobs j WHERE j.state = 'queued';
    END IF;
END
$$;
