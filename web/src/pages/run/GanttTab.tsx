// The Gantt view: node visits and step attempts as bars on a time axis built from the events' timestamps; a retry
// is a bar of its own, waits (approvals, timers) are hatched. Every bar is a button whose accessible name says what
// it is, its outcome, start and length (the text alternative); clicking one lists its events below.
import { useVirtualizer } from '@tanstack/react-virtual';
import { useEffect, useMemo, useRef, useState } from 'react';
import { Empty } from '../../components/Bits';
import { duration } from '../../lib/format';
import { ms, spansOf, type RunEvent, type Span } from './events';
import { EventList } from './TimelineTab';

const ROW = 28;

export function GanttTab({ events, live }: { events: RunEvent[]; live: boolean }) {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!live) return;
    const t = window.setInterval(() => setNow(Date.now()), 1000);
    return () => window.clearInterval(t);
  }, [live]);
  const spans = useMemo(() => spansOf(events, now), [events, now]);
  const [selected, setSelected] = useState<string | null>(null);
  const parent = useRef<HTMLDivElement>(null);
  const virtual = useVirtualizer({ count: spans.length, getScrollElement: () => parent.current, estimateSize: () => ROW, overscan: 10 });
  if (!spans.length) return <Empty>No node has started yet.</Empty>;
  const t0 = Math.min(...spans.map((s) => s.start));
  const t1 = Math.max(t0 + 1, ...spans.map((s) => s.end));
  const total = t1 - t0;
  const pos = (t: number) => ((t - t0) / total) * 100;
  const chosen = spans.find((s) => s.id === selected) ?? null;
  const ticks = [0, 0.25, 0.5, 0.75, 1];

  return (
    <div className="gantt">
      <div className="gantt-legend" aria-hidden="true">
        <span className="bar-sample node" /> node <span className="bar-sample step" /> step <span className="bar-sample failed" /> failed{' '}
        <span className="bar-sample retried" /> retried attempt <span className="bar-sample wait" /> waiting
      </div>
      <div className="gantt-axis" aria-hidden="true">
        <span className="gantt-label" />
        <span className="gantt-track">
          {ticks.map((f) => (
            <span key={f} className="tick" style={{ left: `${f * 100}%` }}>
              +{duration((total * f) / 1000)}
            </span>
          ))}
        </span>
      </div>
      <div ref={parent} className="gantt-rows" role="list" aria-label="Nodes and steps on a time axis">
        <div style={{ height: virtual.getTotalSize(), position: 'relative' }}>
          {virtual.getVirtualItems().map((item) => {
            const s = spans[item.index];
            const left = pos(s.start);
            const width = Math.max(0.4, pos(s.end) - left);
            const text = describe(s, t0);
            return (
              <div
                key={s.id}
                role="listitem"
                className={`gantt-row kind-${s.kind}`}
                style={{ position: 'absolute', top: 0, left: 0, right: 0, height: ROW, transform: `translateY(${item.start}px)` }}
              >
                <span className="gantt-label mono" title={s.label}>
                  {s.label}
                </span>
                <span className="gantt-track">
                  <button
                    className={`gantt-bar ${s.kind} ${s.status}${s.open ? ' open' : ''}${selected === s.id ? ' selected' : ''}`}
                    style={{ left: `${left}%`, width: `${width}%` }}
                    aria-label={text}
                    aria-pressed={selected === s.id}
                    title={text}
                    onClick={() => setSelected(selected === s.id ? null : s.id)}
                  />
                </span>
              </div>
            );
          })}
        </div>
      </div>
      {chosen && (
        <section className="card gantt-detail" aria-labelledby="gantt-detail-title">
          <h2 id="gantt-detail-title">{describe(chosen, t0)}</h2>
          <EventList events={eventsOf(chosen, events)} height={320} />
        </section>
      )}
    </div>
  );
}

function describe(s: Span, t0: number): string {
  const what = s.kind === 'node' ? 'Node' : s.kind === 'step' ? `Step of ${s.node_id}:` : 'Wait at';
  const len = s.kind === 'wait' ? s.label.split(': ').slice(1).join(': ') || 'waiting' : '';
  return `${what} ${s.kind === 'wait' ? `${s.node_id} (${len})` : s.label}, ${s.open ? 'still running' : s.status}, from +${duration((s.start - t0) / 1000)} for ${duration((s.end - s.start) / 1000)}`;
}

function eventsOf(s: Span, events: RunEvent[]): RunEvent[] {
  const ids = new Set(s.eventIds);
  return events.filter((e) => {
    if (ids.has(e.event_id)) return true;
    if (e.node_id !== s.node_id) return false;
    if (s.kind === 'step' && e.step_id !== s.step_id) return false;
    const t = ms(e.created_at);
    return t >= s.start && t <= s.end;
  });
}
