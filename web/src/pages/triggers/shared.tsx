// A trigger registration's pieces, shared by the triggers page and the procedure version's Triggers tab: what it
// fires on, its state, its next ticks, its last fire and its controls (enable/disable, pause, fire now).
import { useMutation, useQuery, useQueryClient } from '@tanstack/react-query';
import { useState, type FormEvent } from 'react';
import { Link } from 'react-router';
import { ApiError, raw, type Schemas } from '../../api/client';
import { CopyButton, ErrorBanner } from '../../components/Bits';
import { Dialog, useConfirm } from '../../components/Dialog';
import { RunInputForm } from '../../components/RunInputForm';
import { useToast } from '../../components/Toasts';
import { dateTime, shortId } from '../../lib/format';
import { versionPath, type Run } from '../catalog/shared';
import './triggers.css';

export type Trigger = Schemas['TriggerOut'];
type TriggerIn = Schemas['TriggerIn'];
type Fired = Schemas['FiredOut'];
type Fire = Schemas['FireOut'];

/** The query key of the list; one registration's extends it, so invalidating the list refreshes both. */
export const TRIGGERS_KEY = ['/api/triggers'] as const;

const triggerPath = (t: { procedure_id: string; version: string }) => `/api/triggers/${versionPath(t.procedure_id, t.version)}`;

/** The address a webhook registration listens on (this console's origin: the API is served from it). */
export function webhookUrl(procedureId: string): string {
  return `${window.location.origin}/api/triggers/webhook/${encodeURIComponent(procedureId)}`;
}

/** The registration as the body that replaces it, with some fields changed. */
function asInput(t: Trigger, change: Partial<TriggerIn>): TriggerIn {
  return {
    trigger_type: t.trigger_type,
    schedule: t.schedule,
    timezone: t.timezone,
    webhook_secret: t.webhook_secret,
    webhook_secret_previous: t.webhook_secret_previous,
    event_source: t.event_source,
    event_filter: t.event_filter,
    event_type: t.event_type,
    file_watch_path: t.file_watch_path,
    file_watch_pattern: t.file_watch_pattern,
    file_watch_event_types: t.file_watch_event_types,
    file_watch_settle_ms: t.file_watch_settle_ms,
    dedupe_window_seconds: t.dedupe_window_seconds,
    max_concurrent_runs: t.max_concurrent_runs,
    overlap: t.overlap,
    catchup_window_seconds: t.catchup_window_seconds,
    jitter_seconds: t.jitter_seconds,
    follow_active: t.follow_active,
    max_body_bytes: t.max_body_bytes,
    allowed_sources: t.allowed_sources,
    enabled: t.enabled,
    paused: t.paused,
    pause_note: t.pause_note,
    ...change,
  };
}

/** What fires it: a schedule with its zone, a webhook's URL (with a copy button), or the type. */
export function TriggerSource({ t }: { t: Trigger }) {
  if (t.trigger_type === 'scheduled')
    return (
      <span>
        <code>{t.schedule}</code> <span className="muted">({t.timezone || 'UTC'})</span>
      </span>
    );
  if (t.trigger_type === 'webhook') {
    const url = webhookUrl(t.procedure_id);
    return (
      <span className="trigger-url">
        <code>{url}</code>
        <CopyButton text={url} label={`Copy the webhook URL of ${t.procedure_id}`} />
      </span>
    );
  }
  return <span className="muted">{t.event_source || t.file_watch_path || '—'}</span>;
}

/** Enabled, disabled (and by whom) or paused, in words. */
export function TriggerState({ t }: { t: Trigger }) {
  if (!t.enabled)
    return <span className="badge err">disabled{t.disabled_by ? ` (${t.disabled_by})` : ''}</span>;
  if (t.paused)
    return (
      <span>
        <span className="badge warn">paused</span>
        {t.pause_note && <div className="trigger-note">{t.pause_note}</div>}
      </span>
    );
  return <span className="badge ok">enabled</span>;
}

