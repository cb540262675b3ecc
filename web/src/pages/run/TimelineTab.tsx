// The live timeline: quick filters (all, errors, steps, nodes) and a multi-select of the event types present, both
// in the URL; a virtualised list (a 10,000-event run scrolls as fast as a short one) whose rows expand to their
// JSON payload (errors open by default); and the per-node report with its step tables.
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState } from 'react';
import { useSearchParams } from 'react-router';
import { Empty, Json, StatusBadge } from '../../components/Bits';
import { duration } from '../../lib/format';
import { isError, kindOf, nodeReports, summary, type NodeReport, type RunEvent } from './events';

type Quick = 'all' | 'errors' | 'steps' | 'nodes';
const QUICK: { id: Quick; label: string }[] = [
  { id: 'all', label: 'All' },
  { id: 'errors', label: 'Errors' },
  { id: 'steps', label: 'Steps' },
  { id: 'nodes', label: 'Nodes' },
];

export function clock(ts: string): string {
  const d = new Date(ts);
  if (Number.isNaN(d.getTime())) return ts;
  return `${d.toLocaleTimeString(undefined, { hour12: false })}.${String(d.getMilliseconds()).padStart(3, '0')}`;
}

export function TimelineTab({ events, live }: { events: RunEvent[]; live: boolean }) {
  const [params, setParams] = useSearchParams();
  const quick = (QUICK.find((q) => q.id === params.get('filter'))?.id ?? 'all') as Quick;
  const types = useMemo(() => new Set((params.get('types') ?? '').split(',').filter(Boolean)), [params]);
  const set = (k: string, v: string | null) =>
    setParams(
      (p) => {
        if (v) p.set(k, v);
        else p.delete(k);
        return p;
      },
      { replace: true },
    );

  const counts = useMemo(() => {
    const m = new Map<string, number>();
    for (const e of events) m.set(e.event_type, (m.get(e.event_type) ?? 0) + 1);
    return [...m.entries()].sort((a, b) => a[0].localeCompare(b[0]));
  }, [events]);
  const errorCount = useMemo(() => events.filter(isError).length, [events]);
  const shown = useMemo(
    () =>
      events.filter((e) => {
        if (types.size && !types.has(e.event_type)) return false;
        const k = kindOf(e);
        if (quick === 'errors') return k === 'error';
        if (quick === 'steps') return k === 'step' || (k === 'error' && !!e.step_id);
        if (quick === 'nodes') return k === 'node' || (k === 'error' && !!e.node_id && !e.step_id);
        return true;
      }),
    [events, types, quick],
  );
  const reports = useMemo(() => nodeReports(events), [events]);
  // A run that was live when the page opened keeps following its newest events (the last ones included, which
  // arrive as the stream ends) while the reader stays at the bottom; an ended run opens at its first event.
  const [follow] = useState(live);

  const toggleType = (t: string) => {
    const next = new Set(types);
    if (next.has(t)) next.delete(t);
    else next.add(t);
    set('types', [...next].join(',') || null);
  };

  return (
    <div className="timeline">
      <div className="toolbar timeline-filters">
        <div role="group" aria-label="Quick filter" className="segmented">
          {QUICK.map((q) => (
            <button key={q.id} aria-pressed={quick === q.id} onClick={() => set('filter', q.id === 'all' ? null : q.id)}>
              {q.label}
              {q.id === 'errors' && errorCount ? ` (${errorCount})` : ''}
            </button>
          ))}
        </div>
        <details className="type-select">
          <summary aria-label={`Event types: ${types.size ? `${types.size} selected` : 'all'}`}>
            Event types{types.size ? ` (${types.size} selected)` : ''}
          </summary>
          <fieldset className="type-menu">
            <legend className="sr-only">Event types to show</legend>
            {counts.map(([t, n]) => (
              <label key={t} className="inline">
                <input type="checkbox" checked={types.has(t)} onChange={() => toggleType(t)} />
                <span className="mono">{t}</span> <span className="muted">({n})</span>
              </label>
            ))}
            {types.size > 0 && (
              <button className="small" onClick={() => set('types', null)}>
                Clear types
              </button>
            )}
          </fieldset>
        </details>
        <span className="muted" role="status" aria-live="polite">
          {shown.length === events.length ? `${events.length} events` : `${shown.length} of ${events.length} events`}
        </span>
      </div>
      <EventList events={shown} follow={follow} />
      <NodeReportSection reports={reports} />
    </div>
  );
}

