// One procedure version: header (status and its change, project, Start run, Delete), and tabs kept in the URL
// (`?tab=`): overview, read-only graph, explain, CKP source, versions, runs.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useState } from 'react';
import { Link, useNavigate, useParams, useSearchParams } from 'react-router';
import { ApiError, raw, type Schemas } from '../api/client';
import { CopyButton, Empty, ErrorBanner, Json, PageHead, QueryState, StatusBadge, TabPanel, Tabs } from '../components/Bits';
import { Dialog, useConfirm } from '../components/Dialog';
import type { GraphJson } from '../components/ProcedureGraph';
import { RunInputForm } from '../components/RunInputForm';
import { useToast } from '../components/Toasts';
import { dateTime, shortId } from '../lib/format';
import { fields } from '../lib/variables';
import { ExplainView, type Explain } from './catalog/ExplainView';
import { projectName, qs, RunTable, StatusSelect, useProjects, versionPath, type Procedure, type Run } from './catalog/shared';
import './catalog/catalog.css';
import { VersionTrigger } from './triggers/shared';
import { TestRunPanel } from '../features/test-run';

const ProcedureGraph = lazy(() => import('../components/ProcedureGraph'));
const JsonEditor = lazy(() => import('../components/JsonEditor'));

type Detail = Schemas['ProcedureDetail'];
const TABS = ['overview', 'graph', 'explain', 'source', 'test', 'versions', 'runs', 'triggers'] as const;
type Tab = (typeof TABS)[number];
const TAB_LABELS: Record<Tab, string> = {
  overview: 'Overview',
  graph: 'Graph',
  explain: 'Explain',
  source: 'Source',
  test: 'Test',
  versions: 'Versions',
  runs: 'Runs',
  triggers: 'Triggers',
};

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export default function ProcedureVersion() {
  const { procedureId = '', version = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const tab: Tab = (TABS as readonly string[]).includes(params.get('tab') ?? '') ? (params.get('tab') as Tab) : 'overview';
  const path = versionPath(procedureId, version);
  const detail = useQuery({
    queryKey: ['procedure', procedureId, version],
    // raw(): the OpenAPI document gives several operations the id `get`, so the generated type of this one is wrong.
    queryFn: () => raw<Detail>(`/api/procedures/${path}`),
  });
  const projects = useProjects();
  const [starting, setStarting] = useState(false);
  const [comparing, setComparing] = useState(false);
  const confirm = useConfirm();
  const toast = useToast();
  const navigate = useNavigate();
  const qc = useQueryClient();

  const remove = useMutation({
    mutationFn: () => raw(`/api/procedures/${path}`, { method: 'DELETE' }),
    onSuccess: () => {
      toast.show(`Deleted ${procedureId} ${version}`, 'success');
      void qc.invalidateQueries({ queryKey: ['procedures'] });
      qc.removeQueries({ queryKey: ['procedure', procedureId] });
      navigate('/procedures');
    },
    onError: (e) => toast.error(e),
  });

  const d = detail.data;
  return (
    <QueryState loading={detail.isLoading} error={detail.error}>
      {d && (
        <>
          <PageHead
            title={d.name}
            sub={
              <>
                <span className="mono">{d.procedure_id}</span> · version <span className="mono">{d.version}</span> · project{' '}
                {d.project_id ? <Link to={`/procedures?project_id=${encodeURIComponent(d.project_id)}`}>{projectName(projects.data, d.project_id)}</Link> : 'none'}
                {d.release_channel ? ` · channel ${d.release_channel}` : ''}
              </>
            }
          >
            <span className="status-cell">
              <StatusBadge status={d.status} />
              <StatusSelect procedure={d} />
            </span>
            <button onClick={() => setComparing(true)}>Compare…</button>
            <Link className="button" to={`/procedures/${path}/edit`}>
              Edit
            </Link>
            <button className="primary" onClick={() => setStarting(true)}>
              Start run
            </button>
            <button
              className="danger"
              disabled={remove.isPending}
              onClick={async () => {
                const ok = await confirm({
                  title: 'Delete this version?',
                  message: `${d.procedure_id} ${d.version} will be removed from the catalog. Its past runs stay.`,
                  confirm: 'Delete version',
                  danger: true,
                });
                if (ok) remove.mutate();
              }}
            >
              Delete version
            </button>
          </PageHead>
          <Tabs
            label="Procedure version"
            tabs={TABS.map((id) => ({ id, label: TAB_LABELS[id] }))}
            value={tab}
            onChange={(t) => setParams((p) => { const n = new URLSearchParams(p); n.set('tab', t); return n; }, { replace: true })}
          />
          <TabPanel id={tab}>
            {tab === 'overview' && <Overview d={d} />}
            {tab === 'graph' && <GraphTab path={path} name={d.name} />}
            {tab === 'explain' && <ExplainTab path={path} />}
            {tab === 'source' && <SourceTab d={d} />}
            {tab === 'test' && (
              <TestRunPanel
                procedureId={d.procedure_id}
                version={d.version}
                getDoc={() => obj(d.ckp_json)}
                nodeIds={Object.keys(obj(obj(obj(d.ckp_json).workflow_graph).nodes))}
                onRunStarted={() => undefined}
              />
            )}
            {tab === 'versions' && <VersionsTab procedureId={procedureId} current={version} />}
            {tab === 'runs' && <RunsTab procedureId={procedureId} version={version} />}
            {tab === 'triggers' && <VersionTrigger procedureId={procedureId} version={version} />}
          </TabPanel>
          {starting && <StartRun d={d} onClose={() => setStarting(false)} />}
          {comparing && <CompareDialog procedureId={procedureId} version={version} onClose={() => setComparing(false)} />}
        </>
      )}
    </QueryState>
  );
}

function Overview({ d }: { d: Detail }) {
  const doc = obj(d.ckp_json);
  const vars = fields(doc.variables_schema);
  const config = obj(doc.global_config);
  const nodes = obj(obj(doc.workflow_graph).nodes);
  return (
    <div className="grid">
      <section className="card" aria-labelledby="ov-desc">
        <h2 id="ov-desc">Description</h2>
        <p>{d.description || <span className="muted">No description.</span>}</p>
        <dl className="props">
          <dt>Imported</dt>
          <dd>{dateTime(d.created_at)}</dd>
          <dt>Nodes</dt>
          <dd>{Object.keys(nodes).length}</dd>
          <dt>Start node</dt>
          <dd className="mono">{String(obj(doc.workflow_graph).start_node ?? '—')}</dd>
          {d.effective_date && (
            <>
              <dt>Effective from</dt>
              <dd>{dateTime(d.effective_date)}</dd>
            </>
          )}
        </dl>
      </section>
      <section className="card" aria-labelledby="ov-vars">
        <h2 id="ov-vars">Variables</h2>
        {vars.length === 0 ? (
          <p className="muted">This procedure declares no input variables.</p>
        ) : (
          <table className="data" aria-labelledby="ov-vars">
            <thead>
              <tr>
                <th scope="col">Name</th>
                <th scope="col">Type</th>
                <th scope="col">Required</th>
                <th scope="col">Default</th>
                <th scope="col">Rules</th>
                <th scope="col">Description</th>
              </tr>
            </thead>
            <tbody>
              {vars.map((v) => (
                <tr key={v.name}>
                  <td className="mono">{v.name}</td>
                  <td>{v.type}</td>
                  <td>{v.required ? 'required' : 'optional'}</td>
                  <td className="mono">{v.default === undefined ? '—' : v.sensitive ? '***' : JSON.stringify(v.default)}</td>
                  <td>
                    {[
                      v.allowed && `one of ${v.allowed.map(String).join(', ')}`,
                      v.regex && `pattern ${v.regex}`,
                      v.min !== undefined && `min ${v.min}`,
                      v.max !== undefined && `max ${v.max}`,
                      v.sensitive && 'sensitive',
                    ]
                      .filter(Boolean)
                      .join(' · ') || '—'}
                  </td>
                  <td>{v.description ?? '—'}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section className="card" aria-labelledby="ov-config">
        <h2 id="ov-config">Global configuration</h2>
        {Object.keys(config).length === 0 ? (
          <p className="muted">No global configuration: the defaults apply.</p>
        ) : (
          <dl className="props">
            {Object.entries(config).map(([k, v]) => (
              <div key={k} style={{ display: 'contents' }}>
                <dt className="mono">{k}</dt>
                <dd>{v !== null && typeof v === 'object' ? <Json value={v} label={k} /> : <span className="mono">{String(v)}</span>}</dd>
              </div>
            ))}
          </dl>
        )}
      </section>
    </div>
  );
}

function GraphTab({ path, name }: { path: string; name: string }) {
  const graph = useQuery({ queryKey: ['procedure-graph', path], queryFn: () => raw<GraphJson>(`/api/procedures/${path}/graph`) });
  return (
    <QueryState loading={graph.isLoading} error={graph.error}>
      {graph.data && (
        <Suspense fallback={<div role="status">Loading the graph…</div>}>
          <ProcedureGraph graph={graph.data} label={`Workflow graph of ${name}`} />
        </Suspense>
      )}
    </QueryState>
  );
}

function ExplainTab({ path }: { path: string }) {
  const explain = useQuery({
    queryKey: ['procedure-explain', path],
    queryFn: () => raw<Explain>(`/api/procedures/${path}/explain`, { method: 'POST', body: '{}' }),
  });
  return (
    <QueryState loading={explain.isLoading} error={explain.error}>
      {explain.data && <ExplainView e={explain.data} />}
    </QueryState>
  );
}

function SourceTab({ d }: { d: Detail }) {
  const text = JSON.stringify(d.ckp_json, null, 2);
  const download = () => {
    const url = URL.createObjectURL(new Blob([text], { type: 'application/json' }));
    const a = document.createElement('a');
    a.href = url;
    a.download = `${d.procedure_id}-${d.version}.ckp.json`;
    a.click();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  };
  return (
    <>
      <div className="toolbar">
        <CopyButton text={text} label="Copy CKP source" />
        <button className="small" onClick={download}>
          Download
        </button>
      </div>
      <Suspense fallback={<div role="status">Loading the editor…</div>}>
        <JsonEditor value={text} readOnly label={`CKP source of ${d.procedure_id} ${d.version}`} height={560} />
      </Suspense>
    </>
  );
}

function VersionsTab({ procedureId, current }: { procedureId: string; current: string }) {
  const versions = useQuery({
    queryKey: ['procedure', procedureId, 'versions'],
    queryFn: () => raw<Procedure[]>(`/api/procedures/${encodeURIComponent(procedureId)}/versions`),
  });
  return (
    <QueryState loading={versions.isLoading} error={versions.error}>
      <table className="data" aria-label="Versions">
        <thead>
          <tr>
            <th scope="col">Version</th>
            <th scope="col">Status</th>
            <th scope="col">Channel</th>
            <th scope="col">Imported</th>
            <th scope="col">
              <span className="sr-only">Compare</span>
            </th>
          </tr>
        </thead>
        <tbody>
          {versions.data?.map((v) => (
            <tr key={v.id}>
              <td>
                {v.version === current ? (
                  <span aria-current="page" className="mono">
                    {v.version} (this version)
                  </span>
                ) : (
                  <Link className="mono" to={`/procedures/${versionPath(v.procedure_id, v.version)}`}>
                    {v.version}
                  </Link>
                )}
              </td>
              <td>
                <StatusBadge status={v.status} />
              </td>
              <td>{v.release_channel ?? '—'}</td>
              <td>{dateTime(v.created_at)}</td>
              <td>
                {v.version !== current && (
                  <Link to={diffPath(procedureId, v, versions.data?.find((x) => x.version === current))} aria-label={`Compare ${v.version} with ${current}`}>
                    Compare
                  </Link>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </QueryState>
  );
}

const RUNS_SCANNED = 200;

function RunsTab({ procedureId, version }: { procedureId: string; version: string }) {
  // The runs API filters by procedure, not by version: the newest runs of the procedure are read and this version's
  // kept.
  const runs = useQuery({
    queryKey: ['runs', { procedure_id: procedureId, limit: RUNS_SCANNED }],
    queryFn: () => raw<Run[]>(`/api/runs${qs({ procedure_id: procedureId, limit: RUNS_SCANNED })}`),
    refetchInterval: 10_000,
  });
  const mine = (runs.data ?? []).filter((r) => r.procedure_version === version).slice(0, 20);
  return (
    <>
      <p>
        <Link to={`/runs?procedure_id=${encodeURIComponent(procedureId)}`}>All runs of {procedureId}</Link>
        <span className="muted"> · the last 20 runs of version {version} below</span>
      </p>
      <QueryState loading={runs.isLoading} error={runs.error}>
        {mine.length === 0 ? (
          <Empty>No run of this version among the procedure's latest {RUNS_SCANNED}.</Empty>
        ) : (
          <RunTable runs={mine} label={`Runs of version ${version}`} />
        )}
      </QueryState>
    </>
  );
}

/** The start-run dialog: the generated form, `POST /api/runs`, the server's 422 shown at the fields. */
function StartRun({ d, onClose }: { d: Detail; onClose: () => void }) {
  const navigate = useNavigate();
  const toast = useToast();
  const [serverErrors, setServerErrors] = useState<Record<string, string> | undefined>();
  const [error, setError] = useState<unknown>(null);
  const start = useMutation({
    mutationFn: (vars: Record<string, unknown>) =>
      raw<Run>('/api/runs', {
        method: 'POST',
        body: JSON.stringify({ procedure_id: d.procedure_id, procedure_version: d.version, input_vars: vars }),
      }),
    onSuccess: (r) => {
      toast.show(`Started run ${shortId(r.run_id)}`, 'success');
      onClose();
      navigate(`/runs/${encodeURIComponent(r.run_id)}`);
    },
    onError: (e) => {
      const errors = e instanceof ApiError && e.status === 422 ? obj(obj(e.detail).errors) : {};
      const mapped = Object.fromEntries(Object.entries(errors).map(([k, v]) => [k, String(v)]));
      setServerErrors(Object.keys(mapped).length ? mapped : undefined);
      setError(Object.keys(mapped).length ? null : e);
    },
  });
  return (
    <Dialog open title={`Start ${d.name} ${d.version}`} onClose={onClose}>
      {error != null && <ErrorBanner error={error} />}
      <RunInputForm
        schema={obj(d.ckp_json).variables_schema}
        submitLabel="Start run"
        busy={start.isPending}
        serverErrors={serverErrors}
        onSubmit={(vars) => start.mutate(vars)}
        onCancel={onClose}
      />
    </Dialog>
  );
}

/** The diff page of two versions, the older on the left. */
function diffPath(procedureId: string, a: Procedure, b: Procedure | undefined): string {
  const [from, to] = b && a.created_at > b.created_at ? [b, a] : [a, b ?? a];
  return `/procedures/${encodeURIComponent(procedureId)}/diff?from=${encodeURIComponent(from.version)}&to=${encodeURIComponent(to.version)}`;
}

/** "Compare…": pick another version; the diff page opens with the older of the two on the left. */
function CompareDialog({ procedureId, version, onClose }: { procedureId: string; version: string; onClose: () => void }) {
  const navigate = useNavigate();
  const versions = useQuery({
    queryKey: ['procedure', procedureId, 'versions'],
    queryFn: () => raw<Procedure[]>(`/api/procedures/${encodeURIComponent(procedureId)}/versions`),
  });
  const others = (versions.data ?? []).filter((v) => v.version !== version);
  const [other, setOther] = useState('');
  const pick = other || others[0]?.version || '';
  const compare = () => {
    const mine = versions.data?.find((v) => v.version === version);
    const theirs = versions.data?.find((v) => v.version === pick);
    if (!theirs) return;
    onClose();
    navigate(diffPath(procedureId, theirs, mine));
  };
  return (
    <Dialog
      open
      title={`Compare ${version} with…`}
      onClose={onClose}
      actions={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="primary" disabled={!pick} onClick={compare}>
            Compare
          </button>
        </>
      }
    >
      <QueryState loading={versions.isLoading} error={versions.error}>
        {others.length === 0 ? (
          <p className="muted">{procedureId} has no other version to compare with.</p>
        ) : (
          <label>
            Other version
            <select value={pick} onChange={(e) => setOther(e.target.value)}>
              {others.map((v) => (
                <option key={v.id} value={v.version}>
                  {v.version} · {v.status} · {dateTime(v.created_at)}
                </option>
              ))}
            </select>
          </label>
        )}
      </QueryState>
    </Dialog>
  );
}
