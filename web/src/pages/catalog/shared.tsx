// Pieces the catalog screens share: the project list, the lifecycle status control, the status list.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { Link } from 'react-router';
import { api, data, type Schemas } from '../../api/client';
import { StatusBadge } from '../../components/Bits';
import { useToast } from '../../components/Toasts';
import { dateTime, duration, shortId } from '../../lib/format';

export type Procedure = Schemas['ProcedureOut'];
export type Project = Schemas['ProjectOut'];
export type Run = Schemas['RunOut'];

export const STATUSES = ['draft', 'active', 'deprecated', 'archived'] as const;

export function useProjects() {
  return useQuery({ queryKey: ['projects'], queryFn: () => data(api.GET('/api/projects')) });
}

export function projectName(projects: Project[] | undefined, id: string | null | undefined): string {
  if (!id) return '—';
  return projects?.find((p) => p.project_id === id)?.name ?? id;
}

/** A select that changes a version's lifecycle status (`PATCH .../status`), with the server's answer in a toast. */
export function StatusSelect({ procedure }: { procedure: Procedure }) {
  const qc = useQueryClient();
  const toast = useToast();
  const change = useMutation({
    mutationFn: (status: string) =>
      data(
        api.PATCH('/api/procedures/{procedure_id}/{version}/status', {
          params: { path: { procedure_id: procedure.procedure_id, version: procedure.version } },
          body: { status },
        }),
      ),
    onSuccess: (p) => {
      toast.show(`${p.procedure_id} ${p.version} is now ${p.status}`, 'success');
      void qc.invalidateQueries({ queryKey: ['procedures'] });
      void qc.invalidateQueries({ queryKey: ['procedure', p.procedure_id] });
    },
    onError: (e) => toast.error(e),
  });
  return (
    <select
      aria-label={`Status of ${procedure.procedure_id} ${procedure.version}`}
      value={procedure.status}
      disabled={change.isPending}
      onChange={(e) => change.mutate(e.target.value)}
    >
      {STATUSES.map((s) => (
        <option key={s} value={s}>
          {s}
        </option>
      ))}
    </select>
  );
}

/** A minimal valid CKP document: the start of "Create from skeleton". */
export function skeleton(): string {
  return JSON.stringify(
    {
      procedure_id: 'new-procedure',
      version: '1.0.0',
      description: 'What this procedure does',
      variables_schema: {
        required: { name: { type: 'string', description: 'Who to greet' } },
        optional: {},
      },
      workflow_graph: {
        start_node: 'start',
        nodes: {
          start: {
            type: 'sequence',
            description: 'Say hello',
            steps: [{ step_id: 'hello', action: 'log', level: 'INFO', message: 'Hello {{name}}' }],
            next_node: 'end',
          },
          end: { type: 'terminate', status: 'success' },
        },
      },
    },
    null,
    2,
  );
}

/** A query string of the non-empty values. */
export function qs(params: Record<string, string | number | null | undefined>): string {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== '') p.set(k, String(v));
  const s = p.toString();
  return s ? `?${s}` : '';
}

/** The path of a procedure version (API or page), its parts escaped. */
export function versionPath(procedureId: string, version: string): string {
  return `${encodeURIComponent(procedureId)}/${encodeURIComponent(version)}`;
}

/** Runs as a table: id (a link to the run page), procedure, status, created, duration. */
export function RunTable({ runs, label, withProcedure }: { runs: Run[]; label: string; withProcedure?: boolean }) {
  return (
    <table className="data" aria-label={label}>
      <thead>
        <tr>
          <th scope="col">Run</th>
          {withProcedure && <th scope="col">Procedure</th>}
          <th scope="col">Status</th>
          <th scope="col">Created</th>
          <th scope="col">Duration</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.run_id}>
            <td>
              <Link className="mono" to={`/runs/${encodeURIComponent(r.run_id)}`} title={r.run_id} aria-label={`Run ${r.run_id}`}>
                {shortId(r.run_id)}
              </Link>
            </td>
            {withProcedure && (
              <td>
                <Link to={`/procedures/${versionPath(r.procedure_id, r.procedure_version)}`}>{r.procedure_id}</Link>{' '}
                <span className="muted mono">{r.procedure_version}</span>
              </td>
            )}
            <td>
              <StatusBadge status={r.status} />
            </td>
            <td>{dateTime(r.created_at)}</td>
            <td>{duration(r.duration_seconds)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

