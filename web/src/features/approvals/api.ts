// The approvals' server state. The pending inbox lives in the query cache under ['approvals', 'pending']: loaded
// once by `GET /api/approvals?status=pending`, then kept current by `GET /api/approvals/stream` (a snapshot of
// every pending approval, then one update per change). Resolved and all approvals are plain queries, refetched
// when the stream reports a change.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useCallback } from 'react';
import { raw, type Schemas } from '../../api/client';
import { useEventStream, type StreamState } from '../../api/sse';

export type Approval = Schemas['ApprovalOut'];
export const PENDING = ['approvals', 'pending'] as const;
export const STALE_AFTER_MS = 24 * 3600 * 1000;

export function usePendingApprovals() {
  return useQuery({ queryKey: PENDING, queryFn: () => raw<Approval[]>('/api/approvals?status=pending') });
}

/** Every approval (newest first); the Resolved tab keeps those not pending. */
export function useAllApprovals(enabled: boolean) {
  return useQuery({ queryKey: ['approvals', 'all'], queryFn: () => raw<Approval[]>('/api/approvals'), enabled });
}

export function useApproval(id: string) {
  return useQuery({
    queryKey: ['approvals', 'one', id],
    queryFn: () => raw<Approval>(`/api/approvals/${encodeURIComponent(id)}`),
  });
}

/** Merges one approval into a newest-first pending list: added or replaced while pending, removed otherwise. */
export function mergePending(list: Approval[], a: Approval): Approval[] {
  const rest = list.filter((x) => x.approval_id !== a.approval_id);
  if (a.status !== 'pending') return rest;
  return [...rest, a].sort((x, y) => y.created_at.localeCompare(x.created_at));
}

/** Feeds the approvals stream into the cache while the caller is mounted; returns the connection state. */
export function useApprovalStream(): StreamState {
  const qc = useQueryClient();
  return useEventStream('/api/approvals/stream', ['approval_snapshot', 'approval_update'], (m) => {
    if (m.event === 'approval_snapshot' && Array.isArray(m.data)) {
      qc.setQueryData(PENDING, m.data as Approval[]);
    } else if (m.event === 'approval_update' && m.data && typeof m.data === 'object') {
      // An update carries the approval without its context data, comment and run status: merge, never replace.
      const update = m.data as Approval;
      qc.setQueryData<Approval[]>(PENDING, (old = []) =>
        mergePending(old, { ...old.find((x) => x.approval_id === update.approval_id), ...update }),
      );
      const one = ['approvals', 'one', update.approval_id];
      qc.setQueryData<Approval>(one, (old) => old && { ...old, ...update });
      void qc.invalidateQueries({ queryKey: one });
      void qc.invalidateQueries({ queryKey: ['approvals', 'all'] });
      void qc.invalidateQueries({ queryKey: ['badges'] });
    }
  });
}

export interface DecisionBody {
  decision: unknown;
  comment?: string;
}

export function decide(id: string, body: DecisionBody): Promise<Approval> {
  return raw<Approval>(`/api/approvals/${encodeURIComponent(id)}/decision`, {
    method: 'POST',
    body: JSON.stringify(body),
  });
}

/** Puts a decided approval in the cache at once (the stream confirms it a moment later). */
export function useRecordDecision() {
  const qc = useQueryClient();
  return useCallback(
    (a: Approval) => {
      qc.setQueryData(['approvals', 'one', a.approval_id], a);
      qc.setQueryData<Approval[]>(PENDING, (old) => mergePending(old ?? [], a));
      void qc.invalidateQueries({ queryKey: ['approvals', 'all'] });
      void qc.invalidateQueries({ queryKey: ['runs'] });
      void qc.invalidateQueries({ queryKey: ['badges'] });
    },
    [qc],
  );
}

/** The procedure of each run (a run's procedure never changes, so one request per run is ever made). */
export function useRunProcedure(runId: string) {
  return useQuery({
    queryKey: ['runs', 'procedure-of', runId],
    queryFn: async () => {
      const r = await raw<Schemas['RunOut']>(`/api/runs/${encodeURIComponent(runId)}`);
      return { procedure_id: r.procedure_id, procedure_version: r.procedure_version };
    },
    staleTime: Infinity,
    retry: false,
  });
}

/** The approval's choices: `options` when it has a non-empty list (strings, or objects with value/label). */
export function optionsOf(a: Approval): { value: unknown; label: string }[] {
  if (!Array.isArray(a.options)) return [];
  return a.options.map((o: unknown) => {
    if (o && typeof o === 'object' && 'value' in o) {
      const x = o as { value: unknown; label?: unknown };
      return { value: x.value, label: typeof x.label === 'string' ? x.label : display(x.value) };
    }
    return { value: o, label: display(o) };
  });
}

function display(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}

export interface Flags {
  overdue: boolean;
  stale: boolean;
  /** Milliseconds to expiry (negative once past), or null without an expiry. */
  left: number | null;
}

/** Overdue: pending past its expiry. Stale: pending for more than 24 h. */
export function flagsOf(a: Approval, now: number): Flags {
  const pending = a.status === 'pending';
  const left = a.expires_at ? new Date(a.expires_at).getTime() - now : null;
  return {
    left,
    overdue: pending && left !== null && left < 0,
    stale: pending && now - new Date(a.created_at).getTime() > STALE_AFTER_MS,
  };
}

/** A countdown like "9 min 58 s" or "2 h 5 min"; "overdue by …" once past. */
export function countdown(ms: number): string {
  const s = Math.floor(Math.abs(ms) / 1000);
  const d = Math.floor(s / 86400);
  const h = Math.floor((s % 86400) / 3600);
  const m = Math.floor((s % 3600) / 60);
  const text = d ? `${d} d ${h} h` : h ? `${h} h ${m} min` : m ? `${m} min ${s % 60} s` : `${s % 60} s`;
  return ms < 0 ? `overdue by ${text}` : text;
}
