// Health & metrics: the server's health, run throughput per bucket (an SVG chart with a table as its text
// alternative), failure rate, p50/p95 durations by procedure, the job queue and the metrics counters.
// The period (1 h / 24 h / 7 d) lives in the URL.
import { useQuery } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router';
import { raw } from '../api/client';
import { Empty, PageHead, QueryState, StatusBadge } from '../components/Bits';
import { BucketTable } from '../components/BucketTable';
import { cost, count, dateTime, duration, shortId } from '../lib/format';
import { statsMissing, useRunStats, type RunStats } from '../lib/runStats';
import './ops/ops.css';

interface Job {
  job_id: string;
  run_id: string;
  status: string;
  priority: number;
  attempts: number;
  available_at: string;
  locked_by: string | null;
}
interface Queue {
  depth_by_status: Record<string, number>;
  total_pending: number;
  total_running: number;
  total_done: number;
  total_failed: number;
  next_jobs: Job[];
}
interface Summary {
  counters: Record<string, number>;
  gauges: Record<string, number>;
  histograms: Record<string, unknown>;
}

const PERIODS = [
  { id: '1h', hours: 1, label: '1 h' },
  { id: '24h', hours: 24, label: '24 h' },
  { id: '7d', hours: 168, label: '7 d' },
] as const;

const pct = (r: number | null | undefined) => (r == null || Number.isNaN(r) ? '—' : `${(r * 100).toFixed(1)} %`);

function bucketLabel(ts: string, seconds: number): string {
  const d = new Date(ts);
  return seconds >= 86400
    ? d.toLocaleDateString(undefined, { month: 'short', day: 'numeric' })
    : d.toLocaleTimeString(undefined, { hour: '2-digit', minute: '2-digit' });
}

function ThroughputChart({ stats }: { stats: RunStats }) {
  const b = stats.buckets;
  const max = Math.max(1, ...b.map((x) => Math.max(x.created, x.completed + x.failed)));
  const W = 720;
  const H = 180;
  const pad = { l: 30, b: 22, t: 8 };
  const slot = (W - pad.l) / Math.max(1, b.length);
  const bar = Math.max(1, slot / 2 - 1);
  const y = (v: number) => H - pad.b - (v / max) * (H - pad.b - pad.t);
  const every = Math.max(1, Math.ceil(b.length / 8));
  const created = b.reduce((s, x) => s + x.created, 0);
  const done = b.reduce((s, x) => s + x.completed, 0);
  const failed = b.reduce((s, x) => s + x.failed, 0);
  const summary = `Runs per ${stats.bucket_seconds >= 86400 ? 'day' : 'hour'}: ${created} created, ${done} completed, ${failed} failed; busiest bucket ${max}.`;
  return (
    <figure style={{ margin: 0 }}>
      <div className="ops-legend" aria-hidden="true">
        <span className="created">created</span>
        <span className="completed">completed</span>
        <span className="failed">failed</span>
      </div>
      <svg className="ops-chart" viewBox={`0 0 ${W} ${H}`} preserveAspectRatio="none" role="img" aria-label={summary}>
        <line className="axis" x1={pad.l} x2={W} y1={H - pad.b} y2={H - pad.b} />
        <text x={pad.l - 4} y={pad.t + 8} textAnchor="end">
          {max}
        </text>
        <text x={pad.l - 4} y={H - pad.b} textAnchor="end">
          0
        </text>
        {b.map((x, i) => {
          const x0 = pad.l + i * slot;
          return (
            <g key={x.start}>
              <title>{`${bucketLabel(x.start, stats.bucket_seconds)}: ${x.created} created, ${x.completed} completed, ${x.failed} failed`}</title>
              <rect className="bar-created" x={x0} y={y(x.created)} width={bar} height={H - pad.b - y(x.created)} />
              <rect className="bar-completed" x={x0 + bar + 1} y={y(x.completed)} width={bar} height={H - pad.b - y(x.completed)} />
              <rect
                className="bar-failed"
                x={x0 + bar + 1}
                y={y(x.completed + x.failed)}
                width={bar}
                height={y(x.completed) - y(x.completed + x.failed)}
              />
              {i % every === 0 && (
                <text x={x0} y={H - 6}>
                  {bucketLabel(x.start, stats.bucket_seconds)}
                </text>
              )}
            </g>
          );
        })}
      </svg>
      <figcaption>
        <details>
          <summary>Throughput as a table</summary>
          <BucketTable stats={stats} label="Runs per bucket" when={dateTime} numClass="ops-num" />
        </details>
      </figcaption>
    </figure>
  );
}

