// Undo/redo over the builder's state ({ckp, layout}). Every change is committed here, from the canvas, the forms
// and the CKP text alike, so one history covers both views. Changes with the same `group` key that follow each
// other within a short time merge into one step (typing in a field is one step, not one per key).
import { useCallback, useRef, useState } from 'react';
import type { Layout } from './api';
import type { JsonObject } from './model';

export interface BuilderState {
  ckp: JsonObject;
  layout: Layout;
}

interface History {
  past: BuilderState[];
  present: BuilderState;
  future: BuilderState[];
}

const LIMIT = 200;
const MERGE_MS = 1000;

export function useHistory(initial: BuilderState) {
  const [h, setH] = useState<History>({ past: [], present: initial, future: [] });
  const last = useRef<{ group: string; at: number } | null>(null);

  const commit = useCallback((next: BuilderState | ((s: BuilderState) => BuilderState), group?: string) => {
    // Decided outside the state updater, which must stay pure (React may call it twice).
    const now = Date.now();
    const merge = group !== undefined && last.current?.group === group && now - last.current.at < MERGE_MS;
    last.current = group !== undefined ? { group, at: now } : null;
    setH((cur) => {
      const value = typeof next === 'function' ? next(cur.present) : next;
      if (value === cur.present) return cur;
      if (merge) return { past: cur.past, present: value, future: [] };
      return { past: [...cur.past.slice(-LIMIT + 1), cur.present], present: value, future: [] };
    });
  }, []);

  /** Replaces the state without an undo step (loading a draft). */
  const reset = useCallback((s: BuilderState) => {
    last.current = null;
    setH({ past: [], present: s, future: [] });
  }, []);

  const undo = useCallback(() => {
    last.current = null;
    setH((cur) => (cur.past.length === 0 ? cur : { past: cur.past.slice(0, -1), present: cur.past[cur.past.length - 1], future: [cur.present, ...cur.future] }));
  }, []);

  const redo = useCallback(() => {
    last.current = null;
    setH((cur) => (cur.future.length === 0 ? cur : { past: [...cur.past, cur.present], present: cur.future[0], future: cur.future.slice(1) }));
  }, []);

  return { state: h.present, canUndo: h.past.length > 0, canRedo: h.future.length > 0, commit, reset, undo, redo };
}
