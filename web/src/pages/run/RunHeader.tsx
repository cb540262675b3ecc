// The run page's header: status, ids, times, tokens and cost, lineage (rerun_of, retried as, parent run), the
// operator actions (cancel, retry in place, retry with modified inputs), the failure and waiting-approval banners,
// and the input (redacted) and output variables.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useNavigate } from 'react-router';
import { ApiError, raw, type Schemas } from '../../api/client';
import { CopyButton, Json, PageHead, StatusBadge } from '../../components/Bits';
import { Dialog, useConfirm } from '../../components/Dialog';
import { RunInputForm } from '../../components/RunInputForm';
import { useToast } from '../../components/Toasts';
import { hasRole, useMe } from '../../lib/auth';
import { cost, count, dateTime, duration, shortId } from '../../lib/format';
import { useNow } from '../../lib/clock';
import { redact } from '../../lib/variables';
import { runKey } from './useRunEvents';

/** A run as the API answers it, with `rerun_of` (added by the retry-with-inputs change; null or absent otherwise). */
export type Run = Schemas['RunOut'] & { rerun_of?: string | null };
type Approval = Schemas['ApprovalOut'];

const ACTIVE = new Set(['created', 'running', 'waiting_approval', 'paused']);
const TERMINAL = new Set(['completed', 'failed', 'canceled']);

export function useProcedureSchema(run: Run | undefined) {
  return useQuery({
    queryKey: ['procedure', run?.procedure_id, run?.procedure_version],
    enabled: !!run,
    staleTime: 5 * 60_000,
    // The cache holds the procedure as the API answers it, under the key the procedure page uses too (one entry,
    // one shape); this view of it is derived per observer.
    queryFn: () =>
      raw<Schemas['ProcedureDetail']>(
        `/api/procedures/${encodeURIComponent(run!.procedure_id)}/${encodeURIComponent(run!.procedure_version)}`,
      ),
    select: (p) => ({ detail: p, schema: ((p.ckp_json ?? {}) as { variables_schema?: unknown }).variables_schema ?? {} }),
  });
}

