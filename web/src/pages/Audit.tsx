// The audit log: who did what, from where, with what outcome. Filters (category, actor, action, text, time range)
// and the page live in the URL. The audit operation shares its OpenAPI operation id (`list`), so it goes through
// `raw`.
import { useQuery } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { raw, type Schemas } from '../api/client';
import { Empty, JsonDetails, PageHead, QueryState } from '../components/Bits';
import { dateTime } from '../lib/format';
import './ops/ops.css';

type Page = Schemas['AuditPage'];
const LIMIT = 50;
const FILTERS = ['category', 'actor', 'action', 'search', 'since', 'until'] as const;
type Filter = (typeof FILTERS)[number];
const CATEGORIES = ['agents', 'api_keys', 'approvals', 'auth', 'leases', 'procedures', 'projects', 'runs', 'secrets', 'users'];

/** `<input type="datetime-local">` value (local time) ↔ RFC 3339 (UTC) in the URL. */
function toLocalInput(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return '';
  const off = d.getTimezoneOffset() * 60_000;
  return new Date(d.getTime() - off).toISOString().slice(0, 16);
}
function fromLocalInput(v: string): string {
  const d = new Date(v);
  return Number.isNaN(d.getTime()) ? '' : d.toISOString();
}

function outcomeTone(n: number): string {
  if (n >= 500) return 'err';
  if (n >= 400) return 'warn';
  return 'ok';
}

export default function Audit() {
  const [params, setParams] = useSearchParams();
  const offset = Math.max(0, Number(params.get('offset') ?? 0) || 0);
  const applied = Object.fromEntries(FILTERS.map((k) => [k, params.get(k) ?? ''])) as Record<Filter, string>;
  const [draft, setDraft] = useState(applied);
  const query = new URLSearchParams();
  for (const k of FILTERS) if (applied[k]) query.set(k, applied[k]);
  query.set('limit', String(LIMIT));
  query.set('offset', String(offset));
  const q = useQuery({
    queryKey: ['/api/audit', query.toString()],
    queryFn: () => raw<Page>(`/api/audit?${query}`),
    placeholderData: (prev) => prev,
  });
  const apply = (e: FormEvent) => {
    e.preventDefault();
    const next = new URLSearchParams();
    for (const k of FILTERS) if (draft[k].trim()) next.set(k, draft[k].trim());
    setParams(next);
  };
  const goto = (o: number) => {
    const next = new URLSearchParams(params);
    if (o > 0) next.set('offset', String(o));
    else next.delete('offset');
    setParams(next);
  };
  const text = (k: Filter, label: string, placeholder = '') => (
    <label>
      {label}
      <input value={draft[k]} placeholder={placeholder} onChange={(e) => setDraft({ ...draft, [k]: e.target.value })} />
    </label>
  );
  const time = (k: Filter, label: string) => (
    <label>
      {label}
      <input
        type="datetime-local"
        value={draft[k] ? toLocalInput(draft[k]) : ''}
        onChange={(e) => setDraft({ ...draft, [k]: e.target.value ? fromLocalInput(e.target.value) : '' })}
      />
    </label>
  );
  const events = q.data?.events ?? [];
  return (
    <>
      <PageHead title="Audit log" sub="Every change and sign-in, newest first" />
      <form className="toolbar" onSubmit={apply} aria-label="Audit filters">
        <label>
          Category
          <select value={draft.category} onChange={(e) => setDraft({ ...draft, category: e.target.value })}>
            <option value="">All</option>
            {CATEGORIES.map((c) => (
              <option key={c}>{c}</option>
            ))}
            {draft.category && !CATEGORIES.includes(draft.category) && <option>{draft.category}</option>}
          </select>
        </label>
        {text('actor', 'Actor', 'username')}
        {text('action', 'Action', 'create, login, …')}
        {text('search', 'Text', 'in the description')}
        {time('since', 'Since')}
        {time('until', 'Until')}
        <button type="submit" className="primary">
          Apply filters
        </button>
        <button
          type="button"
          onClick={() => {
            setDraft(Object.fromEntries(FILTERS.map((k) => [k, ''])) as Record<Filter, string>);
            setParams(new URLSearchParams());
          }}
        >
          Clear
        </button>
      </form>
      <QueryState loading={q.isLoading} error={q.error}>
        {events.length === 0 ? (
          <Empty>No audit event matches.</Empty>
        ) : (
          <div className="ops-table-wrap">
            <table className="data">
              <caption className="sr-only">Audit events</caption>
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Category</th>
                  <th scope="col">Action</th>
                  <th scope="col">Actor</th>
                  <th scope="col">Description</th>
                  <th scope="col">Object</th>
                  <th scope="col">Outcome</th>
                  <th scope="col">From</th>
                </tr>
              </thead>
              <tbody>
                {events.map((ev) => (
                  <tr key={ev.event_id}>
                    <td>{dateTime(ev.ts)}</td>
                    <td>{ev.category}</td>
                    <td>{ev.action}</td>
                    <td>
                      {ev.actor}
                      {ev.credential && <div className="muted mono">{ev.credential}</div>}
                    </td>
                    <td>
                      <JsonDetails value={ev.meta} summary={ev.description} />
                    </td>
                    <td className="mono">{[ev.resource_type, ev.resource_id].filter(Boolean).join(' ') || '—'}</td>
                    <td>
                      <span className={`badge ${outcomeTone(ev.outcome)}`}>{ev.outcome}</span>
                    </td>
                    <td className="mono">{ev.source_ip ?? '—'}</td>
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
      <nav className="pager" aria-label="Audit pages">
        <span className="muted">
          {events.length > 0 ? `Events ${offset + 1}–${offset + events.length}` : ''}
        </span>
        <button disabled={offset === 0} onClick={() => goto(Math.max(0, offset - LIMIT))}>
          Newer
        </button>
        <button disabled={events.length < LIMIT} onClick={() => goto(offset + LIMIT)}>
          Older
        </button>
      </nav>
    </>
  );
}
