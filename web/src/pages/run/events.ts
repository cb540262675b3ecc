// What the run page reads out of a run's events (the types ckp-engine writes: run_created, execution_started/
// resumed, node_started/completed/paused/error, step_started/completed/retrying/timeout/log, approval_requested,
// approval_decision_received, checkpoint_saved, artifact_created, llm_usage, sla_breached, run_completed/failed/
// canceled, …). Pure functions over the list, so the timeline, the per-node report, the Gantt view and the graph
// overlay agree, and a 10,000-event run is read in one pass each.
import type { Schemas } from '../../api/client';
import type { NodeState, Overlay } from '../../components/ProcedureGraph';

export type RunEvent = Schemas['RunEventOut'];

/** The events after which a run never changes again: the stream is closed on them. */
export const TERMINAL_EVENTS = new Set(['run_completed', 'run_failed', 'run_canceled']);

/** Events after which the run row (status, ended_at, outputs, tokens) has changed: the page refetches it. */
export const STATUS_EVENTS = new Set([
  ...TERMINAL_EVENTS,
  'execution_started',
  'execution_resumed',
  'node_paused',
  'approval_requested',
  'approval_decision_received',
  'llm_usage',
  'artifact_created',
]);

export type EventKind = 'error' | 'step' | 'node' | 'run' | 'other';

type Payload = Record<string, unknown>;
export function payload(e: RunEvent): Payload {
  const p = e.payload;
  return p && typeof p === 'object' && !Array.isArray(p) ? (p as Payload) : {};
}
const str = (v: unknown): string => (typeof v === 'string' ? v : v == null ? '' : JSON.stringify(v));

export function isError(e: RunEvent): boolean {
  const t = e.event_type;
  return t === 'run_failed' || t === 'error' || t.endsWith('_error') || t.endsWith('_timeout') || t === 'sla_breached' || t === 'budget_exceeded';
}

export function kindOf(e: RunEvent): EventKind {
  if (isError(e)) return 'error';
  const t = e.event_type;
  if (t.startsWith('step_')) return 'step';
  if (t.startsWith('node_')) return 'node';
  if (t.startsWith('run_') || t.startsWith('execution_')) return 'run';
  return 'other';
}

/** One line saying what happened, for the timeline. */
export function summary(e: RunEvent): string {
  const p = payload(e);
  const where = [p.branch_id ? `branch ${str(p.branch_id)}` : '', p.loop_index !== undefined ? `iteration ${str(p.loop_index)}` : '']
    .filter(Boolean)
    .join(', ');
  const tag = where ? ` [${where}]` : '';
  const node = e.node_id ?? '';
  const step = e.step_id ?? '';
  switch (e.event_type) {
    case 'run_created':
      return 'Run created';
    case 'execution_started':
      return `Run started at ${str(p.entry_node_id)}`;
    case 'execution_resumed':
      return `Run resumed at ${str(p.entry_node_id)}${p.resume_reason ? ` (${str(p.resume_reason)})` : ''}`;
    case 'node_started':
      return `Entered ${node}${p.node_name && p.node_name !== node ? ` — ${str(p.node_name)}` : ''}${tag}`;
    case 'node_completed':
      return `Left ${node}${tag}`;
    case 'node_paused':
      return `${node} waits${p.reason ? ` (${str(p.reason).replace(/_/g, ' ')})` : ''}`;
    case 'node_error':
      return `${node} failed: ${str(p.error)}`;
    case 'step_started':
      return `${step} (${str(p.action)}) started${tag}`;
    case 'step_completed': {
      const ms = p.duration_ms !== undefined ? ` in ${str(p.duration_ms)} ms` : '';
      return `${step} (${str(p.action)}) completed${ms}${p.cached ? ' (cached)' : ''}`;
    }
    case 'step_retrying':
      return `${step} retry #${str(p.attempt)} in ${str(p.delay_ms)} ms: ${str(p.error)}`;
    case 'step_timeout':
      return `${step} timed out after ${str(p.timeout_ms)} ms`;
    case 'step_log':
      return `${str(p.level)} ${str(p.message)}`;
    case 'approval_requested':
      return `Approval requested at ${node}`;
    case 'approval_decision_received':
      return `Decision at ${node}: ${str(p.decision)}${p.decided_by ? ` by ${str(p.decided_by)}` : ''}`;
    case 'checkpoint_saved':
      return `Checkpoint saved${p.reason ? ` (${str(p.reason).replace(/_/g, ' ')})` : ''}`;
    case 'llm_usage':
      return `LLM ${str(p.model)}: ${str(p.prompt_tokens)}+${str(p.completion_tokens)} tokens`;
    case 'sla_breached':
      return `${node} exceeded its SLA (${str(p.elapsed_ms)} ms > ${str(p.limit_ms)} ms)`;
    case 'run_completed':
      return 'Run completed';
    case 'run_failed': {
      const err = p.error && typeof p.error === 'object' ? (p.error as Payload) : {};
      return `Run failed: ${str(err.message ?? p.error)}`;
    }
    case 'run_canceled':
      return `Run canceled${p.reason ? `: ${str(p.reason)}` : ''}`;
    default: {
      const first = Object.entries(p).find(([, v]) => typeof v === 'string' || typeof v === 'number');
      return first ? `${first[0]}: ${str(first[1])}` : e.event_type.replace(/_/g, ' ');
    }
  }
}

