// The builder's model of a CKP document (pure TypeScript, no React). The document itself is the model: every edit
// is a pure function from a document to a new document that copies only the objects on the path it changes, so a
// document opened and saved without edits is the same JSON value, and fields nobody knows are kept where they are.
// The graph the canvas draws (nodes and typed edges) is derived from the document by `graphOf`.
//
// Edges, by the field that holds them (every field of the CKP syntax that names a node):
//   next          node.next_node (a loop's exit, a parallel's join; ignored by terminate/logic/human_approval)
//   rule          logic.rules[i].next_node (labelled with the condition)
//   default       logic.default_next_node
//   body          loop.body_node
//   branch        parallel.branches[i].start_node (labelled with the branch_id)
//   choice        llm_action.branches[i] (orchestration mode: the model picks one)
//   approve, reject, timeout   human_approval.on_approve / on_reject / on_timeout
//   fallback      sequence.error_handlers[i].fallback_node
//   escalation    node.sla.escalation_handler
// and outside the nodes: workflow_graph.start_node and global_config.on_failure (shown as marks on their node).

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

/** The eleven node types, as written in `type` (the order of ckp-core's NODE_TYPES). */
export const NODE_TYPES = [
  'sequence',
  'logic',
  'loop',
  'parallel',
  'processing',
  'verification',
  'llm_action',
  'terminate',
  'subflow',
  'human_approval',
  'transform',
] as const;
export type NodeType = (typeof NODE_TYPES)[number];

/** The palette's groups. */
export const PALETTE: { group: string; types: NodeType[] }[] = [
  { group: 'Deterministic', types: ['sequence', 'processing', 'transform', 'verification', 'subflow'] },
  { group: 'Intelligent', types: ['llm_action', 'human_approval'] },
  { group: 'Control', types: ['logic', 'loop', 'parallel', 'terminate'] },
];

export const TYPE_LABELS: Record<NodeType, string> = {
  sequence: 'Sequence',
  logic: 'Logic',
  loop: 'Loop',
  parallel: 'Parallel',
  processing: 'Processing',
  verification: 'Verification',
  llm_action: 'LLM action',
  terminate: 'Terminate',
  subflow: 'Subflow',
  human_approval: 'Human approval',
  transform: 'Transform',
};

export type EdgeKind =
  | 'next'
  | 'rule'
  | 'default'
  | 'body'
  | 'branch'
  | 'choice'
  | 'approve'
  | 'reject'
  | 'timeout'
  | 'fallback'
  | 'escalation';

export const EDGE_KINDS: EdgeKind[] = ['next', 'rule', 'default', 'body', 'branch', 'choice', 'approve', 'reject', 'timeout', 'fallback', 'escalation'];

/** A path inside a node object: keys and array indexes. */
export type Slot = (string | number)[];

export interface GraphEdge {
  /** `source|slot/joined`: unique per field. */
  id: string;
  kind: EdgeKind;
  source: string;
  target: string;
  /** Where the target is written in the source node. */
  slot: Slot;
  /** Text drawn on the edge. */
  label: string;
  /** The target names no node. */
  dangling: boolean;
}

export interface GraphNode {
  id: string;
  type: string;
  node: JsonObject;
  isStart: boolean;
  isFailureHandler: boolean;
}

export interface Graph {
  nodes: GraphNode[];
  edges: GraphEdge[];
}

// ---- small JSON helpers ----

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function obj(v: unknown): JsonObject {
  return isObject(v) ? v : {};
}

function str(v: unknown): string | null {
  return typeof v === 'string' && v !== '' ? v : null;
}

