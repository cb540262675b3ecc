// The procedures catalog: every version, filtered on the server by text, status and project (the filters live in
// the URL), with its lifecycle status changed in place, an import dialog and "Create from skeleton".
import { useQuery } from '@tanstack/react-query';
import { useEffect, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { raw } from '../api/client';
import { Empty, PageHead, QueryState, StatusBadge } from '../components/Bits';
import { dateTime } from '../lib/format';
import { ImportDialog } from './catalog/ImportDialog';
import { projectName, qs, skeleton, StatusSelect, STATUSES, useProjects, versionPath, type Procedure } from './catalog/shared';
import { Options } from '../components/Options';
import './catalog/catalog.css';

export default function Procedures() {
  const [params, setParams] = useSearchParams();
  const search = params.get('search') ?? '';
  const status = params.get('status') ?? '';
  const project = params.get('project_id') ?? '';
  const [text, setText] = useState(search);
  const [importing, setImporting] = useState<{ initial: string; n: number } | null>(null);
  const projects = useProjects();

  const set = (key: string, value: string) =>
    setParams(
      (p) => {
        const next = new URLSearchParams(p);
        if (value) next.set(key, value);
        else next.delete(key);
        return next;
      },
      { replace: true },
    );

  // The search box writes the URL after a pause in typing, so each keystroke does not ask the server.
  useEffect(() => {
    if (text === search) return;
    const t = window.setTimeout(() => set('search', text.trim()), 300);
    return () => window.clearTimeout(t);
  }, [text]);
  useEffect(() => setText(search), [search]);

  const list = useQuery({
    queryKey: ['procedures', { search, status, project }],
    // raw(): the OpenAPI document gives several operations the id `list`, so the generated type of this one is wrong.
    queryFn: () => raw<Procedure[]>(`/api/procedures${qs({ search, status, project_id: project })}`),
  });

  const filtered = !!(search || status || project);
  return (
    <>
      <PageHead title="Procedures" sub="Every imported version, with its lifecycle status">
        <Link className="button" to="/procedures/validate">
          Check CKP
        </Link>
        <Link className="button" to="/procedures/new">
          New procedure
        </Link>
        <button onClick={() => setImporting({ initial: skeleton(), n: Date.now() })}>Create from skeleton</button>
        <button className="primary" onClick={() => setImporting({ initial: '', n: Date.now() })}>
          Import
        </button>
      </PageHead>
      <form className="toolbar catalog-filters" role="search" aria-label="Filter procedures" onSubmit={(e) => { e.preventDefault(); set('search', text.trim()); }}>
        <label>
          Search
          <input type="search" value={text} onChange={(e) => setText(e.target.value)} placeholder="Id, name, description" />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => set('status', e.target.value)}>
            <Options none="Any status" items={STATUSES} />
          </select>
        </label>
        <label>
          Project
          <select value={project} onChange={(e) => set('project_id', e.target.value)}>
            <Options none="Any project" items={projects.data?.map((p) => ({ value: p.project_id, label: p.name })) ?? []} />
          </select>
        </label>
        {filtered && (
          <button type="button" className="ghost" onClick={() => setParams({}, { replace: true })}>
            Clear filters
          </button>
        )}
      </form>
      <QueryState loading={list.isLoading} error={list.error}>
        {list.data && list.data.length === 0 ? (
          <Empty>{filtered ? 'No procedure matches these filters.' : 'No procedure yet: import one or start from the skeleton.'}</Empty>
        ) : (
          <table className="data" aria-label="Procedures">
            <thead>
              <tr>
                <th scope="col">Procedure</th>
                <th scope="col">Version</th>
                <th scope="col">Project</th>
                <th scope="col">Channel</th>
                <th scope="col">Status</th>
                <th scope="col">Imported</th>
              </tr>
            </thead>
            <tbody>
              {list.data?.map((p) => (
                <tr key={p.id}>
                  <td>
                    <Link to={`/procedures/${versionPath(p.procedure_id, p.version)}`}>{p.name}</Link>
                    {p.name !== p.procedure_id && <div className="muted mono">{p.procedure_id}</div>}
                    {p.description && <div className="muted">{p.description}</div>}
                  </td>
                  <td className="mono">{p.version}</td>
                  <td>{projectName(projects.data, p.project_id)}</td>
                  <td>{p.release_channel ?? '—'}</td>
                  <td>
                    <div className="status-cell">
                      <StatusBadge status={p.status} />
                      <StatusSelect procedure={p} />
                    </div>
                  </td>
                  <td>{dateTime(p.created_at)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </QueryState>
      {importing && <ImportDialog key={importing.n} open initial={importing.initial} onClose={() => setImporting(null)} />}
    </>
  );
}