export const ms = (ts: string): number => new Date(ts).getTime();

export interface StepRow {
  node_id: string;
  step_id: string;
  action: string;
  status: 'running' | 'completed' | 'failed' | 'retrying';
  started: string | null;
  durationMs: number | null;
  retries: number;
}

export interface NodeReport {
  node_id: string;
  name: string;
  status: NodeState;
  attempts: number;
  started: string | null;
  ended: string | null;
  durationMs: number | null;
  steps: StepRow[];
}

/** Per node (in order of first entry): status, how often it was entered, time spent, and its steps. */
export function nodeReports(events: RunEvent[]): NodeReport[] {
  const nodes = new Map<string, NodeReport>();
  const steps = new Map<string, StepRow>();
  const opened = new Map<string, number>();
  for (const e of events) {
    const p = payload(e);
    const nid = e.node_id;
    if (!nid) continue;
    let n = nodes.get(nid);
    if (!n) {
      n = { node_id: nid, name: str(p.node_name) || nid, status: 'running', attempts: 0, started: null, ended: null, durationMs: null, steps: [] };
      nodes.set(nid, n);
    }
    const t = e.event_type;
    if (t === 'node_started') {
      n.attempts += 1;
      n.status = 'running';
      n.started ??= e.created_at;
      opened.set(nid, ms(e.created_at));
    } else if (t === 'node_completed' || t === 'node_error' || t === 'node_paused') {
      n.status = t === 'node_completed' ? 'completed' : t === 'node_error' ? 'failed' : 'waiting';
      n.ended = e.created_at;
      const since = opened.get(nid);
      if (since !== undefined && t !== 'node_paused') {
        n.durationMs = (n.durationMs ?? 0) + (ms(e.created_at) - since);
        opened.delete(nid);
      }
    } else if (t === 'run_failed' && n.status === 'running') {
      n.status = 'failed';
    }
    const sid = e.step_id;
    if (!sid) continue;
    const key = `${nid}\u0000${sid}`;
    let s = steps.get(key);
    if (!s) {
      s = { node_id: nid, step_id: sid, action: str(p.action), status: 'running', started: null, durationMs: null, retries: 0 };
      steps.set(key, s);
      n.steps.push(s);
    }
    if (p.action && !s.action) s.action = str(p.action);
    if (t === 'step_started') {
      s.started ??= e.created_at;
      if (s.status !== 'retrying') s.status = 'running';
    } else if (t === 'step_completed') {
      s.status = 'completed';
      s.durationMs = typeof p.duration_ms === 'number' ? p.duration_ms : s.started ? ms(e.created_at) - ms(s.started) : null;
    } else if (t === 'step_retrying') {
      s.retries += 1;
      s.status = 'retrying';
    } else if (isError(e)) {
      s.status = 'failed';
      if (s.started) s.durationMs = ms(e.created_at) - ms(s.started);
    }
  }
  return [...nodes.values()];
}

/** The live graph's overlay: node states, visit counts, edges taken (consecutive node entries), the current node. */
export function overlayOf(events: RunEvent[], ended: boolean): Overlay {
  const states: Record<string, NodeState> = {};
  const visits: Record<string, number> = {};
  const edges: Record<string, number> = {};
  // The previous node entered, per parallel branch ('' = the main path): a branch starts from the node that
  // forked it, and the path after the join continues from the parallel node.
  const prev = new Map<string, string>();
  let current: string | null = null;
  for (const e of events) {
    const nid = e.node_id;
    const t = e.event_type;
    if (!nid) continue;
    if (t === 'node_started') {
      const branch = str(payload(e).branch_id);
      const from = prev.get(branch) ?? prev.get('');
      if (from && from !== nid) edges[`${from}->${nid}`] = (edges[`${from}->${nid}`] ?? 0) + 1;
      prev.set(branch, nid);
      if (!branch) for (const k of [...prev.keys()]) if (k) prev.delete(k);
      visits[nid] = (visits[nid] ?? 0) + 1;
      states[nid] = 'running';
      current = nid;
    } else if (t === 'node_completed') states[nid] = 'completed';
    else if (t === 'node_error') states[nid] = 'failed';
    else if (t === 'node_paused') {
      states[nid] = 'waiting';
      current = nid;
    } else if (t === 'run_failed' && states[nid] === 'running') states[nid] = 'failed';
  }
  if (ended) {
    current = null;
    for (const [k, v] of Object.entries(states)) if (v === 'running' || v === 'waiting') states[k] = 'skipped';
  }
  return { states, visits, edges, current };
}

