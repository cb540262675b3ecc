// "Test": run a document as it is being written (the author page's draft, or a stored version) without touching
// the catalog's versions: input variables from its variables_schema (or from a past run), external calls mocked by
// default, per-step test data, and an optional node to stop at. The run is then followed live here: its status,
// what each node did, its events, and a link to the full run page.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useMemo, useState } from 'react';
import { Link } from 'react-router';
import { ApiError, raw } from '../../api/client';
import { ErrorBanner, StatusBadge } from '../../components/Bits';
import { RunInputForm } from '../../components/RunInputForm';
import { useToast } from '../../components/Toasts';
import { dateTime, shortId } from '../../lib/format';
import { clock } from '../../pages/run/TimelineTab';
import { isError, summary } from '../../pages/run/events';
import { runKey, useRunEvents } from '../../pages/run/useRunEvents';
import { startTestRun, type Run } from './api';
import { useOverlayOf, useRun } from './useRunOverlay';
import './test-run.css';

export interface TestRunPanelProps {
  procedureId: string;
  version: string;
  /** The document to run, read when Run is pressed (and for its variables and step ids). */
  getDoc(): object;
  nodeIds: string[];
  onRunStarted(runId: string): void;
}

interface Diagnostic {
  severity?: string;
  code?: string;
  message: string;
  pointer?: string;
}

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** The step ids of a document, in order (for test data overrides). */
function stepIds(doc: unknown): string[] {
  const out: string[] = [];
  for (const n of Object.values(obj(obj(obj(doc).workflow_graph).nodes)))
    for (const s of Array.isArray(obj(n).steps) ? (obj(n).steps as unknown[]) : []) {
      const id = obj(s).step_id;
      if (typeof id === 'string' && !out.includes(id)) out.push(id);
    }
  return out;
}

const RECENT = 20;

