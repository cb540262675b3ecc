// Form controls of the inspector: text with `{{` completion of known variables, a node picker for edges, key/value
// rows, and a JSON field that keeps what is typed until it parses.
import { useEffect, useId, useRef, useState, type ReactNode } from 'react';
import { isObject, type Json, type JsonObject } from './model';

/** The `{{name` being typed just before the caret, or null. */
function openPlaceholder(text: string, caret: number): { from: number; typed: string } | null {
  const before = text.slice(0, caret);
  const open = before.lastIndexOf('{{');
  if (open < 0 || before.lastIndexOf('}}') > open) return null;
  const typed = before.slice(open + 2);
  if (!/^\s*[\w.]*$/.test(typed)) return null;
  return { from: open + 2, typed: typed.trim() };
}

/** A text input (or textarea) whose `{{` opens a list of the variables known at this point; Enter or Tab (or a
 * click) completes `{{name}}`, Escape closes the list. */
export function TemplateField({
  label,
  value,
  onChange,
  variables,
  multiline,
  placeholder,
  help,
  rows,
}: {
  label: string;
  value: string;
  onChange: (v: string) => void;
  variables: string[];
  multiline?: boolean;
  placeholder?: string;
  help?: ReactNode;
  rows?: number;
}) {
  const ref = useRef<HTMLInputElement & HTMLTextAreaElement>(null);
  const [open, setOpen] = useState<{ from: number; typed: string } | null>(null);
  const [active, setActive] = useState(0);
  const listId = useId();
  const matches = open ? variables.filter((v) => v.toLowerCase().startsWith(open.typed.toLowerCase())).slice(0, 12) : [];
  const show = open !== null && matches.length > 0;

  const refresh = (text: string, caret: number | null) => {
    const o = caret === null ? null : openPlaceholder(text, caret);
    setOpen(o);
    setActive(0);
  };
  const complete = (name: string) => {
    const el = ref.current;
    if (!el || !open) return;
    const caret = el.selectionStart ?? value.length;
    const after = value.slice(caret);
    const closing = after.startsWith('}}') ? '' : '}}';
    const next = value.slice(0, open.from) + name + closing + after;
    onChange(next);
    setOpen(null);
    const pos = open.from + name.length + 2;
    requestAnimationFrame(() => {
      el.focus();
      el.setSelectionRange(pos, pos);
    });
  };
  const common = {
    ref,
    value,
    placeholder,
    role: 'combobox',
    'aria-autocomplete': 'list' as const,
    'aria-expanded': show,
    'aria-controls': show ? listId : undefined,
    'aria-activedescendant': show ? `${listId}-${active}` : undefined,
    onChange: (e: React.ChangeEvent<HTMLInputElement & HTMLTextAreaElement>) => {
      onChange(e.target.value);
      refresh(e.target.value, e.target.selectionStart);
    },
    onKeyDown: (e: React.KeyboardEvent) => {
      if (!show) return;
      if (e.key === 'ArrowDown') setActive((a) => (a + 1) % matches.length);
      else if (e.key === 'ArrowUp') setActive((a) => (a - 1 + matches.length) % matches.length);
      else if (e.key === 'Enter' || e.key === 'Tab') complete(matches[active]);
      else if (e.key === 'Escape') setOpen(null);
      else return;
      e.preventDefault();
      e.stopPropagation();
    },
    onBlur: () => window.setTimeout(() => setOpen(null), 150),
  };
  return (
    <label className="bfield">
      {label}
      <span className="template-wrap">
        {multiline ? <textarea {...common} rows={rows ?? 3} /> : <input {...common} />}
        {show && (
          <ul className="completions" id={listId} role="listbox" aria-label="Variables">
            {matches.map((m, i) => (
              <li
                key={m}
                id={`${listId}-${i}`}
                role="option"
                aria-selected={i === active}
                onMouseDown={(e) => {
                  e.preventDefault();
                  complete(m);
                }}
              >
                {m}
              </li>
            ))}
          </ul>
        )}
      </span>
      {help && <span className="field-help">{help}</span>}
    </label>
  );
}

export function TextField({ label, value, onChange, placeholder, help, mono }: { label: string; value: string; onChange: (v: string) => void; placeholder?: string; help?: ReactNode; mono?: boolean }) {
  return (
    <label className="bfield">
      {label}
      <input value={value} placeholder={placeholder} className={mono ? 'mono' : undefined} onChange={(e) => onChange(e.target.value)} />
      {help && <span className="field-help">{help}</span>}
    </label>
  );
}

/** A number field: empty removes the value. */
export function NumberField({ label, value, onChange, help }: { label: string; value: Json | undefined; onChange: (v: number | undefined) => void; help?: ReactNode }) {
  const [text, setText] = useState(value === undefined || value === null ? '' : String(value));
  useEffect(() => {
    if (Number(text) !== value && !(text === '' && value === undefined)) setText(value === undefined || value === null ? '' : String(value));
  }, [value]);
  return (
    <label className="bfield">
      {label}
      <input
        inputMode="decimal"
        value={text}
        onChange={(e) => {
          setText(e.target.value);
          const t = e.target.value.trim();
          if (t === '') onChange(undefined);
          else if (!Number.isNaN(Number(t))) onChange(Number(t));
        }}
        aria-invalid={text.trim() !== '' && Number.isNaN(Number(text))}
      />
      {help && <span className="field-help">{help}</span>}
    </label>
  );
}

export function SelectField({ label, value, onChange, options, none }: { label: string; value: string; onChange: (v: string) => void; options: readonly string[]; none?: string }) {
  const list = value && !options.includes(value) ? [value, ...options] : options;
  return (
    <label className="bfield">
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {none !== undefined && <option value="">{none}</option>}
        {list.map((o) => (
          <option key={o} value={o}>
            {o}
          </option>
        ))}
      </select>
    </label>
  );
}