function Health() {
  const q = useQuery({ queryKey: ['/api/health'], queryFn: () => raw<Record<string, unknown>>('/api/health'), refetchInterval: 10_000 });
  const h = q.data;
  const show = (v: unknown) => (typeof v === 'boolean' ? (v ? 'yes' : 'no') : typeof v === 'object' ? JSON.stringify(v) : String(v));
  return (
    <section className="card" aria-labelledby="health-title">
      <h2 id="health-title">Health</h2>
      <QueryState loading={q.isLoading} error={q.error}>
        {h && (
          <dl className="props">
            <dt>Status</dt>
            <dd>
              <StatusBadge status={h.status === 'ok' ? 'online' : String(h.status)} /> <span>{String(h.status)}</span>
            </dd>
            {'leader' in h && (
              <>
                <dt>Leader</dt>
                <dd>{h.leader ? 'yes: this process runs lease reclaim and agent health checks' : 'no: another process leads'}</dd>
              </>
            )}
            {Object.entries(h)
              .filter(([k]) => k !== 'status' && k !== 'leader')
              .map(([k, v]) => (
                <div key={k} style={{ display: 'contents' }}>
                  <dt>{k.replace(/_/g, ' ')}</dt>
                  <dd>{show(v)}</dd>
                </div>
              ))}
          </dl>
        )}
      </QueryState>
    </section>
  );
}

