// Projects: list, create, edit, delete (after a confirm), and each project's LLM cost over a period picked in the
// URL (`?period=`), from `GET /api/projects/{id}/cost-summary`.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { Link, useSearchParams } from 'react-router';
import { api, data } from '../api/client';
import { Empty, ErrorBanner, PageHead, QueryState } from '../components/Bits';
import { Dialog, useConfirm } from '../components/Dialog';
import { useToast } from '../components/Toasts';
import { cost, count, dateTime } from '../lib/format';
import { useProjects, type Project } from './catalog/shared';
import './catalog/catalog.css';

const PERIODS = [7, 30, 90] as const;

export default function Projects() {
  const projects = useProjects();
  const [params, setParams] = useSearchParams();
  const p = Number(params.get('period'));
  const period = (PERIODS as readonly number[]).includes(p) ? p : 30;
  const [editing, setEditing] = useState<Project | 'new' | null>(null);
  const confirm = useConfirm();
  const toast = useToast();
  const qc = useQueryClient();

  const remove = useMutation({
    mutationFn: (p: Project) => data(api.DELETE('/api/projects/{project_id}', { params: { path: { project_id: p.project_id } } })),
    onSuccess: (_, p) => {
      toast.show(`Deleted project ${p.name}`, 'success');
      void qc.invalidateQueries({ queryKey: ['projects'] });
    },
    onError: (e) => toast.error(e),
  });

  return (
    <>
      <PageHead title="Projects" sub="Procedures, runs and access are grouped by project">
        <button className="primary" onClick={() => setEditing('new')}>
          New project
        </button>
      </PageHead>
      <div className="toolbar" role="group" aria-label="Cost period">
        <span className="muted">LLM cost over</span>
        <span className="segmented">
          {PERIODS.map((d) => (
            <button key={d} aria-pressed={period === d} onClick={() => setParams({ period: String(d) }, { replace: true })}>
              {d} days
            </button>
          ))}
        </span>
      </div>
      <QueryState loading={projects.isLoading} error={projects.error}>
        {projects.data?.length === 0 ? (
          <Empty>No project yet. Projects group procedures and runs, and scope access.</Empty>
        ) : (
          <table className="data" aria-label="Projects">
            <thead>
              <tr>
                <th scope="col">Project</th>
                <th scope="col">Description</th>
                <th scope="col" className="num">Runs ({period} d)</th>
                <th scope="col" className="num">Tokens ({period} d)</th>
                <th scope="col" className="num">Cost ({period} d)</th>
                <th scope="col">Created</th>
                <th scope="col">Actions</th>
              </tr>
            </thead>
            <tbody>
              {projects.data?.map((pr) => (
                <tr key={pr.project_id}>
                  <td>
                    <Link to={`/procedures?project_id=${encodeURIComponent(pr.project_id)}`} aria-label={`Procedures of ${pr.name}`}>
                      {pr.name}
                    </Link>
                    <div className="muted mono">{pr.project_id}</div>
                  </td>
                  <td>{pr.description || <span className="muted">—</span>}</td>
                  <CostCells id={pr.project_id} period={period} />
                  <td>{dateTime(pr.created_at)}</td>
                  <td>
                    <span style={{ display: 'flex', gap: 6 }}>
                      <button className="small" aria-label={`Edit ${pr.name}`} onClick={() => setEditing(pr)}>
                        Edit
                      </button>
                      <button
                        className="small danger"
                        aria-label={`Delete ${pr.name}`}
                        disabled={remove.isPending}
                        onClick={async () => {
                          const ok = await confirm({
                            title: `Delete project ${pr.name}?`,
                            message: 'The project is removed. The server refuses while procedures or runs still belong to it.',
                            confirm: 'Delete project',
                            danger: true,
                          });
                          if (ok) remove.mutate(pr);
                        }}
                      >
                        Delete
                      </button>
                    </span>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </QueryState>
      {editing && <ProjectDialog project={editing === 'new' ? null : editing} onClose={() => setEditing(null)} />}
    </>
  );
}

function CostCells({ id, period }: { id: string; period: number }) {
  const summary = useQuery({
    queryKey: ['project-cost', id, period],
    queryFn: () =>
      data(api.GET('/api/projects/{project_id}/cost-summary', { params: { path: { project_id: id }, query: { period_days: period } } })),
  });
  if (summary.error)
    return (
      <td colSpan={3} className="muted">
        Cost unavailable: {summary.error.message}
      </td>
    );
  const s = summary.data;
  return (
    <>
      <td className="num">{s ? count(s.run_count) : '…'}</td>
      <td className="num">{s ? count(s.total_prompt_tokens + s.total_completion_tokens) : '…'}</td>
      <td className="num">{s ? cost(s.estimated_cost_usd) : '…'}</td>
    </>
  );
}

function ProjectDialog({ project, onClose }: { project: Project | null; onClose: () => void }) {
  const [name, setName] = useState(project?.name ?? '');
  const [description, setDescription] = useState(project?.description ?? '');
  const [tried, setTried] = useState(false);
  const toast = useToast();
  const qc = useQueryClient();
  const save = useMutation({
    mutationFn: () => {
      const body = { name: name.trim(), description: description.trim() || null };
      return project
        ? data(api.PUT('/api/projects/{project_id}', { params: { path: { project_id: project.project_id } }, body }))
        : data(api.POST('/api/projects', { body }));
    },
    onSuccess: (p) => {
      toast.show(project ? `Saved project ${p.name}` : `Created project ${p.name}`, 'success');
      void qc.invalidateQueries({ queryKey: ['projects'] });
      onClose();
    },
  });
  const missing = !name.trim();
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setTried(true);
    if (!missing) save.mutate();
  };
  return (
    <Dialog open title={project ? `Edit project ${project.name}` : 'New project'} onClose={onClose}>
      <form className="form-grid" onSubmit={submit} noValidate>
        {save.error && <ErrorBanner error={save.error} />}
        <label>
          Name
          <input
            value={name}
            onChange={(e) => setName(e.target.value)}
            aria-invalid={tried && missing ? true : undefined}
            aria-describedby={tried && missing ? 'project-name-error' : undefined}
            autoFocus
          />
          {tried && missing && (
            <span className="field-error" id="project-name-error" role="alert">
              A project needs a name
            </span>
          )}
        </label>
        <label>
          Description
          <textarea rows={3} value={description} onChange={(e) => setDescription(e.target.value)} style={{ fontFamily: 'inherit' }} />
        </label>
        <div style={{ display: 'flex', gap: 8, justifyContent: 'flex-end' }}>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={save.isPending}>
            {project ? 'Save' : 'Create project'}
          </button>
        </div>
      </form>
    </Dialog>
  );
}
