// A CodeMirror 6 JSON editor (or viewer, when read-only) with folding, search, bracket matching, line numbers, and
// marked ranges (the compiler's diagnostics, shown as lint marks with a gutter marker and a hover message). Callers
// add their own extensions (the CKP editor's completion). Default export, always loaded with `lazy()`: CodeMirror
// stays out of the first screen.
import { json } from '@codemirror/lang-json';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { lintGutter, setDiagnostics, type Diagnostic as CmDiagnostic } from '@codemirror/lint';
import { Compartment, EditorState, type Extension } from '@codemirror/state';
import { EditorView } from '@codemirror/view';
import { basicSetup } from 'codemirror';
import { tags } from '@lezer/highlight';
import { useEffect, useRef } from 'react';
import './JsonEditor.css';

export interface Mark {
  from: number;
  to: number;
  message: string;
  /** Default error. */
  severity?: 'error' | 'warning';
}

export interface JsonEditorProps {
  value: string;
  onChange?: (text: string) => void;
  readOnly?: boolean;
  /** Ranges to mark (diagnostics). */
  marks?: Mark[];
  /** Scroll the first mark into view when the marks change (default true: a list of problems just came in). */
  scrollToMarks?: boolean;
  label: string;
  /** Pixels, or any CSS length. */
  height?: number | string;
  /** A range to select, scroll to and focus (a diagnostic picked from a list); `n` tells repeated picks apart. */
  reveal?: { from: number; to: number; n: number } | null;
  /** More extensions (completion, key bindings); changing the array reconfigures the editor in place. */
  extensions?: Extension[];
}

// Every colour comes from the console's CSS variables, which follow its light or dark theme (light-dark()), so the
// editor, its tooltips, the completion list and the search panel switch with the page.
const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '6px' },
  '.cm-content': { fontFamily: 'var(--mono)', fontSize: '12.5px', caretColor: 'var(--text)' },
  '.cm-cursor, .cm-dropCursor': { borderLeftColor: 'var(--text)' },
  '.cm-gutters': { backgroundColor: 'var(--panel-2)', color: 'var(--muted)', borderRight: '1px solid var(--border)' },
  '.cm-activeLine, .cm-activeLineGutter': { backgroundColor: 'transparent' },
  '&.cm-focused': { outline: '2px solid var(--focus)' },
  '.cm-foldPlaceholder': { backgroundColor: 'var(--panel-2)', color: 'var(--text)', border: '1px solid var(--border)' },
  '.cm-selectionBackground, &.cm-focused .cm-selectionBackground, & ::selection': { backgroundColor: 'var(--accent-soft) !important' },
  '.cm-matchingBracket, &.cm-focused .cm-matchingBracket': { backgroundColor: 'var(--accent-soft)', outline: '1px solid var(--accent)' },
  '.cm-nonmatchingBracket, &.cm-focused .cm-nonmatchingBracket': { backgroundColor: 'var(--err-soft)' },
  '.cm-searchMatch': { backgroundColor: 'var(--warn-soft)', outline: '1px solid var(--warn)' },
  '.cm-searchMatch.cm-searchMatch-selected': { backgroundColor: 'var(--accent-soft)' },
  '.cm-selectionMatch': { backgroundColor: 'var(--info-soft)' },
  '.cm-scroller': { overflow: 'auto' },
  // Diagnostics: a wavy underline in the theme's colours, a tinted background, the message in a tooltip.
  '.cm-lintRange-error': { backgroundImage: 'none', textDecoration: 'underline wavy var(--err)', backgroundColor: 'var(--err-soft)' },
  '.cm-lintRange-warning': { backgroundImage: 'none', textDecoration: 'underline wavy var(--warn)', backgroundColor: 'var(--warn-soft)' },
  '.cm-lintRange-active': { backgroundColor: 'var(--accent-soft)' },
  '.cm-diagnostic': { fontFamily: 'system-ui, sans-serif', fontSize: '13px', padding: '4px 8px', color: 'var(--text)' },
  '.cm-diagnostic-error': { borderLeft: '4px solid var(--err)' },
  '.cm-diagnostic-warning': { borderLeft: '4px solid var(--warn)' },
  // Tooltips, the completion list and the panels (search) sit on the page's surfaces.
  '.cm-tooltip': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '6px', boxShadow: 'var(--shadow)' },
  '.cm-tooltip-autocomplete > ul': { fontFamily: 'var(--mono)', fontSize: '12.5px', maxHeight: '16em' },
  '.cm-tooltip-autocomplete > ul > li': { padding: '2px 8px !important' },
  '.cm-tooltip-autocomplete > ul > li[aria-selected]': { backgroundColor: 'var(--accent)', color: 'var(--accent-text)' },
  '.cm-tooltip-autocomplete > ul > li[aria-selected] .cm-completionDetail': { color: 'var(--accent-text)' },
  '.cm-completionDetail': { color: 'var(--muted)', fontStyle: 'normal', marginLeft: '1em' },
  '.cm-completionMatchedText': { textDecoration: 'none', fontWeight: '700' },
  '.cm-completionInfo': { padding: '6px 10px', maxWidth: '360px', fontFamily: 'system-ui, sans-serif' },
  '.cm-panels': { backgroundColor: 'var(--panel-2)', color: 'var(--text)' },
  '.cm-panels.cm-panels-top': { borderBottom: '1px solid var(--border)' },
  '.cm-panels.cm-panels-bottom': { borderTop: '1px solid var(--border)' },
  '.cm-panel input, .cm-panel button, .cm-panel label': { fontSize: '12.5px' },
  '.cm-textfield': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '4px' },
  '.cm-button': { backgroundImage: 'none', backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '4px' },
});