export function TestRunPanel({ procedureId, version, getDoc, nodeIds, onRunStarted }: TestRunPanelProps) {
  const doc = getDoc();
  const schema = obj(doc).variables_schema;
  const steps = stepIds(doc);
  const qc = useQueryClient();
  const toast = useToast();
  const [mock, setMock] = useState(true);
  const [stopAt, setStopAt] = useState('');
  const [overrides, setOverrides] = useState('');
  const [initial, setInitial] = useState<{ vars: Obj | null; from: string | null; n: number }>({ vars: null, from: null, n: 0 });
  const [started, setStarted] = useState<{ runId: string; doc: object; stopAt: string | null } | null>(null);
  const [problems, setProblems] = useState<Diagnostic[] | null>(null);
  const [serverErrors, setServerErrors] = useState<Record<string, string> | undefined>();
  const [error, setError] = useState<unknown>(null);

  let overrideValue: Obj | undefined;
  let overrideError: string | null = null;
  if (overrides.trim()) {
    try {
      const v = JSON.parse(overrides);
      if (!v || typeof v !== 'object' || Array.isArray(v)) overrideError = 'Must be a JSON object: {"step_id": result, …}';
      else overrideValue = v as Obj;
    } catch (e) {
      overrideError = `Not valid JSON: ${(e as Error).message}`;
    }
  }

  const start = useMutation({
    mutationFn: (vars: Obj) => {
      const ckp = getDoc();
      return startTestRun(procedureId, version, {
        ckp_json: ckp,
        input_vars: vars,
        mock_external_calls: mock,
        ...(overrideValue ? { test_data_overrides: overrideValue } : {}),
        ...(stopAt ? { stop_at_node: stopAt } : {}),
      }).then((run) => ({ run, ckp, stopAt: stopAt || null }));
    },
    onMutate: () => {
      setProblems(null);
      setServerErrors(undefined);
      setError(null);
    },
    onSuccess: ({ run, ckp, stopAt: stop }) => {
      setStarted({ runId: run.run_id, doc: ckp, stopAt: stop });
      toast.show(`Started test run ${shortId(run.run_id)}`, 'success');
      void qc.invalidateQueries({ queryKey: ['runs'] });
      onRunStarted(run.run_id);
    },
    onError: (e) => {
      const detail = e instanceof ApiError && e.status === 422 ? obj(e.detail) : null;
      if (detail && Array.isArray(detail.errors)) setProblems(detail.errors as Diagnostic[]);
      else if (detail && Object.keys(obj(detail.errors)).length)
        setServerErrors(Object.fromEntries(Object.entries(obj(detail.errors)).map(([k, v]) => [k, String(v)])));
      else setError(e);
    },
  });

  return (
    <div className="test-run">
      <section className="card test-run-setup" aria-labelledby="test-run-setup-title">
        <h2 id="test-run-setup-title">Test run</h2>
        <p className="muted">Runs this document as a hidden test copy: the catalog's versions do not change.</p>
        <PastRuns procedureId={procedureId} onPick={(vars, runId) => setInitial((i) => ({ vars, from: runId, n: i.n + 1 }))} />
        {initial.from && (
          <p className="field-help" role="status">
            Inputs filled from run <span className="mono">{shortId(initial.from)}</span>.
          </p>
        )}
        <div className="form-grid test-run-options">
          <label className="inline">
            <input type="checkbox" checked={mock} onChange={(e) => setMock(e.target.checked)} />
            Mock external calls
          </label>
          <span className="field-help">Agent, HTTP and MCP steps answer a mocked result instead of being called.</span>
          <label>
            Stop at node
            <select value={stopAt} onChange={(e) => setStopAt(e.target.value)}>
              <option value="">Run to the end</option>
              {nodeIds.map((id) => (
                <option key={id} value={id}>
                  {id}
                </option>
              ))}
            </select>
            <span className="field-help">The run ends, completed, when it reaches this node (which does not run).</span>
          </label>
          <label>
            Test data by step (JSON)
            <textarea
              rows={4}
              value={overrides}
              onChange={(e) => setOverrides(e.target.value)}
              placeholder={steps.length ? `{"${steps[0]}": {"any": "result"}}` : '{"step_id": {"any": "result"}}'}
              aria-invalid={!!overrideError || undefined}
              aria-describedby="test-data-help"
              spellCheck={false}
            />
            <span className="field-help" id="test-data-help">
              The result each listed step gives instead of running. Steps: {steps.length ? steps.join(', ') : 'none'}.
            </span>
            {overrideError && (
              <span className="field-error" role="alert">
                {overrideError}
              </span>
            )}
          </label>
        </div>
        <h3 className="test-run-inputs">Input variables</h3>
        {error != null && <ErrorBanner error={error} />}
        {problems && (
          <div className="banner error" role="alert">
            The document does not compile:
            <ul>
              {problems.map((p, i) => (
                <li key={i}>
                  {p.message} <span className="mono">{p.pointer || '(document)'}</span>
                </li>
              ))}
            </ul>
          </div>
        )}
        <RunInputForm
          key={`${initial.n}:${JSON.stringify(schema ?? null)}`}
          schema={schema}
          initial={initial.vars}
          submitLabel="Run test"
          busy={start.isPending}
          serverErrors={serverErrors}
          onSubmit={(vars) => {
            if (!overrideError) start.mutate(vars);
          }}
        />
      </section>
      {started ? (
        <LiveTestRun key={started.runId} runId={started.runId} doc={started.doc} stopAt={started.stopAt} />
      ) : (
        <section className="card test-run-live empty-live" aria-label="Test run">
          <p className="muted">Start a test run: its progress, each node's result and its events show here.</p>
        </section>
      )}
    </div>
  );
}

