// Two versions of a procedure compared (`/procedures/:id/diff?from=X&to=Y`): the nodes added, removed and changed
// (on the graph, coloured, and in a list with the fields that changed, each field's old and new value on demand),
// what changed outside the nodes, and the CKP text side by side.
import { useQueries, useQuery } from '@tanstack/react-query';
import { lazy, Suspense, useMemo, useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { raw, type Schemas } from '../api/client';
import { Empty, ErrorBanner, Json, PageHead, QueryState, TabPanel, Tabs } from '../components/Bits';
import type { DiffMark, GraphJson } from '../components/ProcedureGraph';
import { dateTime } from '../lib/format';
import { diffEdges, diffNodes, documentChanges, type NodeDiff } from '../features/diff/diff';
import { TextDiff } from '../features/diff/TextDiff';
import '../features/diff/diff.css';
import './catalog/catalog.css';
import { versionPath, type Procedure } from './catalog/shared';

const ProcedureGraph = lazy(() => import('../components/ProcedureGraph'));

type Detail = Schemas['ProcedureDetail'];
const VIEWS = ['nodes', 'text'] as const;
type View = (typeof VIEWS)[number];

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export default function VersionDiff() {
  const { procedureId = '' } = useParams();
  const [params, setParams] = useSearchParams();
  const versions = useQuery({
    queryKey: ['procedure', procedureId, 'versions'],
    queryFn: () => raw<Procedure[]>(`/api/procedures/${encodeURIComponent(procedureId)}/versions`),
  });
  // Oldest first: without a choice in the URL, the newest is compared with the one before it.
  const list = useMemo(() => [...(versions.data ?? [])].sort((a, b) => (a.created_at < b.created_at ? -1 : a.created_at > b.created_at ? 1 : 0)), [versions.data]);
  const from = params.get('from') || list[list.length - 2]?.version || list[0]?.version || '';
  const to = params.get('to') || list[list.length - 1]?.version || '';
  const view: View = params.get('view') === 'text' ? 'text' : 'nodes';
  const set = (changes: Record<string, string>) =>
    setParams(
      (p) => {
        const n = new URLSearchParams(p);
        for (const [k, v] of Object.entries(changes)) n.set(k, v);
        return n;
      },
      { replace: true },
    );

  const details = useQueries({
      queries: [from, to].map((v) => ({
        queryKey: ['procedure', procedureId, v],
        queryFn: () => raw<Detail>(`/api/procedures/${versionPath(procedureId, v)}`),
        enabled: !!v,
      })),
  });
  const graphs = useQueries({
      queries: [from, to].map((v) => ({
        queryKey: ['procedure-graph', versionPath(procedureId, v)],
        queryFn: () => raw<GraphJson>(`/api/procedures/${versionPath(procedureId, v)}/graph`),
        enabled: !!v,
      })),
  });
  const [oldDoc, newDoc] = [details[0].data?.ckp_json, details[1].data?.ckp_json];
  const error = versions.error ?? details.find((d) => d.error)?.error ?? null;
  const loading = versions.isLoading || details.some((d) => d.isLoading);

  return (
    <>
      <PageHead
        title={`Compare versions of ${procedureId}`}
        sub={
          <>
            <Link to="/procedures">Procedures</Link> · <span className="mono">{procedureId}</span>
          </>
        }
      />
      <form className="toolbar" aria-label="Versions to compare" onSubmit={(e) => e.preventDefault()}>
        <VersionPicker label="From (old)" value={from} list={list} onChange={(v) => set({ from: v })} />
        <button type="button" onClick={() => set({ from: to, to: from })} aria-label="Swap the versions" title="Swap">
          ⇄ Swap
        </button>
        <VersionPicker label="To (new)" value={to} list={list} onChange={(v) => set({ to: v })} />
        {to && (
          <Link className="button" to={`/procedures/${versionPath(procedureId, to)}`}>
            Open {to}
          </Link>
        )}
      </form>
      {error != null && <ErrorBanner error={error} />}
      <QueryState loading={loading}>
        {versions.data && versions.data.length < 2 && <Empty>This procedure has one version: there is nothing to compare it with.</Empty>}
        {from && from === to && <div className="banner info">Both sides are version {from}: pick another version to compare.</div>}
        {oldDoc !== undefined && newDoc !== undefined && (
          <Comparison
            procedureId={procedureId}
            from={from}
            to={to}
            oldDoc={oldDoc}
            newDoc={newDoc}
            oldGraph={graphs[0].data}
            newGraph={graphs[1].data}
            graphError={graphs.find((g) => g.error)?.error}
            view={view}
            onView={(v) => set({ view: v })}
          />
        )}
      </QueryState>
    </>
  );
}

function VersionPicker({ label, value, list, onChange }: { label: string; value: string; list: Procedure[]; onChange: (v: string) => void }) {
  return (
    <label>
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {!list.some((p) => p.version === value) && <option value={value}>{value || '—'}</option>}
        {[...list].reverse().map((p) => (
          <option key={p.id} value={p.version}>
            {p.version} · {p.status} · {dateTime(p.created_at)}
          </option>
        ))}
      </select>
    </label>
  );
}

function Comparison({
  procedureId,
  from,
  to,
  oldDoc,
  newDoc,
  oldGraph,
  newGraph,
  graphError,
  view,
  onView,
}: {
  procedureId: string;
  from: string;
  to: string;
  oldDoc: unknown;
  newDoc: unknown;
  oldGraph?: GraphJson;
  newGraph?: GraphJson;
  graphError?: unknown;
  view: View;
  onView: (v: View) => void;
}) {
  const nodes = useMemo(() => diffNodes(oldDoc, newDoc), [oldDoc, newDoc]);
  const doc = useMemo(() => documentChanges(oldDoc, newDoc), [oldDoc, newDoc]);
  const [selected, setSelected] = useState<string | null>(null);
  const [reveal, setReveal] = useState<{ node: string; n: number } | null>(null);
  const total = nodes.added.length + nodes.removed.length + nodes.changed.length;

  const showInText = (id: string) => {
    setReveal({ node: id, n: Date.now() });
    onView('text');
  };

  return (
    <>
      <section className="card diff-summary" aria-label="Summary of the changes">
        <span className="badge warn">{nodes.changed.length} changed</span>
        <span className="badge ok">{nodes.added.length} added</span>
        <span className="badge err">{nodes.removed.length} removed</span>
        <span className="muted">
          {total === 0 ? 'No node differs' : `node${total === 1 ? '' : 's'} of ${from} → ${to}`}
          {doc.length > 0 ? ' · also changed: ' : ''}
        </span>
        {doc.map((k) => (
          <span key={k} className="chip">
            {k}
          </span>
        ))}
      </section>
      <Tabs label="Comparison view" tabs={[{ id: 'nodes', label: 'Nodes' }, { id: 'text', label: 'CKP text' }]} value={view} onChange={(v) => { setReveal(null); onView(v); }} />
      <TabPanel id={view}>
        {view === 'nodes' ? (
          <div className="diff-nodes">
            <div>
              {graphError != null && <ErrorBanner error={graphError} />}
              {oldGraph && newGraph ? (
                <MergedGraph procedureId={procedureId} oldGraph={oldGraph} newGraph={newGraph} nodes={nodes} selected={selected} onSelect={setSelected} />
              ) : (
                !graphError && <div role="status">Loading the graphs…</div>
              )}
            </div>
            <NodeList nodes={nodes} oldDoc={oldDoc} newDoc={newDoc} selected={selected} onSelect={setSelected} onShowText={showInText} />
          </div>
        ) : (
          <TextDiff reveal={reveal} before={oldDoc} after={newDoc} labels={[`${from} (old)`, `${to} (new)`]} />
        )}
      </TabPanel>
    </>
  );
}

/** The new version's graph plus the removed nodes and edges from the old one, coloured by what changed. */
function MergedGraph({
  procedureId,
  oldGraph,
  newGraph,
  nodes,
  selected,
  onSelect,
}: {
  procedureId: string;
  oldGraph: GraphJson;
  newGraph: GraphJson;
  nodes: NodeDiff;
  selected: string | null;
  onSelect: (id: string) => void;
}) {
  const { graph, marks, edgeMarks } = useMemo(() => {
    const removed = new Set(nodes.removed);
    const edges = diffEdges(oldGraph.edges, newGraph.edges);
    const merged: GraphJson = {
      nodes: [...newGraph.nodes, ...oldGraph.nodes.filter((n) => removed.has(n.id))],
      edges: [
        ...newGraph.edges,
        ...oldGraph.edges.filter((e) => edges.removed.has(`${e.source}->${e.target}`)).map((e) => ({ ...e, id: `old:${e.id}` })),
      ],
    };
    const marks: Record<string, DiffMark> = {};
    for (const id of nodes.added) marks[id] = 'added';
    for (const id of nodes.removed) marks[id] = 'removed';
    for (const c of nodes.changed) marks[c.id] = 'changed';
    const edgeMarks: Record<string, 'added' | 'removed'> = {};
    for (const k of edges.added) edgeMarks[k] = 'added';
    for (const k of edges.removed) edgeMarks[k] = 'removed';
    return { graph: merged, marks, edgeMarks };
  }, [oldGraph, newGraph, nodes]);
  return (
    <Suspense fallback={<div role="status">Loading the graph…</div>}>
      <ProcedureGraph
        graph={graph}
        marks={marks}
        edgeMarks={edgeMarks}
        selected={selected}
        onSelect={onSelect}
        label={`Graph of ${procedureId}: changes between the versions`}
        height={560}
      />
    </Suspense>
  );
}

function NodeList({
  nodes,
  oldDoc,
  newDoc,
  selected,
  onSelect,
  onShowText,
}: {
  nodes: NodeDiff;
  oldDoc: unknown;
  newDoc: unknown;
  selected: string | null;
  onSelect: (id: string | null) => void;
  onShowText: (id: string) => void;
}) {
  const oldNodes = obj(obj(obj(oldDoc).workflow_graph).nodes);
  const newNodes = obj(obj(obj(newDoc).workflow_graph).nodes);
  const rows: { id: string; kind: DiffMark; fields: string[] }[] = [
    ...nodes.changed.map((c) => ({ id: c.id, kind: 'changed' as const, fields: c.fields })),
    ...nodes.added.map((id) => ({ id, kind: 'added' as const, fields: [] })),
    ...nodes.removed.map((id) => ({ id, kind: 'removed' as const, fields: [] })),
  ];
  if (!rows.length) return <Empty>No node was added, removed or changed.</Empty>;
  return (
    <section aria-labelledby="changed-nodes-title">
      <h2 id="changed-nodes-title">Nodes that differ</h2>
      <ul className="node-changes" aria-label="Nodes that differ">
        {rows.map((r) => (
          <li key={r.id} className={`${r.kind}${selected === r.id ? ' selected' : ''}`} data-node={r.id} data-kind={r.kind}>
            <div className="node-change-head">
              <button className="ghost small node-link" aria-pressed={selected === r.id} onClick={() => onSelect(selected === r.id ? null : r.id)}>
                <span className="mono">{r.id}</span>
              </button>
              <span className={`badge ${r.kind === 'added' ? 'ok' : r.kind === 'removed' ? 'err' : 'warn'}`}>{r.kind}</span>
              <button className="ghost small" onClick={() => onShowText(r.id)} aria-label={`Show ${r.id} in the text`}>
                Show in text
              </button>
            </div>
            {r.fields.length > 0 && (
              <div className="fields" aria-label={`Fields of ${r.id} that changed`}>
                {r.fields.map((f) => (
                  <span key={f} className="chip">
                    {f || '(whole node)'}
                  </span>
                ))}
              </div>
            )}
            {selected === r.id && <NodeDetail kind={r.kind} fields={r.fields} before={oldNodes[r.id]} after={newNodes[r.id]} />}
          </li>
        ))}
      </ul>
    </section>
  );
}

function NodeDetail({ kind, fields, before, after }: { kind: DiffMark; fields: string[]; before: unknown; after: unknown }) {
  if (kind !== 'changed') return <Json value={kind === 'added' ? after : before} label={kind === 'added' ? 'The new node' : 'The removed node'} />;
  const a = obj(before);
  const b = obj(after);
  return (
    <table className="data field-diff">
      <thead>
        <tr>
          <th scope="col">Field</th>
          <th scope="col">Old</th>
          <th scope="col">New</th>
        </tr>
      </thead>
      <tbody>
        {fields.map((f) => (
          <tr key={f}>
            <th scope="row" className="mono">
              {f}
            </th>
            <td>{f in a ? <pre className="mono">{JSON.stringify(a[f], null, 2)}</pre> : <span className="muted">absent</span>}</td>
            <td>{f in b ? <pre className="mono">{JSON.stringify(b[f], null, 2)}</pre> : <span className="muted">absent</span>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}
