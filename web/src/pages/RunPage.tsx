// The run page (`/runs/:runId`): the header (status, ids, actions, banners, variables) over tabs kept in the URL
// (`?tab=timeline|gantt|graph|artifacts|checkpoints|diagnostics`). The events are loaded once and kept live over
// the run's SSE stream; every tab reads the same list. The pieces live in `pages/run/`.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { Link, useParams, useSearchParams } from 'react-router';
import { ApiError, raw } from '../api/client';
import { PageHead, QueryState, TabPanel, Tabs } from '../components/Bits';
import { ArtifactsTab } from './run/ArtifactsTab';
import { GanttTab } from './run/GanttTab';
import { GraphTab } from './run/GraphTab';
import { RunHeader, type Run } from './run/RunHeader';
import { CheckpointsTab, DiagnosticsTab } from './run/StateTabs';
import { TimelineTab } from './run/TimelineTab';
import { eventsKey, runKey, useRunEvents } from './run/useRunEvents';
import './run/run.css';

const TABS = [
  { id: 'timeline', label: 'Timeline' },
  { id: 'gantt', label: 'Gantt' },
  { id: 'graph', label: 'Live graph' },
  { id: 'artifacts', label: 'Artifacts' },
  { id: 'checkpoints', label: 'Checkpoints' },
  { id: 'diagnostics', label: 'Diagnostics' },
] as const;
type Tab = (typeof TABS)[number]['id'];

export default function RunPage() {
  const { runId = '' } = useParams();
  const qc = useQueryClient();
  // An in-place retry runs the same run again: its events start over, so the live part is mounted anew.
  const [generation, setGeneration] = useState(0);
  const run = useQuery({
    queryKey: runKey(runId),
    queryFn: () => raw<Run>(`/api/runs/${encodeURIComponent(runId)}`),
    retry: (n, e) => !(e instanceof ApiError && e.status === 404) && n < 2,
  });
  if (run.error instanceof ApiError && run.error.status === 404)
    return (
      <>
        <PageHead title="Run not found" />
        <p>
          There is no run <span className="mono">{runId}</span>. <Link to="/runs">Back to the runs</Link>
        </p>
      </>
    );
  return (
    <QueryState loading={run.isLoading} error={run.error}>
      {run.data && (
        <RunBody
          key={`${runId}:${generation}`}
          run={run.data}
          onRetriedInPlace={() => {
            qc.removeQueries({ queryKey: eventsKey(runId), exact: true });
            void qc.invalidateQueries({ queryKey: runKey(runId), exact: true });
            setGeneration((g) => g + 1);
          }}
        />
      )}
    </QueryState>
  );
}

function RunBody({ run, onRetriedInPlace }: { run: Run; onRetriedInPlace: () => void }) {
  const [params, setParams] = useSearchParams();
  const tab: Tab = TABS.find((t) => t.id === params.get('tab'))?.id ?? 'timeline';
  const setTab = (t: Tab) =>
    setParams((p) => {
      const next = new URLSearchParams();
      if (t !== 'timeline') next.set('tab', t);
      // Filters belong to the timeline, the chosen node to the graph.
      if (t === 'timeline') for (const k of ['filter', 'types']) if (p.get(k)) next.set(k, p.get(k)!);
      if (t === 'graph' && p.get('node')) next.set('node', p.get('node')!);
      return next;
    });
  const { events, loading, error, live } = useRunEvents(run.run_id);
  const ended = live === 'ended';
  const liveText =
    live === 'ended' ? 'Run ended: all events shown' : live === 'open' ? 'Live: new events appear as they happen' : live === 'error' ? 'Reconnecting to the live stream…' : live === 'connecting' ? 'Connecting to the live stream…' : 'Not live';
  return (
    <div className="run-page">
      <RunHeader run={run} onRetriedInPlace={onRetriedInPlace} />
      <div className="run-tabs-bar">
        <Tabs tabs={[...TABS]} value={tab} onChange={setTab} label="Run views" />
        <span className={`live-indicator ${live}`} role="status" aria-live="polite">
          <span className="dot" aria-hidden="true" />
          {liveText}
        </span>
      </div>
      <TabPanel id={tab}>
        <QueryState loading={loading && (tab === 'timeline' || tab === 'gantt' || tab === 'graph')} error={error}>
          {tab === 'timeline' && <TimelineTab events={events} live={!ended} />}
          {tab === 'gantt' && <GanttTab events={events} live={!ended} />}
          {tab === 'graph' && <GraphTab run={run} events={events} ended={ended} />}
        </QueryState>
        {tab === 'artifacts' && <ArtifactsTab runId={run.run_id} />}
        {tab === 'checkpoints' && <CheckpointsTab runId={run.run_id} version={run.updated_at} />}
        {tab === 'diagnostics' && <DiagnosticsTab runId={run.run_id} version={run.updated_at} />}
      </TabPanel>
    </div>
  );
}