/** The JSON values `a` and `b` are equal (key order ignored). */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a)) return Array.isArray(b) && a.length === b.length && a.every((x, i) => jsonEqual(x, b[i]));
  if (isObject(a)) {
    if (!isObject(b)) return false;
    const ka = Object.keys(a);
    return ka.length === Object.keys(b).length && ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** The value at `path` under `root`, or undefined. */
export function getIn(root: Json | undefined, path: Slot): Json | undefined {
  let cur: Json | undefined = root;
  for (const k of path) {
    if (cur === undefined || cur === null || typeof cur !== 'object') return undefined;
    cur = Array.isArray(cur) ? cur[k as number] : (cur as JsonObject)[k as string];
  }
  return cur;
}

/** `root` with the value at `path` replaced (undefined removes an object key; arrays keep their length), copying
 * only the containers on the path. Missing containers are created as objects (or arrays for numeric keys). */
export function setIn(root: Json | undefined, path: Slot, value: Json | undefined): Json {
  if (path.length === 0) return value === undefined ? null : value;
  const [k, ...rest] = path;
  if (typeof k === 'number') {
    const arr = Array.isArray(root) ? root.slice() : [];
    const child = rest.length === 0 ? value : setIn(arr[k], rest, value);
    if (child === undefined) arr.splice(k, 1);
    else arr[k] = child;
    return arr;
  }
  const o: JsonObject = isObject(root) ? { ...root } : {};
  const child = rest.length === 0 ? value : setIn(o[k], rest, value);
  if (child === undefined) delete o[k];
  else o[k] = child;
  return o;
}

/** `root` without the array element or object key at `path` (no change when absent). */
export function removeIn(root: Json, path: Slot): Json {
  const parentPath = path.slice(0, -1);
  const last = path[path.length - 1];
  const parent = getIn(root, parentPath);
  if (Array.isArray(parent) && typeof last === 'number') {
    if (last >= parent.length) return root;
    const arr = parent.slice();
    arr.splice(last, 1);
    return setIn(root, parentPath, arr);
  }
  if (isObject(parent) && typeof last === 'string' && last in parent) {
    const o = { ...parent };
    delete o[last];
    return setIn(root, parentPath, o);
  }
  return root;
}

// ---- reading the document ----

export function nodesOf(doc: JsonObject): JsonObject {
  return obj(obj(doc.workflow_graph).nodes);
}

export function nodeIds(doc: JsonObject): string[] {
  return Object.keys(nodesOf(doc));
}

export function startNode(doc: JsonObject): string | null {
  return str(obj(doc.workflow_graph).start_node);
}

export function failureHandler(doc: JsonObject): string | null {
  return str(obj(doc.global_config).on_failure);
}

export function nodeType(node: JsonObject): string {
  return typeof node.type === 'string' ? node.type : 'sequence';
}

/** Edge kinds whose field holds a list (connecting adds an entry). */
export const LIST_KINDS: EdgeKind[] = ['rule', 'branch', 'choice', 'fallback'];

/** The edge kinds a node of this type can start (its output handles), in drawing order. */
export function outputKinds(type: string, node?: JsonObject): EdgeKind[] {
  const esc: EdgeKind[] = ['escalation'];
  switch (type) {
    case 'terminate':
      return [];
    case 'logic':
      return ['rule', 'default', ...esc];
    case 'loop':
      return ['body', 'next', ...esc];
    case 'parallel':
      return ['branch', 'next', ...esc];
    case 'human_approval':
      return ['approve', 'reject', 'timeout', ...esc];
    case 'llm_action':
      return node?.orchestration_mode === true ? ['next', 'choice', ...esc] : ['next', ...esc];
    case 'sequence':
      return ['next', 'fallback', ...esc];
    default:
      return ['next', ...esc];
  }
}

/** The handle's short text for an edge kind of a node type. */
export function kindLabel(kind: EdgeKind, type?: string): string {
  if (kind === 'next') return type === 'loop' ? 'exit' : type === 'parallel' ? 'join' : 'next';
  if (kind === 'escalation') return 'sla';
  return kind;
}

/** Every edge of one node, in field order. */
export function edgesOfNode(id: string, node: JsonObject, ids: Set<string>): GraphEdge[] {
  const out: GraphEdge[] = [];
  const type = nodeType(node);
  const add = (kind: EdgeKind, slot: Slot, target: unknown, label: string) => {
    const t = str(target);
    if (t === null) return;
    out.push({ id: `${id}|${slot.join('/')}`, kind, source: id, target: t, slot, label, dangling: !ids.has(t) });
  };
  if (type === 'logic') {
    const rules = Array.isArray(node.rules) ? node.rules : [];
    rules.forEach((r, i) => add('rule', ['rules', i, 'next_node'], obj(r).next_node, String(obj(r).condition ?? '') || `rule ${i + 1}`));
    add('default', ['default_next_node'], node.default_next_node, 'default');
  }
  if (type === 'loop') add('body', ['body_node'], node.body_node, 'body');
  if (type === 'parallel') {
    const branches = Array.isArray(node.branches) ? node.branches : [];
    branches.forEach((b, i) => add('branch', ['branches', i, 'start_node'], obj(b).start_node, `branch ${String(obj(b).branch_id ?? i + 1)}`));
  }
  if (type === 'llm_action' && Array.isArray(node.branches)) {
    node.branches.forEach((b, i) => add('choice', ['branches', i], b, `choice ${typeof b === 'string' ? b : i + 1}`));
  }
  if (type === 'human_approval') {
    add('approve', ['on_approve'], node.on_approve, 'approve');
    add('reject', ['on_reject'], node.on_reject, 'reject');
    add('timeout', ['on_timeout'], node.on_timeout, 'timeout');
  }
  if (type === 'sequence' && Array.isArray(node.error_handlers)) {
    node.error_handlers.forEach((h, i) =>
      add('fallback', ['error_handlers', i, 'fallback_node'], obj(h).fallback_node, `fallback${str(obj(h).error_type) ? ` (${obj(h).error_type})` : ''}`),
    );
  }
  // next_node: written for every type; the engine ignores it on terminate, logic and human_approval, but a document
  // may have it and the builder shows what is there.
  add('next', ['next_node'], node.next_node, type === 'loop' ? 'exit' : type === 'parallel' ? 'join' : '');
  add('escalation', ['sla', 'escalation_handler'], obj(node.sla).escalation_handler, 'sla escalation');
  return out;
}

export function graphOf(doc: JsonObject): Graph {
  const nodes = nodesOf(doc);
  const ids = new Set(Object.keys(nodes));
  const start = startNode(doc);
  const onFailure = failureHandler(doc);
  const out: Graph = { nodes: [], edges: [] };
  for (const [id, raw] of Object.entries(nodes)) {
    const node = obj(raw);
    out.nodes.push({ id, type: nodeType(node), node, isStart: id === start, isFailureHandler: id === onFailure });
    out.edges.push(...edgesOfNode(id, node, ids));
  }
  return out;
}

// ---- edits (pure: document in, document out) ----

function withNodes(doc: JsonObject, nodes: JsonObject): JsonObject {
  return { ...doc, workflow_graph: { ...obj(doc.workflow_graph), nodes } };
}

export function setNode(doc: JsonObject, id: string, node: JsonObject): JsonObject {
  return withNodes(doc, { ...nodesOf(doc), [id]: node });
}

/** A node id not yet used: `base`, else `base_2`, `base_3`, ... */
export function freshId(doc: JsonObject, base: string, taken: Iterable<string> = []): string {
  const used = new Set([...nodeIds(doc), ...taken]);
  const clean = base.replace(/[^A-Za-z0-9_\-.]/g, '_') || 'node';
  if (!used.has(clean)) return clean;
  for (let n = 2; ; n++) if (!used.has(`${clean}_${n}`)) return `${clean}_${n}`;
}

/** The minimal fields of a new node of `type` (what the compiler asks for, with placeholders to edit). */
export function newNodeBody(type: NodeType, id: string): JsonObject {
  switch (type) {
    case 'sequence':
      return { type, description: 'New sequence', steps: [{ step_id: `${id}_log`, action: 'log', level: 'INFO', message: 'Step of ' + id }] };
    case 'logic':
      return { type, description: 'New decision', rules: [] };
    case 'loop':
      return { type, description: 'New loop', iterator: 'items', iterator_variable: 'item' };
    case 'parallel':
      return { type, description: 'New parallel', branches: [], wait_strategy: 'all' };
    case 'processing':
      return { type, description: 'New processing', operations: [{ action: 'log', level: 'INFO', message: 'Processing ' + id }] };
    case 'verification':
      return { type, description: 'New verification', checks: [{ id: 'check_1', condition: 'true', on_fail: 'fail_workflow', message: 'Check failed' }] };
    case 'llm_action':
      return { type, description: 'New LLM call', prompt: 'Describe the task for the model', outputs: {} };
    case 'terminate':
      return { type, description: 'End', status: 'success' };
    case 'subflow':
      return { type, description: 'New subflow', procedure_id: '', input_mapping: {}, output_mapping: {} };
    case 'human_approval':
      return { type, description: 'New approval', prompt: 'Approve?', decision_type: 'approve_reject' };
    case 'transform':
      return { type, description: 'New transform', transformations: [] };
  }
}

/** Adds a node of `type` with a fresh id; answers the document and the id. The first node becomes the start. */
export function addNode(doc: JsonObject, type: NodeType, base?: string): { doc: JsonObject; id: string } {
  const id = freshId(doc, base ?? type);
  let next = setNode(doc, id, newNodeBody(type, id));
  if (!startNode(next) || nodeIds(doc).length === 0) next = setStart(next, id);
  return { doc: next, id };
}

export function setStart(doc: JsonObject, id: string): JsonObject {
  return { ...doc, workflow_graph: { ...obj(doc.workflow_graph), start_node: id } };
}

/** Sets or clears `global_config.on_failure`. */
export function setFailureHandler(doc: JsonObject, id: string | null): JsonObject {
  const gc = { ...obj(doc.global_config) };
  if (id) gc.on_failure = id;
  else delete gc.on_failure;
  return { ...doc, global_config: gc };
}

/** Removes the edge held at `slot` of `source`: single fields are deleted, a logic rule, a parallel branch and an
 * orchestration choice are removed with their entry, an error handler keeps everything but its fallback_node. */
export function disconnect(doc: JsonObject, source: string, slot: Slot): JsonObject {
  const node = nodesOf(doc)[source];
  if (!isObject(node)) return doc;
  let next: Json;
  const [head] = slot;
  const type = nodeType(node);
  if ((head === 'rules' && type === 'logic') || (head === 'branches' && type === 'parallel')) next = removeIn(node, slot.slice(0, 2));
  else if (head === 'branches' && type === 'llm_action') next = removeIn(node, slot.slice(0, 2));
  else if (head === 'sla') {
    next = removeIn(node, slot);
    const sla = obj(getIn(next, ['sla']));
    if (Object.keys(sla).length === 0 || (Object.keys(sla).length === 1 && sla.on_breach === 'escalate')) next = removeIn(next, ['sla']);
  } else next = removeIn(node, slot);
  return setNode(doc, source, next as JsonObject);
}

/** Makes an edge of `kind` from `source` to `target`; answers the document and the slot written. A single-valued
 * kind replaces its target; a list kind adds an entry (a rule with an empty condition to fill in, a branch, a
 * choice, an error handler with recovery_strategy fallback_node, or the first handler that has no fallback). */
export function connect(doc: JsonObject, source: string, kind: EdgeKind, target: string): { doc: JsonObject; slot: Slot } {
  const raw = nodesOf(doc)[source];
  if (!isObject(raw)) return { doc, slot: [] };
  let node: JsonObject = raw;
  let slot: Slot;
  const list = (key: string) => (Array.isArray(node[key]) ? (node[key] as Json[]) : []);
  switch (kind) {
    case 'next':
      slot = ['next_node'];
      break;
    case 'default':
      slot = ['default_next_node'];
      break;
    case 'body':
      slot = ['body_node'];
      break;
    case 'approve':
      slot = ['on_approve'];
      break;
    case 'reject':
      slot = ['on_reject'];
      break;
    case 'timeout':
      slot = ['on_timeout'];
      break;
    case 'escalation': {
      slot = ['sla', 'escalation_handler'];
      const sla = obj(node.sla);
      if (!('on_breach' in sla)) node = setIn(node, ['sla', 'on_breach'], 'escalate') as JsonObject;
      break;
    }
    case 'rule': {
      const i = list('rules').length;
      node = setIn(node, ['rules', i], { condition: '', next_node: target }) as JsonObject;
      return { doc: setNode(doc, source, node), slot: ['rules', i, 'next_node'] };
    }
    case 'branch': {
      const branches = list('branches');
      const taken = new Set(branches.map((b) => String(obj(b).branch_id ?? '')));
      let n = branches.length + 1;
      while (taken.has(`branch_${n}`)) n++;
      node = setIn(node, ['branches', branches.length], { branch_id: `branch_${n}`, start_node: target }) as JsonObject;
      return { doc: setNode(doc, source, node), slot: ['branches', branches.length, 'start_node'] };
    }
    case 'choice': {
      const i = list('branches').length;
      node = setIn(node, ['branches', i], target) as JsonObject;
      return { doc: setNode(doc, source, node), slot: ['branches', i] };
    }
    case 'fallback': {
      const handlers = list('error_handlers');
      const free = handlers.findIndex((h) => isObject(h) && !str(h.fallback_node));
      if (free >= 0) {
        node = setIn(node, ['error_handlers', free, 'fallback_node'], target) as JsonObject;
        return { doc: setNode(doc, source, node), slot: ['error_handlers', free, 'fallback_node'] };
      }
      node = setIn(node, ['error_handlers', handlers.length], { action: 'fail', recovery_strategy: 'fallback_node', fallback_node: target }) as JsonObject;
      return { doc: setNode(doc, source, node), slot: ['error_handlers', handlers.length, 'fallback_node'] };
    }
  }
  node = setIn(node, slot, target) as JsonObject;
  return { doc: setNode(doc, source, node), slot };
}

/** Points an existing edge at another node (the same field). */
export function retarget(doc: JsonObject, source: string, slot: Slot, target: string): JsonObject {
  const node = nodesOf(doc)[source];
  if (!isObject(node)) return doc;
  return setNode(doc, source, setIn(node, slot, target) as JsonObject);
}

/** Removes a node and every edge to it (start_node and global_config.on_failure naming it are cleared). */
export function deleteNode(doc: JsonObject, id: string): JsonObject {
  const nodes = { ...nodesOf(doc) };
  if (!(id in nodes)) return doc;
  delete nodes[id];
  let next = withNodes(doc, nodes);
  const ids = new Set(Object.keys(nodes));
  for (const [src, n] of Object.entries(nodes)) {
    // Highest index first, so removing a list entry does not shift the slots still to visit.
    const edges = edgesOfNode(src, obj(n), ids).filter((e) => e.target === id).reverse();
    for (const e of edges) next = disconnect(next, src, e.slot);
  }
  if (startNode(next) === id) {
    const wg = { ...obj(next.workflow_graph) };
    delete wg.start_node;
    next = { ...next, workflow_graph: wg };
  }
  if (failureHandler(next) === id) next = setFailureHandler(next, null);
  return next;
}

/** Renames a node, keeping its place in the node map and updating every reference to it. Throws when the new id is
 * empty or taken. */
export function renameNode(doc: JsonObject, from: string, to: string): JsonObject {
  if (from === to) return doc;
  if (!to.trim()) throw new Error('A node id cannot be empty');
  const nodes = nodesOf(doc);
  if (to in nodes) throw new Error(`A node named ${to} already exists`);
  if (!(from in nodes)) return doc;
  const ids = new Set(Object.keys(nodes));
  const renamed: JsonObject = {};
  for (const [k, v] of Object.entries(nodes)) {
    let node = obj(v);
    for (const e of edgesOfNode(k, node, ids)) if (e.target === from) node = setIn(node, e.slot, to) as JsonObject;
    renamed[k === from ? to : k] = node;
  }
  let next = withNodes(doc, renamed);
  if (startNode(next) === from) next = setStart(next, to);
  if (failureHandler(next) === from) next = setFailureHandler(next, to);
  return next;
}

/** Replaces a node's fields (the edit of a form); `patch` values of undefined delete the key. */
export function updateNode(doc: JsonObject, id: string, patch: Record<string, Json | undefined>): JsonObject {
  const node = nodesOf(doc)[id];
  if (!isObject(node)) return doc;
  const out: JsonObject = { ...node };
  for (const [k, v] of Object.entries(patch)) {
    if (v === undefined) delete out[k];
    else out[k] = v;
  }
  return setNode(doc, id, out);
}

/** Sets (or with undefined removes) the value at `path` inside node `id`. */
export function updateNodeAt(doc: JsonObject, id: string, path: Slot, value: Json | undefined): JsonObject {
  const node = nodesOf(doc)[id];
  if (!isObject(node)) return doc;
  if (value === undefined) return setNode(doc, id, removeIn(node, path) as JsonObject);
  return setNode(doc, id, setIn(node, path, value) as JsonObject);
}

/** Replaces step `index` of a sequence node. */
export function updateStep(doc: JsonObject, id: string, index: number, step: JsonObject): JsonObject {
  return updateNodeAt(doc, id, ['steps', index], step);
}

export function addStep(doc: JsonObject, id: string, step: JsonObject = { action: 'log', level: 'INFO', message: '' }): JsonObject {
  const node = obj(nodesOf(doc)[id]);
  const steps = Array.isArray(node.steps) ? node.steps : [];
  const taken = new Set(steps.map((s) => String(obj(s).step_id ?? '')));
  let n = steps.length + 1;
  while (taken.has(`step_${n}`)) n++;
  return updateNodeAt(doc, id, ['steps', steps.length], { step_id: `step_${n}`, ...step });
}

export function removeStep(doc: JsonObject, id: string, index: number): JsonObject {
  return updateNodeAt(doc, id, ['steps', index], undefined);
}

export function moveStep(doc: JsonObject, id: string, index: number, by: -1 | 1): JsonObject {
  const node = obj(nodesOf(doc)[id]);
  const steps = Array.isArray(node.steps) ? node.steps.slice() : [];
  const j = index + by;
  if (j < 0 || j >= steps.length) return doc;
  [steps[index], steps[j]] = [steps[j], steps[index]];
  return updateNode(doc, id, { steps });
}

/** Copies nodes (for paste): fresh ids, edges between the copied nodes point at the copies, edges out of the set
 * are kept as they are. Answers the document and the new ids by old id. */
export function pasteNodes(doc: JsonObject, copied: Record<string, JsonObject>): { doc: JsonObject; ids: Record<string, string> } {
  const ids: Record<string, string> = {};
  const taken: string[] = [];
  for (const old of Object.keys(copied)) {
    const id = freshId(doc, old.replace(/_copy(_\d+)?$/, '') + '_copy', taken);
    ids[old] = id;
    taken.push(id);
  }
  const inSet = new Set(Object.keys(copied));
  let next = doc;
  for (const [old, node] of Object.entries(copied)) {
    let n = node;
    for (const e of edgesOfNode(old, node, inSet)) if (inSet.has(e.target)) n = setIn(n, e.slot, ids[e.target]) as JsonObject;
    next = setNode(next, ids[old], n);
  }
  if (!startNode(next)) {
    const first = Object.values(ids)[0];
    if (first) next = setStart(next, first);
  }
  return { doc: next, ids };
}

// ---- variables and templates ----

/** The nodes from which `id` can be reached (its ancestors), `id` excluded unless it is on a cycle. */
export function ancestors(doc: JsonObject, id: string): Set<string> {
  const preds = new Map<string, string[]>();
  for (const e of graphOf(doc).edges) preds.set(e.target, [...(preds.get(e.target) ?? []), e.source]);
  const seen = new Set<string>();
  const todo = [...(preds.get(id) ?? [])];
  while (todo.length) {
    const n = todo.pop()!;
    if (seen.has(n)) continue;
    seen.add(n);
    todo.push(...(preds.get(n) ?? []));
  }
  return seen;
}

/** The variables one node writes: step and operation output_variable/variable, llm outputs, loop variables,
 * transform outputs, subflow output_mapping, an approval's decision. */
export function writtenBy(node: JsonObject): string[] {
  const names: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === 'string' && /^[A-Za-z_][\w.]*$/.test(v)) names.push(v);
  };
  const ops = (list: unknown) => {
    if (Array.isArray(list))
      for (const o of list) {
        add(obj(o).output_variable);
        add(obj(o).variable);
      }
  };
  const type = nodeType(node);
  ops(node.steps);
  ops(node.operations);
  if (type === 'llm_action') for (const k of Object.keys(obj(node.outputs))) add(k);
  if (type === 'loop') {
    add(node.iterator_variable);
    add(node.index_variable);
    add(node.collect_variable);
    add('loop_index');
  }
  if (Array.isArray(node.transformations)) for (const t of node.transformations) add(obj(t).output_variable);
  if (type === 'subflow') for (const k of Object.keys(obj(node.output_mapping))) add(k);
  if (type === 'human_approval') add('approval_decision');
  return names;
}