function QueueSection() {
  const q = useQuery({ queryKey: ['/api/runs/queue'], queryFn: () => raw<Queue>('/api/runs/queue'), refetchInterval: 10_000 });
  const depth = Object.entries(q.data?.depth_by_status ?? {});
  return (
    <section className="ops-section" aria-labelledby="queue-title">
      <h2 id="queue-title">Job queue</h2>
      <QueryState loading={q.isLoading} error={q.error}>
        {q.data && (
          <div className="grid two">
            <table className="data">
              <caption className="sr-only">Queue depth by state</caption>
              <thead>
                <tr>
                  <th scope="col">State</th>
                  <th scope="col" className="ops-num">Jobs</th>
                </tr>
              </thead>
              <tbody>
                <tr>
                  <td>pending</td>
                  <td className="ops-num">{count(q.data.total_pending)}</td>
                </tr>
                <tr>
                  <td>running</td>
                  <td className="ops-num">{count(q.data.total_running)}</td>
                </tr>
                {depth
                  .filter(([s]) => s !== 'queued' && s !== 'running')
                  .map(([s, n]) => (
                    <tr key={s}>
                      <td>{s}</td>
                      <td className="ops-num">{count(n)}</td>
                    </tr>
                  ))}
              </tbody>
            </table>
            <div>
              {q.data.next_jobs.length === 0 ? (
                <Empty>No job is waiting.</Empty>
              ) : (
                <table className="data">
                  <caption className="sr-only">Next jobs</caption>
                  <thead>
                    <tr>
                      <th scope="col">Run</th>
                      <th scope="col">State</th>
                      <th scope="col" className="ops-num">Priority</th>
                      <th scope="col" className="ops-num">Attempts</th>
                      <th scope="col">Available</th>
                      <th scope="col">Worker</th>
                    </tr>
                  </thead>
                  <tbody>
                    {q.data.next_jobs.map((j) => (
                      <tr key={j.job_id}>
                        <td>
                          <Link to={`/runs/${encodeURIComponent(j.run_id)}`} className="mono" title={j.run_id}>
                            {shortId(j.run_id)}
                          </Link>
                        </td>
                        <td>
                          <StatusBadge status={j.status} />
                        </td>
                        <td className="ops-num">{j.priority}</td>
                        <td className="ops-num">{j.attempts}</td>
                        <td>{dateTime(j.available_at)}</td>
                        <td className="mono">{j.locked_by ?? '—'}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              )}
            </div>
          </div>
        )}
      </QueryState>
    </section>
  );
}

function SummarySection() {
  const q = useQuery({ queryKey: ['/api/runs/metrics/summary'], queryFn: () => raw<Summary>('/api/runs/metrics/summary'), refetchInterval: 30_000 });
  const rows = [
    ...Object.entries(q.data?.counters ?? {}).map(([k, v]) => ({ kind: 'counter', k, v })),
    ...Object.entries(q.data?.gauges ?? {}).map(([k, v]) => ({ kind: 'gauge', k, v })),
  ];
  return (
    <section className="ops-section" aria-labelledby="summary-title">
      <h2 id="summary-title">Counters and gauges</h2>
      <QueryState loading={q.isLoading} error={q.error}>
        {rows.length === 0 ? (
          <Empty>No counter has been recorded yet.</Empty>
        ) : (
          <table className="data">
            <caption className="sr-only">Metrics counters and gauges</caption>
            <thead>
              <tr>
                <th scope="col">Metric</th>
                <th scope="col">Kind</th>
                <th scope="col" className="ops-num">Value</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.kind}:${r.k}`}>
                  <td className="mono">{r.k}</td>
                  <td>{r.kind}</td>
                  <td className="ops-num">{count(r.v)}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </QueryState>
    </section>
  );
}

function StatsSection({ hours }: { hours: number }) {
  const q = useRunStats(hours, 30_000);
  if (statsMissing(q.error)) {
    return (
      <div className="banner info" role="status">
        This server does not report run statistics yet (GET /api/runs/stats): throughput and durations appear once it does.
      </div>
    );
  }
  const s = q.data;
  const t = s?.totals;
  const finished = t ? t.completed + t.failed : 0;
  return (
    <QueryState loading={q.isLoading} error={q.error}>
      {s && t && (
        <>
          <div className="grid kpis">
            {[
              ['Created', count(t.created)],
              ['Completed', count(t.completed)],
              ['Failed', count(t.failed)],
              ['Failure rate', finished ? pct(t.failed / finished) : '—'],
              ['Running', count(t.running)],
              ['Waiting approval', count(t.waiting_approval)],
            ].map(([label, value]) => (
              <div className="card kpi" key={label}>
                <div className="value">{value}</div>
                <div className="label">{label}</div>
              </div>
            ))}
          </div>
          <section className="card ops-section" aria-labelledby="throughput-title">
            <h2 id="throughput-title">Throughput</h2>
            {s.buckets.length === 0 ? <Empty>No run in this period.</Empty> : <ThroughputChart stats={s} />}
          </section>
          <section className="ops-section" aria-labelledby="byproc-title">
            <h2 id="byproc-title">By procedure</h2>
            {s.by_procedure.length === 0 ? (
              <Empty>No run in this period.</Empty>
            ) : (
              <div className="ops-table-wrap">
                <table className="data">
                  <caption className="sr-only">Runs and durations by procedure</caption>
                  <thead>
                    <tr>
                      <th scope="col">Procedure</th>
                      <th scope="col" className="ops-num">Runs</th>
                      <th scope="col" className="ops-num">Completed</th>
                      <th scope="col" className="ops-num">Failed</th>
                      <th scope="col" className="ops-num">Failure rate</th>
                      <th scope="col" className="ops-num">p50</th>
                      <th scope="col" className="ops-num">p95</th>
                      <th scope="col" className="ops-num">Cost</th>
                    </tr>
                  </thead>
                  <tbody>
                    {s.by_procedure.map((p) => (
                      <tr key={p.procedure_id}>
                        <td>
                          <Link to={`/runs?procedure_id=${encodeURIComponent(p.procedure_id)}`}>{p.procedure_id}</Link>
                        </td>
                        <td className="ops-num">{count(p.total)}</td>
                        <td className="ops-num">{count(p.completed)}</td>
                        <td className="ops-num">{count(p.failed)}</td>
                        <td className="ops-num">{pct(p.failure_rate)}</td>
                        <td className="ops-num">{duration(p.p50_seconds)}</td>
                        <td className="ops-num">{duration(p.p95_seconds)}</td>
                        <td className="ops-num">{cost(p.cost_usd)}</td>
                      </tr>
                    ))}
                  </tbody>
                </table>
              </div>
            )}
          </section>
        </>
      )}
    </QueryState>
  );
}

export default function Metrics() {
  const [params, setParams] = useSearchParams();
  const period = PERIODS.find((p) => p.id === params.get('period')) ?? PERIODS[1];
  return (
    <>
      <PageHead title="Health & metrics" sub="Server health, run throughput and durations, and the job queue">
        <div className="ops-period" role="group" aria-label="Period">
          {PERIODS.map((p) => (
            <button
              key={p.id}
              aria-pressed={p.id === period.id}
              onClick={() => {
                const next = new URLSearchParams(params);
                next.set('period', p.id);
                setParams(next, { replace: true });
              }}
            >
              {p.label}
            </button>
          ))}
        </div>
      </PageHead>
      <div className="grid">
        <Health />
        <StatsSection hours={period.hours} />
      </div>
      <QueueSection />
      <SummarySection />
    </>
  );
}
