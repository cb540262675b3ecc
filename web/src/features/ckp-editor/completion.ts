// Completion from the CKP syntax: the property names valid where the cursor is (the document, workflow_graph, a
// node by its `type`, a step, an error handler, ...), the values of enums, node ids where a node is referenced, and
// action names (from GET /api/actions). Picking a property writes `"name": ` and the start of its value.
import { pickedCompletion, startCompletion, type Completion, type CompletionContext, type CompletionResult } from '@codemirror/autocomplete';
import type { EditorView } from '@codemirror/view';
import { cursorContext, type CursorContext } from './context';
import { fieldAt, type Field } from './schema';

export interface ActionName {
  name: string;
  /** The channel it belongs to (`internal`, an agent channel, an MCP server). */
  channel: string;
}

/** `GET /api/actions` flattened: internal actions, each agent channel's capabilities, MCP tools. */
export function actionNames(body: unknown): ActionName[] {
  const out: ActionName[] = [];
  const seen = new Set<string>();
  const add = (name: unknown, channel: string) => {
    if (typeof name === 'string' && !seen.has(name)) {
      seen.add(name);
      out.push({ name, channel });
    }
  };
  if (body && typeof body === 'object')
    for (const [channel, v] of Object.entries(body as Record<string, unknown>)) {
      if (Array.isArray(v)) for (const name of v) add(name, channel);
      else if (channel === 'mcp_servers' && v && typeof v === 'object')
        for (const [server, s] of Object.entries(v as Record<string, unknown>)) {
          const tools = (s as { tools?: unknown })?.tools;
          if (tools && typeof tools === 'object') for (const action of Object.keys(tools)) add(action, `mcp ${server}`);
        }
    }
  return out;
}

/** The nodes of the last text that parsed (the text being typed usually does not): id → type. */
const parsed = { text: '', nodes: {} as Record<string, string> };
function nodesOf(text: string): Record<string, string> {
  if (text === parsed.text) return parsed.nodes;
  try {
    const doc = JSON.parse(text) as { workflow_graph?: { nodes?: Record<string, { type?: unknown }> } };
    const nodes: Record<string, string> = {};
    const list = doc?.workflow_graph?.nodes;
    if (list && typeof list === 'object')
      for (const [id, n] of Object.entries(list)) nodes[id] = typeof n?.type === 'string' ? n.type : 'sequence';
    parsed.text = text;
    parsed.nodes = nodes;
  } catch {
    /* keep the last document that parsed */
  }
  return parsed.nodes;
}

function nodeTypeLookup(ctx: CursorContext, nodes: Record<string, string>) {
  return (id: string): string | undefined => {
    // The node the cursor is in: its `type`, when written before the cursor, is the freshest.
    if (ctx.path[0] === 'workflow_graph' && ctx.path[1] === 'nodes' && ctx.path[2] === id) {
      const t = ctx.frames[3]?.scalars.type;
      if (t) return t;
    }
    return nodes[id];
  };
}

const valueStart = (f: Field): { text: string; back: number } => {
  switch (f.type) {
    case 'string':
      return { text: '""', back: 1 };
    case 'object':
      return { text: '{}', back: 1 };
    case 'array':
      return { text: '[]', back: 1 };
    default:
      return { text: '', back: 0 };
  }
};

