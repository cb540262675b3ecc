// "Check CKP": paste, type or open a CKP document and see what ckp's compiler says about it as you type (errors and
// warnings marked in the text, listed beside it), with CKP completion. The text is kept in this browser
// (localStorage) so leaving the page does not lose it; "Import…" hands it to the import dialog.
import { useEffect, useState } from 'react';
import { ErrorBanner, PageHead } from '../components/Bits';
import { CkpEditor, useValidation, type Diagnostic } from '../features/ckp-editor';
import '../features/ckp-editor/ckp-editor.css';
import { ImportDialog } from './catalog/ImportDialog';
import { skeleton } from './catalog/shared';
import './catalog/catalog.css';

const KEY = 'ckp.check.text';

export default function CheckCkp() {
  const [text, setText] = useState(() => localStorage.getItem(KEY) ?? skeleton());
  const [focus, setFocus] = useState<string | null>(null);
  const [importing, setImporting] = useState(false);
  const v = useValidation(text);

  useEffect(() => {
    const t = window.setTimeout(() => localStorage.setItem(KEY, text), 500);
    return () => window.clearTimeout(t);
  }, [text]);

  const show = (d: Diagnostic) => {
    // Cleared first, so picking the same finding again scrolls to it again.
    setFocus(null);
    requestAnimationFrame(() => setFocus(d.pointer));
  };
  const open = async (f: File | undefined) => {
    if (f) setText(await f.text());
  };
  const findings = [...v.errors, ...v.warnings];

  return (
    <>
      <PageHead
        title="Check CKP"
        sub="Paste, type or open a CKP document: ckp's compiler checks it as you type. Ctrl+Space completes property names, node types, node ids and actions."
      >
        <label className="button">
          Open file…
          <input className="sr-only" type="file" accept=".json,application/json" onChange={(e) => void open(e.target.files?.[0])} />
        </label>
        <button onClick={() => setText(skeleton())}>Start from the skeleton</button>
        <button className="primary" disabled={!v.valid || v.pending} onClick={() => setImporting(true)}>
          Import…
        </button>
      </PageHead>
      <div className="check-status" role="status" aria-live="polite">
        {v.pending ? (
          <span className="badge">checking…</span>
        ) : v.valid ? (
          <>
            <span className="badge ok">valid</span>
            {v.procedureId && (
              <span>
                <span className="mono">{v.procedureId}</span> version <span className="mono">{v.version}</span>
              </span>
            )}
          </>
        ) : (
          <span className="badge err">{v.errors.length === 1 ? '1 error' : `${v.errors.length} errors`}</span>
        )}
        {!v.pending && v.warnings.length > 0 && <span className="badge warn">{v.warnings.length === 1 ? '1 warning' : `${v.warnings.length} warnings`}</span>}
      </div>
      {v.error != null && <ErrorBanner error={v.error} />}
      <div className="check-layout">
        <CkpEditor value={text} onChange={setText} diagnostics={findings} focusPointer={focus} height="calc(100vh - 230px)" />
        <section className="card check-findings" aria-labelledby="findings-title">
          <h2 id="findings-title">Findings</h2>
          {findings.length === 0 ? (
            <p className="muted">{v.pending && !v.valid ? 'Checking…' : 'Nothing to report.'}</p>
          ) : (
            <ul className="diagnostics" aria-label="Diagnostics">
              {findings.map((d, i) => (
                <li key={`${d.code}-${d.pointer}-${i}`} className={d.severity === 'warning' ? 'warning' : 'error'}>
                  <div>
                    <strong>{d.severity}</strong> <span className="muted">· {d.code}</span>
                  </div>
                  <div>{d.message}</div>
                  <div className="where">
                    {d.pointer || '(document)'} · line {d.line}, column {d.column}{' '}
                    <button type="button" className="ghost small" aria-label={`Show ${d.pointer || 'the document'} in the text`} onClick={() => show(d)}>
                      Show
                    </button>
                  </div>
                </li>
              ))}
            </ul>
          )}
        </section>
      </div>
      {importing && <ImportDialog open initial={text} onClose={() => setImporting(false)} />}
    </>
  );
}
