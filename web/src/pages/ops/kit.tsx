// Pieces the operations screens (agents, leases, secrets, metrics, users, API keys, audit) share: a server error
// placed at the form field it is about, the form dialog, the confirmed row action (delete, revoke, release, ...),
// a filter kept in the URL, countdowns, and the roles list.
import { useMutation, useQueryClient, type QueryKey } from '@tanstack/react-query';
import { useState, type FormEvent, type InputHTMLAttributes, type ReactNode } from 'react';
import { useSearchParams } from 'react-router';
import { ApiError } from '../../api/client';
import { Dialog, useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
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

/**
 * A form's text fields and its errors: `set(k)` is a field's change handler and `input(k, props)` the `<input>` a
 * `Field` wraps (id `{prefix}-{k}`, described by the field's help and error).
 */
export function useFields<F extends Record<string, string>>(prefix: string, initial: F) {
  const [f, setF] = useState(initial);
  const [errors, setErrors] = useState<FormErrors>(NO_ERRORS);
  const set = (k: keyof F) => (e: { target: { value: string } }) => setF((x) => ({ ...x, [k]: e.target.value }));
  const input =
    (k: keyof F & string, props: InputHTMLAttributes<HTMLInputElement> = {}) =>
    (ids: string | undefined, invalid: boolean) => (
      <input id={`${prefix}-${k}`} value={f[k]} onChange={set(k)} aria-describedby={ids} aria-invalid={invalid} {...props} />
    );
  return { f, setF, set, errors, setErrors, input };
}

/** A small button of a table row, named after its row ("Delete agent-1") so screen readers tell the rows apart. */
export function RowAction({ label, of, danger, onClick }: { label: string; of: string; danger?: boolean; onClick: () => void }) {
  return (
    <button className={danger ? 'small danger' : 'small'} aria-label={`${label} ${of}`} onClick={onClick}>
      {label}
    </button>
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

/** A dialog holding one form: its general error above the fields, Cancel and the submit button below. */
export function FormDialog({
  id,
  title,
  submit,
  pending,
  errors,
  onClose,
  onSubmit,
  autoComplete,
  children,
}: {
  id: string;
  title: string;
  submit: string;
  pending: boolean;
  errors: FormErrors;
  onClose: () => void;
  onSubmit: (e: FormEvent) => void;
  autoComplete?: 'off';
  children: ReactNode;
}) {
  return (
    <Dialog
      open
      title={title}
      onClose={onClose}
      actions={
        <>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" form={id} className="primary" disabled={pending}>
            {submit}
          </button>
        </>
      }
    >
      <form id={id} className="ops-form" onSubmit={onSubmit} noValidate autoComplete={autoComplete}>
        <FormBanner errors={errors} />
        {children}
      </form>
    </Dialog>
  );
}

type ConfirmOptions = Parameters<ReturnType<typeof useConfirm>>[0];

/**
 * A row action that asks first (a null question acts at once), then toasts the server's answer and refreshes
 * `invalidate`. Returns the function a button calls with its row.
 */
export function useConfirmedAction<T, R = unknown>({
  ask,
  run,
  done,
  invalidate,
  onSuccess,
}: {
  ask: (item: T) => ConfirmOptions | null;
  run: (item: T) => Promise<R>;
  done: (item: T, result: R) => string;
  invalidate: QueryKey[];
  onSuccess?: (item: T) => void;
}): (item: T) => Promise<void> {
  const qc = useQueryClient();
  const toast = useToast();
  const confirm = useConfirm();
  const action = useMutation({
    mutationFn: run,
    onSuccess: (result, item) => {
      toast.show(done(item, result), 'success');
      onSuccess?.(item);
      for (const queryKey of invalidate) void qc.invalidateQueries({ queryKey });
    },
    onError: (e) => toast.error(e),
  });
  return async (item: T) => {
    const question = ask(item);
    if (question === null || (await confirm(question))) action.mutate(item);
  };
}

/**
 * A filter or selection kept in the URL: sets or (empty) removes one search parameter. A filter replaces the history
 * entry; `replace = false` adds one, for what Back should undo (an opened agent).
 */
export function useParamSetter(replace = true): (key: string, value: string | null) => void {
  const [params, setParams] = useSearchParams();
  return (key, value) => {
    const next = new URLSearchParams(params);
    if (value) next.set(key, value);
    else next.delete(key);
    setParams(next, { replace });
  };
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
