// Sign in with a username and password (`POST /api/auth/login` sets the session cookie), or with single sign-on
// when the server has it configured.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { useNavigate, useSearchParams } from 'react-router';
import { raw } from '../api/client';
import { ErrorBanner } from '../components/Bits';

export default function Login() {
  const [params] = useSearchParams();
  const next = safeNext(params.get('next'));
  const navigate = useNavigate();
  const qc = useQueryClient();
  const [username, setUsername] = useState('');
  const [password, setPassword] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const sso = useQuery({
    queryKey: ['sso'],
    queryFn: () => raw<{ sso_enabled: boolean; login_url?: string | null }>('/api/auth/sso/status'),
    retry: false,
  });
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    try {
      await raw('/api/auth/login', { method: 'POST', body: JSON.stringify({ username, password }) });
      await qc.invalidateQueries();
      qc.removeQueries({ queryKey: ['me'] });
      navigate(next, { replace: true });
      window.location.reload();
    } catch (err) {
      setError(err);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="content" style={{ display: 'grid', placeItems: 'center', minHeight: '100%' }}>
      <div className="card" style={{ width: 'min(380px, 94vw)' }}>
        <div className="brand" style={{ padding: '0 0 12px' }}>
          <img src="/favicon.svg" width={28} height={28} alt="" />
          <h1>Sign in to ckp</h1>
        </div>
        {error ? <ErrorBanner error={error} /> : null}
        <form className="form-grid" onSubmit={submit}>
          <label>
            Username
            <input autoComplete="username" value={username} onChange={(e) => setUsername(e.target.value)} required autoFocus />
          </label>
          <label>
            Password
            <input type="password" autoComplete="current-password" value={password} onChange={(e) => setPassword(e.target.value)} required />
          </label>
          <button type="submit" className="primary" disabled={busy}>
            {busy ? 'Signing in…' : 'Sign in'}
          </button>
        </form>
        {sso.data?.sso_enabled && (
          <p style={{ marginTop: 14 }}>
            <a className="button" href={`${sso.data.login_url || '/api/auth/sso/login'}?next=${encodeURIComponent(next)}`}>
              Sign in with single sign-on
            </a>
          </p>
        )}
      </div>
    </main>
  );
}

/** Only a path of this site (never another origin) is a place to go back to. */
function safeNext(n: string | null): string {
  return n && n.startsWith('/') && !n.startsWith('//') ? n : '/';
}