/** A virtualised list of events; rows open to their payload. While live and scrolled to the end, it follows. */
export function EventList({ events, follow, height = 480 }: { events: RunEvent[]; follow?: boolean; height?: number }) {
  const parent = useRef<HTMLDivElement>(null);
  const [open, setOpen] = useState<Map<number, boolean>>(() => new Map());
  const atEnd = useRef(!!follow);
  const virtual = useVirtualizer({
    count: events.length,
    getScrollElement: () => parent.current,
    estimateSize: () => 34,
    overscan: 12,
    getItemKey: (i) => events[i].event_id,
  });
  useEffect(() => {
    if (follow && atEnd.current && events.length) virtual.scrollToIndex(events.length - 1, { align: 'end' });
  }, [events.length, follow, virtual]);
  if (!events.length) return <Empty>No events match.</Empty>;
  const isOpen = (e: RunEvent) => open.get(e.event_id) ?? isError(e);
  return (
    <div
      ref={parent}
      className="event-list"
      style={{ maxHeight: height }}
      onScroll={(ev) => {
        const el = ev.currentTarget;
        atEnd.current = el.scrollHeight - el.scrollTop - el.clientHeight < 60;
      }}
      role="list"
      aria-label="Run events"
      tabIndex={0}
    >
      <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
        {virtual.getVirtualItems().map((item) => {
          const e = events[item.index];
          const expanded = isOpen(e);
          const k = kindOf(e);
          return (
            <div
              key={item.key}
              data-index={item.index}
              ref={virtual.measureElement}
              role="listitem"
              className={`event-row kind-${k}`}
              style={{ position: 'absolute', top: 0, left: 0, right: 0, transform: `translateY(${item.start}px)` }}
            >
              <div className="event-line">
                <button
                  className="ghost small expander"
                  aria-expanded={expanded}
                  aria-label={`${expanded ? 'Hide' : 'Show'} payload of event ${e.event_id} (${e.event_type})`}
                  onClick={() => setOpen((m) => new Map(m).set(e.event_id, !expanded))}
                >
                  <span aria-hidden="true">{expanded ? '▾' : '▸'}</span>
                </button>
                <time className="mono muted" dateTime={e.created_at}>
                  {clock(e.created_at)}
                </time>
                <span className={`badge ${k === 'error' ? 'err' : k === 'run' ? 'info' : ''} mono`}>{e.event_type}</span>
                <span className="mono event-where">
                  {e.node_id ?? ''}
                  {e.step_id ? ` / ${e.step_id}` : ''}
                </span>
                <span className="event-summary">{summary(e)}</span>
              </div>
              {expanded && <Json value={e.payload ?? null} label={`Payload of event ${e.event_id}`} />}
            </div>
          );
        })}
      </div>
    </div>
  );
}

function ms(v: number | null): string {
  return v == null ? '—' : duration(v / 1000);
}

function NodeReportSection({ reports }: { reports: NodeReport[] }) {
  if (!reports.length) return null;
  return (
    <section className="card node-report" aria-labelledby="node-report-title">
      <h2 id="node-report-title">Per-node report</h2>
      <table className="data">
        <caption className="sr-only">Nodes of this run: status, attempts and duration</caption>
        <thead>
          <tr>
            <th scope="col">Node</th>
            <th scope="col">Status</th>
            <th scope="col">Attempts</th>
            <th scope="col">Started</th>
            <th scope="col">Duration</th>
            <th scope="col">Steps</th>
          </tr>
        </thead>
        <tbody>
          {reports.map((n) => (
            <tr key={n.node_id}>
              <th scope="row" className="mono">
                {n.node_id}
                {n.name !== n.node_id && <div className="muted node-name">{n.name}</div>}
              </th>
              <td>
                <StatusBadge status={n.status} />
              </td>
              <td>{n.attempts}</td>
              <td>{n.started ? clock(n.started) : '—'}</td>
              <td>{ms(n.durationMs)}</td>
              <td>
                {n.steps.length ? (
                  <details open={n.status === 'failed'}>
                    <summary>
                      {n.steps.length} step{n.steps.length > 1 ? 's' : ''}
                    </summary>
                    <StepTable node={n} />
                  </details>
                ) : (
                  <span className="muted">none</span>
                )}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </section>
  );
}

export function StepTable({ node }: { node: NodeReport }) {
  return (
    <div className="table-scroll">
    <table className="data steps">
      <caption className="sr-only">Steps of {node.node_id}</caption>
      <thead>
        <tr>
          <th scope="col">Step</th>
          <th scope="col">Action</th>
          <th scope="col">Status</th>
          <th scope="col">Start</th>
          <th scope="col">Duration</th>
          <th scope="col">Retries</th>
        </tr>
      </thead>
      <tbody>
        {node.steps.map((s) => (
          <tr key={s.step_id}>
            <td className="mono">{s.step_id}</td>
            <td>{s.action || '—'}</td>
            <td>
              <StatusBadge status={s.status} />
            </td>
            <td>{s.started ? clock(s.started) : '—'}</td>
            <td>{ms(s.durationMs)}</td>
            <td>{s.retries}</td>
          </tr>
        ))}
      </tbody>
    </table>
    </div>
  );
}
