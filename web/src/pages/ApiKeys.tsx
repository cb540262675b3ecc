// API keys: list (prefix, role, project, expiry, last use), create (the key is shown once, with a copy button),
// revoke. The api-keys operations share their OpenAPI operation ids with others, so requests go through `raw`.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useSearchParams } from 'react-router';
import { api, data, raw, type Schemas } from '../api/client';
import { CopyButton, Empty, PageHead, QueryState } from '../components/Bits';
import { Dialog } from '../components/Dialog';
import { dateTime, relative } from '../lib/format';
import { Field, FormDialog, formErrors, NO_ERRORS, ROLES, RowAction, useConfirmedAction, useFields, useParamSetter } from './ops/kit';
import { Options } from '../components/Options';

type Key = Schemas['ApiKeyOut'];
type NewKey = Schemas['NewKeyOut'];
const KEYS = ['/api/api-keys'];
const FIELDS = ['name', 'role', 'project_id', 'expires_in_days'];
const CODES = { invalid_name: 'name', invalid_role: 'role', forbidden: 'role', not_found: 'project_id' };

function keyState(k: Key): { label: string; tone: string } {
  if (k.revoked_at) return { label: 'revoked', tone: '' };
  if (k.expires_at && new Date(k.expires_at).getTime() < Date.now()) return { label: 'expired', tone: 'warn' };
  return { label: 'active', tone: 'ok' };
}

