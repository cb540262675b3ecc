// The authoring API's shapes this feature uses. `POST /api/procedures/validate` is new (issue 23) and not yet in
// the generated schema (src/api/schema.d.ts): typed here until `npm run gen:api` picks it up.

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

/** The answer of `POST /api/procedures/validate` (200 also for an invalid document). */
export interface ValidateResult {
  valid: boolean;
  procedure_id: string | null;
  version: string | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}
