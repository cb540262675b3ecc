// The runs list: server-side filters kept in the URL, pages by limit/offset, live status, bulk cancel/delete of the
// selection, and the history cleanup.
import { useEffect, useMemo, useRef, useState } from 'react';
import { Link, useSearchParams } from 'react-router';
import { Empty, PageHead, QueryState, StatusBadge } from '../components/Bits';
import {
  BulkActions,
  CleanupDialog,
  isTerminal,
  RANGES,
  RUN_STATUSES,
  useProcedureChoices,
  useProjectChoices,
  useRuns,
  type Run,
  type RunFilters,
} from '../features/runs';
import { cost, dateTime, duration, relative, shortId } from '../lib/format';
import { Options, statusLabel } from '../components/Options';
import './runs.css';

const PAGE_SIZES = [25, 50, 100, 200];
const DEFAULT_LIMIT = 50;

function readFilters(p: URLSearchParams): RunFilters {
  const int = (k: string, d: number, max: number) => {
    const n = Number.parseInt(p.get(k) ?? '', 10);
    return Number.isFinite(n) && n >= 0 ? Math.min(n, max) : d;
  };
  return {
    status: p.get('status') ?? '',
    procedure_id: p.get('procedure_id') ?? '',
    project_id: p.get('project_id') ?? '',
    range: p.get('range') ?? '',
    created_from: p.get('created_from') ?? '',
    created_to: p.get('created_to') ?? '',
    rerun_of: p.get('rerun_of') ?? '',
    limit: Math.max(1, int('limit', DEFAULT_LIMIT, 1000)),
    offset: int('offset', 0, Number.MAX_SAFE_INTEGER),
  };
}

export default function Runs() {
  const [params, setParams] = useSearchParams();
  const filters = readFilters(params);
  const runs = useRuns(filters);
  const procedures = useProcedureChoices();
  const projects = useProjectChoices();
  const [selected, setSelected] = useState<Set<string>>(new Set());
  const [cleanup, setCleanup] = useState(false);

  /** Changes URL parameters; any filter change returns to the first page. */
  const update = (changes: Record<string, string>, keepOffset = false) => {
    const next = new URLSearchParams(params);
    for (const [k, v] of Object.entries(changes)) {
      if (v) next.set(k, v);
      else next.delete(k);
    }
    if (!keepOffset) next.delete('offset');
    setParams(next);
  };

  // A selection belongs to the page it was made on.
  const pageKey = params.toString();
  useEffect(() => setSelected(new Set()), [pageKey]);

  const rows = runs.data ?? [];
  const live = rows.some((r) => !isTerminal(r.status));

  return (
    <>
      <PageHead
        title="Runs"
        sub={runs.data ? `Refreshing every ${live ? '5' : '30'} s${runs.isFetching ? ' (refreshing now)' : ''}` : undefined}
      >
        <button onClick={() => setCleanup(true)}>Clean up history…</button>
      </PageHead>

      <form className="toolbar runs-filters" aria-label="Filters" onSubmit={(e) => e.preventDefault()}>
        <label>
          Status
          <select aria-label="Status" value={filters.status} onChange={(e) => update({ status: e.target.value })}>
            <Options none="Any status" items={RUN_STATUSES} label={statusLabel} />
          </select>
        </label>
        <label>
          Procedure
          <select aria-label="Procedure" value={filters.procedure_id} onChange={(e) => update({ procedure_id: e.target.value })}>
            <Options none="Any procedure" items={withCurrent(procedures.data ?? [], filters.procedure_id)} />
          </select>
        </label>
        <label>
          Project
          <select aria-label="Project" value={filters.project_id} onChange={(e) => update({ project_id: e.target.value })}>
            <Options
              none="Any project"
              items={withCurrent((projects.data ?? []).map((p) => p.project_id), filters.project_id)}
              label={(id) => projects.data?.find((p) => p.project_id === id)?.name ?? id}
            />
          </select>
        </label>
        <label>
          Created
          <select aria-label="Created" value={filters.range} onChange={(e) => update({ range: e.target.value, created_from: '', created_to: '' })}>
            {RANGES.map((r) => (
              <option key={r.id} value={r.id}>
                {r.label}
              </option>
            ))}
          </select>
        </label>
        {filters.range === 'custom' && (
          <>
            <label>
              From
              <input
                type="datetime-local"
                value={filters.created_from}
                onChange={(e) => update({ created_from: e.target.value })}
              />
            </label>
            <label>
              To
              <input type="datetime-local" value={filters.created_to} onChange={(e) => update({ created_to: e.target.value })} />
            </label>
          </>
        )}
        {hasFilters(filters) && (
          <button
            type="button"
            className="ghost"
            onClick={() => setParams(filters.limit !== DEFAULT_LIMIT ? { limit: String(filters.limit) } : {})}
          >
            Clear filters
          </button>
        )}
      </form>

      {filters.rerun_of && (
        <div className="runs-chips">
          <span className="runs-chip">
            Reruns of{' '}
            <Link to={`/runs/${encodeURIComponent(filters.rerun_of)}`} className="mono" title={filters.rerun_of}>
              {shortId(filters.rerun_of)}
            </Link>
            <button
              className="ghost small"
              aria-label="Remove the reruns filter"
              onClick={() => update({ rerun_of: '' })}
            >
              ×
            </button>
          </span>
        </div>
      )}

      <div className="toolbar runs-bulk" aria-label="Selected runs">
        <span className="muted">{selected.size ? `${selected.size} selected` : 'Select runs for bulk actions'}</span>
        <BulkActions selected={[...selected]} onDone={() => setSelected(new Set())} />
      </div>

      <QueryState loading={runs.isLoading} error={runs.error}>
        {rows.length === 0 ? (
          <Empty>{hasFilters(filters) || filters.offset ? 'No run matches these filters.' : 'No run yet.'}</Empty>
        ) : (
          <RunsTable rows={rows} selected={selected} setSelected={setSelected} />
        )}
      </QueryState>

      <nav className="pager" aria-label="Pages">
        <label className="inline">
          Per page
          <select value={filters.limit} onChange={(e) => update({ limit: e.target.value })}>
            {withCurrent(PAGE_SIZES, filters.limit).map((n) => (
              <option key={n} value={n}>
                {n}
              </option>
            ))}
          </select>
        </label>
        <span className="muted">
          {rows.length ? `Runs ${filters.offset + 1}–${filters.offset + rows.length}` : ''}
        </span>
        <button
          disabled={filters.offset === 0}
          onClick={() => update({ offset: String(Math.max(0, filters.offset - filters.limit)) }, true)}
        >
          Previous
        </button>
        <button
          disabled={rows.length < filters.limit}
          onClick={() => update({ offset: String(filters.offset + filters.limit) }, true)}
        >
          Next
        </button>
      </nav>

      <CleanupDialog open={cleanup} onClose={() => setCleanup(false)} />
    </>
  );
}

