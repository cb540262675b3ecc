// Comparing two versions of a CKP document, as pure functions: the nodes added, removed and changed (with the
// fields that changed), the document-level changes, and a line diff of the documents pretty-printed with sorted
// keys (so keys that only moved do not count), laid out side by side.

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
type Obj = Record<string, unknown>;

const isObj = (v: unknown): v is Obj => !!v && typeof v === 'object' && !Array.isArray(v);

/** Deep equality of JSON values; object key order does not matter, array order does. */
export function jsonEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (Array.isArray(a) || Array.isArray(b)) {
    if (!Array.isArray(a) || !Array.isArray(b) || a.length !== b.length) return false;
    return a.every((x, i) => jsonEqual(x, b[i]));
  }
  if (isObj(a) && isObj(b)) {
    const ka = Object.keys(a);
    if (ka.length !== Object.keys(b).length) return false;
    return ka.every((k) => k in b && jsonEqual(a[k], b[k]));
  }
  return false;
}

/** JSON with every object's keys sorted, pretty-printed. */
export function stableStringify(value: unknown, indent = 2): string {
  const sort = (v: unknown): unknown => {
    if (Array.isArray(v)) return v.map(sort);
    if (isObj(v)) {
      const out: Obj = {};
      for (const k of Object.keys(v).sort()) out[k] = sort(v[k]);
      return out;
    }
    return v;
  };
  return JSON.stringify(sort(value), null, indent) ?? 'null';
}

export interface ChangedNode {
  id: string;
  /** The node's fields whose value differs (present in one version only, or different), sorted. */
  fields: string[];
}

export interface NodeDiff {
  added: string[];
  removed: string[];
  changed: ChangedNode[];
  unchanged: string[];
}

function nodesOf(doc: unknown): Obj {
  const g = isObj(doc) ? doc.workflow_graph : undefined;
  const nodes = isObj(g) ? g.nodes : undefined;
  return isObj(nodes) ? nodes : {};
}

/** The fields that differ between two values of a node (a node that is not an object counts as one field, ""). */
export function changedFields(a: unknown, b: unknown): string[] {
  if (!isObj(a) || !isObj(b)) return jsonEqual(a, b) ? [] : [''];
  const keys = new Set([...Object.keys(a), ...Object.keys(b)]);
  return [...keys].filter((k) => !(k in a && k in b && jsonEqual(a[k], b[k]))).sort();
}

/** The nodes of `workflow_graph.nodes` added, removed and changed from `before` to `after`, each list sorted. */
export function diffNodes(before: unknown, after: unknown): NodeDiff {
  const a = nodesOf(before);
  const b = nodesOf(after);
  const out: NodeDiff = { added: [], removed: [], changed: [], unchanged: [] };
  for (const id of Object.keys(b)) {
    if (!(id in a)) out.added.push(id);
    else {
      const fields = changedFields(a[id], b[id]);
      if (fields.length) out.changed.push({ id, fields });
      else out.unchanged.push(id);
    }
  }
  for (const id of Object.keys(a)) if (!(id in b)) out.removed.push(id);
  out.added.sort();
  out.removed.sort();
  out.unchanged.sort();
  out.changed.sort((x, y) => (x.id < y.id ? -1 : x.id > y.id ? 1 : 0));
  return out;
}

/**
 * What changed outside the nodes: top-level properties ("variables_schema", "version", ...) and the properties of
 * `workflow_graph` other than `nodes` ("workflow_graph.start_node"), sorted.
 */
export function documentChanges(before: unknown, after: unknown): string[] {
  const a = isObj(before) ? before : {};
  const b = isObj(after) ? after : {};
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (k === 'workflow_graph' && isObj(a[k]) && isObj(b[k])) {
      const ga = a[k] as Obj;
      const gb = b[k] as Obj;
      for (const g of changedFields(ga, gb)) if (g !== 'nodes') out.push(`workflow_graph.${g}`);
    } else if (!(k in a && k in b && jsonEqual(a[k], b[k]))) out.push(k);
  }
  return out.sort();
}

export type LineOp = { op: 'same' | 'del' | 'add'; a?: number; b?: number };

/** How many edits the line diff works out exactly before giving up on the middle (it then replaces it whole). */
const MAX_EDITS = 2000;

/**
 * The shortest edit script from lines `a` to lines `b` (Myers' O(ND) algorithm, after the common head and tail are
 * taken off): which lines are the same, deleted from a, added in b; indexes are 0-based.
 */
