// The shell: sidebar with sections and live badges, the top bar with server-side search, theme and user menu.
import { useQuery, useQueryClient } from '@tanstack/react-query';
import { useEffect, useRef, useState, type ReactNode } from 'react';
import { NavLink, Outlet, useLocation, useNavigate } from 'react-router';
import { raw } from '../api/client';
import { hasRole, useMe } from '../lib/auth';
import { fetchRunStats } from '../lib/runStats';
import { useTheme, type Theme } from '../lib/theme';
import { useToast } from './Toasts';

/** One shared poll (every 10 s) feeds both badges. */
function useBadges() {
  return useQuery({
    queryKey: ['badges'],
    queryFn: async () => {
      const [stats, pending] = await Promise.all([
        fetchRunStats(24),
        raw<unknown[]>('/api/approvals?status=pending'),
      ]);
      return { failed: stats.totals.failed, approvals: pending.length };
    },
    refetchInterval: 10_000,
    retry: false,
  });
}

function Item({ to, label, icon, badge, tone }: { to: string; label: string; icon: string; badge?: number; tone?: string }) {
  return (
    <NavLink to={to} end={to === '/'} aria-label={badge ? `${label} (${badge})` : label}>
      <span aria-hidden="true">{icon}</span>
      <span className="nav-label">{label}</span>
      {badge ? (
        <span className={`badge count ${tone ?? ''}`} aria-hidden="true">
          {badge}
        </span>
      ) : null}
    </NavLink>
  );
}

export function Layout() {
  const [collapsed, setCollapsed] = useState(() => localStorage.getItem('ckp.sidebar') === 'collapsed');
  const [drawer, setDrawer] = useState(false);
  const location = useLocation();
  useEffect(() => setDrawer(false), [location.pathname]);
  const badges = useBadges();
  const me = useMe();
  const admin = hasRole(me.data, 'manager');
  const toggle = () => {
    setCollapsed((c) => {
      localStorage.setItem('ckp.sidebar', c ? 'open' : 'collapsed');
      return !c;
    });
  };
  return (
    <div className={`shell ${collapsed ? 'collapsed' : ''} ${drawer ? 'drawer-open' : ''}`}>
      <aside className="sidebar" aria-label="Main navigation">
        <div className="brand">
          <img src="/favicon.svg" width={24} height={24} alt="" />
          <span className="brand-name">ckp</span>
        </div>
        <nav className="nav">
          <Item to="/" label="Dashboard" icon="◫" />
          <div className="nav-section">Work</div>
          <Item to="/procedures" label="Procedures" icon="❏" />
          <Item to="/runs" label="Runs" icon="▶" badge={badges.data?.failed} />
          <Item to="/triggers" label="Triggers" icon="↻" />
          <Item to="/approvals" label="Approvals" icon="✓" badge={badges.data?.approvals} tone="info" />
          <Item to="/projects" label="Projects" icon="▤" />
          <div className="nav-section">Operate</div>
          <Item to="/agents" label="Agents" icon="⚙" />
          <Item to="/leases" label="Leases" icon="⇄" />
          <Item to="/secrets" label="Secrets" icon="✱" />
          <Item to="/metrics" label="Health & metrics" icon="∿" />
          {admin && (
            <>
              <div className="nav-section">Admin</div>
              <Item to="/users" label="Users" icon="☺" />
              <Item to="/api-keys" label="API keys" icon="⚷" />
              <Item to="/audit" label="Audit log" icon="☰" />
            </>
          )}
        </nav>
      </aside>
      <div className="main">
        <header className="topbar">
          <button className="ghost" aria-label={collapsed ? 'Expand the sidebar' : 'Collapse the sidebar'} onClick={toggle}>
            ☰
          </button>
          <button className="ghost mobile-only" aria-label="Open the menu" onClick={() => setDrawer((d) => !d)}>
            ≡
          </button>
          <Search />
          <ThemeSwitch />
          <UserMenu />
        </header>
        <main className="content" id="main">
          <Outlet />
        </main>
      </div>
    </div>
  );
}

function ThemeSwitch() {
  const [theme, setTheme] = useTheme();
  return (
    <label className="inline">
      <span className="sr-only">Theme</span>
      <select aria-label="Theme" value={theme} onChange={(e) => setTheme(e.target.value as Theme)}>
        <option value="system">System theme</option>
        <option value="light">Light</option>
        <option value="dark">Dark</option>
      </select>
    </label>
  );
}

