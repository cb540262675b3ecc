// `POST /api/procedures/{id}/{version}/explain` as readable sections: the route, the variables, the external calls,
// the policy and the nodes, with the raw answer folded at the end.
import { JsonDetails } from '../../components/Bits';

export interface Explain {
  nodes?: { id: string; type: string; agent?: string | null; description?: string | null; steps?: { step_id: string; action: string; binding_kind?: string }[] }[];
  edges?: { from: string; to: string; condition?: string | null }[];
  variables?: { required?: string[]; produced?: string[]; missing_inputs?: string[]; provided?: string[] };
  route_trace?: { node_id: string; type: string; next_nodes: string[]; is_terminal: boolean }[];
  external_calls?: Record<string, unknown>[];
  policy_summary?: Record<string, unknown>;
  ckp?: { unreachable?: string[]; variables?: { optional_inputs?: string[]; read?: string[]; written?: string[] } };
}

function Chips({ items, empty, missing }: { items: string[] | undefined; empty: string; missing?: boolean }) {
  if (!items || items.length === 0) return <span className="muted">{empty}</span>;
  return (
    <span>
      {items.map((v) => (
        <span key={v} className={`chip${missing ? ' missing' : ''}`}>
          {v}
        </span>
      ))}
    </span>
  );
}

function show(v: unknown): string {
  if (v === null || v === undefined) return '—';
  if (typeof v === 'object') return JSON.stringify(v);
  return String(v);
}

export function ExplainView({ e }: { e: Explain }) {
  const policy = e.policy_summary ?? {};
  const calls = e.external_calls ?? [];
  return (
    <div>
      <section className="card explain-section" aria-labelledby="ex-route">
        <h2 id="ex-route">Route</h2>
        {e.route_trace && e.route_trace.length ? (
          <ol aria-labelledby="ex-route">
            {e.route_trace.map((r) => (
              <li key={r.node_id}>
                <span className="mono">{r.node_id}</span> <span className="muted">({r.type.replace(/_/g, ' ')})</span>
                {r.is_terminal ? ' · ends the run' : r.next_nodes.length ? <> → {r.next_nodes.map((n) => <span key={n} className="chip">{n}</span>)}</> : ''}
              </li>
            ))}
          </ol>
        ) : (
          <p className="muted">No route.</p>
        )}
        {e.ckp?.unreachable && e.ckp.unreachable.length > 0 && (
          <p>
            Unreachable nodes: <Chips items={e.ckp.unreachable} empty="" missing />
          </p>
        )}
      </section>
      <section className="card explain-section" aria-labelledby="ex-vars">
        <h2 id="ex-vars">Variables</h2>
        <dl className="props">
          <dt>Required inputs</dt>
          <dd>
            <Chips items={e.variables?.required} empty="none" />
          </dd>
          <dt>Optional inputs</dt>
          <dd>
            <Chips items={e.ckp?.variables?.optional_inputs} empty="none" />
          </dd>
          <dt>Missing without inputs</dt>
          <dd>
            <Chips items={e.variables?.missing_inputs} empty="none" missing />
          </dd>
          <dt>Produced</dt>
          <dd>
            <Chips items={e.variables?.produced} empty="none" />
          </dd>
          <dt>Read</dt>
          <dd>
            <Chips items={e.ckp?.variables?.read} empty="none" />
          </dd>
        </dl>
      </section>
      <section className="card explain-section" aria-labelledby="ex-calls">
        <h2 id="ex-calls">External calls</h2>
        {calls.length === 0 ? (
          <p className="muted">None: every step runs inside ckp.</p>
        ) : (
          <table className="data" aria-labelledby="ex-calls">
            <thead>
              <tr>
                {Object.keys(calls[0]).map((k) => (
                  <th key={k} scope="col">
                    {k.replace(/_/g, ' ')}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {calls.map((c, i) => (
                <tr key={i}>
                  {Object.keys(calls[0]).map((k) => (
                    <td key={k} className="mono">
                      {show(c[k])}
                    </td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </section>
      <section className="card explain-section" aria-labelledby="ex-policy">
        <h2 id="ex-policy">Policy</h2>
        <dl className="props">
          {Object.entries(policy).map(([k, v]) => (
            <div key={k} style={{ display: 'contents' }}>
              <dt>{k.replace(/_/g, ' ')}</dt>
              <dd className="mono">
                {v !== null && typeof v === 'object'
                  ? Object.entries(v as Record<string, unknown>)
                      .map(([a, b]) => `${a.replace(/_/g, ' ')}: ${show(b)}`)
                      .join(' · ')
                  : show(v)}
              </dd>
            </div>
          ))}
        </dl>
      </section>
      <section className="card explain-section" aria-labelledby="ex-nodes">
        <h2 id="ex-nodes">Nodes</h2>
        <table className="data" aria-labelledby="ex-nodes">
          <thead>
            <tr>
              <th scope="col">Node</th>
              <th scope="col">Type</th>
              <th scope="col">Agent</th>
              <th scope="col">Steps</th>
            </tr>
          </thead>
          <tbody>
            {(e.nodes ?? []).map((n) => (
              <tr key={n.id}>
                <td>
                  <span className="mono">{n.id}</span>
                  {n.description && <div className="muted">{n.description}</div>}
                </td>
                <td>{n.type.replace(/_/g, ' ')}</td>
                <td>{n.agent ?? '—'}</td>
                <td>{(n.steps ?? []).map((s) => `${s.step_id} (${s.action})`).join(', ') || '—'}</td>
              </tr>
            ))}
          </tbody>
        </table>
      </section>
      <JsonDetails value={e} summary="The whole answer (JSON)" />
    </div>
  );
}