export function lineDiff(a: readonly string[], b: readonly string[]): LineOp[] {
  let head = 0;
  while (head < a.length && head < b.length && a[head] === b[head]) head++;
  let tail = 0;
  while (tail < a.length - head && tail < b.length - head && a[a.length - 1 - tail] === b[b.length - 1 - tail]) tail++;
  const ops: LineOp[] = [];
  for (let i = 0; i < head; i++) ops.push({ op: 'same', a: i, b: i });
  ops.push(...middle(a.slice(head, a.length - tail), b.slice(head, b.length - tail), head, head));
  for (let i = tail; i > 0; i--) ops.push({ op: 'same', a: a.length - i, b: b.length - i });
  return ops;
}

function middle(a: readonly string[], b: readonly string[], offA: number, offB: number): LineOp[] {
  const n = a.length;
  const m = b.length;
  const whole = (): LineOp[] => [
    ...a.map((_, i) => ({ op: 'del' as const, a: offA + i })),
    ...b.map((_, j) => ({ op: 'add' as const, b: offB + j })),
  ];
  if (n === 0 || m === 0) return whole();
  const max = Math.min(n + m, MAX_EDITS);
  const size = 2 * max + 1;
  const v = new Int32Array(size);
  const trace: Int32Array[] = [];
  let found = -1;
  for (let d = 0; d <= max && found < 0; d++) {
    trace.push(v.slice());
    for (let k = -d; k <= d; k += 2) {
      const down = k === -d || (k !== d && v[max + k - 1] < v[max + k + 1]);
      let x = down ? v[max + k + 1] : v[max + k - 1] + 1;
      let y = x - k;
      while (x < n && y < m && a[x] === b[y]) {
        x++;
        y++;
      }
      v[max + k] = x;
      if (x >= n && y >= m) {
        found = d;
        break;
      }
    }
  }
  if (found < 0) return whole();
  // Walk back through the saved frontiers.
  const out: LineOp[] = [];
  let x = n;
  let y = m;
  for (let d = found; d > 0; d--) {
    const pv = trace[d];
    const k = x - y;
    const down = k === -d || (k !== d && pv[max + k - 1] < pv[max + k + 1]);
    const pk = down ? k + 1 : k - 1;
    const px = pv[max + pk];
    const py = px - pk;
    while (x > px && y > py) {
      x--;
      y--;
      out.push({ op: 'same', a: offA + x, b: offB + y });
    }
    if (down) {
      y--;
      out.push({ op: 'add', b: offB + y });
    } else {
      x--;
      out.push({ op: 'del', a: offA + x });
    }
  }
  while (x > 0 && y > 0) {
    x--;
    y--;
    out.push({ op: 'same', a: offA + x, b: offB + y });
  }
  return out.reverse();
}

export interface Row {
  kind: 'same' | 'changed' | 'removed' | 'added';
  /** 1-based line numbers and text on each side (absent on the side that has no line). */
  left?: { n: number; text: string };
  right?: { n: number; text: string };
  /** The change (hunk) this row belongs to, 0-based; -1 for unchanged rows. */
  change: number;
}

/**
 * The side-by-side rows of a line diff: unchanged lines face each other; in a run of changes, deleted lines face
 * added ones as "changed" rows, the surplus on either side is "removed" or "added". Each run is one change.
 */
export function sideBySide(a: readonly string[], b: readonly string[], ops: LineOp[] = lineDiff(a, b)): { rows: Row[]; changes: number } {
  const rows: Row[] = [];
  let changes = 0;
  let i = 0;
  while (i < ops.length) {
    const op = ops[i];
    if (op.op === 'same') {
      rows.push({ kind: 'same', left: { n: op.a! + 1, text: a[op.a!] }, right: { n: op.b! + 1, text: b[op.b!] }, change: -1 });
      i++;
      continue;
    }
    const dels: number[] = [];
    const adds: number[] = [];
    while (i < ops.length && ops[i].op !== 'same') {
      if (ops[i].op === 'del') dels.push(ops[i].a!);
      else adds.push(ops[i].b!);
      i++;
    }
    const change = changes++;
    for (let j = 0; j < Math.max(dels.length, adds.length); j++) {
      const l = dels[j];
      const r = adds[j];
      rows.push({
        kind: l !== undefined && r !== undefined ? 'changed' : l !== undefined ? 'removed' : 'added',
        left: l !== undefined ? { n: l + 1, text: a[l] } : undefined,
        right: r !== undefined ? { n: r + 1, text: b[r] } : undefined,
        change,
      });
    }
  }
  return { rows, changes };
}

/** The ids whose edge set differs: edges `source->target` only in `before` (removed) or only in `after` (added). */
export function diffEdges(before: { source: string; target: string }[], after: { source: string; target: string }[]): { added: Set<string>; removed: Set<string> } {
  const key = (e: { source: string; target: string }) => `${e.source}->${e.target}`;
  const a = new Set(before.map(key));
  const b = new Set(after.map(key));
  return { added: new Set([...b].filter((k) => !a.has(k))), removed: new Set([...a].filter((k) => !b.has(k))) };
}
