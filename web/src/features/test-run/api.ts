// `POST /api/procedures/{procedure_id}/{version}/test-runs`: runs the given document (stored as a hidden snapshot
// version `<version>+test.<8 hex>`) and answers like `POST /api/runs`.
import { raw, type Schemas } from '../../api/client';
import { versionPath } from '../../pages/catalog/shared';

export type TestRunRequest = Schemas['TestRunIn'];
export type Run = Schemas['RunOut'];

export function startTestRun(procedureId: string, version: string, body: TestRunRequest): Promise<Run> {
  return raw<Run>(`/api/procedures/${versionPath(procedureId, version)}/test-runs`, { method: 'POST', body: JSON.stringify(body) });
}
