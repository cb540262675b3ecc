// The start-run form, generated from a procedure's variables_schema: one component for starting a run, retrying
// with modified inputs and anything else that asks for a procedure's inputs. Checks values as the server does and
// shows the server's own 422 messages next to their fields.
import { useMemo, useState, type FormEvent } from 'react';
import { check, fields, fromText, toText, type Field } from '../lib/variables';

export interface RunInputFormProps {
  schema: unknown;
  /** Values to start from (a run's inputs when retrying); defaults fill the rest. */
  initial?: Record<string, unknown> | null;
  submitLabel: string;
  busy?: boolean;
  /** Per-variable messages from the server (`detail.errors` of a 422). */
  serverErrors?: Record<string, string>;
  onSubmit: (vars: Record<string, unknown>) => void;
  onCancel?: () => void;
}

export function RunInputForm({ schema, initial, submitLabel, busy, serverErrors, onSubmit, onCancel }: RunInputFormProps) {
  const list = useMemo(() => fields(schema), [schema]);
  const [text, setText] = useState<Record<string, string | boolean>>(() => {
    const t: Record<string, string | boolean> = {};
    for (const f of list) t[f.name] = toText(f, initial && f.name in initial ? initial[f.name] : f.default);
    return t;
  });
  const [extra, setExtra] = useState(() => {
    const known = new Set(list.map((f) => f.name));
    const rest = Object.fromEntries(Object.entries(initial ?? {}).filter(([k]) => !known.has(k)));
    return Object.keys(rest).length ? JSON.stringify(rest, null, 2) : '';
  });
  const [touched, setTouched] = useState(false);
  const [shown, setShown] = useState<Record<string, boolean>>({});

  const parsed = list.map((f) => {
    const r = fromText(f, text[f.name]);
    const error = 'error' in r ? r.error : check(f, r.value);
    return { f, value: 'value' in r ? r.value : undefined, error };
  });
  let extraVars: Record<string, unknown> = {};
  let extraError: string | null = null;
  if (extra.trim()) {
    try {
      const v = JSON.parse(extra);
      if (!v || typeof v !== 'object' || Array.isArray(v)) extraError = 'Must be a JSON object';
      else extraVars = v;
    } catch (e) {
      extraError = `Not valid JSON: ${(e as Error).message}`;
    }
  }
  const invalid = parsed.some((p) => p.error) || !!extraError;

  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTouched(true);
    if (invalid) return;
    const vars: Record<string, unknown> = { ...extraVars };
    for (const p of parsed) if (p.value !== undefined) vars[p.f.name] = p.value;
    onSubmit(vars);
  };

  return (
    <form className="form-grid" onSubmit={submit} noValidate aria-label="Run inputs">
      {list.length === 0 && <p className="muted">This procedure declares no input variables.</p>}
      {parsed.map(({ f, error }) => {
        const message = (touched && error) || serverErrors?.[f.name] || null;
        const id = `var-${f.name}`;
        return (
          <div key={f.name} style={{ display: 'flex', flexDirection: 'column', gap: 4 }}>
            <FieldInput
              f={f}
              id={id}
              value={text[f.name]}
              shown={!!shown[f.name]}
              invalid={!!message}
              onShow={() => setShown((s) => ({ ...s, [f.name]: !s[f.name] }))}
              onChange={(v) => setText((t) => ({ ...t, [f.name]: v }))}
            />
            <span className="field-help" id={`${id}-help`}>
              {[f.description, f.type, f.required ? 'required' : 'optional', hint(f)].filter(Boolean).join(' · ')}
              {f.default !== undefined && text[f.name] !== toText(f, f.default) && (
                <>
                  {' · '}
                  <button type="button" className="ghost small" onClick={() => setText((t) => ({ ...t, [f.name]: toText(f, f.default) }))}>
                    Restore default
                  </button>
                </>
              )}
            </span>
            {message && (
              <span className="field-error" id={`${id}-error`} role="alert">
                {message}
              </span>
            )}
          </div>
        );
      })}
      <details>
        <summary>Other variables (JSON)</summary>
        <label style={{ width: '100%', marginTop: 6 }}>
          <span className="field-help">Variables the schema does not declare, as a JSON object</span>
          <textarea aria-label="Other variables (JSON)" rows={4} value={extra} onChange={(e) => setExtra(e.target.value)} />
        </label>
        {extraError && touched && <span className="field-error" role="alert">{extraError}</span>}
      </details>
      <div style={{ display: 'flex', gap: 8, justifyContent: 'flex-end' }}>
        {onCancel && (
          <button type="button" onClick={onCancel}>
            Cancel
          </button>
        )}
        <button type="submit" className="primary" disabled={busy}>
          {busy ? 'Working…' : submitLabel}
        </button>
      </div>
    </form>
  );
}

function hint(f: Field): string {
  const parts: string[] = [];
  if (f.regex) parts.push(`pattern ${f.regex}`);
  if (f.min !== undefined) parts.push(`min ${f.min}`);
  if (f.max !== undefined) parts.push(`max ${f.max}`);
  return parts.join(', ');
}

function FieldInput({
  f,
  id,
  value,
  shown,
  invalid,
  onShow,
  onChange,
}: {
  f: Field;
  id: string;
  value: string | boolean;
  shown: boolean;
  invalid: boolean;
  onShow: () => void;
  onChange: (v: string | boolean) => void;
}) {
  const common = {
    id,
    'aria-invalid': invalid || undefined,
    'aria-required': f.required || undefined,
    'aria-describedby': `${id}-help${invalid ? ` ${id}-error` : ''}`,
  };
  const label = `${f.name}${f.required ? ' *' : ''}`;
  if (f.type === 'boolean')
    return (
      <label className="inline" htmlFor={id}>
        <input {...common} type="checkbox" checked={value === true} onChange={(e) => onChange(e.target.checked)} />
        {label}
      </label>
    );
  let input;
  if (f.allowed)
    input = (
      <select {...common} value={String(value)} onChange={(e) => onChange(e.target.value)}>
        <option value="">—</option>
        {f.allowed.map((a) => (
          <option key={String(a)} value={String(a)}>
            {String(a)}
          </option>
        ))}
      </select>
    );
  else if (f.type === 'array' || f.type === 'object')
    input = <textarea {...common} rows={4} value={String(value)} onChange={(e) => onChange(e.target.value)} placeholder={f.type === 'array' ? '[ ]' : '{ }'} />;
  else
    input = (
      <span style={{ display: 'flex', gap: 6 }}>
        <input
          {...common}
          style={{ flex: 1 }}
          type={f.sensitive && !shown ? 'password' : f.type === 'number' || f.type === 'integer' ? 'number' : 'text'}
          autoComplete={f.sensitive ? 'off' : undefined}
          value={String(value)}
          min={f.min}
          max={f.max}
          step={f.type === 'integer' ? 1 : 'any'}
          onChange={(e) => onChange(e.target.value)}
        />
        {f.sensitive && (
          <button type="button" className="small" aria-label={shown ? `Hide ${f.name}` : `Show ${f.name}`} onClick={onShow}>
            {shown ? 'Hide' : 'Show'}
          </button>
        )}
      </span>
    );
  return (
    <>
      <label htmlFor={id}>{label}</label>
      {input}
    </>
  );
}