function UserMenu() {
  const me = useMe();
  const qc = useQueryClient();
  const toast = useToast();
  const navigate = useNavigate();
  if (!me.data) return null;
  const signedIn = me.data.auth_enabled || !!me.data.credential;
  return (
    <div style={{ display: 'flex', alignItems: 'center', gap: 8 }}>
      <span className="muted" title={me.data.credential ?? undefined}>
        {me.data.full_name || me.data.identity}
        {me.data.role ? ` · ${me.data.role}` : ''}
      </span>
      {signedIn && me.data.credential?.startsWith('session:') && (
        <button
          onClick={async () => {
            try {
              await raw('/api/auth/logout', { method: 'POST' });
            } catch (e) {
              toast.error(e);
            }
            qc.clear();
            navigate('/login');
          }}
        >
          Sign out
        </button>
      )}
    </div>
  );
}

interface SearchResult {
  procedures: { procedure_id: string; version: string; name?: string | null; status?: string | null }[];
  runs: { run_id: string; procedure_id: string; status: string }[];
  agents: { agent_id: string; name?: string | null; status?: string | null }[];
}

/** Global search, answered by the server (`GET /api/search`); Ctrl+K or / focuses it. */
function Search() {
  const [q, setQ] = useState('');
  const [debounced, setDebounced] = useState('');
  const [open, setOpen] = useState(false);
  const [active, setActive] = useState(0);
  const input = useRef<HTMLInputElement>(null);
  const navigate = useNavigate();
  useEffect(() => {
    const t = window.setTimeout(() => setDebounced(q.trim()), 200);
    return () => window.clearTimeout(t);
  }, [q]);
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const typing = e.target instanceof HTMLElement && /^(INPUT|TEXTAREA|SELECT)$/.test(e.target.tagName);
      if ((e.key === 'k' && (e.ctrlKey || e.metaKey)) || (e.key === '/' && !typing)) {
        e.preventDefault();
        input.current?.focus();
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, []);
  const results = useQuery({
    queryKey: ['search', debounced],
    queryFn: () => raw<SearchResult>(`/api/search?q=${encodeURIComponent(debounced)}&limit=6`),
    enabled: debounced.length > 0,
  });
  const items: { href: string; label: ReactNode; kind: string }[] = [];
  for (const p of results.data?.procedures ?? [])
    items.push({ kind: 'Procedure', href: `/procedures/${enc(p.procedure_id)}/${enc(p.version)}`, label: `${p.name || p.procedure_id} · v${p.version}` });
  for (const r of results.data?.runs ?? [])
    items.push({ kind: 'Run', href: `/runs/${enc(r.run_id)}`, label: `${r.run_id.slice(0, 8)} · ${r.procedure_id} · ${r.status}` });
  for (const a of results.data?.agents ?? [])
    items.push({ kind: 'Agent', href: `/agents?agent=${enc(a.agent_id)}`, label: `${a.name || a.agent_id} · ${a.status ?? ''}` });
  const go = (href: string) => {
    setOpen(false);
    setQ('');
    navigate(href);
  };
  return (
    <div className="search" role="search">
      <input
        ref={input}
        type="search"
        aria-label="Search procedures, runs and agents"
        placeholder="Search procedures, runs, agents  (Ctrl+K)"
        value={q}
        role="combobox"
        aria-expanded={open && items.length > 0}
        aria-controls="search-results"
        aria-autocomplete="list"
        onChange={(e) => {
          setQ(e.target.value);
          setOpen(true);
          setActive(0);
        }}
        onFocus={() => setOpen(true)}
        onBlur={() => window.setTimeout(() => setOpen(false), 150)}
        onKeyDown={(e) => {
          if (e.key === 'ArrowDown') setActive((a) => Math.min(a + 1, items.length - 1));
          else if (e.key === 'ArrowUp') setActive((a) => Math.max(a - 1, 0));
          else if (e.key === 'Enter' && items[active]) go(items[active].href);
          else if (e.key === 'Escape') setOpen(false);
        }}
      />
      {open && debounced && (
        <div className="search-results" id="search-results" role="listbox" aria-label="Search results">
          {results.isLoading && <div className="muted">Searching…</div>}
          {results.isError && <div className="field-error">Search failed</div>}
          {results.data && items.length === 0 && <div className="muted">Nothing matches “{debounced}”.</div>}
          {items.map((it, i) => (
            <a
              key={it.href}
              href={it.href}
              role="option"
              aria-selected={i === active}
              onMouseDown={(e) => {
                e.preventDefault();
                go(it.href);
              }}
            >
              <span className="muted">{it.kind}</span> {it.label}
            </a>
          ))}
        </div>
      )}
    </div>
  );
}

const enc = encodeURIComponent;
