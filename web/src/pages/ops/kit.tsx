// Pieces the operations screens (agents, leases, secrets, metrics, users, API keys, audit) share: a server error
// placed at the form field it is about, a ticking clock for countdowns, and the roles list.
import { useEffect, useState, type ReactNode } from 'react';
import { ApiError } from '../../api/client';
import './ops.css';

export const ROLES = ['viewer', 'approver', 'operator', 'manager', 'admin'] as const;

/** A refused form: the message per field it names, and what no field explains. */
export interface FormErrors {
  fields: Record<string, string>;
  general: string | null;
}

export const NO_ERRORS: FormErrors = { fields: {}, general: null };

/**
 * Places a refused request's message at its field. ckp answers invalid input with `{detail: {message, errors}}`
 * (errors keyed by field or listed with one) or with a sentence that starts with the field's name (`base_url: ...`,
 * `name must not be empty`); `codes` maps stable error codes to the field they concern (`weak_password` →
 * `password`). Anything else is a general error of the form.
 */
export function formErrors(e: unknown, fields: string[], codes: Record<string, string> = {}): FormErrors {
  if (!(e instanceof ApiError)) return { fields: {}, general: e instanceof Error ? e.message : String(e) };
  const out: Record<string, string> = {};
  const d = e.detail as { errors?: unknown } | null;
  if (d && typeof d === 'object' && d.errors) {
    const list = Array.isArray(d.errors)
      ? d.errors
      : Object.entries(d.errors as Record<string, unknown>).map(([field, message]) => ({ field, message }));
    for (const item of list as { field?: string; path?: string; loc?: unknown; message?: string; msg?: string }[]) {
      const f = item.field ?? item.path ?? (Array.isArray(item.loc) ? String(item.loc[item.loc.length - 1]) : '');
      const m = item.message ?? item.msg ?? String(item);
      if (f && fields.includes(f)) out[f] = m;
    }
  }
  if (Object.keys(out).length === 0) {
    const byCode = codes[e.code];
    const lead = fields.find((f) => new RegExp(`^${f}(:| )`).test(e.message));
    const field = byCode ?? lead;
    if (field) out[field] = e.message;
  }
  return Object.keys(out).length > 0 ? { fields: out, general: null } : { fields: {}, general: e.message };
}

/** A labelled form field with its help and its error (announced and linked by aria-describedby). */
export function Field({
  id,
  label,
  help,
  error,
  children,
}: {
  id: string;
  label: string;
  help?: ReactNode;
  error?: string;
  children: (describedBy: string | undefined, invalid: boolean) => ReactNode;
}) {
  const ids = [help ? `${id}-help` : '', error ? `${id}-error` : ''].filter(Boolean).join(' ') || undefined;
  return (
    <div className="ops-field">
      <label htmlFor={id}>{label}</label>
      {children(ids, Boolean(error))}
      {help && (
        <span className="field-help" id={`${id}-help`}>
          {help}
        </span>
      )}
      {error && (
        <span className="field-error" id={`${id}-error`} role="alert">
          {error}
        </span>
      )}
    </div>
  );
}

/** The general error of a form, when no field explains it. */
export function FormBanner({ errors }: { errors: FormErrors }) {
  return errors.general ? (
    <div className="banner error ops-form-banner" role="alert">
      {errors.general}
    </div>
  ) : null;
}

/** The current time, updated every `ms` (for countdowns and "seen 5 s ago"). */
export function useNow(ms = 1000): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const t = window.setInterval(() => setNow(Date.now()), ms);
    return () => window.clearInterval(t);
  }, [ms]);
  return now;
}

/** "in 1 min 05 s", or "expired 3 s ago". */
export function countdown(ts: string, now: number): string {
  const ms = new Date(ts).getTime() - now;
  if (Number.isNaN(ms)) return ts;
  const s = Math.round(Math.abs(ms) / 1000);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const sec = s % 60;
  const text = h > 0 ? `${h} h ${m} min` : m > 0 ? `${m} min ${String(sec).padStart(2, '0')} s` : `${sec} s`;
  return ms >= 0 ? `in ${text}` : `expired ${text} ago`;
}

/** Tags typed as "a, b, c". */
export function parseTags(text: string): string[] {
  return text
    .split(',')
    .map((t) => t.trim())
    .filter(Boolean);
}
