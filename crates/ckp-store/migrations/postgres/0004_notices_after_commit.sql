-- A commit no longer sends its run's change notice inside its transaction (pg/notices.rs sends them after the
-- commits, batched per process): a transaction that notifies holds a database-wide lock through its commit's WAL
-- flush, so notifying commits could not share flushes. Job wake-ups stay inside the enqueue's transaction.
DROP FUNCTION ckp_commit(text, text, text, text, text, timestamptz, text, timestamptz, boolean, text, text, bigint,
    bigint, double precision, bigint[], bytea[], text[], text[], boolean, boolean, text, text, boolean, text, text,
    text, text, text, boolean);

CREATE FUNCTION ckp_commit(
    p_run_id text, p_procedure_id text, p_procedure_version text, p_status text, p_checkpoint text,
    p_at timestamptz, p_outputs text, p_started_at timestamptz, p_terminal boolean, p_error text,
    p_last_node text, p_prompt_tokens bigint, p_completion_tokens bigint, p_cost double precision,
    p_batch_sizes bigint[], p_batch_data bytea[], p_step_keys text[], p_step_records text[],
    p_release_job boolean, p_cancel_approvals boolean, p_jobs_channel text,
    p_create boolean, p_input_vars text, p_project_id text, p_case_id text, p_trigger_type text,
    p_triggered_by text, p_enqueue boolean
) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO runs (run_id, procedure_id, procedure_version, status, checkpoint, created_at, updated_at,
                      output_vars, started_at, ended_at, error_message, last_node_id, prompt_tokens,
                      completion_tokens, cost_usd, commits, input_vars, project_id, case_id, trigger_type,
                      triggered_by)
    VALUES (p_run_id, p_procedure_id, p_procedure_version, p_status, p_checkpoint, p_at, p_at, p_outputs,
            p_started_at, CASE WHEN p_terminal THEN p_at END, p_error, p_last_node, p_prompt_tokens,
            p_completion_tokens, p_cost, 1, p_input_vars, p_project_id, p_case_id, p_trigger_type, p_triggered_by)
    ON CONFLICT (run_id) DO UPDATE SET status = excluded.status, checkpoint = excluded.checkpoint,
        updated_at = excluded.updated_at, output_vars = excluded.output_vars, started_at = excluded.started_at,
        ended_at = CASE WHEN p_terminal THEN coalesce(runs.ended_at, excluded.updated_at) END,
        error_message = excluded.error_message, last_node_id = coalesce(excluded.last_node_id, runs.last_node_id),
        prompt_tokens = excluded.prompt_tokens, completion_tokens = excluded.completion_tokens,
        cost_usd = excluded.cost_usd, commits = runs.commits + 1,
        input_vars = CASE WHEN p_create THEN excluded.input_vars ELSE runs.input_vars END,
        project_id = CASE WHEN p_create THEN excluded.project_id ELSE runs.project_id END,
        case_id = CASE WHEN p_create THEN excluded.case_id ELSE runs.case_id END,
        trigger_type = CASE WHEN p_create THEN excluded.trigger_type ELSE runs.trigger_type END,
        triggered_by = CASE WHEN p_create THEN excluded.triggered_by ELSE runs.triggered_by END;
    IF cardinality(p_batch_sizes) > 0 THEN
        INSERT INTO run_event_batches (run_id, events, data)
        SELECT p_run_id, n, d FROM unnest(p_batch_sizes, p_batch_data) WITH ORDINALITY AS b(n, d, i) ORDER BY i;
    END IF;
    IF cardinality(p_step_keys) > 0 THEN
        INSERT INTO step_results (run_id, key, record, updated_at)
        SELECT p_run_id, k, r, p_at FROM unnest(p_step_keys, p_step_records) AS s(k, r)
        ON CONFLICT (run_id, key) DO UPDATE SET record = excluded.record, updated_at = excluded.updated_at;
    END IF;
    IF p_release_job THEN
        UPDATE run_jobs SET state = CASE WHEN rerun THEN 'queued' ELSE 'done' END, rerun = false,
            locked_by = NULL, locked_until = NULL, updated_at = p_at
        WHERE run_id = p_run_id AND state = 'running';
    END IF;
    IF p_cancel_approvals THEN
        UPDATE approvals SET status = 'canceled', updated_at = p_at WHERE run_id = p_run_id AND status = 'pending';
    END IF;
    IF p_enqueue THEN
        PERFORM ckp_enqueue(p_run_id, 0, p_at, p_jobs_channel);
    END IF;
END
$$;