/** The next ticks (the API's, in UTC), in the reader's local time. */
export function NextFires({ t, label }: { t: Trigger; label: string }) {
  if (!t.next_fire_times.length) return <span className="muted">—</span>;
  return (
    <ol className="trigger-times" aria-label={label}>
      {t.next_fire_times.map((ts) => (
        <li key={ts}>
          <time dateTime={ts}>{dateTime(ts)}</time>
        </li>
      ))}
    </ol>
  );
}

/** The newest run a trigger started for this version, among the procedure's 50 newest runs. */
export function LastFire({ t }: { t: Trigger }) {
  const q = useQuery({
    queryKey: ['/api/runs', 'last-fire', t.procedure_id],
    queryFn: () => raw<Run[]>(`/api/runs?procedure_id=${encodeURIComponent(t.procedure_id)}&limit=50`),
    refetchInterval: 30_000,
  });
  if (q.isLoading) return <span className="muted">…</span>;
  if (q.error) return <span className="muted">unknown</span>;
  const run = q.data?.find((r) => r.procedure_version === t.version && r.trigger_type);
  if (!run) return <span className="muted">none recently</span>;
  return (
    <span>
      <Link to={`/runs/${encodeURIComponent(run.run_id)}`}>{dateTime(run.created_at)}</Link>{' '}
      <span className="muted">({run.trigger_type})</span>
    </span>
  );
}

function obj(v: unknown): Record<string, unknown> {
  return v && typeof v === 'object' && !Array.isArray(v) ? (v as Record<string, unknown>) : {};
}

/** Enable/disable, pause/resume (with a note) and fire now, for one registration. */
export function TriggerActions({ t }: { t: Trigger }) {
  const qc = useQueryClient();
  const toast = useToast();
  const confirm = useConfirm();
  const [pausing, setPausing] = useState(false);
  const [firing, setFiring] = useState(false);
  const name = `${t.procedure_id} ${t.version}`;
  const done = (message: string) => {
    toast.show(message, 'success');
    void qc.invalidateQueries({ queryKey: TRIGGERS_KEY });
  };
  const save = useMutation({
    mutationFn: (change: Partial<TriggerIn>) =>
      raw<Trigger>(triggerPath(t), { method: 'POST', body: JSON.stringify(asInput(t, change)) }),
    onError: (e) => toast.error(e),
  });
  const disable = useMutation({
    mutationFn: () => raw<null>(triggerPath(t), { method: 'DELETE' }),
    onSuccess: () => done(`Disabled the trigger of ${name}`),
    onError: (e) => toast.error(e),
  });
  const busy = save.isPending || disable.isPending;
  return (
    <div className="trigger-actions">
      {t.enabled ? (
        <button
          className="small danger"
          disabled={busy}
          aria-label={`Disable the trigger of ${name}`}
          onClick={async () => {
            const ok = await confirm({
              title: 'Disable this trigger?',
              message: `The trigger of ${name} stops firing until someone enables it again; syncs keep it disabled.`,
              confirm: 'Disable',
              danger: true,
            });
            if (ok) disable.mutate();
          }}
        >
          Disable
        </button>
      ) : (
        <button
          className="small"
          disabled={busy}
          aria-label={`Enable the trigger of ${name}`}
          onClick={() => save.mutate({ enabled: true }, { onSuccess: () => done(`Enabled the trigger of ${name}`) })}
        >
          Enable
        </button>
      )}
      {t.trigger_type === 'scheduled' &&
        (t.paused ? (
          <button
            className="small"
            disabled={busy}
            aria-label={`Resume the schedule of ${name}`}
            onClick={() =>
              save.mutate({ paused: false, pause_note: null }, { onSuccess: () => done(`Resumed the schedule of ${name}`) })
            }
          >
            Resume
          </button>
        ) : (
          <button className="small" disabled={busy} aria-label={`Pause the schedule of ${name}`} onClick={() => setPausing(true)}>
            Pause
          </button>
        ))}
      <button className="small primary" aria-label={`Fire the trigger of ${name} now`} onClick={() => setFiring(true)}>
        Fire now
      </button>
      {pausing && (
        <PauseDialog
          name={name}
          busy={save.isPending}
          onClose={() => setPausing(false)}
          onPause={(note) =>
            save.mutate(
              { paused: true, pause_note: note || null },
              {
                onSuccess: () => {
                  setPausing(false);
                  done(`Paused the schedule of ${name}`);
                },
              },
            )
          }
        />
      )}
      {firing && <FireDialog t={t} onClose={() => setFiring(false)} />}
    </div>
  );
}