/** Variable names a template may use: the declared variables, `last_error`, and what nodes write: at node `at`,
 * what its ancestors and the node itself write (set earlier on some path); without `at`, every node's. */
export function knownVariables(doc: JsonObject, at?: string | null): string[] {
  const names = new Set<string>(variablesOf(doc).map((v) => v.name));
  const nodes = nodesOf(doc);
  const from = at ? [...ancestors(doc, at), at] : Object.keys(nodes);
  for (const id of from) for (const n of writtenBy(obj(nodes[id]))) names.add(n);
  names.add('last_error');
  return [...names].sort();
}

// ---- procedure level ----

export interface VariableDecl {
  name: string;
  required: boolean;
  spec: JsonObject;
}

/** The declared variables in the nested form `{required: {...}, optional: {...}}` (the flat form reads as optional
 * unless `required: true`). */
export function variablesOf(doc: JsonObject): VariableDecl[] {
  const vs = obj(doc.variables_schema);
  if (isObject(vs.required) || isObject(vs.optional)) {
    return [
      ...Object.entries(obj(vs.required)).map(([name, spec]) => ({ name, required: true, spec: obj(spec) })),
      ...Object.entries(obj(vs.optional)).map(([name, spec]) => ({ name, required: false, spec: obj(spec) })),
    ];
  }
  return Object.entries(vs).map(([name, spec]) => ({ name, required: obj(spec).required === true, spec: obj(spec) }));
}

