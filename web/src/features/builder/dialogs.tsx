// The builder's dialogs: "Save as new version" (a semver bump of the base, never an existing version) and the
// draft conflict (the server's draft changed since this one was loaded: keep mine or take theirs).
import { useQuery } from '@tanstack/react-query';
import { useState } from 'react';
import { ApiError } from '../../api/client';
import { ErrorBanner } from '../../components/Bits';
import { Dialog } from '../../components/Dialog';
import { dateTime } from '../../lib/format';
import { createVersion, listVersions, type Diagnostic, type Draft, type DraftOut } from './api';
import { bumpVersion, graphOf, isObject, jsonEqual, nextFreeVersion, nodesOf, type JsonObject } from './model';

type Part = 'patch' | 'minor' | 'major';

export function SaveDialog({
  ckp,
  baseId,
  baseVersion,
  projectId,
  onClose,
  onSaved,
  onRefused,
}: {
  ckp: JsonObject;
  /** The procedure the draft was opened from (a changed procedure_id saves a new procedure). */
  baseId: string | null;
  baseVersion: string | null;
  projectId?: string | null;
  onClose: () => void;
  onSaved: (version: string) => void;
  onRefused: (errors: Diagnostic[]) => void;
}) {
  const procedureId = typeof ckp.procedure_id === 'string' ? ckp.procedure_id : '';
  const versions = useQuery({ queryKey: ['procedure', procedureId, 'version-list'], queryFn: () => listVersions(procedureId), enabled: procedureId !== '' });
  const taken = versions.data ?? [];
  const renamed = baseId !== null && procedureId !== baseId;
  const fresh = baseVersion === null || renamed;
  const base = !fresh && baseVersion ? baseVersion : typeof ckp.version === 'string' && ckp.version ? ckp.version : '1.0.0';
  const suggest = (part: Part) => nextFreeVersion(base, part, taken);
  const [part, setPart] = useState<Part | 'custom' | 'as-is'>(fresh ? 'as-is' : 'patch');
  const [custom, setCustom] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const version = part === 'custom' ? custom.trim() : part === 'as-is' ? base : suggest(part);
  const exists = taken.includes(version);
  const invalid = version === '' || /\s|\//.test(version);

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await createVersion({ ...ckp, version }, projectId);
      onSaved(version);
    } catch (e) {
      setBusy(false);
      if (e instanceof ApiError && e.status === 422 && isObject(e.detail) && Array.isArray(e.detail.errors)) {
        onRefused(e.detail.errors as unknown as Diagnostic[]);
      } else if (e instanceof ApiError && e.status === 409) {
        setError(new Error(`Version ${version} of ${procedureId} exists already: pick another.`));
        void versions.refetch();
      } else setError(e);
    }
  };

  return (
    <Dialog
      open
      title="Save as new version"
      onClose={onClose}
      actions={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="primary" disabled={busy || exists || invalid || !procedureId || versions.isLoading} onClick={() => void submit()}>
            {busy ? 'Saving…' : `Save version ${version}`}
          </button>
        </>
      }
    >
      {error != null && <ErrorBanner error={error} />}
      {!procedureId && <div className="banner error">The document has no procedure_id: set it in the procedure's fields first.</div>}
      <p>
        A new version of <span className="mono">{procedureId || '?'}</span> is added to the catalog
        {renamed ? (
          <>
            : the procedure id is no longer <span className="mono">{baseId}</span>, so this saves a copy under the new id.
          </>
        ) : baseVersion ? (
          <>
            ; version <span className="mono">{baseVersion}</span> stays as it is.
          </>
        ) : (
          '.'
        )}
      </p>
      <fieldset className="bversions">
        <legend>Version</legend>
        {fresh && (
          <label className="inline">
            <input type="radio" name="bump" checked={part === 'as-is'} onChange={() => setPart('as-is')} />
            <span className="mono">{base}</span> (the document's version)
          </label>
        )}
        {(['patch', 'minor', 'major'] as Part[]).map((p) => (
          <label key={p} className="inline">
            <input type="radio" name="bump" checked={part === p} onChange={() => setPart(p)} />
            <span className="mono">{suggest(p)}</span> ({p}
            {p !== 'patch' || bumpVersion(base, p) === suggest(p) ? '' : ', the next free one'})
          </label>
        ))}
        <label className="inline">
          <input type="radio" name="bump" checked={part === 'custom'} onChange={() => setPart('custom')} />
          Other:
          <input
            aria-label="Other version"
            className="mono"
            value={custom}
            onChange={(e) => {
              setCustom(e.target.value);
              setPart('custom');
            }}
            placeholder="2.0.0-rc.1"
          />
        </label>
      </fieldset>
      {exists && (
        <p className="field-error" role="alert">
          Version {version} exists already; the builder never overwrites a version.
        </p>
      )}
      {taken.length > 0 && (
        <p className="muted small">
          Existing versions: <span className="mono">{taken.join(', ')}</span>
        </p>
      )}
    </Dialog>
  );
}

function describe(d: Draft | null | undefined): string {
  if (!d || !isObject(d.ckp)) return 'no draft';
  const g = graphOf(d.ckp);
  return `${g.nodes.length} nodes, ${g.edges.length} edges`;
}

/** What differs between two documents, node by node (added, removed, changed) and at the root. */
function differences(mine: JsonObject, theirs: JsonObject): string[] {
  const out: string[] = [];
  const a = nodesOf(mine);
  const b = nodesOf(theirs);
  for (const id of Object.keys(a)) if (!(id in b)) out.push(`node ${id}: only in yours`);
  for (const id of Object.keys(b)) if (!(id in a)) out.push(`node ${id}: only in the server's`);
  for (const id of Object.keys(a)) if (id in b && !jsonEqual(a[id], b[id])) out.push(`node ${id}: changed`);
  for (const k of new Set([...Object.keys(mine), ...Object.keys(theirs)])) {
    if (k !== 'workflow_graph' && !jsonEqual(mine[k], theirs[k])) out.push(`${k}: changed`);
  }
  return out;
}

export function ConflictDialog({
  mine,
  theirs,
  onKeepMine,
  onTakeTheirs,
  onClose,
}: {
  mine: Draft;
  theirs: DraftOut;
  onKeepMine: () => void;
  onTakeTheirs: () => void;
  onClose: () => void;
}) {
  const diff = theirs.draft && isObject(theirs.draft.ckp) ? differences(mine.ckp, theirs.draft.ckp) : [];
  return (
    <Dialog
      open
      title="The draft changed on the server"
      onClose={onClose}
      actions={
        <>
          <button onClick={onTakeTheirs}>Take the server's draft</button>
          <button className="primary" onClick={onKeepMine}>
            Keep mine
          </button>
        </>
      }
    >
      <p>
        Someone else saved this draft while you were editing it
        {theirs.updated_by ? (
          <>
            {' '}
            (<strong>{theirs.updated_by}</strong>
            {theirs.updated_at ? `, ${dateTime(theirs.updated_at)}` : ''})
          </>
        ) : null}
        . Choose which one to keep; the other is lost (taking the server's can be undone here). Until you choose, your
        changes are not saved.
      </p>
      <div className="grid two">
        <section className="card">
          <h3>Yours</h3>
          <p>{describe(mine)}</p>
        </section>
        <section className="card">
          <h3>The server's (revision {theirs.revision})</h3>
          <p>{describe(theirs.draft)}</p>
        </section>
      </div>
      {diff.length > 0 && (
        <>
          <h3>Differences</h3>
          <ul className="bdiff">
            {diff.slice(0, 30).map((d) => (
              <li key={d} className="mono">
                {d}
              </li>
            ))}
            {diff.length > 30 && <li>… and {diff.length - 30} more</li>}
          </ul>
        </>
      )}
    </Dialog>
  );
}
