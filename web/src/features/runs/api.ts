// The runs list's server state: the filtered page of `GET /api/runs`, the procedure and project choices for the
// filters, and the per-run actions the bulk operations call.
import { keepPreviousData, useQuery } from '@tanstack/react-query';
import { raw, type Schemas } from '../../api/client';

/** `RunOut` plus `rerun_of`, which the server is adding (not in the generated schema yet). */
export type Run = Schemas['RunOut'] & { rerun_of?: string | null };

export const RUN_STATUSES = ['created', 'running', 'waiting_approval', 'paused', 'completed', 'failed', 'canceled'] as const;
const TERMINAL = new Set(['completed', 'failed', 'canceled']);
export const isTerminal = (status: string) => TERMINAL.has(status);

/** Preset date ranges, in seconds back from now; `custom` reads created_from/created_to. */
export const RANGES = [
  { id: '', label: 'Any time', seconds: 0 },
  { id: '1h', label: 'Last hour', seconds: 3600 },
  { id: '24h', label: 'Last 24 h', seconds: 86_400 },
  { id: '7d', label: 'Last 7 days', seconds: 7 * 86_400 },
  { id: '30d', label: 'Last 30 days', seconds: 30 * 86_400 },
  { id: 'custom', label: 'Custom…', seconds: 0 },
] as const;

export interface RunFilters {
  status: string;
  procedure_id: string;
  project_id: string;
  range: string;
  created_from: string;
  created_to: string;
  rerun_of: string;
  limit: number;
  offset: number;
}

/** The query string of `GET /api/runs` for these filters; a preset range is resolved against the clock now. */
export function runsQuery(f: RunFilters, now = Date.now()): URLSearchParams {
  const q = new URLSearchParams();
  for (const k of ['status', 'procedure_id', 'project_id', 'rerun_of'] as const) if (f[k]) q.set(k, f[k]);
  const preset = RANGES.find((r) => r.id === f.range);
  if (preset && preset.seconds > 0) {
    q.set('created_from', new Date(now - preset.seconds * 1000).toISOString());
  } else if (f.range === 'custom') {
    if (f.created_from) q.set('created_from', localToIso(f.created_from));
    if (f.created_to) q.set('created_to', localToIso(f.created_to));
  }
  q.set('limit', String(f.limit));
  q.set('offset', String(f.offset));
  return q;
}

/** A `datetime-local` value (the browser's zone) as RFC 3339 UTC; an unparsable value passes through for the server to refuse. */
export function localToIso(value: string): string {
  const d = new Date(value);
  return Number.isNaN(d.getTime()) ? value : d.toISOString();
}

/**
 * One page of runs. It refreshes every 5 s while a run on the page can still change, every 30 s otherwise, and
 * keeps the previous page on screen while the next one loads.
 */
export function useRuns(f: RunFilters) {
  return useQuery({
    queryKey: ['runs', 'list', f],
    queryFn: () => raw<Run[]>(`/api/runs?${runsQuery(f).toString()}`),
    placeholderData: keepPreviousData,
    refetchInterval: (q) => (q.state.data?.some((r) => !isTerminal(r.status)) ? 5_000 : 30_000),
  });
}

export function useProcedureChoices() {
  return useQuery({
    queryKey: ['procedures', 'ids'],
    queryFn: async () => {
      const list = await raw<{ procedure_id: string }[]>('/api/procedures');
      return [...new Set(list.map((p) => p.procedure_id))].sort();
    },
    staleTime: 60_000,
  });
}

export function useProjectChoices() {
  return useQuery({
    queryKey: ['projects'],
    queryFn: () => raw<Schemas['ProjectOut'][]>('/api/projects'),
    staleTime: 60_000,
  });
}

export const cancelRun = (id: string) => raw(`/api/runs/${encodeURIComponent(id)}/cancel`, { method: 'POST' });
export const deleteRun = (id: string) => raw(`/api/runs/${encodeURIComponent(id)}`, { method: 'DELETE' });

export interface CleanupResult {
  deleted_count: number;
  before: string;
  status: string | null;
  dry_run?: boolean;
}

/** `DELETE /api/runs/cleanup/history`: with `dryRun` it only counts. */
export function cleanupHistory(before: string, status: string, dryRun: boolean): Promise<CleanupResult> {
  const q = new URLSearchParams({ before });
  if (status) q.set('status', status);
  if (dryRun) q.set('dry_run', 'true');
  return raw<CleanupResult>(`/api/runs/cleanup/history?${q.toString()}`, { method: 'DELETE' });
}
