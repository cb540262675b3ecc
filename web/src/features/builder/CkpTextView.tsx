// The CKP view of the builder for now: a plain textarea over the draft's JSON. It takes the props of the CKP editor
// component (`CkpEditor {value, onChange, diagnostics, focusPointer, readOnly}`) so that one can replace it as is.
// `focusPointer` selects the text of the value the pointer names (a problem clicked in the panel).
import { useEffect, useRef } from 'react';
import { pointerRange } from '../../lib/jsonPointer';
import type { Diagnostic } from './api';

export interface CkpTextViewProps {
  value: string;
  onChange: (text: string) => void;
  diagnostics: Diagnostic[];
  focusPointer?: string | null;
  readOnly?: boolean;
}

export function CkpTextView({ value, onChange, diagnostics, focusPointer, readOnly }: CkpTextViewProps) {
  const ref = useRef<HTMLTextAreaElement>(null);
  useEffect(() => {
    const el = ref.current;
    if (!el || focusPointer == null) return;
    const r = pointerRange(value, focusPointer);
    if (!r) return;
    el.focus();
    el.setSelectionRange(r.from, r.to);
    // Scroll the selection into view: the line's share of the text's height.
    const line = value.slice(0, r.from).split('\n').length;
    el.scrollTop = Math.max(0, (line - 5) * (el.scrollHeight / Math.max(1, value.split('\n').length)));
  }, [focusPointer]);
  const errors = diagnostics.filter((d) => d.severity === 'error').length;
  return (
    <>
      <label className="sr-only" htmlFor="ckp-text">
        CKP document
      </label>
      <textarea
        id="ckp-text"
        ref={ref}
        spellCheck={false}
        value={value}
        readOnly={readOnly}
        onChange={(e) => onChange(e.target.value)}
        aria-invalid={errors > 0}
      />
    </>
  );
}
