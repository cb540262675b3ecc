// Users: local and SSO users with their global role and project grants; create (with a password), edit,
// disable/enable, grant or revoke project roles, delete.
// The users operations share their OpenAPI operation ids with others (`list`, `create`, ...), so the generated path
// types are wrong for them: requests go through `raw` with the schema's component types.
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { api, data, raw, type Schemas } from '../api/client';
import { Empty, PageHead, QueryState } from '../components/Bits';
import { Dialog } from '../components/Dialog';
import { useToast } from '../components/Toasts';
import { hasRole, useMe } from '../lib/auth';
import { dateTime } from '../lib/format';
import { Field, FormDialog, formErrors, NO_ERRORS, ROLES, RowAction, useConfirmedAction, useFields } from './ops/kit';
import { Options } from '../components/Options';

type User = Schemas['UserOut'];
const USERS = ['/api/users'];
const FIELDS = ['username', 'password', 'email', 'full_name', 'role'];
const CODES = { weak_password: 'password', password_required: 'password', invalid_role: 'role', invalid_username: 'username', conflict: 'username' };

const userPath = (u: User) => `/api/users/${encodeURIComponent(u.user_id)}`;

function useProjects() {
  return useQuery({ queryKey: ['/api/projects'], queryFn: () => data(api.GET('/api/projects')) });
}

function UserForm({ user, onDone }: { user: User | null; onDone: () => void }) {
  const editing = user !== null;
  const qc = useQueryClient();
  const toast = useToast();
  const { f, setF, set, errors, setErrors, input } = useFields('user', {
    username: user?.username ?? '',
    password: '',
    email: user?.email ?? '',
    full_name: user?.full_name ?? '',
    role: user ? (user.role ?? 'none') : 'viewer',
  });
  const save = useMutation({
    mutationFn: (): Promise<User> => {
      const common = { email: f.email.trim() || null, full_name: f.full_name.trim() || null, role: f.role };
      if (editing) {
        const body: Schemas['UserChange'] = { ...common, password: f.password || null };
        return raw<User>(userPath(user), { method: 'PUT', body: JSON.stringify(body) });
      }
      const body: Schemas['UserIn'] = { ...common, username: f.username.trim(), password: f.password };
      return raw<User>('/api/users', { method: 'POST', body: JSON.stringify(body) });
    },
    onSuccess: (u) => {
      void qc.invalidateQueries({ queryKey: USERS });
      toast.show(editing ? `User ${u.username} saved` : `User ${u.username} created`, 'success');
      onDone();
    },
    onError: (e) => {
      setF((x) => ({ ...x, password: '' }));
      setErrors(formErrors(e, FIELDS, CODES));
    },
  });
  const submit = (e: FormEvent) => {
    e.preventDefault();
    setErrors(NO_ERRORS);
    save.mutate();
  };
  const err = errors.fields;
  return (
    <FormDialog
      id="user-form"
      title={editing ? `Edit user ${user.username}` : 'Create a user'}
      submit={editing ? 'Save user' : 'Create user'}
      pending={save.isPending}
      errors={errors}
      onClose={onDone}
      onSubmit={submit}
      autoComplete="off"
    >
      {!editing && (
        <Field id="user-username" label="Username" help="Letters, digits, . _ - @" error={err.username}>
          {input('username', { autoFocus: true })}
        </Field>
      )}
      <Field
        id="user-password"
        label={editing ? 'New password' : 'Password'}
        help={editing ? 'Leave empty to keep it; a change ends their sessions' : 'At least 8 characters'}
        error={err.password}
      >
        {input('password', { type: 'password', autoComplete: 'new-password' })}
      </Field>
      <Field id="user-full_name" label="Full name" error={err.full_name}>
        {input('full_name')}
      </Field>
      <Field id="user-email" label="Email" error={err.email}>
        {input('email', { type: 'email' })}
      </Field>
      <Field id="user-role" label="Global role" help="none: only the project roles granted" error={err.role}>
        {(ids, invalid) => (
          <select id="user-role" value={f.role} onChange={set('role')} aria-describedby={ids} aria-invalid={invalid}>
            <option value="none">none</option>
            {ROLES.map((r) => (
              <option key={r} value={r}>
                {r}
              </option>
            ))}
          </select>
        )}
      </Field>
    </FormDialog>
  );
}

