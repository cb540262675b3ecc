// The live graph: the procedure's graph with the overlay the events give (node states, visits, edges taken, the
// current node). Choosing a node (click, or Tab then Enter) opens a side panel with its events, steps and outputs.
import { useQuery } from '@tanstack/react-query';
import { lazy, Suspense, useMemo } from 'react';
import { useSearchParams } from 'react-router';
import { raw } from '../../api/client';
import { Empty, Json, QueryState, StatusBadge } from '../../components/Bits';
import type { GraphJson } from '../../components/ProcedureGraph';
import { duration } from '../../lib/format';
import { nodeReports, overlayOf, payload, type RunEvent } from './events';
import type { Run } from './RunHeader';
import { EventList, StepTable } from './TimelineTab';

const ProcedureGraph = lazy(() => import('../../components/ProcedureGraph'));

export function GraphTab({ run, events, ended }: { run: Run; events: RunEvent[]; ended: boolean }) {
  const [params, setParams] = useSearchParams();
  const selected = params.get('node');
  const select = (id: string | null) =>
    setParams(
      (p) => {
        if (id) p.set('node', id);
        else p.delete('node');
        return p;
      },
      { replace: true },
    );
  const graph = useQuery({
    queryKey: ['procedure', run.procedure_id, run.procedure_version, 'graph'],
    queryFn: () => raw<GraphJson>(`/api/procedures/${encodeURIComponent(run.procedure_id)}/${encodeURIComponent(run.procedure_version)}/graph`),
    staleTime: 5 * 60_000,
  });
  const overlay = useMemo(() => overlayOf(events, ended), [events, ended]);
  const states = overlay.states ?? {};
  const summaryText = Object.entries(states)
    .map(([n, s]) => `${n}: ${s}${(overlay.visits?.[n] ?? 0) > 1 ? ` (${overlay.visits?.[n]} visits)` : ''}`)
    .join('; ');
  return (
    <QueryState loading={graph.isLoading} error={graph.error}>
      {graph.data && (
        <div className={`run-graph ${selected ? 'with-panel' : ''}`}>
          <div>
            <Suspense fallback={<div className="graph empty" role="status">Loading the graph…</div>}>
              <ProcedureGraph
                graph={graph.data}
                overlay={overlay}
                selected={selected}
                onSelect={(id) => select(id)}
                label={`Live graph of run ${run.run_id}`}
              />
            </Suspense>
            <p className="sr-only" aria-live="polite">
              Node states: {summaryText || 'no node entered yet'}
              {overlay.current ? `. Current node: ${overlay.current}` : ''}
            </p>
            <NodeStateList graph={graph.data} states={states} visits={overlay.visits ?? {}} current={overlay.current ?? null} onSelect={select} />
          </div>
          {selected && <NodePanel nodeId={selected} run={run} events={events} onClose={() => select(null)} />}
        </div>
      )}
    </QueryState>
  );
}

/** The overlay as text: every node with its state and visit count, each a button that opens the node's panel. */
function NodeStateList({
  graph,
  states,
  visits,
  current,
  onSelect,
}: {
  graph: GraphJson;
  states: Record<string, string>;
  visits: Record<string, number>;
  current: string | null;
  onSelect: (id: string) => void;
}) {
  return (
    <details className="node-states">
      <summary>Node states as a list</summary>
      <ul>
        {graph.nodes.map((n) => (
          <li key={n.id}>
            <button className="ghost small" onClick={() => onSelect(n.id)}>
              {n.id}
            </button>{' '}
            <StatusBadge status={states[n.id] ?? 'not reached'} />
            {(visits[n.id] ?? 0) > 1 && <span className="muted"> ×{visits[n.id]}</span>}
            {current === n.id && <strong> (current)</strong>}
          </li>
        ))}
      </ul>
    </details>
  );
}

function NodePanel({ nodeId, run, events, onClose }: { nodeId: string; run: Run; events: RunEvent[]; onClose: () => void }) {
  const mine = useMemo(() => events.filter((e) => e.node_id === nodeId), [events, nodeId]);
  const report = useMemo(() => nodeReports(mine).find((r) => r.node_id === nodeId), [mine, nodeId]);
  const outputs = useMemo(() => {
    const names = new Set<string>();
    for (const e of mine) {
      const v = payload(e).output_variable;
      if (typeof v === 'string' && v) names.add(v);
    }
    const vars = (run.output_vars ?? {}) as Record<string, unknown>;
    return [...names].map((n) => [n, n in vars ? vars[n] : undefined] as const);
  }, [mine, run.output_vars]);
  return (
    <aside className="card node-panel" aria-labelledby="node-panel-title">
      <div className="node-panel-head">
        <h2 id="node-panel-title">
          Node <span className="mono">{nodeId}</span>
        </h2>
        <button className="small" onClick={onClose} aria-label="Close node panel">
          Close
        </button>
      </div>
      {!report ? (
        <p className="muted">The run has not entered this node.</p>
      ) : (
        <>
          <p>
            <StatusBadge status={report.status} /> {report.attempts} visit{report.attempts > 1 ? 's' : ''} ·{' '}
            {report.durationMs == null ? '—' : duration(report.durationMs / 1000)}
          </p>
          {report.steps.length > 0 && (
            <>
              <h3>Steps</h3>
              <StepTable node={report} />
            </>
          )}
          <h3>Outputs</h3>
          {outputs.length ? (
            <Json value={Object.fromEntries(outputs.map(([k, v]) => [k, v === undefined ? '(not in the run outputs yet)' : v]))} label={`Outputs of ${nodeId}`} />
          ) : (
            <p className="muted">Its steps wrote no output variable.</p>
          )}
          <h3>Events</h3>
          {mine.length ? <EventList events={mine} height={360} /> : <Empty>No events.</Empty>}
        </>
      )}
    </aside>
  );
}