function RunsTable({
  rows,
  selected,
  setSelected,
}: {
  rows: Run[];
  selected: Set<string>;
  setSelected: (s: Set<string>) => void;
}) {
  const all = rows.length > 0 && rows.every((r) => selected.has(r.run_id));
  const some = rows.some((r) => selected.has(r.run_id));
  const allBox = useRef<HTMLInputElement>(null);
  useEffect(() => {
    if (allBox.current) allBox.current.indeterminate = some && !all;
  }, [some, all]);
  const now = useMemo(() => Date.now(), [rows]);
  const toggle = (id: string) => {
    const next = new Set(selected);
    if (next.has(id)) next.delete(id);
    else next.add(id);
    setSelected(next);
  };
  return (
    <table className="data runs-table">
      <caption className="sr-only">Runs</caption>
      <thead>
        <tr>
          <th scope="col" className="runs-check">
            <input
              ref={allBox}
              type="checkbox"
              aria-label="Select all runs on this page"
              checked={all}
              onChange={() => setSelected(all ? new Set() : new Set(rows.map((r) => r.run_id)))}
            />
          </th>
          <th scope="col">Run</th>
          <th scope="col">Procedure</th>
          <th scope="col">Status</th>
          <th scope="col">Created</th>
          <th scope="col">Duration</th>
          <th scope="col">Cost</th>
        </tr>
      </thead>
      <tbody>
        {rows.map((r) => (
          <tr key={r.run_id} className={selected.has(r.run_id) ? 'selected' : undefined}>
            <td className="runs-check">
              <input
                type="checkbox"
                aria-label={`Select run ${r.run_id}`}
                checked={selected.has(r.run_id)}
                onChange={() => toggle(r.run_id)}
              />
            </td>
            <td>
              <Link to={`/runs/${encodeURIComponent(r.run_id)}`} className="mono" title={r.run_id} aria-label={`Run ${r.run_id}`}>
                {shortId(r.run_id)}
              </Link>
              {r.rerun_of && (
                <div className="muted runs-sub" title={`Rerun of ${r.rerun_of}`}>
                  rerun of {shortId(r.rerun_of)}
                </div>
              )}
            </td>
            <td>
              <Link to={`/procedures/${encodeURIComponent(r.procedure_id)}/${encodeURIComponent(r.procedure_version)}`}>
                {r.procedure_id}@{r.procedure_version}
              </Link>
            </td>
            <td>
              <StatusBadge status={r.status} />
              {r.status === 'failed' && r.error_message && (
                <div className="muted runs-sub runs-error" title={r.error_message}>
                  {r.error_message}
                </div>
              )}
            </td>
            <td title={dateTime(r.created_at)}>{relative(r.created_at, now)}</td>
            <td>{runDuration(r, now)}</td>
            <td>{cost(r.estimated_cost_usd)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** The recorded duration of a finished run; a running one counts from its start to now. */
function runDuration(r: Run, now: number): string {
  if (r.duration_seconds != null) return duration(r.duration_seconds);
  if (r.started_at && !isTerminal(r.status)) return `${duration((now - new Date(r.started_at).getTime()) / 1000)} so far`;
  return '—';
}

function hasFilters(f: RunFilters): boolean {
  return Boolean(f.status || f.procedure_id || f.project_id || f.range || f.rerun_of);
}

/** The choices plus the current value, so a value from the URL stays visible even when it is not a choice. */
function withCurrent<T>(choices: T[], current: T | ''): T[] {
  return current === '' || choices.includes(current as T) ? choices : [current as T, ...choices];
}
