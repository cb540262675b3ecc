// Bulk cancel and delete of the selected runs: a confirm naming the count, progress while the requests run (a few at
// a time), then a summary of what was done and, per failed run, the server's reason.
import { useQueryClient } from '@tanstack/react-query';
import { useState } from 'react';
import { useConfirm } from '../../components/Dialog';
import { useToast } from '../../components/Toasts';
import { shortId } from '../../lib/format';
import { cancelRun, deleteRun } from './api';

interface Outcome {
  verb: string;
  done: number;
  failed: { id: string; reason: string }[];
}

const ACTIONS = {
  cancel: { run: cancelRun, verb: 'canceled', title: 'Cancel runs', button: 'Cancel runs', progress: 'Canceling' },
  delete: { run: deleteRun, verb: 'deleted', title: 'Delete runs', button: 'Delete runs', progress: 'Deleting' },
} as const;
type Action = keyof typeof ACTIONS;

/** Runs `work` on every item, at most `width` at a time, reporting each completion. */
async function eachLimited<T>(items: T[], width: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const lane = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, lane));
}

export function BulkActions({ selected, onDone }: { selected: string[]; onDone: () => void }) {
  const confirm = useConfirm();
  const toast = useToast();
  const qc = useQueryClient();
  const [progress, setProgress] = useState<{ label: string; done: number; total: number } | null>(null);
  const [outcome, setOutcome] = useState<Outcome | null>(null);

  const start = async (action: Action) => {
    const a = ACTIONS[action];
    const n = selected.length;
    const ok = await confirm({
      title: a.title,
      message: `${action === 'cancel' ? 'Cancel' : 'Delete'} ${n} selected run${n === 1 ? '' : 's'}?${
        action === 'delete' ? ' Their events, checkpoints and artifacts are deleted too; this cannot be undone.' : ''
      }`,
      confirm: a.button,
      danger: true,
    });
    if (!ok) return;
    const ids = [...selected];
    const result: Outcome = { verb: a.verb, done: 0, failed: [] };
    setOutcome(null);
    setProgress({ label: a.progress, done: 0, total: ids.length });
    await eachLimited(ids, 4, async (id) => {
      try {
        await a.run(id);
        result.done++;
      } catch (e) {
        result.failed.push({ id, reason: e instanceof Error ? e.message : String(e) });
      }
      setProgress((p) => p && { ...p, done: p.done + 1 });
    });
    setProgress(null);
    setOutcome(result);
    toast.show(summary(result), result.failed.length ? 'error' : 'success');
    await qc.invalidateQueries({ queryKey: ['runs'] });
    onDone();
  };

  return (
    <>
      <button onClick={() => void start('cancel')} disabled={!selected.length || progress !== null}>
        Cancel selected
      </button>
      <button className="danger" onClick={() => void start('delete')} disabled={!selected.length || progress !== null}>
        Delete selected
      </button>
      <div className="runs-bulk-status" role="status">
        {progress && (
          <>
            {progress.label} {progress.done} of {progress.total}…{' '}
            <progress max={progress.total} value={progress.done} aria-label={`${progress.label} runs`} />
          </>
        )}
      </div>
      {outcome && (
        <div className={`banner ${outcome.failed.length ? 'warn' : 'info'} runs-outcome`}>
          <div className="runs-outcome-head">
            <strong>{summary(outcome)}</strong>
            <button className="ghost small" onClick={() => setOutcome(null)} aria-label="Dismiss the result">
              ×
            </button>
          </div>
          {outcome.failed.length > 0 && (
            <ul>
              {outcome.failed.map((f) => (
                <li key={f.id}>
                  <span className="mono" title={f.id}>
                    {shortId(f.id)}
                  </span>
                  : {f.reason}
                </li>
              ))}
            </ul>
          )}
        </div>
      )}
    </>
  );
}

function summary(o: Outcome): string {
  return `${o.done} ${o.verb}, ${o.failed.length} failed`;
}