/** Writes the declared variables back in the nested form (other keys of variables_schema are kept). */
export function setVariables(doc: JsonObject, vars: VariableDecl[]): JsonObject {
  const vs = obj(doc.variables_schema);
  const flat = !(isObject(vs.required) || isObject(vs.optional)) && Object.keys(vs).length > 0;
  if (flat) {
    const out: JsonObject = {};
    for (const v of vars) {
      const spec = { ...v.spec };
      if (v.required) spec.required = true;
      else delete spec.required;
      out[v.name] = spec;
    }
    return { ...doc, variables_schema: out };
  }
  const required: JsonObject = {};
  const optional: JsonObject = {};
  for (const v of vars) (v.required ? required : optional)[v.name] = v.spec;
  return { ...doc, variables_schema: { ...vs, required, optional } };
}

// ---- versions ----

/** The next semver of `v` (patch, minor or major); a version that is not x.y.z gets `.1` appended for a patch. */
export function bumpVersion(v: string, part: 'patch' | 'minor' | 'major'): string {
  const m = /^(\d+)\.(\d+)\.(\d+)(.*)$/.exec(v.trim());
  if (!m) return part === 'patch' ? `${v}.1` : part === 'minor' ? `${v}.1.0` : '2.0.0';
  const [maj, min, pat] = [Number(m[1]), Number(m[2]), Number(m[3])];
  if (part === 'major') return `${maj + 1}.0.0`;
  if (part === 'minor') return `${maj}.${min + 1}.0`;
  return `${maj}.${min}.${pat + 1}`;
}

/** The first version bumped by `part` from `base` that is not in `taken`. */
export function nextFreeVersion(base: string, part: 'patch' | 'minor' | 'major', taken: string[]): string {
  let v = bumpVersion(base, part);
  for (let i = 0; i < 1000 && taken.includes(v); i++) v = bumpVersion(v, 'patch');
  return v;
}

// ---- diagnostics ----

/** The node a diagnostic's JSON pointer belongs to (`/workflow_graph/nodes/<id>/...`), or null. */
export function pointerNode(pointer: string): string | null {
  const m = /^\/workflow_graph\/nodes\/([^/]+)/.exec(pointer);
  return m ? m[1].replace(/~1/g, '/').replace(/~0/g, '~') : null;
}

/** An empty procedure: no node yet (the first node added becomes the start). */
export function emptyProcedure(procedureId = 'new-procedure'): JsonObject {
  return {
    procedure_id: procedureId,
    version: '1.0.0',
    name: 'New procedure',
    description: '',
    variables_schema: { required: {}, optional: {} },
    workflow_graph: { start_node: '', nodes: {} },
  };
}