export function CheckField({ label, value, onChange }: { label: string; value: boolean; onChange: (v: boolean) => void }) {
  return (
    <label className="inline bfield-check">
      <input type="checkbox" checked={value} onChange={(e) => onChange(e.target.checked)} />
      {label}
    </label>
  );
}

/** Picks the node an edge goes to ("" = none). A target that names no node is kept and marked. */
export function NodeSelect({ label, value, onChange, ids, self }: { label: string; value: string; onChange: (v: string) => void; ids: string[]; self?: string }) {
  const missing = value !== '' && !ids.includes(value);
  return (
    <label className="bfield">
      {label}
      <select value={value} onChange={(e) => onChange(e.target.value)} aria-invalid={missing}>
        <option value="">— none —</option>
        {missing && <option value={value}>{value} (missing)</option>}
        {ids.map((id) => (
          <option key={id} value={id}>
            {id}
            {id === self ? ' (this node)' : ''}
          </option>
        ))}
      </select>
    </label>
  );
}

/** Any JSON value as text: written back when it parses, the parse error shown otherwise. */
export function JsonField({ label, value, onChange, rows, help }: { label: string; value: Json | undefined; onChange: (v: Json | undefined) => void; rows?: number; help?: ReactNode }) {
  const shown = value === undefined ? '' : JSON.stringify(value, null, 2);
  const [text, setText] = useState(shown);
  const [error, setError] = useState<string | null>(null);
  const last = useRef(shown);
  useEffect(() => {
    // A change from elsewhere (undo, the other view) replaces the text; our own writes do not.
    if (shown !== last.current) {
      last.current = shown;
      setText(shown);
      setError(null);
    }
  }, [shown]);
  return (
    <label className="bfield">
      {label}
      <textarea
        rows={rows ?? 4}
        value={text}
        spellCheck={false}
        aria-invalid={error !== null}
        onChange={(e) => {
          setText(e.target.value);
          if (e.target.value.trim() === '') {
            setError(null);
            last.current = '';
            onChange(undefined);
            return;
          }
          try {
            const v = JSON.parse(e.target.value) as Json;
            setError(null);
            last.current = JSON.stringify(v, null, 2);
            onChange(v);
          } catch (err) {
            setError((err as Error).message);
          }
        }}
      />
      {error ? <span className="field-error">Not JSON yet: {error}</span> : help && <span className="field-help">{help}</span>}
    </label>
  );
}

/** An object's entries as rows of key and value; a value is text, or JSON when the row says so. */
export function KeyValueField({
  label,
  value,
  onChange,
  variables,
  keyLabel = 'Key',
  addLabel = 'Add entry',
}: {
  label: string;
  value: JsonObject;
  onChange: (v: JsonObject) => void;
  variables: string[];
  keyLabel?: string;
  addLabel?: string;
}) {
  const entries = Object.entries(value);
  const rename = (i: number, k: string) => {
    const out: JsonObject = {};
    entries.forEach(([ek, ev], j) => (out[j === i ? k : ek] = ev));
    onChange(out);
  };
  const set = (k: string, v: Json) => onChange({ ...value, [k]: v });
  const remove = (k: string) => {
    const out = { ...value };
    delete out[k];
    onChange(out);
  };
  return (
    <fieldset className="bkv">
      <legend>{label}</legend>
      {entries.length === 0 && <div className="muted small">None.</div>}
      {entries.map(([k, v], i) => (
        <KvRow key={i} k={k} v={v} keyLabel={keyLabel} variables={variables} onKey={(nk) => rename(i, nk)} onValue={(nv) => set(k, nv)} onRemove={() => remove(k)} />
      ))}
      <button
        type="button"
        className="small"
        onClick={() => {
          let n = entries.length + 1;
          while (`key_${n}` in value) n++;
          set(`key_${n}`, '');
        }}
      >
        {addLabel}
      </button>
    </fieldset>
  );
}

function KvRow({ k, v, keyLabel, variables, onKey, onValue, onRemove }: { k: string; v: Json; keyLabel: string; variables: string[]; onKey: (k: string) => void; onValue: (v: Json) => void; onRemove: () => void }) {
  const [asJson, setAsJson] = useState(typeof v !== 'string');
  const [keyText, setKeyText] = useState(k);
  useEffect(() => setKeyText(k), [k]);
  return (
    <div className="bkv-row">
      <label className="bfield">
        {keyLabel}
        <input
          className="mono"
          value={keyText}
          onChange={(e) => setKeyText(e.target.value)}
          onBlur={() => {
            if (keyText.trim() && keyText !== k) onKey(keyText.trim());
            else setKeyText(k);
          }}
        />
      </label>
      {asJson ? (
        <JsonField label={`Value of ${k} (JSON)`} value={v} rows={2} onChange={(nv) => onValue(nv === undefined ? null : nv)} />
      ) : (
        <TemplateField label={`Value of ${k}`} value={typeof v === 'string' ? v : JSON.stringify(v)} variables={variables} onChange={onValue} />
      )}
      <div className="bkv-actions">
        <label className="inline small">
          <input
            type="checkbox"
            checked={asJson}
            onChange={(e) => {
              setAsJson(e.target.checked);
              if (!e.target.checked && typeof v !== 'string') onValue(JSON.stringify(v));
            }}
          />
          JSON
        </label>
        <button type="button" className="ghost small" aria-label={`Remove ${k}`} onClick={onRemove}>
          Remove
        </button>
      </div>
    </div>
  );
}

export function asObject(v: unknown): JsonObject {
  return isObject(v) ? v : {};
}
