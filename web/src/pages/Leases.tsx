// Leases: who holds which resource (the run and node), until when (a live countdown), and a force release.
import { useQuery } from '@tanstack/react-query';
import { Link, useSearchParams } from 'react-router';
import { api, data, type Schemas } from '../api/client';
import { Empty, PageHead, QueryState } from '../components/Bits';
import { hasRole, useMe } from '../lib/auth';
import { dateTime, shortId } from '../lib/format';
import { useNow } from '../lib/clock';
import { countdown, useConfirmedAction, useParamSetter } from './ops/kit';

type Lease = Schemas['LeaseOut'];

export default function Leases() {
  const [params] = useSearchParams();
  const resource = params.get('resource_key') ?? '';
  const all = params.get('all') === '1';
  const me = useMe();
  const canRelease = hasRole(me.data, 'operator');
  const now = useNow(1000);
  const key = ['/api/leases', resource];
  const q = useQuery({
    queryKey: key,
    queryFn: () => data(api.GET('/api/leases', { params: { query: resource ? { resource_key: resource } : {} } })),
    refetchInterval: 5_000,
  });
  const setParam = useParamSetter();
  const rows = (q.data ?? []).filter((l) => all || l.is_active);
  const askRelease = useConfirmedAction({
    ask: (l: Lease) => ({
      title: 'Force release lease',
      message: (
        <>
          Release the lease on <strong>{l.resource_key}</strong> held by run <span className="mono">{l.run_id}</span>? The
          run may still be using the resource; another run can take it at once.
        </>
      ),
      confirm: 'Release lease',
      danger: true,
    }),
    run: (l) => data(api.DELETE('/api/leases/{lease_id}', { params: { path: { lease_id: l.lease_id } } })),
    done: (l) => `Lease on ${l.resource_key} released`,
    invalidate: [['/api/leases']],
  });
  return (
    <>
      <PageHead title="Leases" sub="Resources held by runs; refreshed every 5 seconds" />
      <div className="toolbar">
        <label>
          Resource key
          <input
            type="search"
            value={resource}
            placeholder="web_default"
            onChange={(e) => setParam('resource_key', e.target.value || null)}
          />
        </label>
        <label className="inline">
          <input type="checkbox" checked={all} onChange={(e) => setParam('all', e.target.checked ? '1' : null)} />
          Show released and expired
        </label>
      </div>
      <QueryState loading={q.isLoading} error={q.error}>
        {rows.length === 0 ? (
          <Empty>{all ? 'No lease.' : 'No active lease: no run holds a resource now.'}</Empty>
        ) : (
          <div className="ops-table-wrap">
            <table className="data">
              <caption className="sr-only">Leases</caption>
              <thead>
                <tr>
                  <th scope="col">Resource</th>
                  <th scope="col">Run (holder)</th>
                  <th scope="col">Node</th>
                  <th scope="col">Step</th>
                  <th scope="col">Acquired</th>
                  <th scope="col">Expires</th>
                  {canRelease && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {rows.map((l) => (
                  <tr key={l.lease_id}>
                    <td className="mono">{l.resource_key}</td>
                    <td>
                      <Link to={`/runs/${encodeURIComponent(l.run_id)}`} title={l.run_id} className="mono">
                        {shortId(l.run_id)}
                      </Link>
                    </td>
                    <td>
                      {l.node_id ? (
                        <Link to={`/runs/${encodeURIComponent(l.run_id)}?node=${encodeURIComponent(l.node_id)}`} className="mono">
                          {l.node_id}
                        </Link>
                      ) : (
                        '—'
                      )}
                    </td>
                    <td className="mono">{l.step_id ?? '—'}</td>
                    <td title={dateTime(l.acquired_at)}>{dateTime(l.acquired_at)}</td>
                    <td title={dateTime(l.expires_at)}>
                      {l.released_at ? `released ${dateTime(l.released_at)}` : countdown(l.expires_at, now)}
                    </td>
                    {canRelease && (
                      <td>
                        {l.is_active && (
                          <button
                            className="small danger"
                            aria-label={`Release lease on ${l.resource_key}`}
                            onClick={() => void askRelease(l)}
                          >
                            Release
                          </button>
                        )}
                      </td>
                    )}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
    </>
  );
}
