// The shapes of `POST /api/procedures/validate` this feature uses: the generated `ValidateIn` and `Validation`,
// with the diagnostics typed (the OpenAPI document describes them in words only).
import type { Schemas } from '../../api/client';

/** One finding of ckp's compiler. `pointer` is an RFC 6901 pointer ("" = the whole document); `line` and `column`
 * (1-based) place the value in the JSON text the server compiled. */
export interface Diagnostic {
  severity: 'error' | 'warning';
  code: string;
  message: string;
  pointer: string;
  line: number;
  column: number;
}

export type ValidateRequest = Schemas['ValidateIn'];

/** The answer of `POST /api/procedures/validate` (200 also for an invalid document). */
export type ValidateResult = Omit<Schemas['Validation'], 'errors' | 'warnings'> & { errors: Diagnostic[]; warnings: Diagnostic[] };
