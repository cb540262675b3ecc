// Secrets: names, provider and metadata (never values); create, replace the value (write-only), delete.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
// The secrets operations share their OpenAPI operation ids with others (`list`, `create`, ...), so the generated
// path types are wrong for them: requests go through `raw` with the schema's component types.
import { raw, type Schemas } from '../api/client';
import { Empty, PageHead, QueryState } from '../components/Bits';
import { useToast } from '../components/Toasts';
import { hasRole, useMe } from '../lib/auth';
import { dateTime, relative } from '../lib/format';
import { Field, FormDialog, formErrors, NO_ERRORS, parseTags, RowAction, useConfirmedAction, useFields } from './ops/kit';

type Secret = Schemas['SecretOut'];
const SECRETS = ['/api/secrets'];
const FIELDS = ['name', 'value', 'description', 'provider_hint', 'tags'];
const CODES = { conflict: 'name' };

function SecretForm({ secret, onDone }: { secret: Secret | null; onDone: () => void }) {
  const editing = secret !== null;
  const qc = useQueryClient();
  const toast = useToast();
  const { f, setF, errors, setErrors, input } = useFields('secret', {
    name: secret?.name ?? '',
    value: '',
    description: secret?.description ?? '',
    provider_hint: secret?.provider_hint ?? 'db',
    tags: secret?.tags.join(', ') ?? '',
  });
  const save = useMutation({
    mutationFn: (): Promise<Secret> => {
      const description = f.description.trim() || null;
      const tags = parseTags(f.tags);
      const provider_hint = f.provider_hint.trim() || null;
      if (editing) {
        const body: Schemas['SecretUpdateIn'] = { value: f.value === '' ? null : f.value, description, tags, provider_hint };
        return raw<Secret>(`/api/secrets/${encodeURIComponent(secret.name)}`, { method: 'PUT', body: JSON.stringify(body) });
      }
      const body: Schemas['SecretIn'] = { name: f.name.trim(), value: f.value, description, tags, provider_hint };
      return raw<Secret>('/api/secrets', { method: 'POST', body: JSON.stringify(body) });
    },
    onSuccess: (s) => {
      setF((x) => ({ ...x, value: '' }));
      void qc.invalidateQueries({ queryKey: SECRETS });
      toast.show(editing ? `Secret ${s.name} updated` : `Secret ${s.name} created`, 'success');
      onDone();
    },
    onError: (e) => {
      setF((x) => ({ ...x, value: '' }));
      setErrors(formErrors(e, FIELDS, CODES));
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErrors(NO_ERRORS);
    if (!editing && f.value === '') {
      setErrors({ fields: { value: 'A value is required' }, general: null });
      return;
    }
    save.mutate();
  };
  const err = errors.fields;
  return (
    <FormDialog
      id="secret-form"
      title={editing ? `Update secret ${secret.name}` : 'Create a secret'}
      submit={editing ? 'Save secret' : 'Create secret'}
      pending={save.isPending}
      errors={errors}
      onClose={onDone}
      onSubmit={submit}
      autoComplete="off"
    >
      {!editing && (
        <Field id="secret-name" label="Name" help="Letters, digits, _ - . and /" error={err.name}>
          {input('name', { autoFocus: true })}
        </Field>
      )}
      <Field
        id="secret-value"
        label={editing ? 'New value' : 'Value'}
        help={editing ? 'Write-only: leave empty to keep the stored value' : 'Write-only: it is never shown again'}
        error={err.value}
      >
        {input('value', { type: 'password', autoComplete: 'new-password', autoFocus: editing })}
      </Field>
      <Field id="secret-provider_hint" label="Provider" help="Where the value lives (db: ckp's own store)" error={err.provider_hint}>
        {input('provider_hint')}
      </Field>
      <Field id="secret-tags" label="Tags" help="Comma-separated" error={err.tags}>
        {input('tags')}
      </Field>
      <div className="wide">
        <Field id="secret-description" label="Description" error={err.description}>
          {input('description')}
        </Field>
      </div>
    </FormDialog>
  );
}

export default function Secrets() {
  const me = useMe();
  const canEdit = hasRole(me.data, 'manager');
  const [editing, setEditing] = useState<Secret | null | 'new'>(null);
  const q = useQuery({ queryKey: SECRETS, queryFn: () => raw<Secret[]>('/api/secrets') });
  const askDelete = useConfirmedAction({
    ask: (s: Secret) => ({
      title: 'Delete secret',
      message: (
        <>
          Delete secret <strong>{s.name}</strong>? Procedures and agents that read it will fail.
        </>
      ),
      confirm: 'Delete secret',
      danger: true,
    }),
    run: (s) => raw(`/api/secrets/${encodeURIComponent(s.name)}`, { method: 'DELETE' }),
    done: (s) => `Secret ${s.name} deleted`,
    invalidate: [SECRETS],
  });
  return (
    <>
      <PageHead title="Secrets" sub="Values are write-only: they never leave the server">
        {canEdit && (
          <button className="primary" onClick={() => setEditing('new')}>
            Create secret
          </button>
        )}
      </PageHead>
      <QueryState loading={q.isLoading} error={q.error}>
        {q.data?.length === 0 ? (
          <Empty>No secret is stored.</Empty>
        ) : (
          <div className="ops-table-wrap">
            <table className="data">
              <caption className="sr-only">Secrets</caption>
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Provider</th>
                  <th scope="col">Description</th>
                  <th scope="col">Tags</th>
                  <th scope="col">Created by</th>
                  <th scope="col">Updated</th>
                  {canEdit && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {q.data?.map((s) => (
                  <tr key={s.secret_id}>
                    <td className="mono">{s.name}</td>
                    <td>{s.provider_hint}</td>
                    <td>{s.description ?? '—'}</td>
                    <td>{s.tags.length > 0 ? s.tags.map((t) => <span key={t} className="badge">{t}</span>) : '—'}</td>
                    <td>{s.created_by ?? '—'}</td>
                    <td title={dateTime(s.updated_at)}>{relative(s.updated_at)}</td>
                    {canEdit && (
                      <td>
                        <div className="ops-row-actions">
                          <RowAction label="Update" of={s.name} onClick={() => setEditing(s)} />
                          <RowAction label="Delete" of={s.name} danger onClick={() => void askDelete(s)} />
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
      {editing !== null && <SecretForm secret={editing === 'new' ? null : editing} onDone={() => setEditing(null)} />}
    </>
  );
}
