// The run's stored state: its checkpoints (the list, then one checkpoint's variables, cursor and decisions) and its
// diagnostics (status, event and error counts, retry flag, active leases, idempotency entries), rendered as text.
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { raw } from '../../api/client';
import { Empty, Json, QueryState, StatusBadge } from '../../components/Bits';
import { dateTime } from '../../lib/format';
import { GridTable } from './GridTable';

interface CheckpointSummary {
  checkpoint_id: string;
  parent_checkpoint_id?: string | null;
  step?: number | null;
  writes?: Record<string, unknown> | null;
  created_at?: string | null;
}

export function CheckpointsTab({ runId, version }: { runId: string; version: string }) {
  const base = `/api/runs/${encodeURIComponent(runId)}/checkpoints`;
  const list = useQuery({ queryKey: ['run', runId, 'checkpoints', version], queryFn: () => raw<CheckpointSummary[]>(base) });
  const [chosen, setChosen] = useState<string | null>(null);
  const one = useQuery({
    queryKey: ['run', runId, 'checkpoints', chosen],
    enabled: chosen !== null,
    queryFn: () => raw<Record<string, unknown>>(`${base}/${encodeURIComponent(chosen!)}`),
  });
  return (
    <QueryState loading={list.isLoading} error={list.error}>
      {list.data?.length === 0 && <Empty>No checkpoint yet: the run has not committed any state.</Empty>}
      {!!list.data?.length && (
        <>
          <p className="muted">ckp keeps the run's latest checkpoint; its id counts the commits so far.</p>
          <table className="data">
            <caption className="sr-only">Checkpoints of this run</caption>
            <thead>
              <tr>
                <th scope="col">Checkpoint</th>
                <th scope="col">Parent</th>
                <th scope="col">Step</th>
                <th scope="col">Writes</th>
                <th scope="col">Saved</th>
                <th scope="col">State</th>
              </tr>
            </thead>
            <tbody>
              {list.data.map((c) => (
                <tr key={c.checkpoint_id}>
                  <td className="mono">{c.checkpoint_id}</td>
                  <td className="mono">{c.parent_checkpoint_id ?? '—'}</td>
                  <td>{c.step ?? '—'}</td>
                  <td className="mono">{c.writes ? Object.entries(c.writes).map(([k, v]) => `${k}: ${v === null ? '—' : String(v)}`).join(', ') : '—'}</td>
                  <td>{dateTime(c.created_at)}</td>
                  <td>
                    <button className="small" aria-pressed={chosen === c.checkpoint_id} onClick={() => setChosen(chosen === c.checkpoint_id ? null : c.checkpoint_id)}>
                      {chosen === c.checkpoint_id ? `Hide checkpoint ${c.checkpoint_id}` : `Show checkpoint ${c.checkpoint_id}`}
                    </button>
                  </td>
                </tr>
              ))}
            </tbody>
          </table>
        </>
      )}
      {chosen !== null && (
        <section className="card checkpoint-state" aria-labelledby="checkpoint-title">
          <h2 id="checkpoint-title">Checkpoint {chosen}</h2>
          <QueryState loading={one.isLoading} error={one.error}>
            {one.data && <CheckpointState value={one.data} />}
          </QueryState>
        </section>
      )}
    </QueryState>
  );
}

function CheckpointState({ value }: { value: Record<string, unknown> }) {
  const { channel_values, pending_writes, metadata, ...rest } = value;
  return (
    <>
      <h3>Variables</h3>
      <Json value={channel_values ?? {}} label="Checkpoint variables" />
      {pending_writes !== undefined && (
        <>
          <h3>Pending writes</h3>
          <Json value={pending_writes} label="Pending writes" />
        </>
      )}
      {metadata !== undefined && (
        <>
          <h3>Metadata</h3>
          <Json value={metadata} label="Checkpoint metadata" />
        </>
      )}
      <h3>Other fields</h3>
      <Json value={rest} label="Other checkpoint fields" />
    </>
  );
}

interface Diagnostics {
  status?: string;
  last_node_id?: string | null;
  last_step_id?: string | null;
  has_retry_event?: boolean;
  total_events?: number;
  error_events?: number;
  idempotency_entries?: Record<string, unknown>[];
  active_leases?: Record<string, unknown>[];
  [k: string]: unknown;
}

export function DiagnosticsTab({ runId, version }: { runId: string; version: string }) {
  const q = useQuery({
    queryKey: ['run', runId, 'diagnostics', version],
    queryFn: () => raw<Diagnostics>(`/api/runs/${encodeURIComponent(runId)}/diagnostics`),
  });
  const d = q.data;
  return (
    <QueryState loading={q.isLoading} error={q.error}>
      {d && (
        <div className="grid">
          <div className="grid kpis">
            <div className="card kpi">
              <div className="value">{d.total_events ?? '—'}</div>
              <div className="label">events</div>
            </div>
            <div className="card kpi">
              <div className="value">{d.error_events ?? '—'}</div>
              <div className="label">error events</div>
            </div>
            <div className="card kpi">
              <div className="value">{d.has_retry_event ? 'yes' : 'no'}</div>
              <div className="label">retried</div>
            </div>
            <div className="card kpi">
              <div className="value">{d.active_leases?.length ?? 0}</div>
              <div className="label">active leases</div>
            </div>
          </div>
          <section className="card" aria-labelledby="diag-state">
            <h2 id="diag-state">State</h2>
            <dl className="props">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={d.status} />
              </dd>
              <dt>Last node</dt>
              <dd className="mono">{d.last_node_id ?? '—'}</dd>
              <dt>Last step</dt>
              <dd className="mono">{d.last_step_id ?? '—'}</dd>
            </dl>
          </section>
          <RecordTable title="Active leases" rows={d.active_leases ?? []} empty="No lease is held for this run." />
          <RecordTable title="Idempotency entries (step records)" rows={d.idempotency_entries ?? []} empty="No step record is stored." />
        </div>
      )}
    </QueryState>
  );
}

function RecordTable({ title, rows, empty }: { title: string; rows: Record<string, unknown>[]; empty: string }) {
  const cols = [...new Set(rows.flatMap((r) => Object.keys(r)))];
  const id = `diag-${title.replace(/\W+/g, '-')}`;
  return (
    <section className="card" aria-labelledby={id}>
      <h2 id={id}>{title}</h2>
      {!rows.length ? (
        <p className="muted">{empty}</p>
      ) : (
        <div className="table-scroll">
          <GridTable
            head={cols}
            rows={rows.map((r) => cols.map((c) => (r[c] == null ? '—' : typeof r[c] === 'object' ? JSON.stringify(r[c]) : String(r[c]))))}
            cellClass="mono"
          />
        </div>
      )}
    </section>
  );
}
