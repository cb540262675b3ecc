// Agents: the registered agents with their health (status, staleness, circuit), capacity and capabilities;
// register, edit and delete; and the action catalog (`GET /api/actions`) with a search.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { api, data, raw, type Schemas } from '../api/client';
import { Empty, PageHead, QueryState, StatusBadge, TabPanel, Tabs } from '../components/Bits';
import { useToast } from '../components/Toasts';
import { hasRole, useMe } from '../lib/auth';
import { dateTime, relative } from '../lib/format';
import { useNow } from '../lib/clock';
import { Field, FormDialog, formErrors, NO_ERRORS, RowAction, useConfirmedAction, useFields, useParamSetter } from './ops/kit';

type Agent = Schemas['AgentOut'];
type Capability = Schemas['AgentCapability'];
type Lease = Schemas['LeaseOut'];

const AGENTS = ['/api/agents'];

function useAgents() {
  return useQuery({ queryKey: AGENTS, queryFn: () => data(api.GET('/api/agents')), refetchInterval: 10_000 });
}

/** Active leases per resource key: how much of an agent's capacity is in use. */
function useInUse() {
  return useQuery({
    queryKey: ['/api/leases'],
    queryFn: () => data(api.GET('/api/leases')),
    refetchInterval: 10_000,
    select: (leases: Lease[]) => {
      const m = new Map<string, number>();
      for (const l of leases) if (l.is_active) m.set(l.resource_key, (m.get(l.resource_key) ?? 0) + 1);
      return m;
    },
  });
}

function Circuit({ agent }: { agent: Agent }) {
  if (agent.circuit_open_at) {
    return (
      <span title={`Opened ${dateTime(agent.circuit_open_at)}`}>
        <StatusBadge status="open" /> <span className="muted">since {relative(agent.circuit_open_at)}</span>
      </span>
    );
  }
  return (
    <span>
      <StatusBadge status="closed" />
      {agent.consecutive_failures > 0 && (
        <span className="muted"> {agent.consecutive_failures} failed check{agent.consecutive_failures === 1 ? '' : 's'}</span>
      )}
    </span>
  );
}

function Caps({ caps, max = 4 }: { caps: Capability[]; max?: number }) {
  if (caps.length === 0) return <span className="muted">none</span>;
  return (
    <span className="ops-caps">
      {caps.slice(0, max).map((c) => (
        <code key={c.name}>{c.name}</code>
      ))}
      {caps.length > max && <span className="muted">+{caps.length - max} more</span>}
    </span>
  );
}

/** Capabilities typed one per line: `name`, or `name, workflow` for a workflow action. */
function capsToText(caps: Capability[]): string {
  return caps.map((c) => (c.type && c.type !== 'tool' ? `${c.name}, ${c.type}` : c.name)).join('\n');
}

function textToCaps(text: string, previous: Capability[]): Capability[] {
  const before = new Map(previous.map((c) => [c.name, c]));
  return text
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean)
    .map((line) => {
      const [name, type] = line.split(',').map((p) => p.trim());
      const kept = before.get(name);
      return { ...kept, name, type: type || kept?.type || 'tool', is_batch: kept?.is_batch ?? false };
    });
}

const FIELDS = ['agent_id', 'name', 'channel', 'base_url', 'concurrency_limit', 'resource_key', 'pool_id', 'capabilities', 'status'];
const CODES = { egress_refused: 'base_url', conflict: 'agent_id' };

