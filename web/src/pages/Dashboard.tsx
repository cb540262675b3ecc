// The dashboard, from server aggregates: run totals and activity over 24 h / 7 d / 30 d (`/api/runs/stats`, the
// range in the URL), pending approvals, queue depth, agents online and their capacity, failing procedures and the
// latest runs. Refreshed every 10 seconds.
import { useQuery } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router';
import { api, data, raw, type Schemas } from '../api/client';
import { Empty, ErrorBanner, PageHead, QueryState, StatusBadge } from '../components/Bits';
import { BucketTable } from '../components/BucketTable';
import { cost, count, duration } from '../lib/format';
import { statsMissing, useRunStats, type RunStats, type RunStatsByProcedure } from '../lib/runStats';
import { qs, RunTable, type Run } from './catalog/shared';
import './catalog/catalog.css';

const REFRESH = 10_000;
const RANGES = { '24h': { hours: 24, label: '24 h' }, '7d': { hours: 168, label: '7 d' }, '30d': { hours: 720, label: '30 d' } } as const;
type RangeKey = keyof typeof RANGES;

interface Queue {
  total_pending?: number;
  total_running?: number;
}

export default function Dashboard() {
  const [params, setParams] = useSearchParams();
  const key: RangeKey = (params.get('range') as RangeKey) in RANGES ? (params.get('range') as RangeKey) : '24h';
  const range = RANGES[key];

  const stats = useRunStats(range.hours, REFRESH);
  const approvals = useQuery({
    queryKey: ['approvals', 'pending'],
    queryFn: () => raw<Schemas['ApprovalOut'][]>('/api/approvals?status=pending'),
    refetchInterval: REFRESH,
  });
  const queue = useQuery({ queryKey: ['run-queue'], queryFn: () => raw<Queue>('/api/runs/queue'), refetchInterval: REFRESH });
  const agents = useQuery({ queryKey: ['agents'], queryFn: () => data(api.GET('/api/agents')), refetchInterval: REFRESH });
  const recent = useQuery({
    queryKey: ['runs', { limit: 10 }],
    queryFn: () => raw<Run[]>(`/api/runs${qs({ limit: 10 })}`),
    refetchInterval: REFRESH,
  });

  const t = stats.data?.totals;
  const online = agents.data?.filter((a) => a.status === 'online') ?? [];
  const missing = statsMissing(stats.error);

  return (
    <>
      <PageHead title="Dashboard" sub={`Runs of the last ${range.label}, refreshed every 10 seconds`}>
        <span className="segmented" role="group" aria-label="Time range">
          {(Object.keys(RANGES) as RangeKey[]).map((k) => (
            <button key={k} aria-pressed={k === key} onClick={() => setParams({ range: k }, { replace: true })}>
              {RANGES[k].label}
            </button>
          ))}
        </span>
      </PageHead>
      {stats.error && (missing ? <div className="banner warn">This server does not report run statistics yet (GET /api/runs/stats).</div> : <ErrorBanner error={stats.error} />)}
      <section className="grid kpis" aria-label="Key figures">
        <Kpi label={`Runs created (${range.label})`} value={t?.created} to="/runs" />
        <Kpi label={`Completed (${range.label})`} value={t?.completed} to="/runs?status=completed" />
        <Kpi label={`Failed (${range.label})`} value={t?.failed} to="/runs?status=failed" />
        <Kpi label="Running now" value={t?.running ?? queue.data?.total_running} to="/runs?status=running" />
        <Kpi label="Pending approvals" value={approvals.data?.length} to="/approvals" />
        <Kpi label="Queued jobs" value={queue.data?.total_pending} to="/runs?status=created" />
        <Kpi label="Agents online" value={agents.data ? `${online.length} / ${agents.data.length}` : undefined} to="/agents" />
      </section>
      <div className="grid two dash-grid">
        <section className="card chart" aria-labelledby="activity-title">
          <h2 id="activity-title">Run activity</h2>
          <QueryState loading={stats.isLoading} error={missing ? null : stats.error}>
            {stats.data ? <ActivityChart stats={stats.data} /> : missing && <Empty>No statistics from this server.</Empty>}
          </QueryState>
        </section>
        <section className="card" aria-labelledby="failing-title">
          <h2 id="failing-title">
            Failing procedures
            <Link className="more" to="/runs?status=failed">
              Failed runs
            </Link>
          </h2>
          <QueryState loading={stats.isLoading} error={null}>
            {stats.data ? <Failing list={stats.data.by_procedure} /> : <Empty>No statistics from this server.</Empty>}
          </QueryState>
        </section>
        <section className="card" aria-labelledby="recent-title">
          <h2 id="recent-title">
            Recent runs
            <Link className="more" to="/runs">
              All runs
            </Link>
          </h2>
          <QueryState loading={recent.isLoading} error={recent.error}>
            {recent.data?.length ? <RunTable runs={recent.data} label="Recent runs" withProcedure /> : <Empty>No run yet.</Empty>}
          </QueryState>
        </section>
        <section className="card" aria-labelledby="agents-title">
          <h2 id="agents-title">
            Agent capacity
            <Link className="more" to="/agents">
              Agents
            </Link>
          </h2>
          <QueryState loading={agents.isLoading} error={agents.error}>
            <Capacity agents={agents.data ?? []} />
          </QueryState>
        </section>
      </div>
    </>
  );
}

function Kpi({ label, value, to }: { label: string; value: number | string | undefined; to: string }) {
  return (
    <Link to={to} className="card kpi" style={{ color: 'inherit' }}>
      <div className="value">{typeof value === 'number' ? count(value) : (value ?? '—')}</div>
      <div className="label">{label}</div>
    </Link>
  );
}

