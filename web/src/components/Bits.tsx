// Small pieces every screen uses: status badges, the page header, query states, JSON views, copy buttons.
import { useState, type ReactNode } from 'react';
import { ApiError } from '../api/client';

const STATUS_TONE: Record<string, string> = {
  completed: 'ok', approved: 'ok', online: 'ok', active: 'ok', succeeded: 'ok', closed: 'ok',
  failed: 'err', rejected: 'err', offline: 'err', error: 'err', timed_out: 'err', open: 'err',
  running: 'info', created: 'info', pending: 'warn', waiting_approval: 'warn', paused: 'warn', draft: 'info',
  canceled: '', deprecated: 'warn', archived: '', expired: 'warn', half_open: 'warn', busy: 'warn',
};

export function StatusBadge({ status }: { status: string | null | undefined }) {
  const s = status ?? 'unknown';
  return <span className={`badge ${STATUS_TONE[s] ?? ''}`}>{s.replace(/_/g, ' ')}</span>;
}

export function PageHead({ title, children, sub }: { title: ReactNode; children?: ReactNode; sub?: ReactNode }) {
  return (
    <div className="page-head">
      <div>
        <h1>{title}</h1>
        {sub && <div className="muted">{sub}</div>}
      </div>
      {children && <div className="actions">{children}</div>}
    </div>
  );
}

/** Loading and error states of a query, shown the same everywhere. */
export function QueryState({ loading, error, children }: { loading?: boolean; error?: unknown; children?: ReactNode }) {
  if (error) return <ErrorBanner error={error} />;
  if (loading) return <div className="empty" role="status">Loading…</div>;
  return <>{children}</>;
}

export function ErrorBanner({ error }: { error: unknown }) {
  const text = error instanceof Error ? error.message : String(error);
  const status = error instanceof ApiError ? ` (${error.status})` : '';
  return (
    <div className="banner error" role="alert">
      {text}
      {status}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <div className="empty">{children}</div>;
}

export function Json({ value, label }: { value: unknown; label?: string }) {
  return (
    // Focusable: the block scrolls, and a keyboard user must be able to scroll it.
    <pre className="json" aria-label={label} tabIndex={0}>
      {JSON.stringify(value, null, 2)}
    </pre>
  );
}

/** A JSON payload folded behind a summary line. */
export function JsonDetails({ value, summary }: { value: unknown; summary: ReactNode }) {
  return (
    <details>
      <summary>{summary}</summary>
      <Json value={value} />
    </details>
  );
}

export function CopyButton({ text, label }: { text: string; label: string }) {
  const [done, setDone] = useState(false);
  return (
    <button
      className="ghost small"
      aria-label={label}
      title={label}
      onClick={() => {
        void navigator.clipboard?.writeText(text).then(() => {
          setDone(true);
          window.setTimeout(() => setDone(false), 1200);
        });
      }}
    >
      {done ? 'Copied' : 'Copy'}
    </button>
  );
}

export function Tabs<T extends string>({
  tabs,
  value,
  onChange,
  label,
}: {
  tabs: { id: T; label: ReactNode }[];
  value: T;
  onChange: (t: T) => void;
  label: string;
}) {
  return (
    <div className="tabs" role="tablist" aria-label={label}>
      {tabs.map((t) => (
        <button
          key={t.id}
          role="tab"
          id={`tab-${t.id}`}
          aria-selected={value === t.id}
          aria-controls={`panel-${t.id}`}
          tabIndex={value === t.id ? 0 : -1}
          onClick={() => onChange(t.id)}
          onKeyDown={(e) => {
            const i = tabs.findIndex((x) => x.id === value);
            if (e.key === 'ArrowRight') onChange(tabs[(i + 1) % tabs.length].id);
            if (e.key === 'ArrowLeft') onChange(tabs[(i - 1 + tabs.length) % tabs.length].id);
          }}
        >
          {t.label}
        </button>
      ))}
    </div>
  );
}

export function TabPanel({ id, children }: { id: string; children: ReactNode }) {
  return (
    <div role="tabpanel" id={`panel-${id}`} aria-labelledby={`tab-${id}`}>
      {children}
    </div>
  );
}