export type SpanKind = 'node' | 'step' | 'wait';
export type SpanStatus = 'running' | 'completed' | 'failed' | 'retried' | 'waiting' | 'canceled';

export interface Span {
  id: string;
  kind: SpanKind;
  label: string;
  node_id: string;
  step_id: string | null;
  attempt: number;
  start: number;
  end: number;
  open: boolean;
  status: SpanStatus;
  /** Events that belong to this span (by id), for the detail panel. */
  eventIds: number[];
}

/**
 * Bars of the Gantt view: each node visit, each step attempt (a retry is a new bar), each wait (approval, timer).
 * Bars still open end at `now` (a live run) or at the last event (an ended run).
 */
export function spansOf(events: RunEvent[], now: number): Span[] {
  const spans: Span[] = [];
  const openNode = new Map<string, Span>();
  const openStep = new Map<string, Span>();
  const openWait = new Map<string, Span>();
  const attempts = new Map<string, number>();
  const visits = new Map<string, number>();
  const push = (s: Span) => {
    spans.push(s);
    return s;
  };
  const close = (s: Span | undefined, at: number, status: SpanStatus, eid: number) => {
    if (!s) return;
    s.end = at;
    s.open = false;
    s.status = status;
    s.eventIds.push(eid);
  };
  for (const e of events) {
    const nid = e.node_id;
    if (!nid) continue;
    const at = ms(e.created_at);
    const t = e.event_type;
    const p = payload(e);
    const scope = `${nid}\u0000${str(p.branch_id)}\u0000${str(p.loop_index)}`;
    if (t === 'node_started') {
      const v = (visits.get(nid) ?? 0) + 1;
      visits.set(nid, v);
      openNode.set(scope, push({ id: `n${e.event_id}`, kind: 'node', label: v > 1 ? `${nid} (visit ${v})` : nid, node_id: nid, step_id: null, attempt: v, start: at, end: at, open: true, status: 'running', eventIds: [e.event_id] }));
      continue;
    }
    if (t === 'node_paused' || t === 'approval_requested') {
      if (!openWait.has(nid)) {
        const reason = str(p.reason) || (t === 'approval_requested' ? 'awaiting approval' : 'waiting');
        openWait.set(nid, push({ id: `w${e.event_id}`, kind: 'wait', label: `${nid}: ${reason.replace(/_/g, ' ')}`, node_id: nid, step_id: null, attempt: 1, start: at, end: at, open: true, status: 'waiting', eventIds: [e.event_id] }));
      } else openWait.get(nid)!.eventIds.push(e.event_id);
      continue;
    }
    if (t === 'approval_decision_received' || (t === 'node_completed' && openWait.has(nid))) {
      const w = openWait.get(nid);
      if (w) {
        close(w, at, 'completed', e.event_id);
        openWait.delete(nid);
      }
      if (t === 'approval_decision_received') continue;
    }
    if (t === 'node_completed' || t === 'node_error') {
      const n = [...openNode.entries()].reverse().find(([k]) => k === scope || k.startsWith(`${nid}\u0000`));
      if (n) {
        close(n[1], at, t === 'node_completed' ? 'completed' : 'failed', e.event_id);
        openNode.delete(n[0]);
      }
      continue;
    }
    const sid = e.step_id;
    if (!sid) continue;
    const key = `${scope}\u0000${sid}`;
    if (t === 'step_started') {
      if (!openStep.has(key)) {
        const a = (attempts.get(key) ?? 0) + 1;
        attempts.set(key, a);
        openStep.set(key, push({ id: `s${e.event_id}`, kind: 'step', label: a > 1 ? `${sid} (attempt ${a})` : sid, node_id: nid, step_id: sid, attempt: a, start: at, end: at, open: true, status: 'running', eventIds: [e.event_id] }));
      } else openStep.get(key)!.eventIds.push(e.event_id);
    } else if (t === 'step_completed') {
      close(openStep.get(key), at, 'completed', e.event_id);
      openStep.delete(key);
    } else if (t === 'step_retrying') {
      close(openStep.get(key), at, 'retried', e.event_id);
      openStep.delete(key);
    } else if (isError(e)) {
      close(openStep.get(key), at, 'failed', e.event_id);
      openStep.delete(key);
    } else openStep.get(key)?.eventIds.push(e.event_id);
  }
  const last = events.length ? ms(events[events.length - 1].created_at) : now;
  const ended = events.some((e) => TERMINAL_EVENTS.has(e.event_type));
  const outcome: SpanStatus = events.some((e) => e.event_type === 'run_failed')
    ? 'failed'
    : events.some((e) => e.event_type === 'run_canceled')
      ? 'canceled'
      : 'completed';
  for (const s of spans)
    if (s.open) {
      s.end = ended ? last : Math.max(now, s.start);
      if (ended) {
        s.open = false;
        s.status = outcome;
      }
    }
  return spans;
}