function CreateKey({ onCreated, onClose }: { onCreated: (k: NewKey) => void; onClose: () => void }) {
  const qc = useQueryClient();
  const projects = useQuery({ queryKey: ['/api/projects'], queryFn: () => data(api.GET('/api/projects')) });
  const { f, set, errors, setErrors, input } = useFields('key', { name: '', role: 'viewer', project_id: '', expires_in_days: '90' });
  const create = useMutation({
    mutationFn: () => {
      const body: Schemas['ApiKeyIn'] = {
        name: f.name.trim(),
        role: f.role,
        project_id: f.project_id || null,
        expires_in_days: f.expires_in_days ? Number(f.expires_in_days) : null,
      };
      return raw<NewKey>('/api/api-keys', { method: 'POST', body: JSON.stringify(body) });
    },
    onSuccess: (k) => {
      void qc.invalidateQueries({ queryKey: KEYS });
      onCreated(k);
    },
    onError: (e) => setErrors(formErrors(e, FIELDS, CODES)),
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErrors(NO_ERRORS);
    const days = f.expires_in_days.trim();
    if (days && !/^\d+$/.test(days)) {
      setErrors({ fields: { expires_in_days: 'A whole number of days, or empty for a key that never expires' }, general: null });
      return;
    }
    create.mutate();
  };
  const err = errors.fields;
  return (
    <FormDialog
      id="key-form"
      title="Create an API key"
      submit="Create key"
      pending={create.isPending}
      errors={errors}
      onClose={onClose}
      onSubmit={submit}
    >
      <Field id="key-name" label="Name" help="What it is for (ci, a script, …)" error={err.name}>
        {input('name', { autoFocus: true })}
      </Field>
      <Field id="key-role" label="Role" help="At most your own" error={err.role}>
        {(ids, invalid) => (
          <select id="key-role" value={f.role} onChange={set('role')} aria-describedby={ids} aria-invalid={invalid}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        )}
      </Field>
      <Field id="key-project_id" label="Project" help="Limit the key to one project" error={err.project_id}>
        {(ids, invalid) => (
          <select id="key-project_id" value={f.project_id} onChange={set('project_id')} aria-describedby={ids} aria-invalid={invalid}>
            <Options none="Any project" items={projects.data?.map((p) => ({ value: p.project_id, label: `${p.name} (${p.project_id})` })) ?? []} />
          </select>
        )}
      </Field>
      <Field id="key-expires_in_days" label="Expires in (days)" help="Empty: never" error={err.expires_in_days}>
        {(ids, invalid) => (
          <input
            id="key-expires_in_days"
            inputMode="numeric"
            value={f.expires_in_days}
            onChange={set('expires_in_days')}
            aria-describedby={ids}
            aria-invalid={invalid}
          />
        )}
      </Field>
    </FormDialog>
  );
}

/** The new key, shown this once: it is dropped from memory when the dialog closes. */
function ShowKey({ created, onClose }: { created: NewKey; onClose: () => void }) {
  return (
    <Dialog open title="API key created" onClose={onClose} actions={<button className="primary" onClick={onClose}>Done</button>}>
      <p>
        Copy the key of <strong>{created.name}</strong> now: it is shown only once and cannot be recovered.
      </p>
      <div className="ops-key">
        <code aria-label="New API key">{created.key}</code>
        <CopyButton text={created.key} label="Copy API key" />
      </div>
      <p className="muted">
        Send it as <code>Authorization: Bearer …</code> or <code>X-API-Key</code>.
      </p>
    </Dialog>
  );
}

export default function ApiKeys() {
  const [params] = useSearchParams();
  const setParam = useParamSetter();
  const showRevoked = params.get('revoked') === '1';
  const [creating, setCreating] = useState(false);
  const [created, setCreated] = useState<NewKey | null>(null);
  const q = useQuery({ queryKey: KEYS, queryFn: () => raw<Key[]>('/api/api-keys') });
  const askRevoke = useConfirmedAction({
    ask: (k: Key) => ({
      title: 'Revoke API key',
      message: `Revoke ${k.name} (${k.prefix}…)? Every request with it is refused from now on.`,
      confirm: 'Revoke key',
      danger: true,
    }),
    run: (k) => raw(`/api/api-keys/${encodeURIComponent(k.key_id)}`, { method: 'DELETE' }),
    done: (k) => `Key ${k.name} revoked`,
    invalidate: [KEYS],
  });
  const rows = (q.data ?? []).filter((k) => showRevoked || !k.revoked_at);
  return (
    <>
      <PageHead title="API keys" sub="Keys for scripts and CI; each acts with its role">
        <button className="primary" onClick={() => setCreating(true)}>
          Create API key
        </button>
      </PageHead>
      <div className="toolbar">
        <label className="inline">
          <input
            type="checkbox"
            checked={showRevoked}
            onChange={(e) => setParam('revoked', e.target.checked ? '1' : null)}
          />
          Show revoked keys
        </label>
      </div>
      <QueryState loading={q.isLoading} error={q.error}>
        {rows.length === 0 ? (
          <Empty>No API key.</Empty>
        ) : (
          <div className="ops-table-wrap">
            <table className="data">
              <caption className="sr-only">API keys</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Prefix</th>
                  <th scope="col">Role</th>
                  <th scope="col">Project</th>
                  <th scope="col">Owner</th>
                  <th scope="col">State</th>
                  <th scope="col">Expires</th>
                  <th scope="col">Last used</th>
                  <th scope="col">Actions</th>
                </tr>
              </thead>
              <tbody>
                {rows.map((k) => {
                  const s = keyState(k);
                  return (
                    <tr key={k.key_id}>
                      <td>{k.name}</td>
                      <td className="mono">{k.prefix}…</td>
                      <td>{k.role}</td>
                      <td>{k.project_id ?? 'any'}</td>
                      <td>{k.owner ?? '—'}</td>
                      <td>
                        <span className={`badge ${s.tone}`}>{s.label}</span>
                      </td>
                      <td title={dateTime(k.expires_at)}>{k.expires_at ? relative(k.expires_at) : 'never'}</td>
                      <td title={dateTime(k.last_used_at)}>{k.last_used_at ? relative(k.last_used_at) : 'never'}</td>
                      <td>
                        {!k.revoked_at && (
                          <RowAction label="Revoke" of={k.name} danger onClick={() => void askRevoke(k)} />
                        )}
                      </td>
                    </tr>
                  );
                })}
              </tbody>
            </table>
          </div>
        )}
      </QueryState>
      {creating && (
        <CreateKey
          onClose={() => setCreating(false)}
          onCreated={(k) => {
            setCreating(false);
            setCreated(k);
          }}
        />
      )}
      {created && <ShowKey created={created} onClose={() => setCreated(null)} />}
    </>
  );
}