function PauseDialog({ name, busy, onClose, onPause }: { name: string; busy: boolean; onClose: () => void; onPause: (note: string) => void }) {
  const [note, setNote] = useState('');
  const submit = (e: FormEvent) => {
    e.preventDefault();
    onPause(note.trim());
  };
  return (
    <Dialog open title={`Pause the schedule of ${name}`} onClose={onClose}>
      <form className="form-grid" onSubmit={submit}>
        <p className="muted">A paused schedule does not tick; ticks while paused are not owed when it resumes. Fire now still works.</p>
        <label>
          Note (why)
          <input value={note} onChange={(e) => setNote(e.target.value)} maxLength={500} />
        </label>
        <div className="dialog-actions">
          <button type="button" onClick={onClose}>
            Cancel
          </button>
          <button type="submit" className="primary" disabled={busy}>
            Pause
          </button>
        </div>
      </form>
    </Dialog>
  );
}

/** Fire now: the procedure's inputs form (its `variables_schema`), then a link to the run it started. */
function FireDialog({ t, onClose }: { t: Trigger; onClose: () => void }) {
  const qc = useQueryClient();
  const toast = useToast();
  const [serverErrors, setServerErrors] = useState<Record<string, string> | undefined>();
  const [error, setError] = useState<unknown>(null);
  const detail = useQuery({
    queryKey: ['/api/procedures', t.procedure_id, t.version],
    queryFn: () => raw<Schemas['ProcedureDetail']>(`/api/procedures/${versionPath(t.procedure_id, t.version)}`),
  });
  const fire = useMutation({
    mutationFn: (vars: Record<string, unknown>) =>
      raw<Fired>(`${triggerPath(t)}/fire`, { method: 'POST', body: JSON.stringify({ input_vars: vars }) }),
    onSuccess: (r) => {
      toast.show(`Fired: run ${shortId(r.run_id)}`, 'success');
      void qc.invalidateQueries({ queryKey: ['/api/runs'] });
    },
    onError: (e) => {
      const errors = e instanceof ApiError && e.status === 422 ? obj(obj(e.detail).errors) : {};
      const mapped = Object.fromEntries(Object.entries(errors).map(([k, v]) => [k, String(v)]));
      setServerErrors(Object.keys(mapped).length ? mapped : undefined);
      setError(Object.keys(mapped).length ? null : e);
    },
  });
  const title = `Fire ${t.procedure_id} ${t.version} now`;
  if (fire.data)
    return (
      <Dialog open title={title} onClose={onClose} actions={<button onClick={onClose}>Close</button>}>
        <p role="status">
          Started run <Link to={`/runs/${encodeURIComponent(fire.data.run_id)}`}>{fire.data.run_id}</Link>.
        </p>
      </Dialog>
    );
  return (
    <Dialog open title={title} onClose={onClose}>
      <p className="muted">Starts one run now, as a manual fire of this trigger (it works while the schedule is paused).</p>
      {error != null && <ErrorBanner error={error} />}
      {detail.error != null && <ErrorBanner error={detail.error} />}
      {detail.data && (
        <RunInputForm
          schema={obj(detail.data.ckp_json).variables_schema}
          submitLabel="Fire now"
          busy={fire.isPending}
          serverErrors={serverErrors}
          onSubmit={(vars) => fire.mutate(vars)}
          onCancel={onClose}
        />
      )}
    </Dialog>
  );
}

/** How many fires a page of the Recent fires table shows. */
const FIRES_PAGE = 20;