function AgentForm({ agent, onDone }: { agent: Agent | null; onDone: (a: Agent | null) => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const editing = agent !== null;
  const { f, set, errors, setErrors, input } = useFields('agent', {
    agent_id: agent?.agent_id ?? '',
    name: agent?.name ?? '',
    channel: agent?.channel ?? '',
    base_url: agent?.base_url ?? '',
    concurrency_limit: String(agent?.concurrency_limit ?? 1),
    resource_key: agent?.resource_key ?? '',
    pool_id: agent?.pool_id ?? '',
    status: agent?.status ?? 'online',
    capabilities: capsToText(agent?.capabilities ?? []),
  });
  const save = useMutation({
    mutationFn: async (): Promise<Agent> => {
      const limit = Number(f.concurrency_limit);
      const caps = textToCaps(f.capabilities, agent?.capabilities ?? []);
      if (editing) {
        return data(
          api.PUT('/api/agents/{agent_id}', {
            params: { path: { agent_id: agent.agent_id } },
            body: {
              base_url: f.base_url.trim(),
              concurrency_limit: limit,
              pool_id: f.pool_id.trim() || null,
              status: f.status,
              capabilities: caps,
            },
          }),
        );
      }
      return data(
        api.POST('/api/agents', {
          body: {
            agent_id: f.agent_id.trim() || null,
            name: f.name.trim(),
            channel: f.channel.trim(),
            base_url: f.base_url.trim(),
            concurrency_limit: limit,
            resource_key: f.resource_key.trim() || null,
            pool_id: f.pool_id.trim() || null,
            capabilities: caps.length > 0 ? caps : null,
          },
        }),
      );
    },
    onSuccess: (a) => {
      void qc.invalidateQueries({ queryKey: AGENTS });
      void qc.invalidateQueries({ queryKey: ['/api/actions'] });
      toast.show(editing ? `Agent ${a.agent_id} saved` : `Agent ${a.agent_id} registered (${a.status})`, 'success');
      onDone(a);
    },
    onError: (e) => setErrors(formErrors(e, FIELDS, CODES)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErrors(NO_ERRORS);
    save.mutate();
  };
  const err = errors.fields;
  return (
    <FormDialog
      id="agent-form"
      title={editing ? `Edit agent ${agent.agent_id}` : 'Register an agent'}
      submit={editing ? 'Save agent' : 'Register agent'}
      pending={save.isPending}
      errors={errors}
      onClose={() => onDone(null)}
      onSubmit={submit}
    >
      {!editing && (
        <>
          <Field id="agent-name" label="Name" error={err.name}>
            {input('name', { required: true, autoFocus: true })}
          </Field>
          <Field id="agent-channel" label="Channel" help="web, desktop, email, … (matched case-insensitively)" error={err.channel}>
            {input('channel', { required: true })}
          </Field>
          <Field id="agent-agent_id" label="Agent id" help="Optional: {channel}_{name} when empty" error={err.agent_id}>
            {input('agent_id')}
          </Field>
          <Field id="agent-resource_key" label="Lease key" help="Optional: {channel}_default when empty" error={err.resource_key}>
            {input('resource_key')}
          </Field>
        </>
      )}
      <Field
        id="agent-base_url"
        label="Base URL"
        help="ckp probes GET {base_url}/health; an agent that does not answer is registered offline"
        error={err.base_url}
      >
        {input('base_url', { type: 'url', required: true, placeholder: 'http://agent.example:9000' })}
      </Field>
      <Field id="agent-concurrency_limit" label="Concurrency limit" help="Steps at once (at least 1)" error={err.concurrency_limit}>
        {input('concurrency_limit', { type: 'number', min: 1, step: 1 })}
      </Field>
      <Field id="agent-pool_id" label="Pool" help="Optional" error={err.pool_id}>
        {input('pool_id')}
      </Field>
      {editing && (
        <Field id="agent-status" label="Status" help="Setting online resets the circuit" error={err.status}>
          {(ids, invalid) => (
            <select id="agent-status" value={f.status} onChange={set('status')} aria-describedby={ids} aria-invalid={invalid}>
              <option value="online">online</option>
              <option value="offline">offline</option>
            </select>
          )}
        </Field>
      )}
      <div className="wide">
        <Field
          id="agent-capabilities"
          label="Capabilities"
          help={
            editing
              ? 'One action per line; add ", workflow" for a workflow action. Empty clears them.'
              : 'One action per line; add ", workflow" for a workflow action. Empty: asked from the agent.'
          }
          error={err.capabilities}
        >
          {(ids, invalid) => (
            <textarea
              id="agent-capabilities"
              rows={4}
              value={f.capabilities}
              onChange={set('capabilities')}
              aria-describedby={ids}
              aria-invalid={invalid}
            />
          )}
        </Field>
      </div>
    </FormDialog>
  );
}

function AgentDetail({ id, onEdit, onDelete, onClose }: { id: string; onEdit: (a: Agent) => void; onDelete: (a: Agent) => void; onClose: () => void }) {
  const q = useQuery({
    queryKey: ['/api/agents', id],
    queryFn: () => data(api.GET('/api/agents/{agent_id}', { params: { path: { agent_id: id } } })),
    refetchInterval: 10_000,
    retry: false,
  });
  const inUse = useInUse();
  const now = useNow(5000);
  const a = q.data;
  return (
    <section className="card ops-detail" aria-labelledby="agent-detail-title">
      <PageHead
        title={<span id="agent-detail-title">Agent {id}</span>}
        sub={a && <StatusBadge status={a.status} />}
      >
        {a && (
          <>
            <button onClick={() => onEdit(a)}>Edit</button>
            <button className="danger" onClick={() => onDelete(a)}>
              Delete
            </button>
          </>
        )}
        <button className="ghost" onClick={onClose}>
          Close
        </button>
      </PageHead>
      <QueryState loading={q.isLoading} error={q.error}>
        {a && (
          <>
            <dl className="props">
              <dt>Name</dt>
              <dd>{a.name}</dd>
              <dt>Channel</dt>
              <dd>{a.channel}</dd>
              <dt>Base URL</dt>
              <dd className="mono">{a.base_url}</dd>
              <dt>Capacity</dt>
              <dd>
                {inUse.data?.get(a.resource_key) ?? 0} in use of {a.concurrency_limit}
              </dd>
              <dt>Lease key</dt>
              <dd className="mono">{a.resource_key}</dd>
              <dt>Pool</dt>
              <dd>{a.pool_id ?? '—'}</dd>
              <dt>Last heartbeat</dt>
              <dd title={dateTime(a.last_heartbeat_at)}>{a.last_heartbeat_at ? relative(a.last_heartbeat_at, now) : 'never'}</dd>
              <dt>Circuit</dt>
              <dd>
                <Circuit agent={a} />
              </dd>
              <dt>Updated</dt>
              <dd>{dateTime(a.updated_at)}</dd>
            </dl>
            <h3 className="ops-section">Capabilities</h3>
            {a.capabilities.length === 0 ? (
              <Empty>No capabilities: this agent receives no step until they are set or probed.</Empty>
            ) : (
              <table className="data">
                <caption className="sr-only">Capabilities of {a.agent_id}</caption>
                <thead>
                  <tr>
                    <th scope="col">Action</th>
                    <th scope="col">Type</th>
                    <th scope="col">Description</th>
                    <th scope="col">Typical duration</th>
                    <th scope="col">Batch</th>
                  </tr>
                </thead>
                <tbody>
                  {a.capabilities.map((c) => (
                    <tr key={c.name}>
                      <td className="mono">{c.name}</td>
                      <td>{c.type ?? 'tool'}</td>
                      <td>{c.description ?? '—'}</td>
                      <td>{c.estimated_duration_s != null ? `${c.estimated_duration_s} s` : '—'}</td>
                      <td>{c.is_batch ? 'yes' : 'no'}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
          </>
        )}
      </QueryState>
    </section>
  );
}

function AgentList({ onOpen, onEdit, onDelete, canEdit }: { onOpen: (id: string) => void; onEdit: (a: Agent) => void; onDelete: (a: Agent) => void; canEdit: boolean }) {
  const q = useAgents();
  const inUse = useInUse();
  const now = useNow(5000);
  return (
    <QueryState loading={q.isLoading} error={q.error}>
      {q.data && q.data.length === 0 ? (
        <Empty>No agent is registered. Register one to run steps on it.</Empty>
      ) : (
        <div className="ops-table-wrap">
          <table className="data">
            <caption className="sr-only">Registered agents</caption>
            <thead>
              <tr>
                <th scope="col">Agent</th>
                <th scope="col">Status</th>
                <th scope="col">Channel</th>
                <th scope="col">Capacity</th>
                <th scope="col">Last heartbeat</th>
                <th scope="col">Circuit</th>
                <th scope="col">Capabilities</th>
                {canEdit && <th scope="col">Actions</th>}
              </tr>
            </thead>
            <tbody>
              {q.data?.map((a) => (
                <tr key={a.agent_id}>
                  <td>
                    <a
                      href={`?agent=${encodeURIComponent(a.agent_id)}`}
                      onClick={(e) => {
                        e.preventDefault();
                        onOpen(a.agent_id);
                      }}
                    >
                      {a.name}
                    </a>
                    <div className="muted mono">{a.agent_id}</div>
                  </td>
                  <td>
                    <StatusBadge status={a.status} />
                  </td>
                  <td>{a.channel}</td>
                  <td className="ops-num">
                    {inUse.data?.get(a.resource_key) ?? 0} / {a.concurrency_limit}
                  </td>
                  <td title={dateTime(a.last_heartbeat_at)}>
                    {a.last_heartbeat_at ? relative(a.last_heartbeat_at, now) : <span className="muted">never</span>}
                  </td>
                  <td>
                    <Circuit agent={a} />
                  </td>
                  <td>
                    <Caps caps={a.capabilities} />
                  </td>
                  {canEdit && (
                    <td>
                      <div className="ops-row-actions">
                        <RowAction label="Edit" of={a.agent_id} onClick={() => onEdit(a)} />
                        <RowAction label="Delete" of={a.agent_id} danger onClick={() => onDelete(a)} />
                      </div>
                    </td>
                  )}
                </tr>
              ))}
            </tbody>
          </table>
        </div>
      )}
    </QueryState>
  );
}

function ActionCatalog() {
  const [params] = useSearchParams();
  const setParam = useParamSetter();
  const search = params.get('q') ?? '';
  const q = useQuery({ queryKey: ['/api/actions'], queryFn: () => raw<Record<string, string[]>>('/api/actions') });
  const needle = search.trim().toLowerCase();
  const rows = Object.entries(q.data ?? {})
    .flatMap(([channel, names]) => names.map((name) => ({ channel, name })))
    .filter((r) => !needle || r.name.toLowerCase().includes(needle) || r.channel.toLowerCase().includes(needle));
  return (
    <>
      <div className="toolbar">
        <label>
          Search actions
          <input
            type="search"
            value={search}
            onChange={(e) => setParam('q', e.target.value || null)}
            placeholder="parse_json, web, …"
          />
        </label>
        <span className="muted" role="status">
          {rows.length} action{rows.length === 1 ? '' : 's'}
        </span>
      </div>
      <QueryState loading={q.isLoading} error={q.error}>
        {rows.length === 0 ? (
          <Empty>No action matches.</Empty>
        ) : (
          <table className="data">
            <caption className="sr-only">Action catalog</caption>
            <thead>
              <tr>
                <th scope="col">Action</th>
                <th scope="col">Channel</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => (
                <tr key={`${r.channel}/${r.name}`}>
                  <td className="mono">{r.name}</td>
                  <td>{r.channel === 'internal' ? 'internal (built in)' : r.channel}</td>
                </tr>
              ))}
            </tbody>
          </table>
        )}
      </QueryState>
    </>
  );
}

export default function Agents() {
  const [params] = useSearchParams();
  const tab = params.get('tab') === 'actions' ? 'actions' : 'agents';
  const open = params.get('agent');
  const [editing, setEditing] = useState<Agent | null | 'new'>(null);
  const qc = useQueryClient();
  const me = useMe();
  const canEdit = hasRole(me.data, 'manager');
  const setParam = useParamSetter(false);
  const askDelete = useConfirmedAction({
    ask: (a: Agent) => ({
      title: 'Delete agent',
      message: (
        <>
          Delete agent <strong>{a.agent_id}</strong> ({a.base_url})? Steps will no longer be sent to it.
        </>
      ),
      confirm: 'Delete agent',
      danger: true,
    }),
    run: (a) => data(api.DELETE('/api/agents/{agent_id}', { params: { path: { agent_id: a.agent_id } } })),
    done: (a) => `Agent ${a.agent_id} deleted`,
    onSuccess: (a) => {
      if (open === a.agent_id) setParam('agent', null);
      qc.removeQueries({ queryKey: ['/api/agents', a.agent_id] });
    },
    invalidate: [AGENTS, ['/api/actions']],
  });
  return (
    <>
      <PageHead title="Agents" sub="Where steps run: health, capacity and capabilities">
        {canEdit && (
          <button className="primary" onClick={() => setEditing('new')}>
            Register agent
          </button>
        )}
      </PageHead>
      {open && (
        <AgentDetail
          key={open}
          id={open}
          onEdit={(a) => setEditing(a)}
          onDelete={(a) => void askDelete(a)}
          onClose={() => setParam('agent', null)}
        />
      )}
      <Tabs
        label="Agents sections"
        value={tab}
        onChange={(t) => setParam('tab', t === 'agents' ? null : t)}
        tabs={[
          { id: 'agents', label: 'Agents' },
          { id: 'actions', label: 'Action catalog' },
        ]}
      />
      <TabPanel id={tab}>
        {tab === 'agents' ? (
          <AgentList canEdit={canEdit} onOpen={(id) => setParam('agent', id)} onEdit={setEditing} onDelete={(a) => void askDelete(a)} />
        ) : (
          <ActionCatalog />
        )}
      </TabPanel>
      {editing !== null && (
        <AgentForm
          agent={editing === 'new' ? null : editing}
          onDone={(a) => {
            setEditing(null);
            if (a) void qc.invalidateQueries({ queryKey: ['/api/agents', a.agent_id] });
          }}
        />
      )}
    </>
  );
}