/** Applies a property name: the name, and when no colon follows, `": ` and the start of the value. */
function applyKey(name: string, field: Field, quoted: boolean) {
  return (view: EditorView, completion: Completion, from: number, to: number) => {
    const doc = view.state.doc;
    const after = doc.sliceString(to, Math.min(doc.length, to + 200));
    let end = to;
    let hasColon = false;
    if (quoted) {
      const close = /^[^"\\\n]*"/.exec(after);
      if (close) {
        end = to + close[0].length;
        hasColon = /^\s*:/.test(after.slice(close[0].length));
        if (hasColon) end -= 1; // keep the closing quote, rename only
      }
    }
    let insert: string;
    let cursor: number;
    if (hasColon) {
      insert = name;
      cursor = from + insert.length;
    } else {
      const v = valueStart(field);
      insert = `${quoted ? '' : '"'}${name}": ${v.text}`;
      cursor = from + insert.length - v.back;
    }
    view.dispatch({ changes: { from, to: end, insert }, selection: { anchor: cursor }, annotations: pickedCompletion.of(completion), userEvent: 'input.complete' });
    if (!hasColon && (field.values || field.ref)) startCompletion(view);
  };
}

/** Applies a string value: the text between the quotes (adding the closing quote when missing), cursor after it. */
function applyString(value: string, quoted: boolean) {
  return (view: EditorView, completion: Completion, from: number, to: number) => {
    const doc = view.state.doc;
    const after = doc.sliceString(to, Math.min(doc.length, to + 200));
    const body = JSON.stringify(value).slice(1, -1);
    let end = to;
    let insert: string;
    let cursor: number;
    if (quoted) {
      const close = /^[^"\\\n]*"/.exec(after);
      // The rest of the string is replaced, its closing quote kept (or added), and the cursor goes past it.
      if (close) end = to + close[0].length - 1;
      insert = close ? body : `${body}"`;
      cursor = from + body.length + 1;
    } else {
      end = to + (/^[\w.-]*/.exec(after)?.[0].length ?? 0);
      insert = `"${body}"`;
      cursor = from + insert.length;
    }
    view.dispatch({ changes: { from, to: end, insert }, selection: { anchor: cursor }, annotations: pickedCompletion.of(completion), userEvent: 'input.complete' });
  };
}

export interface CkpCompletionOptions {
  /** The actions known to the server (read when completing, so it can arrive later). */
  actions: () => ActionName[];
}

export function ckpCompletion(opts: CkpCompletionOptions) {
  return (context: CompletionContext): CompletionResult | null => {
    const text = context.state.doc.toString();
    const ctx = cursorContext(text, context.pos);
    if (!ctx) return null;
    // Typing opens the list inside quotes or on a word; Ctrl-Space anywhere a name or value goes.
    if (!context.explicit && !ctx.quoted && ctx.prefix === '') return null;
    if (!ctx.quoted && /^[-\d]/.test(ctx.prefix)) return null;
    const nodes = nodesOf(text);
    const typeOf = nodeTypeLookup(ctx, nodes);
    const options: Completion[] = [];

    if (ctx.where === 'key') {
      const container = fieldAt(ctx.path, typeOf);
      if (!container?.fields) return null;
      const written = new Set(ctx.frames[ctx.frames.length - 1]?.keys ?? []);
      const inNode = ctx.path.length === 3 && ctx.path[0] === 'workflow_graph' && ctx.path[1] === 'nodes';
      for (const [name, f] of Object.entries(container.fields)) {
        if (written.has(name)) continue;
        options.push({
          label: name,
          type: 'property',
          detail: f.values ? f.values.slice(0, 3).join(' | ') + (f.values.length > 3 ? ' …' : '') : f.ref ? `${f.ref} id` : f.type,
          info: f.doc,
          // In a node, `type` first: the rest depends on it.
          boost: inNode && name === 'type' ? 10 : 0,
          apply: applyKey(name, f, ctx.quoted),
        });
      }
    } else {
      const path = ctx.where === 'value' ? [...ctx.path, ctx.key ?? ''] : [...ctx.path, 0];
      const f = fieldAt(path, typeOf);
      if (!f) return null;
      if (f.values)
        for (const v of f.values) options.push({ label: v, type: 'enum', info: f.doc, apply: applyString(v, ctx.quoted) });
      if (f.ref === 'node') {
        const here = ctx.path[0] === 'workflow_graph' && ctx.path[1] === 'nodes' ? ctx.path[2] : undefined;
        for (const [id, type] of Object.entries(nodes))
          options.push({ label: id, type: 'variable', detail: type, boost: id === here ? -5 : 0, apply: applyString(id, ctx.quoted) });
      }
      if (f.ref === 'action') {
        const agent = ctx.path[0] === 'workflow_graph' && ctx.path[1] === 'nodes' ? ctx.frames[3]?.scalars.agent : undefined;
        for (const a of opts.actions())
          options.push({
            label: a.name,
            type: 'function',
            detail: a.channel,
            boost: a.channel === 'internal' || a.channel === agent ? 1 : 0,
            apply: applyString(a.name, ctx.quoted),
          });
      }
      if (f.type === 'boolean' && !ctx.quoted) for (const v of ['true', 'false']) options.push({ label: v, type: 'keyword' });
    }
    if (!options.length) return null;
    return { from: ctx.from, options, validFor: ctx.quoted ? /^[^"\\\n]*$/ : /^[\w.-]*$/ };
  };
}
