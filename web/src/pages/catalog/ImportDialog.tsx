// Import a CKP document: paste it or pick a file, choose a project, submit. A 422 lists every diagnostic with its
// JSON pointer and shows the text in a JSON editor with each diagnostic's location marked, to fix it in place.
import { useQueryClient } from '@tanstack/react-query';
import { lazy, Suspense, useMemo, useState } from 'react';
import { useNavigate } from 'react-router';
import { ApiError, raw, type Schemas } from '../../api/client';
import { ErrorBanner } from '../../components/Bits';
import { Dialog } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { diagnosticRange as locate } from '../../lib/jsonPointer';
import { useProjects } from './shared';
import { Options } from '../../components/Options';

const JsonEditor = lazy(() => import('../../components/JsonEditor'));

interface Diagnostic {
  severity?: string;
  code?: string;
  message: string;
  pointer?: string | null;
  line?: number | null;
  column?: number | null;
}

/** The diagnostics of an `invalid_ckp` answer, or null for any other error. */
function diagnosticsOf(e: unknown): Diagnostic[] | null {
  if (!(e instanceof ApiError) || e.status !== 422) return null;
  const d = e.detail as { errors?: unknown; warnings?: unknown } | null;
  if (!d || typeof d !== 'object' || !Array.isArray(d.errors)) return null;
  const list = [...d.errors, ...(Array.isArray(d.warnings) ? d.warnings : [])];
  return list.filter((x): x is Diagnostic => !!x && typeof x === 'object' && typeof (x as Diagnostic).message === 'string');
}

export function ImportDialog({ open, initial, onClose }: { open: boolean; initial: string; onClose: () => void }) {
  const projects = useProjects();
  const qc = useQueryClient();
  const toast = useToast();
  const navigate = useNavigate();
  const [text, setText] = useState(initial);
  const [project, setProject] = useState('');
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(null);
  const [diagnostics, setDiagnostics] = useState<Diagnostic[] | null>(null);
  const [reveal, setReveal] = useState<{ from: number; to: number; n: number } | null>(null);
  // The text the diagnostics were computed for: once edited, marks are recomputed against the new text.
  const marks = useMemo(
    () =>
      (diagnostics ?? []).flatMap((d) => {
        const r = locate(text, d);
        return r ? [{ ...r, message: d.message, severity: d.severity === 'warning' ? ('warning' as const) : ('error' as const) }] : [];
      }),
    [diagnostics, text],
  );

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      const body = { ckp_json: text, project_id: project || null };
      const p = await raw<Schemas['ProcedureImported']>('/api/procedures', { method: 'POST', body: JSON.stringify(body) });
      const warnings = p.warnings.length ? ` with ${p.warnings.length} warning(s)` : '';
      toast.show(`Imported ${p.procedure_id} ${p.version}${warnings}`, 'success');
      void qc.invalidateQueries({ queryKey: ['procedures'] });
      onClose();
      navigate(`/procedures/${encodeURIComponent(p.procedure_id)}/${encodeURIComponent(p.version)}`);
    } catch (e) {
      const d = diagnosticsOf(e);
      setDiagnostics(d);
      if (!d) setError(e);
    } finally {
      setBusy(false);
    }
  };

  const pickFile = async (f: File | undefined) => {
    if (!f) return;
    setText(await f.text());
    setDiagnostics(null);
    setError(null);
  };

  return (
    <Dialog
      open={open}
      title="Import a procedure"
      onClose={onClose}
      actions={
        <>
          <button onClick={onClose}>Cancel</button>
          <button className="primary" onClick={() => void submit()} disabled={busy || !text.trim()}>
            {busy ? 'Importing…' : 'Import'}
          </button>
        </>
      }
    >
      <div className="form-grid">
        <div className="toolbar" style={{ marginBottom: 0 }}>
          <label>
            Project
            <select value={project} onChange={(e) => setProject(e.target.value)}>
              <Options none="No project" items={projects.data?.map((p) => ({ value: p.project_id, label: p.name })) ?? []} />
            </select>
          </label>
          <label>
            CKP file
            <input type="file" accept=".json,application/json" onChange={(e) => void pickFile(e.target.files?.[0])} />
          </label>
        </div>
        {error != null && <ErrorBanner error={error} />}
        {diagnostics && (
          <section aria-labelledby="diag-title">
            <h3 id="diag-title">
              {diagnostics.filter((d) => d.severity !== 'warning').length} problem(s) to fix
            </h3>
            <ul className="diagnostics" aria-label="Diagnostics">
              {diagnostics.map((d, i) => (
                <li key={i} className={d.severity === 'warning' ? 'warning' : 'error'}>
                  <div>
                    <strong>{d.severity ?? 'error'}</strong>
                    {d.code && <span className="muted"> · {d.code}</span>}
                  </div>
                  <div>{d.message}</div>
                  <div className="where">
                    at <code>{d.pointer ? d.pointer : '(document)'}</code>
                    {d.line ? ` · line ${d.line}, column ${d.column ?? 1}` : ''}
                    {locate(text, d) && (
                      <>
                        {' '}
                        <button
                          type="button"
                          className="ghost small"
                          aria-label={`Show ${d.pointer || 'the location'} in the text`}
                          onClick={() => {
                            const r = locate(text, d);
                            if (r) setReveal({ ...r, n: Date.now() });
                          }}
                        >
                          Show in the text
                        </button>
                      </>
                    )}
                  </div>
                </li>
              ))}
            </ul>
          </section>
        )}
        {diagnostics ? (
          <Suspense fallback={<div role="status">Loading the editor…</div>}>
            <JsonEditor value={text} onChange={setText} marks={marks} reveal={reveal} label="CKP document" height={340} />
          </Suspense>
        ) : (
          <label>
            CKP document (JSON)
            <textarea rows={14} value={text} onChange={(e) => setText(e.target.value)} spellCheck={false} placeholder='{"procedure_id": "…", "version": "1.0.0", …}' />
          </label>
        )}
      </div>
    </Dialog>
  );
}
