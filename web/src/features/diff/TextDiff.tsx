// Two CKP documents side by side as text: pretty-printed with sorted keys, a line diff with removed, added and
// changed lines coloured, the number of changes, previous/next change, and long unchanged stretches folded.
import { useEffect, useMemo, useRef, useState, type ReactNode } from 'react';
import { sideBySide, stableStringify, type Row } from './diff';

/** Unchanged lines kept around a change when the rest is folded. */
const CONTEXT = 3;


type Item = { row: Row; index: number } | { fold: [number, number] };

const KIND_LABEL: Record<Row['kind'], string> = { same: '', changed: 'changed', removed: 'removed', added: 'added' };

export interface TextDiffProps {
  before: unknown;
  after: unknown;
  /** Headings of the old and new sides. */
  labels: [string, string];
  /** A node to scroll to (its `"<id>": {` line on the new side, else the old); `n` tells repeated requests apart. */
  reveal?: { node: string; n: number } | null;
}

export function TextDiff({ before, after, labels, reveal }: TextDiffProps) {
  const { rows, changes } = useMemo(() => {
    const a = stableStringify(before).split('\n');
    const b = stableStringify(after).split('\n');
    return sideBySide(a, b);
  }, [before, after]);
  const [current, setCurrent] = useState(-1);
  const [unfolded, setUnfolded] = useState<Set<number>>(() => new Set());
  const [showAll, setShowAll] = useState(false);
  const box = useRef<HTMLDivElement>(null);

  // Which rows are shown: changed rows and CONTEXT lines around them; longer unchanged stretches fold into one row.
  const items = useMemo<Item[]>(() => {
    if (showAll) return rows.map((row, index) => ({ row, index }));
    const near = new Uint8Array(rows.length);
    rows.forEach((r, i) => {
      if (r.kind !== 'same') for (let j = Math.max(0, i - CONTEXT); j <= Math.min(rows.length - 1, i + CONTEXT); j++) near[j] = 1;
    });
    const out: Item[] = [];
    let i = 0;
    while (i < rows.length) {
      if (near[i] || unfolded.has(i)) {
        out.push({ row: rows[i], index: i });
        i++;
        continue;
      }
      let j = i;
      while (j < rows.length && !near[j]) j++;
      if (j - i <= 2) for (let k = i; k < j; k++) out.push({ row: rows[k], index: k });
      else out.push({ fold: [i, j] });
      i = j;
    }
    return out;
  }, [rows, showAll, unfolded]);

  const scrollToRow = (index: number) => {
    // The box scrolls, not the page: the row is centred in the box.
    const b = box.current;
    const el = b?.querySelector<HTMLElement>(`[data-row="${index}"]`);
    if (!b || !el) return;
    const top = el.getBoundingClientRect().top - b.getBoundingClientRect().top + b.scrollTop;
    b.scrollTop = Math.max(0, top - b.clientHeight / 2 + el.offsetHeight / 2);
  };
  const go = (delta: number) => {
    if (!changes) return;
    const next = current < 0 ? (delta > 0 ? 0 : changes - 1) : (current + delta + changes) % changes;
    setCurrent(next);
    const index = rows.findIndex((r) => r.change === next);
    requestAnimationFrame(() => scrollToRow(index));
  };

  useEffect(() => {
    if (!reveal) return;
    // Node ids sit at depth 3 of the sorted text: workflow_graph > nodes > id.
    const line = `      ${JSON.stringify(reveal.node)}: {`;
    let index = rows.findIndex((r) => r.right?.text === line);
    if (index < 0) index = rows.findIndex((r) => r.left?.text === line);
    if (index < 0) return;
    setUnfolded((u) => new Set([...u, ...Array.from({ length: 12 }, (_, k) => index + k)]));
    if (rows[index].change >= 0) setCurrent(rows[index].change);
    requestAnimationFrame(() => scrollToRow(index));
  }, [reveal, rows]);

  const cell = (side: Row['left'], kind: Row['kind'], which: 'left' | 'right'): ReactNode => {
    const label = kind === 'changed' ? 'changed' : (which === 'left' && kind === 'removed') || (which === 'right' && kind === 'added') ? KIND_LABEL[kind] : '';
    return (
      <>
        <td className="ln">
          {side?.n ?? ''}
          {side && label && <span className="sr-only"> {label}</span>}
        </td>
        <td className={`code ${side ? '' : 'empty'}`}>{side?.text ?? ''}</td>
      </>
    );
  };

  return (
    <section aria-label="CKP text diff">
      <div className="toolbar diff-toolbar">
        <strong role="status">{changes === 0 ? 'No change in the text' : changes === 1 ? '1 change' : `${changes} changes`}</strong>
        {changes > 0 && <span className="muted">{current >= 0 ? `change ${current + 1} of ${changes}` : ''}</span>}
        <button className="small" onClick={() => go(-1)} disabled={!changes} aria-keyshortcuts="p">
          ↑ Previous change
        </button>
        <button className="small" onClick={() => go(1)} disabled={!changes} aria-keyshortcuts="n">
          ↓ Next change
        </button>
        <label className="inline">
          <input type="checkbox" checked={showAll} onChange={(e) => setShowAll(e.target.checked)} />
          Show unchanged lines
        </label>
        <span className="legend">
          <span><span className="swatch removed" />removed</span>
          <span><span className="swatch added" />added</span>
          <span><span className="swatch changed" />changed</span>
        </span>
      </div>
      <div
        className="text-diff"
        ref={box}
        tabIndex={0}
        aria-label="Line diff, old version on the left"
        onKeyDown={(e) => {
          if (e.key === 'n') go(1);
          if (e.key === 'p') go(-1);
        }}
      >
        <table>
          <colgroup>
            <col className="ln-col" />
            <col />
            <col className="ln-col" />
            <col />
          </colgroup>
          <thead>
            <tr>
              <th scope="col" colSpan={2}>
                {labels[0]}
              </th>
              <th scope="col" colSpan={2}>
                {labels[1]}
              </th>
            </tr>
          </thead>
          <tbody>
            {items.map((it) =>
              'fold' in it ? (
                <tr key={`f${it.fold[0]}`} className="fold">
                  <td colSpan={4}>
                    <button
                      className="ghost small"
                      onClick={() => setUnfolded((u) => new Set([...u, ...Array.from({ length: it.fold[1] - it.fold[0] }, (_, k) => it.fold[0] + k)]))}
                    >
                      ⋯ {it.fold[1] - it.fold[0]} unchanged lines
                    </button>
                  </td>
                </tr>
              ) : (
                <tr key={it.index} data-row={it.index} data-kind={it.row.kind} className={`${it.row.kind}${it.row.change >= 0 && it.row.change === current ? ' current' : ''}`}>
                  {cell(it.row.left, it.row.kind, 'left')}
                  {cell(it.row.right, it.row.kind, 'right')}
                </tr>
              ),
            )}
          </tbody>
        </table>
      </div>
    </section>
  );
}