// Syntax colours from the theme's variables: CodeMirror's default colours fail contrast in the dark theme.
// (@codemirror/language and @lezer/highlight come with `codemirror` and `@codemirror/lang-json`.)
const syntax = syntaxHighlighting(
  HighlightStyle.define([
    { tag: tags.string, color: 'var(--ok)' },
    { tag: tags.number, color: 'var(--info)' },
    { tag: [tags.bool, tags.null], color: 'var(--warn)' },
    { tag: tags.propertyName, color: 'var(--accent)' },
    { tag: tags.invalid, color: 'var(--err)' },
  ]),
);

function toDiagnostics(marks: Mark[], len: number): CmDiagnostic[] {
  const out: CmDiagnostic[] = [];
  for (const m of marks) {
    const from = Math.max(0, Math.min(m.from, len));
    // An empty range (a position) still gets one character marked so it shows.
    const to = Math.max(from + (from < len ? 1 : 0), Math.min(m.to, len));
    if (to > from) out.push({ from, to, severity: m.severity ?? 'error', message: m.message });
  }
  // The lint state wants them sorted by position.
  return out.sort((a, b) => a.from - b.from || a.to - b.to);
}

export default function JsonEditor({ value, onChange, readOnly, marks, scrollToMarks = true, label, height = 360, reveal, extensions }: JsonEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  change.current = onChange;
  const extra = useRef(new Compartment());
  // The latest marks, for an editor created again (read-only switched): its marks are set at creation.
  const latestMarks = useRef(marks);
  latestMarks.current = marks;

  useEffect(() => {
    const list: Extension[] = [
      basicSetup,
      json(),
      theme,
      syntax,
      lintGutter(),
      EditorView.lineWrapping,
      // An explicit tabindex: axe does not count a contenteditable as the keyboard access of its scrolling box.
      EditorView.contentAttributes.of({ 'aria-label': label, tabindex: '0' }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) change.current?.(u.state.doc.toString());
      }),
      extra.current.of(extensions ?? []),
    ];
    // Read-only keeps the content focusable (keyboard scrolling, selection, folding) and says so to assistive tech.
    if (readOnly) list.push(EditorState.readOnly.of(true), EditorView.contentAttributes.of({ 'aria-readonly': 'true' }));
    const v = new EditorView({ state: EditorState.create({ doc: value, extensions: list }), parent: host.current! });
    view.current = v;
    if (latestMarks.current?.length) v.dispatch(setDiagnostics(v.state, toDiagnostics(latestMarks.current, v.state.doc.length)));
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once per mode; value, marks and extension changes from outside are applied below.
  }, [readOnly, label]);

  useEffect(() => {
    view.current?.dispatch({ effects: extra.current.reconfigure(extensions ?? []) });
  }, [extensions]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const list = toDiagnostics(marks ?? [], v.state.doc.length);
    v.dispatch(setDiagnostics(v.state, list));
    const first = [...(marks ?? [])].sort((a, b) => a.from - b.from)[0];
    if (scrollToMarks && first) v.dispatch({ effects: EditorView.scrollIntoView(Math.min(first.from, v.state.doc.length), { y: 'center' }) });
  }, [marks]);

  useEffect(() => {
    const v = view.current;
    if (!v || !reveal) return;
    const len = v.state.doc.length;
    const anchor = Math.min(reveal.from, len);
    v.dispatch({ selection: { anchor, head: Math.min(reveal.to, len) }, effects: EditorView.scrollIntoView(anchor, { y: 'center' }) });
    v.focus();
  }, [reveal]);

  return <div ref={host} className="json-editor" style={{ height }} />;
}
