// A procedure's `variables_schema`, normalised as ckp's compiler does: the nested form `{required: {...},
// optional: {...}}` or the flat form `{name: {type, required, default, validation}}` become one list of fields.
// `check` applies the checks the server applies at run creation, so the form shows the same messages first.

export interface Field {
  name: string;
  type: 'string' | 'number' | 'integer' | 'boolean' | 'array' | 'object';
  required: boolean;
  default?: unknown;
  description?: string;
  allowed?: unknown[];
  regex?: string;
  min?: number;
  max?: number;
  sensitive: boolean;
}

const SENSITIVE = /password|passwd|token|api[_-]?key|secret|credential|private[_-]?key|access[_-]?key/i;
const TYPES = new Set(['string', 'number', 'integer', 'boolean', 'array', 'object']);

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

export function fields(schema: unknown): Field[] {
  const s = obj(schema);
  const nested = ('required' in s && typeof s.required === 'object') || ('optional' in s && typeof s.optional === 'object');
  const entries: [string, Record<string, unknown>, boolean | undefined][] = [];
  if (nested) {
    for (const [k, v] of Object.entries(obj(s.required))) entries.push([k, obj(v), true]);
    for (const [k, v] of Object.entries(obj(s.optional))) entries.push([k, obj(v), undefined]);
  } else {
    for (const [k, v] of Object.entries(s)) entries.push([k, obj(v), undefined]);
  }
  return entries.map(([name, m, req]) => {
    const v = obj(m.validation);
    const t = String(m.type ?? 'string').toLowerCase();
    const num = (x: unknown) => (typeof x === 'number' ? x : typeof x === 'string' && x.trim() !== '' && !Number.isNaN(Number(x)) ? Number(x) : undefined);
    return {
      name,
      type: (TYPES.has(t) ? t : 'string') as Field['type'],
      required: req ?? m.required === true,
      default: m.default,
      description: typeof m.description === 'string' ? m.description : undefined,
      allowed: Array.isArray(v.allowed_values) ? v.allowed_values : Array.isArray(m.enum) ? (m.enum as unknown[]) : undefined,
      regex: typeof v.regex === 'string' ? v.regex : undefined,
      min: num(v.min),
      max: num(v.max),
      sensitive: m.sensitive === true || m.secret === true || SENSITIVE.test(name),
    };
  });
}

/** The message ckp would answer for this value, or null when it passes. */
export function check(f: Field, value: unknown): string | null {
  const blank = value === undefined || value === null || (typeof value === 'string' && value.trim() === '');
  if (blank) return f.required ? 'This field is required' : null;
  if (f.type === 'number' || f.type === 'integer') {
    const n = typeof value === 'number' ? value : Number(value);
    if (typeof value === 'boolean' || Number.isNaN(n)) return 'Must be a number';
    if (f.type === 'integer' && !Number.isInteger(n)) return 'Must be a whole number';
  }
  if (f.type === 'boolean' && typeof value !== 'boolean') return 'Must be a boolean (true/false)';
  if ((f.type === 'array' || f.type === 'object') && (typeof value !== 'object' || value === null)) return `Must be a valid ${f.type}`;
  if (f.allowed && !f.allowed.map(String).includes(String(value))) return `Must be one of: ${f.allowed.map(String).join(', ')}`;
  if (f.regex && typeof value === 'string') {
    try {
      if (!new RegExp(`^(?:${f.regex})$`).test(value)) return `Does not match required pattern: ${f.regex}`;
    } catch {
      /* a pattern JavaScript cannot read: the server judges */
    }
  }
  const n = typeof value === 'number' ? value : typeof value === 'string' && (f.type === 'number' || f.type === 'integer') ? Number(value) : undefined;
  if (n !== undefined && !Number.isNaN(n)) {
    if (f.min !== undefined && n < f.min) return `Must be at least ${f.min}`;
    if (f.max !== undefined && n > f.max) return `Must be at most ${f.max}`;
  } else if (typeof value === 'string') {
    if (f.min !== undefined && value.length < f.min) return `Must be at least ${f.min} characters`;
    if (f.max !== undefined && value.length > f.max) return `Must be at most ${f.max} characters`;
  }
  return null;
}

/** A value as the form edits it (JSON fields as text). */
export function toText(f: Field, v: unknown): string | boolean {
  if (f.type === 'boolean') return v === true;
  if (v === undefined || v === null) return '';
  if (f.type === 'array' || f.type === 'object') return typeof v === 'string' ? v : JSON.stringify(v, null, 2);
  return String(v);
}

/** The form's text back to a value, or an error message for JSON that does not parse. */
export function fromText(f: Field, t: string | boolean): { value: unknown } | { error: string } {
  if (f.type === 'boolean') return { value: t === true };
  const s = String(t);
  if (s.trim() === '') return { value: undefined };
  if (f.type === 'number' || f.type === 'integer') return { value: Number.isNaN(Number(s)) ? s : Number(s) };
  if (f.type === 'array' || f.type === 'object') {
    try {
      return { value: JSON.parse(s) };
    } catch (e) {
      return { error: `Not valid JSON: ${(e as Error).message}` };
    }
  }
  return { value: s };
}

/** Redacts sensitive values for display (the run page's input variables). */
export function redact(schema: unknown, vars: Record<string, unknown> | null | undefined): Record<string, unknown> {
  const sensitive = new Set(fields(schema).filter((f) => f.sensitive).map((f) => f.name));
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(vars ?? {})) out[k] = sensitive.has(k) || SENSITIVE.test(k) ? '***' : v;
  return out;
}
