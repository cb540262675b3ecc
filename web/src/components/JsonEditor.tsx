// A CodeMirror 6 JSON editor (or viewer, when read-only) with folding and marked ranges (the compiler's
// diagnostics). Default export, always loaded with `lazy()`: CodeMirror stays out of the first screen.
import { json } from '@codemirror/lang-json';
import { HighlightStyle, syntaxHighlighting } from '@codemirror/language';
import { EditorState, StateEffect, StateField, type Extension, type Range as CmRange } from '@codemirror/state';
import { Decoration, EditorView, type DecorationSet } from '@codemirror/view';
import { basicSetup } from 'codemirror';
import { tags } from '@lezer/highlight';
import { useEffect, useRef } from 'react';

export interface Mark {
  from: number;
  to: number;
  message: string;
}

export interface JsonEditorProps {
  value: string;
  onChange?: (text: string) => void;
  readOnly?: boolean;
  /** Ranges to mark (diagnostics); the first one is scrolled into view when they change. */
  marks?: Mark[];
  label: string;
  height?: number;
  /** A range to select, scroll to and focus (a diagnostic picked from a list); `n` tells repeated picks apart. */
  reveal?: { from: number; to: number; n: number } | null;
}

const setMarks = StateEffect.define<Mark[]>();

const markField = StateField.define<DecorationSet>({
  create: () => Decoration.none,
  update(deco, tr) {
    let d = deco.map(tr.changes);
    for (const e of tr.effects)
      if (e.is(setMarks)) {
        const len = tr.state.doc.length;
        const ranges: CmRange<Decoration>[] = [];
        for (const m of e.value) {
          const from = Math.max(0, Math.min(m.from, len));
          // An empty range (a position) still gets one character marked so it shows.
          const to = Math.max(from + (from < len ? 1 : 0), Math.min(m.to, len));
          if (to > from) ranges.push(Decoration.mark({ class: 'cm-diagnostic', attributes: { title: m.message } }).range(from, to));
        }
        d = Decoration.set(ranges, true);
      }
    return d;
  },
  provide: (f) => EditorView.decorations.from(f),
});

const theme = EditorView.theme({
  '&': { backgroundColor: 'var(--panel)', color: 'var(--text)', border: '1px solid var(--border)', borderRadius: '6px' },
  '.cm-content': { fontFamily: 'var(--mono)', fontSize: '12.5px', caretColor: 'var(--text)' },
  '.cm-gutters': { backgroundColor: 'var(--panel-2)', color: 'var(--muted)', borderRight: '1px solid var(--border)' },
  '.cm-activeLine, .cm-activeLineGutter': { backgroundColor: 'transparent' },
  '&.cm-focused': { outline: '2px solid var(--focus)' },
  '.cm-diagnostic': { backgroundColor: 'var(--err-soft)', textDecoration: 'underline wavy var(--err)' },
  '.cm-foldPlaceholder': { backgroundColor: 'var(--panel-2)', color: 'var(--text)', border: '1px solid var(--border)' },
  '.cm-selectionBackground, &.cm-focused .cm-selectionBackground': { backgroundColor: 'var(--accent-soft)' },
  '.cm-scroller': { overflow: 'auto' },
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

export default function JsonEditor({ value, onChange, readOnly, marks, label, height = 360, reveal }: JsonEditorProps) {
  const host = useRef<HTMLDivElement>(null);
  const view = useRef<EditorView | null>(null);
  const change = useRef(onChange);
  change.current = onChange;

  useEffect(() => {
    const extensions: Extension[] = [
      basicSetup,
      json(),
      theme,
      syntax,
      markField,
      EditorView.lineWrapping,
      // An explicit tabindex: axe does not count a contenteditable as the keyboard access of its scrolling box.
      EditorView.contentAttributes.of({ 'aria-label': label, tabindex: '0' }),
      EditorView.updateListener.of((u) => {
        if (u.docChanged) change.current?.(u.state.doc.toString());
      }),
    ];
    // Read-only keeps the content focusable (keyboard scrolling, selection, folding) and says so to assistive tech.
    if (readOnly) extensions.push(EditorState.readOnly.of(true), EditorView.contentAttributes.of({ 'aria-readonly': 'true' }));
    const v = new EditorView({ state: EditorState.create({ doc: value, extensions }), parent: host.current! });
    view.current = v;
    return () => {
      v.destroy();
      view.current = null;
    };
    // The editor is created once per mode; value changes from outside are applied below.
  }, [readOnly, label]);

  useEffect(() => {
    const v = view.current;
    if (v && v.state.doc.toString() !== value) v.dispatch({ changes: { from: 0, to: v.state.doc.length, insert: value } });
  }, [value]);

  useEffect(() => {
    const v = view.current;
    if (!v) return;
    const list = marks ?? [];
    const first = list[0];
    v.dispatch({
      effects: [
        setMarks.of(list),
        ...(first ? [EditorView.scrollIntoView(Math.min(first.from, v.state.doc.length), { y: 'center' })] : []),
      ],
    });
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
