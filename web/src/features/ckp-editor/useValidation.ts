// Live validation of a CKP text: a pause in typing (~300 ms) sends the text as typed to
// `POST /api/procedures/validate` (as a string, so the server's lines and columns match the editor); an answer
// to an older text is dropped, and the request of an older text is aborted.
import { useEffect, useRef, useState } from 'react';
import { raw } from '../../api/client';
import type { Diagnostic, ValidateRequest, ValidateResult } from './api';

export interface Validation {
  /** The last answer says the document compiles (false until one came in). */
  valid: boolean;
  errors: Diagnostic[];
  warnings: Diagnostic[];
  /** A newer text than the last answer's is waiting or being checked. */
  pending: boolean;
  /** What the last answer said the document is (null when it did not say). */
  procedureId: string | null;
  version: string | null;
  /** The request failed (network, 413 procedure_too_large, 403): the last answer's findings are kept. */
  error: unknown;
}

export const VALIDATE_DELAY_MS = 300;

export function useValidation(text: string): Validation {
  const [state, setState] = useState<Omit<Validation, 'pending'> & { text: string | null }>({
    text: null,
    valid: false,
    errors: [],
    warnings: [],
    procedureId: null,
    version: null,
    error: null,
  });
  const seq = useRef(0);

  useEffect(() => {
    const n = ++seq.current;
    const abort = new AbortController();
    const timer = window.setTimeout(() => {
      const body: ValidateRequest = { ckp_json: text };
      raw<ValidateResult>('/api/procedures/validate', { method: 'POST', body: JSON.stringify(body), signal: abort.signal })
        .then((r) => {
          if (n !== seq.current) return;
          setState({ text, valid: r.valid, errors: r.errors ?? [], warnings: r.warnings ?? [], procedureId: r.procedure_id ?? null, version: r.version ?? null, error: null });
        })
        .catch((e: unknown) => {
          if (n !== seq.current || abort.signal.aborted) return;
          setState((s) => ({ ...s, text, error: e }));
        });
    }, VALIDATE_DELAY_MS);
    return () => {
      window.clearTimeout(timer);
      abort.abort();
    };
  }, [text]);

  const { text: checked, ...rest } = state;
  return { ...rest, pending: checked !== text };
}
