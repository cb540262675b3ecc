// A run's events, live: every stored event is loaded page by page (`GET /api/runs/{id}/events?after=&limit=`), then
// the run's SSE stream is opened after the last one loaded (`last_event_id=`), and what it sends is appended to the
// same query cache entry, deduplicated by event_id. The stream is closed on the run's terminal event (and never
// opened for a run that has already ended). Events that change the run's row make the page refetch the run.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState } from 'react';
import { raw } from '../../api/client';
import { useEventStream, type StreamState } from '../../api/sse';
import { STATUS_EVENTS, TERMINAL_EVENTS, type RunEvent } from './events';

const PAGE = 2000;

export const runKey = (runId: string) => ['run', runId] as const;
export const eventsKey = (runId: string) => ['run', runId, 'events'] as const;

async function loadAll(runId: string): Promise<RunEvent[]> {
  const all: RunEvent[] = [];
  let after: number | null = null;
  for (;;) {
    const q: string = after === null ? `limit=${PAGE}` : `after=${after}&limit=${PAGE}`;
    const page = await raw<RunEvent[]>(`/api/runs/${encodeURIComponent(runId)}/events?${q}`);
    all.push(...page);
    if (page.length < PAGE) return all;
    after = page[page.length - 1].event_id;
  }
}

export interface RunEvents {
  events: RunEvent[];
  loading: boolean;
  error: unknown;
  /** The stream's state; 'ended' once the run's terminal event is in. */
  live: StreamState | 'ended';
}

/**
 * The events of `runId`, live; nothing (and no request) for null. The same hook may follow one run after another
 * (a test run started again): what it knows of a run is kept with the run's id.
 */
export function useRunEvents(runId: string | null): RunEvents {
  const qc = useQueryClient();
  const query = useQuery({
    queryKey: eventsKey(runId ?? ''),
    queryFn: () => loadAll(runId!),
    enabled: runId !== null,
    staleTime: Infinity,
    refetchOnWindowFocus: false,
  });
  // The stream starts after what the first load returned; later appends must not move it (that would reconnect).
  const [started, setStart] = useState<{ runId: string; after: number | null; ended: boolean } | null>(null);
  const start = started && started.runId === runId ? started : null;
  useEffect(() => {
    if (start || !query.data || runId === null) return;
    const last = query.data[query.data.length - 1];
    setStart({ runId, after: last ? last.event_id : null, ended: query.data.some((e) => TERMINAL_EVENTS.has(e.event_type)) });
    // The run's row may have been read before these events were (a fast run ends in between, and a run that has
    // ended opens no stream to say so): read it again once, after them.
    if (query.data.some((e) => STATUS_EVENTS.has(e.event_type))) void qc.invalidateQueries({ queryKey: runKey(runId), exact: true });
  }, [query.data, start, qc, runId]);
  const [endedRun, setEnded] = useState<string | null>(null);
  const ended = runId !== null && endedRun === runId;

  const seen = useRef<Set<number> | null>(null);
  const seenFor = useRef<string | null>(runId);
  if (seenFor.current !== runId) {
    seenFor.current = runId;
    seen.current = null;
  }
  const buffer = useRef<RunEvent[]>([]);
  const frame = useRef<number | null>(null);
  const flush = () => {
    frame.current = null;
    const fresh = buffer.current;
    buffer.current = [];
    if (!fresh.length || runId === null) return;
    qc.setQueryData<RunEvent[]>(eventsKey(runId), (old) => {
      const list = old ?? [];
      // Rebuilt only when the list changed other than by these appends (the first flush, a refetch).
      if (!seen.current || seen.current.size !== list.length) seen.current = new Set(list.map((e) => e.event_id));
      const add = fresh.filter((e) => !seen.current!.has(e.event_id));
      for (const e of add) seen.current.add(e.event_id);
      if (!add.length) return old;
      const merged = list.concat(add);
      // A resumed stream could deliver out of order around a reconnect: keep the list sorted by id.
      if (list.length && add[0].event_id < list[list.length - 1].event_id) merged.sort((a, b) => a.event_id - b.event_id);
      return merged;
    });
    if (fresh.some((e) => STATUS_EVENTS.has(e.event_type))) {
      void qc.invalidateQueries({ queryKey: runKey(runId), exact: true });
      void qc.invalidateQueries({ queryKey: ['run', runId, 'approvals'] });
      void qc.invalidateQueries({ queryKey: ['run', runId, 'artifacts'] });
    }
  };
  useEffect(
    () => () => {
      if (frame.current !== null) cancelAnimationFrame(frame.current);
    },
    [],
  );

  const url =
    start && !start.ended
      ? `/api/runs/${encodeURIComponent(start.runId)}/stream${start.after !== null ? `?last_event_id=${start.after}` : ''}`
      : null;
  const state = useEventStream(url, ['run_event'], (m) => {
    const e = m.data as RunEvent;
    if (!e || typeof e !== 'object' || typeof e.event_id !== 'number') return;
    buffer.current.push(e);
    if (frame.current === null) frame.current = requestAnimationFrame(flush);
    if (TERMINAL_EVENTS.has(e.event_type)) {
      setEnded(runId);
      return true;
    }
  });
  return {
    events: query.data ?? [],
    loading: runId !== null && query.isLoading,
    error: query.error,
    live: ended || start?.ended ? 'ended' : state,
  };
}
