// Completion from the CKP syntax: the property names valid where the cursor is (the document, workflow_graph, a
// node by its `type`, a step, an error handler, ...), the values of enums, node ids where a node is referenced, and
// action names (from GET /api/actions). Picking a property writes `"name": ` and the start of its value.
import { pickedCompletion, startCompletion, type Completion, type CompletionContext, type CompletionResult } from '@codemirror/autocomplete';
import { hoverTooltip, type EditorView } from '@codemirror/view';
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

/** What the completion knows of the last text that parsed (the text being typed usually does not). */
interface DocInfo {
  /** Node id → type. */
  nodes: Record<string, string>;
  /** Variable name → where it comes from (an input, or the node that sets it). */
  vars: Record<string, string>;
}

/** Keys whose value names a variable that a node sets. */
const SETS_VARIABLE = new Set(['output_variable', 'variable', 'iterator_variable', 'index_variable', 'collect_variable', 'array']);

function variablesOf(doc: Record<string, unknown>, nodes: Record<string, unknown>): Record<string, string> {
  const vars: Record<string, string> = {};
  const schema = (doc.variables_schema ?? {}) as Record<string, unknown>;
  const nested = typeof schema.required === 'object' || typeof schema.optional === 'object';
  for (const part of nested ? [schema.required, schema.optional] : [schema])
    if (part && typeof part === 'object')
      for (const [name, spec] of Object.entries(part as Record<string, unknown>)) {
        const t = (spec as { type?: unknown } | null)?.type;
        vars[name] = `input${typeof t === 'string' ? ` (${t})` : ''}`;
      }
  const walk = (v: unknown, node: string) => {
    if (Array.isArray(v)) v.forEach((x) => walk(x, node));
    else if (v && typeof v === 'object')
      for (const [k, x] of Object.entries(v as Record<string, unknown>)) {
        if (SETS_VARIABLE.has(k) && typeof x === 'string' && x && !(x in vars)) vars[x] = `set by ${node}`;
        else walk(x, node);
      }
  };
  for (const [id, n] of Object.entries(nodes)) {
    walk(n, id);
    // An llm_action's outputs and a subflow's output_mapping are keyed by the variable they set.
    for (const key of ['outputs', 'output_mapping']) {
      const m = (n as Record<string, unknown> | null)?.[key];
      if ((n as { type?: unknown })?.type !== 'terminate' && m && typeof m === 'object' && !Array.isArray(m))
        for (const name of Object.keys(m)) if (!(name in vars)) vars[name] = `set by ${id}`;
    }
  }
  return vars;
}

const parsed: { text: string; info: DocInfo } = { text: '', info: { nodes: {}, vars: {} } };
function infoOf(text: string): DocInfo {
  if (text === parsed.text) return parsed.info;
  try {
    const doc = JSON.parse(text) as Record<string, unknown>;
    const list = ((doc?.workflow_graph as Record<string, unknown> | undefined)?.nodes ?? {}) as Record<string, unknown>;
    const nodes: Record<string, string> = {};
    if (list && typeof list === 'object')
      for (const [id, n] of Object.entries(list)) {
        const t = (n as { type?: unknown } | null)?.type;
        nodes[id] = typeof t === 'string' ? t : 'sequence';
      }
    parsed.text = text;
    parsed.info = { nodes, vars: doc && typeof doc === 'object' ? variablesOf(doc, list) : {} };
  } catch {
    /* keep the last document that parsed */
  }
  return parsed.info;
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

/** Applies a variable in a template: the name, and `}}` unless it follows already. */
function applyTemplateVar(name: string) {
  return (view: EditorView, completion: Completion, from: number, to: number) => {
    const after = view.state.doc.sliceString(to, Math.min(view.state.doc.length, to + 40));
    const rest = /^[\w.]*/.exec(after)?.[0] ?? '';
    const closed = after.slice(rest.length).trimStart().startsWith('}}');
    const insert = closed ? name : `${name}}}`;
    view.dispatch({
      changes: { from, to: to + rest.length, insert },
      selection: { anchor: from + insert.length },
      annotations: pickedCompletion.of(completion),
      userEvent: 'input.complete',
    });
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
    const info = infoOf(text);
    const nodes = info.nodes;
    const typeOf = nodeTypeLookup(ctx, nodes);
    const options: Completion[] = [];

    // Inside a string, after `{{`: the variables a template can name.
    const template = ctx.quoted && ctx.where !== 'key' ? /\{\{\s*([\w.]*)$/.exec(ctx.prefix) : null;
    if (template) {
      for (const [name, from] of Object.entries(info.vars))
        options.push({ label: name, type: 'variable', detail: from, apply: applyTemplateVar(name) });
      return options.length ? { from: context.pos - template[1].length, options, validFor: /^[\w.]*$/ } : null;
    }

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

/** What a property is, shown when the pointer rests on its name: its description, type or values. */
export function ckpHover() {
  return hoverTooltip((view, pos) => {
    const text = view.state.doc.toString();
    const ctx = cursorContext(text, pos);
    if (!ctx || ctx.where !== 'key' || !ctx.quoted) return null;
    const end = text.indexOf('"', pos);
    if (end < 0) return null;
    const name = text.slice(ctx.from, end);
    const typeOf = nodeTypeLookup(ctx, infoOf(text).nodes);
    const f = fieldAt([...ctx.path, name], typeOf);
    if (!f) return null;
    return {
      pos: ctx.from,
      end,
      above: true,
      create: () => {
        const dom = document.createElement('div');
        dom.className = 'cm-ckp-doc';
        const head = document.createElement('strong');
        head.textContent = name;
        const what = f.values ? `one of ${f.values.join(', ')}` : f.ref ? `a ${f.ref} id` : f.type;
        dom.append(head, ` (${what}): ${f.doc}`);
        return { dom };
      },
    };
  });
}
