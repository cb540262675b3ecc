// What a run did at each node, read from its events (node_started/completed/paused/error, step_completed,
// step_mock_applied, step_test_override_applied, run_failed): the node's status, its error, its input (the node's
// own settings from the document the run executed: each step's parameters for a sequence node, since the events do
// not carry the variables) and its output (per step: the test override or the mocked result applied, else the
// final value of the step's output_variable once the run has ended).
import type { RunEvent } from '../../pages/run/events';
import { payload } from '../../pages/run/events';

export interface NodeOverlay {
  status: 'running' | 'completed' | 'failed' | 'waiting';
  input?: unknown;
  output?: unknown;
  error?: string;
}

/** Keys every node has: not part of what the node is given to work on. */
const COMMON = new Set(['type', 'agent', 'description', 'inputs', 'next_node', 'is_checkpoint', 'sla', 'telemetry', 'idempotency_key', 'dispatch_mode', 'workflow_dispatch_mode']);
/** Step keys that configure the step rather than being sent to its action (ckp-core's STEP_META_KEYS). */
const STEP_META = new Set(['step_id', 'action', 'timeout_ms', 'wait_ms', 'wait_after_ms', 'retry_on_failure', 'retry_config', 'output_variable', 'screenshot_on_complete', 'idempotency_key', 'workflow_dispatch_mode', 'retry_policy']);

type Obj = Record<string, unknown>;
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});

/** The input of a node: per step its action and parameters (sequence), else the node's own fields. */
export function nodeInput(node: unknown): unknown {
  const n = obj(node);
  if (Array.isArray(n.steps)) {
    const out: Obj = {};
    n.steps.forEach((s, i) => {
      const step = obj(s);
      const params = Object.fromEntries(Object.entries(step).filter(([k]) => !STEP_META.has(k)));
      out[typeof step.step_id === 'string' ? step.step_id : `#${i}`] = { action: step.action, ...params };
    });
    return out;
  }
  const own = Object.fromEntries(Object.entries(n).filter(([k]) => !COMMON.has(k)));
  return Object.keys(own).length ? own : undefined;
}

const str = (v: unknown) => (typeof v === 'string' ? v : v == null ? '' : JSON.stringify(v));

/** `doc`: the document the run executed (for inputs); `finalVars`: the run's final variables (for outputs). */
export function overlayFromEvents(events: RunEvent[], opts: { doc?: unknown; finalVars?: unknown } = {}): Map<string, NodeOverlay> {
  const nodes = obj(obj(obj(opts.doc).workflow_graph).nodes);
  const vars = obj(opts.finalVars);
  const map = new Map<string, NodeOverlay>();
  const outputs = new Map<string, Obj>();
  const output = (nid: string) => {
    let o = outputs.get(nid);
    if (!o) outputs.set(nid, (o = {}));
    return o;
  };
  /** Per node: the steps that completed and the variable each wrote. */
  const completed = new Map<string, Record<string, string>>();
  let runError: string | undefined;
  for (const e of events) {
    const p = payload(e);
    const nid = e.node_id;
    const t = e.event_type;
    if (t === 'run_failed') runError = str(obj(p.error).message ?? p.error) || 'the run failed';
    if (!nid) continue;
    const cur = map.get(nid);
    if (t === 'node_started') {
      map.set(nid, { status: 'running' });
      outputs.delete(nid);
      completed.delete(nid);
    } else if (t === 'node_completed') map.set(nid, { ...cur, status: 'completed' });
    else if (t === 'node_paused') map.set(nid, { ...cur, status: 'waiting' });
    else if (t === 'node_error') map.set(nid, { ...cur, status: 'failed', error: str(p.error) });
    else if (e.step_id && t === 'step_test_override_applied') output(nid)[e.step_id] = p.override;
    else if (e.step_id && t === 'step_mock_applied') output(nid)[e.step_id] = { mocked: true, action: p.action, binding: p.binding };
    else if (e.step_id && t === 'step_completed' && typeof p.output_variable === 'string') {
      let c = completed.get(nid);
      if (!c) completed.set(nid, (c = {}));
      c[e.step_id] = p.output_variable;
    }
  }
  for (const [nid, o] of map) {
    if (o.status === 'running' && runError) {
      o.status = 'failed';
      o.error ??= runError;
    }
    const input = nodeInput(nodes[nid]);
    if (input !== undefined) o.input = input;
    // A step's result is in its output variable: its final value, once the run has ended and told it.
    const out = outputs.get(nid) ?? {};
    for (const [step, v] of Object.entries(completed.get(nid) ?? {})) if (!(step in out) && v in vars) out[step] = vars[v];
    if (Object.keys(out).length) o.output = out;
  }
  return map;
}