function Grants({ user, onDone }: { user: User; onDone: () => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const projects = useProjects();
  const users = useQuery({ queryKey: USERS, queryFn: () => raw<User[]>('/api/users') });
  const current = users.data?.find((u) => u.user_id === user.user_id) ?? user;
  const [project, setProject] = useState('');
  const [role, setRole] = useState<string>('viewer');
  const path = (p: string) => `${userPath(user)}/projects/${encodeURIComponent(p)}`;
  const grant = useMutation({
    mutationFn: () => raw<User>(path(project), { method: 'PUT', body: JSON.stringify({ role } satisfies Schemas['GrantIn']) }),
    onSuccess: () => {
      toast.show(`${user.username} is ${role} in ${project}`, 'success');
      void qc.invalidateQueries({ queryKey: USERS });
    },
    onError: (e) => toast.error(e),
  });
  const revoke = useMutation({
    mutationFn: (p: string) => raw(path(p), { method: 'DELETE' }),
    onSuccess: (_, p) => {
      toast.show(`Role in ${p} revoked`, 'success');
      void qc.invalidateQueries({ queryKey: USERS });
    },
    onError: (e) => toast.error(e),
  });
  return (
    <Dialog
      open
      title={`Project roles of ${user.username}`}
      onClose={onDone}
      actions={<button onClick={onDone}>Close</button>}
    >
      {current.projects.length === 0 ? (
        <Empty>No project role.</Empty>
      ) : (
        <table className="data">
          <caption className="sr-only">Project roles</caption>
          <thead>
            <tr>
              <th scope="col">Project</th>
              <th scope="col">Role</th>
              <th scope="col">Actions</th>
            </tr>
          </thead>
          <tbody>
            {current.projects.map((g) => (
              <tr key={g.project_id}>
                <td>{g.project_id}</td>
                <td>{g.role}</td>
                <td>
                  <button className="small danger" aria-label={`Revoke role in ${g.project_id}`} onClick={() => revoke.mutate(g.project_id)}>
                    Revoke
                  </button>
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <form
        className="toolbar ops-section"
        onSubmit={(e) => {
          e.preventDefault();
          if (project) grant.mutate();
        }}
      >
        <label>
          Project
          <select value={project} onChange={(e) => setProject(e.target.value)}>
            <Options none="Choose a project…" items={projects.data?.map((p) => ({ value: p.project_id, label: `${p.name} (${p.project_id})` })) ?? []} />
          </select>
        </label>
        <label>
          Role
          <select value={role} onChange={(e) => setRole(e.target.value)}>
            {ROLES.map((r) => (
              <option key={r}>{r}</option>
            ))}
          </select>
        </label>
        <button type="submit" className="primary" disabled={!project || grant.isPending}>
          Grant role
        </button>
      </form>
    </Dialog>
  );
}

export default function Users() {
  const me = useMe();
  const admin = hasRole(me.data, 'admin');
  const [editing, setEditing] = useState<User | null | 'new'>(null);
  const [granting, setGranting] = useState<User | null>(null);
  const q = useQuery({ queryKey: USERS, queryFn: () => raw<User[]>('/api/users') });
  // Enabling acts at once; disabling asks first.
  const askDisable = useConfirmedAction({
    ask: (u: User) =>
      u.is_active
        ? {
            title: 'Disable user',
            message: `Disable ${u.username}? Their sessions and API keys stop working at once.`,
            confirm: 'Disable user',
            danger: true,
          }
        : null,
    run: (u) => raw<User>(userPath(u), { method: 'PUT', body: JSON.stringify({ is_active: !u.is_active } satisfies Schemas['UserChange']) }),
    done: (_, u) => `User ${u.username} ${u.is_active ? 'enabled' : 'disabled'}`,
    invalidate: [USERS],
  });
  const askDelete = useConfirmedAction({
    ask: (u: User) => ({
      title: 'Delete user',
      message: `Delete ${u.username}? Their sessions and API keys end; the audit log keeps their name.`,
      confirm: 'Delete user',
      danger: true,
    }),
    run: (u) => raw(userPath(u), { method: 'DELETE' }),
    done: (u) => `User ${u.username} deleted`,
    invalidate: [USERS],
  });
  return (
    <>
      <PageHead title="Users" sub="Who may sign in, with which role">
        {admin && (
          <button className="primary" onClick={() => setEditing('new')}>
            Create user
          </button>
        )}
      </PageHead>
      <QueryState loading={q.isLoading} error={q.error}>
        {q.data?.length === 0 ? (
          <Empty>No user yet. With authentication off (loopback), the console acts as an administrator.</Empty>
        ) : (
          <div className="ops-table-wrap">
            <table className="data">
              <caption className="sr-only">Users</caption>
              <thead>
                <tr>
                  <th scope="col">User</th>
                  <th scope="col">Email</th>
                  <th scope="col">Global role</th>
                  <th scope="col">Project roles</th>
                  <th scope="col">State</th>
                  <th scope="col">Sign-in</th>
                  <th scope="col">Created</th>
                  {admin && <th scope="col">Actions</th>}
                </tr>
              </thead>
              <tbody>
                {q.data?.map((u) => (
                  <tr key={u.user_id}>
                    <td>
                      <strong>{u.username}</strong>
                      {u.full_name && <div className="muted">{u.full_name}</div>}
                    </td>
                    <td>{u.email ?? '—'}</td>
                    <td>{u.role ?? <span className="muted">none</span>}</td>
                    <td>{u.projects.length ? u.projects.map((g) => `${g.project_id}: ${g.role}`).join(', ') : '—'}</td>
                    <td>
                      <span className={`badge ${u.is_active ? 'ok' : 'err'}`}>{u.is_active ? 'active' : 'disabled'}</span>
                    </td>
                    <td>{u.sso_provider ?? 'local'}</td>
                    <td>{dateTime(u.created_at)}</td>
                    {admin && (
                      <td>
                        <div className="ops-row-actions">
                          <RowAction label="Edit" of={u.username} onClick={() => setEditing(u)} />
                          <button className="small" aria-label={`Project roles of ${u.username}`} onClick={() => setGranting(u)}>
                            Projects
                          </button>
                          <button
                            className={`small ${u.is_active ? 'danger' : ''}`}
                            aria-label={`${u.is_active ? 'Disable' : 'Enable'} ${u.username}`}
                            onClick={() => void askDisable(u)}
                          >
                            {u.is_active ? 'Disable' : 'Enable'}
                          </button>
                          <RowAction label="Delete" of={u.username} danger onClick={() => void askDelete(u)} />
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
      {editing !== null && <UserForm user={editing === 'new' ? null : editing} onDone={() => setEditing(null)} />}
      {granting && <Grants user={granting} onDone={() => setGranting(null)} />}
    </>
  );
}
