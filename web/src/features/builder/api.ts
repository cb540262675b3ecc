// The authoring API the builder uses, called with raw(); the draft and validation shapes are typed here (the
// OpenAPI document gives a draft as any object, and diagnostics in words), the diagnostics by the CKP editor's.
import { raw } from '../../api/client';
import type { Diagnostic } from '../ckp-editor/api';
import type { JsonObject } from './model';

export type { Diagnostic };

export interface ValidateOut {
  valid: boolean;
  procedure_id: string | null;
  version: string | null;
  errors: Diagnostic[];
  warnings: Diagnostic[];
}

/** The console's draft: the document, where each node sits on the canvas, and the version it started from. */
export interface Draft {
  ckp: JsonObject;
  layout: Layout;
  base_version: string;
}
export type Layout = Record<string, { x: number; y: number }>;

export interface DraftOut {
  procedure_id: string;
  version: string;
  draft: Draft | null;
  updated_at: string | null;
  updated_by: string | null;
  revision: number;
}

/** The 409 body's detail of a draft write that lost a race. */
export interface DraftConflict {
  message: string;
  current: DraftOut;
}

const path = (procedureId: string, version: string) => `${encodeURIComponent(procedureId)}/${encodeURIComponent(version)}`;

export function validate(ckp: JsonObject | string, signal?: AbortSignal): Promise<ValidateOut> {
  return raw<ValidateOut>('/api/procedures/validate', { method: 'POST', body: JSON.stringify({ ckp_json: ckp }), signal });
}

export function getDraft(procedureId: string, version: string): Promise<DraftOut> {
  return raw<DraftOut>(`/api/procedures/${path(procedureId, version)}/builder-draft`);
}

export function putDraft(procedureId: string, version: string, draft: Draft, revision: number): Promise<DraftOut> {
  return raw<DraftOut>(`/api/procedures/${path(procedureId, version)}/builder-draft`, {
    method: 'PUT',
    body: JSON.stringify({ draft, revision }),
  });
}

export function deleteDraft(procedureId: string, version: string): Promise<unknown> {
  return raw(`/api/procedures/${path(procedureId, version)}/builder-draft`, { method: 'DELETE' });
}

export interface ProcedureDetail {
  procedure_id: string;
  version: string;
  name: string;
  project_id?: string | null;
  ckp_json: JsonObject;
}

export function getVersion(procedureId: string, version: string): Promise<ProcedureDetail> {
  return raw<ProcedureDetail>(`/api/procedures/${path(procedureId, version)}`);
}

/** The versions of a procedure ([] when there is none). */
export async function listVersions(procedureId: string): Promise<string[]> {
  try {
    const list = await raw<{ version: string }[]>(`/api/procedures/${encodeURIComponent(procedureId)}/versions`);
    return list.map((v) => v.version);
  } catch (e) {
    if ((e as { status?: number }).status === 404) return [];
    throw e;
  }
}

export function createVersion(ckp: JsonObject, projectId?: string | null): Promise<ProcedureDetail> {
  return raw<ProcedureDetail>('/api/procedures', {
    method: 'POST',
    body: JSON.stringify(projectId ? { ckp_json: ckp, project_id: projectId } : { ckp_json: ckp }),
  });
}

/** Action names by channel (`internal`, each agent channel, `mcp_servers` as an object). */
export async function actionCatalog(): Promise<{ channel: string; name: string }[]> {
  const all = await raw<Record<string, unknown>>('/api/actions');
  const out: { channel: string; name: string }[] = [];
  for (const [channel, names] of Object.entries(all)) {
    if (Array.isArray(names)) for (const n of names) if (typeof n === 'string') out.push({ channel, name: n });
    if (channel === 'mcp_servers' && names && typeof names === 'object') {
      for (const server of Object.values(names as Record<string, { tools?: Record<string, unknown> }>)) {
        for (const action of Object.keys(server?.tools ?? {})) out.push({ channel: 'mcp', name: action });
      }
    }
  }
  return out;
}

export interface AgentBrief {
  agent_id: string;
  channel: string;
  capabilities: { name: string }[];
}

export function agents(): Promise<AgentBrief[]> {
  return raw<AgentBrief[]>('/api/agents');
}