/** "Start from a past run's inputs": the procedure's latest runs (test runs included); picking one fills the form. */
function PastRuns({ procedureId, onPick }: { procedureId: string; onPick: (vars: Obj, runId: string) => void }) {
  const qc = useQueryClient();
  const runs = useQuery({
    queryKey: ['runs', { procedure_id: procedureId, limit: RECENT }],
    queryFn: () => raw<Run[]>(`/api/runs?procedure_id=${encodeURIComponent(procedureId)}&limit=${RECENT}`),
  });
  const [loading, setLoading] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const pick = async (runId: string) => {
    if (!runId) return;
    setLoading(true);
    setError(null);
    try {
      const run = await qc.fetchQuery({ queryKey: runKey(runId), queryFn: () => raw<Run>(`/api/runs/${encodeURIComponent(runId)}`) });
      onPick(obj(run.input_vars), runId);
    } catch (e) {
      setError(e);
    } finally {
      setLoading(false);
    }
  };
  return (
    <>
      <label className="past-runs">
        Start from a past run's inputs
        <select value="" onChange={(e) => void pick(e.target.value)} disabled={loading || !runs.data?.length}>
          <option value="">{runs.isLoading ? 'Loading…' : runs.data?.length ? 'Pick a run…' : 'No run of this procedure yet'}</option>
          {runs.data?.map((r) => (
            <option key={r.run_id} value={r.run_id}>
              {shortId(r.run_id)} · {r.procedure_version} · {r.status} · {dateTime(r.created_at)}
            </option>
          ))}
        </select>
      </label>
      {(error ?? runs.error) != null && <ErrorBanner error={error ?? runs.error} />}
    </>
  );
}

const SHOWN_EVENTS = 300;

function brief(v: unknown): string {
  const s = typeof v === 'string' ? v : JSON.stringify(v);
  return s && s.length > 90 ? `${s.slice(0, 90)}…` : (s ?? '');
}

/** A started test run, followed live: status, the nodes it went through, its events. */
function LiveTestRun({ runId, doc, stopAt }: { runId: string; doc: object; stopAt: string | null }) {
  const live = useRunEvents(runId);
  const run = useRun(runId);
  const overlay = useOverlayOf(runId, live, run.data, doc);
  const nodes = useMemo(() => [...overlay.entries()], [overlay]);
  const shown = live.events.slice(-SHOWN_EVENTS);
  return (
    <section className="card test-run-live" aria-labelledby="test-run-live-title">
      <div className="test-run-head">
        <h2 id="test-run-live-title">
          Test run <span className="mono">{shortId(runId)}</span>
        </h2>
        <span role="status" aria-label="Test run status">
          <StatusBadge status={run.data?.status ?? 'created'} />
        </span>
        <span className="muted">{live.live === 'ended' ? 'ended' : live.live === 'open' ? 'live' : live.live}</span>
        <Link to={`/runs/${encodeURIComponent(runId)}`} className="test-run-open">
          Open the run page
        </Link>
      </div>
      {run.data?.error_message && <div className="banner error">{run.data.error_message}</div>}
      {live.error != null && <ErrorBanner error={live.error} />}
      <h3>Nodes</h3>
      {nodes.length === 0 ? (
        <p className="muted">No node entered yet.</p>
      ) : (
        <table className="data" aria-label="Nodes of the test run">
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">Status</th>
              <th scope="col">Result</th>
            </tr>
          </thead>
          <tbody>
            {nodes.map(([id, n]) => (
              <tr key={id}>
                <td className="mono">{id}</td>
                <td>
                  {/* The test copy ends the run at the stop node in its place: it did not run. */}
                  <StatusBadge status={id === stopAt && n.status === 'completed' ? 'stopped' : n.status} />
                </td>
                <td className="mono test-run-result">
                  {id === stopAt && n.status === 'completed' ? (
                    <span className="muted">stopped here: not run</span>
                  ) : n.error ? (
                    <span className="field-error">{n.error}</span>
                  ) : n.output !== undefined ? (
                    brief(n.output)
                  ) : (
                    '—'
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <h3>Events</h3>
      <ol className="test-run-events" aria-label="Test run events" tabIndex={0}>
        {shown.map((e) => (
          <li key={e.event_id} className={isError(e) ? 'error' : undefined}>
            <span className="muted">{clock(e.created_at)}</span> <span className="mono">{e.event_type}</span> {summary(e)}
          </li>
        ))}
      </ol>
    </section>
  );
}
