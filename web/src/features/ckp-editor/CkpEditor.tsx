// The CKP editor: the console's JSON editor with CKP completion and the compiler's diagnostics marked where their
// pointer lands in the current text. Default export, loaded with `lazy()` by ./index.tsx (CodeMirror stays out of
// the pages that do not edit).
import { jsonLanguage } from '@codemirror/lang-json';
import { EditorView } from '@codemirror/view';
import { useQuery } from '@tanstack/react-query';
import { useEffect, useMemo, useRef, useState } from 'react';
import { raw } from '../../api/client';
import JsonEditor, { type Mark } from '../../components/JsonEditor';
import type { Diagnostic } from './api';
import { actionNames, ckpCompletion, ckpHover, type ActionName } from './completion';
import { markRange } from './marks';

const hoverTheme = EditorView.theme({ '.cm-ckp-doc': { padding: '4px 8px', maxWidth: '420px', fontSize: '13px', fontFamily: 'system-ui, sans-serif' } });

export interface CkpEditorProps {
  value: string;
  onChange(text: string): void;
  diagnostics: Diagnostic[];
  /** A pointer to scroll to and select (a node picked in the builder, a diagnostic picked from a list). */
  focusPointer?: string | null;
  readOnly?: boolean;
  height?: string;
  /** The accessible name of the text box (default "CKP document"). */
  label?: string;
}

export default function CkpEditor({ value, onChange, diagnostics, focusPointer, readOnly, height = '480px', label = 'CKP document' }: CkpEditorProps) {
  const actions = useQuery({ queryKey: ['actions'], queryFn: () => raw<unknown>('/api/actions'), staleTime: 60_000 });
  const known = useRef<ActionName[]>([]);
  known.current = useMemo(() => actionNames(actions.data), [actions.data]);
  const extensions = useMemo(
    () => [jsonLanguage.data.of({ autocomplete: ckpCompletion({ actions: () => known.current }) }), ckpHover(), hoverTheme],
    [],
  );

  const marks = useMemo<Mark[]>(
    () =>
      diagnostics.flatMap((d) => {
        const r = markRange(value, d);
        return r ? [{ ...r, message: `${d.message} (${d.code})`, severity: d.severity }] : [];
      }),
    [diagnostics, value],
  );

  const [reveal, setReveal] = useState<{ from: number; to: number; n: number } | null>(null);
  const current = useRef(value);
  current.current = value;
  useEffect(() => {
    if (focusPointer == null) return;
    const r = markRange(current.current, { pointer: focusPointer, line: 0, column: 0 });
    if (r) setReveal({ ...r, n: Date.now() });
  }, [focusPointer]);

  return (
    <JsonEditor
      value={value}
      onChange={onChange}
      readOnly={readOnly}
      marks={marks}
      scrollToMarks={false}
      reveal={reveal}
      label={label}
      height={height}
      extensions={extensions}
    />
  );
}
