// Where the editor marks a compiler diagnostic in the current text.
import { diagnosticRange, type Range } from '../../lib/jsonPointer';
import type { Diagnostic } from './api';

/**
 * The range to mark for a diagnostic: a member's value when it fits on one line (the key is not what is wrong),
 * else the first line of what the pointer names (a whole node would be a wall of red).
 */
export function markRange(text: string, d: Pick<Diagnostic, 'pointer' | 'line' | 'column'>): Range | null {
  const r = diagnosticRange(text, d);
  if (!r) return null;
  const slice = text.slice(r.from, r.to);
  const nl = slice.indexOf('\n');
  if (nl >= 0) return { from: r.from, to: r.from + nl };
  const key = /^"(?:[^"\\]|\\.)*"\s*:\s*/.exec(slice);
  return key && key[0].length < slice.length ? { from: r.from + key[0].length, to: r.to } : r;
}