/** A registration's recorded causes, newest first (fired with their run, or skipped with why), a page at a time. */
export function RecentFires({ t }: { t: Trigger }) {
  // The `before` of each page shown so far: the first page has none.
  const [pages, setPages] = useState<(number | undefined)[]>([undefined]);
  const before = pages[pages.length - 1];
  const q = useQuery({
    queryKey: [...TRIGGERS_KEY, t.procedure_id, t.version, 'fires', before],
    queryFn: () =>
      raw<Fire[]>(`${triggerPath(t)}/fires?limit=${FIRES_PAGE}${before === undefined ? '' : `&before=${before}`}`),
    refetchInterval: before === undefined ? 30_000 : false,
  });
  const rows = q.data ?? [];
  const last = rows[rows.length - 1];
  return (
    <section className="trigger-fires" aria-labelledby="recent-fires">
      <h3 id="recent-fires">Recent fires</h3>
      {q.error != null && <ErrorBanner error={q.error} />}
      {q.isLoading && <div className="empty" role="status">Loading…</div>}
      {q.data && !rows.length && <div className="empty">No fires recorded{before === undefined ? ' yet' : ' before these'}.</div>}
      {rows.length > 0 && (
        <table className="data" aria-labelledby="recent-fires">
          <thead>
            <tr>
              <th scope="col">Recorded</th>
              <th scope="col">Cause</th>
              <th scope="col">Outcome</th>
              <th scope="col">Run or reason</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((f) => (
              <tr key={f.id}>
                <td>
                  <time dateTime={f.created_at}>{dateTime(f.created_at)}</time>
                </td>
                <td>
                  <code className="trigger-key">{f.key}</code>
                </td>
                <td>
                  <span className={`badge ${f.outcome === 'fired' ? 'ok' : 'warn'}`}>{f.outcome}</span>
                </td>
                <td>
                  {f.run_id ? (
                    <Link to={`/runs/${encodeURIComponent(f.run_id)}`}>{shortId(f.run_id)}</Link>
                  ) : (
                    <span className="muted">{f.reason ?? '—'}</span>
                  )}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
      <div className="trigger-actions">
        {pages.length > 1 && (
          <button className="small" onClick={() => setPages(pages.slice(0, -1))}>
            Newer fires
          </button>
        )}
        {rows.length === FIRES_PAGE && last && (
          <button className="small" onClick={() => setPages([...pages, last.id])}>
            Older fires
          </button>
        )}
      </div>
    </section>
  );
}

/** The procedure version page's Triggers tab: this version's registration with its controls, or why there is none. */
export function VersionTrigger({ procedureId, version }: { procedureId: string; version: string }) {
  const q = useQuery({
    queryKey: [...TRIGGERS_KEY, procedureId, version],
    queryFn: () => raw<Trigger | null>(triggerPath({ procedure_id: procedureId, version })),
    refetchInterval: 30_000,
  });
  if (q.error) return <ErrorBanner error={q.error} />;
  if (q.isLoading) return <div className="empty" role="status">Loading…</div>;
  const t = q.data;
  if (!t) return <div className="empty">This version declares no trigger.</div>;
  return (
    <div className="card trigger-card">
      <dl className="props">
        <dt>Type</dt>
        <dd>{t.trigger_type}</dd>
        <dt>{t.trigger_type === 'webhook' ? 'URL' : t.trigger_type === 'file_watch' ? 'Folder' : 'Schedule'}</dt>
        <dd>
          <TriggerSource t={t} />
          {t.trigger_type === 'file_watch' && (
            <div className="muted">
              {t.file_watch_pattern || '*'} · {t.file_watch_event_types.join(', ')} · quiet for {t.file_watch_settle_ms} ms
            </div>
          )}
          {t.file_watch_refused && (
            <div className="badge err" role="note">
              Not watched: {t.file_watch_refused}
            </div>
          )}
        </dd>
        <dt>State</dt>
        <dd>
          <TriggerState t={t} />
        </dd>
        <dt>Overlap</dt>
        <dd>{t.overlap}</dd>
        <dt>Max concurrent runs</dt>
        <dd>{t.max_concurrent_runs ?? 'no limit'}</dd>
        <dt>Source</dt>
        <dd>{t.source === 'api' ? 'set through the API (syncs keep it)' : 'the document’s trigger block'}</dd>
        <dt>Next fires (local time)</dt>
        <dd>
          <NextFires t={t} label={`Next fires of ${t.procedure_id}@${t.version}`} />
        </dd>
        <dt>Last fire</dt>
        <dd>
          <LastFire t={t} />
        </dd>
      </dl>
      <TriggerActions t={t} />
      <RecentFires t={t} />
    </div>
  );
}
