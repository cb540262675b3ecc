// The per-node overlay of a run, live: its events (loaded, then streamed), its final variables once it has ended,
// and the document it executed (for the nodes' inputs): given, or read from the run's procedure version (a test
// run's hidden snapshot version).
import { useQuery } from '@tanstack/react-query';
import { useMemo } from 'react';
import { raw, type Schemas } from '../../api/client';
import { versionPath } from '../../pages/catalog/shared';
import { runKey, useRunEvents, type RunEvents } from '../../pages/run/useRunEvents';
import { overlayFromEvents, type NodeOverlay } from './overlay';
import type { Run } from './api';

/** The run's row, refetched by useRunEvents when a status event comes in (same query key as the run page). */
export function useRun(runId: string | null) {
  return useQuery({
    queryKey: runKey(runId ?? ''),
    queryFn: () => raw<Run>(`/api/runs/${encodeURIComponent(runId!)}`),
    enabled: runId !== null,
  });
}

/** What the overlay is computed from, for callers that already follow the run (one stream per run). */
export function useOverlayOf(runId: string | null, live: RunEvents, run: Run | undefined, doc?: unknown): Map<string, NodeOverlay> {
  const version = useQuery({
    queryKey: ['procedure', run?.procedure_id, run?.procedure_version],
    queryFn: () => raw<Schemas['ProcedureDetail']>(`/api/procedures/${versionPath(run!.procedure_id, run!.procedure_version)}`),
    enabled: doc === undefined && !!run,
    retry: false,
    staleTime: Infinity,
  });
  const executed = doc ?? version.data?.ckp_json;
  return useMemo(
    () => (runId === null ? new Map() : overlayFromEvents(live.events, { doc: executed, finalVars: run?.output_vars })),
    [runId, live.events, executed, run?.output_vars],
  );
}

/**
 * Each node's status, input, output and error in run `runId` (an empty map for null), kept live while the run goes
 * on. `doc`, when given, is the document the run executed (else it is read from the run's version).
 */
export function useRunOverlay(runId: string | null, doc?: unknown): Map<string, NodeOverlay> {
  const live = useRunEvents(runId);
  const run = useRun(runId);
  return useOverlayOf(runId, live, run.data, doc);
}