function bucketLabel(start: string, seconds: number): string {
  const d = new Date(start);
  return seconds >= 86400
    ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
    : d.toLocaleString(undefined, { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit' });
}

/** Stacked bars (completed, failed, canceled) per bucket, with the same numbers as a table for screen readers. */
function ActivityChart({ stats }: { stats: RunStats }) {
  const buckets = stats.buckets;
  const W = 640;
  const H = 180;
  const pad = { l: 32, b: 22, t: 8 };
  const max = Math.max(1, ...buckets.map((b) => b.completed + b.failed + b.canceled));
  const bw = buckets.length ? (W - pad.l) / buckets.length : 0;
  const y = (n: number) => ((H - pad.b - pad.t) * n) / max;
  const totals = buckets.reduce((a, b) => ({ c: a.c + b.completed, f: a.f + b.failed, x: a.x + b.canceled }), { c: 0, f: 0, x: 0 });
  const summary = `${count(totals.c)} completed, ${count(totals.f)} failed and ${count(totals.x)} canceled runs in ${buckets.length} ${stats.bucket_seconds >= 86400 ? 'days' : 'hours'}`;
  const every = Math.max(1, Math.ceil(buckets.length / 6));
  return (
    <>
      <svg viewBox={`0 0 ${W} ${H}`} role="img" aria-label={`Run activity: ${summary}`}>
        <line className="axis" x1={pad.l} x2={W} y1={H - pad.b} y2={H - pad.b} />
        <text className="tick" x={pad.l - 4} y={pad.t + 8} textAnchor="end">
          {max}
        </text>
        <text className="tick" x={pad.l - 4} y={H - pad.b} textAnchor="end">
          0
        </text>
        {buckets.map((b, i) => {
          const x = pad.l + i * bw + 1;
          const w = Math.max(1, bw - 2);
          let base = H - pad.b;
          const parts: [string, number][] = [
            ['completed', b.completed],
            ['failed', b.failed],
            ['canceled', b.canceled],
          ];
          return (
            <g key={b.start}>
              <title>{`${bucketLabel(b.start, stats.bucket_seconds)}: ${b.completed} completed, ${b.failed} failed, ${b.canceled} canceled`}</title>
              {parts.map(([k, n]) => {
                if (!n) return null;
                const h = y(n);
                base -= h;
                return <rect key={k} className={`bar-${k}`} x={x} y={base} width={w} height={h} />;
              })}
              {i % every === 0 && (
                <text className="tick" x={x} y={H - 6}>
                  {bucketLabel(b.start, stats.bucket_seconds)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <div className="legend" aria-hidden="true">
        <span>
          <span className="swatch completed" />
          completed
        </span>
        <span>
          <span className="swatch failed" />
          failed
        </span>
        <span>
          <span className="swatch canceled" />
          canceled
        </span>
      </div>
      <details>
        <summary>Show as a table</summary>
        <BucketTable stats={stats} label="Run activity" when={(start) => bucketLabel(start, stats.bucket_seconds)} numClass="num" />
      </details>
    </>
  );
}

function Failing({ list }: { list: RunStatsByProcedure[] }) {
  const failing = list
    .filter((p) => p.failed > 0)
    .sort((a, b) => b.failure_rate - a.failure_rate || b.failed - a.failed)
    .slice(0, 8);
  if (failing.length === 0) return <Empty>No failed run in this period.</Empty>;
  return (
    <table className="data" aria-label="Failing procedures">
      <thead>
        <tr>
          <th scope="col">Procedure</th>
          <th scope="col" className="num">Failure rate</th>
          <th scope="col" className="num">Failed / runs</th>
          <th scope="col" className="num">p95</th>
          <th scope="col" className="num">Cost</th>
        </tr>
      </thead>
      <tbody>
        {failing.map((p) => (
          <tr key={p.procedure_id}>
            <td>
              <Link to={`/runs${qs({ procedure_id: p.procedure_id, status: 'failed' })}`} aria-label={`Failed runs of ${p.procedure_id}`}>
                {p.procedure_id}
              </Link>
            </td>
            <td className="num">{(p.failure_rate * 100).toFixed(1)} %</td>
            <td className="num">
              {count(p.failed)} / {count(p.total)}
            </td>
            <td className="num">{duration(p.p95_seconds)}</td>
            <td className="num">{cost(p.cost_usd)}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Capacity({ agents }: { agents: Schemas['AgentOut'][] }) {
  if (agents.length === 0) return <Empty>No agent registered.</Empty>;
  const online = agents.filter((a) => a.status === 'online');
  const total = agents.reduce((n, a) => n + a.concurrency_limit, 0);
  const available = online.reduce((n, a) => n + a.concurrency_limit, 0);
  return (
    <>
      <p>
        {count(available)} of {count(total)} concurrent step slots are on online agents.
      </p>
      <table className="data" aria-label="Agents">
        <thead>
          <tr>
            <th scope="col">Agent</th>
            <th scope="col">Status</th>
            <th scope="col" className="num">Slots</th>
            <th scope="col">Circuit</th>
          </tr>
        </thead>
        <tbody>
          {agents.slice(0, 10).map((a) => (
            <tr key={a.agent_id}>
              <td>
                {a.name}
                <div className="muted mono">{a.agent_id}</div>
              </td>
              <td>
                <StatusBadge status={a.status} />
              </td>
              <td className="num">{a.concurrency_limit}</td>
              <td>{a.circuit_open_at ? <StatusBadge status="open" /> : <span className="muted">closed</span>}</td>
            </tr>
          ))}
        </tbody>
      </table>
    </>
  );
}
