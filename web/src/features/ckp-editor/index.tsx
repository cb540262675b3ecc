// The CKP editor feature: the editor (CodeMirror, loaded on demand), live validation, and pointer helpers.
import { lazy, Suspense } from 'react';
import type { CkpEditorProps } from './CkpEditor';

export type { CkpEditorProps } from './CkpEditor';
export type { Diagnostic, ValidateResult } from './api';
export { useValidation, type Validation } from './useValidation';
export { pointerRange, nodeOfPointer } from '../../lib/jsonPointer';
export { markRange } from './marks';

const Editor = lazy(() => import('./CkpEditor'));

export function CkpEditor(props: CkpEditorProps) {
  return (
    <Suspense
      fallback={
        <div className="json-editor" style={{ height: props.height ?? '480px' }} role="status">
          Loading the editor…
        </div>
      }
    >
      <Editor {...props} />
    </Suspense>
  );
}
