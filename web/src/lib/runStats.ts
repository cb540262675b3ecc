// Run statistics from `GET /api/runs/stats` (not in the generated schema yet, hence the hand-written shape): the
// types and the one query that the dashboard, the metrics page and the shell's badges read.
import { useQuery } from '@tanstack/react-query';
import { ApiError, raw } from '../api/client';

/** Runs created and finished in one bucket (an hour up to 72 h, a day beyond). */
export interface RunStatsBucket {
  start: string;
  created: number;
  completed: number;
  failed: number;
  canceled: number;
}

/** One procedure's runs in the period: counts, failure rate, p50/p95 durations and cost. */
export interface RunStatsByProcedure {
  procedure_id: string;
  total: number;
  completed: number;
  failed: number;
  failure_rate: number;
  p50_seconds: number | null;
  p95_seconds: number | null;
  cost_usd: number | null;
}

export interface RunStats {
  from: string;
  to: string;
  bucket_seconds: number;
  buckets: RunStatsBucket[];
  totals: { created: number; completed: number; failed: number; canceled: number; running: number; waiting_approval: number };
  by_procedure: RunStatsByProcedure[];
}

export const fetchRunStats = (hours: number) => raw<RunStats>(`/api/runs/stats?hours=${hours}`);

/** True when the server answers 404: it does not report run statistics (yet); pages say so instead of an error. */
export const statsMissing = (error: unknown) => error instanceof ApiError && error.status === 404;

/** The statistics of the last `hours` hours, refreshed every `refreshMs` (never faster than 5 s). */
export function useRunStats(hours: number, refreshMs = 10_000) {
  return useQuery({
    queryKey: ['/api/runs/stats', hours],
    queryFn: () => fetchRunStats(hours),
    refetchInterval: Math.max(5_000, refreshMs),
    retry: (failures, error) => !statsMissing(error) && failures < 3,
  });
}