export function RunHeader({ run, onRetriedInPlace }: { run: Run; onRetriedInPlace: () => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const confirm = useConfirm();
  const navigate = useNavigate();
  const me = useMe();
  const canOperate = hasRole(me.data, 'operator', true);
  const procedure = useProcedureSchema(run);
  const [retryOpen, setRetryOpen] = useState(false);
  const [serverErrors, setServerErrors] = useState<Record<string, string> | undefined>();
  const runPath = `/api/runs/${encodeURIComponent(run.run_id)}`;
  const refresh = () => qc.invalidateQueries({ queryKey: runKey(run.run_id), exact: true });

  const retriedAs = useQuery({
    queryKey: ['run', run.run_id, 'retried-as'],
    // A server without the rerun_of filter answers every run: keep only those that really point here.
    queryFn: async () => (await raw<Run[]>(`/api/runs?rerun_of=${encodeURIComponent(run.run_id)}&limit=20`)).filter((r) => r.rerun_of === run.run_id),
    staleTime: 30_000,
  });

  const cancel = useMutation({
    mutationFn: () => raw<Run>(`${runPath}/cancel`, { method: 'POST' }),
    onSuccess: () => {
      toast.show('Run canceled', 'success');
      void refresh();
    },
    onError: (e) => toast.error(e),
  });
  const retry = useMutation({
    mutationFn: () => raw<Run>(`${runPath}/retry`, { method: 'POST' }),
    onSuccess: (r) => {
      toast.show('Run retried', 'success');
      if (r.run_id === run.run_id) onRetriedInPlace();
      else navigate(`/runs/${encodeURIComponent(r.run_id)}`);
    },
    onError: (e) => toast.error(e),
  });
  const retryWith = useMutation({
    mutationFn: (input_vars: Record<string, unknown>) =>
      raw<Run>(`${runPath}/retry`, { method: 'POST', body: JSON.stringify({ input_vars }) }),
    onSuccess: (r) => {
      setRetryOpen(false);
      setServerErrors(undefined);
      void qc.invalidateQueries({ queryKey: ['run', run.run_id, 'retried-as'] });
      if (r.run_id === run.run_id) {
        // A server without retry-with-inputs retries in place with the original inputs: say so.
        toast.show('The server retried this run in place with its original inputs', 'info');
        onRetriedInPlace();
      } else {
        toast.show(`New run ${shortId(r.run_id)} started`, 'success');
        navigate(`/runs/${encodeURIComponent(r.run_id)}`);
      }
    },
    onError: (e) => {
      const errors = e instanceof ApiError && e.status === 422 ? (e.detail as { errors?: unknown } | null)?.errors : undefined;
      if (errors && typeof errors === 'object') setServerErrors(errors as Record<string, string>);
      toast.error(e);
    },
  });

  const askCancel = async () => {
    const ok = await confirm({
      title: 'Cancel this run?',
      message: `Run ${run.run_id} stops where it is; pending approvals are canceled. This cannot be undone.`,
      confirm: 'Cancel run',
      danger: true,
    });
    if (ok) cancel.mutate();
  };
  const askRetry = async () => {
    const ok = await confirm({
      title: 'Retry this run?',
      message: 'The run starts again from its start node with the same inputs; completed external calls are not repeated.',
      confirm: 'Retry',
    });
    if (ok) retry.mutate();
  };

  const live = ACTIVE.has(run.status);
  const now = useNow(1000, live && !!run.started_at);
  const elapsed =
    run.duration_seconds ?? (run.started_at ? ((run.ended_at ? new Date(run.ended_at).getTime() : now) - new Date(run.started_at).getTime()) / 1000 : null);
  const tokens = (run.total_prompt_tokens ?? 0) + (run.total_completion_tokens ?? 0);
  const inputs = redact(procedure.data?.schema, (run.input_vars ?? {}) as Record<string, unknown>);

  return (
    <>
      <PageHead
        title={
          <span className="run-title">
            Run <span className="mono">{shortId(run.run_id)}</span> <StatusBadge status={run.status} />
          </span>
        }
        sub={
          <>
            <Link to={`/procedures/${encodeURIComponent(run.procedure_id)}/${encodeURIComponent(run.procedure_version)}`}>
              {run.procedure_id}@{run.procedure_version}
            </Link>
          </>
        }
      >
        {canOperate && live && (
          <button className="danger" onClick={() => void askCancel()} disabled={cancel.isPending}>
            Cancel run
          </button>
        )}
        {canOperate && (run.status === 'failed' || run.status === 'canceled') && (
          <button onClick={() => void askRetry()} disabled={retry.isPending}>
            Retry
          </button>
        )}
        {canOperate && TERMINAL.has(run.status) && (
          <button className="primary" onClick={() => setRetryOpen(true)}>
            Retry with modified inputs
          </button>
        )}
      </PageHead>

      {run.status === 'failed' && (
        <div className="banner error" role="alert">
          <strong>Run failed</strong>
          {run.last_node_id ? ` at ${run.last_node_id}` : ''}: {run.error_message ?? 'no reason was recorded'}
        </div>
      )}
      {run.status === 'waiting_approval' && <ApprovalBanner run={run} identity={me.data?.identity} />}

      <section className="card run-props" aria-label="Run details">
        <dl className="props">
          <dt>Run id</dt>
          <dd>
            <span className="mono">{run.run_id}</span> <CopyButton text={run.run_id} label="Copy run id" />
          </dd>
          <dt>Thread id</dt>
          <dd>
            <span className="mono">{run.thread_id}</span> <CopyButton text={run.thread_id} label="Copy thread id" />
          </dd>
          <dt>Created</dt>
          <dd>{dateTime(run.created_at)}</dd>
          <dt>Started</dt>
          <dd>{dateTime(run.started_at)}</dd>
          <dt>Ended</dt>
          <dd>{dateTime(run.ended_at)}</dd>
          <dt>Duration</dt>
          <dd>
            {duration(elapsed)}
            {live && run.started_at ? ' (running)' : ''}
          </dd>
          <dt>LLM tokens</dt>
          <dd>
            {tokens ? `${count(tokens)} (${count(run.total_prompt_tokens)} prompt + ${count(run.total_completion_tokens)} completion)` : '—'}
          </dd>
          <dt>Cost</dt>
          <dd>{cost(run.estimated_cost_usd)}</dd>
          <dt>Trigger</dt>
          <dd>{run.trigger_type ? `${run.trigger_type}${run.triggered_by ? ` (${run.triggered_by})` : ''}` : 'manual'}</dd>
          {run.project_id && (
            <>
              <dt>Project</dt>
              <dd>{run.project_id}</dd>
            </>
          )}
          {run.rerun_of && (
            <>
              <dt>Retry of</dt>
              <dd>
                <Link to={`/runs/${encodeURIComponent(run.rerun_of)}`} aria-label={`Original run ${run.rerun_of}`}>
                  {run.rerun_of}
                </Link>
              </dd>
            </>
          )}
          {!!retriedAs.data?.length && (
            <>
              <dt>Retried as</dt>
              <dd>
                {retriedAs.data.map((r, i) => (
                  <span key={r.run_id}>
                    {i > 0 && ', '}
                    <Link to={`/runs/${encodeURIComponent(r.run_id)}`} aria-label={`Retry run ${r.run_id} (${r.status})`}>
                      {shortId(r.run_id)}
                    </Link>{' '}
                    <StatusBadge status={r.status} />
                  </span>
                ))}
              </dd>
            </>
          )}
          {run.parent_run_id && (
            <>
              <dt>Parent run</dt>
              <dd>
                <Link to={`/runs/${encodeURIComponent(run.parent_run_id)}`}>{run.parent_run_id}</Link>
              </dd>
            </>
          )}
        </dl>
      </section>

      <div className="grid two run-vars">
        <section className="card" aria-labelledby="run-inputs">
          <h2 id="run-inputs">Input variables</h2>
          {Object.keys(inputs).length ? <Json value={inputs} label="Input variables" /> : <p className="muted">None</p>}
        </section>
        <section className="card" aria-labelledby="run-outputs">
          <h2 id="run-outputs">Output variables</h2>
          {run.output_vars != null ? <Json value={run.output_vars} label="Output variables" /> : <p className="muted">{live ? 'Not yet: the run has not ended' : 'None'}</p>}
        </section>
      </div>

      <Dialog open={retryOpen} title="Retry with modified inputs" onClose={() => setRetryOpen(false)}>
        <p className="muted">
          Starts a new run of {run.procedure_id}@{run.procedure_version}, linked to this one. The values start from this run's inputs.
        </p>
        {procedure.isLoading ? (
          <div role="status">Loading the procedure's variables…</div>
        ) : (
          <RunInputForm
            schema={procedure.data?.schema ?? {}}
            initial={(run.input_vars ?? {}) as Record<string, unknown>}
            submitLabel="Start new run"
            busy={retryWith.isPending}
            serverErrors={serverErrors}
            onSubmit={(vars) => retryWith.mutate(vars)}
            onCancel={() => setRetryOpen(false)}
          />
        )}
      </Dialog>
    </>
  );
}

function ApprovalBanner({ run, identity }: { run: Run; identity?: string }) {
  const qc = useQueryClient();
  const toast = useToast();
  const approvals = useQuery({
    queryKey: ['run', run.run_id, 'approvals'],
    queryFn: () => raw<Approval[]>(`/api/approvals?run_id=${encodeURIComponent(run.run_id)}&status=pending`),
  });
  const decide = useMutation({
    mutationFn: ({ id, decision }: { id: string; decision: 'approve' | 'reject' }) =>
      raw<Approval>(`/api/approvals/${encodeURIComponent(id)}/decision`, {
        method: 'POST',
        body: JSON.stringify({ decision, decided_by: identity ?? null }),
      }),
    onSuccess: (a) => {
      toast.show(`Approval ${a.status}`, 'success');
      void qc.invalidateQueries({ queryKey: runKey(run.run_id), exact: true });
      void qc.invalidateQueries({ queryKey: ['run', run.run_id, 'approvals'] });
    },
    onError: (e) => toast.error(e),
  });
  const pending = approvals.data?.filter((a) => a.status === 'pending') ?? [];
  if (!pending.length)
    return (
      <div className="banner warn" role="status">
        Waiting for approval{run.last_node_id ? ` at ${run.last_node_id}` : ''}.
      </div>
    );
  return (
    <>
      {pending.map((a) => (
        <div key={a.approval_id} className="banner warn approval-banner" role="region" aria-label="Waiting for approval">
          <div>
            <strong>Waiting for approval</strong> at {a.node_id}: {a.prompt}{' '}
            <Link to={`/approvals/${encodeURIComponent(a.approval_id)}`}>Open the approval</Link>
          </div>
          {a.decision_type === 'approve_reject' && (
            <div className="approval-actions">
              <button className="primary" disabled={decide.isPending} onClick={() => decide.mutate({ id: a.approval_id, decision: 'approve' })}>
                Approve
              </button>
              <button className="danger" disabled={decide.isPending} onClick={() => decide.mutate({ id: a.approval_id, decision: 'reject' })}>
                Reject
              </button>
            </div>
          )}
        </div>
      ))}
    </>
  );
}
